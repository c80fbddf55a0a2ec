"""The sample personalisation of each letter type has exactly the keys the model gives real letters of that type."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from lifecycle_assets.activation.templates import load_templates
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day

AS_OF = 400  # 2025-02-04


def shop_planning_every_letter_type() -> TinyShop:
    """One customer per letter type, each placed so that their letter is due on AS_OF."""
    shop = TinyShop().product("coffee", rebuy_interval_days=30).product("mug").product("filter")
    shop.customer("wendy", at(AS_OF, 8))  # registers today: welcome
    shop.customer("bea", at(AS_OF - 6, 9))  # still a visitor on day 6: welcome bonus expiring
    shop.customer("carl", at(300)).event("add_to_cart", "carl", at(AS_OF, 8), product_id="mug")
    shop.customer("vera", at(300)).event("product_view", "vera", at(AS_OF - 1, 9), product_id="filter")
    shop.customer("pia", at(300)).order("p1", "pia", at(AS_OF - 1), [("mug", 1)])  # post purchase
    shop.customer("cris", at(300)).order("c1", "cris", at(AS_OF - 7), [("mug", 1)])  # cross sell
    shop.customer("rex", at(300)).order("r1", "rex", at(AS_OF - 30), [("coffee", 1)])  # replenishment
    shop.customer("milo", at(200))  # a purchase every 20 days, the next one overdue: we miss you
    for number, purchase_day in enumerate((AS_OF - 81, AS_OF - 61, AS_OF - 41, AS_OF - 21)):
        shop.order(f"m{number}", "milo", at(purchase_day), [("mug", 1)])
    shop.customer("ada", at(100))  # buys every month, the last time 30 days ago: the active buyers' series
    for number, purchase_day in enumerate((AS_OF - 120, AS_OF - 90, AS_OF - 60, AS_OF - 30)):
        shop.order(f"a{number}", "ada", at(purchase_day), [("coffee", 1)])
    shop.customer("walt", at(200)).order("w1", "walt", at(AS_OF - 90), [("mug", 1)])  # winback 90
    shop.customer("bert", at(100)).order("b1", "bert", at(150)).order("b2", "bert", at(AS_OF - 1))  # welcome back
    shop.customer("anna", at(AS_OF - 364))  # registered a year ago the day after tomorrow: anniversary (due 2 days ahead)
    shop.customer("jude", at(200))  # fifth order today: purchase jubilee
    for number in range(5):
        shop.order(f"j{number}", "jude", at(AS_OF - 8 + 2 * number), [("filter", 1)])
    shop.customer("bill", at(250), birthday=dt.date(1990, 2, 6))  # birthday the day after tomorrow (due 2 days ahead)
    return shop.seen_until(at(AS_OF, 23, 59))


@pytest.fixture(scope="module")
def planned_keys_by_template(tmp_path_factory):
    """template_name -> the set of personalisation key sets its planned letters carry."""
    database = shop_planning_every_letter_type().write(tmp_path_factory.mktemp("letters") / "shop.duckdb")
    with duckdb.connect(str(database)) as connection:
        build_all(connection, LifecycleSettings(as_of=day(AS_OF).isoformat()))
        rows = connection.execute(
            "select template_name, json_keys(personalisation::json) from marts.letters_planned"
        ).fetchall()
    keys: dict[str, set[frozenset[str]]] = {}
    for template_name, personalisation_keys in rows:
        keys.setdefault(template_name, set()).add(frozenset(personalisation_keys))
    return keys


def test_the_tiny_shop_plans_a_letter_of_every_type(planned_keys_by_template):
    assert set(planned_keys_by_template) == set(load_templates())


@pytest.mark.parametrize("name", sorted(load_templates()))
def test_sample_personalisation_has_the_keys_of_real_letters(planned_keys_by_template, name):
    sample = load_templates()[name].sample
    assert planned_keys_by_template[name] == {frozenset(sample)}
