"""Time to build the whole lifecycle model on a generated sample shop (not a test: timings only).

    .venv/bin/python -m lifecycle_assets_tests.test_models.benchmark_models --customers 100000
    .venv/bin/python -m lifecycle_assets_tests.test_models.benchmark_models --cdnow

Generates the shop, ingests every landing day with the real ingest assets, then builds every SQL
model in dependency order (plain DuckDB, the same SQL the assets run) and prints seconds per model,
the stage / recency / RFM counts and the report's figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from lifecycle_assets.sample_data.cdnow import convert_cdnow
from lifecycle_assets.sample_data.sample_shop import generate_sample_shop
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.quality.checks import QualityPolicy
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.ingest_harness import run_ingest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--end-day", default="2026-11-21")
    parser.add_argument("--keep", help="folder to keep the landing zone and warehouse in")
    parser.add_argument("--cdnow", action="store_true", help="the real CDNOW purchase log instead of a sample shop")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(args.keep or temporary)
        started = time.perf_counter()
        if args.cdnow:
            shop = convert_cdnow(root / "landing")
        else:
            shop = generate_sample_shop(root / "landing", args.customers, args.days, args.end_day, seed=7)
        print(f"generate: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        # CDNOW is one cohort: registrations stop after March 1997, which the volume check rightly flags.
        policy = QualityPolicy(volume_min_ratio=0.0) if args.cdnow else None
        run = run_ingest(root / "landing", root / "warehouse.duckdb", shop["first_day"], shop["last_day"], policy=policy)
        print(f"ingest: {time.perf_counter() - started:.1f} s, success={run.result.success}")

        with duckdb.connect(str(root / "warehouse.duckdb")) as connection:
            total = last = time.perf_counter()

            def report(model, outcome) -> None:
                nonlocal last
                now = time.perf_counter()
                print(f"  {model.table:36s} {now - last:6.2f} s {outcome['row_count']:>10,} rows")
                last = now

            as_of = build_all(connection, LifecycleSettings(), on_model=report)
            print(f"models total (as of {as_of}): {time.perf_counter() - total:.1f} s")
            for column in ("stage", "recency_segment", "rfm_segment"):
                counts = connection.execute(
                    f"select {column}, count(*) from marts.customer_lifecycle group by 1 order by 2 desc"
                ).fetchall()
                print(f"{column}: {counts}")
            print("letters:", connection.execute(
                "select template_name, count(*) from marts.letters_planned group by 1 order by 2 desc"
            ).fetchall())
            for section, metric, value, brief in connection.execute(
                "select section, metric, value, brief_value from marts.lifecycle_report"
            ).fetchall():
                print(f"  {section:7s} {metric:42s} {value!s:>10} brief {brief}")


if __name__ == "__main__":
    main()
