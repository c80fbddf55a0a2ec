"""The code location loads the way the UI and CI load it, with every domain in its group, and its asset graph
matches the reviewed snapshot (regenerate it with the command in REGENERATE)."""

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle_assets.definitions import build_definitions

REPO = Path(__file__).resolve().parents[1]


def test_workspace_validates_with_the_dagster_cli(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "All code locations passed validation" in completed.stdout + completed.stderr


def test_every_asset_sits_in_a_domain_group_with_owners_and_a_description():
    graph = build_definitions().resolve_asset_graph()
    groups = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, []).append(key)
        assert node.owners, key
        assert node.description, key
        assert node.kinds, key
    assert set(groups) == {"ingest", "quality", "lifecycle", "activation"}


# --- The asset graph as reviewed: a change in dependency inference shows up as a diff in review. ----
ASSET_GRAPH_SNAPSHOT = Path(__file__).with_name("asset_graph_snapshot.json")
REGENERATE = "UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest lifecycle_assets_tests/test_definitions.py -k asset_graph"


def asset_graph_summary() -> dict:
    """Every asset with its group, kinds, upstream assets and checks (blocking or not), in a stable order."""
    graph = build_definitions().resolve_asset_graph()
    summary = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        checks = [graph.get_check_spec(check_key) for check_key in node.check_keys]
        summary[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": ", ".join(sorted(node.kinds)),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": sorted(f"{check.name}{' (blocking)' if check.blocking else ''}" for check in checks),
        }
    return summary


def test_asset_graph_matches_the_reviewed_snapshot():
    current = json.dumps(asset_graph_summary(), indent=2) + "\n"
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        ASSET_GRAPH_SNAPSHOT.write_text(current)
    stored = ASSET_GRAPH_SNAPSHOT.read_text() if ASSET_GRAPH_SNAPSHOT.exists() else ""
    if current != stored:
        diff = "".join(
            difflib.unified_diff(
                stored.splitlines(keepends=True), current.splitlines(keepends=True),
                f"{ASSET_GRAPH_SNAPSHOT.name} (reviewed)", "asset graph (now)",
            )
        )
        pytest.fail(
            f"The asset graph differs from {ASSET_GRAPH_SNAPSHOT.name}. If the change is intended, "
            f"regenerate the snapshot and commit it with the change:\n    {REGENERATE}\n\n{diff}",
            pytrace=False,
        )
