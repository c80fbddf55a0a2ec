"""Hand-built tiny shops: rows in Python -> raw.* tables with the contract's columns in a DuckDB file.

Each test states its shop in a few lines (a customer registered on day X, an order on day Y) so the
right stage, segment or letter on every boundary day is known by reading the test.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.ingest.storage import raw_table_ddl
from lifecycle_assets.ingest.validation import POLARS_TYPES

DAY_ZERO = dt.date(2024, 1, 1)


def day(number: int) -> dt.date:
    """Day `number` of the tiny shop's calendar (day 0 = 2024-01-01)."""
    return DAY_ZERO + dt.timedelta(days=number)


def at(number: int, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day(number), dt.time(hour, minute))


@dataclass
class TinyShop:
    rows: dict[str, list[dict]] = field(default_factory=lambda: {entity: [] for entity in ENTITIES})
    _event_number: int = 0

    def customer(
        self,
        customer_id: str,
        registered: dt.datetime,
        *,
        consent: bool = True,
        first_name: str | None = None,
        birthday: dt.date | None = None,
        landed: dt.date | None = None,
    ) -> TinyShop:
        self._add(
            "customers",
            {
                "customer_id": customer_id,
                "email": f"{customer_id}@example.com",
                "first_name": first_name or customer_id.title(),
                "registered_at": registered,
                "birthday": birthday,
                "timezone": "UTC",
                "marketing_consent": consent,
            },
            landed or registered.date(),
        )
        return self

    def product(
        self,
        product_id: str,
        *,
        category: str = "coffee",
        price: float = 10.0,
        rebuy_interval_days: int | None = None,
        url: str | None = None,
        image_url: str | None = None,
        landed: dt.date | None = None,
    ) -> TinyShop:
        self._add(
            "products",
            {
                "product_id": product_id,
                "name": f"Product {product_id}",
                "category": category,
                "price": price,
                "rebuy_interval_days": rebuy_interval_days,
                "url": url,
                "image_url": image_url,
            },
            landed or DAY_ZERO - dt.timedelta(days=400),
        )
        return self

    def order(
        self,
        order_id: str,
        customer_id: str,
        ordered: dt.datetime,
        items: list[tuple[str, int]] | None = None,
        *,
        status: str = "completed",
        landed: dt.date | None = None,
    ) -> TinyShop:
        items = items or [("p1", 1)]
        self._add(
            "orders",
            {
                "order_id": order_id,
                "customer_id": customer_id,
                "ordered_at": ordered,
                "status": status,
                "total_amount": float(sum(10 * quantity for _, quantity in items)),
            },
            landed or ordered.date(),
        )
        for line_number, (product_id, quantity) in enumerate(items, start=1):
            self._add(
                "order_items",
                {
                    "order_id": order_id,
                    "line_number": line_number,
                    "product_id": product_id,
                    "quantity": quantity,
                    "unit_price": 10.0,
                },
                landed or ordered.date(),
            )
        return self

    def event(
        self,
        event_type: str,
        customer_id: str | None,
        occurred: dt.datetime,
        *,
        product_id: str | None = None,
        anonymous_id: str | None = None,
        letter_key: str | None = None,
        landed: dt.date | None = None,
    ) -> TinyShop:
        self._event_number += 1
        self._add(
            "interactions",
            {
                "event_id": f"e{self._event_number}",
                "occurred_at": occurred,
                "event_type": event_type,
                "customer_id": customer_id,
                "anonymous_id": anonymous_id,
                "product_id": product_id,
                "letter_key": letter_key,
                "search_query": None,
            },
            landed or occurred.date(),
        )
        return self

    def seen_until(self, moment: dt.datetime) -> TinyShop:
        """Another visitor's page view: the data now shows that the shop's clock reached `moment`."""
        return self.event("page_view", None, moment, anonymous_id="someone-else")

    def _add(self, entity: str, row: dict, landed: dt.date) -> None:
        table = self.rows[entity]
        table.append(
            {
                **row,
                "_landing_date": landed,
                "_source_file": f"{entity}/date={landed}/export.csv",
                "_row_number": len(table) + 1,
                "_ingested_at": dt.datetime.combine(landed, dt.time(23, 0)),
            }
        )

    def write(self, database: Path) -> Path:
        """Create raw.<entity> tables in the DuckDB file, typed as the contract says."""
        connection = duckdb.connect(str(database))
        try:
            connection.execute("create schema if not exists raw")
            for name, entity in ENTITIES.items():
                schema = {column.name: POLARS_TYPES[column.type] for column in entity.columns}
                schema |= {
                    "_landing_date": pl.Date,
                    "_source_file": pl.Utf8,
                    "_row_number": pl.Int64,
                    "_ingested_at": pl.Datetime("us"),
                }
                frame = pl.DataFrame(self.rows[name], schema=schema)
                connection.execute(f"drop table if exists raw.{name}")
                connection.execute(raw_table_ddl(entity))  # the very table the ingest writes
                connection.register("new_rows", frame)
                connection.execute(f"insert into raw.{name} by name select * from new_rows")
                connection.unregister("new_rows")
        finally:
            connection.close()
        return database


def edited_model(model_file: Path, folder: Path, old: str, new: str):
    """The model file with one edit (e.g. a column added), parsed from a models folder of its own under `folder`."""
    from lifecycle_assets.models.sql_models import parse_model

    changed = folder / "models" / model_file.parent.name / model_file.name
    changed.parent.mkdir(parents=True)
    text = model_file.read_text(encoding="utf-8")
    assert old in text, f"{model_file} no longer holds {old!r}"
    changed.write_text(text.replace(old, new), encoding="utf-8")
    return parse_model(changed, folder / "models")
