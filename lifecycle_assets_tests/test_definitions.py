"""The code location loads the way the UI and CI load it, with every domain in its group."""

import os
import subprocess
import sys
from pathlib import Path

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
