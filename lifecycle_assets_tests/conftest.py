"""Test order: the long test files first.

`make test` runs a test file at a time per worker (`--dist loadfile`), handing out files in
collection order. The browser test (~2.5 min) and the whole-shop files, collected last, used to
start when the other worker had little left, and the suite's last minutes ran on one core.
"""

from __future__ import annotations

LONG_MARKERS = ("browser", "slow")


def pytest_collection_modifyitems(items) -> None:
    long_files = {item.path for item in items if any(item.get_closest_marker(name) for name in LONG_MARKERS)}
    items.sort(key=lambda item: item.path not in long_files)  # stable: each file keeps its own order
