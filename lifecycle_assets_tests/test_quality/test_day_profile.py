"""The day profile: a landing day whose rows all pass the contract but whose whole is wrong is blocked.

A generated shop's days pass; the last day re-landed as a broken export (prices in cents, no
add_to_cart events) fails the blocking Great Expectations check of its entity, and what depends on
that entity is not built in the run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lifecycle_assets.sample_data.sample_shop import generate_sample_shop
from lifecycle_assets_tests.ingest_harness import run_ingest

CHECK = "great_expectations_suite"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """24 landing days of a 20k-customer shop (a few hundred orders a day), ingested in one run."""
    root = tmp_path_factory.mktemp("day_profile")
    summary = generate_sample_shop(root / "landing", customers=20_000, days=24, end_day="2024-03-24", seed=3)
    first = run_ingest(root / "landing", root / "warehouse.duckdb", summary["first_day"], summary["last_day"])
    return root, summary, first


def relanded(root: Path, entity: str, day: str, change) -> Path:
    """A copy of the landing zone whose ``entity`` file of ``day`` is rewritten by ``change``."""
    landing = root / f"landing_{entity}"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.copytree(root / "landing", landing)
    path = next((landing / entity / f"date={day}").glob(f"{entity}_*"))
    readers = {".csv": lambda p: pl.read_csv(p, infer_schema=False), ".parquet": pl.read_parquet,
               ".jsonl": lambda p: pl.read_ndjson(p, infer_schema_length=None)}
    writers = {".csv": pl.DataFrame.write_csv, ".parquet": pl.DataFrame.write_parquet, ".jsonl": pl.DataFrame.write_ndjson}
    frame = change(readers[path.suffix](path))
    writers[path.suffix](frame, path)
    return landing


def evaluation(run, entity: str) -> dg.AssetCheckEvaluation:
    return next(
        e.asset_check_evaluation_data
        for e in run.result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.asset_check_key == dg.AssetCheckKey(dg.AssetKey(["raw", entity]), CHECK)
    )


def test_normal_days_pass_and_each_is_judged_against_its_recent_days(shop):
    _, summary, run = shop
    assert run.result.success
    for entity in ("customers", "orders", "order_items", "interactions"):
        outcome = evaluation(run, entity)
        assert outcome.passed, outcome.metadata["failed_measures"].value
        # Days from the 8th on have a week of history: every one of those is judged.
        assert outcome.metadata["days_judged"].value >= summary["days"] - 8


def test_prices_in_cents_fail_the_orders_day_and_block_what_follows(shop):
    root, summary, _ = shop
    day = summary["last_day"]
    landing = relanded(root, "orders", day, lambda f: f.with_columns(
        total_amount=(pl.col("total_amount").cast(pl.Float64) * 100).round(2)
    ))
    run = run_ingest(landing, root / "warehouse.duckdb", day)
    outcome = evaluation(run, "orders")
    assert not outcome.passed
    failed = {m["measure"]: m for m in outcome.metadata["failed_measures"].value}
    assert {"total_amount_mean", "total_amount_median", "total_amount_p90"} <= set(failed)
    assert [s["day"] for s in failed["total_amount_mean"]["sample"]] == [day]
    assert evaluation(run, "customers").passed
    assert "raw/order_items" not in run.materialized()  # the blocking check skips what depends on orders


def test_a_day_without_add_to_cart_fails_the_interactions_day(shop):
    root, summary, _ = shop
    day = summary["last_day"]
    landing = relanded(root, "interactions", day, lambda f: f.filter(pl.col("event_type") != "add_to_cart"))
    run = run_ingest(landing, root / "warehouse.duckdb", day)
    outcome = evaluation(run, "interactions")
    assert not outcome.passed
    failed = {m["measure"] for m in outcome.metadata["failed_measures"].value}
    assert "event_type_add_to_cart_share" in failed
    assert evaluation(run, "orders").passed
    assert not run.result.success
