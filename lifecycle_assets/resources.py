"""Resources shared by every domain: the DuckDB warehouse and the landing zone (owned by ingest)."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from lifecycle_assets import environment
from lifecycle_assets.ingest.resources import LandingZone

__all__ = ["LandingZone", "default_resources"]


def default_resources() -> dict:
    path = environment.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "duckdb": DuckDBResource(database=str(path)),
        "landing": LandingZone(root=str(environment.landing_dir())),
    }
