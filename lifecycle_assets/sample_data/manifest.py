"""The ``_manifest.json`` both sample data sets leave beside their landing files (ingest ignores it)."""

from __future__ import annotations

import json
import time
from pathlib import Path

MANIFEST_NAME = "_manifest.json"


def write_manifest(root: Path, summary: dict, started: float) -> dict:
    """Write ``summary`` as the landing root's manifest; return it with the seconds since ``started``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return {**summary, "seconds": round(time.perf_counter() - started, 2)}
