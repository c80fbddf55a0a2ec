"""Ingest domain: one daily-partitioned asset per landing entity (its checks live in quality)."""

from __future__ import annotations

import dagster as dg

from lifecycle_assets.ingest.assets import build_ingest_assets


def daily_landing_partitions(first_landing_day: str) -> dg.DailyPartitionsDefinition:
    """One partition per landing day; today's is open so the hourly run can ingest what has landed so far."""
    return dg.DailyPartitionsDefinition(start_date=first_landing_day, end_offset=1)


def ingest_definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=build_ingest_assets(partitions))
