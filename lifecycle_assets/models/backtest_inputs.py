"""When the backtests judge, and whether what a backtest read has changed since it last judged.

A backtest rebuilds models on a held-out past, so it costs as much as the models themselves (a third
of a daily run at 1M customers), while its answer moves slowly. Both backtests therefore judge as of
the last day of a grid of `backtest_every_days` days (Mondays for 7) on or before the build's as-of
day, from what had landed by then, and store a fingerprint of everything they read with their figures:
the day, every setting but as_of, the files of the SQL models it builds (`models_read_by`) and the code,
and the raw rows landed by that day. A build whose fingerprint equals the stored one shows the stored
figures again instead of judging again; a changed rule, a change to a model it builds or a re-ingested
day up to it judges again; a day landed after it, or a change to a model it never builds (a letter's,
a report's), does not. A backtest's figures are thus shown at every build, and judged again once a week
or when what they read changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb

from lifecycle_assets.models.settings import RAW_ENTITIES, LifecycleSettings
from lifecycle_assets.models.sql_models import (
    SHARED_MACROS, SQL_MODELS_DIR, SqlModel, bound_parameters, create_table, load_models, select_sql_on,
)

GRID_START = dt.date(1970, 1, 5)  # a Monday: a grid of 7 days falls on Mondays
PACKAGE = Path(__file__).resolve().parents[1]
# The code a backtest's figures depend on besides the SQL model files.
CODE = ("backtest.py", "models/lapse.py", "models/recommendations.py", "models/settings.py", "models/sql_models.py")
FINGERPRINT_COLUMN = "inputs_fingerprint"


def judged_as_of(as_of: dt.date, every_days: int) -> dt.date:
    """The latest day of the grid on or before `as_of` (every day for 1)."""
    return as_of - dt.timedelta(days=(as_of - GRID_START).days % max(1, every_days))


def models_read_by(tables: tuple[str, ...], root: Path = SQL_MODELS_DIR) -> list[SqlModel]:
    """The SQL models `tables` are built from, themselves included, down to the raw tables (a table that is no SQL
    model, such as the lapse scores, is code: CODE)."""
    by_table = {model.table: model for model in load_models(root)}
    needed, waiting = set(), list(tables)
    while waiting:
        table = waiting.pop()
        if table in needed or table not in by_table:
            continue
        needed.add(table)
        waiting += [f"{schema}.{name}" for schema, name in by_table[table].tables_read]
    return [model for model in by_table.values() if model.table in needed]


def code_version(models: list[SqlModel]) -> str:
    """One hash of the models' SQL files and CODE: a change to a model outside `models` leaves it as it was."""
    digest = hashlib.sha256()
    for path in [*sorted(model.path for model in models), *(PACKAGE / name for name in CODE)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def landed_by(connection, day: dt.date, entities: tuple[str, ...] = RAW_ENTITIES) -> list[tuple[str, list]]:
    """Fingerprint queries of the raw rows landed by `day`: per table their count and latest `_ingested_at` (a
    re-ingested day stamps a new one; a day landed later changes neither)."""
    existing = {row[0] for row in connection.execute(
        "select table_name from information_schema.tables where table_schema = 'raw' and table_catalog = current_database()"
    ).fetchall()}
    return [
        (f"select count(*), max(_ingested_at) from raw.{entity} where _landing_date <= ?", [day])
        for entity in entities if entity in existing
    ]


def staging_as_known_on(connection, schema: str, day: dt.date, settings: LifecycleSettings, tables: tuple[str, ...]) -> None:
    """Build the staging models `tables` (in build order) in `schema` as the build of `day` knew them: the same SQL as
    of `day`, over views of the raw tables keeping the rows landed by then (a refund landed later is not known)."""
    models = {model.table: model for model in load_models()}
    connection.execute(SHARED_MACROS)
    connection.execute(f"create schema if not exists {schema}")
    parameters = settings.sql_parameters(day)
    for table in tables:
        model = models[table]
        for source_schema, name in model.tables_read:
            if source_schema == "raw":
                connection.execute(
                    f"create or replace view {schema}.{name} as select * from raw.{name} "
                    f"where _landing_date <= date '{day.isoformat()}'"
                )
        create_table(connection, model, f"{schema}.{model.name}", select_sql_on(model, schema), bound_parameters(model, parameters))


def inputs_fingerprint(connection, settings: LifecycleSettings, day: dt.date, queries: list[tuple[str, list]],
                       models: list[SqlModel]) -> str:
    """One hash of the judged day, the settings, the models built and the code, and each query's answer (counts and
    hashes of the rows read)."""
    rules = {name: getattr(settings, name) for name in type(settings).model_fields if name != "as_of"}  # the day stands for it
    return fingerprint_of(connection, rules, day, queries, models)


def fingerprint_of(connection, rules: dict[str, object], day: dt.date, queries: list[tuple[str, list]],
                   models: list[SqlModel], *code: bytes) -> str:
    """One hash of the day, the rules (every setting but as_of), the code (the SQL files of `models`, CODE and `code`)
    and each query's answer: the backtests' and a learnt model's (models/learning.py)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"day": day.isoformat(), "rules": rules}, sort_keys=True, default=str).encode())
    digest.update(code_version(models).encode())
    for more in code:
        digest.update(more)
    for sql, parameters in queries:
        digest.update(repr(connection.execute(sql, parameters).fetchall()).encode())
    return digest.hexdigest()


def stored_fingerprint(connection, table: str, column: str = FINGERPRINT_COLUMN) -> str | None:
    """The fingerprint the table's figures were judged with; None when there are none (never built, an older table)."""
    try:
        return connection.execute(f"select any_value({column}) from {table}").fetchone()[0]
    except (duckdb.CatalogException, duckdb.BinderException):  # no such table, or one from before the column
        return None
