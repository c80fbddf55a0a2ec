"""Finding a run's landing files and loading them into DuckDB, rejecting whole files that cannot be read.

DuckDB's own CSV, JSON and Parquet readers load every file of the run's landing days at once,
with the column names of the contract and every value as text (no sniffing), so the row rules in
`validation.py` apply the same way to all three formats. A file is probed cheaply first (its
header line, its first JSON line, its Parquet schema); a load that fails is split in halves until
the bad file is found, so good files are read once and a bad file never stops the run.

Landing files are only read, never moved or changed. Every entry of a landing day's folder that is
not ingested is listed with why (hidden, nested folder, unsupported format, symlink out of the
landing zone, ...), and so is every entry of the entity's folder that is not a `date=` day folder.
Reasons name the file and the line, never the line's content: a row may hold a customer's address.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lifecycle_assets.ingest.contract import ENTITIES, LANDING_FORMATS, Entity

LANDED_TABLE = "landed"
READ_TABLE = "landed_as_read"
FILES_TABLE = "landing_files"
DAY_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})")
ANY_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
HEADER_PROBE_BYTES = 1 << 20


@dataclass(frozen=True)
class RejectedFile:
    source_file: str
    reason: str
    landing_date: date | None
    sha256: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class LandingFile:
    path: Path
    source_file: str  # relative to the landing root, as stored in the raw tables
    landing_date: date
    format: str


@dataclass
class LandedRange:
    """What a run found: the files whose rows the `landed` temp view shows, and those rejected."""

    files_read: int = 0
    rejected_files: list[RejectedFile] = field(default_factory=list)


def _reject(file: Path, source_file: str, reason: str, day: date | None, read_content: bool = True) -> RejectedFile:
    """A rejected file with its fingerprint (only for files we may read: never behind a symlink out of the zone)."""
    if not read_content or not file.is_file():
        return RejectedFile(source_file, reason, day)
    raw = file.read_bytes()
    return RejectedFile(source_file, reason, day, hashlib.sha256(raw).hexdigest(), len(raw))


def _day_of(name: str) -> date | None:
    found = ANY_DAY.search(name)
    if not found:
        return None
    try:
        return date.fromisoformat(found.group())
    except ValueError:
        return None


def stray_root_entries(root: Path) -> list[RejectedFile]:
    """Entries at the top of the landing root that are no entity folder: a misspelt `custmers/`, a loose file.

    Hidden entries (`.`/`_`, e.g. the sample shop's `_manifest.json`) are the operator's own and left alone.
    """
    return [
        RejectedFile(entry.name, "not_an_entity_folder", None)
        for entry in sorted(root.iterdir())
        if entry.name not in ENTITIES and not entry.name.startswith((".", "_"))
    ]


def find_landing_files(root: Path, entity: Entity, days: list[date]) -> tuple[list[LandingFile], list[RejectedFile]]:
    """The readable candidate files of the run's days, and every entry that will not be ingested, with why.

    The first entity of the contract also reports the landing root's stray entries, so each is recorded once.
    """
    root = root.resolve()
    entity_folder = root / entity.name
    wanted = set(days)
    files: list[LandingFile] = []
    skipped: list[RejectedFile] = stray_root_entries(root) if root.is_dir() and entity.name == next(iter(ENTITIES)) else []
    if entity_folder.is_symlink() and not entity_folder.resolve().is_relative_to(root):
        return files, [RejectedFile(entity.name, "symlink_outside_landing", None)]
    if not entity_folder.is_dir():
        return files, skipped
    day_folders: list[tuple[Path, date]] = []
    for entry in sorted(entity_folder.iterdir()):
        relative = f"{entity.name}/{entry.name}"
        matched = DAY_FOLDER.fullmatch(entry.name)
        day = _day_of(entry.name) if matched else None
        if matched and day and entry.is_dir() and not entry.is_symlink():
            if day in wanted:
                day_folders.append((entry, day))
            continue
        # Not a day folder: recorded under the day its name suggests (if in this run), else undated.
        guessed = _day_of(entry.name)
        if guessed is not None and guessed not in wanted:
            continue
        if entry.is_symlink():
            reason = "symlink_folder" if entry.is_dir() else "not_in_a_day_folder"
        elif entry.is_dir():
            reason = "bad_folder_name"
        else:
            reason = "not_in_a_day_folder"
        skipped.append(RejectedFile(relative, reason, guessed))
    for folder, day in day_folders:
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(root).as_posix()
            suffix = entry.suffix.lower().lstrip(".")
            if entry.is_symlink() and not entry.resolve().is_relative_to(root):
                skipped.append(RejectedFile(relative, "symlink_outside_landing", day))
            elif entry.name.startswith((".", "_")):
                skipped.append(_reject(entry, relative, "hidden_file", day, read_content=entry.is_file()))
            elif entry.is_dir():
                skipped.append(RejectedFile(relative, "nested_folder", day))
            elif not entry.is_file():
                skipped.append(RejectedFile(relative, "not_a_regular_file", day))
            elif suffix not in LANDING_FORMATS:
                skipped.append(_reject(entry, relative, "unsupported_format", day))
            else:
                files.append(LandingFile(entry, relative, day, suffix))
    return files, skipped


# --- Cheap per-file probes -------------------------------------------------------------------------


def _first_line(path: Path) -> tuple[bytes, bool]:
    with path.open("rb") as handle:
        chunk = handle.read(HEADER_PROBE_BYTES)
    line, newline, _ = chunk.partition(b"\n")
    return line.rstrip(b"\r"), bool(newline) or len(chunk) < HEADER_PROBE_BYTES


def _not_utf8(error: UnicodeDecodeError, line: int) -> str:
    return f"not_utf8 (line {line}, byte {error.start})"


def probe_csv(path: Path, entity: Entity) -> tuple[str, ...] | str:
    """The CSV header's column names, or the reason the file is rejected."""
    line, complete = _first_line(path)
    if not complete:
        return "unreadable (line 1: header longer than 1 MB)"
    try:
        text = line.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        return _not_utf8(error, 1)
    if not text.strip():
        return "empty"
    header = tuple(name.strip() for name in next(csv.reader([text])))
    missing = [c for c in entity.required_columns if c not in header]
    if missing:
        return "missing_columns:" + ",".join(missing)
    if len(set(header)) != len(header):
        return "unreadable (line 1: a column name appears twice)"
    return header


def _json_objects(path: Path) -> Iterator[dict | str]:
    """Each non-empty line's JSON object; the first line that is not one ends it with the reason (a str)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as error:
                yield _not_utf8(error, number)
                return
            except ValueError:
                yield f"unreadable (line {number}: not valid JSON)"
                return
            if not isinstance(value, dict):
                yield f"unreadable (line {number}: not a JSON object)"
                return
            yield value


def probe_jsonl(path: Path, entity: Entity) -> tuple[str, ...] | str:
    """The keys of the first JSON line (the file's header, as it were), or the reason it is rejected."""
    for value in _json_objects(path):
        if isinstance(value, str):
            return value
        missing = [c for c in entity.required_columns if c not in value]
        if missing:
            return "missing_columns:" + ",".join(missing)
        return tuple(value)
    return "empty"


def probe_parquet(path: Path, entity: Entity) -> tuple[tuple[str, bool], ...] | str:
    """The Parquet file's (column, is nested) pairs, read from its footer only, or the reason it is rejected."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return "unreadable (not a valid Parquet file)"
    columns = tuple((f.name, pa.types.is_nested(f.type)) for f in schema)
    missing = [c for c in entity.required_columns if c not in {name for name, _ in columns}]
    if missing:
        return "missing_columns:" + ",".join(missing)
    return columns


# --- Loading into DuckDB ---------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_number(numbers: list[int]) -> str:
    """SQL: the run's number of the row's file (the reader's `file_index` counts the files of one read).

    A number, not the reader's `filename`: a long path string on every row costs more than the read.
    """
    return f"[{', '.join(map(str, numbers))}][file_index::BIGINT + 1] AS _file"


def _csv_select(entity: Entity, header: tuple[str, ...], paths: list[str], numbers: list[int]) -> str:
    columns = "{" + ", ".join(f"{_literal(name)}: 'VARCHAR'" for name in header) + "}"
    values = [_quote(c) if c in header else "NULL::VARCHAR" for c in entity.column_names]
    return (
        f"SELECT {', '.join(values)}, NULL::VARCHAR AS _nested, {_file_number(numbers)}, ordinality AS _ordinal "
        f"FROM read_csv([{', '.join(map(_literal, paths))}], columns = {columns}, header = true, "
        "auto_detect = false, delim = ',', quote = '\"', escape = '\"', strict_mode = true, "
        "null_padding = false) WITH ORDINALITY"
    )


def _jsonl_select(entity: Entity, paths: list[str], numbers: list[int]) -> str:
    columns = "{" + ", ".join(f"{_literal(c)}: 'JSON'" for c in entity.column_names) + "}"
    values = [f"{_quote(c)}->>'$' AS {_quote(c)}" for c in entity.column_names]
    nested = " ".join(
        f"WHEN json_type({_quote(c)}) IN ('OBJECT', 'ARRAY') THEN {_literal(c)}" for c in entity.column_names
    )
    return (
        f"SELECT {', '.join(values)}, CASE {nested} END AS _nested, {_file_number(numbers)}, ordinality AS _ordinal "
        f"FROM read_json([{', '.join(map(_literal, paths))}], format = 'newline_delimited', "
        f"columns = {columns}) WITH ORDINALITY"
    )


def _parquet_select(entity: Entity, schema: tuple[tuple[str, bool], ...], paths: list[str], numbers: list[int]) -> str:
    is_nested = dict(schema)
    values, nested = [], []
    for c in entity.column_names:
        if c not in is_nested:
            values.append(f"NULL::VARCHAR AS {_quote(c)}")
        elif is_nested[c]:
            values.append(f"{_quote(c)}::VARCHAR AS {_quote(c)}")
            nested.append(f"WHEN {_quote(c)} IS NOT NULL THEN {_literal(c)}")
        else:
            values.append(f"{_quote(c)}::VARCHAR AS {_quote(c)}")
    nested_case = f"CASE {' '.join(nested)} END" if nested else "NULL::VARCHAR"
    return (
        f"SELECT {', '.join(values)}, {nested_case} AS _nested, {_file_number(numbers)}, file_row_number AS _ordinal "
        f"FROM read_parquet([{', '.join(map(_literal, paths))}], file_row_number = true)"
    )


def _csv_error_reason(error: Exception) -> str:
    """DuckDB's CSV error as file-level reason: the line and the kind of error, never the line itself."""
    message = str(error)
    line = re.search(r"CSV Error on Line: (\d+)", message)
    where = f"line {line.group(1)}: " if line else ""
    if "Invalid unicode" in message or "not utf-8" in message:
        return f"not_utf8 ({where.rstrip(': ')})" if where else "not_utf8"
    kinds = {
        "unterminated quote": "a quoted value is never closed",
        "Expected Number of Columns": "wrong number of columns",
        "quote": "a quote in an unquoted value",
        "Maximum line size": "line too long",
    }
    kind = next((text for marker, text in kinds.items() if marker in message), "not valid CSV")
    return f"unreadable ({where}{kind})"


def _jsonl_error_reason(path: Path) -> str:
    """The first line of a JSON lines file that is not one JSON object (found only for a file that failed)."""
    return next((value for value in _json_objects(path) if isinstance(value, str)), "unreadable (not valid JSON lines)")


def create_read_table(con: duckdb.DuckDBPyConnection, entity: Entity) -> None:
    columns = ", ".join(f"{_quote(c)} VARCHAR" for c in entity.column_names)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {READ_TABLE} ({columns}, _nested VARCHAR, _file INTEGER, _ordinal BIGINT)"
    )


def _load(con: duckdb.DuckDBPyConnection, select, files: list[LandingFile], numbers: dict[str, int], diagnose,
          rejected: list) -> None:
    """Insert the files' rows; if DuckDB refuses the set, halve it until the refused files are found."""
    if not files:
        return
    try:
        con.execute(f"INSERT INTO {READ_TABLE} {select([str(f.path) for f in files], [numbers[f.source_file] for f in files])}")
    except duckdb.Error as error:
        if len(files) == 1:
            rejected.append(_reject(files[0].path, files[0].source_file, diagnose(files[0], error), files[0].landing_date))
            return
        middle = len(files) // 2
        _load(con, select, files[:middle], numbers, diagnose, rejected)
        _load(con, select, files[middle:], numbers, diagnose, rejected)


def load_landing_files(con: duckdb.DuckDBPyConnection, entity: Entity, files: list[LandingFile]) -> LandedRange:
    """Define the temp view `landed`: every readable row of the given landing files (`find_landing_files`), as text.

    Columns: the entity's columns (VARCHAR), `_nested` (the first contract column holding a list or
    object, if any), `_landing_date`, `_file` (the file's number, in the order of the file names),
    `_row_number` (1-based, header excluded) and `_ordinal` (the row's key in `landed_as_read`).
    The temp table `landing_files` gives each file number with rows its `_source_file`.
    """
    rejected: list[RejectedFile] = []
    create_read_table(con, entity)
    groups: dict[tuple, list[LandingFile]] = {}
    for file in files:
        if file.path.stat().st_size == 0:
            rejected.append(_reject(file.path, file.source_file, "empty", file.landing_date))
            continue
        if file.format == "csv":
            probed = probe_csv(file.path, entity)
        elif file.format == "jsonl":
            probed = probe_jsonl(file.path, entity)
        else:
            probed = probe_parquet(file.path, entity)
        if isinstance(probed, str):
            rejected.append(_reject(file.path, file.source_file, probed, file.landing_date))
        else:
            # JSON lines are read by the contract's names whatever their keys: one group per format.
            groups.setdefault((file.format, probed if file.format != "jsonl" else ()), []).append(file)

    # Files are numbered in the order of their names, so ordering by number is ordering by name.
    numbers = {name: number for number, name in enumerate(sorted(f.source_file for f in files))}
    for (file_format, shape), group in groups.items():
        if file_format == "csv":
            _load(con, lambda paths, n, h=shape: _csv_select(entity, h, paths, n), group, numbers,
                  lambda f, error: _csv_error_reason(error), rejected)
        elif file_format == "jsonl":
            _load(con, lambda paths, n: _jsonl_select(entity, paths, n), group, numbers,
                  lambda f, error: _jsonl_error_reason(f.path), rejected)
        else:
            _load(con, lambda paths, n, s=shape: _parquet_select(entity, s, paths, n), group, numbers,
                  lambda f, error: "unreadable (not a valid Parquet file)", rejected)

    loaded = [f for f in files if f.source_file not in {r.source_file for r in rejected}]
    _attach_lineage(con, loaded, numbers)
    # A file that parsed but holds no data row (a header alone, blank lines) is empty.
    with_rows = {row[0] for row in con.execute(f"SELECT _source_file FROM {FILES_TABLE}").fetchall()}
    for file in loaded:
        if file.source_file not in with_rows:
            rejected.append(_reject(file.path, file.source_file, "empty", file.landing_date))
    return LandedRange(files_read=len(files), rejected_files=rejected)


def _attach_lineage(con: duckdb.DuckDBPyConnection, files: list[LandingFile], numbers: dict[str, int]) -> None:
    """Give each file with rows its landing day, its path relative to the landing root and its first
    ordinal (the readers number rows across all files of one read, in order), and show the read rows
    through the view `landed` with their landing day and row number within their file.

    A view, not a table: the row rules read the landed rows once, so a copy would cost more than it saves.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {FILES_TABLE} AS "
        f"WITH starts AS (SELECT _file, min(_ordinal) AS _first FROM {READ_TABLE} GROUP BY _file), "
        "files AS (SELECT unnest(?::INTEGER[]) AS _file, unnest(?::VARCHAR[]) AS _source_file, "
        "unnest(?::DATE[]) AS _landing_date) "
        "SELECT _file, _source_file, _landing_date, _first FROM files JOIN starts USING (_file)",
        [[numbers[f.source_file] for f in files], [f.source_file for f in files], [f.landing_date for f in files]],
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {LANDED_TABLE} AS "
        "SELECT l.* EXCLUDE (_file, _ordinal), f._landing_date, l._file, l._ordinal - f._first + 1 AS _row_number, "
        f"l._ordinal FROM {READ_TABLE} AS l JOIN {FILES_TABLE} AS f USING (_file)"
    )
