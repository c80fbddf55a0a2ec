"""Raw and quarantine tables in the DuckDB warehouse, written one landing-day range at a time.

A run replaces exactly the landing days it ingested, in one transaction, so re-running a
partition gives the same tables and a crash leaves the previous state.
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from lifecycle_assets.ingest.contract import ENTITIES, Entity

DUCKDB_TYPES = {
    "string": "VARCHAR",
    "email": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "amount": "DOUBLE",
}

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
    con.execute(QUARANTINED_ROWS_DDL)
    con.execute(QUARANTINED_FILES_DDL)


def known_ids(con: duckdb.DuckDBPyConnection, entity: Entity, incoming: pl.DataFrame) -> dict[str, pl.Series]:
    """Ids the incoming rows refer to that are already ingested; looks up only the ids in this batch."""
    found = {}
    for column, referenced, referenced_key in entity.references:
        wanted = incoming.select(pl.col(column).str.strip_chars().alias("id")).drop_nulls().unique()
        con.register("wanted_ids", wanted)
        found[column] = con.execute(
            f"SELECT DISTINCT {referenced_key} AS id FROM raw.{referenced} "
            f"WHERE {referenced_key} IN (SELECT id FROM wanted_ids)"
        ).pl()["id"]
        con.unregister("wanted_ids")
    return found


def replace_landing_days(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    first_day: date,
    last_day: date,
    good: pl.DataFrame,
    quarantined_rows: pl.DataFrame,
    quarantined_files: pl.DataFrame,
    run_id: str,
) -> None:
    """Swap the given landing days of one entity for the new rows, atomically."""
    con.register("good_rows", good)
    con.register("bad_rows", quarantined_rows)
    con.register("bad_files", quarantined_files)
    try:
        con.execute("BEGIN TRANSACTION")
        window = [first_day, last_day]
        con.execute(f"DELETE FROM raw.{entity.name} WHERE _landing_date BETWEEN ? AND ?", window)
        con.execute(
            f"INSERT INTO raw.{entity.name} SELECT {', '.join(entity.column_names)}, "
            "_landing_date, _source_file, _row_number, current_timestamp::TIMESTAMP FROM good_rows"
        )
        for table in ("quarantined_rows", "quarantined_files"):
            con.execute(
                f"DELETE FROM quality.{table} WHERE entity = ? AND landing_date BETWEEN ? AND ?",
                [entity.name, *window],
            )
        con.execute(
            "INSERT INTO quality.quarantined_rows SELECT entity, landing_date, source_file, row_number, "
            "reason, raw_row, ?, current_timestamp::TIMESTAMP FROM bad_rows",
            [run_id],
        )
        con.execute(
            "INSERT INTO quality.quarantined_files SELECT entity, landing_date, source_file, reason, "
            "sha256, size_bytes, ?, current_timestamp::TIMESTAMP FROM bad_files",
            [run_id],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in ("good_rows", "bad_rows", "bad_files"):
            con.unregister(name)
