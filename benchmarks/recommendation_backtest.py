"""Hit rate of the site recommendations against the popular products alone, on the sample shop.

    .venv/bin/python benchmarks/recommendation_backtest.py --customers 20000 [--days 365] [--seed 7]
        [--bought-together-share 0.3] [--top-n 10]

Generates the sample shop into a temporary folder (deleted afterwards), lands it with the ingest
assets, builds the lifecycle model, then times building the two recommendation marts, writing the
export files and the backtest (each buyer's last purchase day held out; docs/recommendations.md).
`--bought-together-share 0` draws the same shop without its bought-together structure (the
generator's BOUGHT_TOGETHER_SHARE), to see what the recommendations find when there is none.
Prints the figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.ingest.pipeline import configure, ingest_days
from lifecycle_assets.models import recommendations
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all, load_models, run_model
from lifecycle_assets.sample_data import simulation
from lifecycle_assets.sample_data.sample_shop import generate_sample_shop

MEMORY_LIMIT = "4GB"
INGEST_ORDER = ("customers", "products", "orders", "order_items", "interactions")


def land_sample_shop(connection, landing: Path, summary: dict) -> None:
    """Every landing day into raw.* with the project's ingest (readers, row rules, quarantine)."""
    first, last = date.fromisoformat(summary["first_day"]), date.fromisoformat(summary["last_day"])
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    for name in INGEST_ORDER:
        ingest_days(connection, landing, ENTITIES[name], days, run_id="recommendation_backtest")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end-day", default="2024-12-31")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bought-together-share", type=float, default=simulation.BOUGHT_TOGETHER_SHARE)
    parser.add_argument("--top-n", type=int, default=LifecycleSettings().recommendations_site_count)
    args = parser.parse_args()
    simulation.BOUGHT_TOGETHER_SHARE = args.bought_together_share
    settings = LifecycleSettings(recommendations_site_count=args.top_n)
    figures: dict[str, object] = {
        "customers": args.customers,
        "days": args.days,
        "seed": args.seed,
        "bought_together_share": args.bought_together_share,
        "top_n": args.top_n,
    }

    with tempfile.TemporaryDirectory(prefix="recommendation_backtest_") as folder:
        root = Path(folder)
        started = time.perf_counter()
        summary = generate_sample_shop(root / "landing", args.customers, args.days, args.end_day, args.seed)
        with duckdb.connect(str(root / "warehouse.duckdb")) as connection:
            configure(connection, memory_limit=MEMORY_LIMIT)
            land_sample_shop(connection, root / "landing", summary)
            figures["shop_and_ingest_seconds"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            as_of = build_all(connection, settings)
            figures["model_build_seconds"] = round(time.perf_counter() - started, 1)
            models = {model.table: model for model in load_models()}
            parameters = settings.sql_parameters(as_of)
            started = time.perf_counter()
            for table in (recommendations.SITE_TABLE, recommendations.CROSS_SELL_TABLE):
                run_model(models[table], connection, parameters, full_refresh=True)  # every visitor, not only the changed
            figures["recommendation_marts_seconds"] = round(time.perf_counter() - started, 2)
            figures["site_recommendation_rows"] = connection.execute(
                f"select count(*) from {recommendations.SITE_TABLE}"
            ).fetchone()[0]
            started = time.perf_counter()
            written, _ = recommendations.export_recommendations(connection, root / "export", as_of)
            figures["export_seconds"] = round(time.perf_counter() - started, 2)
            figures["export_bytes"] = {name: file["bytes"] for name, file in written.items()}
            started = time.perf_counter()
            result = recommendations.run_recommendation_backtest(connection, settings, as_of)
            figures["backtest_seconds"] = round(time.perf_counter() - started, 1)
    assert result is not None, "the sample shop has buyers"
    figures |= {
        "as_of": as_of.isoformat(),
        "customers_judged": result.customers_judged,
        "hit_rate": round(result.hit_rate, 4),
        "hit_rate_ci": [round(value, 4) for value in result.hit_rate_ci],
        "baseline_hit_rate": round(result.baseline_hit_rate, 4),
        "baseline_hit_rate_ci": [round(value, 4) for value in result.baseline_hit_rate_ci],
        "only_recommendations_hit": result.only_recommendations_hit,
        "only_baseline_hit": result.only_baseline_hit,
        "p_value": result.p_value,
        "repeat_buyers_judged": result.repeat_buyers_judged,
        "repeat_buyers_hit_rate": round(result.repeat_buyers_hit_rate, 4),
        "repeat_buyers_baseline_hit_rate": round(result.repeat_buyers_baseline_hit_rate, 4),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    print(result.markdown())
    print()
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
