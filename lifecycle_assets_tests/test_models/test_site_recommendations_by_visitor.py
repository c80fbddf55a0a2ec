"""The site's recommendations learn from the whole shop once a week and follow each visitor's own interest daily.

What the shop teaches (popularity, the chance of a cart or view, the pairs) is learnt as of the week's
Monday from what had landed by then, and kept until the next Monday or a re-ingested day up to it: a
rebuild, a full refresh included, learns the same. Each visitor's list follows their own purchases and
looks every day: a daily build recomputes only the visitors whose interest changed, and the table equals
the whole-visitors SELECT over the same tables after every step (a refund, an order moved to another
customer, looks leaving the window, a re-ingested past day, the next Monday, an as-of day moved back).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.ingest.storage import raw_table_ddl
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import bound_parameters, build_all, create_table, load_models
from lifecycle_assets_tests.test_models.test_incremental_by_key import customer, land, line, look, order, product
from lifecycle_assets_tests.test_models.tiny_shop import at, day

MODELS = {model.table: model for model in load_models()}
SITE, RELATIONS = MODELS["marts.site_recommendations"], MODELS["intermediate.site_recommendation_relations"]
# what the site's recommendations are built from, in build order (build_all orders them)
BUILT = [model for table, model in MODELS.items() if table.startswith("staging.") and table != "staging.stg_consent_changes"
         or table in ("marts.product_affinity", "intermediate.product_goes_with", "intermediate.product_bought_next",
                      "intermediate.looked_then_bought", RELATIONS.table, SITE.table)]
RULES = {"recommendations_site_count": 2, "recommendations_interest_days": 3, "cross_sell_prior_orders": 0,
         "cross_sell_min_orders": 1}
ENTITY_NAMES = ("customers", "orders", "order_items", "products", "interactions")

# Day 0 is a Monday: days 7 and 14 are the learning days of a 7-day grid.
SHOP = {
    1: {"customers": [customer("ann", 1), customer("bob", 1), customer("cy", 1)],
        "products": [product("p1"), product("p2"), product("p3"), product("p4")],
        "orders": [order("o1", "ann", 1), order("o2", "bob", 1), order("o3", "cy", 1)],
        "order_items": [line("o1", 1, "p1"), line("o2", 1, "p1"), line("o3", 1, "p2")]},
    2: {"orders": [order("o4", "ann", 2), order("o5", "bob", 2)],
        "order_items": [line("o4", 1, "p2"), line("o5", 1, "p3")]},  # buyers of p1 came back for p2 and p3
    3: {"customers": [customer("dee", 3)], "interactions": [look("e1", "dee", 3), look("e2", None, 3, "p2")]},
    4: {"orders": [order("o6", "dee", 4)], "order_items": [line("o6", 1, "p1")]},
    5: {"orders": [order("o7", "cy", 5)], "order_items": [line("o7", 1, "p4"), line("o7", 2, "p2")],
        "interactions": [look("e3", "cy", 5, "p3", carted=True)]},
    6: {"orders": [order("o8", "ann", 6)], "order_items": [line("o8", 1, "p4")]},
    7: {"interactions": [look("e4", "bob", 7, "p2")]},
    8: {"orders": [order("o9", "ann", 8)], "order_items": [line("o9", 1, "p3")],
        "interactions": [look("e5", None, 8, "p1"), look("e6", "bob", 8, "p4")]},
    9: {"orders": [order("o4", "ann", 2, "refunded", at(9)), order("o11", "bob", 5)],  # ann's p2 of day 2 refunded,
        "order_items": [line("o11", 1, "p4")]},  # and bob's order of day 5 exported late
    10: {"orders": [order("o7", "dee", 5, updated=at(10))]},  # a corrected order: o7 was dee's, not cy's
}


@pytest.fixture
def warehouse(tmp_path):
    connection = duckdb.connect(str(tmp_path / "shop.duckdb"))
    connection.execute("create schema raw")
    for entity in ENTITY_NAMES:
        connection.execute(raw_table_ddl(ENTITIES[entity]))
    yield connection
    connection.close()


def land_day(connection, landing_day: int) -> None:
    for entity, rows in SHOP[landing_day].items():
        land(connection, entity, landing_day, rows)


def build(connection, as_of: int, full_refresh: bool = False, **rules) -> dict[str, dict]:
    outcomes = {}
    settings = LifecycleSettings(as_of=day(as_of).isoformat(), **{**RULES, **rules})
    if full_refresh:
        from lifecycle_assets.models.sql_models import run_model

        parameters = settings.sql_parameters(day(as_of))
        for model in (RELATIONS, SITE):
            outcomes[model.table] = run_model(model, connection, parameters, full_refresh=True)
        return outcomes
    build_all(connection, settings, BUILT, on_model=lambda model, outcome: outcomes.__setitem__(model.table, outcome))
    return outcomes


def shown(outcome: dict, name: str):
    return outcome["metadata"][name].value


def rows(connection, sql: str) -> list[tuple]:
    return connection.execute(sql).fetchall()


def differs_from_every_visitor_rebuilt(connection, as_of: int) -> int:
    """Rows of the table not in the SELECT over every visitor (same tables, the same learnt relations), and back."""
    parameters = LifecycleSettings(as_of=day(as_of).isoformat(), **RULES).sql_parameters(day(as_of))
    create_table(connection, SITE, "main.every_visitor", SITE.select_sql, bound_parameters(SITE, parameters))
    return connection.execute(
        f"select (select count(*) from (from {SITE.table} except all from main.every_visitor))"
        " + (select count(*) from (from main.every_visitor except all from marts.site_recommendations))"
    ).fetchone()[0]


def learnt_as_a_new_shop(tmp_path, connection, learning_day: int) -> dict[str, list[tuple]]:
    """The learnt tables of a new warehouse holding only the raw rows landed by the learning day, built as of that day."""
    fresh = duckdb.connect(str(tmp_path / f"as_known_on_{learning_day}_{len(list(tmp_path.glob('as_known_on_*')))}.duckdb"))
    fresh.execute("create schema raw")
    for entity in ENTITY_NAMES:
        fresh.execute(raw_table_ddl(ENTITIES[entity]))
        landed = connection.execute(f"select * from raw.{entity} where _landing_date <= ?", [day(learning_day)]).df()
        fresh.register("landed", landed)
        fresh.execute(f"insert into raw.{entity} by name select * from landed")
        fresh.unregister("landed")
    build(fresh, learning_day, recommendations_learn_every_days=1)
    learnt = learnt_tables(fresh)
    fresh.close()
    return learnt


LEARNT = (RELATIONS.table, "intermediate.product_bought_next")  # the tables learnt as known on the learning day


def learnt_tables(connection) -> dict[str, list[tuple]]:
    return {table: rows(connection, f"select * exclude (learnt_fingerprint) from {table} order by all") for table in LEARNT}


def test_each_day_recomputes_the_visitors_whose_interest_changed_and_equals_every_visitor_rebuilt(warehouse):
    for landing_day in range(1, 8):
        land_day(warehouse, landing_day)
    first = build(warehouse, 7)
    assert shown(first[SITE.table], "rebuilt_from") == "every visitor"
    assert differs_from_every_visitor_rebuilt(warehouse, 7) == 0
    ann = "select product_id from marts.site_recommendations where visitor_id = 'ann'"
    cy = "select product_id from marts.site_recommendations where visitor_id = 'cy'"
    assert rows(warehouse, ann) == [("p3",)]  # she bought the other three

    # Day 8: ann buys p3, a cookie views p1, bob views p4. The relations learnt on Monday (day 7) stay.
    land_day(warehouse, 8)
    daily = build(warehouse, 8)
    assert not shown(daily[RELATIONS.table], "learnt_this_build")
    # from day 6 on (as_of 7 -> 8 reaches back two days): ann (o8 of day 6, o9), bob (his views of days 7 and 8), the
    # cookie, and cy, whose cart of day 5 left the 3-day window; not dee
    assert shown(daily[SITE.table], "rebuilt_from") == day(6).isoformat()
    assert shown(daily[SITE.table], "visitors_recomputed") == 4
    assert differs_from_every_visitor_rebuilt(warehouse, 8) == 0
    assert rows(warehouse, ann) == []  # p3 bought today: never recommended
    # Day 8 exported again without the cookie's view: the cookie had no other look, and its rows go.
    land(warehouse, "interactions", 8, SHOP[8]["interactions"][1:], ingested=dt.datetime(2030, 1, 1))
    assert shown(build(warehouse, 8)[SITE.table], "rebuilt_from") == "every visitor"
    assert differs_from_every_visitor_rebuilt(warehouse, 8) == 0
    assert rows(warehouse, "select count(*) from marts.site_recommendations where visitor_id = 'cookie'") == [(0,)]
    land(warehouse, "interactions", 8, SHOP[8]["interactions"], ingested=dt.datetime(2030, 1, 2))
    build(warehouse, 8)

    # Day 9: ann's p2 of day 2 refunded: she may be shown it again.
    land_day(warehouse, 9)
    build(warehouse, 9)
    assert differs_from_every_visitor_rebuilt(warehouse, 9) == 0
    assert rows(warehouse, ann) == [("p2",)]
    # Day 10: o7 (p4 and p2, day 5) was dee's, not cy's. Nothing else of cy's landed since day 5: only the order's old
    # version names her. She bought p2 alone now, and p2's buyers came back for p4 (Monday's pairs): she is shown p4.
    assert ("p4",) not in rows(warehouse, cy)
    land_day(warehouse, 10)
    moved = build(warehouse, 10)
    assert differs_from_every_visitor_rebuilt(warehouse, 10) == 0
    assert ("p4",) in rows(warehouse, cy)
    # ann (o9, o4), cy and dee (o7), the cookie and bob (events from day 8; bob's view of day 7 leaves the window)
    assert shown(moved[SITE.table], "visitors_recomputed") == 5

    # Nothing lands on day 11: the cookie's view of day 8 leaves the 3-day window, and with it the cookie's rows.
    assert rows(warehouse, "select count(*) > 0 from marts.site_recommendations where visitor_id = 'cookie'") == [(True,)]
    quiet = build(warehouse, 11)
    assert differs_from_every_visitor_rebuilt(warehouse, 11) == 0
    assert rows(warehouse, "select count(*) from marts.site_recommendations where visitor_id = 'cookie'") == [(0,)]
    again = build(warehouse, 11)
    assert shown(again[SITE.table], "rebuilt_from") == "nothing changed"
    assert shown(again[SITE.table], "visitors_recomputed") == 0
    assert shown(quiet[SITE.table], "visitors_recomputed") > 0

    # A past day re-ingested (day 5 without cy's cart), the next Monday, an as-of day moved back: every visitor.
    land(warehouse, "interactions", 5, [], ingested=dt.datetime(2030, 1, 1))
    assert shown(build(warehouse, 11)[SITE.table], "rebuilt_from") == "every visitor"
    assert differs_from_every_visitor_rebuilt(warehouse, 11) == 0
    monday = build(warehouse, 14)
    assert shown(monday[RELATIONS.table], "learnt_this_build") and shown(monday[SITE.table], "rebuilt_from") == "every visitor"
    assert differs_from_every_visitor_rebuilt(warehouse, 14) == 0
    back = build(warehouse, 9)
    assert shown(back[SITE.table], "rebuilt_from") == "every visitor"
    assert differs_from_every_visitor_rebuilt(warehouse, 9) == 0


def test_the_shop_is_learnt_as_known_on_monday_and_again_only_when_what_had_landed_by_then_changed(warehouse, tmp_path,
                                                                                                   monkeypatch):
    for landing_day in range(1, 11):
        land_day(warehouse, landing_day)
    build(warehouse, 10)
    # as of Wednesday (day 10), learnt as known on Monday (day 7): ann's refund, bob's order of day 5 exported late and
    # o7's correction, landed on days 9 and 10, are not known; a new shop holding only what had landed by day 7 learns
    # the same
    learnt = learnt_tables(warehouse)
    assert all(learnt.values()) and {row[-1] for table in LEARNT for row in learnt[table]} == {day(7)}
    assert learnt == learnt_as_a_new_shop(tmp_path, warehouse, 7)
    # a full refresh learns the same again, also a batch of two keys at a time (as a large shop learns)
    monkeypatch.setenv("LIFECYCLE_BUILD_KEYS_PER_BATCH", "2")
    refreshed = build(warehouse, 10, full_refresh=True)
    monkeypatch.delenv("LIFECYCLE_BUILD_KEYS_PER_BATCH")
    assert shown(refreshed[RELATIONS.table], "learnt_this_build") and learnt_tables(warehouse) == learnt
    # a corrected export of day 2 (o5 bought p4, not p3) is learnt again; a day landed after Monday is not
    land(warehouse, "order_items", 2, [line("o4", 1, "p2"), line("o5", 1, "p4")], ingested=dt.datetime(2030, 1, 1))
    corrected = build(warehouse, 10)
    assert shown(corrected[RELATIONS.table], "learnt_this_build")
    assert learnt_tables(warehouse) != learnt and learnt_tables(warehouse) == learnt_as_a_new_shop(tmp_path, warehouse, 7)
    land(warehouse, "orders", 10, [order("o10", "cy", 10)])
    land(warehouse, "order_items", 10, [line("o10", 1, "p3")])
    assert not shown(build(warehouse, 10)[RELATIONS.table], "learnt_this_build")
