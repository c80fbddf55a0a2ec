"""The incremental stage history stays correct: a corrected past day corrects it, a full refresh
rebuilds it, a new column does not break it; and a build writes only what changed."""

from __future__ import annotations

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import SQL_MODELS_DIR, build_all, build_model_assets, parse_model, run_model
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day

HISTORY = "select customer_id, started_on, stage, previous_stage from marts.customer_stage_history order by all"


def shop(bob_refunded: bool = False) -> TinyShop:
    shop = TinyShop().product("p1")
    shop.customer("ann", at(0)).order("a1", "ann", at(0)).order("a2", "ann", at(150))
    shop.customer("bob", at(140)).order("b1", "bob", at(140))
    if bob_refunded:  # the corrected export of day 145: bob's only order came back
        shop.order("b1", "bob", at(140), status="refunded", landed=day(145))
    return shop.seen_until(at(260))


def build(database, as_of: int) -> None:
    with duckdb.connect(str(database)) as connection:
        build_all(connection, LifecycleSettings(as_of=day(as_of).isoformat()))


def query(database, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_a_corrected_past_day_corrects_the_history_from_that_day_on(tmp_path):
    database = shop().write(tmp_path / "shop.duckdb")
    build(database, 150)
    build(database, 250)
    assert ("bob", day(140), "new_buyer", None) in query(database, HISTORY)

    shop(bob_refunded=True).write(database)  # day 145 re-ingested with the refund
    build(database, 250)

    fresh = shop(bob_refunded=True).write(tmp_path / "fresh.duckdb")
    build(fresh, 250)
    assert query(database, HISTORY) == query(fresh, HISTORY)
    assert [row[2] for row in query(database, HISTORY) if row[0] == "bob"] == ["visitor"]
    # What the correction did not touch keeps the build that first recorded it.
    assert query(database, "select recorded_as_of from marts.customer_stage_history "
                           "where customer_id = 'ann' and started_on = '2024-01-01'") == [(day(150),)]


def materialize_history(database, as_of: int, full_refresh: bool = False) -> dict:
    result = dg.materialize(
        [*(dg.AssetSpec(["raw", entity]) for entity in ENTITIES), *build_model_assets()],
        resources={"duckdb": DuckDBResource(database=str(database)),
                   "lifecycle_settings": LifecycleSettings(as_of=day(as_of).isoformat())},
        selection=dg.AssetSelection.groups("lifecycle"),
        run_config={"ops": {"marts__customer_stage_history": {"config": {"full_refresh": full_refresh}}}},
    )
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["marts", "customer_stage_history"]]
    return {name: value.value for name, value in event.materialization.metadata.items()}


def test_full_refresh_rebuilds_the_history_from_scratch(tmp_path):
    database = shop().write(tmp_path / "shop.duckdb")
    materialize_history(database, 150)
    later = materialize_history(database, 250)
    assert later["rows_removed"] == 0 and not later["full_refresh"]
    assert {row[0] for row in query(database, "select recorded_as_of from marts.customer_stage_history")} == {day(150), day(250)}

    refreshed = materialize_history(database, 250, full_refresh=True)
    assert refreshed["full_refresh"]
    assert query(database, "select distinct recorded_as_of from marts.customer_stage_history") == [(day(250),)]
    assert refreshed["dagster/row_count"] == later["dagster/row_count"]


def test_a_column_added_to_the_model_joins_the_existing_history(tmp_path):
    database = shop().write(tmp_path / "shop.duckdb")
    build(database, 250)
    before = query(database, "select customer_id, started_on, stage, recorded_as_of from marts.customer_stage_history order by all")

    text = (SQL_MODELS_DIR / "marts" / "customer_stage_history.sql").read_text(encoding="utf-8")
    changed = tmp_path / "models" / "marts" / "customer_stage_history.sql"
    changed.parent.mkdir(parents=True)
    changed.write_text(text.replace("$as_of::date as recorded_as_of", "$as_of::date as recorded_as_of,\n    'web' as channel"))
    model = parse_model(changed, tmp_path / "models")
    settings = LifecycleSettings(as_of=day(260).isoformat())
    with duckdb.connect(str(database)) as connection:
        outcome = run_model(model, connection, settings.sql_parameters(day(260)))
        rows = connection.execute(
            "select customer_id, started_on, stage, recorded_as_of, channel from marts.customer_stage_history order by all"
        ).fetchall()
    assert outcome["rows_removed"] == 0 and outcome["rows_updated"] == len(before)  # the new column filled in
    assert [row[:4] for row in rows if row[3] == day(250)] == before  # kept, with their first recording
    assert {row[4] for row in rows} == {"web"}
