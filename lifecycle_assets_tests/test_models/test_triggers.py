"""Every trigger in a tiny shop: the day it fires, the day it does not, its key and its personalisation."""

from __future__ import annotations

import datetime as dt

import pytest

from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day


def card(product_id: str) -> dict:
    """A tiny-shop product as a letter's card gets it: the default price, no page or image in the catalogue."""
    return {"product_id": product_id, "name": f"Product {product_id}", "price": "10.00", "url": None, "image_url": None}


def visitor_shop(**customer) -> TinyShop:
    return TinyShop().product("p1").product("p2").product("p3").customer("vic", at(0, 9), **customer)


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        pytest.param(0, {"welcome_day0"}, id="registration-day"),
        pytest.param(2, {"welcome_day2"}, id="day-2"),
        pytest.param(4, set(), id="day-4-nothing-due"),
        pytest.param(6, {"welcome_bonus_expiring"}, id="visitor-day-6-bonus-expiring"),
        pytest.param(7, {"welcome_bonus_expiring"}, id="day-7-caught-up"),
        pytest.param(8, set(), id="visitor-day-8-bonus-expired"),
    ],
)
def test_welcome_series_for_a_visitor(build, as_of, expected):
    assert build(visitor_shop(), as_of=as_of).triggers("vic") == expected


def test_welcome_letter_carries_bonus_and_popular_recommendations(build):
    shop = visitor_shop(first_name="Vera").customer("ann", at(-30)).order("o1", "ann", at(-30), [("p2", 1)])
    letter = build(shop, as_of=0).letters("vic")["welcome_day0:vic:2024-01-01"]
    assert letter["template_name"] == "welcome"
    assert letter["priority"] == 2
    personalisation = letter["personalisation"]
    assert personalisation["first_name"] == "Vera"
    assert personalisation["bonus_amount"] == 10.0
    assert personalisation["bonus_expires_on"] == "2024-01-08"
    assert personalisation["series_step"] == 0
    assert personalisation["recommendations"][0] == card("p2")


def test_a_customer_who_bought_on_registration_day_gets_the_welcome_letter_without_bonus(build):
    shop = visitor_shop().order("o1", "vic", at(0, 10))
    personalisation = build(shop, as_of=0).letters("vic")["welcome_day0:vic:2024-01-01"]["personalisation"]
    assert (personalisation["bonus_amount"], personalisation["bonus_expires_on"]) == (None, None)
    assert personalisation["stage"] == "new_buyer"


def test_bonus_expiring_and_day_2_letters_stop_once_the_visitor_buys(build):
    shop = visitor_shop().order("o1", "vic", at(1))
    assert build(shop, as_of=2).triggers("vic") == {"post_purchase"}
    assert "welcome_bonus_expiring" not in build(shop, as_of=6).triggers("vic")


def test_letter_key_is_the_same_on_the_next_day(build):
    first = set(build(visitor_shop(), as_of=6).letters("vic"))
    second = set(build(visitor_shop(), as_of=7).letters("vic"))
    assert first == second == {"welcome_bonus_expiring:vic:2024-01-01"}


def cart_shop(order_minutes_after_cart: int | None) -> TinyShop:
    shop = visitor_shop()
    shop.event("add_to_cart", "vic", at(3, 10, 0), product_id="p1")
    shop.event("add_to_cart", "vic", at(3, 10, 0), product_id="p2")
    shop.event("remove_from_cart", "vic", at(3, 10, 5), product_id="p2")
    shop.event("checkout_started", "vic", at(3, 11, 0))
    if order_minutes_after_cart is not None:
        shop.order("o1", "vic", at(3, 11, 0) + dt.timedelta(minutes=order_minutes_after_cart))
    return shop.seen_until(at(3, 23, 59))


@pytest.mark.parametrize(
    ("order_minutes_after_cart", "abandoned"),
    [
        pytest.param(None, True, id="no-order"),
        pytest.param(10, False, id="order-10-minutes-after"),
        pytest.param(239, False, id="order-just-inside-4h-window"),
        pytest.param(240, False, id="order-at-window-end"),
        pytest.param(241, True, id="order-just-outside-window"),
    ],
)
def test_abandoned_cart_window(build, order_minutes_after_cart, abandoned):
    letters = build(cart_shop(order_minutes_after_cart), as_of=3).letters("vic")
    assert ("abandoned_cart:vic:2024-01-04" in letters) is abandoned


def test_abandoned_cart_names_the_products_still_in_the_cart(build):
    letter = build(cart_shop(None), as_of=3).letters("vic")["abandoned_cart:vic:2024-01-04"]
    assert letter["personalisation"]["products"] == [card("p1")]
    assert letter["personalisation"]["checkout_started"] is True
    assert letter["personalisation"]["cart_started_at"] == "2024-01-04T10:00:00"
    assert letter["fired_at"] == dt.datetime(2024, 1, 4, 15, 0)


def test_abandoned_cart_window_is_configurable(build):
    letters = build(cart_shop(241), as_of=3, abandoned_cart_window_hours=6).letters("vic")
    assert "abandoned_cart:vic:2024-01-04" not in letters


def test_abandoned_cart_waits_until_the_window_has_closed(build):
    shop = visitor_shop()
    shop.event("add_to_cart", "vic", at(3, 22, 0), product_id="p1").seen_until(at(3, 23, 59))
    shop.seen_until(at(4, 8))
    assert "abandoned_cart" not in build(shop, as_of=3).triggers("vic")
    assert "abandoned_cart" in build(shop, as_of=4).triggers("vic")


@pytest.mark.parametrize(
    ("data_seen_until", "abandoned"),
    [
        pytest.param(at(3, 12), False, id="intraday-build-window-still-open"),
        pytest.param(at(3, 15), True, id="intraday-build-window-closed"),
    ],
)
def test_an_intraday_build_plans_the_cart_letter_only_once_its_window_has_closed(build, data_seen_until, abandoned):
    """The hourly build runs while the day is landing: what is known ends at the latest event."""
    shop = visitor_shop().event("add_to_cart", "vic", at(3, 11), product_id="p1").seen_until(data_seen_until)
    assert ("abandoned_cart" in build(shop, as_of=3).triggers("vic")) is abandoned


@pytest.mark.parametrize(
    ("then", "abandoned"),
    [
        pytest.param(None, True, id="only-viewed"),
        pytest.param("add_to_cart", False, id="carted-instead"),
    ],
)
def test_abandoned_browse(build, then, abandoned):
    shop = visitor_shop()
    shop.event("product_view", "vic", at(3, 9), product_id="p3")
    if then:
        shop.event(then, "vic", at(3, 20), product_id="p3")
    shop.seen_until(at(4, 23))
    letters = build(shop, as_of=4).letters("vic")
    assert ("abandoned_browse:vic:2024-01-04" in letters) is abandoned
    if abandoned:
        assert letters["abandoned_browse:vic:2024-01-04"]["personalisation"]["products"] == [
            card("p3")
        ]


def new_buyer_shop() -> TinyShop:
    """Ann bought p1 and p2 together; Bob's first order holds p1 only."""
    return (
        TinyShop()
        .product("p1")
        .product("p2")
        .product("p3")
        .customer("ann", at(-50))
        .order("a1", "ann", at(-50), [("p1", 1), ("p2", 1)])
        .order("a2", "ann", at(-45), [("p1", 1), ("p2", 1)])
        .customer("bob", at(0))
        .order("b1", "bob", at(0), [("p1", 6)])
    )


def test_post_purchase_and_cross_sell_for_a_new_buyer(build):
    post = build(new_buyer_shop(), as_of=1).letters("bob")["post_purchase:bob:b1"]
    assert post["personalisation"]["order_id"] == "b1"
    assert post["personalisation"]["bonus_amount"] == 5.0
    assert post["personalisation"]["products"] == [card("p1")]
    cross_sell = build(new_buyer_shop(), as_of=7).letters("bob")["cross_sell:bob:b1"]
    # p2 goes with p1: bought together with it in Ann's orders
    assert cross_sell["personalisation"]["recommendations"][0] == card("p2")


def test_each_letter_recommends_by_its_own_products_and_never_one_it_is_about(build):
    """Letters are ranked per list of products: bob and dan (p1) share one, cat (p3) has her own; p1, bought by
    most orders, is never offered to the buyers of p1."""
    shop = (
        new_buyer_shop()
        .product("p4")
        .customer("eve", at(-50))
        .order("e1", "eve", at(-50), [("p3", 1), ("p4", 1)])
        .order("e2", "eve", at(-45), [("p3", 1), ("p4", 1)])
        .customer("cat", at(0))
        .order("c1", "cat", at(0), [("p3", 1)])
        .customer("dan", at(0))
        .order("d1", "dan", at(0), [("p1", 1)])
    )
    built = build(shop, as_of=7)
    offered = {
        name: [card["product_id"] for card in built.letters(name)[f"cross_sell:{name}:{order}"]["personalisation"]["recommendations"]]
        for name, order in (("bob", "b1"), ("cat", "c1"), ("dan", "d1"))
    }
    assert offered["bob"][0] == offered["dan"][0] == "p2"  # bought with p1 in Ann's orders
    assert offered["cat"][0] == "p4"  # bought with p3 in Eve's orders
    assert "p1" not in offered["bob"] + offered["dan"] and "p3" not in offered["cat"]
    assert offered["bob"] == offered["dan"] and len(offered["bob"]) == 3


def test_no_cross_sell_once_the_new_buyer_bought_again(build):
    shop = new_buyer_shop().order("b2", "bob", at(5))
    assert "cross_sell" not in build(shop, as_of=7).triggers("bob")


@pytest.mark.parametrize(
    ("as_of", "bought_again", "due"),
    [
        pytest.param(29, False, False, id="day-29-not-yet"),
        pytest.param(30, False, True, id="day-30-interval-passed"),
        pytest.param(30, True, False, id="re-bought-already"),
    ],
)
def test_replenishment_after_the_declared_rebuy_interval(build, as_of, bought_again, due):
    shop = TinyShop().product("coffee", rebuy_interval_days=30).product("mug")
    shop.customer("ann", at(0)).order("o1", "ann", at(0), [("coffee", 1), ("mug", 1)])
    if bought_again:
        shop.order("o2", "ann", at(20), [("coffee", 1)])
    letters = build(shop, as_of=as_of).letters("ann")
    assert ("replenishment:ann:coffee@2024-01-01" in letters) is due
    assert not any(key.startswith("replenishment:ann:mug") for key in letters)  # durable: no interval


def test_replenishment_interval_is_learnt_when_not_declared(build):
    shop = TinyShop().product("tea")
    for customer in ("a", "b", "c"):
        shop.customer(customer, at(0)).order(f"{customer}1", customer, at(0), [("tea", 1)])
        shop.order(f"{customer}2", customer, at(14), [("tea", 1)])
    built = build(shop, as_of=28)
    row = built.connection.execute(
        "select rebuy_interval_days, interval_source from marts.product_rebuy_interval where product_id = 'tea'"
    ).fetchone()
    assert row == (14, "learnt")
    assert "replenishment:a:tea@2024-01-15" in built.letters("a")


def test_we_miss_you_the_day_after_the_expected_purchase(build):
    shop = TinyShop().product("p1").customer("bob", at(0))
    for number, purchase_day in enumerate((0, 20, 40, 60)):
        shop.order(f"o{number}", "bob", at(purchase_day))
    assert "we_miss_you" not in build(shop, as_of=80).triggers("bob")
    letter = build(shop, as_of=81).letters("bob")["we_miss_you:bob:2024-03-21"]
    assert letter["personalisation"]["expected_next_purchase_on"] == "2024-03-21"


@pytest.mark.parametrize(
    ("days_since_purchase", "trigger", "bonus"),
    [
        pytest.param(90, "winback_90", 10.0, id="entering-90"),
        pytest.param(180, "winback_180", 20.0, id="entering-180"),
        pytest.param(360, "winback_360", 30.0, id="entering-360"),
    ],
)
def test_winback_with_a_growing_bonus(build, days_since_purchase, trigger, bonus):
    shop = TinyShop().product("p1").customer("ann", at(-400)).order("o1", "ann", at(0))
    letters = build(shop, as_of=days_since_purchase).letters("ann")
    letter = letters[f"{trigger}:ann:2024-01-01"]
    assert letter["template_name"] == "winback"
    assert letter["personalisation"]["bonus_amount"] == bonus
    assert letter["personalisation"]["days_since_last_purchase"] == days_since_purchase
    assert not any(key.startswith("winback") for key in build(shop, as_of=days_since_purchase - 3).letters("ann"))


def test_welcome_back_series_in_the_first_month_after_returning(build):
    shop = TinyShop().product("p1").customer("ann", at(0)).order("o1", "ann", at(0)).order("o2", "ann", at(100))
    assert not [key for key in build(shop, as_of=100).letters("ann") if key.startswith("welcome_back")]
    assert "welcome_back_day1:ann:2024-04-10" in build(shop, as_of=101).letters("ann")
    assert "welcome_back_day14:ann:2024-04-10" in build(shop, as_of=114).letters("ann")


@pytest.mark.parametrize(
    ("registered", "as_of", "key"),
    [
        # due two days before the local date it arrives on (deliver_on)
        pytest.param(dt.date(2023, 1, 5), dt.date(2024, 1, 3), "anniversary:ann:2024", id="first-anniversary"),
        pytest.param(dt.date(2020, 2, 29), dt.date(2023, 2, 26), "anniversary:ann:2023", id="leap-day-on-feb-28"),
    ],
)
def test_registration_anniversary(build, registered, as_of, key):
    shop = TinyShop().product("p1").customer("ann", dt.datetime.combine(registered, dt.time(8)))
    letters = build(shop, as_of=(as_of - day(0)).days).letters("ann")
    assert key in letters
    assert letters[key]["personalisation"]["years_since_registration"] == as_of.year - registered.year


def test_purchase_jubilee_on_the_fifth_order(build):
    shop = TinyShop().product("p1").customer("ann", at(0))
    for number in range(1, 6):
        shop.order(f"o{number}", "ann", at(number * 3))
    assert "purchase_jubilee" not in build(shop, as_of=12).triggers("ann")
    letter = build(shop, as_of=15).letters("ann")["purchase_jubilee:ann:5"]
    assert letter["personalisation"]["orders_count"] == 5


def test_birthday(build):
    shop = TinyShop().product("p1").customer("ann", at(0), birthday=dt.date(1990, 3, 10))
    # due two days before the local date it arrives on (deliver_on), which the push schedules
    letter = build(shop, as_of=(dt.date(2024, 3, 8) - day(0)).days).letters("ann")["birthday:ann:2024"]
    assert (letter["due_on"], letter["deliver_on"]) == (dt.date(2024, 3, 8), dt.date(2024, 3, 10))
    assert "birthday" not in build(shop, as_of=(dt.date(2024, 3, 10) - day(0)).days).triggers("ann")


@pytest.mark.parametrize(
    ("consent", "suppression"),
    [
        pytest.param(False, None, id="no-consent"),
        pytest.param(True, "unsubscribe", id="unsubscribed"),
        pytest.param(True, "bounce", id="bounced"),
        pytest.param(True, "spam_report", id="reported-spam"),
    ],
)
def test_no_letter_and_no_list_without_consent(build, consent, suppression):
    shop = visitor_shop(consent=consent)
    if suppression:
        shop.event(suppression, "vic", at(0, 8))
    built = build(shop, as_of=0)
    assert built.letters("vic") == {}
    assert built.lists("vic") == set()
    assert built.stage("vic") == "visitor"  # still counted in the lifecycle


def test_a_later_unsubscribe_does_not_change_the_past(build):
    shop = visitor_shop().event("unsubscribe", "vic", at(5))
    assert "welcome_day0" in build(shop, as_of=0).triggers("vic")
    assert build(shop, as_of=6).letters("vic") == {}


def test_audience_lists_and_newsletter(build):
    shop = TinyShop().product("p1").customer("ann", at(0)).order("o1", "ann", at(0)).customer("vic", at(5))
    built = build(shop, as_of=100)
    assert built.lists("ann") == {"stage_departing", "recency_90_180", "rfm_promising", "newsletter"}
    assert built.lists("vic") == {"stage_visitor", "newsletter"}
