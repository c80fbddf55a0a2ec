"""Ingest assets: one per landing entity, one partition per landing day.

A run reads only the landing days of its partition range, so a daily run costs one day's files
whatever the history. A backfill of hundreds of days is one run over the range
(single-run backfill policy), not one run per day.
"""


import warnings
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.contract import ENTITIES, Entity
from lifecycle_assets.ingest.landing import read_landing_day
from lifecycle_assets.ingest.storage import ensure_tables, known_ids, replace_landing_days
from lifecycle_assets.ingest.validation import validate_rows
from lifecycle_assets.metadata import frame_table
from lifecycle_assets.resources import LandingZone

OWNERS = ["team:data"]


def landing_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def ingest_entity(
    context: dg.AssetExecutionContext, entity: Entity, duckdb: DuckDBResource, landing: LandingZone
) -> dg.MaterializeResult:
    """Read, validate and store the landing days of this run for one entity."""
    days = landing_days(context)
    root = Path(landing.root)
    frames, rejected_files, files_read = [], [], 0
    for day in days:
        landed = read_landing_day(root, entity, day.isoformat())
        files_read += landed.files_read
        frames.append(landed.rows.with_columns(pl.lit(day).alias("_landing_date")))
        rejected_files += [(day, f) for f in landed.rejected_files]
    rows = pl.concat(frames)

    with duckdb.get_connection() as con:
        con.execute("SET TimeZone = 'UTC'")
        ensure_tables(con)
        validated = validate_rows(rows, entity, known_ids(con, entity, rows))
        bad_files = pl.DataFrame(
            {
                "entity": [entity.name] * len(rejected_files),
                "landing_date": [d for d, _ in rejected_files],
                "source_file": [f.source_file for _, f in rejected_files],
                "reason": [f.reason for _, f in rejected_files],
                "sha256": [f.sha256 for _, f in rejected_files],
                "size_bytes": [f.size_bytes for _, f in rejected_files],
            },
            schema={"entity": pl.String, "landing_date": pl.Date, "source_file": pl.String, "reason": pl.String,
                    "sha256": pl.String, "size_bytes": pl.Int64},
        )
        replace_landing_days(
            con, entity, days[0], days[-1], validated.good, validated.quarantined, bad_files, context.run_id
        )

    for _, rejected in rejected_files:
        context.log.warning(f"{entity.name}: file {rejected.source_file} quarantined: {rejected.reason}")
    reasons = (
        validated.quarantined.group_by("reason").len("rows").sort(["rows", "reason"], descending=[True, False])
    )
    if validated.quarantined.height:
        context.log.warning(
            f"{entity.name}: {validated.quarantined.height} rows quarantined "
            f"({', '.join(f'{r}: {n}' for r, n in reasons.iter_rows())}); see quality.quarantined_rows"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": validated.good.height,
            "landing_days": len(days),
            "files_read": files_read,
            "quarantined_rows": validated.quarantined.height,
            "quarantined_files": len(rejected_files),
            "rejected_files": dg.MetadataValue.md(
                frame_table(bad_files.select("landing_date", "source_file", "reason"))
            ),
            "quarantine_reasons": dg.MetadataValue.md(frame_table(reasons)),
            "preview": dg.MetadataValue.md(frame_table(validated.good.head(5))),
        }
    )


def build_ingest_asset(entity: Entity, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=entity.name,
        key_prefix=["raw"],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[dg.AssetKey(["raw", upstream]) for upstream in entity.depends_on],
        group_name="ingest",
        kinds={"duckdb", "polars"},
        owners=OWNERS,
        description=f"{entity.description} Ingested from data/landing/{entity.name}/date=*/, one "
        "partition per landing day; rejected rows and files go to the quality.quarantined_* tables.",
        metadata={"landing_entity": entity.name, "unique_key": ", ".join(entity.key)},
    )
    def ingest(context: dg.AssetExecutionContext, duckdb: DuckDBResource, landing: LandingZone):
        return ingest_entity(context, entity, duckdb, landing)

    return ingest


def build_ingest_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    # The single-run backfill policy is still "beta" in Dagster 1.13; we rely on it knowingly (a long
    # history loads as one run), so its warning would only repeat on every load.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
        return [build_ingest_asset(entity, partitions) for entity in ENTITIES.values()]
