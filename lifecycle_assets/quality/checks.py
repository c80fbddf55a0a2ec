"""Blocking quality checks on every ingested landing-day range: bad data must not reach the lifecycle.

Three checks per entity, each over exactly the landing days of the run that ingested them:
- `great_expectations_suite`: the contract as a Great Expectations suite over the stored rows;
- `quarantine_rate`: too many rejected rows means the export is broken, not a few typos;
- `volume_anomaly`: a day far below or above its recent days means a partial or doubled export.
"""


import os
from datetime import date

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.assets import landing_days
from lifecycle_assets.ingest.contract import ENTITIES, Entity

# Entities that arrive every day; the catalogue (products) only lands when it changes.
DAILY_VOLUME_ENTITIES = ("customers", "orders", "order_items", "interactions")
# A whole-day measure: the hourly run (lifecycle_assets/automation.py) leaves it to the daily one.
VOLUME_ANOMALY_CHECK = "volume_anomaly"
SAMPLE_SIZE = 10


class QualityPolicy(dg.ConfigurableResource):
    """Thresholds of the blocking checks; an operator tunes them per shop."""

    max_quarantine_rate: float = 0.05
    # A day is judged on its own only when it delivered at least this many rows.
    min_rows_for_daily_rate: int = 200
    volume_lookback_days: int = 14
    volume_min_ratio: float = 0.1
    volume_max_ratio: float = 10.0
    # Shops too small for a stable median are not judged on volume.
    volume_min_median_rows: int = 50


def _expectations(entity: Entity) -> list:
    import great_expectations.expectations as gxe

    expectations = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in entity.required_columns]
    # Ids are unique within a landing day; a later day's row for the same id is an update.
    expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=[*entity.key, "_landing_date"]))
    for column in entity.columns:
        if column.allowed:
            expectations.append(gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=list(column.allowed)))
        if column.non_negative:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=column.name, min_value=0))
        if column.type == "email":
            expectations.append(gxe.ExpectColumnValuesToMatchRegex(column=column.name, regex=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"))
    return expectations


def _shown(value: object, column: str | None) -> object:
    """A sample value as the UI may show it: JSON-safe, and never a customer's address."""
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return None
    if column == "email" and isinstance(value, str) and "@" in value:
        return "***@" + value.split("@", 1)[1]
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def run_expectation_suite(entity: Entity, rows: pl.DataFrame) -> tuple[bool, list[dict]]:
    """Validate rows with Great Expectations; returns success and one summary per expectation."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network here; never phone home
    import great_expectations as gx  # imported here: ~6 s, paid only when a check runs
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("landing")
        .add_dataframe_asset(name=entity.name)
        .add_batch_definition_whole_dataframe("ingested_days")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=f"{entity.name}_contract", expectations=_expectations(entity)))
    result = batch_definition.get_batch(batch_parameters={"dataframe": rows.to_pandas()}).validate(
        suite, result_format="SUMMARY"
    )
    summaries = []
    for outcome in result.results:
        column = outcome.expectation_config.kwargs.get("column")
        summaries.append(
            {
                "expectation": outcome.expectation_config.type,
                "column": column or ",".join(outcome.expectation_config.kwargs.get("column_list", [])),
                "success": bool(outcome.success),
                "unexpected_count": int(outcome.result.get("unexpected_count") or 0),
                "sample": [_shown(v, column) for v in (outcome.result.get("partial_unexpected_list") or [])[:SAMPLE_SIZE]],
            }
        )
    return bool(result.success), summaries


def _where_to_look(entity: Entity, first: date, last: date) -> str:
    return (
        f"SELECT * FROM quality.quarantined_rows WHERE entity = '{entity.name}' "
        f"AND landing_date BETWEEN '{first}' AND '{last}' ORDER BY landing_date, source_file, row_number"
    )


def build_quality_checks(entity: Entity, asset: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=asset,
        name="great_expectations_suite",
        blocking=True,
        description=f"The {entity.name} contract (required fields, allowed values, non-negative amounts, "
        "ids unique per landing day) as a Great Expectations suite over the ingested days.",
    )
    def great_expectations_suite(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource):
        days = landing_days(context)
        with duckdb.get_connection() as con:
            rows = con.execute(
                f"SELECT {', '.join(entity.column_names)}, _landing_date FROM raw.{entity.name} "
                "WHERE _landing_date BETWEEN ? AND ?",
                [days[0], days[-1]],
            ).pl()
        passed, summaries = run_expectation_suite(entity, rows)
        failed = [s for s in summaries if not s["success"]]
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "rows_validated": rows.height,
                "expectations_evaluated": len(summaries),
                "expectations_failed": len(failed),
                "failed_expectations": dg.MetadataValue.json(failed),
            },
        )

    @dg.asset_check(
        asset=asset,
        name="quarantine_rate",
        blocking=True,
        description=f"Share of {entity.name} rows rejected into quality.quarantined_rows stays under the "
        "policy's threshold, over the run's days and on each day with enough rows.",
    )
    def quarantine_rate(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, quality_policy: QualityPolicy):
        days = landing_days(context)
        with duckdb.get_connection() as con:
            per_day = con.execute(
                f"""
                WITH good AS (SELECT _landing_date AS day, count(*) AS good FROM raw.{entity.name}
                              WHERE _landing_date BETWEEN $first AND $last GROUP BY ALL),
                     bad AS (SELECT landing_date AS day, count(*) AS bad FROM quality.quarantined_rows
                             WHERE entity = $entity AND landing_date BETWEEN $first AND $last GROUP BY ALL)
                SELECT day, coalesce(good, 0) AS good, coalesce(bad, 0) AS bad
                FROM good FULL JOIN bad USING (day) ORDER BY day
                """,
                {"first": days[0], "last": days[-1], "entity": entity.name},
            ).pl()
            sample = con.execute(
                "SELECT landing_date, source_file, row_number, reason FROM quality.quarantined_rows "
                "WHERE entity = ? AND landing_date BETWEEN ? AND ? ORDER BY landing_date, source_file, row_number "
                f"LIMIT {SAMPLE_SIZE}",
                [entity.name, days[0], days[-1]],
            ).pl()
        good, bad = int(per_day["good"].sum()), int(per_day["bad"].sum())
        overall = bad / (good + bad) if good + bad else 0.0
        judged = per_day.filter(pl.col("good") + pl.col("bad") >= quality_policy.min_rows_for_daily_rate)
        bad_days = judged.filter(pl.col("bad") / (pl.col("good") + pl.col("bad")) > quality_policy.max_quarantine_rate)
        passed = overall <= quality_policy.max_quarantine_rate and bad_days.is_empty()
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "quarantine_rate": round(overall, 5),
                "threshold": quality_policy.max_quarantine_rate,
                "rows_quarantined": bad,
                "rows_ingested": good,
                "days_over_threshold": dg.MetadataValue.json(
                    [{"day": str(r["day"]), "good": r["good"], "quarantined": r["bad"]} for r in bad_days.head(SAMPLE_SIZE).to_dicts()]
                ),
                "sample": dg.MetadataValue.json([{k: str(v) for k, v in r.items()} for r in sample.to_dicts()]),
                "find_them": dg.MetadataValue.text(_where_to_look(entity, days[0], days[-1])),
            },
        )

    checks = [great_expectations_suite, quarantine_rate]
    if entity.name not in DAILY_VOLUME_ENTITIES:
        return checks

    @dg.asset_check(
        asset=asset,
        name=VOLUME_ANOMALY_CHECK,
        blocking=True,
        description=f"Each ingested day's {entity.name} volume (kept + quarantined rows) lies within the "
        "policy's band around the median of the days before it.",
    )
    def volume_anomaly(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, quality_policy: QualityPolicy):
        days = landing_days(context)
        lookback = quality_policy.volume_lookback_days
        with duckdb.get_connection() as con:
            volumes = con.execute(
                f"""
                WITH calendar AS (
                    SELECT range::DATE AS day FROM range($first - INTERVAL ({lookback}) DAY, $last + INTERVAL 1 DAY, INTERVAL 1 DAY)),
                delivered AS (
                    SELECT _landing_date AS day, count(*) AS n FROM raw.{entity.name}
                    WHERE _landing_date BETWEEN $first - INTERVAL ({lookback}) DAY AND $last GROUP BY ALL
                    UNION ALL
                    SELECT landing_date, count(*) FROM quality.quarantined_rows
                    WHERE entity = $entity AND landing_date BETWEEN $first - INTERVAL ({lookback}) DAY AND $last GROUP BY ALL),
                per_day AS (
                    SELECT day, coalesce(sum(n), 0)::BIGINT AS delivered FROM calendar LEFT JOIN delivered USING (day) GROUP BY day),
                -- Days before the shop's first delivery are not history: they would drag the median to zero.
                started AS (SELECT * FROM per_day WHERE day >= (SELECT min(day) FROM per_day WHERE delivered > 0))
                SELECT day, delivered,
                       median(delivered) OVER (ORDER BY day ROWS BETWEEN {lookback} PRECEDING AND 1 PRECEDING) AS recent_median,
                       count(*) OVER (ORDER BY day ROWS BETWEEN {lookback} PRECEDING AND 1 PRECEDING) AS recent_days
                FROM started ORDER BY day
                """,
                {"first": days[0], "last": days[-1], "entity": entity.name},
            ).pl()
        judged = volumes.filter(
            (pl.col("day") >= days[0])
            & (pl.col("recent_days") >= lookback // 2)
            & (pl.col("recent_median") >= quality_policy.volume_min_median_rows)
        )
        anomalies = judged.filter(
            (pl.col("delivered") < pl.col("recent_median") * quality_policy.volume_min_ratio)
            | (pl.col("delivered") > pl.col("recent_median") * quality_policy.volume_max_ratio)
        )
        return dg.AssetCheckResult(
            passed=anomalies.is_empty(),
            metadata={
                "days_judged": judged.height,
                "anomalous_days": anomalies.height,
                "band": f"{quality_policy.volume_min_ratio}x - {quality_policy.volume_max_ratio}x of the "
                f"{lookback}-day median",
                "anomalies": dg.MetadataValue.json(
                    [{"day": str(r["day"]), "delivered": r["delivered"], "recent_median": r["recent_median"]}
                     for r in anomalies.head(SAMPLE_SIZE).to_dicts()]
                ),
                "last_day_delivered": int(volumes["delivered"][-1]) if volumes.height else 0,
            },
        )

    return [*checks, volume_anomaly]


def build_all_quality_checks(ingest_assets: list[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    checks = []
    for asset in ingest_assets:
        entity = ENTITIES[asset.key.path[-1]]
        checks += build_quality_checks(entity, asset)
    return checks
