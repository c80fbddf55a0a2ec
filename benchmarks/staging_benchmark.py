"""CPU seconds of each staging model built by key, against the same model rebuilt as a whole table.

On a copy of a warehouse kept by `scale_benchmark.py --keep DIR` (its raw tables), for each staging
model with `incremental_key`: the first (full) build of the history up to the day before the last,
as of that day; the daily build (the last landing day lands, as_of moves to it); a build after a
past day is re-ingested (its rows landed again with a new `_ingested_at`, as a corrected export is,
`--past-days` before the last); and, for comparison, the whole-table build the model had before
(`materialization: table`, as on main 9cf480d). CPU seconds are the process's user + system time
around each build (DuckDB's threads included), each after a CHECKPOINT so that none pays for
another's write-ahead log.

    .venv/bin/python benchmarks/staging_benchmark.py --warehouse DIR/warehouse.duckdb
    .venv/bin/python benchmarks/staging_benchmark.py --warehouse DIR/warehouse.duckdb \
        --models staging,intermediate.purchase_days,intermediate.stage_transitions,marts.customer_stage_history

`--models` (schemas or tables, default: every incremental_key model) also takes models built
otherwise (the stage history's merge): each is built as it is, beside its whole-table build.

The last line is one JSON object: per model, the CPU and wall seconds and the keys recomputed of each
build (full, daily, past_day, table) and its rows, and the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import dataclasses
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_order, load_models, run_model


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(build) -> tuple[float, float, dict]:
    cpu, wall = cpu_seconds(), time.perf_counter()
    outcome = build()
    return round(cpu_seconds() - cpu, 3), round(time.perf_counter() - wall, 3), outcome


def re_ingest(connection, landing_day, stamp: str) -> None:
    """Land one day's rows again, as a rerun of its ingest does: the same rows with a new _ingested_at."""
    for (entity,) in connection.execute(
        "select table_name from information_schema.tables where table_schema = 'raw' and table_catalog = current_database()"
    ).fetchall():
        connection.execute(f"create or replace temp table _again as from raw.{entity} where _landing_date = ?", [landing_day])
        connection.execute(f"delete from raw.{entity} where _landing_date = ?", [landing_day])
        connection.execute(f"update _again set _ingested_at = timestamp '{stamp}'")
        connection.execute(f"insert into raw.{entity} by name from _again")
        connection.execute("drop table _again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="a warehouse.duckdb with raw.* (copied, never changed)")
    parser.add_argument("--past-days", type=int, default=30, help="how far back the corrected export is")
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--models", default="", help="schemas or tables, comma-separated; default: every incremental_key model")
    args = parser.parse_args()
    load_before = os.getloadavg()
    chosen = {name.strip() for name in args.models.split(",") if name.strip()}
    models = [
        model for model in build_order(load_models())
        if ((model.schema in chosen or model.table in chosen) if chosen else model.incremental_key)
    ]
    with tempfile.TemporaryDirectory(dir=args.warehouse.parent) as workdir:
        copy = Path(workdir) / "warehouse.duckdb"
        shutil.copyfile(args.warehouse, copy)
        connection = duckdb.connect(str(copy), config={"memory_limit": args.memory_limit})
        os.environ.setdefault("LIFECYCLE_BUILD_MEMORY_LIMIT", args.memory_limit)
        for model in models:  # a warehouse built before: its staging tables are whole tables, no key state
            connection.execute(f"create schema if not exists {model.schema}")
            connection.execute(f"drop table if exists {model.table}")
        last_day = connection.execute("select max(_landing_date) from raw.orders").fetchone()[0]
        past_day = last_day - dt.timedelta(days=args.past_days)
        entities = [row[0] for row in connection.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' and table_catalog = current_database()"
        ).fetchall()]
        # The history up to the day before the last, built in full as of that day.
        for entity in entities:
            connection.execute(f"create temp table next_{entity} as from raw.{entity} where _landing_date = ?", [last_day])
            connection.execute(f"delete from raw.{entity} where _landing_date = ?", [last_day])
        figures: dict[str, dict] = {model.table: {} for model in models}

        def build_each(phase: str, as_of: dt.date) -> None:
            parameters = LifecycleSettings(as_of=as_of.isoformat()).sql_parameters(as_of)
            for model in models:
                connection.execute("checkpoint")
                cpu, wall, outcome = timed(lambda: run_model(model, connection, parameters))
                figures[model.table][f"{phase}_cpu_s"] = cpu
                figures[model.table][f"{phase}_wall_s"] = wall
                figures[model.table][f"{phase}_keys"] = outcome.get("keys_recomputed")
                figures[model.table]["rows"] = outcome["row_count"]

        build_each("full", last_day - dt.timedelta(days=1))
        # The daily run: the last day lands and as_of moves to it.
        for entity in entities:
            connection.execute(f"insert into raw.{entity} by name from next_{entity}")
        build_each("daily", last_day)
        re_ingest(connection, past_day, "2099-01-02 00:00:00")
        build_each("past_day", last_day)
        as_of = last_day
        parameters = LifecycleSettings(as_of=as_of.isoformat()).sql_parameters(as_of)
        # Before: the same SELECT built as a whole table (materialization: table), as on main 9cf480d.
        for model in models:
            if model.merge_exclude_columns:  # a merged model before: the whole SELECT merged (customer_stage_history)
                whole = dataclasses.replace(model, incremental_key=(), as_of_crosses="", read_whole=())
                connection.execute("checkpoint")
                figures[model.table]["merge_cpu_s"], figures[model.table]["merge_wall_s"], _ = timed(
                    lambda: run_model(whole, connection, parameters)
                )
            as_table = dataclasses.replace(model, materialization="table", incremental_key=(), as_of_crosses="", read_whole=())
            connection.execute("checkpoint")
            cpu, wall, _ = timed(lambda: run_model(as_table, connection, parameters))
            figures[model.table]["table_cpu_s"] = cpu
            figures[model.table]["table_wall_s"] = wall
        connection.close()
    print(f"daily = {last_day} landed and as_of moved to it; past day = re-ingest of {past_day}")
    print(f"{'model':32} {'rows':>9} {'table cpu':>10} {'full cpu':>9} {'daily cpu':>10} {'keys':>7} {'past cpu':>9} {'keys':>7}")
    for table, row in figures.items():
        print(f"{table:32} {row['rows']:>9} {row['table_cpu_s']:>10} {row['full_cpu_s']:>9} {row['daily_cpu_s']:>10} "
              f"{str(row['daily_keys']):>7} {row['past_day_cpu_s']:>9} {str(row['past_day_keys']):>7}")
    for table, row in figures.items():
        if "merge_cpu_s" in row:
            print(f"{table}: the whole SELECT merged (before) {row['merge_cpu_s']} CPU s")
    print(json.dumps({"models": figures, "load_before": load_before, "load_after": os.getloadavg()}))


if __name__ == "__main__":
    main()
