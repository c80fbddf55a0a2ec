"""Dirty mode: bad rows and bad files the ingest must quarantine, each listed in the manifest.

Every row-level reason of the contract gets rows that break exactly that rule; every file-level
reason gets a file. ``plan_bad_rows`` picks which good rows are copied and broken (in proportion to
each day's volume) before any file is written, so ``landing_files`` can append them day by day
without holding the shop in memory.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from lifecycle_assets.ingest.contract import ENTITIES
from lifecycle_assets.sample_data.simulation import SECONDS_PER_DAY

# Share of bad rows injected per entity in dirty mode (at least one row per reason).
DIRTY_ROW_SHARE = 0.002

# Every row-level reason of the contract, per entity, with how to break a row for it. Each bad row
# breaks exactly one rule and carries a fresh id nothing refers to (except duplicates, which copy
# a valid row of the same day and land after it).
ROW_BREAKS: dict[str, tuple[str, ...]] = {
    "customers": (
        "missing_required:email",
        "unparsable_timestamp:registered_at",
        "unparsable_date:birthday",
        "unparsable_boolean:marketing_consent",
        "malformed_email",
        "future_timestamp:registered_at",
        "duplicate_id",
    ),
    "products": ("unparsable_number:price", "negative_value:price"),
    "orders": (
        "missing_required:customer_id",
        "unparsable_timestamp:ordered_at",
        "unparsable_number:total_amount",
        "negative_value:total_amount",
        "unknown_status",
        "future_timestamp:ordered_at",
        "duplicate_id",
        "unknown_customer",
    ),
    "order_items": (
        "unparsable_number:quantity",
        "negative_value:unit_price",
        "duplicate_id",
        "unknown_order",
        "unknown_product",
    ),
    "interactions": (
        "missing_required:event_type",
        "missing_required:letter_key",
        "unparsable_timestamp:occurred_at",
        "unknown_event_type",
        "future_timestamp:occurred_at",
        "duplicate_id",
        "unknown_customer",
    ),
}


def plan_bad_rows(main_rows_per_day: dict[str, np.ndarray], seed: int) -> tuple[dict, dict]:
    """Which rows of which day's main file are copied and broken, and for which reason.

    Returns ``{entity: {day: [(row index in the day's file, reason, number), ...]}}`` (in the order
    the bad rows are appended) and the injected counts ``{reason: {entity: n}}``.
    """
    rng = np.random.default_rng([seed, 2])
    planned: dict[str, dict[int, list]] = {}
    injected: dict[str, dict[str, int]] = {}
    for entity, reasons in ROW_BREAKS.items():
        per_day = main_rows_per_day[entity]
        total = int(per_day.sum())
        if total == 0:
            raise ValueError(f"dirty mode copies real {entity} rows, but this shop has none: use more customers or days")
        count = len(reasons) if entity == "products" else max(len(reasons), int(round(DIRTY_ROW_SHARE * total)))
        # A bad row lands on a day that has rows of the entity, picked in proportion to its volume
        # (duplicates copy one of that day's rows).
        picks = rng.integers(0, total, count)
        day_starts = np.cumsum(per_day) - per_day
        days = np.searchsorted(np.cumsum(per_day), picks, side="right")
        by_day = planned.setdefault(entity, {})
        for number, (pick, day) in enumerate(zip(picks.tolist(), days.tolist()), start=1):
            reason = reasons[(number - 1) % len(reasons)]
            by_day.setdefault(day, []).append((pick - int(day_starts[day]), reason, number))
            injected.setdefault(reason, {}).setdefault(entity, 0)
            injected[reason][entity] += 1
    return planned, injected


class BreakContext:
    """What breaking a row needs to know about the shop."""

    def __init__(self, base_epoch: int, reg_day: np.ndarray, id_width: int):
        self.base_epoch = base_epoch
        self.reg_day = reg_day
        self.id_width = id_width


def break_row(entity: str, reason: str, row: dict, day: int, number: int, shop: BreakContext) -> dict:
    """A copy of a good text row of ``day`` that breaks exactly the rule ``reason``."""
    row = dict(row)
    day_start = day * SECONDS_PER_DAY
    timestamp_of_day = datetime.fromtimestamp(shop.base_epoch + day_start + 43_200, tz=timezone.utc)
    future = (timestamp_of_day + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    noon = timestamp_of_day.strftime("%Y-%m-%dT%H:%M:%S")
    if reason == "duplicate_id":
        return row  # the same id again on the same day, otherwise valid
    if entity == "customers":
        row.update(customer_id=f"CQ{number:06d}", email=f"bad.row.{number}@example.com", registered_at=noon,
                   birthday="1990-05-17", marketing_consent="true")
        column_values = {
            "missing_required:email": {"email": None},
            "unparsable_timestamp:registered_at": {"registered_at": "yesterday at noon"},
            "unparsable_date:birthday": {"birthday": "17th of May"},
            "unparsable_boolean:marketing_consent": {"marketing_consent": "maybe"},
            "malformed_email": {"email": f"bad.row.{number}.example.com"},
            "future_timestamp:registered_at": {"registered_at": future},
        }
    elif entity == "products":
        row.update(product_id=f"PQ{number:03d}", name="Mislabelled Crate", price="9.99", rebuy_interval_days=None)
        column_values = {
            "unparsable_number:price": {"price": "nine ninety-nine"},
            "negative_value:price": {"price": "-9.99"},
        }
    elif entity == "orders":
        row.update(order_id=f"OQ{number:07d}", ordered_at=noon, status="completed", total_amount="19.99")
        column_values = {
            "missing_required:customer_id": {"customer_id": None},
            "unparsable_timestamp:ordered_at": {"ordered_at": "13/45/2024 25:61"},
            "unparsable_number:total_amount": {"total_amount": "twenty"},
            "negative_value:total_amount": {"total_amount": "-19.99"},
            "unknown_status": {"status": "shipped"},
            "future_timestamp:ordered_at": {"ordered_at": future},
            "unknown_customer": {"customer_id": f"CU{number:06d}"},
        }
    elif entity == "order_items":
        row.update(line_number=str(1000 + number))  # a new line of a real order, unless changed below
        column_values = {
            "unparsable_number:quantity": {"quantity": "two"},
            "negative_value:unit_price": {"unit_price": "-4.50"},
            "unknown_order": {"order_id": f"OU{number:07d}", "line_number": "1"},
            "unknown_product": {"product_id": f"PU{number:03d}"},
        }
    else:  # interactions: an anonymous page view, unless changed below
        # Customers are numbered by registration: these registered on or before the row's day.
        registered_by_then = int(np.searchsorted(shop.reg_day, day, side="right"))
        if registered_by_then == 0:
            raise ValueError("dirty mode needs a customer registered on the first landing day: use more customers")
        known_customer = (registered_by_then - 1) // 2
        row.update(event_id=f"EQ{number:09d}", occurred_at=noon, event_type="page_view", customer_id=None,
                   anonymous_id=f"anon-bad-{number}", product_id=None, letter_key=None, search_query=None)
        column_values = {
            "missing_required:event_type": {"event_type": None},
            "unparsable_timestamp:occurred_at": {"occurred_at": "noon-ish"},
            "unknown_event_type": {"event_type": "hover"},
            "future_timestamp:occurred_at": {"occurred_at": future},
            "unknown_customer": {"customer_id": f"CU{number:06d}", "anonymous_id": None},
            # An email event about a letter that does not name it (customer known, registered earlier).
            "missing_required:letter_key": {
                "event_type": "open",
                "anonymous_id": None,
                "customer_id": _padded_id_text("C", 1 + known_customer, shop.id_width),
                "occurred_at": (timestamp_of_day + timedelta(hours=11, minutes=59)).strftime("%Y-%m-%dT%H:%M:%S"),
            },
        }
    row.update(column_values[reason])
    return row


def _padded_id_text(prefix: str, number: int, width: int) -> str:
    return f"{prefix}{number:0{width}d}"


def write_bad_files(root: Path, days: int, base_epoch: int) -> dict[str, list[str]]:
    """Files the ingest must reject as a whole. Their rows are extra: nothing else refers to them."""
    day = days // 2
    day_name = (datetime.fromtimestamp(base_epoch, tz=timezone.utc).date() + timedelta(days=day)).isoformat()
    noon = f"{day_name}T12:00:00"
    written: dict[str, list[str]] = {}

    def put(reason: str, entity: str, name: str, content: bytes) -> None:
        path = root / entity / f"date={day_name}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.setdefault(reason, []).append(path.relative_to(root).as_posix())

    customer_header = ",".join(c for c in ENTITIES["customers"].column_names if c != "updated_at")
    put(
        "not_utf8",
        "customers",
        "legacy_export_latin1.csv",
        (
            f"{customer_header}\n"
            f"CF000001,zoe.lefevre.f1@example.com,Zoë,{noon},1985-02-03,Europe/Paris,true\n"
            f"CF000002,jurgen.mueller.f2@example.com,Jürgen,{noon},,Europe/Berlin,false\n"
        ).encode("latin-1"),
    )
    put("empty", "orders", "late_export.csv", (",".join(ENTITIES["orders"].column_names) + "\n").encode())
    put("empty", "interactions", "empty_feed.jsonl", b"")
    garbage = np.random.default_rng(days).integers(0, 256, 2_048, dtype=np.uint8).tobytes()
    put("unreadable", "order_items", "corrupt_upload.parquet", b"PAR1" + garbage)
    put(
        "unreadable",
        "interactions",
        "broken_stream.jsonl",
        (
            json.dumps({"event_id": "EF000000001", "occurred_at": noon, "event_type": "page_view", "anonymous_id": "anon-file-1"})
            + '\n{"event_id": "EF000000002", "occurred_at": "' + noon + '", "event_type": "page_vi\n'
        ).encode(),
    )
    # A partner's export keyed by its own id: without customer_id no row can be matched to a customer.
    without_id = [c for c in customer_header.split(",") if c != "customer_id"]
    put(
        "missing_columns:customer_id",
        "customers",
        "partner_signups.csv",
        (
            ",".join(without_id) + "\n"
            f"partner.one.f3@example.com,Lina,{noon},,UTC,true\n"
        ).encode(),
    )
    put("unsupported_format", "orders", "orders_export.xlsx", b"PK\x03\x04" + garbage[:512])
    return written
