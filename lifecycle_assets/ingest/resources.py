"""The ingest domain's resource: where the shop's exports land, and how much memory reading them may take."""

from __future__ import annotations

import dagster as dg
from pydantic import Field


class LandingZone(dg.ConfigurableResource):
    """The folder the shop's exports land in: <root>/<entity>/date=YYYY-MM-DD/*."""

    root: str
    memory_limit: str = Field(
        default="2GB",
        description="DuckDB memory_limit while ingesting; beyond it DuckDB spills to temp_directory.",
    )
    slice_megabytes: int = Field(
        default=256,
        description="A long range of landing days is read and checked this many MB of landing files at a time "
        "(whole days, one transaction per run): DuckDB holds one slice's rows, not the range's.",
    )
    temp_directory: str = Field(
        default="",
        description="Where DuckDB spills; empty: DuckDB's default (<warehouse>.tmp beside the warehouse).",
    )
