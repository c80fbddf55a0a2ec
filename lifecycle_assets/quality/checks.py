"""Blocking quality checks on every ingested landing-day range: bad data must not reach the lifecycle.

Three checks per daily entity (products get the quarantine rate only), each over exactly the
landing days of the run that ingested them:
- `great_expectations_suite`: each landing day as a whole against its recent past (the day
  profile, `day_profile.py`): Great Expectations judges one row of aggregates per day, so its cost
  does not grow with the day's rows;
- `quarantine_rate`: too many rejected rows means the export is broken, not a few typos;
- `volume_anomaly`: a day far below or above its recent days means a partial or doubled export.

The checks attach to the ingest assets by key: quality reads what ingest stored (``raw.*``,
``quality.quarantined_*``) and the contract, never ingest's code.
"""


import os
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.contract import ENTITIES, Entity
from lifecycle_assets.quality.day_profile import measures, per_day_vs_recent_sql

# Entities that arrive every day; the catalogue (products) only lands when it changes.
DAILY_VOLUME_ENTITIES = ("customers", "orders", "order_items", "interactions")
# A whole-day measure: the hourly run (lifecycle_assets/automation.py) leaves it to the daily one.
VOLUME_ANOMALY_CHECK = "volume_anomaly"
DAY_PROFILE_CHECK = "great_expectations_suite"
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
    # Day profile: each measure within this factor of its median over the previous days; days with
    # fewer rows are neither judged nor part of another day's history (too noisy).
    profile_lookback_days: int = 14
    profile_max_ratio: float = 3.0
    profile_min_rows: int = 200


def landing_days(context: dg.AssetCheckExecutionContext) -> list[date]:
    """The landing days of the run (its partition range)."""
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + timedelta(days=i) for i in range((end - first).days)]


def judge_day_profiles(entity: Entity, per_day: pl.DataFrame, max_ratio: float) -> tuple[bool, list[dict]]:
    """Great Expectations over the day profiles: every ``<measure>_vs_recent`` within the band.

    Returns success and, per measure, the expectation's outcome with the days outside the band.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no network here; never phone home
    import great_expectations as gx  # imported here: ~6 s, paid only when a day is judged
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("day_profiles")
        .add_dataframe_asset(name=entity.name)
        .add_batch_definition_whole_dataframe("judged_days")
    )
    expectations = [
        gxe.ExpectColumnValuesToBeBetween(column=f"{m.name}_vs_recent", min_value=1 / max_ratio, max_value=max_ratio)
        for m in measures(entity)
    ]
    suite = context.suites.add(gx.ExpectationSuite(name=f"{entity.name}_day_profile", expectations=expectations))
    frame = per_day.with_columns(pl.col("day").cast(pl.String)).to_pandas()
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["day"]}
    )
    by_day = {row["day"]: row for row in per_day.with_columns(pl.col("day").cast(pl.String)).to_dicts()}
    outcomes = []
    for outcome in result.results:
        measure = outcome.expectation_config.kwargs["column"].removesuffix("_vs_recent")
        days = [entry["day"] for entry in (outcome.result.get("unexpected_index_list") or [])]
        outcomes.append(
            {
                "measure": measure,
                "success": bool(outcome.success),
                "days_outside": len(days),
                "sample": [
                    {"day": day, "value": by_day[day][measure], "recent_median": by_day[day][f"{measure}_recent"]}
                    for day in days[:SAMPLE_SIZE]
                ],
            }
        )
    return bool(result.success), outcomes


def _where_to_look(entity: Entity, first: date, last: date) -> str:
    return (
        f"SELECT * FROM quality.quarantined_rows WHERE entity = '{entity.name}' "
        f"AND landing_date BETWEEN '{first}' AND '{last}' ORDER BY landing_date, source_file, row_number"
    )


def build_quality_checks(entity: Entity) -> list[dg.AssetChecksDefinition]:
    asset = dg.AssetKey(["raw", entity.name])

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

    if entity.name not in DAILY_VOLUME_ENTITIES:
        return [quarantine_rate]

    @dg.asset_check(
        asset=asset,
        name=DAY_PROFILE_CHECK,
        blocking=True,
        description=f"Each ingested day's {entity.name} as a whole (amount mean and quantiles, share of each "
        "status / event type, consent share, empty optional fields) stays within the policy's factor of its "
        "median over the previous days; Great Expectations judges one row of aggregates per day.",
    )
    def great_expectations_suite(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, quality_policy: QualityPolicy):
        days = landing_days(context)
        with duckdb.get_connection() as con:
            per_day = con.execute(
                per_day_vs_recent_sql(entity, quality_policy.profile_lookback_days),
                {"first": days[0], "last": days[-1], "min_rows": quality_policy.profile_min_rows,
                 "today": datetime.now(timezone.utc).date()},
            ).pl()
        # No day with enough rows and history: nothing to judge (and no 6 s import of Great Expectations).
        passed, outcomes = judge_day_profiles(entity, per_day, quality_policy.profile_max_ratio) if per_day.height else (True, [])
        failed = [o for o in outcomes if not o["success"]]
        return dg.AssetCheckResult(
            passed=passed,
            metadata={
                "days_judged": per_day.height,
                "days_in_run": len(days),
                "measures": len(measures(entity)),
                "band": f"{1 / quality_policy.profile_max_ratio:.2f}x - {quality_policy.profile_max_ratio}x of the "
                f"{quality_policy.profile_lookback_days}-day median",
                "measures_failed": len(failed),
                "failed_measures": dg.MetadataValue.json(failed),
            },
        )

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

    return [great_expectations_suite, quarantine_rate, volume_anomaly]


def build_all_quality_checks() -> list[dg.AssetChecksDefinition]:
    return [check for entity in ENTITIES.values() for check in build_quality_checks(entity)]
