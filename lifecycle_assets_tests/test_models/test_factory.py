"""The SQL model factory: files become assets with inferred dependencies, bound parameters and metadata."""

from __future__ import annotations

import duckdb
import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.models.checks import AUDITS, build_audit_checks
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.activation.templates import load_templates
from lifecycle_assets.models.sql_models import (
    RECENCY_SEGMENTS,
    RFM_SEGMENTS,
    STAGES,
    SqlModelError,
    build_model_assets,
    known_values,
    load_models,
    parse_model,
)
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day


def write_model(root, relative: str, text: str):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_cte_name_is_not_a_dependency(tmp_path):
    path = write_model(
        tmp_path,
        "marts/example.sql",
        "-- description: example\n"
        "with stg_orders as (select * from raw.orders where ordered_at < $as_of)\n"
        "select * from stg_orders join (select customer_id from staging.stg_customers) as c using (customer_id)",
    )
    model = parse_model(path, tmp_path)
    assert model.deps == [dg.AssetKey(["raw", "orders"]), dg.AssetKey(["staging", "stg_customers"])]
    assert model.key == dg.AssetKey(["marts", "example"])
    assert model.parameters == ("as_of",)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("-- description: x\nselect * from orders", "must be schema-qualified", id="unqualified-table"),
        pytest.param("-- description: x\n-- owner: me\nselect 1", "unknown header key 'owner'", id="unknown-header"),
        pytest.param("select 1", "needs a `-- description:`", id="no-description"),
        pytest.param("-- description: x\nselect 1; select 2", "exactly one SELECT", id="two-statements"),
        pytest.param(
            "-- description: x\n-- materialization: incremental\nselect 1", "needs a unique_key", id="incremental-no-key"
        ),
        pytest.param(
            "-- description: x\n-- materialization: incremental\n-- unique_key: id\n-- incremental_by: landed_on\n"
            "select id, _landing_date as landed_on from raw.orders",
            "landed on or after \\$since", id="incremental-by-without-since",
        ),
        pytest.param(
            "-- description: x\n-- materialization: incremental\n-- unique_key: id\n-- incremental_by: landed_on\n"
            "select id, landed_on from staging.stg_orders where landed_on >= $since",
            "raw.\\* tables only", id="incremental-by-reading-a-model",
        ),
    ],
)
def test_a_broken_model_file_is_named_with_its_reason(tmp_path, text, reason):
    path = write_model(tmp_path, "marts/broken.sql", text)
    with pytest.raises(SqlModelError, match=reason) as error:
        parse_model(path, tmp_path)
    assert "broken.sql" in str(error.value)


def test_every_model_of_the_project_loads_with_metadata():
    models = {model.table: model for model in load_models()}
    assert {"marts.customer_lifecycle", "marts.letters_planned", "marts.audiences", "marts.customer_stage_history"} <= set(
        models
    )
    assert models["marts.customer_stage_history"].materialization == "incremental"
    settings = set(LifecycleSettings.model_fields)
    for model in models.values():
        assert model.description and model.owners
        # `since` and `until` (the landing days to rebuild) are the factory's own, for models built by landing day, and
        # so are `batch` and `batches`, for models built in batches
        factory = ({"since", "until"} if model.incremental_by else set()) | ({"batch", "batches"} if model.batch_keys else set())
        assert set(model.parameters) - factory <= settings, model.table
    # every staging model of a dated entity cuts at the as-of date through the bound parameter
    for table in ("staging.stg_customers", "staging.stg_orders", "staging.stg_interactions"):
        assert "as_of" in models[table].parameters
    assert ("staging", "stg_orders") in models["staging.stg_order_items"].tables_read  # lines of orders up to the date


def shop_with_everything() -> TinyShop:
    shop = TinyShop().product("p1").product("p2")
    shop.customer("ann", at(0)).order("o1", "ann", at(0), [("p1", 1), ("p2", 1)]).order("o2", "ann", at(150))
    shop.customer("bob", at(140)).order("b1", "bob", at(140))
    shop.customer("vic", at(150)).event("add_to_cart", "vic", at(150, 8), product_id="p1")
    shop.customer("nil", at(150), consent=False)
    return shop


def materialize_models(database, as_of):
    raw_sources = [dg.AssetSpec(["raw", entity]) for entity in ENTITIES]
    return dg.materialize(
        [*raw_sources, *build_model_assets(), *build_audit_checks()],
        resources={
            "duckdb": DuckDBResource(database=str(database)),
            "lifecycle_settings": LifecycleSettings(as_of=as_of),
        },
        selection=dg.AssetSelection.groups("lifecycle"),
    )


def metadata_of(result, key: list[str]) -> dict:
    [materialization] = [
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(key)
    ]
    return {name: value.value for name, value in materialization.metadata.items()}


def test_materialize_reports_metadata_passes_audits_and_history_is_incremental(tmp_path):
    database = shop_with_everything().write(tmp_path / "shop.duckdb")
    first = materialize_models(database, day(150).isoformat())
    assert first.success
    checks = {evaluation.check_name: evaluation.passed for evaluation in first.get_asset_check_evaluations()}
    assert checks == {audit.name: True for audit in AUDITS}

    lifecycle = metadata_of(first, ["marts", "customer_lifecycle"])
    assert lifecycle["dagster/row_count"] == 4
    assert (lifecycle["stage/returned"], lifecycle["stage/new_buyer"], lifecycle["stage/visitor"]) == (1, 1, 2)
    assert "```sql" in lifecycle["sql"] and "$as_of" in lifecycle["sql"]
    assert "stage" in [column.name for column in lifecycle["dagster/column_schema"].columns]
    assert "@example.com" not in lifecycle["preview"] and "| ann |" in lifecycle["preview"]
    letters = metadata_of(first, ["marts", "letters_planned"])
    assert letters["template_name/welcome"] == 1  # vic; nil has no consent
    report = metadata_of(first, ["marts", "lifecycle_report"])
    assert report["customers_total"] == 4.0
    history = metadata_of(first, ["marts", "customer_stage_history"])
    # Day 150 is the last landing day, still open: its transitions wait. Before it: ann new_buyer
    # (day 0) and departing (day 90), bob new_buyer (day 140).
    assert history["rows_added"] == history["dagster/row_count"] == 3

    again = materialize_models(database, day(150).isoformat())
    assert metadata_of(again, ["marts", "customer_stage_history"])["rows_added"] == 0

    later = materialize_models(database, day(250).isoformat())
    # day 150: ann returned, vic and nil visitors; ann active again on day 180 (30 days after her
    # return) and departing on day 240; bob departing on day 230
    assert metadata_of(later, ["marts", "customer_stage_history"])["rows_added"] == 6
    with duckdb.connect(str(database)) as connection:
        ann = connection.execute(
            "select started_on, stage from marts.customer_stage_history where customer_id = 'ann' order by started_on"
        ).fetchall()
    assert [stage for _, stage in ann] == ["new_buyer", "departing", "returned", "active", "departing"]


def test_as_of_defaults_to_the_latest_landing_day(tmp_path):
    database = shop_with_everything().write(tmp_path / "shop.duckdb")
    with duckdb.connect(str(database)) as connection:
        assert LifecycleSettings().resolve_as_of(connection) == day(150)


@pytest.mark.parametrize("audit", [a for a in AUDITS if a.asset == ("marts", "letters_planned")], ids=lambda a: a.name)
def test_letter_audits_find_a_bad_letter(tmp_path, build, audit):
    built = build(shop_with_everything(), as_of=150)
    connection = built.connection
    assert connection.execute(f"select count(*) from ({audit.bad_rows_sql})").fetchone()[0] == 0
    # a duplicated letter for the customer without consent breaks both rules
    connection.execute(
        "insert into marts.letters_planned select * replace ('nil' as customer_id) from marts.letters_planned limit 1"
    )
    connection.execute("insert into marts.letters_planned select * from marts.letters_planned where customer_id = 'nil'")
    assert connection.execute(f"select count(*) from ({audit.bad_rows_sql})").fetchone()[0] >= 1
    assert audit.blocking


def test_a_malformed_as_of_is_named(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as connection:
        with pytest.raises(ValueError, match="lifecycle_settings.as_of must be a day YYYY-MM-DD, got '21.11.2026'"):
            LifecycleSettings(as_of="21.11.2026").resolve_as_of(connection)
        with pytest.raises(ValueError, match="no raw"):
            LifecycleSettings().resolve_as_of(connection)


def test_a_past_day_is_complete_and_its_transitions_are_recorded_at_once(build):
    """A backtest as of day 90 of a shop that landed until day 150: day 90 is over, ann's departing counts."""
    built = build(shop_with_everything(), as_of=90)
    assert built.connection.execute(
        "select stage, started_on from marts.customer_stage_history where customer_id = 'ann' order by started_on"
    ).fetchall() == [("new_buyer", day(0)), ("departing", day(90))]


def test_counts_list_every_known_value_with_zero_and_segment_tables_add_up(tmp_path):
    """A stage, segment or letter type with no rows is reported as 0, so it stays on the UI's plot."""
    database = shop_with_everything().write(tmp_path / "shop.duckdb")
    result = materialize_models(database, day(150).isoformat())

    lifecycle = metadata_of(result, ["marts", "customer_lifecycle"])
    # ann returned, bob new buyer, vic and nil visitors: nobody active or departing
    assert {stage: lifecycle[f"stage/{stage}"] for stage in STAGES} == {
        "visitor": 2, "new_buyer": 1, "active": 0, "departing": 0, "returned": 1
    }
    assert {segment: lifecycle[f"recency_segment/{segment}"] for segment in RECENCY_SEGMENTS} == {
        "0_90": 2, "90_180": 0, "180_360": 0, "360_plus": 0
    }
    assert sum(lifecycle[f"rfm_segment/{segment}"] for segment in RFM_SEGMENTS) == 2
    assert lifecycle["rfm_segment/champions"] == 0 and lifecycle["rfm_segment/none"] == 2

    table = lifecycle["counts/stage_by_recency_segment"]
    assert table.splitlines()[0] == "| stage / recency_segment | 0_90 | 90_180 | 180_360 | 360_plus | none | total |"
    assert "| visitor | 0 | 0 | 0 | 0 | 2 | 2 |" in table
    assert "| departing | 0 | 0 | 0 | 0 | 0 | 0 |" in table
    assert "| total | 2 | 0 | 0 | 0 | 2 | 4 |" in table
    rfm_table = lifecycle["counts/rfm_segment"]
    assert "| lost | 0 |" in rfm_table and "| new_customers | 1 |" in rfm_table and "| total | 4 |" in rfm_table

    audiences = metadata_of(result, ["marts", "audiences"])
    lists = audiences["counts/list_name"]
    assert "| newsletter | 3 |" in lists  # nil has no consent
    assert "| stage_departing | 0 |" in lists and "| rfm_champions | 0 |" in lists
    assert audiences["list_name/stage_active"] == 0 and audiences["list_name/newsletter"] == 3

    letters = metadata_of(result, ["marts", "letters_planned"])
    counts = {name: letters[f"template_name/{name}"] for name in load_templates()}
    assert counts == dict.fromkeys(load_templates(), 0) | {"welcome": 1, "abandoned_cart": 1}
    triggers = metadata_of(result, ["marts", "trigger_events"])
    assert triggers["trigger/winback_360"] == 0


def test_the_factory_knows_every_letter_type_the_activation_sends():
    assert set(known_values()["template_name"]) == set(load_templates())


def test_a_count_table_of_three_columns_is_named_with_its_reason(tmp_path):
    path = write_model(tmp_path, "marts/broken.sql", "-- description: x\n-- count_table: a, b, c\nselect 1 as a")
    with pytest.raises(SqlModelError, match=r"broken.sql: count_table takes one column or two"):
        parse_model(path, tmp_path)
