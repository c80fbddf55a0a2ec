"""The SQL model factory: every `.sql` file under `dbt_like_sql/` becomes one Dagster asset.

A model is one SELECT; its table is the file's folder and name (`marts/customer_lifecycle.sql` ->
`marts.customer_lifecycle`, asset key `["marts", "customer_lifecycle"]`). Its metadata lives beside
the SQL in a header of `-- key: value` comment lines, as SQLMesh keeps a `MODEL(...)` block:

    -- description: One row per customer with their lifecycle stage as of the date.
    -- owners: team:data
    -- unique_key: customer_id
    -- materialization: incremental        (default: table)
    -- count_by: stage                     (numeric metadata: rows per value of these columns)
    -- count_table: stage, recency_segment (markdown: rows per value of one column, or of two as
                                            rows x columns; one table per line)
    -- metrics: metric, value              (numeric metadata: one entry per row of a report)
    -- preview_rows: 40                    (rows in the markdown preview; default 5)
    -- merge_exclude_columns: recorded_as_of  (incremental: columns a later build never rewrites)
    -- incremental_by: landed_on         (incremental by landing day: the output column holding each
                                         row's landing day; the SELECT reads raw.* rows landed on or
                                         after `$since` only; see run_model)
    -- incremental_key: customer_id      (incremental by key: each key's rows are a function of that
                                         key's raw rows only; a build recomputes the keys whose raw
                                         rows changed; see _build_by_key; it may read a model keyed
                                         otherwise whose raw rows name this key, see _keys_through)
    -- as_of_crosses: change_days.day    (incremental_key: the SELECT depends on $as_of only through
                                         which of a key's days in this CTE column are <= $as_of;
                                         when as_of moves, the keys with a day crossed are recomputed)
    -- read_whole: raw.orders            (incremental_key with as_of_crosses: tables read whole, not
                                         by key; only rows of a day in the crossed window may depend
                                         on them)

Dependencies are the tables the SELECT reads, found with sqlglot's scopes so that a CTE name is
never taken for a table. Parameters are DuckDB placeholders (`$as_of`) bound at execution.

Counts list every known value of a column (`KNOWN_VALUES`: stages, segments, letter types, ...),
0 when no row has it, so a value that empties out stays on Dagster's plot instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import datetime as dt
import functools
import graphlib
import hashlib
import importlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import sqlglot
from dagster_duckdb import DuckDBResource
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from lifecycle_assets import environment
from lifecycle_assets.environment import PROJECT_ROOT
from lifecycle_assets.ingest.contract import EVENT_TYPES, FUTURE_TOLERANCE_HOURS, ORDER_STATUSES
from lifecycle_assets.metadata import markdown_table, shown_columns
from lifecycle_assets.models.settings import LifecycleSettings

SQL_MODELS_DIR = PROJECT_ROOT / "dbt_like_sql"
HEADER_KEYS = (
    "description",
    "owners",
    "unique_key",
    "materialization",
    "count_by",
    "count_table",
    "metrics",
    "preview_rows",
    "merge_exclude_columns",
    "incremental_by",
    "incremental_key",
    "as_of_crosses",
    "read_whole",
    "batch_keys",
    "built_by",
    "learnt_every",
)
# The SQL parameters an incremental-by-landing-day model restricts its raw rows with, bound by the factory: landed
# on or after $since and, for a model that reads it, before $until (a long rebuild goes a slice of days at a time).
SINCE_PARAMETER = "since"
UNTIL_PARAMETER = "until"
NO_LATER_DAY = dt.date(9999, 12, 31)
# The SQL parameters of a model built in batches (`batch_keys`): this statement's batch and their number.
BATCH_PARAMETERS = ("batch", "batches")
# A full build reads every landing day.
EVERY_LANDING_DAY = dt.date(1, 1, 1)
# The lifecycle's own bookkeeping: what the last build of each incremental-by-landing-day model saw.
STATE_SCHEMA = "lifecycle_state"
MATERIALIZATIONS = ("table", "incremental")
DEFAULT_OWNERS = ("team:data",)

# The values the model's columns can take (docs/lifecycle_model.md sections 1 and 2).
STAGES = ("visitor", "new_buyer", "active", "departing", "returned")
RECENCY_SEGMENTS = ("0_90", "90_180", "180_360", "360_plus")
RFM_SEGMENTS = (
    "champions",
    "loyal",
    "cannot_lose",
    "at_risk",
    "new_customers",
    "potential_loyalists",
    "promising",
    "about_to_sleep",
    "hibernating",
    "lost",
)
TRIGGERS = (
    "welcome_day0",
    "welcome_day2",
    "welcome_bonus_expiring",
    "abandoned_cart",
    "abandoned_browse",
    "post_purchase",
    "cross_sell",
    "replenishment",
    "we_miss_you",
    "winback_90",
    "winback_180",
    "winback_360",
    "welcome_back_day1",
    "welcome_back_day14",
    "anniversary",
    "purchase_jubilee",
    "birthday",
)
# A letter type is a folder of templates there (the activation side sends what the folder holds).
LETTER_TEMPLATES_DIR = PROJECT_ROOT / "lifecycle_assets" / "activation" / "templates"


@functools.cache
def known_values() -> dict[str, tuple[str | None, ...]]:
    """Column name -> every value it can take, in the order an operator reads them; None: no value (visitors)."""
    template_names = tuple(
        sorted(path.name for path in LETTER_TEMPLATES_DIR.iterdir() if path.is_dir() and not path.name.startswith("_"))
    )
    return {
        "stage": STAGES,
        "recency_segment": (*RECENCY_SEGMENTS, None),
        "rfm_segment": (*RFM_SEGMENTS, None),
        "trigger": TRIGGERS,
        "template_name": template_names,
        # the lists of marts/audiences: a list per stage, recency segment and RFM segment, and the newsletter
        "list_name": (
            *(f"stage_{stage}" for stage in STAGES),
            *(f"recency_{segment}" for segment in RECENCY_SEGMENTS),
            *(f"rfm_{segment}" for segment in RFM_SEGMENTS),
            "newsletter",
        ),
        "status": ORDER_STATUSES,
        "event_type": EVENT_TYPES,
        "interval_source": ("declared", "learnt", "none"),
    }


class SqlModelError(ValueError):
    """A model file that cannot become an asset; the message names the file and the reason."""


@dataclass(frozen=True)
class SqlModel:
    path: Path
    schema: str
    name: str
    select_sql: str
    description: str
    owners: tuple[str, ...] = DEFAULT_OWNERS
    unique_key: tuple[str, ...] = ()
    materialization: str = "table"
    count_by: tuple[str, ...] = ()
    count_tables: tuple[tuple[str, ...], ...] = ()
    metrics: tuple[str, ...] = ()
    preview_rows: int = 5
    merge_exclude_columns: tuple[str, ...] = ()
    incremental_by: str = ""
    incremental_key: tuple[str, ...] = ()
    as_of_crosses: str = ""
    read_whole: tuple[tuple[str, str], ...] = ()
    batch_keys: tuple[tuple[str, str], ...] = ()
    built_by: str = ""  # "<module>:<function>" that builds the table instead of the factory (its SELECT stays the rule)
    learnt_every: str = ""  # the setting: learnt as of the latest day of a grid of that many days (models/learning.py)
    tables_read: tuple[tuple[str, str], ...] = ()
    parameters: tuple[str, ...] = field(default_factory=tuple)

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.schema, self.name])

    @property
    def deps(self) -> list[dg.AssetKey]:
        return [dg.AssetKey([schema, name]) for schema, name in self.tables_read]


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_model(path: Path, root: Path = SQL_MODELS_DIR) -> SqlModel:
    """Read one model file: the `-- key: value` header, then the SELECT."""
    relative = path.relative_to(root)
    if len(relative.parts) != 2:
        raise SqlModelError(f"{path}: a model lives in exactly one folder under {root} (the folder is its schema)")
    text = path.read_text(encoding="utf-8")
    header: dict[str, list[str]] = {}
    body_lines: list[str] = []
    in_header = True
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if in_header and stripped.startswith("--"):
            content = stripped[2:].strip()
            key, separator, value = content.partition(":")
            if separator and key.strip() in HEADER_KEYS:
                header.setdefault(key.strip(), []).append(value.strip())
            elif separator and key.strip().replace("_", "").isalpha() and " " not in key.strip():
                raise SqlModelError(f"{path}:{line_number}: unknown header key {key.strip()!r}; known: {', '.join(HEADER_KEYS)}")
            continue
        if in_header and not stripped:
            continue
        in_header = False
        body_lines.append(line)
    select_sql = "\n".join(body_lines).strip().rstrip(";").strip()
    if not select_sql:
        raise SqlModelError(f"{path}: no SELECT after the header")
    try:
        statements = sqlglot.parse(select_sql, read="duckdb")
    except sqlglot.errors.ParseError as error:
        raise SqlModelError(f"{path}: SQL does not parse: {error}") from error
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise SqlModelError(f"{path}: a model is exactly one SELECT")
    tree = statements[0]
    tables_read = sorted(_tables_read(tree, path))
    parameters = sorted({placeholder.name for placeholder in tree.find_all(exp.Placeholder) if placeholder.name})
    materialization = (header.get("materialization") or ["table"])[0]
    if materialization not in MATERIALIZATIONS:
        raise SqlModelError(f"{path}: materialization {materialization!r} is not one of {MATERIALIZATIONS}")
    unique_key = _split_list((header.get("unique_key") or [""])[0])
    if materialization == "incremental" and not unique_key:
        raise SqlModelError(f"{path}: an incremental model needs a unique_key")
    if "description" not in header:
        raise SqlModelError(f"{path}: the header needs a `-- description:` line")
    incremental_by = (header.get("incremental_by") or [""])[0]
    if incremental_by:
        if materialization != "incremental":
            raise SqlModelError(f"{path}: incremental_by needs `-- materialization: incremental`")
        if SINCE_PARAMETER not in parameters:
            raise SqlModelError(f"{path}: an incremental_by model reads raw rows landed on or after ${SINCE_PARAMETER}")
        if any(schema != "raw" for schema, _ in tables_read):
            raise SqlModelError(f"{path}: an incremental_by model reads raw.* tables only (their landing days say what changed)")
    incremental_key = _split_list((header.get("incremental_key") or [""])[0])
    if incremental_key:
        if materialization != "incremental" or incremental_by:
            raise SqlModelError(f"{path}: incremental_key needs `-- materialization: incremental` and no incremental_by")
        if SINCE_PARAMETER in parameters:
            raise SqlModelError(f"{path}: an incremental_key model is the whole-history rule; the factory picks the keys, not ${SINCE_PARAMETER}")
    as_of_crosses = (header.get("as_of_crosses") or [""])[0]
    if as_of_crosses:
        cte, _, column = as_of_crosses.partition(".")
        if not incremental_key or not column or cte not in {c.alias for c in tree.find_all(exp.CTE)}:
            raise SqlModelError(f"{path}: as_of_crosses names <cte>.<day column> of an incremental_key model's SELECT")
    read_whole = tuple(tuple(table.split(".", 1)) for table in _split_list((header.get("read_whole") or [""])[0]))
    if read_whole and (not as_of_crosses or not set(read_whole) <= set(tables_read)):
        raise SqlModelError(f"{path}: read_whole names tables the SELECT reads, in a model with as_of_crosses")
    batch_keys = tuple((table.strip(), key.strip()) for table, _, key in (line.partition(":") for line in header.get("batch_keys", [])))
    if bool(batch_keys) != (set(BATCH_PARAMETERS) <= set(parameters)):
        raise SqlModelError(f"{path}: a model built in batches has batch_keys lines and reads $batch and $batches; one without, neither")
    if batch_keys and (materialization != "table" or any(tuple(table.split(".", 1)) not in tables_read or not key for table, key in batch_keys)):
        raise SqlModelError(f"{path}: a batch_keys line is `<a table the SELECT reads>: <the key's expression>`, in a model materialized as a table")
    built_by = (header.get("built_by") or [""])[0]
    if built_by and (":" not in built_by or materialization != "table"):
        raise SqlModelError(f"{path}: built_by is `<module>:<function>`, in a model materialized as a table")
    learnt_every = (header.get("learnt_every") or [""])[0]
    if learnt_every and (not built_by or learnt_every not in LifecycleSettings.model_fields):
        raise SqlModelError(f"{path}: learnt_every names a lifecycle setting, in a model with built_by")
    count_tables = tuple(_split_list(line) for line in header.get("count_table", []))
    for columns in count_tables:
        if not 1 <= len(columns) <= 2:
            raise SqlModelError(f"{path}: count_table takes one column or two (rows, columns), got {list(columns)}")
    return SqlModel(
        path=path,
        schema=relative.parts[0],
        name=path.stem,
        select_sql=select_sql,
        description=" ".join(header["description"]),
        owners=_split_list(",".join(header.get("owners", []))) or DEFAULT_OWNERS,
        unique_key=unique_key,
        materialization=materialization,
        count_by=_split_list(",".join(header.get("count_by", []))),
        count_tables=count_tables,
        metrics=_split_list((header.get("metrics") or [""])[0]),
        preview_rows=int((header.get("preview_rows") or ["5"])[0]),
        merge_exclude_columns=_split_list((header.get("merge_exclude_columns") or [""])[0]),
        incremental_by=incremental_by,
        incremental_key=incremental_key,
        as_of_crosses=as_of_crosses,
        read_whole=read_whole,
        batch_keys=batch_keys,
        built_by=built_by,
        learnt_every=learnt_every,
        tables_read=tuple(tables_read),
        parameters=tuple(parameters),
    )


def _tables_read(tree: exp.Expression, path: Path) -> set[tuple[str, str]]:
    """Real tables of every scope; a name that resolves to a CTE or subquery is a scope, not an exp.Table."""
    tables: set[tuple[str, str]] = set()
    for scope in traverse_scope(tree):
        for source in scope.sources.values():
            if isinstance(source, exp.Table):
                if not source.db:
                    raise SqlModelError(
                        f"{path}: table {source.name!r} must be schema-qualified (raw.orders, staging.stg_orders)"
                    )
                tables.add((source.db, source.name))
    return tables


@functools.lru_cache(maxsize=256)
def _parsed(path: Path, root: Path, mtime_ns: int, size: int) -> SqlModel:
    """A model file parsed once per process while it is unchanged (a daily run loaded every file five times,
    ~0.35 CPU s each)."""
    return parse_model(path, root)


def load_models(root: Path = SQL_MODELS_DIR) -> list[SqlModel]:
    models = []
    for path in sorted(root.rglob("*.sql")):
        status = path.stat()
        models.append(_parsed(path, root, status.st_mtime_ns, status.st_size))
    keys = [model.table for model in models]
    duplicates = {table for table in keys if keys.count(table) > 1}
    if duplicates:
        raise SqlModelError(f"{root}: two files define {sorted(duplicates)}")
    by_table = {model.table: model for model in models}
    for model in models:
        for schema, name in model.tables_read if model.incremental_key else ():
            upstream = by_table.get(f"{schema}.{name}")
            if schema != "raw" and (
                upstream is None
                or not (upstream.incremental_key or upstream.incremental_by)
                or (upstream.as_of_crosses and not model.as_of_crosses)
            ):
                # an as_of_crosses model's crossed keys are not in its kept landing days: its reader
                # by key crosses the same days (they are the upstream's rows' days, or cover them)
                raise SqlModelError(
                    f"{model.path}: an incremental_key model reads raw.* tables, incremental_by models and "
                    f"incremental_key models (those with as_of_crosses only if this one has it too); "
                    f"{schema}.{name} is not one"
                )
    return models


def build_order(models: list[SqlModel]) -> list[SqlModel]:
    """Models ordered so that each comes after the models it reads."""
    by_table = {model.table: model for model in models}
    graph = {
        model.table: {f"{schema}.{name}" for schema, name in model.tables_read if f"{schema}.{name}" in by_table}
        for model in models
    }
    return [by_table[table] for table in graphlib.TopologicalSorter(graph).static_order()]


# --- execution -------------------------------------------------------------------------------------


def bound_parameters(model: SqlModel, parameters: dict[str, object]) -> dict[str, object]:
    missing = [name for name in model.parameters if name not in parameters
               and not (model.incremental_by and name in (SINCE_PARAMETER, UNTIL_PARAMETER))
               and not (model.batch_keys and name in BATCH_PARAMETERS)]
    if missing:
        raise SqlModelError(f"{model.path}: parameters {missing} are not lifecycle settings")
    return {name: parameters[name] for name in model.parameters if name in parameters}


# Run config of a model asset (Launchpad: ``ops: {<schema>__<name>: {config: {full_refresh: true}}}``).
MODEL_CONFIG_SCHEMA = {
    "full_refresh": dg.Field(
        bool,
        default_value=False,
        description="Incremental models: drop the table and build it from scratch, as dbt's --full-refresh "
        "(the bookkeeping columns, e.g. recorded_as_of, restart at this build).",
    )
}


def _columns(connection, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in connection.execute(f"describe {table}").fetchall()}


# The one "latest row landed on or before the as-of day" rule the staging models order by (lower is
# preferred): rows landed by the as-of day first, the latest landing first; a row that landed only
# later (a backfill of an older day) counts from its earliest landing.
SHARED_MACROS = """
create or replace temp macro landed_as_of_order(landing_date, as_of) as
    case when landing_date <= as_of then as_of - landing_date else 1000000 + (landing_date - as_of) end
"""


@contextmanager
def transaction(connection) -> Iterator[None]:
    """What the block writes is committed together, or rolled back on any error (an interrupt included)."""
    connection.execute("begin transaction")
    try:
        yield
        connection.execute("commit")
    except BaseException:
        connection.execute("rollback")
        raise


def bound_build_memory(connection) -> None:
    """The build's DuckDB memory_limit (LIFECYCLE_BUILD_MEMORY_LIMIT), spilling beyond it. Every step of the build sets
    it: a step's connection starts with DuckDB's default of 80% of the machine, and a 1M-customer build peaked at
    11.7 GB without it."""
    connection.execute("SET memory_limit = ?", [environment.build_memory_limit()])


def run_model(model: SqlModel, connection, parameters: dict[str, object], full_refresh: bool = False) -> dict[str, object]:
    """Create the model's table, or for an incremental model merge the SELECT into it; return what happened.

    An incremental build writes only what changed: rows whose unique key the SELECT no longer returns
    are removed, rows whose values changed are updated, new keys are added, and the columns named in
    ``merge_exclude_columns`` keep the value of the build that first recorded the row. So re-ingesting
    a past day (a late refund, a corrected export) corrects the table from that day on. A column added
    to the SELECT is added to the table; a column removed from it is dropped.
    """
    bound = bound_parameters(model, parameters)
    bound_build_memory(connection)
    connection.execute(SHARED_MACROS)
    connection.execute(f"create schema if not exists {model.schema}")
    if model.built_by:  # its own build (learnt weekly, or recomputed by visitor); the SELECT is still the rule
        module, _, function = model.built_by.partition(":")
        return getattr(importlib.import_module(module), function)(model, connection, parameters, full_refresh)
    exists = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ? "
        "and table_catalog = current_database()",  # another attached catalog's table is not this one
        [model.schema, model.name],
    ).fetchone()[0]
    if model.incremental_by or model.incremental_key:
        _create_state_tables(connection)  # what each incremental build saw is kept there
    if model.incremental_by:
        return _build_by_landing_day(model, connection, bound, bool(exists) and not full_refresh, bool(exists))
    if model.incremental_key:
        return _build_by_key(model, connection, bound, bool(exists) and not full_refresh, bool(exists), parameters.get("as_of"))
    if model.materialization == "incremental" and exists and not full_refresh:
        return _merge_incremental(model, connection, bound)
    create_table(connection, model, model.table, model.select_sql, bound)
    row_count = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    return {"row_count": row_count, "rows_added": row_count, "rows_updated": 0, "rows_removed": 0, "full_refresh": bool(exists)}


def select_sql_on(model: SqlModel, schema: str) -> str:
    """The model's SELECT reading every table it reads (raw, staging, ...) from `schema` instead (a backtest's own)."""
    sql = model.select_sql
    for source_schema, name in model.tables_read:
        sql = re.sub(rf"\b{source_schema}\.{name}\b", f"{schema}.{name}", sql)
    return sql


def batches_for(keys: int) -> int:
    """How many statements build `keys` keys: at most `build_keys_per_batch()` keys each, at least one."""
    return max(1, math.ceil(keys / environment.build_keys_per_batch()))


def create_table(connection, model: SqlModel, table: str, select_sql: str, bound: dict[str, object]) -> int:
    """Create `table` as the model's SELECT (or `select_sql`, the same SELECT over other tables); return the batches.

    A model with `batch_keys: <table>: <key>` lines is built in ceil(keys / `build_keys_per_batch()`) statements,
    the keys being the most found in one of those tables (counted approximately: the count only sizes the
    batches), each statement inserting the rows of batch `$batch` of `$batches`. The SELECT promises each row to exactly one batch: the site's recommendations batch
    their visitors by a hash, a visitor's rows depending only on their own interest and shop-wide tables.
    At 5M customers in one statement they spilled 48 GB.
    """
    if not model.batch_keys:
        connection.execute(f"create or replace table {table} as {select_sql}", bound)
        return 1
    counts = " union all ".join(f"select approx_count_distinct({key}) as keys from {source}" for source, key in model.batch_keys)
    batches = batches_for(connection.execute(f"select max(keys) from ({counts})").fetchone()[0])
    for batch in range(batches):
        written = f"create or replace table {table} as" if batch == 0 else f"insert into {table} by name"
        connection.execute(f"{written} {select_sql}", {**bound, "batch": batch, "batches": batches})
    return batches


# A stored timestamp is at most this many days after the start of its landing day (the contract's
# future_timestamp rule): when as_of moves, only rows landed from (the earlier as_of + 1 - this) on
# can enter or leave a model that keeps the rows dated by the end of the as-of day.
AS_OF_REACH_DAYS = math.ceil((24 + FUTURE_TOLERANCE_HOURS) / 24)


def _landed_days(connection, model: SqlModel) -> dict[tuple[str, dt.date | None], tuple[int, dt.datetime | None]]:
    """(raw table, landing day) -> (rows, latest _ingested_at): a re-ingested day gets a new _ingested_at."""
    days = {}
    for schema, name in model.tables_read:
        if schema != "raw":  # an incremental_key model read by key: the raw days its last build saw
            for table, landing_date, rows, ingested in connection.execute(
                f"select source_table, landing_date, row_count, last_ingested_at from {STATE_SCHEMA}.incremental_landed_days "
                "where model = ?",
                [f"{schema}.{name}"],
            ).fetchall():
                days[(f"{schema}.{name}:{table}", landing_date)] = (int(rows), ingested)
            continue
        for landing_date, rows, ingested in connection.execute(
            f"select _landing_date, count(*), max(_ingested_at) from {schema}.{name} group by all"
        ).fetchall():
            days[(f"{schema}.{name}", landing_date)] = (int(rows), ingested)
    return days


def _create_state_tables(connection) -> None:
    connection.execute(f"create schema if not exists {STATE_SCHEMA}")
    connection.execute(
        f"create table if not exists {STATE_SCHEMA}.incremental_builds "
        "(model varchar, as_of date, parameters varchar, columns varchar)"
    )
    connection.execute(
        f"create table if not exists {STATE_SCHEMA}.incremental_landed_days "
        "(model varchar, source_table varchar, landing_date date, row_count bigint, last_ingested_at timestamp)"
    )


def _read_state(connection, model: SqlModel):
    """What the model's last build saw (as_of, other parameters, columns, landed days), or None."""
    build = connection.execute(
        f"select as_of, parameters, columns from {STATE_SCHEMA}.incremental_builds where model = ?", [model.table]
    ).fetchone()
    if build is None:
        return None
    days = {
        (table, day): (int(rows), ingested)
        for table, day, rows, ingested in connection.execute(
            f"select source_table, landing_date, row_count, last_ingested_at from {STATE_SCHEMA}.incremental_landed_days "
            "where model = ?",
            [model.table],
        ).fetchall()
    }
    return build[0], build[1], build[2], days


def _write_state(connection, model: SqlModel, as_of, parameters: str, columns: str, days: dict) -> None:
    connection.execute(f"delete from {STATE_SCHEMA}.incremental_builds where model = ?", [model.table])
    connection.execute(f"delete from {STATE_SCHEMA}.incremental_landed_days where model = ?", [model.table])
    connection.execute(
        f"insert into {STATE_SCHEMA}.incremental_builds values (?, ?, ?, ?)", [model.table, as_of, parameters, columns]
    )
    if days:  # one statement: executemany runs one INSERT per day (0.2 s for a year of two tables)
        tables, landing_days = zip(*days.keys())
        row_counts, ingested = zip(*days.values())
        connection.execute(
            f"insert into {STATE_SCHEMA}.incremental_landed_days select ?, unnest(?::varchar[]), unnest(?::date[]), "
            "unnest(?::bigint[]), unnest(?::timestamp[])",
            [model.table, list(tables), list(landing_days), list(row_counts), list(ingested)],
        )


def _since_last_build(model: SqlModel, connection, bound: dict[str, object], incremental: bool, fingerprint: dict, as_of=None):
    """The earliest landing day to rebuild from (EVERY_LANDING_DAY: all; None: nothing changed) and the new state.

    The last build's landing days (rows and latest _ingested_at per raw table and day) are kept in
    `lifecycle_state`. `$since` is the earliest landing day that is new, re-ingested or gone since;
    if as_of moved, no later than the earlier as_of + 1 - AS_OF_REACH_DAYS. A full build (first
    build, `full_refresh`, other parameters, another SELECT, or columns the SELECT no longer returns
    as the table has them, e.g. a column added) reads every landing day. `as_of`: the as-of day of a
    model that does not read `$as_of` itself but reads a model that does.
    """
    as_of = bound.get("as_of", as_of)
    others = json.dumps({**{k: str(v) for k, v in sorted(bound.items()) if k != "as_of"}, **fingerprint}, sort_keys=True)
    # The SELECT's columns and types (`where false`: DuckDB plans it and reads nothing).
    probe = f"_probe_{model.name}"
    connection.execute(
        f"create or replace temp table {probe} as select * from ({model.select_sql}) where false",
        {**bound, SINCE_PARAMETER: EVERY_LANDING_DAY, **_until(model, NO_LATER_DAY)} if model.incremental_by else bound,
    )
    columns = json.dumps(list(_columns(connection, probe).items()))
    connection.execute(f"drop table {probe}")
    days = _landed_days(connection, model)
    state = _read_state(connection, model) if incremental else None
    since = EVERY_LANDING_DAY
    if state is not None and state[1] == others and state[2] == columns:
        previous_as_of, _, _, previous_days = state
        changed = {key[1] for key in days.keys() | previous_days.keys() if days.get(key) != previous_days.get(key)}
        if None in changed:  # undated rows changed: they have no day to rebuild from
            changed = {EVERY_LANDING_DAY}
        if previous_as_of != as_of:
            changed.add(min(previous_as_of, as_of) + dt.timedelta(days=1 - AS_OF_REACH_DAYS))
        since = max(min(changed), EVERY_LANDING_DAY) if changed else None
    return since, (as_of, others, columns, days)


def _nothing_changed(model: SqlModel, connection) -> dict[str, object]:
    row_count = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    return {"row_count": row_count, "rows_added": 0, "rows_updated": 0, "rows_removed": 0,
            "full_refresh": False, "rebuilt_from": "nothing changed", "keys_recomputed": 0}


def _build_by_landing_day(model: SqlModel, connection, bound: dict[str, object], incremental: bool, exists: bool) -> dict[str, object]:
    """Rebuild only the rows of the landing days that changed since the last build, from the earliest on.

    `$since` as `_since_last_build` finds it. The model's rows whose `incremental_by` day is on or
    after `$since` are deleted and the SELECT, which reads raw rows landed on or after `$since`,
    inserts them again. So a daily build reads the new day, and a re-ingested past day corrects the
    table from that day on. Nothing changed: nothing is read.
    """
    since, state = _since_last_build(model, connection, bound, incremental, {"sql": _sql_digest(model)})
    if since is None:
        return _nothing_changed(model, connection)
    full = since == EVERY_LANDING_DAY
    slices = _day_slices(model, since, state[3])
    # The table and what it was built from change together, or neither does.
    with transaction(connection):
        added = 0
        if full:
            connection.execute(f"create or replace table {model.table} as {model.select_sql}", {**bound, **slices[0]})
            added, removed = connection.execute(f"select count(*) from {model.table}").fetchone()[0], 0
        else:
            removed = connection.execute(
                f'delete from {model.table} where "{model.incremental_by}" >= $since', {SINCE_PARAMETER: since}
            ).fetchone()[0]
        for days in slices[1:] if full else slices:
            added += connection.execute(f"insert into {model.table} by name {model.select_sql}", {**bound, **days}).fetchone()[0]
        _write_state(connection, model, *state)
    return {**_rebuilt(model, connection, added, removed, exists, since), "slices": len(slices)}


def _until(model: SqlModel, day: dt.date) -> dict[str, dt.date]:
    return {UNTIL_PARAMETER: day} if UNTIL_PARAMETER in model.parameters else {}


def _day_slices(model: SqlModel, since: dt.date, days: dict) -> list[dict[str, dt.date]]:
    """The landing days from `since` on in slices of consecutive days of at most `build_rows_per_slice()` raw rows
    (or one day), as ($since, $until) parameters. A slice's rows depend on its days and on the raw rows landed before
    it (an event id that landed earlier keeps that occurrence), so slices in order build what one statement builds:
    the first build of a 5M-customer shop's events in one statement spilled 25 GB. A model without $until: one."""
    if UNTIL_PARAMETER not in model.parameters:
        return [{SINCE_PARAMETER: since}]
    rows_per_day: dict[dt.date, int] = {}
    for (_, day), (rows, _) in days.items():
        if day is not None and day >= since:
            rows_per_day[day] = rows_per_day.get(day, 0) + rows
    starts, rows = [since], 0
    for day in sorted(rows_per_day):
        if rows and rows + rows_per_day[day] > environment.build_rows_per_slice():
            starts.append(day)
            rows = 0
        rows += rows_per_day[day]
    ends = [*starts[1:], NO_LATER_DAY]
    return [{SINCE_PARAMETER: start, UNTIL_PARAMETER: end} for start, end in zip(starts, ends)]


def _rebuilt(model: SqlModel, connection, added: int, removed: int, exists: bool, since: dt.date) -> dict[str, object]:
    """The outcome of an incremental build that rebuilt from `since` (EVERY_LANDING_DAY: a full build)."""
    full = since == EVERY_LANDING_DAY
    row_count = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    return {
        "row_count": row_count,
        "rows_added": int(added),
        "rows_updated": 0,
        "rows_removed": int(removed),
        "full_refresh": full and exists,
        "rebuilt_from": "every landing day" if full else since.isoformat(),
    }


def _sql_digest(model: SqlModel) -> str:
    """Another SELECT (not only other columns) is another model: its table is rebuilt from every landing day."""
    return hashlib.sha256(model.select_sql.encode()).hexdigest()[:16]


def _column_list(columns) -> str:
    """Columns as a quoted SQL list: `"customer_id", "day"`."""
    return ", ".join(f'"{column}"' for column in columns)


def _key_state_table(table: str) -> str:
    """Per key of an incremental_key model: the latest landing day of any raw row of that key."""
    return f'{STATE_SCHEMA}."keys__{table.replace(".", "__")}"'


def _create_in_key_batches(model: SqlModel, connection, bound: dict[str, object], key_state: str, key_count: int, keys: str) -> None:
    """Create the model's table from every key, at most `build_keys_per_batch()` keys per statement.

    A key's rows depend only on that key's raw rows (the header's promise), so batches of keys (split
    by a hash of the key) make the same table as one statement, within the build's memory limit: DuckDB
    cannot spill every aggregate state, and stg_customers of 5M customers in one statement ran out of 4 GB.
    """
    batches = batches_for(key_count)
    if batches == 1:
        connection.execute(f"create or replace table {model.table} as {model.select_sql}", bound)
        return
    key_list = _column_list(model.incremental_key)
    select = _restricted_to_keys(model, keys)
    for batch in range(batches):
        connection.execute(
            f"create or replace temp table {keys} as select {key_list} from {key_state} where hash({key_list}) % {batches} = {batch}"
        )
        written = f"create or replace table {model.table} as" if batch == 0 else f"insert into {model.table} by name"
        connection.execute(f"{written} {select}", bound)


def _restricted_to_keys(model: SqlModel, keys_table: str) -> str:
    """The model's SELECT over the rows of the given keys only: each table read becomes its rows of those keys."""
    key_list = _column_list(model.incremental_key)

    def restrict(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.db and (node.db, node.name) in set(model.tables_read) - set(model.read_whole):
            rows = sqlglot.parse_one(
                f"select * from {node.db}.{node.name} where ({key_list}) in (select {key_list} from {keys_table})",
                read="duckdb",
            )
            return exp.Subquery(this=rows, alias=exp.TableAlias(this=exp.to_identifier(node.alias_or_name)))
        return node

    return sqlglot.parse_one(model.select_sql, read="duckdb").transform(restrict).sql(dialect="duckdb")


def _key_sources(model: SqlModel, connection, keys_table: str | None) -> list[str]:
    """SQL per table read: (key, last_landed_on) rows, one per raw row (or kept key) a key's rows depend on.

    A raw table: its rows. A model built by landing day (`stg_interactions`): its rows, which carry our
    key, with their landing day. A model on the same key: its kept key state. A model keyed otherwise
    (`purchase_days` by customer reads `stg_orders` by order): each of its keys named together with
    one of ours in its raw rows (`_keys_through`), with that key's kept landing day: an order's
    customers depend on all of the order's rows, and an order moved to another customer changes both.
    """
    key_list = _column_list(model.incremental_key)
    only = f" where ({key_list}) in (select {key_list} from {keys_table})" if keys_table else ""
    sources = []
    for schema, name in (table for table in model.tables_read if table not in model.read_whole):
        if schema == "raw":
            sources.append(f"select {key_list}, _landing_date as last_landed_on from {schema}.{name}{only}")
            continue
        landed = _landing_day_column(model, schema, name)
        if landed:  # a model by landing day: its rows carry our key and their day
            sources.append(f'select {key_list}, "{landed}" as last_landed_on from {schema}.{name}{only}')
            continue
        upstream_state = _key_state_table(f"{schema}.{name}")
        upstream_key, carrying = _keys_through(model, connection, f"{schema}.{name}")
        if not carrying:  # the same key
            sources.append(f"select {key_list}, last_landed_on from {upstream_state}{only}")
            continue
        named = _column_list(upstream_key)
        touched = " union ".join(f"select distinct {key_list}, {named} from {table}{only}" for table in carrying)
        sources.append(
            f"select {', '.join(f'touched.{column}' for column in key_list.split(', '))}, upstream.last_landed_on "
            f"from ({touched}) as touched join {upstream_state} as upstream using ({named})"
        )
    return sources


def _landing_day_column(model: SqlModel, schema: str, name: str) -> str | None:
    """The `incremental_by` column of the model `schema.name` read by `model` (beside it, else in the project), or None."""
    for root in (model.path.parents[1], SQL_MODELS_DIR):
        path = root / schema / f"{name}.sql"
        if path.exists():
            status = path.stat()
            return _parsed(path, root, status.st_mtime_ns, status.st_size).incremental_by or None
    return None


def _keys_crossed(model: SqlModel, connection, as_of_days: list[dt.date], bound: dict[str, object]) -> list[str]:
    """SQL: the keys with a day of the `as_of_crosses` CTE column from the earlier as-of day to the later one.

    The CTE is the model's own (with the CTEs it reads), evaluated over every key: a scan of its
    tables, no window; and the model's table, if it has that column (rows an as_of moved back
    removes). Those keys' rows are the only ones an as_of move (or a `read_whole` table, on the
    as-of day) can add or remove.
    """
    cte, _, column = model.as_of_crosses.partition(".")
    tree = sqlglot.parse_one(model.select_sql, read="duckdb")
    ctes = tree.args["with_"].expressions
    used = ctes[: [c.alias for c in ctes].index(cte) + 1]
    earlier, later = (day.isoformat() for day in as_of_days)
    window = f'"{column}" between date \'{earlier}\' and date \'{later}\''
    query = exp.select(*model.incremental_key).from_(cte).where(window)
    query.set("with_", exp.With(expressions=used))
    settings = query.transform(lambda node: exp.convert(bound[node.name]) if isinstance(node, exp.Placeholder) else node)
    key_list = _column_list(model.incremental_key)
    own = [f"select {key_list} from {model.table} where {window}"] if column in _columns(connection, model.table) else []
    return [settings.sql(dialect="duckdb"), *own]


def _keys_through(model: SqlModel, connection, upstream: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A model read by a key model: its key and, if keyed otherwise, the raw tables it reads that name both keys.

    Both come from what the upstream's last build kept (its key state's columns, its landed days), so
    the upstream's file is not needed. Keyed otherwise and no raw table names both keys: an error.
    """
    upstream_key = tuple(column for column in _columns(connection, _key_state_table(upstream)) if column != "last_landed_on")
    if upstream_key == model.incremental_key:
        return upstream_key, ()
    # the raw tables it reads, itself or through the models it reads ("staging.stg_orders:raw.orders")
    raw_tables = connection.execute(
        f"select distinct regexp_extract(source_table, '[^:]+$') as raw_table from {STATE_SCHEMA}.incremental_landed_days "
        "where model = ? and raw_table like 'raw.%' order by 1",
        [upstream],
    ).fetchall()
    if not raw_tables:  # the upstream has landed nothing yet (a shop without orders): its raw tables are empty
        raw_tables = connection.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = 'raw' and table_catalog = current_database() order by 1"
        ).fetchall()
    carrying = tuple(
        table for (table,) in raw_tables if {*upstream_key, *model.incremental_key} <= set(_columns(connection, table))
    )
    if not carrying:
        raise SqlModelError(
            f"{model.path}: {upstream} is keyed by {', '.join(upstream_key)}; none of its raw tables also "
            f"names {', '.join(model.incremental_key)}, so its changed rows cannot be told by this model's key"
        )
    return upstream_key, carrying


def _keys_landed(model: SqlModel, connection, keys_table: str | None) -> str:
    """SQL: per key, the latest landing day of the raw rows it depends on (through the models read, their key state)."""
    key_list = _column_list(model.incremental_key)
    parts = _key_sources(model, connection, keys_table)
    return f"select {key_list}, max(last_landed_on) as last_landed_on from ({' union all '.join(parts)}) group by all"


def _build_by_key(
    model: SqlModel, connection, bound: dict[str, object], incremental: bool, exists: bool, as_of: dt.date | None = None
) -> dict[str, object]:
    """Recompute only the keys whose raw rows changed since the last build, each from its whole history.

    The SELECT is the whole-history rule; the header's `incremental_key` says that a key's rows
    depend only on that key's raw rows (and on as_of). `$since` as `_since_last_build` finds it; the
    keys to recompute are those of the raw rows landed on or after `$since` and those whose latest
    landed raw row (kept per key in `lifecycle_state`) is on or after `$since`: a row that vanished
    from a re-ingested day belonged to such a key. Their rows are deleted and the SELECT, over those
    keys' rows only, inserts them again, in one transaction with the new state. Nothing changed:
    nothing is read.
    """
    upstream = {}
    for schema, name in model.tables_read:
        if schema != "raw":  # another key model: rebuilt (other SELECT, settings) means rebuild this one
            upstream[f"{schema}.{name}"] = connection.execute(
                f"select parameters || columns from {STATE_SCHEMA}.incremental_builds where model = ?", [f"{schema}.{name}"]
            ).fetchone()
    previous = connection.execute(f"select as_of from {STATE_SCHEMA}.incremental_builds where model = ?", [model.table]).fetchone()
    since, state = _since_last_build(
        model, connection, bound, incremental, {"sql": _sql_digest(model), "reads": str(upstream)}, as_of
    )
    if since is None:
        return _nothing_changed(model, connection)
    full = since == EVERY_LANDING_DAY
    key_list = _column_list(model.incremental_key)
    key_state = _key_state_table(model.table)
    keys = f"_keys_{model.name}"
    if not full:
        changed_keys = [
            f"select {key_list} from ({source}) where last_landed_on >= $since"
            for source in _key_sources(model, connection, None)
        ]
        changed_keys.append(f"select {key_list} from {key_state} where last_landed_on >= $since")
        if model.as_of_crosses and previous:
            changed_keys.extend(_keys_crossed(model, connection, sorted((previous[0], state[0])), bound))
        connection.execute(
            f"create or replace temp table {keys} as {' union '.join(f'({part})' for part in changed_keys)}",
            {SINCE_PARAMETER: since},
        )
    # The table, its keys' landing days and what it was built from change together, or none does.
    try:
        with transaction(connection):
            same_keys = f"({key_list}) in (select {key_list} from {keys})"
            updated = 0
            if model.merge_exclude_columns and incremental:  # keep what the build that first recorded a row wrote
                merged = _merge_incremental(
                    model, connection, bound, *(() if full else (_restricted_to_keys(model, keys), same_keys))
                )
                added, removed, updated = merged["rows_added"], merged["rows_removed"], merged["rows_updated"]
            if full:
                connection.execute(f"create or replace table {key_state} as {_keys_landed(model, connection, None)}")
                recomputed = connection.execute(f"select count(*) from {key_state}").fetchone()[0]
                if not (model.merge_exclude_columns and incremental):
                    _create_in_key_batches(model, connection, bound, key_state, recomputed, keys)
                    removed = 0
                    added = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
            else:
                if not model.merge_exclude_columns:
                    removed = connection.execute(f"delete from {model.table} where {same_keys}").fetchone()[0]
                    added = connection.execute(
                        f"insert into {model.table} by name {_restricted_to_keys(model, keys)}", bound
                    ).fetchone()[0]
                connection.execute(f"delete from {key_state} where {same_keys}")
                connection.execute(f"insert into {key_state} by name {_keys_landed(model, connection, keys)}")
                recomputed = connection.execute(f"select count(*) from {keys}").fetchone()[0]
            _write_state(connection, model, *state)
    finally:
        connection.execute(f"drop table if exists {keys}")
    return {**_rebuilt(model, connection, added, removed, exists, since), "rows_updated": int(updated),
            "keys_recomputed": int(recomputed)}


def _merge_incremental(
    model: SqlModel, connection, bound: dict[str, object], select_sql: str = "", scope: str = "true"
) -> dict[str, object]:
    """dbt's merge on the unique key: delete vanished keys, update changed rows, insert new keys.

    `select_sql`/`scope`: the SELECT over some keys only and the table's rows of those keys (`_build_by_key`).
    """
    fresh = f"_fresh_{model.name}"
    connection.execute(f"create or replace temp table {fresh} as {select_sql or model.select_sql}", bound)
    fresh_columns = _columns(connection, fresh)
    existing_columns = _columns(connection, model.table)
    for column, column_type in fresh_columns.items():
        if column not in existing_columns:
            connection.execute(f'alter table {model.table} add column "{column}" {column_type}')
    for column in existing_columns:
        if column not in fresh_columns:
            connection.execute(f'alter table {model.table} drop column "{column}"')
    key = model.unique_key
    compared = [c for c in fresh_columns if c not in key and c not in model.merge_exclude_columns]
    same_key = " and ".join(f'existing."{c}" is not distinct from new_row."{c}"' for c in key)
    before = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    connection.execute(
        f"delete from {model.table} as existing where {scope} and not exists (select 1 from {fresh} as new_row where {same_key})"
    )
    removed = before - connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    updated = 0
    if compared:
        differs = " or ".join(f'existing."{c}" is distinct from new_row."{c}"' for c in compared)
        assignments = ", ".join(f'"{c}" = new_row."{c}"' for c in compared)
        updated = connection.execute(
            f"update {model.table} as existing set {assignments} from {fresh} as new_row "
            f"where {same_key} and ({differs})"
        ).fetchone()[0]
    kept = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    connection.execute(
        f"insert into {model.table} by name select new_row.* from {fresh} as new_row "
        f"where not exists (select 1 from {model.table} as existing where {same_key})"
    )
    after = connection.execute(f"select count(*) from {model.table}").fetchone()[0]
    connection.execute(f"drop table {fresh}")
    return {"row_count": after, "rows_added": after - kept, "rows_updated": int(updated), "rows_removed": removed, "full_refresh": False}


def build_all(
    connection,
    settings: LifecycleSettings | None = None,
    models: list[SqlModel] | None = None,
    on_model: Callable[[SqlModel, dict[str, object]], None] | None = None,
) -> dt.date:
    """Build every model in dependency order without Dagster (benchmarks, scripts); returns the as-of date.

    The Python tables a model reads (the lapse scores) are built just before it; `on_model` sees each outcome.
    """
    settings = settings or LifecycleSettings()
    as_of = settings.resolve_as_of(connection)
    parameters = settings.sql_parameters(as_of)
    python_tables = _python_tables()
    for model in build_order(models or load_models()):
        for table in [table for table in python_tables if table in {f"{s}.{n}" for s, n in model.tables_read}]:
            python_tables.pop(table)(connection, settings, as_of)
        outcome = run_model(model, connection, parameters)
        if on_model:
            on_model(model, outcome)
    return as_of


def _python_tables() -> dict[str, object]:
    """Tables written by Python assets, built here just before the first SQL model that reads them."""
    from lifecycle_assets.models.lapse import LAPSE_SCORES_TABLE, write_lapse_scores

    return {LAPSE_SCORES_TABLE: write_lapse_scores}


def _label(value: object) -> str:
    return "none" if value is None else str(value)


def _counts(connection, model: SqlModel, columns: tuple[str, ...]) -> dict[tuple, int]:
    """Rows per combination of the columns' values."""
    rows = connection.execute(f"select {', '.join(columns)}, count(*) from {model.table} group by all").fetchall()
    return {tuple(row[:-1]): int(row[-1]) for row in rows}


def _values_to_show(column: str, observed: set) -> list:
    """Every known value of the column (a 0 is a fact worth plotting), then any other value found, no value last."""
    known = list(known_values().get(column, ()))
    others = sorted((value for value in observed if value not in known and value is not None), key=str)
    missing = [None] if None in observed and None not in known else []
    return known + others + missing


def _count_table(connection, model: SqlModel, columns: tuple[str, ...]) -> str:
    """Markdown counts of one column, or of two as a cross table with totals."""
    counts = _counts(connection, model, columns)
    row_values = _values_to_show(columns[0], {key[0] for key in counts})
    if len(columns) == 1:
        rows = [(_label(value), counts.get((value,), 0)) for value in row_values]
        return markdown_table([columns[0], "rows"], [*rows, ("total", sum(counts.values()))])
    column_values = _values_to_show(columns[1], {key[1] for key in counts})
    total = object()

    def cell(row_value, column_value) -> int:
        return sum(
            count
            for (row_key, column_key), count in counts.items()
            if row_value in (total, row_key) and column_value in (total, column_key)
        )

    rows = [
        ("total" if row_value is total else _label(row_value), *(cell(row_value, value) for value in [*column_values, total]))
        for row_value in [*row_values, total]
    ]
    header = [f"{columns[0]} / {columns[1]}", *(_label(value) for value in column_values), "total"]
    return markdown_table(header, rows)


def describe_table(model: SqlModel, connection, as_of: dt.date, outcome: dict[str, object]) -> dict[str, object]:
    """Metadata an operator reads in the UI: size, columns, the SQL, a preview and the model's numbers."""
    description = connection.execute(f"describe {model.table}").fetchall()
    columns = [row[0] for row in description]
    metadata: dict[str, object] = {
        "dagster/row_count": dg.MetadataValue.int(int(outcome["row_count"])),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=row[0], type=str(row[1])) for row in description]
        ),
        "as_of": dg.MetadataValue.text(as_of.isoformat()),
        "sql": dg.MetadataValue.md(f"```sql\n{model.select_sql}\n```"),
    }
    if model.materialization == "incremental":
        metadata["rows_added"] = dg.MetadataValue.int(int(outcome["rows_added"]))
        metadata["rows_updated"] = dg.MetadataValue.int(int(outcome["rows_updated"]))
        metadata["rows_removed"] = dg.MetadataValue.int(int(outcome["rows_removed"]))
        metadata["full_refresh"] = dg.MetadataValue.bool(bool(outcome["full_refresh"]))
    if model.incremental_by or model.incremental_key:
        # the earliest landing day this build read: "every landing day", a day, or "nothing changed"
        metadata["rebuilt_from"] = dg.MetadataValue.text(str(outcome["rebuilt_from"]))
    if model.incremental_key:
        metadata["keys_recomputed"] = dg.MetadataValue.int(int(outcome["keys_recomputed"]))
    metadata.update(outcome.get("metadata", {}))  # a model with built_by says what its build did
    order = ", ".join(model.unique_key) if model.unique_key else "1"
    shown = shown_columns(columns)
    preview = connection.execute(
        f"select {', '.join(shown)} from {model.table} order by {order} limit {model.preview_rows}"
    ).fetchall()
    metadata["preview"] = dg.MetadataValue.md(markdown_table(shown, preview))
    for column in model.count_by:
        counts = _counts(connection, model, (column,))
        for value in _values_to_show(column, {key[0] for key in counts}):
            metadata[f"{column}/{_label(value)}"] = dg.MetadataValue.int(counts.get((value,), 0))
    for columns in model.count_tables:
        metadata[f"counts/{'_by_'.join(columns)}"] = dg.MetadataValue.md(_count_table(connection, model, columns))
    if model.metrics:
        name_column, value_column = model.metrics
        for name, value in connection.execute(f"select {name_column}, {value_column} from {model.table}").fetchall():
            if value is not None:
                metadata[str(name)] = dg.MetadataValue.float(float(value))
    return metadata


def build_model_asset(model: SqlModel) -> dg.AssetsDefinition:
    @dg.asset(
        key=model.key,
        deps=model.deps,
        group_name="lifecycle",
        kinds={"duckdb", "sql"},
        owners=list(model.owners),
        description=model.description,
        metadata={
            "source_file": dg.MetadataValue.path(str(model.path.relative_to(model.path.parents[1].parent))),
            "materialization": model.materialization,
            "unique_key": ", ".join(model.unique_key),
        },
        config_schema=MODEL_CONFIG_SCHEMA,
    )
    # `context` unannotated: with postponed annotations Dagster cannot resolve the type's name.
    def _sql_model(context, duckdb: DuckDBResource, lifecycle_settings: LifecycleSettings) -> dg.MaterializeResult:
        with duckdb.get_connection() as connection:
            as_of = lifecycle_settings.resolve_as_of(connection)
            full_refresh = context.op_execution_context.op_config["full_refresh"]
            outcome = run_model(model, connection, lifecycle_settings.sql_parameters(as_of), full_refresh)
            return dg.MaterializeResult(metadata=describe_table(model, connection, as_of, outcome))

    return _sql_model


def build_model_assets(root: Path = SQL_MODELS_DIR) -> list[dg.AssetsDefinition]:
    """Every SQL model, and the Python assets of the lifecycle group (the lapse model and its backtest)."""
    from lifecycle_assets.backtest import lapse_backtest
    from lifecycle_assets.models.lapse import customer_lapse_scores

    return [*(build_model_asset(model) for model in load_models(root)), customer_lapse_scores, lapse_backtest]

