"""Resources shared by every domain: the DuckDB warehouse and the landing zone."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from lifecycle_assets import environment


class LandingZone(dg.ConfigurableResource):
    """The folder the shop's exports land in: <root>/<entity>/date=YYYY-MM-DD/*."""

    root: str

    def day_folder(self, entity: str, day: str) -> Path:
        return Path(self.root) / entity / f"date={day}"


def default_resources() -> dict:
    path = environment.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "duckdb": DuckDBResource(database=str(path)),
        "landing": LandingZone(root=str(environment.landing_dir())),
    }
