"""The active buyers' series: what a letter offers follows the customer's RFM segment, and it
comes at the cadence the shop sets, once per due day (docs/lifecycle_model.md, "Active buyers' series")."""

from __future__ import annotations

import itertools
import json

import duckdb
import pytest

from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day

AS_OF = 400
# The documented segment-to-content table: segment -> (offer, bonus setting or None, new arrivals shown)
CONTENT = {
    "champions": ("early_access", "active_champions_bonus_amount", True),
    "loyal": ("new_arrivals", None, True),
    "potential_loyalists": ("new_arrivals", None, True),
    "at_risk": ("sale_invitation", "active_at_risk_bonus_amount", False),
    "cannot_lose": ("sale_invitation", "active_at_risk_bonus_amount", False),
}
# A long fixed departing rule, so a buyer 210 days after their last order is still active (at risk).
SETTINGS = LifecycleSettings(as_of=day(AS_OF).isoformat(), departing_days=400)


def _shop() -> TinyShop:
    shop = TinyShop().product("coffee").product("mug").product("new_grinder", landed=day(AS_OF - 5))
    # Regular buyers whose last order was 30 or 60 days ago, with 2 to 8 orders.
    for orders, (days_ago, interval) in itertools.product((2, 3, 5, 8), ((30, 25), (60, 40))):
        customer = f"buyer{orders}x{days_ago}"
        shop.customer(customer, at(20))
        for number in range(orders):
            shop.order(f"{customer}-{number}", customer, at(AS_OF - days_ago - interval * (orders - 1 - number)), [("coffee", 1)])
    shop.customer("fading", at(10))  # four orders, the last 210 days ago: at risk
    for number in range(4):
        shop.order(f"fading-{number}", "fading", at(AS_OF - 210 - 60 * (3 - number)), [("coffee", 1)])
    shop.customer("fresh", at(20))  # a regular buyer who ordered again yesterday: not due for a month
    for number, days_ago in enumerate((61, 31, 1)):
        shop.order(f"fresh-{number}", "fresh", at(AS_OF - days_ago), [("coffee", 1)])
    for number in range(8):  # one-time buyers: new buyers, never in the series
        shop.customer(f"once{number}", at(20)).order(f"once-{number}", f"once{number}", at(AS_OF - 2 - 3 * number), [("mug", 1)])
    return shop.seen_until(at(AS_OF, 23, 59))


@pytest.fixture(scope="module")
def shop_database(tmp_path_factory):
    return _shop().write(tmp_path_factory.mktemp("active_buyers") / "shop.duckdb")


def _series(database, settings: LifecycleSettings) -> dict[str, tuple[str, str, dict]]:
    """customer -> (letter key, RFM segment, personalisation) of their active buyers' letter."""
    with duckdb.connect(str(database)) as connection:
        build_all(connection, settings)
        rows = connection.execute(
            """
            select letters.customer_id, letters.letter_key, lifecycle.rfm_segment, letters.personalisation
            from marts.letters_planned as letters
            join marts.customer_lifecycle as lifecycle using (customer_id)
            where letters.template_name = 'active_buyers'
            """
        ).fetchall()
    return {customer: (key, segment, json.loads(personalisation)) for customer, key, segment, personalisation in rows}


def test_the_offer_follows_the_customers_rfm_segment(shop_database):
    with duckdb.connect(str(shop_database)) as connection:
        build_all(connection, SETTINGS)
        active = dict(
            connection.execute("select customer_id, rfm_segment from marts.customer_lifecycle where stage = 'active'").fetchall()
        )
    series = _series(shop_database, SETTINGS)

    assert {"champions", "loyal", "at_risk"} <= {segment for _, segment, _ in series.values()}
    assert set(series) == {customer for customer, segment in active.items() if segment in CONTENT} - {"fresh"}
    for customer, (_, segment, letter) in series.items():
        offer, bonus_setting, shows_new_arrivals = CONTENT[segment]
        assert (letter["rfm_segment"], letter["offer"]) == (segment, offer), customer
        assert letter["early_access"] == (offer == "early_access") and letter["sale_invitation"] == (offer == "sale_invitation")
        assert letter["bonus_amount"] == (getattr(SETTINGS, bonus_setting) if bonus_setting else None), customer
        assert [product["product_id"] for product in letter["products"]] == (["new_grinder"] if shows_new_arrivals else [])
    assert not any(customer.startswith("once") for customer in series)


def test_the_series_comes_at_the_shops_cadence_once_per_due_day(shop_database):
    customer = "buyer5x30"  # last order 30 days before AS_OF

    def letter_key(**changes):
        return _series(shop_database, SETTINGS.model_copy(update=changes)).get(customer, (None,))[0]

    due_today = f"active_buyers:{customer}:{day(AS_OF).isoformat()}"
    assert letter_key(active_buyers_cadence_days=30) == due_today
    assert letter_key(active_buyers_cadence_days=15) == due_today  # 15 and 30 days after the order
    # The next day's build plans the same letter (catch-up), so the send ledger sends it once.
    assert letter_key(active_buyers_cadence_days=30, as_of=day(AS_OF + 1).isoformat()) == due_today
    assert letter_key(active_buyers_cadence_days=45) is None  # not due until 45 days after the order
    assert letter_key(active_buyers_cadence_days=0) is None  # the shop turned the series off
    # A purchase restarts the count: yesterday's buyer gets no letter a day after the order.
    assert "fresh" not in _series(shop_database, SETTINGS)
