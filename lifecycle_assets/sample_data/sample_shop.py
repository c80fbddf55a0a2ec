"""A synthetic online shop that lands its daily exports exactly as the data contract says.

The shop is built so that the figures of the lifecycle brief (``LIFECYCLE.md``) can be read back
from its data: most first purchases happen on the registration day, more than half of the buyers
never buy twice, big first orders repeat twice as often as one-item ones, a fifth of the customers
lapsed for 4-6 months come back within 3 months, and returned customers behave like new buyers.
With ``dirty=True`` it also lands bad rows and bad files, and lists them in ``_manifest.json`` so
the quarantine can be checked against what was injected. See ``docs/sample_shop.md``.

Everything is vectorised over customers (numpy for the simulation, polars for text and files):
the only Python loops run over purchase rounds, days and entities, never over customers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from lifecycle_assets.ingest.contract import ENTITIES, EVENT_TYPES

SECONDS_PER_DAY = 86_400
MANIFEST_NAME = "_manifest.json"

# --- The behaviour the brief describes, as the simulation's knobs ----------------------------
SHARE_OF_REGISTRANTS_WHO_BUY = 0.55
# First purchase relative to registration: same day / days 1-6 / later.
FIRST_PURCHASE_SAME_DAY = 0.80
FIRST_PURCHASE_FIRST_WEEK = 0.07
# Lines of an order: 1, 2, 3, 4, 5, 6+ (6 to 10).
ORDER_LINES_SHARES = np.array([0.42, 0.20, 0.12, 0.08, 0.06, 0.12])
# Chance to buy again after a first purchase (or after returning from a lapse), by the number of
# lines of that order: six or more lines repeat about twice as often as one line.
REPEAT_CHANCE_BY_LINES = np.array([0.40, 0.50, 0.57, 0.63, 0.70, 0.80])
# Once a customer bought twice in rhythm, they usually go on.
REPEAT_CHANCE_IN_RHYTHM = 0.80
# Of those who buy again, how many first lapse for months (the departing who later return).
LAPSE_SHARE_AFTER_NEW = 0.38
LAPSE_SHARE_IN_RHYTHM = 0.08
LAPSE_GAP_DAYS = (110, 250)
# A gap of this many days or more makes the next purchase a "returned" one.
RETURN_GAP_DAYS = 90
# Each repeat buyer's own rhythm: median typical gap, spread between customers and between gaps.
RHYTHM_MEDIAN_DAYS = 35
RHYTHM_SPREAD = 0.45
GAP_NOISE = 0.30

REGISTRATION_GROWTH = 1.0  # the last day sees (1 + growth) times the registrations of the first
ANONYMOUS_SESSIONS_PER_CUSTOMER = 0.5
CANCELLED_ORDER_SHARE = 0.03
REFUND_SHARE = 0.03
CONSENT_SHARE = 0.85
BIRTHDAY_SHARE = 0.70
TIMEZONE_SHARE = 0.80
CONSENT_WITHDRAWAL_SHARE = 0.005
# Share of bad rows injected per entity in dirty mode (at least one row per reason).
DIRTY_ROW_SHARE = 0.002

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karla",
    "Leon", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Uwe", "Vera", "Will",
    "Xenia", "Yara", "Zoë", "José", "Zoltán", "Renée", "Søren", "Chloé", "Mateo", "Aisha", "Kenji",
    "Priya", "Lars", "Elif", "Nora", "Omar", "Lina",
)
# The same names as they appear in an email address.
FIRST_NAMES_ASCII = tuple(
    n.lower().replace("ë", "e").replace("é", "e").replace("á", "a").replace("ø", "o") for n in FIRST_NAMES
)
LAST_NAMES = (
    "smith", "mueller", "garcia", "rossi", "novak", "kowalski", "jensen", "dubois", "silva", "tanaka",
    "brown", "schmidt", "lopez", "bianchi", "horvat", "nowak", "hansen", "martin", "costa", "sato",
)
TIMEZONES = (
    "Europe/Berlin", "Europe/London", "Europe/Paris", "Europe/Madrid", "America/New_York",
    "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney", "UTC",
)
SEARCH_QUERIES = (
    "coffee beans", "green tea", "espresso", "face cream", "cat food", "dog treats", "vitamin d",
    "kettle", "headphones", "desk lamp", "garden hose", "lego", "novel, paperback", "running shoes",
    "gift for mum", "decaf", "shampoo", "bird seed",
)
# Categories of the catalogue: (category, rebuy interval in days or None for durable goods,
# price range, product nouns).
CATEGORIES = (
    ("coffee", 30, (6, 30), ("Espresso Beans", "Filter Coffee", "Decaf Blend", "Cold Brew Pack")),
    ("tea", 45, (4, 25), ("Green Tea", "Earl Grey", "Chai Mix", "Herbal Infusion")),
    ("cosmetics", 60, (8, 60), ("Face Cream", "Shampoo", "Body Lotion", "Lip Balm")),
    ("pet_food", 30, (10, 70), ("Cat Food", "Dog Food", "Bird Seed", "Dog Treats")),
    ("vitamins", 90, (7, 40), ("Vitamin D", "Magnesium", "Omega 3", "Multivitamin")),
    ("kitchen", None, (15, 250), ("Kettle", "Knife Set", "Coffee Grinder", "French Press")),
    ("electronics", None, (20, 400), ("Headphones", "Speaker", "Charger", "Smart Plug")),
    ("books", None, (8, 45), ("Novel", "Cookbook", "Travel Guide", "Comic")),
    ("home", None, (12, 180), ("Desk Lamp", "Cushion", "Blanket", "Picture Frame")),
    ("garden", None, (10, 150), ("Garden Hose", "Plant Pot", "Seed Kit", "Pruning Shears")),
)
ADJECTIVES = ("Classic", "Organic", "Premium", "Everyday", "Nordic", "Golden", "Urban")
PRODUCT_COUNT = 200

ENTITY_ORDER = ("customers", "products", "orders", "order_items", "interactions")
# Formats rotate over days so every entity lands as CSV, Parquet and JSON lines.
FORMAT_CYCLE = ("csv", "csv", "parquet", "csv", "jsonl", "csv", "csv")


# --- Public API --------------------------------------------------------------------------------


def generate_sample_shop(
    landing_root: str | Path,
    customers: int,
    days: int,
    end_day: str | date | None = None,
    seed: int = 7,
    dirty: bool = False,
) -> dict:
    """Write ``days`` landing days of a shop with ``customers`` registrations under ``landing_root``.

    Only the entity folders (``customers``, ``products``, ...) and ``_manifest.json`` are written;
    existing entity folders are removed first so a re-run never mixes two samples. Returns (and
    writes to ``_manifest.json``) first/last day, rows per entity, number of files and, when
    ``dirty``, exactly which bad rows and files were injected.
    """
    if customers < 1 or days < 1:
        raise ValueError("customers and days must be at least 1")
    started = time.perf_counter()
    root = Path(landing_root)
    last_day = _parse_day(end_day)
    first_day = last_day - timedelta(days=days - 1)
    base_epoch = int(datetime(first_day.year, first_day.month, first_day.day, tzinfo=timezone.utc).timestamp())
    rng = np.random.default_rng(seed)
    shop = _Shop(rng=rng, customers=customers, days=days, base_epoch=base_epoch)

    frames = shop.build()
    injected_rows: dict[str, dict[str, int]] = {}
    row_locations: list[dict] = []
    if dirty:
        frames = _inject_bad_rows(frames, shop, injected_rows)

    for entity in ENTITY_ORDER:
        folder = root / entity
        if folder.exists():
            shutil.rmtree(folder)
    files_written, rows_written = _write_landing(frames, root, base_epoch, row_locations)

    injected: dict = {}
    if dirty:
        bad_files = _write_bad_files(root, shop, base_epoch)
        injected = {"rows": injected_rows, "files": bad_files, "row_locations": row_locations}
        files_written += sum(len(paths) for paths in bad_files.values())
    summary = {
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "customers": customers,
        "days": days,
        "seed": seed,
        "dirty": dirty,
        "rows": rows_written,
        "files": files_written,
        "injected": injected,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_NAME).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def main(argv: list[str] | None = None) -> None:
    """Console script ``lifecycle-sample-shop``: write a sample shop into the landing zone."""
    from lifecycle_assets.environment import landing_dir

    parser = argparse.ArgumentParser(prog="lifecycle-sample-shop", description=main.__doc__)
    parser.add_argument("--landing", type=Path, default=None, help="landing zone root (default: LIFECYCLE_LANDING_DIR or data/landing)")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end-day", default=None, help="last landing day, YYYY-MM-DD (default: yesterday UTC)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dirty", action="store_true", help="also land bad rows and bad files (listed in _manifest.json)")
    args = parser.parse_args(argv)
    landing = args.landing if args.landing is not None else landing_dir()
    summary = generate_sample_shop(landing, args.customers, args.days, args.end_day, args.seed, args.dirty)
    print(f"sample shop in {landing}: {summary['first_day']} .. {summary['last_day']}, "
          f"{summary['files']} files, {summary['seconds']} s")
    for entity, rows in summary["rows"].items():
        print(f"  {entity:<13} {rows:>12,} rows")
    if summary["injected"]:
        bad_rows = sum(sum(per_entity.values()) for per_entity in summary["injected"]["rows"].values())
        bad_files = sum(len(paths) for paths in summary["injected"]["files"].values())
        print(f"  injected: {bad_rows} bad rows, {bad_files} bad files (see {MANIFEST_NAME})")


# --- Simulation ---------------------------------------------------------------------------------


def _parse_day(value: str | date | None) -> date:
    if value is None:
        return datetime.now(timezone.utc).date() - timedelta(days=1)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _iso(seconds: pl.Expr, base_epoch: int) -> pl.Expr:
    """Seconds since the first landing day -> ISO 8601 UTC text without offset (UTC by contract)."""
    return pl.from_epoch(seconds + base_epoch, time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")


def _amount(cents: pl.Expr) -> pl.Expr:
    return pl.format("{}.{}", (cents // 100).cast(pl.String), (cents % 100).cast(pl.String).str.zfill(2))


def _padded_id(prefix: str, number: pl.Expr, width: int) -> pl.Expr:
    return pl.concat_str(pl.lit(prefix), number.cast(pl.String).str.zfill(width))


def _catalogue() -> pl.DataFrame:
    """The same ~200 products whatever the seed, so product ids mean the same thing in every sample."""
    rng = np.random.default_rng(20240101)
    rows = []
    for number in range(1, PRODUCT_COUNT + 1):
        category, rebuy, (low, high), nouns = CATEGORIES[(number - 1) % len(CATEGORIES)]
        noun = nouns[(number - 1) // len(CATEGORIES) % len(nouns)]
        adjective = ADJECTIVES[(number - 1) // (len(CATEGORIES) * len(nouns)) % len(ADJECTIVES)]
        price_cents = int(rng.integers(low * 100, high * 100)) // 10 * 10 + 9
        rows.append((f"P{number:04d}", f"{adjective} {noun}", category, price_cents, rebuy))
    return pl.DataFrame(
        rows, schema=["product_id", "name", "category", "price_cents", "rebuy_interval_days"], orient="row"
    )


class _Shop:
    """Simulates customers, purchases and interactions; ``build`` returns one text frame per entity.

    Every frame has the entity's contract columns as text plus ``_second`` (time since the first
    landing day, for ordering), ``_day`` (landing day index) and ``_file`` (file name stem).
    """

    def __init__(self, rng: np.random.Generator, customers: int, days: int, base_epoch: int):
        self.rng = rng
        self.customer_count = customers
        self.days = days
        self.base_epoch = base_epoch
        self.id_width = max(6, len(str(customers)))
        self.products = _catalogue()
        popularity = 1.0 / np.arange(1, PRODUCT_COUNT + 1) ** 0.9
        self.product_weights = rng.permutation(popularity / popularity.sum())

    # customers ------------------------------------------------------------------------------
    def _registrations(self) -> None:
        rng, n, days = self.rng, self.customer_count, self.days
        # Registrations grow linearly over the period: invert the CDF of density 1 + g*x on [0, 1].
        g = REGISTRATION_GROWTH
        u = np.sort(rng.random(n))
        x = (-1 + np.sqrt(1 + 2 * g * u * (1 + g / 2))) / g if g else u
        self.reg_day = np.minimum((x * days).astype(np.int64), days - 1)
        self.reg_second = self.reg_day * SECONDS_PER_DAY + rng.integers(3_600, 22 * 3_600, n)
        self.consent = rng.random(n) < CONSENT_SHARE
        self.first_name_index = rng.integers(0, len(FIRST_NAMES), n)

    def _customers_frame(self) -> pl.DataFrame:
        rng, n = self.rng, self.customer_count
        birthday_days = rng.integers(-20 * 365, 35 * 365, n)  # 1950 .. 2005
        frame = pl.DataFrame(
            {
                "number": np.arange(1, n + 1),
                "first": self.first_name_index,
                "last": rng.integers(0, len(LAST_NAMES), n),
                "_second": self.reg_second,
                "birthday_days": birthday_days,
                "has_birthday": rng.random(n) < BIRTHDAY_SHARE,
                "timezone_index": rng.integers(0, len(TIMEZONES), n),
                "has_timezone": rng.random(n) < TIMEZONE_SHARE,
                "consent": self.consent,
            }
        )
        first_names = pl.Series(FIRST_NAMES)
        ascii_names = pl.Series(FIRST_NAMES_ASCII)
        customers = frame.select(
            customer_id=_padded_id("C", pl.col("number"), self.id_width),
            email=pl.format(
                "{}.{}.{}@example.com",
                pl.col("first").map_batches(lambda s: ascii_names.gather(s), return_dtype=pl.String),
                pl.col("last").map_batches(lambda s: pl.Series(LAST_NAMES).gather(s), return_dtype=pl.String),
                pl.col("number").cast(pl.String),
            ),
            first_name=pl.col("first").map_batches(lambda s: first_names.gather(s), return_dtype=pl.String),
            registered_at=_iso(pl.col("_second"), self.base_epoch),
            birthday=pl.when(pl.col("has_birthday")).then(
                pl.from_epoch(pl.col("birthday_days"), time_unit="d").dt.strftime("%Y-%m-%d")
            ),
            timezone=pl.when(pl.col("has_timezone")).then(
                pl.col("timezone_index").map_batches(lambda s: pl.Series(TIMEZONES).gather(s), return_dtype=pl.String)
            ),
            marketing_consent=pl.when(pl.col("consent")).then(pl.lit("true")).otherwise(pl.lit("false")),
            _second=pl.col("_second"),
        )
        customers = customers.with_columns(
            _day=(pl.col("_second") // SECONDS_PER_DAY).cast(pl.Int32), _file=pl.lit("customers")
        )
        # A few customers later withdraw their marketing consent: a later landing day's row for the
        # same customer_id is an update of that customer.
        withdrawing = np.flatnonzero(self.consent & (rng.random(n) < CONSENT_WITHDRAWAL_SHARE))
        update_day = self.reg_day[withdrawing] + rng.integers(1, 120, withdrawing.size)
        keep = update_day < self.days
        withdrawing, update_day = withdrawing[keep], update_day[keep]
        updates = customers[withdrawing].with_columns(
            marketing_consent=pl.lit("false"),
            _second=pl.Series(update_day * SECONDS_PER_DAY + rng.integers(3_600, 80_000, update_day.size)),
            _day=pl.Series(update_day, dtype=pl.Int32),
            _file=pl.lit("updates"),
        )
        return pl.concat([customers, updates])

    # purchases ------------------------------------------------------------------------------
    def _purchases(self) -> None:
        """Each buyer's chain of purchases; the next step depends on how they bought the last time."""
        rng, days = self.rng, self.days
        n = self.customer_count
        buyer = np.flatnonzero(rng.random(n) < SHARE_OF_REGISTRANTS_WHO_BUY)
        kind = rng.random(buyer.size)
        later = 7 + np.minimum(rng.geometric(1 / 25, buyer.size) - 1, 200)
        delay = np.where(
            kind < FIRST_PURCHASE_SAME_DAY,
            0,
            np.where(kind < FIRST_PURCHASE_SAME_DAY + FIRST_PURCHASE_FIRST_WEEK, rng.integers(1, 7, buyer.size), later),
        )
        first_day = self.reg_day[buyer] + delay
        in_period = first_day < days
        buyer, first_day, delay = buyer[in_period], first_day[in_period], delay[in_period]
        # Each repeat buyer's own rhythm: their typical gap between purchases.
        rhythm = np.clip(
            np.exp(np.log(RHYTHM_MEDIAN_DAYS) + RHYTHM_SPREAD * rng.standard_normal(n)), 8, 75
        )

        customer_parts, day_parts, sequence_parts, lines_parts, returned_parts, favourite_parts = [], [], [], [], [], []
        customer, day = buyer, first_day
        fresh = np.ones(buyer.size, dtype=bool)  # first purchase or return after a lapse
        favourite = rng.choice(PRODUCT_COUNT, size=buyer.size, p=self.product_weights)
        returned = np.zeros(buyer.size, dtype=bool)
        sequence = 0
        while True:
            lines = rng.choice(6, size=customer.size, p=ORDER_LINES_SHARES)
            customer_parts.append(customer)
            day_parts.append(day)
            sequence_parts.append(np.full(customer.size, sequence))
            lines_parts.append(lines)
            returned_parts.append(returned)
            favourite_parts.append(favourite)
            repeat_chance = np.where(fresh, REPEAT_CHANCE_BY_LINES[lines], REPEAT_CHANCE_IN_RHYTHM)
            buys_again = rng.random(customer.size) < repeat_chance
            lapses = rng.random(customer.size) < np.where(fresh, LAPSE_SHARE_AFTER_NEW, LAPSE_SHARE_IN_RHYTHM)
            rhythm_gap = np.clip(
                np.rint(rhythm[customer] * np.exp(GAP_NOISE * rng.standard_normal(customer.size))),
                1,
                RETURN_GAP_DAYS - 1,
            ).astype(np.int64)
            lapse_gap = rng.integers(LAPSE_GAP_DAYS[0], LAPSE_GAP_DAYS[1] + 1, customer.size)
            gap = np.where(lapses, lapse_gap, rhythm_gap)
            next_day = day + gap
            going_on = buys_again & (next_day < days)
            customer, day = customer[going_on], next_day[going_on]
            fresh = gap[going_on] >= RETURN_GAP_DAYS
            returned = fresh
            favourite = favourite[going_on]
            sequence += 1
            if not customer.size:
                break

        self.purchase_customer = np.concatenate(customer_parts)
        self.purchase_day = np.concatenate(day_parts)
        self.purchase_sequence = np.concatenate(sequence_parts)
        self.purchase_lines = np.concatenate(lines_parts)
        self.purchase_favourite = np.concatenate(favourite_parts)
        count = self.purchase_customer.size
        # Time of day: a same-day first purchase follows the registration; others any time.
        registered = self.reg_second[self.purchase_customer]
        same_day_first = (self.purchase_sequence == 0) & (self.purchase_day == self.reg_day[self.purchase_customer])
        since_registration = registered + 300 + (rng.random(count) * (
            (self.purchase_day + 1) * SECONDS_PER_DAY - 1_800 - registered - 300
        )).astype(np.int64)
        any_time = self.purchase_day * SECONDS_PER_DAY + rng.integers(3_600, 23 * 3_600 + 1_800, count)
        self.purchase_second = np.where(same_day_first, since_registration, any_time)
        # Last purchase per customer (for win-back letters) and the next purchase's day.
        order = np.lexsort((self.purchase_sequence, self.purchase_customer))
        customer_sorted = self.purchase_customer[order]
        next_same = np.zeros(count, dtype=bool)
        next_same[:-1] = customer_sorted[1:] == customer_sorted[:-1]
        next_day_sorted = np.full(count, -1, dtype=np.int64)
        next_day_sorted[:-1] = np.where(next_same[:-1], self.purchase_day[order][1:], -1)
        self.purchase_next_day = np.empty(count, dtype=np.int64)
        self.purchase_next_day[order] = next_day_sorted

    def _orders_and_items(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        rng = self.rng
        count = self.purchase_customer.size
        # A few customers place an order that is cancelled shortly before the one they complete;
        # cancelled orders are extra orders, so purchase dates are the same whether or not a report
        # counts them.
        cancelled_of = np.flatnonzero(rng.random(count) < CANCELLED_ORDER_SHARE)
        cancelled_second = np.maximum(
            self.purchase_day[cancelled_of] * SECONDS_PER_DAY + 3_000,
            self.purchase_second[cancelled_of] - rng.integers(300, 3_000, cancelled_of.size),
        )
        order_customer = np.concatenate([self.purchase_customer, self.purchase_customer[cancelled_of]])
        order_second = np.concatenate([self.purchase_second, cancelled_second])
        order_lines = np.concatenate([self.purchase_lines, rng.choice(6, size=cancelled_of.size, p=ORDER_LINES_SHARES)])
        order_favourite = np.concatenate([self.purchase_favourite, self.purchase_favourite[cancelled_of]])
        order_sequence = np.concatenate([self.purchase_sequence, self.purchase_sequence[cancelled_of]])
        order_status = np.concatenate([np.zeros(count, dtype=np.int8), np.ones(cancelled_of.size, dtype=np.int8)])
        # Refunds: a later landing day brings the same order with status "refunded". Only middle
        # purchases of regular buyers are refunded, so first and last purchase dates do not move.
        is_purchase = order_status == 0
        next_day = np.concatenate([self.purchase_next_day, np.full(cancelled_of.size, -1)])
        refundable = is_purchase & (order_sequence >= 1) & (next_day >= 0)
        refunded = refundable & (rng.random(order_customer.size) < REFUND_SHARE / 0.3)
        refund_day = order_second // SECONDS_PER_DAY + rng.integers(2, 15, order_customer.size)
        refunded &= refund_day < self.days

        # Orders are numbered by time, so ids read in the order the shop received them.
        by_time = np.argsort(order_second, kind="stable")
        order_customer, order_second, order_lines = order_customer[by_time], order_second[by_time], order_lines[by_time]
        order_favourite, order_status = order_favourite[by_time], order_status[by_time]
        order_sequence, refunded, refund_day = order_sequence[by_time], refunded[by_time], refund_day[by_time]
        order_count = order_customer.size
        self.order_count = order_count
        self.order_id_width = max(7, len(str(order_count)))

        # Lines: 1-5, or 6-10 for the "6+" bucket.
        line_count = np.where(order_lines == 5, rng.integers(6, 11, order_count), order_lines + 1)
        item_order = np.repeat(np.arange(order_count), line_count)
        item_starts = np.cumsum(line_count) - line_count
        line_number = np.arange(item_order.size) - np.repeat(item_starts, line_count) + 1
        product = rng.choice(PRODUCT_COUNT, size=item_order.size, p=self.product_weights)
        # Repeat orders often restock the customer's favourite (first line) - replenishment.
        restock = (line_number == 1) & (order_sequence[item_order] >= 1) & (rng.random(item_order.size) < 0.5)
        product = np.where(restock | ((line_number == 1) & (order_sequence[item_order] == 0)), order_favourite[item_order], product)
        # Quantity: one-line orders are one item and 2-5-line orders stay below six items, so
        # "1 item" and "6+ items" mean the same whether counted by lines or by quantity.
        lines_of_item = line_count[item_order]
        quantity = np.ones(item_order.size, dtype=np.int64)
        quantity = np.where((lines_of_item >= 2) & (lines_of_item <= 3) & (line_number == 1) & (rng.random(item_order.size) < 0.25), 2, quantity)
        quantity = np.where((lines_of_item >= 6) & (rng.random(item_order.size) < 0.2), rng.integers(2, 4, item_order.size), quantity)
        price = self.products["price_cents"].to_numpy()[product]
        total = np.bincount(item_order, weights=quantity * price, minlength=order_count).astype(np.int64)

        self.order_customer, self.order_second, self.order_status = order_customer, order_second, order_status
        self.order_sequence = order_sequence
        self.item_order, self.item_product, self.item_line = item_order, product, line_number

        status_names = pl.Series(["completed", "cancelled"])
        orders = pl.DataFrame(
            {
                "number": np.arange(1, order_count + 1),
                "customer": order_customer + 1,
                "_second": order_second,
                "status": order_status,
                "total": total,
            }
        ).select(
            order_id=_padded_id("O", pl.col("number"), self.order_id_width),
            customer_id=_padded_id("C", pl.col("customer"), self.id_width),
            ordered_at=_iso(pl.col("_second"), self.base_epoch),
            status=pl.col("status").map_batches(lambda s: status_names.gather(s), return_dtype=pl.String),
            total_amount=_amount(pl.col("total")),
            _second=pl.col("_second"),
            _day=(pl.col("_second") // SECONDS_PER_DAY).cast(pl.Int32),
            _file=pl.lit("orders"),
        )
        refund_rows = np.flatnonzero(refunded)
        refunds = orders[refund_rows].with_columns(
            status=pl.lit("refunded"),
            _second=pl.Series(refund_day[refund_rows] * SECONDS_PER_DAY + rng.integers(3_600, 80_000, refund_rows.size)),
            _day=pl.Series(refund_day[refund_rows], dtype=pl.Int32),
            _file=pl.lit("updates"),
        )
        items = pl.DataFrame(
            {
                "order": item_order + 1,
                "line_number": line_number,
                "product": product + 1,
                "quantity": quantity,
                "price": price,
                "_second": order_second[item_order],
            }
        ).select(
            order_id=_padded_id("O", pl.col("order"), self.order_id_width),
            line_number=pl.col("line_number").cast(pl.String),
            product_id=_padded_id("P", pl.col("product"), 4),
            quantity=pl.col("quantity").cast(pl.String),
            unit_price=_amount(pl.col("price")),
            _second=pl.col("_second"),
            _day=(pl.col("_second") // SECONDS_PER_DAY).cast(pl.Int32),
            _file=pl.lit("order_items"),
        )
        return pl.concat([orders, refunds]), items

    # interactions ---------------------------------------------------------------------------
    def _interactions(self) -> pl.DataFrame:
        """Site sessions around orders, browsing and abandoned carts, anonymous visits, email events."""
        rng = self.rng
        parts = []  # each: dict of numpy arrays second, type, customer (-1 none), anonymous (-1), product (-1), letter (-1), query (-1)
        type_codes = {name: code for code, name in enumerate(EVENT_TYPES)}

        def add(second, event_type, customer=None, anonymous=None, product=None, query=None, letter=None):
            size = second.size
            none = np.full(size, -1, dtype=np.int64)
            parts.append(
                {
                    "second": second.astype(np.int64),
                    "type": np.full(size, type_codes[event_type], dtype=np.int8),
                    "customer": none if customer is None else customer,
                    "anonymous": none if anonymous is None else anonymous,
                    "product": none if product is None else product,
                    "query": none if query is None else query,
                    "letter": none if letter is None else letter,
                }
            )

        # Sessions that end in an order: page view, maybe a search, a product view and an
        # add-to-cart per line, checkout. Events lie in the 45 minutes before the order.
        order_second, order_customer = self.order_second, self.order_customer

        def before(second, low, high):
            return second - rng.integers(low, high, second.size)

        add(before(order_second, 2_000, 2_700), "page_view", customer=order_customer)
        searched = np.flatnonzero(rng.random(order_second.size) < 0.35)
        add(before(order_second[searched], 1_700, 2_000), "search", customer=order_customer[searched],
            query=rng.integers(0, len(SEARCH_QUERIES), searched.size))
        item_second = order_second[self.item_order]
        item_customer = order_customer[self.item_order]
        add(before(item_second, 600, 1_700), "product_view", customer=item_customer, product=self.item_product)
        add(before(item_second, 200, 600), "add_to_cart", customer=item_customer, product=self.item_product)
        add(before(order_second, 30, 200), "checkout_started", customer=order_customer)

        # Browsing sessions without an order: every registration brings a visit; many carts are
        # abandoned (some after starting checkout), and buyers come back to browse between orders.
        n = self.customer_count
        customer = np.arange(n)
        registered = self.reg_second
        revisit_second, revisit_customer = self._later_visit(customer, self.reg_day, 0.30, 15)
        rebrowse_second, rebrowse_customer = self._later_visit(self.purchase_customer, self.purchase_day, 0.20, 30)
        browse_second = np.concatenate([registered + rng.integers(10, 600, n), revisit_second, rebrowse_second])
        browse_customer = np.concatenate([customer, revisit_customer, rebrowse_customer])
        self._browsing_session(add, browse_second, browse_customer, anonymous=False)

        # Anonymous visitors: a cookie id, no customer id.
        sessions = int(n * ANONYMOUS_SESSIONS_PER_CUSTOMER)
        anonymous_day = np.minimum((np.sqrt(rng.random(sessions)) * self.days).astype(np.int64), self.days - 1)
        anonymous_second = np.sort(anonymous_day * SECONDS_PER_DAY + rng.integers(3_600, 82_000, sessions))
        self._browsing_session(add, anonymous_second, np.arange(sessions), anonymous=True)

        # Letters and their email events.
        letters = self._letters()
        self._email_events(add, letters)

        merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        keep = (merged["second"] >= 0) & (merged["second"] < self.days * SECONDS_PER_DAY)
        merged = {key: value[keep] for key, value in merged.items()}
        order = np.argsort(merged["second"], kind="stable")
        merged = {key: value[order] for key, value in merged.items()}
        event_count = merged["second"].size
        self.event_count = event_count
        event_types = pl.Series(EVENT_TYPES)
        frame = pl.DataFrame(
            {
                "number": np.arange(1, event_count + 1),
                "_second": merged["second"],
                "type": merged["type"],
                "customer": merged["customer"],
                "anonymous": merged["anonymous"],
                "product": merged["product"],
                "query": merged["query"],
                "letter": merged["letter"],
            }
        )
        letter_keys = letters["letter_key"]
        queries = pl.Series(SEARCH_QUERIES)
        return frame.select(
            event_id=_padded_id("E", pl.col("number"), max(9, len(str(event_count)))),
            occurred_at=_iso(pl.col("_second"), self.base_epoch),
            event_type=pl.col("type").map_batches(lambda s: event_types.gather(s), return_dtype=pl.String),
            customer_id=pl.when(pl.col("customer") >= 0).then(_padded_id("C", pl.col("customer") + 1, self.id_width)),
            anonymous_id=pl.when(pl.col("anonymous") >= 0).then(
                pl.concat_str(pl.lit("anon-"), (pl.col("anonymous") * 2_654_435_761 % 4_294_967_296).cast(pl.String))
            ),
            product_id=pl.when(pl.col("product") >= 0).then(_padded_id("P", pl.col("product") + 1, 4)),
            letter_key=pl.when(pl.col("letter") >= 0).then(
                pl.col("letter").map_batches(
                    lambda s: letter_keys.gather(s.clip(0, None)), return_dtype=pl.String
                )
            ),
            search_query=pl.when(pl.col("query") >= 0).then(
                pl.col("query").map_batches(lambda s: queries.gather(s.clip(0, None)), return_dtype=pl.String)
            ),
            _second=pl.col("_second"),
            _day=(pl.col("_second") // SECONDS_PER_DAY).cast(pl.Int32),
            _file=pl.lit("interactions"),
        )

    def _later_visit(self, customer, start_day, share, within_days):
        """Another visit by ``share`` of ``customer``, 1 to ``within_days`` days after ``start_day``."""
        rng = self.rng
        chosen = np.flatnonzero(rng.random(customer.size) < share)
        day = start_day[chosen] + rng.integers(1, within_days + 1, chosen.size)
        second = day * SECONDS_PER_DAY + rng.integers(3_600, 80_000, chosen.size)
        return second, customer[chosen]

    def _browsing_session(self, add, second, who, anonymous: bool) -> None:
        rng = self.rng
        identity = {"anonymous": who} if anonymous else {"customer": who}
        size = second.size
        add(second, "page_view", **identity)
        searched = np.flatnonzero(rng.random(size) < 0.3)
        add(second[searched] + 60, "search", query=rng.integers(0, len(SEARCH_QUERIES), searched.size),
            **{k: v[searched] for k, v in identity.items()})
        views = rng.integers(0, 4, size)
        viewer = np.repeat(np.arange(size), views)
        view_offset = 120 + 90 * (np.arange(viewer.size) - np.repeat(np.cumsum(views) - views, views))
        viewed = rng.choice(PRODUCT_COUNT, size=viewer.size, p=self.product_weights)
        add(second[viewer] + view_offset, "product_view", product=viewed, **{k: v[viewer] for k, v in identity.items()})
        # An abandoned cart: the last viewed product goes into the cart, sometimes out again or to checkout.
        last_view = np.flatnonzero(np.r_[viewer[1:] != viewer[:-1], True]) if viewer.size else viewer
        carting = last_view[rng.random(last_view.size) < (0.12 if anonymous else 0.35)]
        cart_session = viewer[carting]
        cart_second = second[cart_session] + view_offset[carting] + 60
        add(cart_second, "add_to_cart", product=viewed[carting], **{k: v[cart_session] for k, v in identity.items()})
        outcome = rng.random(carting.size)
        removed = outcome < 0.15
        add(cart_second[removed] + 45, "remove_from_cart", product=viewed[carting][removed],
            **{k: v[cart_session][removed] for k, v in identity.items()})
        checkout = (outcome > 0.7) & (not anonymous)
        add(cart_second[checkout] + 90, "checkout_started", **{k: v[cart_session][checkout] for k, v in identity.items()})

    def _letters(self) -> pl.DataFrame:
        """Letters the shop sent: welcome on registration, post-purchase after the first purchase,
        win-back 90 days after a last purchase. Sending stops at an unsubscribe, bounce or spam report."""
        rng = self.rng
        first = self.purchase_sequence == 0
        lapsed = (self.purchase_next_day < 0) | (self.purchase_next_day > self.purchase_day + 90)
        customer = np.concatenate([
            np.arange(self.customer_count), self.purchase_customer[first], self.purchase_customer[lapsed]
        ])
        day = np.concatenate([self.reg_day, self.purchase_day[first] + 3, self.purchase_day[lapsed] + 90])
        trigger = np.concatenate([
            np.zeros(self.customer_count, dtype=np.int8),
            np.ones(int(first.sum()), dtype=np.int8),
            np.full(int(lapsed.sum()), 2, dtype=np.int8),
        ])
        keep = self.consent[customer] & (day < self.days)
        customer, day, trigger = customer[keep], day[keep], trigger[keep]
        # Welcome goes out minutes after registration; other letters in the morning.
        second = np.where(
            trigger == 0,
            self.reg_second[customer] + 120,
            day * SECONDS_PER_DAY + rng.integers(7 * 3_600, 10 * 3_600, customer.size),
        )
        outcome = rng.random(customer.size)
        # 0 delivered, 1 bounce, 2 delivered then unsubscribe, 3 delivered, opened, spam report.
        fate = np.select([outcome < 0.008, outcome < 0.023, outcome < 0.025], [1, 2, 3], 0).astype(np.int8)
        frame = pl.DataFrame({"customer": customer, "second": second, "trigger": trigger, "fate": fate}).sort(
            "customer", "second"
        )
        # Nothing is sent after a customer's bounce, unsubscribe or spam report.
        frame = frame.with_columns(
            stopped_before=(pl.col("fate") > 0).cast(pl.Int32).cum_sum().shift(1, fill_value=0).over("customer")
        ).filter(pl.col("stopped_before") == 0)
        triggers = pl.Series(["welcome_day0", "post_purchase", "winback_90"])
        return frame.with_columns(
            letter_key=pl.format(
                "{}:{}:{}",
                pl.col("trigger").map_batches(lambda s: triggers.gather(s), return_dtype=pl.String),
                _padded_id("C", pl.col("customer") + 1, self.id_width),
                pl.from_epoch(pl.col("second") + self.base_epoch, time_unit="s").dt.strftime("%Y-%m-%d"),
            )
        )

    def _email_events(self, add, letters: pl.DataFrame) -> None:
        rng = self.rng
        customer = letters["customer"].to_numpy()
        second = letters["second"].to_numpy()
        fate = letters["fate"].to_numpy()
        letter = np.arange(customer.size)
        bounced = fate == 1
        add(second[bounced] + 5, "bounce", customer=customer[bounced], letter=letter[bounced])
        delivered = ~bounced
        add(second[delivered] + 5, "delivered", customer=customer[delivered], letter=letter[delivered])
        opened = delivered & ((rng.random(customer.size) < 0.45) | (fate == 3))
        open_second = second + rng.integers(60, 6 * 3_600, customer.size)
        add(open_second[opened], "open", customer=customer[opened], letter=letter[opened])
        clicked = opened & (rng.random(customer.size) < 0.25) & (fate == 0)
        add(open_second[clicked] + rng.integers(10, 600, int(clicked.sum())), "click", customer=customer[clicked], letter=letter[clicked])
        replied = opened & (rng.random(customer.size) < 0.01) & (fate == 0)
        add(open_second[replied] + rng.integers(300, 3_600, int(replied.sum())), "reply", customer=customer[replied], letter=letter[replied])
        unsubscribed = fate == 2
        add(second[unsubscribed] + rng.integers(120, 7_200, int(unsubscribed.sum())), "unsubscribe",
            customer=customer[unsubscribed], letter=letter[unsubscribed])
        spam = fate == 3
        add(open_second[spam] + 30, "spam_report", customer=customer[spam], letter=letter[spam])

    def build(self) -> dict[str, pl.DataFrame]:
        self._registrations()
        customers = self._customers_frame()
        self._purchases()
        orders, items = self._orders_and_items()
        interactions = self._interactions()
        products = self.products.select(
            "product_id",
            "name",
            "category",
            price=_amount(pl.col("price_cents")),
            rebuy_interval_days=pl.col("rebuy_interval_days").cast(pl.String),
            _second=pl.lit(0, dtype=pl.Int64),
            _day=pl.lit(0, dtype=pl.Int32),
            _file=pl.lit("products"),
        )
        frames = {
            "customers": customers,
            "products": products,
            "orders": orders,
            "order_items": items,
            "interactions": interactions,
        }
        return {
            entity: frame.sort("_day", "_file", "_second", maintain_order=True).with_columns(
                _reason=pl.lit(None, dtype=pl.String)
            )
            for entity, frame in frames.items()
        }


# --- Dirty mode ---------------------------------------------------------------------------------

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


def _inject_bad_rows(frames: dict[str, pl.DataFrame], shop: _Shop, injected: dict) -> dict[str, pl.DataFrame]:
    """Append bad rows to the days' main files; each breaks exactly the rule it is counted under."""
    rng = np.random.default_rng(shop.rng.integers(0, 2**32))
    result = {}
    for entity, reasons in ROW_BREAKS.items():
        frame = frames[entity]
        main_rows = frame.filter(pl.col("_file") == entity)
        if main_rows.is_empty():
            raise ValueError(f"dirty mode copies real {entity} rows, but this shop has none: use more customers or days")
        count = max(len(reasons), int(round(DIRTY_ROW_SHARE * main_rows.height)))
        if entity == "products":
            count = len(reasons)
        reason_of_row = [reasons[i % len(reasons)] for i in range(count)]
        # A bad row lands on a day that has rows of the entity, picked in proportion to its volume
        # (duplicates copy one of that day's rows). Interactions' letter check needs a customer
        # registered before that day, so days after the first.
        picks = rng.integers(0, main_rows.height, count)
        bad_rows = []
        for number, (reason, row) in enumerate(zip(reason_of_row, main_rows[picks].to_dicts()), start=1):
            bad_rows.append(_break_row(entity, reason, row, number, shop))
            injected.setdefault(reason, {}).setdefault(entity, 0)
            injected[reason][entity] += 1
        bad = pl.DataFrame(bad_rows, schema=frame.schema, orient="row").with_columns(
            _reason=pl.Series(reason_of_row, dtype=pl.String)
        )
        # Bad rows go after the day's good rows of the same file (so a duplicate follows its original).
        result[entity] = pl.concat([frame, bad]).sort(
            "_day", "_file", pl.col("_reason").is_not_null(), maintain_order=True
        )
    return result


def _break_row(entity: str, reason: str, row: dict, number: int, shop: _Shop) -> dict:
    row = dict(row)
    if reason == "missing_required:letter_key":
        row["_day"] = max(row["_day"], int(shop.reg_day[0]))  # a day by which a customer exists
    day_start = row["_day"] * SECONDS_PER_DAY
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
        registered_by_then = int(np.searchsorted(shop.reg_day, row["_day"], side="right"))
        known_customer = max(registered_by_then - 1, 0) // 2
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


def _write_bad_files(root: Path, shop: _Shop, base_epoch: int) -> dict[str, list[str]]:
    """Files the ingest must reject as a whole. Their rows are extra: nothing else refers to them."""
    day = shop.days // 2
    day_name = (datetime.fromtimestamp(base_epoch, tz=timezone.utc).date() + timedelta(days=day)).isoformat()
    noon = f"{day_name}T12:00:00"
    written: dict[str, list[str]] = {}

    def put(reason: str, entity: str, name: str, content: bytes) -> None:
        path = root / entity / f"date={day_name}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.setdefault(reason, []).append(path.relative_to(root).as_posix())

    customer_header = ",".join(ENTITIES["customers"].column_names)
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
    garbage = np.random.default_rng(shop.days).integers(0, 256, 2_048, dtype=np.uint8).tobytes()
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
    without_consent = [c for c in ENTITIES["customers"].column_names if c != "marketing_consent"]
    put(
        "missing_columns:marketing_consent",
        "customers",
        "partner_signups.csv",
        (
            ",".join(without_consent) + "\n"
            f"CF000003,partner.one.f3@example.com,Lina,{noon},,UTC\n"
        ).encode(),
    )
    put("unsupported_format", "orders", "orders_export.xlsx", b"PK\x03\x04" + garbage[:512])
    return written


# --- Writing ------------------------------------------------------------------------------------

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


def _write_landing(frames: dict[str, pl.DataFrame], root: Path, base_epoch: int, row_locations: list) -> tuple[int, dict]:
    first_day = datetime.fromtimestamp(base_epoch, tz=timezone.utc).date()
    files = 0
    rows: dict[str, int] = {}
    for entity_index, entity in enumerate(ENTITY_ORDER):
        frame = frames[entity]
        columns = ENTITIES[entity].column_names
        rows[entity] = frame.height
        for (day, file_stem), part in frame.partition_by("_day", "_file", as_dict=True, maintain_order=True).items():
            day_name = (first_day + timedelta(days=int(day))).isoformat()
            folder = root / entity / f"date={day_name}"
            folder.mkdir(parents=True, exist_ok=True)
            file_format = "csv" if file_stem in ("updates", "products") else FORMAT_CYCLE[(int(day) + entity_index) % len(FORMAT_CYCLE)]
            path = folder / f"{file_stem}_{day_name}.{file_format}"
            has_bad = part["_reason"].null_count() < part.height
            if has_bad:
                located = part.select(pl.int_range(1, pl.len() + 1).alias("row_number"), "_reason").drop_nulls("_reason")
                for row_number, reason in located.iter_rows():
                    row_locations.append(
                        {"entity": entity, "file": path.relative_to(root).as_posix(), "row_number": row_number, "reason": reason}
                    )
            data = part.select(columns)
            if file_format == "csv":
                data.write_csv(path)
            elif file_format == "parquet":
                (data if has_bad else _typed(data, entity)).write_parquet(path, statistics=False)
            else:
                (data if has_bad else _typed(data, entity)).write_ndjson(path)
            files += 1
    return files, rows


if __name__ == "__main__":
    main(sys.argv[1:])
