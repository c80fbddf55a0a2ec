"""The site's recommendations: files a shop's developers can rely on, popular products for a visitor we
know nothing about, a planted pair found for the checkout, and a backtest that counts hits right.

Every shop here is hand-made (tiny_shop), built in a real DuckDB file with the project's SQL models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.models.recommendations import (
    _write_atomically,
    export_recommendations,
    recommendation_backtest,
    run_recommendation_backtest,
    site_recommendation_files,
)
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import bound_parameters, build_all, build_order, create_table, load_models, run_model
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day

RECOMMENDATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "recommendations.md"


def documented_schema(file_stem: str) -> dict[str, str]:
    """column -> Arrow type, from the table under the file's heading in docs/recommendations.md."""
    text = RECOMMENDATIONS_DOC.read_text(encoding="utf-8")
    section = text.split(f"### `{file_stem}`", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, flags=re.MULTILINE)
    assert rows, f"no schema table under ### `{file_stem}`"
    return dict(rows)


@pytest.fixture
def build(build):
    """The conftest's build, learning at every build: these shops are a few days old and the tests look at what the
    last day's data teaches (learning as of the week's Monday has tests of its own)."""
    return lambda shop, as_of, **rules: build(shop, as_of, **{"recommendations_learn_every_days": 1, **rules})


def popular_shop() -> TinyShop:
    """p1 is in 4 orders, p2 in 3, p3 in 2, p4 in 1; p5 never sold; v1 registered and bought nothing."""
    shop = TinyShop()
    for product in ("p1", "p2", "p3", "p4", "p5"):
        shop.product(product)
    for number in range(1, 5):
        shop.customer(f"c{number}", at(0))
    shop.customer("v1", at(3))
    shop.order("o1", "c1", at(1), [("p1", 1), ("p2", 1), ("p3", 1), ("p4", 1)])
    shop.order("o2", "c2", at(1), [("p1", 1), ("p2", 1), ("p3", 1)])
    shop.order("o3", "c3", at(2), [("p1", 1), ("p2", 1)])
    shop.order("o4", "c4", at(2), [("p1", 1)])
    shop.event("product_view", "v1", at(4), product_id="p4")
    shop.event("product_view", None, at(4), product_id="p3", anonymous_id="cookie-1")
    return shop


def rows(connection, sql: str, parameters=None) -> list[tuple]:
    return connection.execute(sql, parameters or []).fetchall()


def test_a_visitor_without_purchases_gets_the_popular_products(build):
    shop = build(popular_shop(), 5, recommendations_site_count=3).connection
    by_orders = ["p1", "p2", "p3"]  # the three products in the most orders
    default = rows(shop, "select product_id from marts.site_recommendations where visitor_type = 'default' order by recommendation_rank")
    assert [row[0] for row in default] == by_orders
    # v1 viewed p4 (no history yet says views lead to purchases): the popular products, popular first
    v1 = rows(shop, "select product_id, source from marts.site_recommendations where visitor_id = 'v1' order by recommendation_rank")
    assert v1 == [(product, "popular") for product in by_orders]
    cookie = rows(shop, "select product_id from marts.site_recommendations where visitor_id = 'cookie-1' order by recommendation_rank")
    assert [row[0] for row in cookie] == by_orders
    # A buyer is never offered what they bought: c3 (p1, p2) gets the next ones.
    c3 = rows(shop, "select product_id from marts.site_recommendations where visitor_id = 'c3' order by recommendation_rank")
    assert [row[0] for row in c3] == ["p3", "p4", "p5"]


def test_a_buyer_of_the_last_popular_product_of_the_list_gets_the_next_one_instead(build):
    """A visitor's list is always full: a bought product at the list's last popular place leaves room for the next."""
    shop = popular_shop()
    shop.customer("b1", at(0))
    shop.order("ob1", "b1", at(3), [("p3", 1)])  # p3 now in 3 orders, as p2: p1, p2, p3, p4 still
    connection = build(shop, 5, recommendations_site_count=3).connection
    b1 = rows(connection, "select product_id, source from marts.site_recommendations where visitor_id = 'b1' order by recommendation_rank")
    assert b1 == [("p1", "popular"), ("p2", "popular"), ("p4", "popular")]


def test_a_buyer_of_a_products_first_companions_is_offered_the_next_one(build):
    """Only the candidates that can reach a visitor's top are built; one far down a product's list still counts
    for a visitor who bought what stands before it (docs/recommendations.md, section 2)."""
    shop = TinyShop()
    for product in ("a", "b1", "b2", "b3", "f"):
        shop.product(product)
    # Buyers of a come back for b1, b2 and b3; others buy f twice (repeat days without them).
    for number in range(1, 5):
        shop.customer(f"c{number}", at(0))
        shop.order(f"c{number}-1", f"c{number}", at(1), [("a", 1)])
        shop.order(f"c{number}-2", f"c{number}", at(2), [("b1", 1), ("b2", 1), ("b3", 1)])
        shop.customer(f"d{number}", at(0))
        shop.order(f"d{number}-1", f"d{number}", at(1), [("f", 1)])
        shop.order(f"d{number}-2", f"d{number}", at(2), [("f", 1)])
    # x bought a, then the two products its buyers came back for most: b3 is third on a's list.
    shop.customer("x", at(0))
    shop.order("x-1", "x", at(1), [("a", 1)])
    shop.order("x-2", "x", at(2), [("b1", 1), ("b2", 1)])
    connection = build(shop, 5, recommendations_site_count=2).connection
    x = rows(connection, "select product_id, source from marts.site_recommendations where visitor_id = 'x' order by recommendation_rank")
    # f is in the most orders; b3 is raised above its share of orders because buyers of a came back for it
    assert x == [("f", "popular"), ("b3", "bought_next")]


def test_a_large_shop_built_a_batch_of_visitors_at_a_time_gets_the_same_recommendations(build, monkeypatch):
    """A shop with more visitors than LIFECYCLE_BUILD_KEYS_PER_BATCH is built in batches of visitors (a 5M shop in
    one statement spilled 48 GB): every visitor, the default rows and the backtest come out as from one statement."""
    shop = backtest_shop()
    shop.product("kettle")
    shop.event("add_to_cart", "d1", at(4), product_id="tea")  # a buyer's cart, a registered viewer, two cookies
    shop.customer("v1", at(3)).event("product_view", "v1", at(4), product_id="grinder")
    shop.event("product_view", None, at(4), product_id="coffee", anonymous_id="cookie-1")
    shop.event("add_to_cart", None, at(4), product_id="milk", anonymous_id="cookie-2")
    for customer, product in (("a1", "grinder"), ("a2", "grinder"), ("f1", "tea"), ("d2", "coffee")):
        shop.event("product_view", customer, at(1), product_id=product)  # bought the next day, but d2
    rules = dict(cross_sell_prior_orders=0, recommendations_interest_days=1)
    connection = build(shop, 4, **rules).connection
    settings = LifecycleSettings(as_of=day(4).isoformat(), **rules)
    batched = [model for model in build_order(load_models()) if model.batch_keys]
    assert [model.table for model in batched] == ["marts.site_recommendations"]
    looked = next(model for model in load_models() if model.table == "intermediate.looked_then_bought")  # by customer
    listed = "select * from marts.site_recommendations order by all"
    one_statement, backtest = rows(connection, listed), run_recommendation_backtest(connection, settings, day(4))
    visitors = {(visitor_type, visitor_id) for visitor_type, visitor_id, *_ in one_statement}
    assert len(visitors) == 17 and ("default", None) in visitors  # 13 buyers, v1, two cookies; the default rows
    learnt = "select customer_id, bought_later from intermediate.looked_then_bought order by all"
    assert rows(connection, learnt) == [("a1", True), ("a2", True), ("d2", False), ("f1", True)]

    monkeypatch.setenv("LIFECYCLE_BUILD_KEYS_PER_BATCH", "1")
    run_model(looked, connection, settings.sql_parameters(day(4)), full_refresh=True)  # a batch of customers at a time
    for model in batched:
        assert create_table(connection, model, model.table, model.select_sql,
                            bound_parameters(model, settings.sql_parameters(day(4)))) > 2
    assert rows(connection, learnt) == [("a1", True), ("a2", True), ("d2", False), ("f1", True)]
    assert rows(connection, listed) == one_statement
    assert run_recommendation_backtest(connection, settings, day(4)) == backtest


def test_checkout_cross_sell_finds_a_planted_pair(build):
    shop = TinyShop().product("kettle").product("tea").product("milk").product("lamp")
    for number in range(1, 15):
        shop.customer(f"c{number}", at(0))
    # The kettle is bought with tea in 4 of its 5 orders; milk is in most orders, with the kettle once;
    # the lamp is always bought alone.
    for number in range(1, 5):
        shop.order(f"k{number}", f"c{number}", at(1), [("kettle", 1), ("tea", 1)])
    shop.order("k5", "c5", at(1), [("kettle", 1), ("milk", 1)])
    for number in range(6, 13):
        shop.order(f"m{number}", f"c{number}", at(1), [("milk", 1)])
    shop.order("l13", "c13", at(1), [("lamp", 1)]).order("l14", "c14", at(1), [("lamp", 1)])
    connection = build(shop, 2, cross_sell_count=2).connection
    kettle = rows(connection, "select related_product_id, source from marts.checkout_cross_sell where product_id = 'kettle' order by cross_sell_rank")
    assert kettle[0] == ("tea", "bought_together")
    # milk is with the kettle once but in most orders anyway: no added chance, it is only a popular filler
    assert ("milk", "bought_together") not in kettle
    lamp = rows(connection, "select related_product_id, source from marts.checkout_cross_sell where product_id = 'lamp' order by cross_sell_rank")
    assert [source for _, source in lamp] == ["popular", "popular"]


def test_export_files_replace_the_old_ones_whole_with_the_documented_schema(build, tmp_path, monkeypatch):
    folder = tmp_path / "site"
    monkeypatch.setenv("LIFECYCLE_RECOMMENDATIONS_DIR", str(folder))
    connection = build(popular_shop(), 5, recommendations_site_count=3).connection
    database = connection.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]
    connection.close()
    folder.mkdir()
    (folder / "site_recommendations.jsonl").write_text('{"old": true}\n')
    reader = open(folder / "site_recommendations.jsonl", encoding="utf-8")  # a site process reading the old file
    resources = {"duckdb": DuckDBResource(database=database), "lifecycle_settings": LifecycleSettings(as_of=day(5).isoformat(), recommendations_site_count=3)}
    result = dg.materialize([site_recommendation_files], resources=resources)
    assert result.success

    # Renamed into place: the reader still holds the old file whole; the path holds the new one.
    assert reader.read() == '{"old": true}\n'
    reader.close()
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        ["site_recommendations.parquet", "site_recommendations.jsonl", "checkout_cross_sell.parquet", "checkout_cross_sell.jsonl", "manifest.json"]
    )
    for stem in ("site_recommendations", "checkout_cross_sell"):
        documented = documented_schema(stem)
        schema = pq.read_schema(folder / f"{stem}.parquet")
        assert {field.name: str(field.type) for field in schema} == documented
        lines = [json.loads(line) for line in (folder / f"{stem}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert lines and all(set(line) == set(documented) for line in lines)
    site = {(line["visitor_type"], line["visitor_id"]): line["products"] for line in map(json.loads, (folder / "site_recommendations.jsonl").read_text().splitlines())}
    assert [product["product_id"] for product in site[("default", None)]] == ["p1", "p2", "p3"]
    assert [product["rank"] for product in site[("customer", "c3")]] == [1, 2, 3]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["as_of"] == day(5).isoformat() and manifest["files"]["site_recommendations.jsonl"]["rows"] == len(site)


def test_a_failed_export_leaves_the_previous_files_whole(build, tmp_path, monkeypatch):
    folder = tmp_path / "site"
    monkeypatch.setenv("LIFECYCLE_RECOMMENDATIONS_DIR", str(folder))
    connection = build(popular_shop(), 5).connection
    database = connection.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]
    connection.close()
    resources = {"duckdb": DuckDBResource(database=database), "lifecycle_settings": LifecycleSettings(as_of=day(5).isoformat())}
    assert dg.materialize([site_recommendation_files], resources=resources).success
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with duckdb.connect(database) as broken:
        broken.execute("drop table marts.checkout_cross_sell")
    result = dg.materialize([site_recommendation_files], resources=resources, raise_on_error=False)
    assert not result.success
    after = {path.name: path.read_bytes() for path in folder.iterdir()}
    # No half-written or temporary file; the cross-sell files and the manifest are the previous build's.
    assert set(after) == set(before)
    for name in ("checkout_cross_sell.parquet", "checkout_cross_sell.jsonl", "manifest.json"):
        assert after[name] == before[name]


@pytest.mark.parametrize("visitors_per_batch", ["1000000", "1"])
def test_the_files_list_each_visitors_products_in_rank_order(tmp_path, monkeypatch, visitors_per_batch):
    """The site shows a row's products as listed: rank 1 first, whatever order the table's rows are stored in; one
    line per visitor in visitor order, also when a large shop's lists are grouped a batch of visitors at a time."""
    monkeypatch.setenv("LIFECYCLE_BUILD_KEYS_PER_BATCH", visitors_per_batch)
    visitors = ["c1", "c2", "c3", "c4", "c5"]
    with duckdb.connect(str(tmp_path / "shop.duckdb")) as connection:
        connection.execute("create schema marts")
        connection.execute(
            "create table marts.site_recommendations (visitor_type varchar, visitor_id varchar, "
            "recommendation_rank bigint, product_id varchar, source varchar, chance double)"
        )
        connection.execute(
            "create table marts.checkout_cross_sell (product_id varchar, cross_sell_rank bigint, related_product_id varchar, "
            "source varchar, orders_together bigint, chance_together double, added_chance double)"
        )
        # stored last rank first, as a table built by a parallel query may hold them
        for rank in range(12, 0, -1):
            for visitor in reversed(visitors):
                connection.execute(
                    "insert into marts.site_recommendations values ('customer', ?, ?, ?, 'popular', 0.1)",
                    [visitor, rank, f"p{rank:02d}"],
                )
            connection.execute("insert into marts.checkout_cross_sell values ('p00', ?, ?, 'popular', 0, null, null)", [rank, f"p{rank:02d}"])
        export_recommendations(connection, tmp_path / "site", day(5))
    in_order = [f"p{rank:02d}" for rank in range(1, 13)]
    for stem, key in (("site_recommendations", "visitor_id"), ("checkout_cross_sell", "product_id")):
        jsonl = [json.loads(line) for line in (tmp_path / "site" / f"{stem}.jsonl").read_text(encoding="utf-8").splitlines()]
        parquet = pq.read_table(tmp_path / "site" / f"{stem}.parquet").to_pylist()
        for lines in (jsonl, parquet):
            assert [line[key] for line in lines] == (visitors if stem == "site_recommendations" else ["p00"])
            for line in lines:
                assert [product["product_id"] for product in line["products"]] == in_order, (stem, line[key])
                assert [product["rank"] for product in line["products"]] == list(range(1, 13)), (stem, line[key])


@pytest.mark.parametrize("copy_options", ["(format json)", "(format parquet)"])
def test_a_file_whose_writing_fails_midway_keeps_the_previous_file(tmp_path, copy_options):
    target = tmp_path / "site_recommendations.out"
    target.write_text("the previous build\n")
    # Rows stream out until one fails to compute: a half-written file must never take the old one's place.
    failing = "select i, case when i < 300000 then 'ok' else error('the feed broke') end as s from range(400000) as t(i)"
    with duckdb.connect() as connection, pytest.raises(duckdb.Error, match="the feed broke"):
        _write_atomically(connection, failing, target, copy_options)
    assert target.read_text() == "the previous build\n"
    assert [path.name for path in tmp_path.iterdir()] == [target.name]


def backtest_shop() -> TinyShop:
    """Buyers of coffee come back for a grinder; buyers of milk come back for tea. Days 1, 2, 3 are purchase days.

    a1-a3: coffee, grinder, coffee   c1-c2: coffee, grinder   d1-d4: milk, milk   f1-f3: milk, tea, milk   e1: tea
    """
    shop = TinyShop()
    for product in ("coffee", "grinder", "milk", "tea"):
        shop.product(product)
    plans = {
        **{f"a{n}": ["coffee", "grinder", "coffee"] for n in range(1, 4)},
        **{f"c{n}": ["coffee", "grinder"] for n in range(1, 3)},
        **{f"d{n}": ["milk", "milk"] for n in range(1, 5)},
        **{f"f{n}": ["milk", "tea", "milk"] for n in range(1, 4)},
        "e1": ["tea"],
    }
    for customer, products in plans.items():
        shop.customer(customer, at(0))
        for purchase_day, product in enumerate(products, start=1):
            shop.order(f"{customer}-{purchase_day}", customer, at(purchase_day), [(product, 1)])
    return shop


def test_backtest_counts_hits_of_the_top_product_on_held_out_last_purchases(build):
    # Held out: every buyer's last day. What is left: orders coffee 5 (a 3, c 2), grinder 3, milk 7 (a-less:
    # d 4, f 3), tea 3; the repeat days a1-a3 day 2 (coffee before, grinder bought) and f1-f3 day 2 (milk
    # before, tea bought). Top 1 (no shrinking of pairs):
    #   popular only, less what they bought:  a -> milk (held coffee), c -> milk (held grinder),
    #     d -> coffee (held milk), f -> coffee (held milk), e -> milk (held tea): 0 hits of 13.
    #   recommendations: c bought coffee, whose buyers came back for a grinder -> grinder: 2 hits;
    #     d bought milk -> tea (held milk); a, f bought both halves of their pair -> popular; e -> milk.
    connection = build(backtest_shop(), 4).connection
    settings = LifecycleSettings(as_of=day(4).isoformat(), recommendations_site_count=1, cross_sell_prior_orders=0)
    result = run_recommendation_backtest(connection, settings, day(4))
    assert result.customers_judged == 13
    assert result.hit_rate == pytest.approx(2 / 13)
    assert result.baseline_hit_rate == 0
    assert (result.only_recommendations_hit, result.only_baseline_hit) == (2, 0)
    assert result.repeat_buyers_judged == 12
    assert result.repeat_buyers_hit_rate == pytest.approx(2 / 12)
    # The backtest's own tables are gone; the warehouse keeps only its result.
    schemas = {row[0] for row in rows(connection, "select schema_name from information_schema.schemata")}
    assert not any(schema.startswith("recommendation_backtest") for schema in schemas)


@pytest.mark.parametrize("cart_landed", [0, 5])
def test_the_backtest_credits_a_cart_known_on_the_judged_day(build, cart_landed):
    """A cart counts as the site would have counted it on the judged day: at the chance learnt from every customer's
    carts known by then, and only if it had landed by then."""
    shop = backtest_shop()
    for customer in ("a1", "a2", "a3"):  # carted a grinder on day 1 and bought one on day 2 (their day 3 is held out)
        shop.event("add_to_cart", customer, at(1), product_id="grinder")
    for customer in ("d1", "d2", "d3", "d4"):  # carts never followed by a purchase, landed after the judged day
        shop.event("add_to_cart", customer, at(1), product_id="coffee", landed=day(5))
    # e1 carted tea the day before buying it (the held-out day 1); the cart lands on day 0, or late on day 5
    shop.event("add_to_cart", "e1", at(0), product_id="tea", landed=day(cart_landed))
    rules = dict(recommendations_site_count=1, cross_sell_prior_orders=0, recommendations_interest_days=2)
    connection = build(shop, 5, **rules).connection
    # Judged on day 4: the carts known then, of day 2 or before, are judged (bought within 2 days): the a's 3 of 4, e1's
    # tea not bought once held out. A cart's chance, 3/4, beats milk's share of orders (7 of 18; with the d's carts it
    # would be 3/8): e1 is shown tea, a hit; the other hits are c1 and c2's grinder (the backtest above).
    result = run_recommendation_backtest(connection, LifecycleSettings(as_of=day(5).isoformat(), **rules), day(4))
    assert result.customers_judged == 13 and result.baseline_hit_rate == 0
    assert result.hit_rate == pytest.approx((3 if cart_landed <= 4 else 2) / 13)


def test_backtest_asset_reports_the_hit_rates_as_metadata(build):
    connection = build(backtest_shop(), 4).connection
    database = connection.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]
    connection.close()
    settings = LifecycleSettings(as_of=day(4).isoformat(), recommendations_site_count=1, cross_sell_prior_orders=0,
                                 backtest_every_days=1)
    result = dg.materialize([recommendation_backtest], resources={"duckdb": DuckDBResource(database=database), "lifecycle_settings": settings})
    metadata = result.asset_materializations_for_node("marts__recommendation_backtest")[0].metadata
    assert metadata["hit_rate"].value == pytest.approx(round(2 / 13, 4))
    assert metadata["baseline_hit_rate"].value == 0
    assert metadata["customers_judged"].value == 13
    with duckdb.connect(database, read_only=True) as warehouse:
        stored = dict(warehouse.execute("select metric, value from marts.recommendation_backtest").fetchall())
    assert stored["hit_rate"] == pytest.approx(2 / 13)


def test_the_backtest_judges_as_of_monday_and_again_only_when_what_it_read_up_to_it_changed(build):
    """backtest_every_days 7: as of the Monday on or before as_of, from what had landed by then. The next builds in the
    week show the stored figures: an order and a refund landed after Monday change nothing judged; a corrected export
    of a day before it (re-ingested: a new _ingested_at) judges again."""
    connection = build(backtest_shop(), 9).connection
    database = connection.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]

    def materialize(as_of: int) -> dict:
        settings = LifecycleSettings(as_of=day(as_of).isoformat(), recommendations_site_count=1, cross_sell_prior_orders=0)
        result = dg.materialize([recommendation_backtest], resources={"duckdb": DuckDBResource(database=database), "lifecycle_settings": settings})
        metadata = result.asset_materializations_for_node("marts__recommendation_backtest")[0].metadata
        return {name: value.value for name, value in metadata.items()}

    connection.close()
    assert day(7).weekday() == 0
    # Every purchase (days 1-3) is before Monday day 7: the hits of the hand count above, 2 of 13.
    tuesday = materialize(8)
    assert tuesday["judged_this_build"] and tuesday["judged_as_of"] == day(7).isoformat()
    assert (tuesday["hit_rate"], tuesday["customers_judged"]) == (pytest.approx(round(2 / 13, 4)), 13)
    with duckdb.connect(database) as warehouse:
        # Landed on Wednesday: d1 buys tea (a hit, had it counted: milk buyers came back for tea), and e1's tea of
        # day 1 is refunded (e1 would no longer be judged).
        warehouse.execute(
            "insert into raw.orders by name select * replace ('d1-wed' as order_id, ? as ordered_at, ? as _landing_date) "
            "from raw.orders where order_id = 'd1-1'", [at(9), day(9)]
        )
        warehouse.execute(
            "insert into raw.order_items by name select * replace ('d1-wed' as order_id, 'tea' as product_id, ? as _landing_date) "
            "from raw.order_items where order_id = 'd1-1'", [day(9)]
        )
        warehouse.execute(
            "insert into raw.orders by name select * replace ('refunded' as status, ? as updated_at, ? as _landing_date) "
            "from raw.orders where order_id = 'e1-1'", [at(9), day(9)]
        )
    wednesday = materialize(9)
    assert not wednesday["judged_this_build"]
    shown = lambda figures: repr(sorted((k, v) for k, v in figures.items() if k != "judged_this_build"))  # nan == nan
    assert shown(wednesday) == shown(tuesday)
    with duckdb.connect(database) as warehouse:  # a corrected export of day 1: e1's tea was coffee
        warehouse.execute(
            "update raw.order_items set product_id = 'coffee', _ingested_at = ? where order_id = 'e1-1'", [at(10)]
        )
        staging = [model for model in load_models() if model.table in ("staging.stg_orders", "staging.stg_order_items")]
        build_all(warehouse, LifecycleSettings(as_of=day(10).isoformat()), staging)  # Thursday's build
    thursday = materialize(10)
    assert thursday["judged_this_build"] and thursday["judged_as_of"] == day(7).isoformat()
    # As known on Monday: e1's coffee was a purchase (the refund came later) and misses either way (no earlier
    # purchase, shown the popular milk); d1's Wednesday tea does not count: still 2 hits of 13 buyers.
    assert (thursday["hit_rate"], thursday["customers_judged"]) == (pytest.approx(round(2 / 13, 4)), 13)
    with duckdb.connect(database) as warehouse:
        settings = LifecycleSettings(as_of=day(10).isoformat(), recommendations_site_count=1, cross_sell_prior_orders=0)
        assert thursday["backtest"] == run_recommendation_backtest(warehouse, settings, day(7)).markdown()


def test_a_change_to_a_model_a_backtest_or_learning_never_reads_keeps_its_figures_and_a_change_to_one_it_reads_does_not(
    build, tmp_path
):
    """Editing a letter's SQL (letters_planned) does not make the next build judge both backtests and learn the site's
    relations again (minutes at 1M customers); editing a model one of them builds does, for that one only: the
    recommendations read no stage, the departing flag reads no product pair."""
    import shutil

    from lifecycle_assets.backtest import backtest_fingerprint as lapse_fingerprint
    from lifecycle_assets.models.recommendations import backtest_fingerprint as recommendation_fingerprint
    from lifecycle_assets.models.sql_models import SQL_MODELS_DIR

    connection = build(backtest_shop(), 8).connection
    database = connection.execute("select path from duckdb_databases() where database_name = current_database()").fetchone()[0]
    connection.close()
    settings = LifecycleSettings(as_of=day(8).isoformat())
    dg.materialize([recommendation_backtest], resources={"duckdb": DuckDBResource(database=database), "lifecycle_settings": settings})

    def edited(*files: str) -> Path:
        """A copy of the SQL models with a comment added to each file named."""
        root = tmp_path / "_".join(Path(name).stem for name in files) / "dbt_like_sql"
        shutil.copytree(SQL_MODELS_DIR, root)
        for name in files:
            with open(root / name, "a", encoding="utf-8") as sql:
                sql.write("\n-- edited\n")
        return root

    def relearnt(root: Path) -> bool:
        relations = next(model for model in load_models(root) if model.table == "intermediate.site_recommendation_relations")
        parameters = LifecycleSettings(as_of=day(8).isoformat(), recommendations_learn_every_days=1).sql_parameters(day(8))
        return run_model(relations, warehouse, parameters)["metadata"]["learnt_this_build"].value

    with duckdb.connect(database) as warehouse:
        stored = warehouse.execute("select any_value(inputs_fingerprint) from marts.recommendation_backtest").fetchone()[0]
        lapse = lambda root: lapse_fingerprint(warehouse, settings, day(1), 90, root)
        recommendations = lambda root: recommendation_fingerprint(warehouse, settings, day(7), root)
        assert recommendations(SQL_MODELS_DIR) == stored  # the asset's own fingerprint: nothing changed, nothing judged
        assert not relearnt(SQL_MODELS_DIR)

        letters = edited("marts/letters_planned.sql", "marts/trigger_events.sql")
        assert recommendations(letters) == stored and lapse(letters) == lapse(SQL_MODELS_DIR)
        assert not relearnt(letters)

        stages = edited("marts/customer_lifecycle.sql")  # the departing flag's model, no recommendation's
        assert recommendations(stages) == stored and lapse(stages) != lapse(SQL_MODELS_DIR)
        assert not relearnt(stages)

        lines = edited("staging/stg_order_items.sql")  # read by both
        assert recommendations(lines) != stored and lapse(lines) != lapse(SQL_MODELS_DIR)
        assert relearnt(lines)


def test_a_later_export_groups_again_only_the_changed_lists_and_writes_the_same_files(build, tmp_path):
    connection = build(popular_shop(), 5, recommendations_site_count=3).connection
    visitors = connection.execute("select count(distinct (visitor_type, visitor_id)) from marts.site_recommendations").fetchone()[0]
    _, regrouped = export_recommendations(connection, tmp_path / "first", day(5))
    assert regrouped["site_recommendations"] == visitors  # nothing kept yet: every list grouped
    _, regrouped = export_recommendations(connection, tmp_path / "again", day(5))
    assert regrouped == {"site_recommendations": 0, "checkout_cross_sell": 0}

    # Four visitors change: c3's first product, c4's first two products say another source (the same change on two
    # rows: a digest that xor-ed the rows' struct hashes missed it at 1M), cookie-1 gone, a new cookie; the default
    # row's rank order reversed in storage only (not a change). Then the kept lists must give the files a grouping of
    # everything from scratch gives.
    connection.execute("update marts.site_recommendations set product_id = 'p5' "
                       "where visitor_id = 'c3' and recommendation_rank = 1")
    connection.execute("update marts.site_recommendations set source = 'goes_with' "
                       "where visitor_id = 'c4' and recommendation_rank <= 2")
    connection.execute("delete from marts.site_recommendations where visitor_id = 'cookie-1'")
    connection.execute("insert into marts.site_recommendations by name select 'anonymous' as visitor_type, "
                       "'cookie-2' as visitor_id, recommendation_rank, product_id, source, chance "
                       "from marts.site_recommendations where visitor_type = 'default'")
    default_rows = connection.execute("select * from marts.site_recommendations where visitor_type = 'default'").fetchall()
    connection.execute("delete from marts.site_recommendations where visitor_type = 'default'")
    connection.executemany("insert into marts.site_recommendations values (?, ?, ?, ?, ?, ?)", list(reversed(default_rows)))
    _, regrouped = export_recommendations(connection, tmp_path / "daily", day(5))
    assert regrouped == {"site_recommendations": 4, "checkout_cross_sell": 0}
    connection.execute("drop table lifecycle_state.export__site_recommendations")
    connection.execute("drop table lifecycle_state.export__checkout_cross_sell")
    export_recommendations(connection, tmp_path / "scratch", day(5))
    for name in ("site_recommendations.jsonl", "site_recommendations.parquet", "checkout_cross_sell.jsonl"):
        assert (tmp_path / "daily" / name).read_bytes() == (tmp_path / "scratch" / name).read_bytes(), name
    site = {(line["visitor_type"], line["visitor_id"]): line["products"]
            for line in map(json.loads, (tmp_path / "daily" / "site_recommendations.jsonl").read_text().splitlines())}
    assert site[("customer", "c3")][0]["product_id"] == "p5" and ("anonymous", "cookie-1") not in site
    assert [product["source"] for product in site[("customer", "c4")][:2]] == ["goes_with", "goes_with"]
    assert site[("anonymous", "cookie-2")] == site[("default", None)]
    assert [product["product_id"] for product in site[("default", None)]] == ["p1", "p2", "p3"]

    # Lists kept by an older release, with another digest (a 64-bit xor of the rows' hashes, no row count): the next
    # export groups every list again, with the same files, instead of failing on the kept table or trusting it.
    connection.execute("create or replace table lifecycle_state.export__site_recommendations as "
                       "select visitor_type, visitor_id, bit_xor(hash(listed)) as digest, list(listed) as products "
                       "from marts.site_recommendations as listed group by all")
    _, regrouped = export_recommendations(connection, tmp_path / "upgraded", day(5))
    assert regrouped["site_recommendations"] == visitors
    for name in ("site_recommendations.jsonl", "site_recommendations.parquet"):
        assert (tmp_path / "upgraded" / name).read_bytes() == (tmp_path / "scratch" / name).read_bytes(), name
