"""Durable landing files for webhook batches, and the index that keeps a retried event out.

A batch becomes one JSONL file of `interactions` in the landing folder of the day it was
received (UTC): written to a hidden temporary file, fsynced, renamed into place and the folder
fsynced, all before the receiver answers 2xx. A crash before the rename leaves only a hidden
temporary file (removed at the next start) and no answer, so SendGrid sends the batch again; a
crash after it leaves the file, and the retry finds every id already in the index.

The index holds the event ids of the webhook files of the last INDEX_DAYS landing days, read
back from disk at start: SendGrid retries a batch for up to 24 h, which spans at most two
landing days. Memory is bounded by the events of those days (~100 bytes each).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Callable

ENTITY = "interactions"
FILE_PREFIX = "sendgrid-"
TEMP_PREFIX = ".sendgrid-"
INDEX_DAYS = 3


@dataclass(frozen=True)
class StoredBatch:
    received: int
    new: int
    path: Path | None


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class WebhookLanding:
    """Writes batches as landing files; one writer at a time, so the index check and the write are one step."""

    def __init__(self, root: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.root = Path(root)
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, set[str]] = {}  # landing day -> event ids written that day
        self._load_index()

    def folder(self, day: date) -> Path:
        return self.root / ENTITY / f"date={day.isoformat()}"

    def _index_days(self) -> list[date]:
        today = self.clock().date()
        return [today - timedelta(days=offset) for offset in range(INDEX_DAYS)]

    def _load_index(self) -> None:
        for day in self._index_days():
            folder = self.folder(day)
            ids: set[str] = set()
            if folder.is_dir():
                for leftover in folder.glob(TEMP_PREFIX + "*"):
                    leftover.unlink(missing_ok=True)  # never renamed, never acknowledged
                for path in sorted(folder.glob(FILE_PREFIX + "*.jsonl")):
                    with path.open(encoding="utf-8") as lines:
                        ids.update(json.loads(line)["event_id"] for line in lines if line.strip())
            self._seen[day.isoformat()] = ids

    def _known(self, event_id: str) -> bool:
        return any(event_id in ids for ids in self._seen.values())

    def store(self, rows: list[dict]) -> StoredBatch:
        """Write the rows not stored before; returns once they are durable on disk."""
        with self._lock:
            day = self.clock().date()
            key = day.isoformat()
            if key not in self._seen:  # a new day: forget days beyond the retry horizon
                self._seen[key] = set()
                keep = {d.isoformat() for d in self._index_days()}
                self._seen = {d: ids for d, ids in self._seen.items() if d in keep}
            fresh, batch_ids = [], set()
            for row in rows:
                if not self._known(row["event_id"]) and row["event_id"] not in batch_ids:
                    batch_ids.add(row["event_id"])
                    fresh.append(row)
            if not fresh:
                return StoredBatch(received=len(rows), new=0, path=None)
            path = self._write(day, fresh)
            self._seen[key].update(batch_ids)
            return StoredBatch(received=len(rows), new=len(fresh), path=path)

    def _write(self, day: date, rows: list[dict]) -> Path:
        folder = self.folder(day)
        if not folder.is_dir():  # a new day's folder: its own entry must be durable too
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(folder.parent)
        # Names sort by receipt time, the order ingest resolves duplicate ids in.
        name = f"{FILE_PREFIX}{self.clock().strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:12]}.jsonl"
        temporary, final = folder / (TEMP_PREFIX + name.removeprefix(FILE_PREFIX) + ".tmp"), folder / name
        payload = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        _fsync_dir(folder)
        return final
