"""Quality domain: the blocking checks on the ingested landing days and the quarantine summary.

Quality comes after ingest: its checks attach to the ``raw/*`` assets by key and read what ingest
stored, so ingest registers nothing of quality and imports nothing from it.
"""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.quality.assets import quarantine_summary
from lifecycle_assets.quality.checks import QualityPolicy, build_all_quality_checks


def quality_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[quarantine_summary],
        asset_checks=build_all_quality_checks(),
        resources={"quality_policy": QualityPolicy()},
    )
