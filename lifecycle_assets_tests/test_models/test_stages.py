"""Stages, recency segments and RFM on the boundary days, in tiny shops whose answer is known."""

from __future__ import annotations

import pytest

from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day


def one_order_shop() -> TinyShop:
    return TinyShop().product("p1").customer("ann", at(0)).order("o1", "ann", at(0))


@pytest.mark.parametrize(
    ("days_since_purchase", "stage", "recency_segment"),
    [
        pytest.param(0, "new_buyer", "0_90", id="purchase-day"),
        pytest.param(89, "new_buyer", "0_90", id="day-89-still-new-buyer"),
        pytest.param(90, "departing", "90_180", id="day-90-departing"),
        pytest.param(91, "departing", "90_180", id="day-91-departing"),
        pytest.param(179, "departing", "90_180", id="day-179"),
        pytest.param(180, "departing", "180_360", id="day-180"),
        pytest.param(359, "departing", "180_360", id="day-359"),
        pytest.param(360, "departing", "360_plus", id="day-360"),
    ],
)
def test_departing_after_90_days_without_history(build, days_since_purchase, stage, recency_segment):
    built = build(one_order_shop(), as_of=days_since_purchase)
    lifecycle = built.lifecycle("ann")
    assert (lifecycle["stage"], lifecycle["recency_segment"]) == (stage, recency_segment)
    assert lifecycle["expected_next_purchase_on"] is None  # one purchase is no rhythm


def returning_shop() -> TinyShop:
    """Ann buys on day 0, departs on day 90 and comes back on day 100."""
    return one_order_shop().order("o2", "ann", at(100))


@pytest.mark.parametrize(
    ("as_of", "stage"),
    [
        pytest.param(99, "departing", id="day-before-return"),
        pytest.param(100, "returned", id="return-day"),
        pytest.param(129, "returned", id="29-days-after-return-still-returned"),
        pytest.param(130, "active", id="30-days-after-return-active"),
        pytest.param(189, "active", id="89-days-after-return-active"),
        pytest.param(190, "departing", id="90-days-after-return-departing"),
    ],
)
def test_returned_lasts_30_days_after_the_return_order(build, as_of, stage):
    assert build(returning_shop(), as_of=as_of).stage("ann") == stage


def test_a_second_order_before_departing_is_not_a_return(build):
    shop = one_order_shop().order("o2", "ann", at(89))
    built = build(shop, as_of=95)
    assert built.stage("ann") == "active"


def rhythm_shop() -> TinyShop:
    """Bob buys every 20 days (days 0, 20, 40, 60): expected next on day 80 (last purchase + typical gap)."""
    shop = TinyShop().product("p1").customer("bob", at(0))
    for number, purchase_day in enumerate((0, 20, 40, 60)):
        shop.order(f"o{number}", "bob", at(purchase_day))
    return shop


@pytest.mark.parametrize(
    ("as_of", "stage", "overdue"),
    [
        pytest.param(80, "active", False, id="on-expected-day"),
        pytest.param(81, "active", True, id="overdue-but-not-departing"),
        pytest.param(100, "active", True, id="2x-gap-is-no-longer-departing"),
        pytest.param(149, "active", True, id="89-days-after-last-purchase"),
        pytest.param(150, "departing", True, id="90-days-after-last-purchase"),
    ],
)
def test_a_small_shop_departs_on_the_fixed_90_day_rule_and_keeps_the_rhythms_expected_day(build, as_of, stage, overdue):
    lifecycle = build(rhythm_shop(), as_of=as_of).lifecycle("bob")
    assert lifecycle["stage"] == stage
    assert lifecycle["departing_rule"] == "fixed_90_days"
    assert lifecycle["is_overdue"] is overdue
    assert lifecycle["expected_next_purchase_on"] == day(80)


def test_the_fallback_rule_is_configurable(build):
    assert build(rhythm_shop(), as_of=100, departing_days=40).stage("bob") == "departing"


def test_a_visitor_is_registered_without_purchase_and_unknown_before_registering(build):
    shop = TinyShop().product("p1").customer("vic", at(5)).order("refunded", "vic", at(5), status="refunded")
    assert build(shop, as_of=4).stage("vic") is None
    assert build(shop, as_of=6).stage("vic") == "visitor"


def test_order_refunded_later_stops_being_a_purchase_from_the_day_the_refund_landed(build):
    shop = one_order_shop().order("o2", "ann", at(10), landed=day(10))
    shop.order("o2", "ann", at(10), status="refunded", landed=day(15))
    assert build(shop, as_of=12).lifecycle("ann")["orders_count"] == 2
    assert build(shop, as_of=15).lifecycle("ann")["orders_count"] == 1


@pytest.mark.parametrize(
    ("orders", "days_since_last", "segment"),
    [
        pytest.param(4, 10, "champions", id="recent-and-frequent"),
        pytest.param(3, 100, "loyal", id="three-orders-r3"),
        pytest.param(6, 200, "cannot_lose", id="six-orders-long-ago"),
        pytest.param(3, 200, "at_risk", id="three-orders-long-ago"),
        pytest.param(1, 10, "new_customers", id="one-recent-order"),
        pytest.param(2, 40, "potential_loyalists", id="two-recent-orders"),
        pytest.param(1, 100, "promising", id="one-order-r3"),
        pytest.param(2, 200, "about_to_sleep", id="two-orders-r2"),
        pytest.param(2, 400, "hibernating", id="two-orders-a-year-ago"),
        pytest.param(1, 400, "lost", id="one-order-a-year-ago"),
    ],
)
def test_rfm_segments(build, orders, days_since_last, segment):
    shop = TinyShop().product("p1").customer("cat", at(0))
    last_purchase = 500
    for number in range(orders):
        shop.order(f"o{number}", "cat", at(last_purchase - number))
    lifecycle = build(shop, as_of=last_purchase + days_since_last).lifecycle("cat")
    assert lifecycle["rfm_segment"] == segment


def test_every_customer_has_exactly_one_stage(build):
    shop = returning_shop().customer("vic", at(3)).customer("bob", at(1)).order("b1", "bob", at(2))
    built = build(shop, as_of=120)
    rows = built.connection.execute("select customer_id, stage from marts.customer_lifecycle order by 1").fetchall()
    assert rows == [("ann", "returned"), ("bob", "departing"), ("vic", "visitor")]
