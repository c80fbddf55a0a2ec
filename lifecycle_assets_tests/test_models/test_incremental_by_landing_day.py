"""staging.stg_interactions is built by landing day: a build reads the days ingested since the last one,
and stays equal to the whole-history rule through new days, a re-ingested past day, an as_of moved
back, a full refresh and a column added to the model."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.ingest.storage import raw_table_ddl
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import SQL_MODELS_DIR, parse_model, run_model
from lifecycle_assets_tests.test_models.tiny_shop import at, day, edited_model

MODEL_FILE = SQL_MODELS_DIR / "staging" / "stg_interactions.sql"
COLUMNS = "event_id, occurred_at, occurred_on, event_type, customer_id, anonymous_id, product_id, letter_key, search_query"
# The rule as the data contract states it, over the whole history at once: an event_id keeps its
# first occurrence (earliest landing day, then file and row), dated by the end of the as-of day.
WHOLE_HISTORY_RULE = f"""
select {COLUMNS}
from (
    select *, occurred_at::date as occurred_on
    from raw.interactions
    qualify row_number() over (partition by event_id order by _landing_date, _source_file, _row_number) = 1
)
where occurred_at < $as_of::date + 1
order by event_id
"""


def land(connection, landing_day: int, events: list[tuple], ingested: dt.datetime | None = None) -> None:
    """Replace one landing day of raw.interactions, as the ingest does: (event_id, occurred day, type, customer)."""
    landed = day(landing_day)
    connection.execute("delete from raw.interactions where _landing_date = ?", [landed])
    connection.executemany(
        "insert into raw.interactions (event_id, occurred_at, event_type, customer_id, _landing_date, _source_file, "
        "_row_number, _ingested_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (event_id, at(occurred), event_type, customer, landed, f"interactions/date={landed}/export.csv", row,
             ingested or dt.datetime.combine(landed, dt.time(23)))
            for row, (event_id, occurred, event_type, customer) in enumerate(events, start=1)
        ],
    )


@pytest.fixture
def warehouse(tmp_path):
    connection = duckdb.connect(str(tmp_path / "shop.duckdb"))
    connection.execute("create schema raw")
    connection.execute(raw_table_ddl(ENTITIES["interactions"]))
    for landing_day in range(1, 11):
        land(connection, landing_day, [
            (f"e{landing_day}a", landing_day, "page_view", "ann"),
            (f"e{landing_day}b", landing_day, "product_view", "bob"),
        ])
    # A late resend: day 3's event lands again on day 6 with other values; the first occurrence wins.
    land(connection, 6, [("e6a", 6, "page_view", "ann"), ("e6b", 6, "product_view", "bob"), ("e3a", 3, "add_to_cart", "zoe")])
    yield connection
    connection.close()


def build(connection, as_of: int, model=None, full_refresh: bool = False) -> dict:
    parameters = LifecycleSettings(as_of=day(as_of).isoformat()).sql_parameters(day(as_of))
    return run_model(model or parse_model(MODEL_FILE), connection, parameters, full_refresh=full_refresh)


def built(connection) -> list[tuple]:
    return connection.execute(f"select {COLUMNS} from staging.stg_interactions order by event_id").fetchall()


def expected(connection, as_of: int) -> list[tuple]:
    return connection.execute(WHOLE_HISTORY_RULE, {"as_of": day(as_of)}).fetchall()


def test_each_build_reads_only_what_changed_and_equals_the_whole_history_rule(warehouse):
    first = build(warehouse, 10)
    assert first["rebuilt_from"] == "every landing day"
    assert built(warehouse) == expected(warehouse, 10)
    assert ("e3a", at(3), day(3), "page_view", "ann", None, None, None, None) in built(warehouse)

    # The next day lands with resends of day 2's and day 9's events, and an event dated the day after.
    land(warehouse, 11, [("e11a", 11, "page_view", "ann"), ("e2a", 2, "search", "zoe"), ("e9b", 9, "search", "zoe"),
                         ("e12x", 12, "page_view", "cy")])
    daily = build(warehouse, 11)
    assert daily["rebuilt_from"] == (day(10) + dt.timedelta(days=-1)).isoformat(), "only the last days are read"
    assert daily["rows_removed"] < len(built(warehouse)) // 2
    assert built(warehouse) == expected(warehouse, 11)
    assert build(warehouse, 11)["rebuilt_from"] == "nothing changed"

    # The event dated day 12 joins when as_of reaches day 12, though no new day landed.
    build(warehouse, 12)
    assert built(warehouse) == expected(warehouse, 12)
    assert "e12x" in {row[0] for row in built(warehouse)}


def test_a_re_ingested_past_day_corrects_the_events_from_that_day_on(warehouse):
    build(warehouse, 10)
    # Day 3 re-ingested: an event dropped, one corrected, and day 6's resend of e3a is now its first occurrence.
    land(warehouse, 3, [("e3b", 3, "add_to_cart", "bob")], ingested=dt.datetime(2026, 1, 1, 8))
    corrected = build(warehouse, 10)
    assert corrected["rebuilt_from"] == day(3).isoformat()
    assert built(warehouse) == expected(warehouse, 10)
    assert ("e3a", at(3), day(3), "add_to_cart", "zoe", None, None, None, None) in built(warehouse)
    assert ("e3b", at(3), day(3), "add_to_cart", "bob", None, None, None, None) in built(warehouse)

    # A landing day removed altogether, and as_of moved back: both still give the whole-history rule.
    warehouse.execute("delete from raw.interactions where _landing_date = ?", [day(8)])
    build(warehouse, 10)
    assert built(warehouse) == expected(warehouse, 10)
    build(warehouse, 5)
    assert built(warehouse) == expected(warehouse, 5)


def test_a_full_refresh_rebuilds_every_landing_day(warehouse):
    build(warehouse, 10)
    warehouse.execute("delete from staging.stg_interactions where event_id = 'e2a'")  # a table gone wrong by hand
    assert build(warehouse, 10)["rebuilt_from"] == "nothing changed"
    refreshed = build(warehouse, 10, full_refresh=True)
    assert refreshed["full_refresh"] and refreshed["rebuilt_from"] == "every landing day"
    assert built(warehouse) == expected(warehouse, 10)


def test_a_column_added_to_the_model_is_filled_on_every_row(warehouse, tmp_path):
    build(warehouse, 10)
    model = edited_model(MODEL_FILE, tmp_path, "    _landing_date as landed_on\n", "    _landing_date as landed_on,\n    _source_file as source_file\n")
    assert build(warehouse, 10, model)["rebuilt_from"] == "every landing day"
    assert warehouse.execute("select count(*) from staging.stg_interactions where source_file is null").fetchone()[0] == 0
    assert built(warehouse) == expected(warehouse, 10)


def test_many_days_are_rebuilt_a_slice_of_days_at_a_time_with_the_same_events(warehouse, monkeypatch):
    """A first build, a day re-ingested long ago and a full refresh of a large shop read at most
    LIFECYCLE_BUILD_ROWS_PER_SLICE raw rows per statement (84M events in one spilled 25 GB), whole days, in
    order: an event id resent on a later day keeps its first occurrence across slices."""
    monkeypatch.setenv("LIFECYCLE_BUILD_ROWS_PER_SLICE", "3")
    first = build(warehouse, 10)
    assert first["slices"] == 10  # two events a day, three on day 6: a day per slice
    assert built(warehouse) == expected(warehouse, 10)
    assert ("e3a", at(3), day(3), "page_view", "ann", None, None, None, None) in built(warehouse)

    land(warehouse, 3, [("e3b", 3, "add_to_cart", "bob")], ingested=dt.datetime(2026, 1, 1, 8))
    corrected = build(warehouse, 10)
    assert corrected["rebuilt_from"] == day(3).isoformat() and corrected["slices"] == 7  # days 3 (now 1 row) and 4 together
    assert built(warehouse) == expected(warehouse, 10)
    assert ("e3a", at(3), day(3), "add_to_cart", "zoe", None, None, None, None) in built(warehouse)

    monkeypatch.setenv("LIFECYCLE_BUILD_ROWS_PER_SLICE", "5")
    refreshed = build(warehouse, 10, full_refresh=True)
    assert refreshed["slices"] == 5 and built(warehouse) == expected(warehouse, 10)
