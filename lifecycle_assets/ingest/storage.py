"""Raw and quarantine tables in the DuckDB warehouse, written one landing-day range at a time.

A run replaces exactly the landing days it ingested, in one transaction (good rows, quarantined
rows and quarantined files together; `pipeline.ingest_days` holds it), so re-running a partition
gives the same tables and a crash leaves the previous state.
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from lifecycle_assets.ingest.contract import ENTITIES, Entity
from lifecycle_assets.ingest.validation import BAD_TABLE, GOOD_TABLE, SQL_TYPES

DUCKDB_TYPES = SQL_TYPES

QUARANTINED_ROWS_DDL = """
CREATE TABLE IF NOT EXISTS quality.quarantined_rows (
    entity VARCHAR, landing_date DATE, source_file VARCHAR, row_number BIGINT,
    reason VARCHAR, raw_row VARCHAR, run_id VARCHAR, quarantined_at TIMESTAMP
)"""
QUARANTINED_FILES_DDL = """
CREATE TABLE IF NOT EXISTS quality.quarantined_files (
    entity VARCHAR, landing_date DATE, source_file VARCHAR, reason VARCHAR,
    sha256 VARCHAR, size_bytes BIGINT, run_id VARCHAR, quarantined_at TIMESTAMP
)"""


def raw_table_ddl(entity: Entity) -> str:
    columns = [f"{c.name} {DUCKDB_TYPES[c.type]}" for c in entity.columns]
    columns += ["_landing_date DATE", "_source_file VARCHAR", "_row_number BIGINT", "_ingested_at TIMESTAMP"]
    return f"CREATE TABLE IF NOT EXISTS raw.{entity.name} ({', '.join(columns)})"


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    for entity in ENTITIES.values():
        con.execute(raw_table_ddl(entity))
        _migrate(con, entity)
    con.execute(QUARANTINED_ROWS_DDL)
    con.execute(QUARANTINED_FILES_DDL)


def _migrate(con: duckdb.DuckDBPyConnection, entity: Entity) -> None:
    """Bring a raw table written by an older version to the contract: new optional columns, exact money."""
    existing = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = ?",
            [entity.name],
        ).fetchall()
    )
    for column in entity.columns:
        wanted = DUCKDB_TYPES[column.type]
        if column.name not in existing:
            con.execute(f"ALTER TABLE raw.{entity.name} ADD COLUMN {column.name} {wanted}")
        elif existing[column.name] != wanted and column.type == "amount":
            con.execute(f"ALTER TABLE raw.{entity.name} ALTER COLUMN {column.name} TYPE {wanted}")


def clear_landing_days(con: duckdb.DuckDBPyConnection, entity: Entity, first_day: date, last_day: date) -> None:
    """Remove what an earlier run stored for these landing days (rows, quarantined rows and files), in the
    caller's transaction. Undated records (a folder of the entity with no day in its name) go on every run."""
    window = [first_day, last_day]
    con.execute(f"DELETE FROM raw.{entity.name} WHERE _landing_date BETWEEN ? AND ?", window)
    con.execute("DELETE FROM quality.quarantined_rows WHERE entity = ? AND landing_date BETWEEN ? AND ?", [entity.name, *window])
    con.execute(
        "DELETE FROM quality.quarantined_files WHERE entity = ? AND (landing_date BETWEEN ? AND ? OR landing_date IS NULL)",
        [entity.name, *window],
    )


def store_good_rows(con: duckdb.DuckDBPyConnection, entity: Entity, good: str = GOOD_TABLE) -> None:
    """Store the validated rows (the view `good_rows`, or a relation of the same columns), in the caller's transaction."""
    con.execute(
        f"INSERT INTO raw.{entity.name} ({', '.join(entity.column_names)}, _landing_date, _source_file, "
        f"_row_number, _ingested_at) SELECT {', '.join(entity.column_names)}, "
        f"_landing_date, _source_file, _row_number, current_timestamp::TIMESTAMP FROM {good}"
    )


def store_quarantined_rows(con: duckdb.DuckDBPyConnection, run_id: str, bad: str = BAD_TABLE) -> None:
    """Store the quarantined rows (the view `bad_rows`, or a relation of the same columns), in the caller's transaction."""
    con.execute(
        "INSERT INTO quality.quarantined_rows SELECT entity, landing_date, source_file, row_number, "
        f"reason, raw_row, ?, current_timestamp::TIMESTAMP FROM {bad}",
        [run_id],
    )


def store_quarantined_files(con: duckdb.DuckDBPyConnection, quarantined_files: pl.DataFrame, run_id: str) -> None:
    """Record the files not ingested, with why, in the caller's transaction."""
    con.register("bad_files", quarantined_files)
    try:
        con.execute(
            "INSERT INTO quality.quarantined_files SELECT entity, landing_date, source_file, reason, "
            "sha256, size_bytes, ?, current_timestamp::TIMESTAMP FROM bad_files",
            [run_id],
        )
    finally:
        con.unregister("bad_files")
