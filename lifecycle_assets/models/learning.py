"""A model learnt now and then from the whole shop, as the build of its learning day knew the shop.

A model with `built_by: lifecycle_assets.models.learning:learn_as_known_on` and `learnt_every: <setting>`
(intermediate.site_recommendation_relations) is built as of its learning day L: the latest day of a grid
of `<setting>` days (7: Mondays, the backtests' grid; 1: every as-of day) on or before the as-of day, from
the raw rows landed by L. Every model it reads is built again by its own SQL as of L, in a work schema
over views of the raw tables keeping the rows landed by then: a refund landed after L is not known. So
the table is the same whichever build learns it, a full refresh included, and the visitors' lists built
on it change only with the visitors' own interest (models/site_visitors.py).

With the table it stores L and a fingerprint of what it read (the day, every setting but as_of, the code
and the SQL of the models it reads, and per raw table the count and latest `_ingested_at` of the rows
landed by L; as the backtests do, models/backtest_inputs.py). A build with the same fingerprint keeps the
table; the next learning day, a changed setting or a change to a model it reads, or a re-ingested day up
to L learns again; a day landed after L, or a change to a model it never reads, does not.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from lifecycle_assets.models.backtest_inputs import fingerprint_of, judged_as_of, landed_by, stored_fingerprint
from lifecycle_assets.models.sql_models import (
    SqlModel, SqlModelError, batches_for, bound_parameters, build_order, create_table, load_models, select_sql_on,
)

LEARNT_ON = "learnt_on"
FINGERPRINT = "learnt_fingerprint"
# A model built by landing day is not rebuilt from raw rows to learn (a year of events in one statement): as known
# on a day it is its rows landed by then and dated by then, its own as-of rule (an event id keeps its first landing).
AS_KNOWN_ON = {"staging.stg_interactions": "landed_on <= $day and occurred_on <= $day"}


def learning_day(model: SqlModel, parameters: dict[str, object]) -> dt.date:
    return judged_as_of(parameters["as_of"], int(parameters[model.learnt_every]))


def learn_as_known_on(model: SqlModel, connection, parameters: dict[str, object], full_refresh: bool = False) -> dict:
    """Learn the model as of its learning day unless what it would read is what the stored table read."""
    day = learning_day(model, parameters)
    closure = _closure(model)
    fingerprint = _fingerprint(connection, parameters, day, closure)
    kept = stored_fingerprint(connection, model.table, FINGERPRINT)
    learnt = full_refresh or kept != fingerprint
    if learnt:
        _learn(model, connection, parameters, day, fingerprint, closure)
    row_count = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    return {
        "row_count": row_count, "rows_added": row_count if learnt else 0, "rows_updated": 0,
        "rows_removed": 0, "full_refresh": bool(full_refresh and kept),
        "metadata": {"learnt_on": dg.MetadataValue.text(day.isoformat()), "learnt_this_build": dg.MetadataValue.bool(learnt)},
    }


def _closure(model: SqlModel) -> list[SqlModel | tuple[str, str]]:
    """What the model reads, down to the raw tables: raw (schema, name) pairs first, then the models in build order."""
    models = {m.table: m for m in load_models(model.path.parents[1])}
    raw, needed, waiting = set(), {}, list(model.tables_read)
    while waiting:
        schema, name = waiting.pop()
        table = f"{schema}.{name}"
        if schema == "raw":
            raw.add((schema, name))
        elif table not in needed:
            if table not in models:
                raise SqlModelError(f"{model.path}: {table} is not a SQL model, so it cannot be learnt as known on a day")
            needed[table] = models[table]
            if table not in AS_KNOWN_ON:
                waiting.extend(models[table].tables_read)
    return [*sorted(raw), *build_order(list(needed.values()))]


def _fingerprint(connection, parameters: dict[str, object], day: dt.date, closure: list) -> str:
    rules = {name: value for name, value in parameters.items() if name != "as_of"}
    raw = tuple(sorted(name for _, name in _raw_read(closure)))
    models = [entry for entry in closure if isinstance(entry, SqlModel)]  # a change to a model it never reads: kept
    return fingerprint_of(connection, rules, day, landed_by(connection, day, raw), models, Path(__file__).read_bytes())


def _raw_read(closure: list) -> set[tuple[str, str]]:
    """The raw tables the closure reads, including those under a model taken as known on a day (AS_KNOWN_ON)."""
    raw = {item for item in closure if isinstance(item, tuple)}
    for item in closure:
        if isinstance(item, SqlModel) and item.table in AS_KNOWN_ON:
            raw |= {(schema, name) for schema, name in item.tables_read if schema == "raw"}
    return raw


def build_in_key_batches(connection, model: SqlModel, schema: str, bound: dict[str, object], target: str = "") -> None:
    """Build `model` from the tables in `schema` into `target` (default `schema.<name>`); a key model whose tables all
    carry its key a batch of keys at a time, as the factory builds it (a key's rows depend only on its own rows):
    `looked_then_bought` of every customer in one statement is the largest part of learning (and of the recommendation
    backtest), and at 5M customers more than the build's memory."""
    target = target or f"{schema}.{model.name}"
    key_list = ", ".join(f'"{column}"' for column in model.incremental_key)
    read = [name for _, name in model.tables_read]
    carried = model.incremental_key and all(
        set(model.incremental_key) <= {row[0] for row in connection.execute(f"describe {schema}.{name}").fetchall()}
        for name in read
    )
    batches = batches_for(connection.execute(
        f"select approx_count_distinct(({key_list})) from {schema}.{read[0]}").fetchone()[0]) if carried else 1
    if batches == 1:
        create_table(connection, model, target, select_sql_on(model, schema), bound)
        return
    batch_schema = f"{schema}_batch"
    connection.execute(f"drop schema if exists {batch_schema} cascade")
    connection.execute(f"create schema {batch_schema}")
    try:
        for batch in range(batches):
            for name in read:
                connection.execute(f"create or replace view {batch_schema}.{name} as select * from {schema}.{name} "
                                   f"where hash({key_list}) % {batches} = {batch}")
            written = f"create table {target} as" if batch == 0 else f"insert into {target} by name"
            connection.execute(f"{written} {select_sql_on(model, batch_schema)}", bound)
    finally:
        connection.execute(f"drop schema if exists {batch_schema} cascade")


def _learn(model: SqlModel, connection, parameters: dict, day: dt.date, fingerprint: str, closure: list) -> None:
    schema = f"learning__{model.name}"
    known_on = f"date '{day.isoformat()}'"
    at_day = {**parameters, "as_of": day}
    connection.execute(f"drop schema if exists {schema} cascade")
    connection.execute(f"create schema {schema}")
    try:
        for item in closure:
            if isinstance(item, tuple):
                _, name = item
                connection.execute(
                    f"create view {schema}.{name} as select * from raw.{name} where _landing_date <= {known_on}"
                )
            elif item.table in AS_KNOWN_ON:
                rule = AS_KNOWN_ON[item.table].replace("$day", known_on)
                connection.execute(f"create view {schema}.{item.name} as select * from {item.table} where {rule}")
            else:
                build_in_key_batches(connection, item, schema, bound_parameters(item, at_day))
        learnt = f"{schema}.{model.name}"
        create_table(connection, model, learnt, select_sql_on(model, schema), bound_parameters(model, at_day))
        connection.execute(
            f"create or replace table {model.table} as select *, ?::date as {LEARNT_ON}, ? as {FINGERPRINT} from {learnt}",
            [day, fingerprint],
        )
    finally:
        connection.execute(f"drop schema if exists {schema} cascade")
