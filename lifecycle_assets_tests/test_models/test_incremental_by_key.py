"""The staging models of orders, order lines, customers, consent changes and products, and the models by
customer over them (purchase days, stages, what customers looked at and then bought), are built by key:
a build recomputes, from their whole history, only the keys whose raw rows landed, were re-ingested or
vanished since the last one. Through daily builds, re-ingested past days (a corrected status, a row
dropped from a corrected export, a consent withdrawal landing late), an as_of moved back, a full
refresh and a column added, every table equals a full rebuild of the same raw rows, row for row."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.ingest.storage import raw_table_ddl
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models import sql_models
from lifecycle_assets.models.sql_models import SQL_MODELS_DIR, SqlModelError, build_order, load_models, parse_model, run_model
from lifecycle_assets_tests.test_models.tiny_shop import at, day, edited_model

KEY_MODELS = [model for model in build_order(load_models()) if model.incremental_key]
# and the events, built by landing day, which looked_then_bought reads by customer
BUILT = [model for model in build_order(load_models()) if model.incremental_key or model.incremental_by]
REFERENCE = "full_rebuild"


def land(connection, entity: str, landing_day: int, rows: list[dict], ingested: dt.datetime | None = None) -> None:
    """Replace one landing day of raw.<entity>, as the ingest does (a re-ingest stamps a new _ingested_at)."""
    landed = day(landing_day)
    connection.execute(f"delete from raw.{entity} where _landing_date = ?", [landed])
    for row_number, row in enumerate(rows, start=1):
        values = {
            **row,
            "_landing_date": landed,
            "_source_file": f"{entity}/date={landed}/export.csv",
            "_row_number": row_number,
            "_ingested_at": ingested or dt.datetime.combine(landed, dt.time(23)),
        }
        connection.execute(
            f"insert into raw.{entity} ({', '.join(values)}) values ({', '.join('?' for _ in values)})", list(values.values())
        )


def customer(customer_id: str, registered: int, consent: bool | None = True, **changes) -> dict:
    return {"customer_id": customer_id, "email": f"{customer_id}@example.com", "first_name": customer_id.title(),
            "registered_at": at(registered), "timezone": "UTC", "marketing_consent": consent, **changes}


def order(order_id: str, customer_id: str, ordered: int, status: str = "completed", updated: dt.datetime | None = None) -> dict:
    return {"order_id": order_id, "customer_id": customer_id, "ordered_at": at(ordered), "status": status,
            "total_amount": 20, "updated_at": updated}


def line(order_id: str, line_number: int, product_id: str = "p1", quantity: int = 2) -> dict:
    return {"order_id": order_id, "line_number": line_number, "product_id": product_id, "quantity": quantity,
            "unit_price": 10}


def product(product_id: str, price: float = 10) -> dict:
    return {"product_id": product_id, "name": product_id.upper(), "category": "tea", "price": price}


def look(event_id: str, customer_id: str | None, occurred: int, product_id: str = "p1", carted: bool = False) -> dict:
    return {"event_id": event_id, "occurred_at": at(occurred, 9), "event_type": "add_to_cart" if carted else "product_view",
            "customer_id": customer_id, "anonymous_id": None if customer_id else "cookie", "product_id": product_id}


# What each landing day brings, landed one day at a time by the daily builds.
SHOP = {
    1: {"customers": [customer("ann", 1), customer("bob", 1, consent=False)], "products": [product("p1"), product("p2")],
        "orders": [order("o1", "ann", 1)], "order_items": [line("o1", 1), line("o1", 2, "p2")],
        "interactions": [look("e1", "ann", 1, "p2")]},  # bought that day: not a look without buying
    2: {"customers": [customer("cy", 2)], "orders": [order("o2", "bob", 2)], "order_items": [line("o2", 1)],
        "interactions": [look("e2", "cy", 2), look("e3", "cy", 2, "p2", carted=True), look("e4", "bob", 2, "p2")]},
    3: {"orders": [order("o3", "cy", 3), order("o4", "ann", 3)], "order_items": [line("o3", 1), line("o4", 1, "p2")]},
    4: {"products": [product("p1", price=12)], "customers": [{"customer_id": "ann", "first_name": "Annie",
                                                               "updated_at": at(4)}],
        "interactions": [look("e5", None, 4)]},
    5: {"orders": [order("o5", "bob", 5)], "order_items": [line("o5", 1), line("o5", 2, "p2")]},
    6: {"customers": [customer("dee", 6)], "orders": [order("o1", "ann", 1, "refunded", at(6))],
        "interactions": [look("e6", "dee", 6)]},
    7: {"orders": [order("o6", "dee", 7)], "order_items": [line("o6", 1)]},
    8: {"customers": [customer("eve", 8)], "interactions": [look("e7", "eve", 8, carted=True)]},
    9: {"orders": [order("o7", "eve", 9)], "order_items": [line("o7", 1)]},
    10: {"orders": [order("o8", "cy", 10)], "order_items": [line("o8", 1)]},
}


@pytest.fixture
def warehouse(tmp_path):
    connection = duckdb.connect(str(tmp_path / "shop.duckdb"))
    connection.execute("create schema raw")
    for entity in ("customers", "orders", "order_items", "products", "interactions"):
        connection.execute(raw_table_ddl(ENTITIES[entity]))
    connection.execute(f"attach '{tmp_path / 'reference.duckdb'}' as {REFERENCE}")
    yield connection
    connection.close()


def land_day(connection, landing_day: int) -> None:
    for entity, rows in SHOP[landing_day].items():
        land(connection, entity, landing_day, rows)


# a test's own lifecycle settings (monkeypatched); a look is judged four days on: within the shop's ten days, and
# beyond what an as_of move rebuilds anyway (eve's cart of day 8 is judged from day 12; her last rows landed on day 9)
SETTINGS: dict[str, object] = {"recommendations_interest_days": 4}


def parameters(as_of: int) -> dict:
    return LifecycleSettings(as_of=day(as_of).isoformat(), **SETTINGS).sql_parameters(day(as_of))


def build(connection, as_of: int, full_refresh: bool = False, models=None) -> dict[str, dict]:
    return {model.table: run_model(model, connection, parameters(as_of), full_refresh) for model in models or BUILT}


def differences(connection, as_of: int) -> dict[str, int]:
    """Rows of each table not in a full rebuild from the same raw rows, plus rows of the rebuild not in the table."""
    warehouse = connection.execute("select current_database()").fetchone()[0]
    connection.execute(f"use {REFERENCE}")
    try:
        connection.execute("create schema if not exists raw")
        for entity in ("customers", "orders", "order_items", "products", "interactions"):
            connection.execute(f'create or replace view raw.{entity} as select * from "{warehouse}".raw.{entity}')
        build(connection, as_of, full_refresh=True)
    finally:
        connection.execute(f'use "{warehouse}"')
    found = {}
    for model in KEY_MODELS:
        # recorded_as_of (merge_exclude_columns) is the build that first recorded a row: a full rebuild restarts it
        kept = f" exclude ({', '.join(model.merge_exclude_columns)})" if model.merge_exclude_columns else ""
        ours, full = f'(select *{kept} from "{warehouse}".{model.table})', f"(select *{kept} from {REFERENCE}.{model.table})"
        found[model.table] = connection.execute(
            f"select (select count(*) from (from {ours} except all from {full})) "
            f"+ (select count(*) from (from {full} except all from {ours}))"
        ).fetchone()[0]
        # the stage history records day 1's transitions once day 2 begins; cy's look of day 2 is judged from day 6
        filled_from = 6 if model.table == "intermediate.looked_then_bought" else 2
        assert connection.execute(f"select count(*) from {full}").fetchone()[0] > 0 or as_of < filled_from, f"{model.table} is empty"
    return found


NONE_DIFFER = {model.table: 0 for model in KEY_MODELS}


def looked_then_bought(connection) -> list[tuple]:
    return connection.execute("select customer_id, product_id, kind, bought_later from intermediate.looked_then_bought "
                              "order by all").fetchall()


def test_daily_builds_with_re_ingested_past_days_equal_a_full_rebuild(warehouse):
    for landing_day in range(1, 8):
        land_day(warehouse, landing_day)
        outcomes = build(warehouse, landing_day)
        assert differences(warehouse, landing_day) == NONE_DIFFER, f"after day {landing_day}"
    assert len(KEY_MODELS) == 9
    # as_of moved from day 6 to day 7: rows landed from day 6 + 1 - 2 on can enter or leave
    assert outcomes["staging.stg_orders"]["rebuilt_from"] == day(5).isoformat()
    # of the six orders, only those with rows landed from day 5 on: o5, o1 (its refund) and o6
    assert outcomes["staging.stg_orders"]["keys_recomputed"] == 3
    assert build(warehouse, 7)["staging.stg_orders"]["rebuilt_from"] == "nothing changed"
    # o1's refund (day 6) un-bought ann's p2 of day 1: her view of it that day is a look, and o4 bought it on day 3
    assert looked_then_bought(warehouse) == [("ann", "p2", "viewed", True), ("bob", "p2", "viewed", True),
                                             ("cy", "p1", "viewed", True), ("cy", "p2", "carted", False)]

    # Day 3 re-ingested: o3 is now cancelled, and o4 (with its line) is gone from the corrected export.
    land(warehouse, "orders", 3, [order("o3", "cy", 3, "cancelled")], ingested=dt.datetime(2030, 1, 1))
    land(warehouse, "order_items", 3, [line("o3", 1)], ingested=dt.datetime(2030, 1, 1))
    land_day(warehouse, 8)
    outcomes = build(warehouse, 8)
    assert outcomes["staging.stg_orders"]["rebuilt_from"] == day(3).isoformat()
    assert differences(warehouse, 8) == NONE_DIFFER
    orders = dict(warehouse.execute("select order_id, status from staging.stg_orders").fetchall())
    assert orders["o3"] == "cancelled" and "o4" not in orders and orders["o1"] == "refunded"
    assert warehouse.execute("select count(*) from staging.stg_order_items where order_id = 'o4'").fetchone()[0] == 0
    # cy's o3 and ann's o4 no longer bought what they looked at
    assert looked_then_bought(warehouse) == [("ann", "p2", "viewed", False), ("bob", "p2", "viewed", True),
                                             ("cy", "p1", "viewed", False), ("cy", "p2", "carted", False)]
    # Day 2's events re-ingested without cy's view of p1.
    land(warehouse, "interactions", 2, SHOP[2]["interactions"][1:], ingested=dt.datetime(2030, 1, 1))
    assert build(warehouse, 8)["intermediate.looked_then_bought"]["rebuilt_from"] == day(2).isoformat()
    assert differences(warehouse, 8) == NONE_DIFFER
    assert ("cy", "p1", "viewed", False) not in looked_then_bought(warehouse)

    # Ann's consent withdrawal of day 7 lands late, in a re-ingest of day 7; a late refund of o5 lands on day 9.
    land(warehouse, "customers", 7, [{"customer_id": "ann", "marketing_consent": False, "updated_at": at(7)}],
         ingested=dt.datetime(2030, 1, 2))
    land_day(warehouse, 9)
    land(warehouse, "orders", 9, [*SHOP[9]["orders"], order("o5", "bob", 5, "refunded", at(9))])
    build(warehouse, 9)
    assert differences(warehouse, 9) == NONE_DIFFER
    consent = dict(warehouse.execute("select customer_id, marketing_consent from staging.stg_customers").fetchall())
    assert consent["ann"] is False and consent["cy"] is True
    assert warehouse.execute("select is_purchase from staging.stg_order_items where order_id = 'o5'").fetchall() == [(False,), (False,)]

    # A landing day removed altogether, then as_of moved back: both still equal a full rebuild.
    land_day(warehouse, 10)
    warehouse.execute("delete from raw.customers where _landing_date = ?", [day(8)])
    build(warehouse, 10)
    assert differences(warehouse, 10) == NONE_DIFFER
    assert build(warehouse, 4)["staging.stg_orders"]["rebuilt_from"] == day(3).isoformat()
    assert differences(warehouse, 4) == NONE_DIFFER


def test_a_full_refresh_recomputes_every_key(warehouse):
    for landing_day in SHOP:
        land_day(warehouse, landing_day)
    build(warehouse, 10)
    warehouse.execute("update staging.stg_orders set status = 'cancelled' where order_id = 'o2'")  # gone wrong by hand
    assert build(warehouse, 10)["staging.stg_orders"]["rebuilt_from"] == "nothing changed"
    refreshed = build(warehouse, 10, full_refresh=True)["staging.stg_orders"]
    assert refreshed["full_refresh"] and refreshed["rebuilt_from"] == "every landing day"
    assert differences(warehouse, 10) == NONE_DIFFER


def test_a_column_added_to_the_model_is_filled_on_every_row(warehouse, tmp_path):
    for landing_day in SHOP:
        land_day(warehouse, landing_day)
    build(warehouse, 10)
    model_file = SQL_MODELS_DIR / "staging" / "stg_orders.sql"
    model = edited_model(model_file, tmp_path, "        total_amount,\n", "        total_amount,\n        updated_at,\n")
    outcome = build(warehouse, 10, models=[model])["staging.stg_orders"]
    assert outcome["rebuilt_from"] == "every landing day"
    assert warehouse.execute("select count(*) from staging.stg_orders where updated_at is not null").fetchone()[0] == 1
    build(warehouse, 10, models=[parse_model(model_file)])
    assert differences(warehouse, 10) == NONE_DIFFER


def test_an_order_moved_to_another_customer_recomputes_both(warehouse):
    """purchase_days is keyed by customer but reads stg_orders, keyed by order: the order's old and new customer change."""
    for landing_day in range(1, 8):
        land_day(warehouse, landing_day)
        daily = build(warehouse, landing_day)["intermediate.purchase_days"]
    # as_of 6 -> 7 rebuilds from day 5: bob (o5), ann (o1's refund), dee (o6); not cy, whose o3 landed on day 3
    assert daily["rebuilt_from"] == day(5).isoformat() and daily["keys_recomputed"] == 3

    def purchase_days(customer_id: str) -> list[dt.date]:
        return [row[0] for row in warehouse.execute(
            "select purchase_on from intermediate.purchase_days where customer_id = ? order by 1", [customer_id]
        ).fetchall()]

    assert purchase_days("ann") == [day(3)] and purchase_days("dee") == [day(7)]
    # A corrected export of day 3: o4 was dee's order, not ann's.
    land(warehouse, "orders", 3, [order("o3", "cy", 3), order("o4", "dee", 3)], ingested=dt.datetime(2030, 1, 1))
    build(warehouse, 7)
    assert differences(warehouse, 7) == NONE_DIFFER
    assert purchase_days("ann") == [] and purchase_days("dee") == [day(3), day(7)]
    # A later change moves o4 to bob; then that day is re-ingested without it: o4 is dee's again.
    land_day(warehouse, 8)
    land(warehouse, "orders", 8, [order("o4", "bob", 3, updated=at(8))])
    build(warehouse, 8)
    assert differences(warehouse, 8) == NONE_DIFFER and purchase_days("bob") == [day(2), day(3), day(5)]
    land(warehouse, "orders", 8, [], ingested=dt.datetime(2030, 1, 2))
    build(warehouse, 8)
    assert differences(warehouse, 8) == NONE_DIFFER and purchase_days("dee") == [day(3), day(7)]
    # o4's only row removed altogether, then as_of moved back before it
    land(warehouse, "orders", 3, [order("o3", "cy", 3)], ingested=dt.datetime(2030, 1, 3))
    build(warehouse, 9)
    assert differences(warehouse, 9) == NONE_DIFFER and purchase_days("dee") == [day(7)]
    build(warehouse, 2)
    assert differences(warehouse, 2) == NONE_DIFFER


def test_stages_that_change_because_days_pass_follow_the_as_of_day(warehouse, monkeypatch):
    """A customer becomes departing on the day the threshold is crossed, with nothing landed that day:
    stage_transitions recomputes the customers whose change day the as-of day crossed, either way."""
    monkeypatch.setattr(f"{__name__}.SETTINGS", {**SETTINGS, "departing_days": 3, "returned_window_days": 2})
    for landing_day in SHOP:
        land_day(warehouse, landing_day)
        build(warehouse, landing_day)
        assert differences(warehouse, landing_day) == NONE_DIFFER, f"after day {landing_day}"
    assert looked_then_bought(warehouse)[-1][0] != "eve"
    crossed = {}
    for as_of in range(11, 16):  # nothing lands any more; the days pass
        crossed[as_of] = build(warehouse, as_of)["intermediate.stage_transitions"]["keys_recomputed"]
        assert differences(warehouse, as_of) == NONE_DIFFER, f"as of day {as_of}"
    # eve's cart of day 8, judged from day 12 with nothing of hers landed since day 9: she bought it on day 9
    assert looked_then_bought(warehouse)[-1] == ("eve", "p1", "carted", True)
    # 12 -> 13 recomputes the customers with a change day on day 12 or 13 only: eve (her purchase on
    # day 9 + 3 days) and cy (day 10 + 3)
    assert crossed[13] == 2
    assert warehouse.execute(
        "select stage from intermediate.stage_transitions where customer_id = 'cy' and started_on = ?", [day(13)]
    ).fetchall() == [("departing",)]
    recorded = "select recorded_as_of from marts.customer_stage_history where customer_id = 'cy' and started_on = ?"
    assert warehouse.execute(recorded, [day(13)]).fetchall() == [(day(14),)]  # day 13 complete once as_of is 14
    # Back to 13 with nothing landed after day 10: day 13 is not complete, its transition is not recorded;
    # then day 14 lands (as_of stays 13): day 13 is complete and cy's departure is recorded, and kept
    # with that build's as_of when as_of moves on.
    build(warehouse, 13)
    assert differences(warehouse, 13) == NONE_DIFFER and warehouse.execute(recorded, [day(13)]).fetchall() == []
    land(warehouse, "customers", 14, [customer("fay", 14)])
    build(warehouse, 13)
    assert differences(warehouse, 13) == NONE_DIFFER and warehouse.execute(recorded, [day(13)]).fetchall() == [(day(13),)]
    build(warehouse, 15)
    assert differences(warehouse, 15) == NONE_DIFFER and warehouse.execute(recorded, [day(13)]).fetchall() == [(day(13),)]
    # back to 11: eve's departure of day 12 (her purchase on day 9 + 3, nothing of hers landed since day 9)
    # leaves the history
    departed = "select count(*) from marts.customer_stage_history where customer_id = 'eve' and started_on = ?"
    assert warehouse.execute(departed, [day(12)]).fetchone()[0] == 1
    build(warehouse, 11)
    assert differences(warehouse, 11) == NONE_DIFFER and warehouse.execute(departed, [day(12)]).fetchone()[0] == 0
    # back before most departures, then forward again past all of them in one step
    build(warehouse, 6)
    assert differences(warehouse, 6) == NONE_DIFFER
    build(warehouse, 15)
    assert differences(warehouse, 15) == NONE_DIFFER


def test_a_key_model_cannot_read_an_as_of_crosses_model(tmp_path):
    """The keys an as_of move crosses are not in the upstream's kept landing days: a reader by key would miss them."""
    header = "-- description: d\n-- materialization: incremental\n-- unique_key: customer_id\n-- incremental_key: customer_id\n"
    (tmp_path / "intermediate").mkdir()
    (tmp_path / "marts").mkdir()
    (tmp_path / "intermediate" / "days.sql").write_text(
        header + "-- as_of_crosses: crossing.day\nwith crossing as (select customer_id, registered_on as day "
        "from raw.customers) select customer_id from crossing where day <= $as_of::date\n"
    )
    (tmp_path / "marts" / "reader.sql").write_text(header + "select customer_id from intermediate.days\n")
    with pytest.raises(SqlModelError, match="reader.sql.*intermediate.days is not one"):
        load_models(tmp_path)


def test_a_shop_with_more_keys_than_a_batch_builds_in_batches_the_same_tables(warehouse, monkeypatch):
    """A first build or full refresh of a large shop goes a batch of keys at a time, within the memory limit."""
    for landing_day in SHOP:
        land_day(warehouse, landing_day)
    monkeypatch.setenv("LIFECYCLE_BUILD_KEYS_PER_BATCH", "2")
    build(warehouse, 10, full_refresh=True)
    monkeypatch.delenv("LIFECYCLE_BUILD_KEYS_PER_BATCH")
    assert differences(warehouse, 10) == NONE_DIFFER  # the reference: every key in one statement


def test_a_build_interrupted_before_its_state_is_written_leaves_every_table_as_the_last_build_left_it(warehouse, monkeypatch):
    for landing_day in range(1, 4):
        land_day(warehouse, landing_day)
        build(warehouse, landing_day)
    tables = [model.table for model in BUILT]
    before = {table: sorted(warehouse.execute(f"select * from {table}").fetchall(), key=repr) for table in tables}
    land_day(warehouse, 4)
    land_day(warehouse, 5)

    def interrupted(*_):  # the operator stops the run after a table's rows were written, before its state
        raise KeyboardInterrupt

    monkeypatch.setattr(sql_models, "_write_state", interrupted)
    for model in BUILT:
        with pytest.raises(KeyboardInterrupt):
            run_model(model, warehouse, parameters(5))
    assert {table: sorted(warehouse.execute(f"select * from {table}").fetchall(), key=repr) for table in tables} == before
    monkeypatch.undo()
    build(warehouse, 5)  # the next run finds what changed since the last finished build
    assert differences(warehouse, 5) == NONE_DIFFER
