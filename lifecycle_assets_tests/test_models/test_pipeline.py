"""The lifecycle model on a whole generated sample shop (the real CDNOW log: test_on_cdnow.py).

It goes through the real ingest assets (landing files -> raw.*) and then the model assets with
their audits, as Dagster runs them.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.sample_data.sample_shop import generate_sample_shop
from lifecycle_assets.models.checks import build_audit_checks
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_model_assets
from lifecycle_assets.ingest.definitions import daily_landing_partitions, ingest_definitions
from lifecycle_assets.quality.checks import QualityPolicy
from lifecycle_assets.quality.definitions import quality_definitions
from lifecycle_assets.resources import LandingZone

pytestmark = pytest.mark.slow  # an 8,000-customer shop over 400 days, landed through Dagster

STAGES = {"visitor", "new_buyer", "active", "departing", "returned"}

# The brief's figures and how far a 10k-customer sample may stray from them. Shares are of a few
# thousand buyers (sampling error ~1-2 points); the figures the generator only shapes indirectly
# (retention, lapsed return) get wider bands, and returned vs new buyers must stay close together.
BRIEF_TOLERANCES = {
    "first_purchase_same_day_share": (0.80, 0.04),
    "first_purchase_first_week_share": (0.07, 0.03),
    "repeat_rate_ratio_6_plus_vs_1_item": (2.0, 0.5),
    "lapsed_4_6_months_return_rate_3_months": (0.20, 0.08),
    "returned_retention_180_days": (0.35, 0.15),
    "new_buyer_retention_180_days": (0.36, 0.10),
}


def ingest_landing_days(landing, warehouse, first_day: str, last_day: str, policy: QualityPolicy | None = None) -> None:
    """Run the real ingest assets and their checks over every landing day, in one run."""
    definitions = dg.Definitions.merge(ingest_definitions(daily_landing_partitions(first_day)), quality_definitions())
    result = dg.materialize(
        [*definitions.assets, *definitions.asset_checks],
        resources={
            "duckdb": DuckDBResource(database=str(warehouse)),
            "landing": LandingZone(root=str(landing)),
            "quality_policy": policy or QualityPolicy(),
        },
        tags={"dagster/asset_partition_range_start": first_day, "dagster/asset_partition_range_end": last_day},
    )
    assert result.success


def build_models(warehouse, as_of: str = "") -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*(dg.AssetSpec(["raw", entity]) for entity in ENTITIES), *build_model_assets(), *build_audit_checks()],
        resources={
            "duckdb": DuckDBResource(database=str(warehouse)),
            "lifecycle_settings": LifecycleSettings(as_of=as_of),
        },
        selection=dg.AssetSelection.groups("lifecycle"),
    )


def assert_one_stage_per_customer(connection) -> dict[str, int]:
    customers = connection.execute("select count(distinct customer_id) from raw.customers").fetchone()[0]
    per_customer = connection.execute(
        "select count(*), count(distinct customer_id) from marts.customer_lifecycle"
    ).fetchone()
    assert per_customer == (customers, customers)
    stage_counts = dict(connection.execute("select stage, count(*) from marts.customer_lifecycle group by 1").fetchall())
    assert set(stage_counts) <= STAGES
    assert sum(stage_counts.values()) == customers
    return stage_counts


@pytest.fixture(scope="module")
def sample_shop_warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_shop")
    shop = generate_sample_shop(root / "landing", customers=8_000, days=400, end_day="2026-06-30", seed=11)
    ingest_landing_days(root / "landing", root / "warehouse.duckdb", shop["first_day"], shop["last_day"])
    result = build_models(root / "warehouse.duckdb")
    return root / "warehouse.duckdb", result


def test_sample_shop_builds_as_of_its_last_day_and_passes_every_audit(sample_shop_warehouse):
    warehouse, result = sample_shop_warehouse
    assert result.success
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations())
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        stage_counts = assert_one_stage_per_customer(connection)
        assert set(stage_counts) == STAGES
        assert connection.execute("select distinct as_of from marts.customer_lifecycle").fetchall() == [
            (__import__("datetime").date(2026, 6, 30),)
        ]
        templates = {row[0] for row in connection.execute("select distinct template_name from marts.letters_planned").fetchall()}
        assert {"welcome", "abandoned_cart", "winback", "replenishment"} <= templates


@pytest.mark.parametrize("metric", list(BRIEF_TOLERANCES))
def test_sample_shop_report_reads_back_the_brief(sample_shop_warehouse, metric):
    warehouse, _ = sample_shop_warehouse
    brief, tolerance = BRIEF_TOLERANCES[metric]
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        value, brief_in_report = connection.execute(
            "select value, brief_value from marts.lifecycle_report where metric = ?", [metric]
        ).fetchone()
    assert brief_in_report == brief
    assert abs(value - brief) <= tolerance, f"{metric} = {value}, brief {brief} +/- {tolerance}"


def test_sample_shop_more_than_half_buy_once_and_returned_behave_like_new_buyers(sample_shop_warehouse):
    warehouse, _ = sample_shop_warehouse
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        figures = dict(connection.execute("select metric, value from marts.lifecycle_report").fetchall())
    assert figures["one_time_buyer_share"] > 0.5
    assert abs(figures["returned_retention_180_days"] - figures["new_buyer_retention_180_days"]) <= 0.10
    assert figures["funnel_aware"] >= figures["funnel_considering"] >= figures["funnel_deciding"] >= figures["funnel_loyal"] > 0
