"""Requests the push makes on a sample shop: a first push, then a rerun with no change (issue 4).

    .venv/bin/python benchmarks/push_request_counts.py --customers 100000

Generates the shop, runs ingest + lifecycle as one run, then `push_to_sendgrid` twice against the
fake SendGrid on 127.0.0.1, and prints the fake's request counts per endpoint for each push.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid  # noqa: E402

API_KEY = "SG.benchmark-key"


def endpoint_counts(requests) -> Counter:
    counts = Counter()
    for request in requests:
        path = request.path
        for prefix in ("/v3/marketing/contacts/imports/", "/v3/templates/", "/v3/marketing/lists/"):
            if path.startswith(prefix):
                path = prefix + "{id}" + ("/..." if path.count("/") > prefix.count("/") else "")
        counts[f"{request.method} {path}"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end-day", default="2026-11-21")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, FakeSendGrid(api_key=API_KEY) as fake:
        root = Path(folder)
        os.environ.update(
            LIFECYCLE_LANDING_DIR=str(root / "landing"), LIFECYCLE_DUCKDB_PATH=str(root / "warehouse.duckdb"),
            LIFECYCLE_OUTBOX_DIR=str(root / "outbox"), SENDGRID_API_KEY=API_KEY, SENDGRID_HOST=fake.base_url,
            SENDGRID_UNSUBSCRIBE_GROUP_ID="77",
        )
        from lifecycle_assets.definitions import build_definitions
        from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

        started = time.perf_counter()
        shop = generate_sample_shop(root / "landing", args.customers, args.days, args.end_day, seed=7)
        defs = build_definitions(first_landing_day=shop["first_day"])
        with dg.DagsterInstance.ephemeral() as instance:
            pipeline = dg.materialize(
                [*defs.assets, *(defs.asset_checks or [])],
                selection=dg.AssetSelection.groups("ingest", "quality", "lifecycle"),
                instance=instance, resources=defs.resources,
                tags={"dagster/asset_partition_range_start": shop["first_day"],
                      "dagster/asset_partition_range_end": shop["last_day"]},
            )
            print(f"shop + pipeline: {time.perf_counter() - started:.1f} s, success={pipeline.success}")
            job = defs.get_job_def("push_to_sendgrid")
            for label in ("first push", "rerun, no change"):
                before = len(fake.requests)
                push_started = time.perf_counter()
                run = job.execute_in_process(instance=instance)
                counts = endpoint_counts(fake.requests[before:])
                print(f"{label}: {sum(counts.values())} requests in {time.perf_counter() - push_started:.1f} s "
                      f"(success={run.success}); letters accepted so far {len(fake.sent_messages())}, "
                      f"contacts {len(fake.contacts())}, lists {len(fake.lists())}")
                for endpoint, count in sorted(counts.items()):
                    print(f"  {count:6d}  {endpoint}")


if __name__ == "__main__":
    main()
