"""Time and peak memory of fitting and scoring the lapse model (BG/NBD + logistic regression) on N buyers.

    .venv/bin/python benchmarks/lapse_benchmark.py --buyers 1000000 [--days 540]

Builds intermediate.purchase_days (the only table the lapse model reads) for N synthetic buyers in
an in-memory DuckDB (each with their own first day, purchase gap and number of purchase days),
then times write_lapse_scores: reading the buyers as of the day and as of the past split, both
BG/NBD fits, the classifier, scoring every buyer and writing marts.customer_lapse_scores. The
budget (issue 11) is 30 s for 1M buyers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time

import duckdb

from lifecycle_assets.models.lapse import LAPSE_SCORES_TABLE, outcome_metadata, write_lapse_scores
from lifecycle_assets.models.settings import LifecycleSettings

FIRST_DAY = dt.date(2025, 1, 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_purchase_days(connection, buyers: int, days: int, seed: float) -> int:
    connection.execute("select setseed(?)", [seed])
    connection.execute("create schema intermediate")
    connection.execute(
        """
        create temporary table buyers as
        select
            'c' || lpad(number::varchar, 8, '0') as customer_id,
            floor(random() * $days)::integer as first_day,
            [7, 14, 30, 60, 120][1 + floor(random() * 5)::integer] as gap,
            1 + floor(-ln(1 - random()) * 3)::integer as purchases
        from range($buyers) as numbers(number)
        """,
        {"buyers": buyers, "days": days},
    )
    connection.execute(
        """
        create table intermediate.purchase_days as
        with purchases as (
            select
                customer_id,
                $first::date + first_day + (step * gap * (0.5 + random()))::integer as purchase_on,
                10 + random() * 90 as amount
            from buyers, range(purchases) as steps(step)
        )
        select customer_id, purchase_on, count(*) as orders_that_day, sum(amount) as amount_that_day
        from purchases
        where purchase_on <= $first::date + $days
        group by all
        """,
        {"days": days, "first": FIRST_DAY},
    )
    return connection.execute("select count(*) from intermediate.purchase_days").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=540)
    parser.add_argument("--seed", type=float, default=0.42)
    args = parser.parse_args()

    connection = duckdb.connect(config={"memory_limit": "4GB"})
    purchase_days = synthetic_purchase_days(connection, args.buyers, args.days, args.seed)
    as_of = FIRST_DAY + dt.timedelta(days=args.days)
    started = time.perf_counter()
    import sklearn.linear_model  # noqa: F401  (a process imports it once; timed apart from the fit)

    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    outcome = write_lapse_scores(connection, LifecycleSettings(), as_of)
    seconds = time.perf_counter() - started
    scored = connection.execute(f"select count(*) from {LAPSE_SCORES_TABLE}").fetchone()[0]
    departing = connection.execute(f"select count(*) filter (where is_departing) from {LAPSE_SCORES_TABLE}").fetchone()[0]
    figures = {
        "buyers": scored,
        "purchase_days": purchase_days,
        "seconds_fit_and_score": round(seconds, 2),
        "seconds_import_sklearn": round(import_seconds, 2),
        "within_30_s_budget": seconds <= 30,
        "departing": departing,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **{
            name: getattr(value, "value", value)
            for name, value in outcome_metadata(outcome).items()
            if name in ("departing_rule", "lapse_threshold", "training_buyers", "training_auc")
        },
    }
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
