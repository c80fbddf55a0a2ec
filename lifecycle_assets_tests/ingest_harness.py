"""Test harness: write landing files by hand and run the real ingest assets and checks on them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.definitions import daily_landing_partitions, ingest_definitions
from lifecycle_assets.quality.checks import QualityPolicy
from lifecycle_assets.quality.definitions import quality_definitions
from lifecycle_assets.resources import LandingZone

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def write_landing_file(root: Path, entity: str, day: str, name: str, rows: list[dict] | bytes) -> Path:
    """Write rows as CSV / JSONL (by the name's suffix), or raw bytes as they are."""
    folder = root / entity / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(rows, bytes):
        path.write_bytes(rows)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def tree_fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class IngestRun:
    result: dg.ExecuteInProcessResult
    warehouse: Path

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def check_passed(self, asset: str, check: str) -> bool:
        evaluations = [
            e.asset_check_evaluation_data
            for e in self.result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.asset_check_evaluation_data.asset_check_key == dg.AssetCheckKey(dg.AssetKey(["raw", asset]), check)
        ]
        assert evaluations, f"check {asset}.{check} did not run"
        return evaluations[-1].passed

    def materialized(self) -> set[str]:
        return {e.asset_key.to_user_string() for e in self.result.get_asset_materialization_events()}


def run_ingest(
    landing: Path,
    warehouse: Path,
    first_day: str,
    last_day: str | None = None,
    policy: QualityPolicy | None = None,
    extra_assets: list | None = None,
) -> IngestRun:
    """Materialise every ingest asset, its checks and the quarantine summary over a landing-day range, in one run."""
    definitions = dg.Definitions.merge(
        ingest_definitions(daily_landing_partitions(min(first_day, "2020-01-01"))), quality_definitions()
    )
    result = dg.materialize(
        [*definitions.assets, *definitions.asset_checks, *(extra_assets or [])],
        resources={
            "duckdb": DuckDBResource(database=str(warehouse)),
            "landing": LandingZone(root=str(landing)),
            "quality_policy": policy or QualityPolicy(),
        },
        tags={RANGE_START_TAG: first_day, RANGE_END_TAG: last_day or first_day},
        raise_on_error=False,
    )
    return IngestRun(result=result, warehouse=warehouse)
