"""Resources shared by every domain: the DuckDB warehouse and the landing zone."""

from __future__ import annotations

import dagster as dg
from dagster_duckdb import DuckDBResource

from lifecycle_assets import environment


class LandingZone(dg.ConfigurableResource):
    """The folder the shop's exports land in: <root>/<entity>/date=YYYY-MM-DD/*."""

    root: str


def default_resources() -> dict:
    path = environment.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "duckdb": DuckDBResource(database=str(path)),
        "landing": LandingZone(root=str(environment.landing_dir())),
    }
