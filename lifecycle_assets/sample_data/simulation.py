"""The sample shop's simulation: customers, purchases and interactions as numbers, chunk by chunk.

The shop is built so that the figures of the lifecycle brief (``LIFECYCLE.md``) can be read back
from its data: most first purchases happen on the registration day, more than half of the buyers
never buy twice, big first orders repeat twice as often as one-item ones, a fifth of the customers
lapsed for 4-6 months come back within 3 months, and returned customers behave like new buyers.

Everything a customer does depends only on that customer, so customers are simulated in chunks of
``CHUNK_CUSTOMERS`` with a random stream of their own (seed, chunk number): memory is bounded by the
chunk, and the same seed gives the same shop whatever the machine. A chunk returns numbers only
(seconds, codes, customer numbers); text, ids numbered across the whole shop and files are made by
``landing_files``. Numpy is vectorised over customers: the only Python loops run over purchase rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lifecycle_assets.ingest.contract import EVENT_TYPES
from lifecycle_assets.sample_data.letter_effect import LetterEffect, nudge_first_purchases

SECONDS_PER_DAY = 86_400

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
SAMPLE_SHOP_URL = "https://shop.example.com"

# Customers simulated together; part of the recipe (another chunk size draws another shop).
CHUNK_CUSTOMERS = 50_000
ORDER_STATUSES = ("completed", "cancelled", "refunded")
LETTER_TRIGGERS = ("welcome_day0", "post_purchase", "winback_90")
MAIN_FILE, UPDATES_FILE = 0, 1  # the ``_file`` code: the day's export, or a later update of a row


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
    catalogue = pl.DataFrame(
        rows, schema=["product_id", "name", "category", "price_cents", "rebuy_interval_days"], orient="row"
    )
    # Letters link each product to its page and show its image (the sample shop's own addresses).
    return catalogue.with_columns(
        url=pl.lit(f"{SAMPLE_SHOP_URL}/products/") + pl.col("product_id").str.to_lowercase(),
        image_url=pl.lit(f"{SAMPLE_SHOP_URL}/images/") + pl.col("product_id").str.to_lowercase() + pl.lit(".jpg"),
    )


CATALOGUE = _catalogue()

# Bought together: a product's companions are three products of its partner category (coffee with
# grinders and French presses, books with cushions and lamps, ...). A customer comes back for what
# goes with their favourite product (the first line of their first order, often restocked): in a
# repeat order each line after the first is a companion of the favourite with chance
# BOUGHT_TOGETHER_SHARE. First orders have none, so these are new to the customer on a later visit -
# the structure the site's recommendations and their backtest can find - and a restock order holds
# the favourite with its companion - the pairs checkout cross-sell can find (docs/sample_shop.md).
# These draws come from a random stream of their own, so every other figure of the shop is what it
# was without them (a share of 0 gives the shop byte for byte as before).
PARTNER_CATEGORY = {
    "coffee": "kitchen", "tea": "kitchen", "kitchen": "coffee", "pet_food": "pet_food", "cosmetics": "cosmetics",
    "vitamins": "cosmetics", "electronics": "electronics", "books": "home", "home": "books", "garden": "garden",
}
COMPANIONS_PER_PRODUCT = 3
BOUGHT_TOGETHER_SHARE = 0.5


def _companions() -> np.ndarray:
    """Product index -> its companions' indexes; the same whatever the seed, like the catalogue."""
    rng = np.random.default_rng(20240102)
    categories = CATALOGUE["category"].to_numpy()
    companions = np.empty((PRODUCT_COUNT, COMPANIONS_PER_PRODUCT), dtype=np.int64)
    for product in range(PRODUCT_COUNT):
        partners = np.flatnonzero((categories == PARTNER_CATEGORY[categories[product]]) & (np.arange(PRODUCT_COUNT) != product))
        companions[product] = rng.choice(partners, COMPANIONS_PER_PRODUCT, replace=False)
    return companions


COMPANIONS = _companions()


def bought_together() -> pl.DataFrame:
    """The documented pairs (``product_id``, ``companion_id``) the shop's customers buy together."""
    product_ids = CATALOGUE["product_id"]
    return pl.DataFrame(
        {
            "product_id": product_ids.gather(np.repeat(np.arange(PRODUCT_COUNT), COMPANIONS_PER_PRODUCT)),
            "companion_id": product_ids.gather(COMPANIONS.ravel()),
        }
    )


@dataclass(frozen=True)
class ShopPlan:
    """What every chunk shares: the period, the catalogue's popularity and all registrations.

    Registrations are drawn stratified (customer ``i`` in ``[i/n, (i+1)/n)`` of the growth curve),
    so customers are numbered in order of registration across chunks without a global sort.
    """

    seed: int
    customers: int
    days: int
    base_epoch: int
    product_weights: np.ndarray
    reg_day: np.ndarray
    reg_second: np.ndarray
    chunk_customers: int = CHUNK_CUSTOMERS
    letter_effect: LetterEffect | None = None  # welcome letter recipients buy more (sample_data/letter_effect.py)

    @classmethod
    def draw(
        cls, seed: int, customers: int, days: int, base_epoch: int, chunk_customers: int = CHUNK_CUSTOMERS,
        letter_effect: LetterEffect | None = None,
    ) -> ShopPlan:
        rng = np.random.default_rng([seed, 0])
        popularity = 1.0 / np.arange(1, PRODUCT_COUNT + 1) ** 0.9
        product_weights = rng.permutation(popularity / popularity.sum())
        # Registrations grow linearly over the period: invert the CDF of density 1 + g*x on [0, 1].
        g = REGISTRATION_GROWTH
        u = (np.arange(customers) + rng.random(customers)) / customers
        x = (-1 + np.sqrt(1 + 2 * g * u * (1 + g / 2))) / g if g else u
        reg_day = np.minimum((x * days).astype(np.int64), days - 1)
        reg_second = reg_day * SECONDS_PER_DAY + rng.integers(3_600, 22 * 3_600, customers)
        return cls(seed, customers, days, base_epoch, product_weights, reg_day, reg_second, chunk_customers, letter_effect)

    @property
    def chunks(self) -> int:
        return -(-self.customers // self.chunk_customers)

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_customers
        return start, min(start + self.chunk_customers, self.customers)


def simulate_chunk(plan: ShopPlan, chunk: int) -> dict[str, pl.DataFrame]:
    """One chunk of customers and everything they do, as numeric frames per entity.

    Every frame has ``_second`` (landing time since the first day), ``_day``, ``_file`` (main or
    updates) and ``_row`` (position in the chunk, for a stable order). Customer numbers are global
    (1-based); orders carry the chunk's own ``_order`` number, which ``landing_files`` maps to the
    shop-wide order id.
    """
    return _Chunk(plan, chunk).build()


class _Chunk:
    def __init__(self, plan: ShopPlan, chunk: int):
        self.plan = plan
        self.chunk = chunk
        self.rng = np.random.default_rng([plan.seed, 1, chunk])
        self.start, end = plan.chunk_range(chunk)
        self.n = end - self.start
        self.days = plan.days
        self.product_weights = plan.product_weights
        self.reg_day = plan.reg_day[self.start:end]
        self.reg_second = plan.reg_second[self.start:end]
        self.price_cents = CATALOGUE["price_cents"].to_numpy()

    def _bought_together(self, product, line_number, repeat_line, favourite) -> np.ndarray:
        """In a repeat order a further line is often a companion of the customer's favourite (own random stream)."""
        if BOUGHT_TOGETHER_SHARE <= 0:
            return product
        rng = np.random.default_rng([self.plan.seed, 2, self.chunk])
        together = repeat_line & (line_number >= 2) & (rng.random(product.size) < BOUGHT_TOGETHER_SHARE)
        companion = COMPANIONS[favourite, rng.integers(0, COMPANIONS_PER_PRODUCT, product.size)]
        return np.where(together, companion, product)

    # customers ------------------------------------------------------------------------------
    def _customers(self) -> pl.DataFrame:
        rng, n = self.rng, self.n
        self.consent = rng.random(n) < CONSENT_SHARE
        customers = pl.DataFrame(
            {
                "number": np.arange(self.start + 1, self.start + n + 1),
                "first": rng.integers(0, len(FIRST_NAMES), n),
                "last": rng.integers(0, len(LAST_NAMES), n),
                "registered": self.reg_second,
                "birthday_days": rng.integers(-20 * 365, 35 * 365, n),  # 1950 .. 2005
                "has_birthday": rng.random(n) < BIRTHDAY_SHARE,
                "timezone_index": rng.integers(0, len(TIMEZONES), n),
                "has_timezone": rng.random(n) < TIMEZONE_SHARE,
                "consent": self.consent,
                "_second": self.reg_second,
                "_file": np.full(n, MAIN_FILE, dtype=np.int8),
            }
        )
        # A few customers later withdraw their marketing consent: a later landing day's row for the
        # same customer_id is an update of that customer.
        withdrawing = np.flatnonzero(self.consent & (rng.random(n) < CONSENT_WITHDRAWAL_SHARE))
        update_day = self.reg_day[withdrawing] + rng.integers(1, 120, withdrawing.size)
        keep = update_day < self.days
        withdrawing, update_day = withdrawing[keep], update_day[keep]
        updates = customers[withdrawing].with_columns(
            consent=pl.lit(False),
            _second=pl.Series(update_day * SECONDS_PER_DAY + rng.integers(3_600, 80_000, update_day.size)),
            _file=pl.lit(UPDATES_FILE, dtype=pl.Int8),
        )
        return pl.concat([customers, updates])

    # purchases ------------------------------------------------------------------------------
    def _purchases(self) -> None:
        """Each buyer's chain of purchases; the next step depends on how they bought the last time."""
        rng, days, n = self.rng, self.days, self.n
        buyer = np.flatnonzero(rng.random(n) < SHARE_OF_REGISTRANTS_WHO_BUY)
        kind = rng.random(buyer.size)
        later = 7 + np.minimum(rng.geometric(1 / 25, buyer.size) - 1, 200)
        delay = np.where(
            kind < FIRST_PURCHASE_SAME_DAY,
            0,
            np.where(kind < FIRST_PURCHASE_SAME_DAY + FIRST_PURCHASE_FIRST_WEEK, rng.integers(1, 7, buyer.size), later),
        )
        buyer, delay = nudge_first_purchases(
            self.plan.letter_effect, np.random.default_rng([self.plan.seed, 2, self.chunk]),
            np.arange(self.start + 1, self.start + n + 1), self.plan.customers, self.consent, buyer, delay,
        )
        first_day = self.reg_day[buyer] + delay
        in_period = first_day < days
        buyer, first_day = buyer[in_period], first_day[in_period]
        # Each repeat buyer's own rhythm: their typical gap between purchases.
        rhythm = np.clip(np.exp(np.log(RHYTHM_MEDIAN_DAYS) + RHYTHM_SPREAD * rng.standard_normal(n)), 8, 75)

        customer_parts, day_parts, sequence_parts, lines_parts, favourite_parts = [], [], [], [], []
        customer, day = buyer, first_day
        fresh = np.ones(buyer.size, dtype=bool)  # first purchase or return after a lapse
        favourite = rng.choice(PRODUCT_COUNT, size=buyer.size, p=self.product_weights)
        sequence = 0
        while customer.size:
            lines = rng.choice(6, size=customer.size, p=ORDER_LINES_SHARES)
            customer_parts.append(customer)
            day_parts.append(day)
            sequence_parts.append(np.full(customer.size, sequence))
            lines_parts.append(lines)
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
            favourite = favourite[going_on]
            sequence += 1

        empty = np.zeros(0, dtype=np.int64)
        self.purchase_customer = np.concatenate(customer_parts) if customer_parts else empty
        self.purchase_day = np.concatenate(day_parts) if day_parts else empty
        self.purchase_sequence = np.concatenate(sequence_parts) if sequence_parts else empty
        self.purchase_lines = np.concatenate(lines_parts) if lines_parts else empty
        self.purchase_favourite = np.concatenate(favourite_parts) if favourite_parts else empty
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

        # The chunk's orders in order of time (the shop-wide ids follow time as well).
        by_time = np.argsort(order_second, kind="stable")
        order_customer, order_second, order_lines = order_customer[by_time], order_second[by_time], order_lines[by_time]
        order_favourite, order_status = order_favourite[by_time], order_status[by_time]
        order_sequence, refunded, refund_day = order_sequence[by_time], refunded[by_time], refund_day[by_time]
        order_count = order_customer.size

        # Lines: 1-5, or 6-10 for the "6+" bucket.
        line_count = np.where(order_lines == 5, rng.integers(6, 11, order_count), order_lines + 1)
        item_order = np.repeat(np.arange(order_count), line_count)
        item_starts = np.cumsum(line_count) - line_count
        line_number = np.arange(item_order.size) - np.repeat(item_starts, line_count) + 1
        product = rng.choice(PRODUCT_COUNT, size=item_order.size, p=self.product_weights)
        # Repeat orders often restock the customer's favourite (first line) - replenishment.
        restock = (line_number == 1) & (order_sequence[item_order] >= 1) & (rng.random(item_order.size) < 0.5)
        product = np.where(restock | ((line_number == 1) & (order_sequence[item_order] == 0)), order_favourite[item_order], product)
        product = self._bought_together(product, line_number, order_sequence[item_order] >= 1, order_favourite[item_order])
        # Quantity: one-line orders are one item and 2-5-line orders stay below six items, so
        # "1 item" and "6+ items" mean the same whether counted by lines or by quantity.
        lines_of_item = line_count[item_order]
        quantity = np.ones(item_order.size, dtype=np.int64)
        quantity = np.where((lines_of_item >= 2) & (lines_of_item <= 3) & (line_number == 1) & (rng.random(item_order.size) < 0.25), 2, quantity)
        quantity = np.where((lines_of_item >= 6) & (rng.random(item_order.size) < 0.2), rng.integers(2, 4, item_order.size), quantity)
        price = self.price_cents[product]
        total = np.bincount(item_order, weights=quantity * price, minlength=order_count).astype(np.int64)

        self.order_customer, self.order_second = order_customer, order_second
        self.item_order, self.item_product = item_order, product

        orders = pl.DataFrame(
            {
                "_order": np.arange(order_count, dtype=np.int64),
                "customer": self.start + order_customer + 1,
                "ordered": order_second,
                "status": order_status,
                "total": total,
                "_second": order_second,
                "_file": np.full(order_count, MAIN_FILE, dtype=np.int8),
            }
        )
        refund_rows = np.flatnonzero(refunded)
        refunds = orders[refund_rows].with_columns(
            status=pl.lit(ORDER_STATUSES.index("refunded"), dtype=pl.Int8),
            _second=pl.Series(refund_day[refund_rows] * SECONDS_PER_DAY + rng.integers(3_600, 80_000, refund_rows.size)),
            _file=pl.lit(UPDATES_FILE, dtype=pl.Int8),
        )
        items = pl.DataFrame(
            {
                "_order": item_order.astype(np.int64),
                "line_number": line_number,
                "product": product + 1,
                "quantity": quantity,
                "price": price,
                "_second": order_second[item_order],
                "_file": np.full(item_order.size, MAIN_FILE, dtype=np.int8),
            }
        )
        return pl.concat([orders, refunds]), items

    # interactions ---------------------------------------------------------------------------
    def _interactions(self) -> pl.DataFrame:
        """Site sessions around orders, browsing and abandoned carts, anonymous visits, email events."""
        rng = self.rng
        parts = []  # each: dict of numpy arrays; -1 where the event has no such field
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
        n = self.n
        customer = np.arange(n)
        revisit_second, revisit_customer = self._later_visit(customer, self.reg_day, 0.30, 15)
        rebrowse_second, rebrowse_customer = self._later_visit(self.purchase_customer, self.purchase_day, 0.20, 30)
        browse_second = np.concatenate([self.reg_second + rng.integers(10, 600, n), revisit_second, rebrowse_second])
        browse_customer = np.concatenate([customer, revisit_customer, rebrowse_customer])
        self._browsing_session(add, browse_second, browse_customer, anonymous=False)

        # Anonymous visitors: a cookie id, no customer id (numbered across chunks).
        sessions = int(n * ANONYMOUS_SESSIONS_PER_CUSTOMER)
        first_session = self.chunk * int(self.plan.chunk_customers * ANONYMOUS_SESSIONS_PER_CUSTOMER)
        anonymous_day = np.minimum((np.sqrt(rng.random(sessions)) * self.days).astype(np.int64), self.days - 1)
        anonymous_second = np.sort(anonymous_day * SECONDS_PER_DAY + rng.integers(3_600, 82_000, sessions))
        self._browsing_session(add, anonymous_second, first_session + np.arange(sessions), anonymous=True)

        # Letters and their email events.
        letters = self._letters()
        self._email_events(add, letters)

        merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        keep = (merged["second"] >= 0) & (merged["second"] < self.days * SECONDS_PER_DAY)
        merged = {key: value[keep] for key, value in merged.items()}
        order = np.argsort(merged["second"], kind="stable")
        merged = {key: value[order] for key, value in merged.items()}
        letter = merged["letter"]
        has_letter = letter >= 0
        letter_trigger = letters["trigger"].to_numpy()
        letter_day = letters["second"].to_numpy() // SECONDS_PER_DAY
        customer = merged["customer"]
        return pl.DataFrame(
            {
                "type": merged["type"],
                "customer": np.where(customer >= 0, self.start + customer + 1, -1),
                "anonymous": merged["anonymous"],
                "product": merged["product"],
                "query": merged["query"].astype(np.int8),
                "letter_trigger": np.where(has_letter, letter_trigger[np.where(has_letter, letter, 0)], -1).astype(np.int8),
                "letter_day": np.where(has_letter, letter_day[np.where(has_letter, letter, 0)], -1).astype(np.int32),
                "_second": merged["second"],
                "_file": np.full(letter.size, MAIN_FILE, dtype=np.int8),
            }
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
        customer = np.concatenate([np.arange(self.n), self.purchase_customer[first], self.purchase_customer[lapsed]])
        day = np.concatenate([self.reg_day, self.purchase_day[first] + 3, self.purchase_day[lapsed] + 90])
        trigger = np.concatenate([
            np.zeros(self.n, dtype=np.int8),
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
        return frame.with_columns(
            stopped_before=(pl.col("fate") > 0).cast(pl.Int32).cum_sum().shift(1, fill_value=0).over("customer")
        ).filter(pl.col("stopped_before") == 0)

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
        customers = self._customers()
        self._purchases()
        orders, items = self._orders_and_items()
        interactions = self._interactions()
        frames = {"customers": customers, "orders": orders, "order_items": items, "interactions": interactions}
        return {
            entity: frame.with_columns(
                _day=(pl.col("_second") // SECONDS_PER_DAY).cast(pl.Int32),
                _row=pl.int_range(pl.len(), dtype=pl.Int64),
            )
            for entity, frame in frames.items()
        }
