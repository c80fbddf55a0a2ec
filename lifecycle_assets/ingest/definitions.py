"""Ingest domain: one daily-partitioned asset per landing entity, with its blocking quality checks."""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.ingest.assets import build_ingest_assets
from lifecycle_assets.quality.assets import quarantine_summary
from lifecycle_assets.quality.checks import QualityPolicy, build_all_quality_checks


def daily_landing_partitions(first_landing_day: str) -> dg.DailyPartitionsDefinition:
    """One partition per landing day; today's is open so the hourly run can ingest what has landed so far."""
    return dg.DailyPartitionsDefinition(start_date=first_landing_day, end_offset=1)


def ingest_definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    ingest_assets = build_ingest_assets(partitions)
    return dg.Definitions(
        assets=[*ingest_assets, quarantine_summary],
        asset_checks=build_all_quality_checks(ingest_assets),
        resources={"quality_policy": QualityPolicy()},
    )
