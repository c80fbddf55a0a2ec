"""Ingest assets: one per landing entity, one partition per landing day.

A run reads only the landing days of its partition range, so a daily run costs one day's files
whatever the history; DuckDB reads, validates and stores them (`pipeline.py`). A backfill of hundreds of days is one run over the range
(single-run backfill policy), not one run per day.
"""


import warnings
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.contract import ENTITIES, Entity
from lifecycle_assets.ingest.pipeline import configure, ingest_days
from lifecycle_assets.ingest.resources import LandingZone
from lifecycle_assets.metadata import frame_table

OWNERS = ["team:data"]
# Fails when a landing file of the run was not ingested: a whole file lost must stop what follows.
LANDING_FILES_CHECK = "all_landing_files_ingested"
# Recorded but not judged: names starting with "." or "_" are the OS's or an exporter's (.DS_Store,
# _SUCCESS); an operator may also park a rejected file under such a name to let the day go on.
NOT_JUDGED_REASONS = ("hidden_file",)
SAMPLE_FILES = 20


def landing_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def ingest_entity(
    context: dg.AssetExecutionContext, entity: Entity, duckdb: DuckDBResource, landing: LandingZone
) -> dg.MaterializeResult:
    """Read, validate and store the landing days of this run for one entity."""
    days = landing_days(context)
    with duckdb.get_connection() as con:
        configure(con, landing.memory_limit, landing.temp_directory or None)
        outcome = ingest_days(con, Path(landing.root), entity, days, context.run.run_id, landing.slice_megabytes * 2**20)

    # Reasons name the file and the line, never a row's content.
    for rejected in outcome.rejected_files:
        context.log.warning(f"{entity.name}: file {rejected.source_file} not ingested: {rejected.reason}")
    if outcome.rows_quarantined:
        context.log.warning(
            f"{entity.name}: {outcome.rows_quarantined} rows quarantined "
            f"({', '.join(f'{r}: {n}' for r, n in outcome.reasons.iter_rows())}); see quality.quarantined_rows"
        )
    bad_files = outcome.rejected_frame(entity.name)
    lost = bad_files.filter(~pl.col("reason").is_in(NOT_JUDGED_REASONS))
    landing_files_check = dg.AssetCheckResult(
        check_name=LANDING_FILES_CHECK,
        passed=lost.is_empty(),
        metadata={
            "files_not_ingested": lost.height,
            "files_recorded_not_judged": bad_files.height - lost.height,
            "files": dg.MetadataValue.md(frame_table(lost.head(SAMPLE_FILES).select("landing_date", "source_file", "reason"))),
            "find_them": dg.MetadataValue.text(
                f"SELECT * FROM quality.quarantined_files WHERE entity = '{entity.name}' "
                f"AND (landing_date BETWEEN '{days[0]}' AND '{days[-1]}' OR landing_date IS NULL)"
            ),
        },
    )
    return dg.MaterializeResult(
        check_results=[landing_files_check],
        metadata={
            "dagster/row_count": outcome.rows_stored,
            "landing_days": len(days),
            "files_read": outcome.files_read,
            "quarantined_rows": outcome.rows_quarantined,
            "quarantined_files": len(outcome.rejected_files),
            "rejected_files": dg.MetadataValue.md(
                frame_table(bad_files.select("landing_date", "source_file", "reason"))
            ),
            "quarantine_reasons": dg.MetadataValue.md(frame_table(outcome.reasons)),
            "preview": dg.MetadataValue.md(frame_table(outcome.preview)),
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
        kinds={"duckdb"},
        owners=OWNERS,
        description=f"{entity.description} Ingested from data/landing/{entity.name}/date=*/, one "
        "partition per landing day; rejected rows and files go to the quality.quarantined_* tables.",
        metadata={"landing_entity": entity.name, "unique_key": ", ".join(entity.key)},
        check_specs=[
            dg.AssetCheckSpec(
                LANDING_FILES_CHECK,
                asset=dg.AssetKey(["raw", entity.name]),
                blocking=True,
                description=f"Every entry of the run's {entity.name} landing days was ingested: a file rejected "
                "as a whole (unreadable, not UTF-8, missing columns, empty), an unsupported or nested one, a "
                "bad folder name or a symlink out of the landing zone fails it; hidden files are only recorded.",
            )
        ],
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
