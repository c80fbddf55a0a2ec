"""The lapse model and its time-travel backtest: departing comes from the shop's own past, proved on real data."""

from __future__ import annotations

import random

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.backtest import run_backtest
from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all, build_model_assets, load_models
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day



def shop_with_history(customers: int = 700, last_day: int = 400, joined_within: int = 200, seed: int = 3) -> TinyShop:
    """Buyers with their own purchase rate who each stop buying for good at some point; day 0 is the first order."""
    rng = random.Random(seed)
    shop = TinyShop().product("p1")
    for number in range(customers):
        customer = f"c{number:04d}"
        registered = rng.randrange(0, joined_within)
        shop.customer(customer, at(registered))
        gap = rng.choice((7, 14, 30, 60, 120))
        stops_on = registered + int(rng.expovariate(1 / 250))
        purchase_day, order = registered, 0
        while purchase_day <= min(stops_on, last_day):
            shop.order(f"{customer}-{order}", customer, at(purchase_day))
            order += 1
            purchase_day += max(1, int(rng.expovariate(1 / gap)))
    return shop


@pytest.fixture(scope="module")
def model_shop(tmp_path_factory):
    database = tmp_path_factory.mktemp("model_shop") / "shop.duckdb"
    shop_with_history().write(database)
    connection = duckdb.connect(str(database))
    build_all(connection, LifecycleSettings(as_of=day(400).isoformat()))
    yield connection
    connection.close()


def test_a_shop_with_enough_buyers_and_history_departs_on_the_model(model_shop):
    rows = model_shop.execute(
        """
        select lifecycle.customer_id, lifecycle.stage, lifecycle.departing_rule, lapse.is_departing,
               lapse.p_buy_within_horizon, lifecycle.expected_next_purchase_on, lifecycle.last_purchase_on
        from marts.customer_lifecycle as lifecycle
        left join marts.customer_lapse_scores as lapse using (customer_id)
        """
    ).fetchall()
    customers = model_shop.execute("select count(distinct customer_id) from raw.customers").fetchone()[0]
    assert len(rows) == len({row[0] for row in rows}) == customers  # every customer exactly once
    buyers = [row for row in rows if row[6] is not None]
    assert {row[2] for row in buyers} == {"model"}
    assert all((row[1] == "departing") == row[3] for row in buyers)
    assert all(0.0 <= row[4] <= 1.0 for row in buyers)
    assert all(row[5] > row[6] for row in buyers)  # the expected next purchase is after the last one
    departing = [row for row in buyers if row[1] == "departing"]
    assert 0 < len(departing) < len(buyers)
    # The model, not the day count: some are departing within 90 days of a purchase, or active after 90.
    fixed_rule_disagrees = [row for row in buyers if ((day(400) - row[6]).days >= 90) != (row[1] == "departing")]
    assert fixed_rule_disagrees


def test_we_miss_you_is_due_the_day_after_the_models_expected_purchase(model_shop):
    letters = model_shop.execute(
        """
        select events.instance, lifecycle.expected_next_purchase_on, lapse.expected_next_purchase_on
        from marts.trigger_events as events
        join marts.customer_lifecycle as lifecycle using (customer_id)
        join marts.customer_lapse_scores as lapse using (customer_id)
        where events.trigger = 'we_miss_you'
        """
    ).fetchall()
    assert letters
    assert all(instance == str(model_day) == str(lifecycle_day) for instance, lifecycle_day, model_day in letters)


def test_a_small_shop_falls_back_to_the_fixed_90_day_rule_and_the_metadata_says_why(tmp_path):
    database = tmp_path / "small.duckdb"
    TinyShop().product("p1").customer("ann", at(0)).order("o1", "ann", at(0)).write(database)
    result = dg.materialize(
        [*(dg.AssetSpec(["raw", entity]) for entity in ENTITIES), *build_model_assets()],
        resources={
            "duckdb": DuckDBResource(database=str(database)),
            "lifecycle_settings": LifecycleSettings(as_of=day(95).isoformat()),
        },
        selection=dg.AssetSelection.assets(["marts", "customer_lapse_scores"]).upstream()
        | dg.AssetSelection.assets(["marts", "customer_lifecycle"]).upstream(),
    )
    metadata = next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key == dg.AssetKey(["marts", "customer_lapse_scores"])
    )
    assert metadata["departing_rule"].value == "fixed_90_days"
    assert "1 buyers, fewer than lapse_min_buyers = 500" in metadata["departing_rule_reason"].value
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("select stage, departing_rule from marts.customer_lifecycle").fetchall() == [
            ("departing", "fixed_90_days")
        ]


def test_a_young_shop_falls_back_and_says_it_is_too_young(tmp_path):
    database = shop_with_history(customers=700, last_day=120, joined_within=60).write(tmp_path / "young.duckdb")
    with duckdb.connect(str(database)) as connection:
        build_all(connection, LifecycleSettings(as_of=day(120).isoformat()))
        rules = connection.execute(
            "select distinct departing_rule, departing_rule_reason from marts.customer_lapse_scores"
        ).fetchall()
    assert len(rules) == 1 and rules[0][0] == "fixed_90_days"
    assert "days of orders, fewer than lapse_min_history_days = 180" in rules[0][1]


def test_the_backtest_uses_nothing_landed_after_its_calibration_day(tmp_path):
    calibration, judge_days = day(330), 60
    base = shop_with_history()
    later = shop_with_history()
    # Known later: an order dated before the calibration day that only landed after it, a refund of an
    # earlier order landed after it, a new customer, and purchases after it.
    later.order("late-landing", "c0001", at(320), landed=day(335))
    later.order("c0002-0", "c0002", at(day_number_of_first_order(base, "c0002")), status="refunded", landed=day(340))
    later.customer("newcomer", at(340)).order("new-1", "newcomer", at(340))
    for number in range(0, 700, 7):
        later.order(f"after-{number}", f"c{number:04d}", at(350))
    results = []
    for name, shop in (("base", base), ("later", later)):
        with duckdb.connect(str(shop.write(tmp_path / f"{name}.duckdb"))) as connection:
            settings = LifecycleSettings(as_of=day(400).isoformat())
            build_all(connection, settings, [model for model in load_models() if model.schema == "staging"])
            results.append(run_backtest(connection, settings, calibration, judge_days))
    base_result, later_result = results
    assert base_result.departing_rule == later_result.departing_rule == "model"
    assert later_result.flags == base_result.flags
    # ...while the judged outcome does see the later purchases.
    assert later_result.lapse_share < base_result.lapse_share


def day_number_of_first_order(shop: TinyShop, customer_id: str) -> int:
    first = min(row["ordered_at"] for row in shop.rows["orders"] if row["customer_id"] == customer_id)
    return (first.date() - day(0)).days


def test_every_build_says_how_good_the_departing_flag_is(model_shop):
    """Without the weekly backtest, the scores' metadata still tells an operator how well the flag separates."""
    from lifecycle_assets.models.lapse import outcome_metadata, write_lapse_scores

    outcome = write_lapse_scores(model_shop, LifecycleSettings(as_of=day(400).isoformat()), day(400))
    metadata = outcome_metadata(outcome)
    assert metadata["departing_rule"].value == "model"
    figures = {name: metadata[f"training_{name}"].value for name in ("balanced_accuracy", "precision", "recall", "flagged_share", "lapse_share")}
    assert all(0.0 <= value <= 1.0 for value in figures.values())
    assert figures["balanced_accuracy"] > 0.6, "the flag separates buyers who stop from those who buy again"
    assert 0.0 < figures["flagged_share"] < 1.0
    note = metadata["training_accuracy"].value
    assert f"balanced accuracy {figures['balanced_accuracy']:.3f}" in note and "lapse_backtest" in note


def test_the_backtest_flags_equal_a_fresh_build_of_what_had_landed_then(tmp_path):
    """The backtest builds over views of the warehouse and leaves interactions out; that changes no flag or score."""
    shop = shop_with_history(customers=600, last_day=400)
    rng = random.Random(5)
    for number in range(0, 600, 3):
        shop.event("page_view", f"c{number:04d}", at(rng.randrange(0, 400)))
        shop.event("unsubscribe", f"c{number:04d}", at(rng.randrange(0, 400)))
    database = shop.write(tmp_path / "shop.duckdb")
    calibration, judge_days = day(300), 90
    settings = LifecycleSettings(as_of=day(400).isoformat())
    then = tmp_path / "then.duckdb"
    with duckdb.connect(str(database)) as connection:
        build_all(connection, settings, [model for model in load_models() if model.table == "staging.stg_orders"])
        result = run_backtest(connection, settings, calibration, judge_days)
        # What had landed by the calibration day, interactions included, as a warehouse of its own.
        connection.execute(f"attach '{then}' as landed_then")
        connection.execute("create schema landed_then.raw")
        for entity in ENTITIES:
            connection.execute(f"create table landed_then.raw.{entity} as select * from raw.{entity} where _landing_date <= ?", [calibration])
        connection.execute("detach landed_then")
    with duckdb.connect(str(then)) as past:
        build_all(past, LifecycleSettings(as_of=calibration.isoformat(), lapse_horizon_days=judge_days))
        expected = past.execute(
            "select customer_id, stage = 'departing', lapse_score from marts.customer_lifecycle order by customer_id"
        ).fetchall()
        assert past.execute("select count(*) from marts.customer_facts where suppressed_at is not null").fetchone()[0] > 0
    assert [flag[:2] for flag in result.flags] == [row[:2] for row in expected]
    assert [flag[2] for flag in result.flags] == pytest.approx([row[2] for row in expected])
    assert sum(flag[1] for flag in result.flags) > 0


def test_the_backtest_on_the_past_kept_from_the_last_build_equals_one_built_from_nothing(tmp_path):
    """The past is kept beside the warehouse between builds and built on; the next build moved the
    calibration day and a past day was re-ingested, and its backtest is still what a new past gives."""
    database = shop_with_history(customers=400, last_day=400).write(tmp_path / "shop.duckdb")
    kept = tmp_path / "shop.duckdb.lapse_backtest.duckdb"
    settings = LifecycleSettings(as_of=day(400).isoformat())
    stg_orders = [model for model in load_models() if model.table == "staging.stg_orders"]
    with duckdb.connect(str(database)) as connection:
        build_all(connection, settings, stg_orders)
        yesterday = run_backtest(connection, settings, day(290), 90)
        assert kept.exists()
        # A corrected export of a past day: its orders were refunded (the ingest stamps a new _ingested_at).
        connection.execute(
            "update raw.orders set status = 'refunded', _ingested_at = timestamp '2030-01-01' where _landing_date = ?", [day(250)]
        )
        build_all(connection, settings, stg_orders)
        today = run_backtest(connection, settings, day(300), 90)
    kept.unlink()
    with duckdb.connect(str(database)) as connection:
        from_nothing = run_backtest(connection, settings, day(300), 90)
    assert today.flags == from_nothing.flags
    assert today.markdown() == from_nothing.markdown()
    assert today.flags != yesterday.flags


def test_the_backtest_judges_once_a_week_and_again_when_what_it_read_changed(tmp_path):
    """The asset judges as of the Monday on or before as_of (backtest_every_days 7) minus the horizon; within the
    week the next builds show the stored figures, a re-ingested day landed before the calibration day judges again,
    and so does the next Monday."""
    from lifecycle_assets.backtest import lapse_backtest

    database = shop_with_history(customers=400, last_day=400).write(tmp_path / "shop.duckdb")
    stg_orders = [model for model in load_models() if model.table == "staging.stg_orders"]
    with duckdb.connect(str(database)) as connection:
        build_all(connection, LifecycleSettings(as_of=day(400).isoformat()), stg_orders)

    def materialize(as_of: int) -> dict:
        settings = LifecycleSettings(as_of=day(as_of).isoformat())
        result = dg.materialize([lapse_backtest], resources={"duckdb": DuckDBResource(database=str(database)), "lifecycle_settings": settings})
        metadata = result.asset_materializations_for_node("marts__lapse_backtest")[0].metadata
        return {name: value.value for name, value in metadata.items()}

    assert day(0).weekday() == 0 and day(399).weekday() == 0  # day 0 is a Monday, so is day 399
    tuesday = materialize(400)
    assert tuesday["judged_this_build"] and tuesday["calibrated_to"] == day(399 - 90).isoformat()
    # Landed on Wednesday: refunds of every purchase of the last 30 days to Monday (days 370-399, in the judged
    # window). As known on Monday they were purchases: the figures stand.
    with duckdb.connect(str(database)) as connection:
        refunded = connection.execute(
            "insert into raw.orders by name select * replace ('refunded' as status, ? as updated_at, ? as _landing_date) "
            "from raw.orders where ordered_at::date between ? and ? and status = 'completed'", [at(401), day(401), day(370), day(399)]
        ).fetchone()[0]
        assert refunded > 0
        build_all(connection, LifecycleSettings(as_of=day(401).isoformat()), stg_orders)
    sunday = materialize(405)
    assert not sunday["judged_this_build"]
    assert {k: v for k, v in sunday.items() if k != "judged_this_build"} == {k: v for k, v in tuesday.items() if k != "judged_this_build"}

    # A corrected export of a day landed before the calibration day (the ingest stamps a new _ingested_at).
    with duckdb.connect(str(database)) as connection:
        connection.execute(
            "update raw.orders set status = 'refunded', _ingested_at = timestamp '2030-01-01' where _landing_date = ?", [day(250)]
        )
        build_all(connection, LifecycleSettings(as_of=day(405).isoformat()), stg_orders)  # Sunday's build knows the refunds
    corrected = materialize(405)
    assert corrected["judged_this_build"] and corrected["calibrated_to"] == day(399 - 90).isoformat()
    with duckdb.connect(str(database)) as connection:
        direct = run_backtest(connection, LifecycleSettings(as_of=day(405).isoformat()), day(399 - 90), 90)
        # the refunds landed on Wednesday are not known at the window's end: judged as bought, as on Tuesday
        assert direct.customers_judged == tuesday["customers_judged"] and direct.lapse_share == pytest.approx(tuesday["lapse_share"])
    assert corrected["backtest"] == direct.markdown() != tuesday["backtest"]

    monday = materialize(406)
    assert monday["judged_this_build"] and monday["calibrated_to"] == day(406 - 90).isoformat()
    with duckdb.connect(str(database)) as connection:  # one judgement: one time on every detector's row
        assert connection.execute("select count(distinct judged_at) from marts.lapse_backtest").fetchone()[0] == 1
