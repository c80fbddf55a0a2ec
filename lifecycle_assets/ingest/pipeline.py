"""One entity's ingest of a range of landing days, without Dagster: load, validate, store.

DuckDB does the work: its readers load the files, the contract's rules run as SQL over the
loaded rows, and the result replaces the range's landing days in one transaction. Memory is
bounded by DuckDB's `memory_limit` (it spills to `temp_directory`), not by the range's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from lifecycle_assets.ingest.contract import Entity
from lifecycle_assets.ingest.landing import (
    FILES_TABLE, LANDED_TABLE, READ_TABLE, LandingFile, RejectedFile, find_landing_files, load_landing_files,
)
from lifecycle_assets.ingest.storage import (
    clear_landing_days, ensure_tables, store_good_rows, store_quarantined_files, store_quarantined_rows,
)
from lifecycle_assets.ingest.validation import BAD_TABLE, GOOD_TABLE, validate_landed

# Landing files read per slice of a long range (LandingZone.slice_megabytes); a day is never split.
DEFAULT_SLICE_BYTES = 256 * 2**20
PREVIEW_ROWS = 5
STREAM_BATCH_ROWS = 122_880  # rows per Arrow batch to the run's transaction: a row group (1M-row batches: 1M interactions +1.8 s)
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


def slices_of(files: list[LandingFile], days: list[date], slice_bytes: int) -> list[list[LandingFile]]:
    """The run's files in slices of whole consecutive landing days, each at most `slice_bytes` of files (or one day)."""
    by_day: dict[date, list[LandingFile]] = {day: [] for day in days}
    for file in files:
        by_day[file.landing_date].append(file)
    pieces: list[list[LandingFile]] = [[]]
    size = 0
    for day_files in by_day.values():
        day_size = sum(file.path.stat().st_size for file in day_files)
        if pieces[-1] and size + day_size > slice_bytes:
            pieces.append([])
            size = 0
        pieces[-1].extend(day_files)
        size += day_size
    return pieces


def ingest_days(
    con: duckdb.DuckDBPyConnection, root: Path, entity: Entity, days: list[date], run_id: str,
    slice_bytes: int = DEFAULT_SLICE_BYTES,
) -> IngestOutcome:
    """Read, validate and store one entity's landing days `days` (consecutive, oldest first), in one transaction.

    The range is read and checked a slice of whole landing days at a time (at most `slice_bytes` of files, or one
    day): DuckDB holds one slice's rows as text, not the range's (a year of a 5M-customer shop in one piece spilled
    27.7 GB). A second connection reads and checks each slice, outside the run's transaction, since a file DuckDB
    refuses (found by reading it) would abort a transaction. The run's transaction, open from the first slice on,
    clears the range's days and stores each slice's rows as the second connection streams them (Arrow batches): the
    rows are written once, and a slice is gone when the next is read (a transaction that read another connection's
    tables would keep every slice until it ends). The duplicate rule is within a landing day, so slices change no
    row's fate.
    """
    ensure_tables(con)
    files, rejected = find_landing_files(Path(root), entity, days)
    reader = con.cursor()  # its own connection: what fails there leaves the run's transaction alone
    configure(reader)
    stored = quarantined = 0
    reasons: dict[str, int] = {}
    preview: pl.DataFrame | None = None
    con.execute("BEGIN TRANSACTION")
    try:
        clear_landing_days(con, entity, days[0], days[-1])
        for piece in slices_of(files, days, slice_bytes):
            landed = load_landing_files(reader, entity, piece)
            rejected += landed.rejected_files
            validate_landed(reader, entity)
            stored += reader.execute(f"SELECT count(*) FROM {GOOD_TABLE}").fetchone()[0]
            for reason, rows in reader.execute(f"SELECT reason, count(*) FROM {BAD_TABLE} GROUP BY reason").fetchall():
                reasons[reason] = reasons.get(reason, 0) + rows
                quarantined += rows
            if preview is None or preview.height < PREVIEW_ROWS:
                first_rows = reader.execute(
                    f"SELECT * EXCLUDE (_landing_date, _source_file, _row_number) FROM {GOOD_TABLE} "
                    f"ORDER BY _landing_date, _source_file, _row_number LIMIT {PREVIEW_ROWS}"
                ).pl()
                preview = first_rows if preview is None else pl.concat([preview, first_rows]).head(PREVIEW_ROWS)
            # One stream at a time: the reader's next query ends its last result.
            with _streamed(con, reader, GOOD_TABLE) as good:
                store_good_rows(con, entity, good)
            with _streamed(con, reader, BAD_TABLE) as bad:
                store_quarantined_rows(con, run_id, bad)
        outcome = IngestOutcome(
            rows_stored=stored,
            rows_quarantined=quarantined,
            files_read=len(files),
            rejected_files=sorted(rejected, key=lambda f: (str(f.landing_date), f.source_file)),
            reasons=pl.DataFrame(
                sorted(reasons.items(), key=lambda item: (-item[1], item[0])),
                schema={"reason": pl.String, "rows": pl.Int64}, orient="row",
            ),
            preview=preview,
        )
        store_quarantined_files(con, outcome.rejected_frame(entity.name), run_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        _drop_read_tables(reader)
        reader.close()
    return outcome


@contextmanager
def _streamed(con: duckdb.DuckDBPyConnection, reader: duckdb.DuckDBPyConnection, view: str) -> Iterator[str]:
    """The rows of the reader's `view` registered on `con` as a stream of Arrow batches: the name to select from."""
    name = f"streamed_{view}"
    con.register(name, reader.execute(f"SELECT * FROM {view}").to_arrow_reader(STREAM_BATCH_ROWS))
    try:
        yield name
    finally:
        con.unregister(name)


def _drop_read_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP VIEW IF EXISTS {BAD_TABLE}")
    con.execute(f"DROP VIEW IF EXISTS {GOOD_TABLE}")
    con.execute(f"DROP VIEW IF EXISTS {LANDED_TABLE}")
    for table in ("checked", READ_TABLE, FILES_TABLE):
        con.execute(f"DROP TABLE IF EXISTS {table}")
