"""Writing the simulated shop as landing files: spool the chunks, then write day by day.

Chunks arrive customer by customer, files are per day: each chunk's numeric rows are spooled to
disk (Arrow IPC) in buckets of days, and the files are written bucket by bucket. Memory is bounded
by one chunk while simulating and one bucket of days per worker while writing. Ids that follow time
across the whole shop (orders, events) are numbered before any file is written, so buckets can be
written by several threads at once and the files are the same whatever their number.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from lifecycle_assets.ingest.contract import ENTITIES, EVENT_TYPES
from lifecycle_assets.sample_data.dirty import BreakContext, break_row
from lifecycle_assets.sample_data.simulation import (
    CATALOGUE,
    FIRST_NAMES,
    FIRST_NAMES_ASCII,
    LAST_NAMES,
    LETTER_TRIGGERS,
    MAIN_FILE,
    ORDER_STATUSES,
    SEARCH_QUERIES,
    SECONDS_PER_DAY,
    TIMEZONES,
    ShopPlan,
)

ENTITY_ORDER = ("customers", "products", "orders", "order_items", "interactions")
SIMULATED = ("customers", "orders", "order_items", "interactions")
# Formats rotate over days so every entity lands as CSV, Parquet and JSON lines.
FORMAT_CYCLE = ("csv", "csv", "parquet", "csv", "jsonl", "csv", "csv")
FILE_STEMS = ("main", "updates")  # by ``_file`` code; "main" is the entity's own name
# Days per spool bucket: about this many customers' worth of rows are formatted at once.
CUSTOMERS_PER_BUCKET = 50_000


class Spool:
    """The chunks' numeric rows on disk, by entity and bucket of days, plus the counts ids need."""

    def __init__(self, folder: Path, plan: ShopPlan):
        self.folder = folder
        self.days = plan.days
        buckets = max(1, min(plan.days, -(-plan.customers // CUSTOMERS_PER_BUCKET)))
        self.days_per_bucket = -(-plan.days // buckets)
        self.buckets = -(-plan.days // self.days_per_bucket)
        self.main_rows_per_day = {entity: np.zeros(plan.days, dtype=np.int64) for entity in ENTITY_ORDER}
        self.main_rows_per_day["products"][0] = CATALOGUE.height
        self.orders_per_chunk: list[int] = []
        self.rows_per_bucket = {entity: np.zeros(self.buckets, dtype=np.int64) for entity in SIMULATED}

    def put(self, chunk: int, frames: dict[str, pl.DataFrame]) -> None:
        for entity in SIMULATED:
            frame = frames[entity].with_columns(_chunk=pl.lit(chunk, dtype=pl.Int32))
            main_days = frame.filter(pl.col("_file") == MAIN_FILE)["_day"].to_numpy()
            self.main_rows_per_day[entity] += np.bincount(main_days, minlength=self.days)
            if entity == "orders":
                self.orders_per_chunk.append(int(main_days.size))
            bucket_of_row = frame["_day"] // self.days_per_bucket
            for (bucket,), part in frame.with_columns(_bucket=bucket_of_row).partition_by(
                "_bucket", as_dict=True, include_key=False
            ).items():
                self.rows_per_bucket[entity][bucket] += part.height
                path = self.folder / entity / f"bucket={bucket:05d}" / f"chunk={chunk:05d}.arrow"
                path.parent.mkdir(parents=True, exist_ok=True)
                part.write_ipc(path)

    def bucket(self, entity: str, bucket: int, columns: list[str] | None = None) -> pl.DataFrame | None:
        """A bucket's rows of every chunk in file order: day, file, time, then chunk and row."""
        folder = self.folder / entity / f"bucket={bucket:05d}"
        paths = sorted(folder.glob("*.arrow")) if folder.exists() else []
        if not paths:
            return None
        order = ["_day", "_file", "_second", "_chunk", "_row"]
        wanted = None if columns is None else list(dict.fromkeys([*order, *columns]))
        frame = pl.concat([pl.read_ipc(path, columns=wanted, memory_map=False) for path in paths])
        return frame.sort(order)


class LandingWriter:
    """Formats and writes one file per entity, day and file stem, numbering orders and events."""

    def __init__(self, root: Path, plan: ShopPlan, spool: Spool, bad_rows: dict | None = None):
        self.root = root
        self.plan = plan
        self.spool = spool
        self.first_day = date(1970, 1, 1) + timedelta(days=plan.base_epoch // SECONDS_PER_DAY)
        self.id_width = max(6, len(str(plan.customers)))
        order_count = sum(spool.orders_per_chunk)
        self.order_id_width = max(7, len(str(order_count)))
        self.event_id_width = max(9, len(str(int(spool.main_rows_per_day["interactions"].sum()))))
        self.chunk_order_offset = np.concatenate([[0], np.cumsum(spool.orders_per_chunk)]).astype(np.int64)
        self.order_number = np.zeros(order_count, dtype=np.int64)
        self.orders_numbered = 0
        self.bad_rows = bad_rows
        self.break_context = BreakContext(plan.base_epoch, plan.reg_day, self.id_width)
        self.row_locations: list[dict] = []
        self.files = 0
        self.rows = {entity: 0 for entity in ENTITY_ORDER}

    def write_all(self, workers: int = 1) -> tuple[int, dict[str, int]]:
        """Write every file; with ``workers`` > 1, buckets of days are written by that many threads
        (polars formats and writes outside the GIL, so they use as many cores)."""
        self._number_orders()
        events_before = np.concatenate([[0], np.cumsum(self.spool.rows_per_bucket["interactions"])])
        buckets = [(bucket, int(events_before[bucket])) for bucket in range(self.spool.buckets)]
        if workers > 1 and len(buckets) > 1:
            with ThreadPoolExecutor(min(workers, len(buckets))) as pool:
                written = list(pool.map(lambda bucket: self._write_bucket(*bucket), buckets))
        else:
            written = [self._write_bucket(*bucket) for bucket in buckets]
        for files, rows, row_locations in written:  # in bucket order, as one process would have
            self.files += files
            self.row_locations += row_locations
            for entity, count in rows.items():
                self.rows[entity] += count
        return self.files, self.rows

    def _number_orders(self) -> None:
        """Order ids follow the order's time across the whole shop: number every order before writing."""
        for bucket in range(self.spool.buckets):
            frame = self.spool.bucket("orders", bucket, columns=["_order"])
            if frame is None:
                continue
            index = self.chunk_order_offset[frame["_chunk"].to_numpy()] + frame["_order"].to_numpy()
            new = index[frame["_file"].to_numpy() == MAIN_FILE]  # main rows are new orders; updates refer back
            self.order_number[new] = self.orders_numbered + np.arange(1, new.size + 1)
            self.orders_numbered += new.size

    def _write_bucket(self, bucket: int, events_before: int) -> tuple[int, dict[str, int], list[dict]]:
        """One bucket's files of every entity; returns files written, rows per entity, bad-row locations."""
        files, rows, row_locations = 0, {entity: 0 for entity in ENTITY_ORDER}, []

        def write(entity: str, day: int, stem: str, data: pl.DataFrame) -> None:
            nonlocal files
            written, locations = self._write_file(entity, day, stem, data)
            files += 1
            rows[entity] += written
            row_locations.extend(locations)

        for entity in ENTITY_ORDER:
            if entity == "products":
                if bucket == 0:
                    write("products", 0, "products", _products_text())
                continue
            frame = self.spool.bucket(entity, bucket)
            if frame is None:
                continue
            # Text for the whole bucket at once (per-day calls would cost more than the work).
            text = self._text(entity, frame, events_before).with_columns(frame.select("_day", "_file"))
            for (day, file_code), part in text.partition_by("_day", "_file", as_dict=True, include_key=False).items():
                stem = entity if file_code == MAIN_FILE else FILE_STEMS[file_code]
                write(entity, int(day), stem, part)
        return files, rows, row_locations

    # text ---------------------------------------------------------------------------------------
    def _text(self, entity: str, frame: pl.DataFrame, events_before: int) -> pl.DataFrame:
        """Contract text of a bucket's rows (in file order), with the shop-wide order and event numbers."""
        if entity == "customers":
            return _customers_text(frame, self.plan.base_epoch, self.id_width)
        if entity in ("orders", "order_items"):
            index = self.chunk_order_offset[frame["_chunk"].to_numpy()] + frame["_order"].to_numpy()
            numbered = frame.with_columns(number=self.order_number[index])
            if entity == "orders":
                return _orders_text(numbered, self.plan.base_epoch, self.id_width, self.order_id_width)
            return _items_text(numbered, self.order_id_width)
        numbers = events_before + np.arange(1, frame.height + 1)
        return _interactions_text(frame.with_columns(number=numbers), self.plan.base_epoch, self.id_width, self.event_id_width)

    # files --------------------------------------------------------------------------------------
    def _write_file(self, entity: str, day: int, stem: str, data: pl.DataFrame) -> tuple[int, list[dict]]:
        """Write one landing file; returns its rows and where its injected bad rows are."""
        day_name = (self.first_day + timedelta(days=day)).isoformat()
        folder = self.root / entity / f"date={day_name}"
        folder.mkdir(parents=True, exist_ok=True)
        entity_index = ENTITY_ORDER.index(entity)
        file_format = "csv" if stem in ("updates", "products") else FORMAT_CYCLE[(day + entity_index) % len(FORMAT_CYCLE)]
        path = folder / f"{stem}_{day_name}.{file_format}"
        planned = self.bad_rows.get(entity, {}).get(day, []) if self.bad_rows is not None and stem == entity else []
        locations: list[dict] = []
        if planned:
            good = data.height
            originals = data.to_dicts()
            bad = [break_row(entity, reason, originals[row], day, number, self.break_context) for row, reason, number in planned]
            data = pl.concat([data, pl.DataFrame(bad, schema=data.schema, orient="row")])
            relative = path.relative_to(self.root).as_posix()
            locations = [
                {"entity": entity, "file": relative, "row_number": good + position, "reason": reason}
                for position, (_, reason, _) in enumerate(planned, start=1)
            ]
        if file_format == "csv":
            data.write_csv(path)
        elif file_format == "parquet":
            (data if planned else _typed(data, entity)).write_parquet(path, statistics=False)
        else:
            (data if planned else _typed(data, entity)).write_ndjson(path)
        return data.height, locations


# --- Numbers to contract text ------------------------------------------------------------------


def _iso(seconds: pl.Expr, base_epoch: int) -> pl.Expr:
    """Seconds since the first landing day -> ISO 8601 UTC text without offset (UTC by contract)."""
    return pl.from_epoch(seconds + base_epoch, time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")


def _amount(cents: pl.Expr) -> pl.Expr:
    return pl.format("{}.{}", (cents // 100).cast(pl.String), (cents % 100).cast(pl.String).str.zfill(2))


def _padded_id(prefix: str, number: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str(pl.lit(prefix), number.cast(pl.String).str.zfill(width))


def _lookup(names: tuple[str, ...], code: pl.Expr) -> pl.Expr:
    """The name at ``code`` (null where the code is negative)."""
    return code.replace_strict(list(range(len(names))), list(names), default=None, return_dtype=pl.String)


def _customers_text(frame: pl.DataFrame, base_epoch: int, id_width: int) -> pl.DataFrame:
    return frame.select(
        customer_id=_padded_id("C", pl.col("number"), id_width),
        email=pl.format(
            "{}.{}.{}@example.com",
            _lookup(FIRST_NAMES_ASCII, pl.col("first")),
            _lookup(LAST_NAMES, pl.col("last")),
            pl.col("number").cast(pl.String),
        ),
        first_name=_lookup(FIRST_NAMES, pl.col("first")),
        registered_at=_iso(pl.col("registered"), base_epoch),
        birthday=pl.when(pl.col("has_birthday")).then(
            pl.from_epoch(pl.col("birthday_days"), time_unit="d").dt.strftime("%Y-%m-%d")
        ),
        timezone=pl.when(pl.col("has_timezone")).then(_lookup(TIMEZONES, pl.col("timezone_index"))),
        marketing_consent=pl.when(pl.col("consent")).then(pl.lit("true")).otherwise(pl.lit("false")),
    )


def _products_text() -> pl.DataFrame:
    return CATALOGUE.select(
        "product_id",
        "name",
        "category",
        price=_amount(pl.col("price_cents")),
        rebuy_interval_days=pl.col("rebuy_interval_days").cast(pl.String),
        url="url",
        image_url="image_url",
    )


def _orders_text(frame: pl.DataFrame, base_epoch: int, id_width: int, order_id_width: int) -> pl.DataFrame:
    return frame.select(
        order_id=_padded_id("O", pl.col("number"), order_id_width),
        customer_id=_padded_id("C", pl.col("customer"), id_width),
        ordered_at=_iso(pl.col("ordered"), base_epoch),
        status=_lookup(ORDER_STATUSES, pl.col("status")),
        total_amount=_amount(pl.col("total")),
    )


def _items_text(frame: pl.DataFrame, order_id_width: int) -> pl.DataFrame:
    return frame.select(
        order_id=_padded_id("O", pl.col("number"), order_id_width),
        line_number=pl.col("line_number").cast(pl.String),
        product_id=_padded_id("P", pl.col("product"), 4),
        quantity=pl.col("quantity").cast(pl.String),
        unit_price=_amount(pl.col("price")),
    )


def _interactions_text(frame: pl.DataFrame, base_epoch: int, id_width: int, event_id_width: int) -> pl.DataFrame:
    return frame.select(
        event_id=_padded_id("E", pl.col("number"), event_id_width),
        occurred_at=_iso(pl.col("_second"), base_epoch),
        event_type=_lookup(EVENT_TYPES, pl.col("type")),
        customer_id=pl.when(pl.col("customer") >= 0).then(_padded_id("C", pl.col("customer"), id_width)),
        anonymous_id=pl.when(pl.col("anonymous") >= 0).then(
            pl.concat_str(pl.lit("anon-"), (pl.col("anonymous") * 2_654_435_761 % 4_294_967_296).cast(pl.String))
        ),
        product_id=pl.when(pl.col("product") >= 0).then(_padded_id("P", pl.col("product") + 1, 4)),
        letter_key=pl.when(pl.col("letter_trigger") >= 0).then(
            pl.format(
                "{}:{}:{}",
                _lookup(LETTER_TRIGGERS, pl.col("letter_trigger")),
                _padded_id("C", pl.col("customer"), id_width),
                pl.from_epoch(pl.col("letter_day").cast(pl.Int64) * SECONDS_PER_DAY + base_epoch, time_unit="s").dt.strftime("%Y-%m-%d"),
            )
        ),
        search_query=_lookup(SEARCH_QUERIES, pl.col("query")),
    )


def _typed(frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    """Parquet and JSON lines carry numbers and booleans as such, like a real export would."""
    casts = []
    for column in ENTITIES[entity].columns:
        if column.type == "amount":
            casts.append(pl.col(column.name).cast(pl.Float64))
        elif column.type == "integer":
            casts.append(pl.col(column.name).cast(pl.Int64))
        elif column.type == "boolean":
            casts.append(pl.col(column.name) == "true")
    return frame.with_columns(casts)
