"""What Dagster itself costs a one-run backfill of the ingest's shape, with no work in the assets.

    .venv/bin/python benchmarks/dagster_partition_overhead.py [--assets 5] [--days 365]

The ingest is five daily-partitioned assets with a single-run backfill policy: a year loads in one
run, and Dagster records one materialization per asset and landing day (5 x 365 = 1,825 events),
whatever the rows. This benchmark runs assets of that shape that do nothing, in process, on an
ephemeral instance (as the scale benchmark does), so the seconds it prints are the floor Dagster's
bookkeeping puts under every ingest of that range. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import warnings
from datetime import date, timedelta

import dagster as dg

QUIET_RUN = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=5, help="partitioned assets in the run (the ingest has five)")
    parser.add_argument("--days", type=int, default=365, help="landing days in the run's range")
    args = parser.parse_args()

    first = date(2025, 1, 1)
    partitions = dg.DailyPartitionsDefinition(start_date=first.isoformat(), end_date=(first + timedelta(days=args.days)).isoformat())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        assets = [_noop_asset(f"entity_{n}", partitions) for n in range(args.assets)]
    job = dg.Definitions(assets=assets, executor=dg.in_process_executor).resolve_implicit_global_asset_job_def()
    tags = {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": (first + timedelta(days=args.days - 1)).isoformat(),
    }
    started, cpu_started = time.perf_counter(), time.process_time()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, tags=tags, run_config=QUIET_RUN)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    materializations = sum(1 for event in result.all_events if event.event_type_value == "ASSET_MATERIALIZATION")
    print(f"{args.assets} assets x {args.days} landing days in one run: {materializations:,} materializations recorded")
    print(f"seconds {seconds:.1f}  CPU seconds {cpu:.1f}  per materialization {1000 * cpu / max(materializations, 1):.1f} ms CPU")
    print(json.dumps({
        "assets": args.assets,
        "days": args.days,
        "materializations": materializations,
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_materialization": round(1000 * cpu / max(materializations, 1), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


def _noop_asset(name: str, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def entity() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 0})

    return entity


if __name__ == "__main__":
    main()
