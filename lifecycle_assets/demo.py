"""`make demo`: the whole product end to end on an embedded sample shop.

Generates a deterministic sample shop into the landing zone, ingests every landing day in one
run, builds the lifecycle model, then runs the SendGrid push (dry-run into the outbox unless
SENDGRID_API_KEY is set). Runs are recorded in $DAGSTER_HOME, so they show in the UI afterwards.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

import dagster as dg
import duckdb

from lifecycle_assets import environment
from lifecycle_assets.definitions import build_definitions
from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

PIPELINE_GROUPS = ("ingest", "quality", "lifecycle")


def _run_pipeline(defs: dg.Definitions, instance: dg.DagsterInstance, first_day: str, last_day: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*defs.assets, *(defs.asset_checks or [])],
        selection=dg.AssetSelection.groups(*PIPELINE_GROUPS),
        instance=instance,
        resources=defs.resources,
        tags={
            "dagster/asset_partition_range_start": first_day,
            "dagster/asset_partition_range_end": last_day,
            "lifecycle/started_by": "make demo",
        },
        raise_on_error=False,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    end_day = date.today() - timedelta(days=1)
    shop = generate_sample_shop(environment.landing_dir(), customers=args.customers, days=args.days, end_day=end_day, seed=args.seed)
    print(f"sample shop: {shop['rows']} over {shop['first_day']}..{shop['last_day']} in {environment.landing_dir()}")

    defs = build_definitions(first_landing_day=min(shop["first_day"], environment.first_landing_day()))
    instance = dg.DagsterInstance.get()
    pipeline = _run_pipeline(defs, instance, shop["first_day"], shop["last_day"])
    print(f"ingest + lifecycle run {pipeline.run_id}: {'succeeded' if pipeline.success else 'FAILED'}")
    if not pipeline.success:
        raise SystemExit("The pipeline run failed; open the run in the UI (make ui) to see which step or check.")

    push = defs.get_job_def("push_to_sendgrid").execute_in_process(instance=instance, raise_on_error=False)
    print(f"push_to_sendgrid run {push.run_id}: {'succeeded' if push.success else 'FAILED'}")

    with duckdb.connect(str(environment.warehouse_path()), read_only=True) as con:
        stages = con.execute("SELECT stage, count(*) FROM marts.customer_lifecycle GROUP BY 1 ORDER BY 2 DESC").fetchall()
        letters = con.execute("SELECT count(*) FROM marts.letters_planned").fetchone()[0]
    print("customers per stage: " + ", ".join(f"{stage} {count}" for stage, count in stages))
    print(f"letters planned: {letters}; outbox: {environment.outbox_dir()}")
    print(f"done in {time.perf_counter() - started:.1f} s. Start the UI with `make ui` to look around.")
    if not push.success:
        raise SystemExit("The push run failed; see its logs in the UI.")


if __name__ == "__main__":
    main()
