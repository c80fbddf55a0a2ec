"""Reading one landing day's files, and rejecting whole files that cannot be read.

Every file is read as text columns, whatever its format, so that the row rules in
`validation.py` apply the same way to CSV, JSON lines and Parquet. Landing files are only read,
never moved or changed: a rejected file stays where it is and is listed with its reason.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from lifecycle_assets.ingest.contract import LANDING_FORMATS, Entity


@dataclass(frozen=True)
class RejectedFile:
    source_file: str
    reason: str
    sha256: str
    size_bytes: int


@dataclass
class LandingDay:
    """All readable rows of one entity's landing day, plus the files that were rejected."""

    rows: pl.DataFrame
    rejected_files: list[RejectedFile] = field(default_factory=list)
    files_read: int = 0


def _text_frame(raw: bytes, suffix: str) -> pl.DataFrame:
    """Parse a file's bytes into a frame of text columns; raises on anything unreadable."""
    if suffix == "parquet":
        frame = pl.read_parquet(io.BytesIO(raw))
    elif suffix == "csv":
        frame = pl.read_csv(io.BytesIO(raw), infer_schema=False, truncate_ragged_lines=False)
    else:  # jsonl
        frame = pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None)
    return frame.select(pl.all().cast(pl.String))


def _read_file(path: Path, entity: Entity, relative_name: str) -> pl.DataFrame | RejectedFile:
    raw = path.read_bytes()

    def reject(reason: str) -> RejectedFile:
        return RejectedFile(relative_name, reason, hashlib.sha256(raw).hexdigest(), len(raw))

    suffix = path.suffix.lower().lstrip(".")
    if suffix not in LANDING_FORMATS:
        return reject("unsupported_format")
    if not raw.strip():
        return reject("empty")
    if suffix != "parquet":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return reject(f"not_utf8 (byte {error.start})")
    try:
        frame = _text_frame(raw, suffix)
    except Exception as error:  # polars raises several types for malformed input
        return reject(f"unreadable ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
    missing = [c for c in entity.required_columns if c not in frame.columns]
    if missing:
        return reject("missing_columns:" + ",".join(missing))
    if frame.height == 0:
        return reject("empty")
    # Optional columns the shop did not send are empty; columns we do not know are ignored.
    frame = frame.with_columns(
        [pl.lit(None, dtype=pl.String).alias(c) for c in entity.column_names if c not in frame.columns]
    )
    return frame.select(entity.column_names).with_columns(
        pl.lit(relative_name).alias("_source_file"),
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("_row_number"),
    )


def read_landing_day(root: Path, entity: Entity, day: str) -> LandingDay:
    """Read `<root>/<entity>/date=<day>/*` in file-name order (the order duplicate ids are resolved in)."""
    folder = root / entity.name / f"date={day}"
    empty = pl.DataFrame(
        schema={**{c: pl.String for c in entity.column_names}, "_source_file": pl.String, "_row_number": pl.Int64}
    )
    if not folder.is_dir():
        return LandingDay(rows=empty)
    frames, rejected, files_read = [empty], [], 0
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_"))):
        files_read += 1
        result = _read_file(path, entity, str(path.relative_to(root)))
        if isinstance(result, RejectedFile):
            rejected.append(result)
        else:
            frames.append(result)
    return LandingDay(rows=pl.concat(frames, how="vertical"), rejected_files=rejected, files_read=files_read)
