"""Time-travel backtest of the departing flag: rebuild the stages as of a past day from what was known then.

The calibration day C (as an asset: the latest day of the backtest grid on or before as_of, minus
lapse_horizon_days; see models/backtest_inputs.py) gets a catalog of its own (a
DuckDB file attached to the warehouse's connection, kept beside the warehouse as
``<warehouse>.lapse_backtest.duckdb``) whose raw tables are views keeping only the rows that
*landed* on or before C, and the models customer_lifecycle needs (lapse model included) are built
there as of C. The catalog is kept between builds so that its incremental models (staging by key
and by landing day) cost what one more landing day costs when C moves a day; deleting the file is
always safe (the next build rebuilds it whole); interactions are left out, as no stage or lapse score reads them. Every buyer known then is judged on what happened after: lapsed = no purchase day
in (C, C + judge_days]. The project's flag is set side by side with the fixed 90-day rule, the
fixed 180-day rule and the previous rhythm rule (3+ purchase days: 2 x the median gap).

As an asset (`marts.lapse_backtest`) at every build (judged again when the grid's day or what it reads moved,
else the stored figures shown again), and as a command:

    python -m lifecycle_assets.backtest (--landing DIR | --cdnow | --warehouse FILE) --calibrate-to YYYY-MM-DD --judge-days N [--flags-csv FILE]

With ``--warehouse`` it judges a warehouse that already holds the landing days (a copy of the shop's
own: a year need not be ingested again); the file is copied first and never written.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
from dagster_duckdb import DuckDBResource

from lifecycle_assets.sample_data.cdnow import convert_cdnow  # the project's CDNOW converter, imported here only
from lifecycle_assets.metadata import markdown_table
from lifecycle_assets.models.backtest_inputs import (
    FINGERPRINT_COLUMN, inputs_fingerprint, judged_as_of, landed_by, models_read_by, staging_as_known_on,
    stored_fingerprint,
)
from lifecycle_assets.models.settings import RAW_ENTITIES, LifecycleSettings
from lifecycle_assets.models.sql_models import SQL_MODELS_DIR, build_all, load_models

BACKTEST_TABLE = "marts.lapse_backtest"
LIFECYCLE_TABLE = "marts.customer_lifecycle"
# detector -> what it is, as the table shows it
DETECTORS = {
    "project": "the project's flag (stage = departing)",
    "fixed_90_days": "fixed 90-day rule",
    "fixed_180_days": "fixed 180-day rule",
    "rhythm": "previous rhythm rule (3+ purchase days: 2x median gap, else 90 days)",
}
METRICS = ("flagged_share", "balanced_accuracy", "precision", "recall", "auc")
TIME_TRAVEL_MEMORY_LIMIT = "4GB"


@dataclass
class BacktestResult:
    calibrated_to: dt.date
    judge_days: int
    customers_judged: int
    lapse_share: float
    departing_rule: str
    departing_rule_reason: str
    metrics: dict[str, dict[str, float]]
    flags: list[tuple[str, bool, float | None]]

    def markdown(self) -> str:
        header = ["detector of departing", "flagged", "balanced accuracy", "precision", "recall", "AUC of its score"]
        rows = [
            (DETECTORS[name], *(f"{self.metrics[name][metric]:.3f}" for metric in METRICS)) for name in DETECTORS
        ]
        return (
            f"Calibrated to {self.calibrated_to} (rows landed on or before it), judged on no purchase in the next "
            f"{self.judge_days} days: {self.customers_judged} buyers, {self.lapse_share:.1%} did not buy again. "
            f"Departing rule in force then: {self.departing_rule} ({self.departing_rule_reason}).\n\n"
            + markdown_table(header, rows)
        )


def _settings_then(settings: LifecycleSettings, calibration: dt.date, judge_days: int) -> LifecycleSettings:
    values = {name: getattr(settings, name) for name in type(settings).model_fields}
    values.update(as_of=calibration.isoformat(), lapse_horizon_days=judge_days)
    return LifecycleSettings(**values)


# What the backtest reads of the lifecycle built as of the calibration day.
STAGES_THEN = f"""
    select
        customer_id,
        stage = 'departing' as project_flag,
        lapse_score as project_score,
        days_since_last_purchase,
        departing_from - last_purchase_on as rhythm_days,
        departing_rule
    from {LIFECYCLE_TABLE}
    order by customer_id
"""
PAST_CATALOG = "lapse_backtest_then"
KNOWN_SCHEMA = "lapse_backtest_known"  # the orders as known at the judged window's end, while judging
# Raw tables the stages and the lapse model do not read: interactions only reach customer_lifecycle
# through suppression and site activity (customer_facts), which the backtest does not judge. They are
# most of the raw rows, so the past is built with none (tested: the flags equal a build with them).
NOT_READ_BY_THE_STAGES = ("interactions",)


def past_catalog_path(connection) -> Path | None:
    """Where the past is kept: beside the warehouse file; None for a warehouse in memory."""
    path = connection.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]
    return Path(f"{path}.lapse_backtest.duckdb") if path else None


def stages_as_known_then(connection, settings: LifecycleSettings, calibration: dt.date, judge_days: int, catalog: Path):
    """Build the lifecycle as of the calibration day from the raw rows landed by then; its rows and rule reason.

    The models are built in a catalog of their own (the DuckDB file ``catalog``, attached to the same
    connection) over views of the warehouse's raw tables that keep the rows landed on or before the
    calibration day: nothing is copied, and only the models customer_lifecycle needs are built. A
    catalog kept from an earlier build is built on: its incremental models redo only what the moved
    calibration day or a re-ingested day changed.
    """
    warehouse = connection.execute("select current_database()").fetchone()[0]
    existing = {
        row[0]
        for row in connection.execute(
            "select table_name from information_schema.tables "
            "where table_schema = 'raw' and table_catalog = current_database()"
        ).fetchall()
    }
    connection.execute(f"attach '{catalog}' as {PAST_CATALOG}")
    try:
        connection.execute(f"use {PAST_CATALOG}")
        connection.execute("create schema if not exists raw")
        for entity in RAW_ENTITIES:
            if entity not in existing:
                connection.execute(f"drop view if exists raw.{entity}")
                continue
            landed_by_then = "false" if entity in NOT_READ_BY_THE_STAGES else f"_landing_date <= date '{calibration.isoformat()}'"
            connection.execute(f'create or replace view raw.{entity} as select * from "{warehouse}".raw.{entity} where {landed_by_then}')
        build_all(connection, _settings_then(settings, calibration, judge_days), models_read_by((LIFECYCLE_TABLE,)))
        rows = connection.execute(STAGES_THEN).fetchall()
        reason = connection.execute("select any_value(departing_rule_reason) from marts.customer_lapse_scores").fetchone()[0]
    finally:
        connection.execute(f'use "{warehouse}"')
        connection.execute(f"detach {PAST_CATALOG}")
    return rows, reason


class NotEnoughHistory(ValueError):
    """The shop has no buyer on the calibration day yet: there is nothing to judge the flag on."""


def run_backtest(connection, settings: LifecycleSettings, calibration: dt.date, judge_days: int) -> BacktestResult:
    """Judge the flags built as of the calibration day against the purchases after it, as known at the window's end."""
    from sklearn.metrics import balanced_accuracy_score, precision_score, recall_score, roc_auc_score

    judged_until = calibration + dt.timedelta(days=judge_days)
    kept = past_catalog_path(connection)
    with tempfile.TemporaryDirectory(prefix="lapse_backtest_") as workdir:
        catalog = kept or Path(workdir) / "as_known_then.duckdb"
        rows, reason = stages_as_known_then(connection, settings, calibration, judge_days, catalog)
    # Judged on the orders as the build of the window's last day knew them: a refund landed later changes nothing.
    try:
        staging_as_known_on(connection, KNOWN_SCHEMA, judged_until, settings, ("staging.stg_orders",))
        bought = {
            row[0]
            for row in connection.execute(
                f"select distinct customer_id from {KNOWN_SCHEMA}.stg_orders "
                "where is_purchase and ordered_on > $calibration and ordered_on <= $until",
                {"calibration": calibration, "until": judged_until},
            ).fetchall()
        }
    finally:
        connection.execute(f"drop schema if exists {KNOWN_SCHEMA} cascade")
    buyers = [row for row in rows if row[3] is not None]
    if not buyers:
        raise NotEnoughHistory(f"no buyer known on {calibration}: nothing to backtest yet")
    lapsed = np.array([row[0] not in bought for row in buyers])
    days_since = np.array([row[3] for row in buyers], dtype=float)
    rhythm_days = np.array([row[4] for row in buyers], dtype=float)
    detectors = {
        "project": (np.array([row[1] for row in buyers]), np.array([row[2] for row in buyers], dtype=float)),
        "fixed_90_days": (days_since >= 90, days_since),
        "fixed_180_days": (days_since >= 180, days_since),
        "rhythm": (days_since >= rhythm_days, days_since / rhythm_days),
    }
    single_outcome = len(set(lapsed.tolist())) < 2
    metrics = {}
    for name, (flag, score) in detectors.items():
        metrics[name] = {
            "flagged_share": float(flag.mean()),
            "balanced_accuracy": float("nan") if single_outcome else float(balanced_accuracy_score(lapsed, flag)),
            "precision": float(precision_score(lapsed, flag, zero_division=0.0)),
            "recall": float(recall_score(lapsed, flag, zero_division=0.0)),
            "auc": float("nan") if single_outcome else float(roc_auc_score(lapsed, score)),
        }
    rules = sorted({row[5] for row in buyers if row[5]})
    return BacktestResult(
        calibrated_to=calibration,
        judge_days=judge_days,
        customers_judged=len(buyers),
        lapse_share=float(lapsed.mean()),
        departing_rule=", ".join(rules),
        departing_rule_reason=reason or "",
        metrics=metrics,
        flags=[(row[0], bool(row[1]), None if row[2] is None else float(row[2])) for row in rows],
    )


def write_backtest(connection, result: BacktestResult | None, fingerprint: str | None = None) -> None:
    """The backtest table, with the fingerprint of what it read (backtest_inputs); empty when there was nothing to judge yet."""
    connection.execute("create schema if not exists marts")
    connection.execute(
        f"""
        create or replace table {BACKTEST_TABLE} (
            detector varchar, flagged_share double, balanced_accuracy double, precision double, recall double,
            auc double, calibrated_to date, judge_days integer, customers_judged integer, lapse_share double,
            departing_rule varchar, departing_rule_reason varchar, judged_at timestamp, {FINGERPRINT_COLUMN} varchar
        )
        """
    )
    if result is None:
        return
    judged_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # one time for every row (each insert has its own)
    connection.executemany(
        f"insert into {BACKTEST_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                name,
                *(result.metrics[name][metric] for metric in METRICS),
                result.calibrated_to,
                result.judge_days,
                result.customers_judged,
                result.lapse_share,
                result.departing_rule,
                result.departing_rule_reason,
                judged_at,
                fingerprint,
            )
            for name in DETECTORS
        ],
    )


def stored_backtest(connection) -> tuple[BacktestResult, dt.datetime]:
    """The figures in the backtest table as a result (without the per-customer flags), and when they were judged."""
    rows = connection.execute(
        f"select detector, {', '.join(METRICS)}, calibrated_to, judge_days, customers_judged, lapse_share, departing_rule, "
        f"departing_rule_reason, judged_at from {BACKTEST_TABLE}"
    ).fetchall()
    first = rows[0]
    metrics = {row[0]: {metric: (float("nan") if value is None else value) for metric, value in zip(METRICS, row[1:6])} for row in rows}
    result = BacktestResult(
        calibrated_to=first[6], judge_days=first[7], customers_judged=first[8], lapse_share=first[9],
        departing_rule=first[10], departing_rule_reason=first[11], metrics=metrics, flags=[],
    )
    return result, first[12]


def backtest_fingerprint(connection, settings: LifecycleSettings, calibration: dt.date, judge_days: int,
                         root: Path = SQL_MODELS_DIR) -> str:
    """What the backtest reads: the models customer_lifecycle is built from, and the raw rows landed by the end of the
    judged window (the past is built from those landed by the calibration day, the purchases judged are known from
    those landed by the window's end)."""
    judged_until = calibration + dt.timedelta(days=judge_days)
    read = tuple(entity for entity in RAW_ENTITIES if entity not in NOT_READ_BY_THE_STAGES)
    return inputs_fingerprint(connection, settings, calibration, landed_by(connection, judged_until, read),
                              models_read_by((LIFECYCLE_TABLE,), root))


def write_flags_csv(result: BacktestResult, path: Path) -> None:
    """One row per customer known on the calibration day: customer_id, departing, score (higher = more likely to lapse)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "departing", "score"])
        for customer_id, departing, score in result.flags:
            writer.writerow([customer_id, "true" if departing else "false", "" if score is None else f"{score:.6f}"])


@dg.asset(
    key=BACKTEST_TABLE.split("."),
    deps=[*(dg.AssetKey(["raw", entity]) for entity in RAW_ENTITIES), dg.AssetKey(["staging", "stg_orders"])],
    group_name="lifecycle",
    kinds={"duckdb", "python"},
    owners=["team:data"],
    description="Time-travel backtest of the departing flag: the stages rebuilt as of the backtest grid's day "
    "(backtest_every_days) minus lapse_horizon_days from rows landed by then, judged on who did not buy in the lapse_horizon_days after; the project's flag side "
    "by side with the fixed 90-day, fixed 180-day and previous rhythm rules.",
)
def lapse_backtest(duckdb: DuckDBResource, lifecycle_settings: LifecycleSettings) -> dg.MaterializeResult:
    judge_days = lifecycle_settings.lapse_horizon_days
    with duckdb.get_connection() as connection:
        as_of = lifecycle_settings.resolve_as_of(connection)
        calibration = judged_as_of(as_of, lifecycle_settings.backtest_every_days) - dt.timedelta(days=judge_days)
        fingerprint = backtest_fingerprint(connection, lifecycle_settings, calibration, judge_days)
        judged_again = fingerprint != stored_fingerprint(connection, BACKTEST_TABLE)
        if judged_again:
            try:
                result = run_backtest(connection, lifecycle_settings, calibration, judge_days)
            except NotEnoughHistory as young_shop:
                # A young shop is not an error: the build goes on and the asset says why there is no figure yet.
                write_backtest(connection, None)
                return dg.MaterializeResult(metadata={"not_enough_history": dg.MetadataValue.text(str(young_shop))})
            write_backtest(connection, result, fingerprint)
        result, judged_at = stored_backtest(connection)
    metadata: dict[str, object] = {
        "backtest": dg.MetadataValue.md(result.markdown()),
        "calibrated_to": dg.MetadataValue.text(result.calibrated_to.isoformat()),
        "judged_this_build": dg.MetadataValue.bool(judged_again),
        "judged_at": dg.MetadataValue.text(judged_at.isoformat(timespec="seconds")),
        "judge_days": dg.MetadataValue.int(result.judge_days),
        "customers_judged": dg.MetadataValue.int(result.customers_judged),
        "lapse_share": dg.MetadataValue.float(result.lapse_share),
        "departing_rule": dg.MetadataValue.text(result.departing_rule),
        "departing_rule_reason": dg.MetadataValue.text(result.departing_rule_reason),
    }
    for name in DETECTORS:
        for metric in METRICS:
            value = result.metrics[name][metric]
            if value == value:  # NaN (one outcome only) is left out rather than plotted
                metadata[f"{name}/{metric}"] = dg.MetadataValue.float(round(value, 4))
    return dg.MaterializeResult(metadata=metadata)


# --- the command -----------------------------------------------------------------------------------

LANDING_DAY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def landing_days(landing: Path) -> list[str]:
    days = sorted({match.group(1) for path in landing.glob("*/*") if (match := LANDING_DAY.match(path.name))})
    if not days:
        raise ValueError(f"{landing}: no landing day folders (<entity>/date=YYYY-MM-DD)")
    return days


def ingest_landing(landing: Path, warehouse: Path) -> None:
    """Land every day of the folder into raw.* with the project's ingest assets and checks, in one run."""
    from lifecycle_assets.ingest.definitions import daily_landing_partitions, ingest_definitions
    from lifecycle_assets.quality.checks import QualityPolicy
    from lifecycle_assets.quality.definitions import quality_definitions
    from lifecycle_assets.resources import LandingZone

    days = landing_days(landing)
    raw = ingest_definitions(daily_landing_partitions(days[0]))
    dg.materialize(
        [*raw.assets, *quality_definitions().asset_checks],
        resources={
            "duckdb": DuckDBResource(database=str(warehouse)),
            "landing": LandingZone(root=str(landing)),
            # A replayed history is one run: a day-over-day volume floor means nothing there.
            "quality_policy": QualityPolicy(volume_min_ratio=0.0),
        },
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )


def backtest_landing(landing: Path, calibration: dt.date, judge_days: int, workdir: Path) -> BacktestResult:
    warehouse = workdir / "warehouse.duckdb"
    ingest_landing(landing, warehouse)
    return backtest_warehouse(warehouse, calibration, judge_days, landing)


def backtest_warehouse(warehouse: Path, calibration: dt.date, judge_days: int, source: Path) -> BacktestResult:
    """Judge the flag on a warehouse whose raw.* tables hold the landing days (staging is built in it)."""
    with duckdb.connect(str(warehouse), config={"memory_limit": TIME_TRAVEL_MEMORY_LIMIT}) as connection:
        settings = LifecycleSettings()
        latest = settings.resolve_as_of(connection)
        if calibration + dt.timedelta(days=judge_days) > latest:
            raise ValueError(
                f"{source}: the last landing day is {latest}; judging {judge_days} days after {calibration} needs "
                f"data until {calibration + dt.timedelta(days=judge_days)}"
            )
        staging = [model for model in load_models() if model.table == "staging.stg_orders"]
        build_all(connection, settings, staging)
        return run_backtest(connection, settings, calibration, judge_days)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lifecycle_assets.backtest", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--landing", type=Path, help="a landing zone folder (<entity>/date=YYYY-MM-DD/...)")
    source.add_argument("--cdnow", action="store_true", help="the CDNOW purchase log, landed into a temporary folder")
    source.add_argument("--warehouse", type=Path,
                        help="a warehouse that already holds the landing days in raw.* (while no run writes to it); "
                        "judged on a copy, never written")
    parser.add_argument("--calibrate-to", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--judge-days", required=True, type=int, help="lapsed = no purchase in this many days after")
    parser.add_argument("--flags-csv", type=Path, help="write customer_id, departing, score per customer known then")
    arguments = parser.parse_args(argv)
    if arguments.judge_days < 1:
        parser.error("--judge-days must be at least 1")
    with tempfile.TemporaryDirectory(prefix="lapse_backtest_cli_") as workdir:
        if arguments.warehouse:
            if not arguments.warehouse.is_file():
                parser.error(f"--warehouse {arguments.warehouse}: no such file")
            copy = Path(workdir) / "warehouse.duckdb"
            shutil.copyfile(arguments.warehouse, copy)
            journal = arguments.warehouse.with_name(arguments.warehouse.name + ".wal")  # changes not yet checkpointed
            if journal.is_file():
                shutil.copyfile(journal, copy.with_name(copy.name + ".wal"))
            result = backtest_warehouse(copy, arguments.calibrate_to, arguments.judge_days, arguments.warehouse)
        else:
            landing = arguments.landing
            if arguments.cdnow:
                landing = Path(workdir) / "landing"
                convert_cdnow(landing)
            elif not landing.is_dir():
                parser.error(f"--landing {landing}: no such folder")
            result = backtest_landing(landing, arguments.calibrate_to, arguments.judge_days, Path(workdir))
    print(result.markdown())
    if arguments.flags_csv:
        write_flags_csv(result, arguments.flags_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
