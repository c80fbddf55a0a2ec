"""Time and peak memory to generate, ingest and validate a sample shop (issue 2's measurement).

    .venv/bin/python benchmarks/ingest_benchmark.py --customers 100000 [--dirty]

Generates the shop into a temporary folder, then ingests every landing day in one run with all
blocking checks, and prints seconds per phase, peak RSS and the quarantine counts by reason.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from lifecycle_assets.sample_data.sample_shop import generate_sample_shop
from lifecycle_assets_tests.ingest_harness import run_ingest


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end-day", default="2026-11-21")
    parser.add_argument("--dirty", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        shop = generate_sample_shop(root / "landing", args.customers, args.days, args.end_day, seed=7, dirty=args.dirty)
        generated = time.perf_counter()
        print(f"generate: {generated - started:.1f} s, rows {shop['rows']}, peak RSS {peak_rss_mb():.0f} MB")
        run = run_ingest(root / "landing", root / "warehouse.duckdb", shop["first_day"], shop["last_day"])
        ingested = time.perf_counter()
        print(f"ingest + validate ({args.days} landing days, one run): {ingested - generated:.1f} s, "
              f"success={run.result.success}, peak RSS {peak_rss_mb():.0f} MB")
        for step in run.result.all_events:
            if step.event_type_value == "STEP_SUCCESS":
                print(f"  {step.step_key:55s} {step.event_specific_data.duration_ms / 1000:6.1f} s")
        # The daily run on top of a year of history: its cost follows one day's files.
        daily_started = time.perf_counter()
        daily = run_ingest(root / "landing", root / "warehouse.duckdb", shop["last_day"])
        print(f"daily run (re-ingest {shop['last_day']} over {args.days} days of history): "
              f"{time.perf_counter() - daily_started:.1f} s, success={daily.result.success}")
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            print("quarantined rows by entity and reason:")
            for row in con.execute("SELECT entity, reason, count(*) FROM quality.quarantined_rows GROUP BY ALL ORDER BY 1, 3 DESC").fetchall():
                print(f"  {row[0]:13s} {row[1]:40s} {row[2]:>8,}")
            print("quarantined files:")
            for row in con.execute("SELECT entity, source_file, reason FROM quality.quarantined_files ORDER BY ALL").fetchall():
                print(f"  {row[0]:13s} {row[1]:55s} {row[2]}")
        print(f"total: {time.perf_counter() - started:.1f} s, peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
