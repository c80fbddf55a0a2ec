"""One entity's ingest of a range of landing days, without Dagster: load, validate, store.

DuckDB does the work: its readers load the files, the contract's rules run as SQL over the
loaded rows, and the result replaces the range's landing days in one transaction. Memory is
bounded by DuckDB's `memory_limit` (it spills to `temp_directory`), not by the range's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from lifecycle_assets.ingest.contract import Entity
from lifecycle_assets.ingest.landing import FILES_TABLE, LANDED_TABLE, READ_TABLE, RejectedFile, load_landing_files
from lifecycle_assets.ingest.storage import ensure_tables, replace_landing_days
from lifecycle_assets.ingest.validation import BAD_TABLE, GOOD_TABLE, validate_landed

QUARANTINED_FILES_SCHEMA = {
    "entity": pl.String,
    "landing_date": pl.Date,
    "source_file": pl.String,
    "reason": pl.String,
    "sha256": pl.String,
    "size_bytes": pl.Int64,
}


@dataclass
class IngestOutcome:
    rows_stored: int
    rows_quarantined: int
    files_read: int
    rejected_files: list[RejectedFile]
    reasons: pl.DataFrame  # reason, rows: quarantined rows per reason
    preview: pl.DataFrame  # a few stored rows

    def rejected_frame(self, entity: str) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "entity": [entity] * len(self.rejected_files),
                "landing_date": [f.landing_date for f in self.rejected_files],
                "source_file": [f.source_file for f in self.rejected_files],
                "reason": [f.reason for f in self.rejected_files],
                "sha256": [f.sha256 for f in self.rejected_files],
                "size_bytes": [f.size_bytes for f in self.rejected_files],
            },
            schema=QUARANTINED_FILES_SCHEMA,
        )


def configure(con: duckdb.DuckDBPyConnection, memory_limit: str | None = None, temp_directory: str | None = None) -> None:
    """UTC session (naive timestamps are UTC) and the memory bound DuckDB spills beyond."""
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute("SET memory_limit = ?", [memory_limit])
    if temp_directory:
        con.execute("SET temp_directory = ?", [temp_directory])


def ingest_days(con: duckdb.DuckDBPyConnection, root: Path, entity: Entity, days: list[date], run_id: str) -> IngestOutcome:
    """Read, validate and store one entity's landing days `days` (consecutive, oldest first)."""
    ensure_tables(con)
    landed = load_landing_files(con, Path(root), entity, days)
    validate_landed(con, entity)
    outcome = IngestOutcome(
        rows_stored=con.execute(f"SELECT count(*) FROM {GOOD_TABLE}").fetchone()[0],
        rows_quarantined=con.execute(f"SELECT count(*) FROM {BAD_TABLE}").fetchone()[0],
        files_read=landed.files_read,
        rejected_files=sorted(landed.rejected_files, key=lambda f: (str(f.landing_date), f.source_file)),
        reasons=con.execute(
            f"SELECT reason, count(*) AS rows FROM {BAD_TABLE} GROUP BY reason ORDER BY rows DESC, reason"
        ).pl(),
        preview=con.execute(
            f"SELECT * EXCLUDE (_landing_date, _source_file, _row_number) FROM {GOOD_TABLE} "
            "ORDER BY _landing_date, _source_file, _row_number LIMIT 5"
        ).pl(),
    )
    replace_landing_days(con, entity, days[0], days[-1], outcome.rejected_frame(entity.name), run_id)
    con.execute(f"DROP VIEW IF EXISTS {LANDED_TABLE}")
    for table in ("checked", READ_TABLE, FILES_TABLE):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return outcome
