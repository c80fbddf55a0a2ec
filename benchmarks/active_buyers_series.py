"""The active buyers' series on a sample shop: letters planned by RFM segment and offer, next to the
active buyers of each segment, and how many days of the cadence spread them.

    .venv/bin/python benchmarks/active_buyers_series.py --customers 100000           # generate + ingest + build
    .venv/bin/python benchmarks/active_buyers_series.py --warehouse /tmp/shop/warehouse.duckdb   # build an ingested shop

The series plans a letter on the day a customer's cadence comes round (every N days after their last
purchase), so one day's plan holds a small share of the active buyers. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end-day", default="2026-11-21")
    parser.add_argument("--warehouse", type=Path, help="an ingested warehouse to build on instead of a new sample shop")
    parser.add_argument("--memory-limit", default="3GB")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temporary:
        warehouse = args.warehouse
        if warehouse is None:
            from lifecycle_assets_tests.ingest_harness import run_ingest
            from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

            root = Path(temporary)
            shop = generate_sample_shop(root / "landing", args.customers, args.days, args.end_day, seed=7)
            warehouse = root / "warehouse.duckdb"
            run_ingest(root / "landing", warehouse, shop["first_day"], shop["last_day"])
        with duckdb.connect(str(warehouse)) as connection:
            connection.execute(f"set memory_limit = '{args.memory_limit}'")
            started = time.perf_counter()
            as_of = build_all(connection, LifecycleSettings())
            build_seconds = time.perf_counter() - started
            cadence = LifecycleSettings().active_buyers_cadence_days
            active = dict(
                connection.execute(
                    "select rfm_segment, count(*) from marts.customer_lifecycle where stage = 'active' group by 1"
                ).fetchall()
            )
            rows = connection.execute(
                """
                select json_extract_string(personalisation, '$.rfm_segment'),
                       json_extract_string(personalisation, '$.offer'),
                       count(*) filter (where due_on = $as_of),
                       count(*)
                from marts.letters_planned
                where template_name = 'active_buyers'
                group by all
                """,
                {"as_of": as_of},
            ).fetchall()
    planned = {(segment, offer): due_today for segment, offer, due_today, _ in rows}
    in_window = sum(count for *_, count in rows)

    print(f"as of {as_of}, cadence {cadence} days, models built in {build_seconds:.1f} s")
    print(f"{'RFM segment':22s} {'offer':16s} {'letters':>8s} {'active buyers':>14s}")
    for (segment, offer), count in sorted(planned.items(), key=lambda item: -item[1]):
        print(f"{segment:22s} {offer:16s} {count:8,d} {active.get(segment, 0):14,d}")
    print("active buyers of segments without this series:", {s: n for s, n in active.items() if s not in {k[0] for k in planned}})
    print(f"letters due on the as-of day: {sum(planned.values()):,}; in the due window (with catch-up days): {in_window:,}")
    print(
        json.dumps(
            {
                "as_of": as_of.isoformat(),
                "cadence_days": cadence,
                "letters_by_segment": {f"{segment}/{offer}": count for (segment, offer), count in sorted(planned.items())},
                "active_buyers_by_segment": active,
                "letters_in_due_window": in_window,
            }
        )
    )


if __name__ == "__main__":
    main()
