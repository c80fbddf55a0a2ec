"""marts.site_recommendations recomputed by visitor: a daily build recomputes the visitors whose own interest changed.

A visitor's list depends only on their own purchases and recent looks (views, carts) and on what the shop
learnt as of the learning day (intermediate.site_recommendation_relations, models/learning.py), which
changes only when it is learnt again. So, like the factory's incremental models and in their
`lifecycle_state` tables, a build keeps what it saw (the as-of day, a fingerprint of the SQL, the settings
and the learnt relations, and the landing days its staging tables were built from: per raw table and day
the rows and latest `_ingested_at`) and then:

- rebuilds every visitor (the SELECT as it is, a batch of visitors at a time) on the first build, a full
  refresh, relations learnt again, another SQL or setting, an as-of day moved back, a landing day
  re-ingested or removed (its vanished rows' visitors are not kept), or a new landing day before the
  previous build's reach;
- else recomputes, from their whole history, the visitors named by the raw rows landed since: every
  customer any version of a touched order names (an order moved to another customer changes both), the
  visitor of each event, and the visitors with a look that left the interest window as the as-of day moved;
  their rows are deleted and the SELECT over their rows only inserts them again, in one transaction with
  the new state. The default rows depend on the relations alone and are kept;
- else (nothing landed, the same day) reads nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import dagster as dg

from lifecycle_assets.models.learning import FINGERPRINT
from lifecycle_assets.models.sql_models import (  # the factory's own bookkeeping of incremental builds
    AS_OF_REACH_DAYS, SqlModel, _create_state_tables, _landed_days, _read_state, _write_state, bound_parameters,
    create_table, select_sql_on, transaction,
)

SCOPE = "site_recommendations_scope"  # the recomputed visitors' rows, while a build runs
RELATIONS = "intermediate.site_recommendation_relations"
VISITOR = ("case when customer_id is null then 'anonymous' else 'customer' end", "coalesce(customer_id, anonymous_id)")


def build_by_visitor(model: SqlModel, connection, parameters: dict[str, object], full_refresh: bool = False) -> dict:
    as_of = parameters["as_of"]
    bound = bound_parameters(model, parameters)
    fingerprint = _fingerprint(model, connection, parameters)
    landed = _landed_days(connection, model)  # as its staging tables' last builds kept them
    exists = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ? "
        "and table_catalog = current_database()", [model.schema, model.name]).fetchone()[0]
    _create_state_tables(connection)
    previous = _read_state(connection, model)
    since = _since(previous, as_of, fingerprint, landed) if exists and not full_refresh else None
    try:
        with transaction(connection):
            if since is None:  # every visitor
                create_table(connection, model, model.table, model.select_sql, bound)
                recomputed = connection.execute(f"select count(distinct (visitor_type, visitor_id)) from {model.table}").fetchone()[0]
                rebuilt_from = "every visitor"
            elif since == "nothing":
                recomputed, rebuilt_from = 0, "nothing changed"
            else:
                recomputed = _recompute_changed_visitors(model, connection, bound, since, previous[0], as_of, parameters)
                rebuilt_from = since.isoformat()
            _write_state(connection, model, as_of, fingerprint, "", landed)
    finally:
        connection.execute(f"drop schema if exists {SCOPE} cascade")
    row_count = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    return {
        "row_count": row_count, "rows_added": 0, "rows_updated": 0, "rows_removed": 0, "full_refresh": bool(full_refresh and exists),
        "metadata": {"rebuilt_from": dg.MetadataValue.text(rebuilt_from), "visitors_recomputed": dg.MetadataValue.int(int(recomputed))},
    }


def _fingerprint(model: SqlModel, connection, parameters: dict[str, object]) -> str:
    """The SQL, every setting but as_of, and the relations as learnt: another of any of them rebuilds every visitor."""
    learnt = connection.execute(f"select any_value({FINGERPRINT}) from {RELATIONS}").fetchone()[0]
    rules = {name: str(value) for name, value in sorted(parameters.items()) if name != "as_of"}
    return hashlib.sha256(json.dumps([model.select_sql, rules, learnt], sort_keys=True).encode()).hexdigest()


def _since(previous, as_of: dt.date, fingerprint: str, landed: dict) -> dt.date | str | None:
    """The earliest landing day whose rows' visitors to recompute; "nothing"; or None: every visitor.

    `previous`: the last build's (as_of, fingerprint, columns, landed days); `landed`: (table, day) -> (rows, latest
    `_ingested_at`) now."""
    if previous is None or previous[1] != fingerprint or as_of < previous[0]:
        return None
    previous_as_of, _, _, previous_landed = previous
    if any(landed.get(key) != seen for key, seen in previous_landed.items()):
        return None  # a day re-ingested or removed: the visitors of its vanished rows are not kept
    changed = {day for _, day in landed.keys() - previous_landed.keys()}
    reach = previous_as_of + dt.timedelta(days=1 - AS_OF_REACH_DAYS)  # rows landed from here on may enter as as_of moves
    if changed and min(changed) < reach:
        return None  # a day landed late, before the last build's reach: about every visitor since, as costly
    if as_of != previous_as_of:
        changed.add(reach)
    return min(changed) if changed else "nothing"


def _recompute_changed_visitors(model, connection, bound, since: dt.date, previous_as_of: dt.date, as_of: dt.date,
                                parameters: dict) -> int:
    window = int(parameters["recommendations_interest_days"])
    visitor_type, visitor_id = VISITOR
    connection.execute(f"create schema {SCOPE}")
    connection.execute(
        f"""
        create table {SCOPE}.changed as
        -- every customer any version of an order with rows landed since names
        select 'customer' as visitor_type, customer_id as visitor_id
        from raw.orders
        where order_id in (
            select order_id from raw.orders where _landing_date >= $since
            union select order_id from raw.order_items where _landing_date >= $since
        )
        union
        select {visitor_type}, {visitor_id} from raw.interactions where _landing_date >= $since and {visitor_id} is not null
        union
        -- a look leaves the interest window when as_of reaches its day + recommendations_interest_days
        select {visitor_type}, {visitor_id}
        from staging.stg_interactions
        where event_type in ('product_view', 'add_to_cart') and {visitor_id} is not null
            and occurred_on + {window} > $previous_as_of and occurred_on + {window} <= $as_of
        """,
        {"since": since, "previous_as_of": previous_as_of, "as_of": as_of},
    )
    changed = f"(select visitor_type, visitor_id from {SCOPE}.changed)"
    connection.execute(f"create view {SCOPE}.stg_order_items as select * from staging.stg_order_items "
                       f"where ('customer', customer_id) in {changed}")
    connection.execute(f"create view {SCOPE}.stg_interactions as select * from staging.stg_interactions "
                       f"where ({visitor_type}, {visitor_id}) in {changed}")
    connection.execute(f"create view {SCOPE}.site_recommendation_relations as select * from {RELATIONS}")
    connection.execute(f"delete from {model.table} where (visitor_type, visitor_id) in {changed}")
    connection.execute(
        f"insert into {model.table} by name select * from ({select_sql_on(model, SCOPE)}) where visitor_type <> 'default'",
        {**bound, "batch": 0, "batches": 1},
    )
    return connection.execute(f"select count(*) from {SCOPE}.changed").fetchone()[0]
