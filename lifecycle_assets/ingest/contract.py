"""The landing-zone data contract: what the shop delivers for each entity, in code.

Files land in ``data/landing/<entity>/date=YYYY-MM-DD/*.{csv,parquet,jsonl}``. DuckDB reads every
value as text with the column names given here (no sniffing), and the row rules are SQL generated
from these definitions (`validation.py`), so a CSV, a JSONL and a Parquet file of the same entity
are validated by the same rules. ``docs/data_contract.md`` is the readable form of this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["string", "email", "timestamp", "date", "boolean", "integer", "amount"]

ORDER_STATUSES = ("completed", "cancelled", "refunded")
SITE_EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "checkout_started",
)
EMAIL_EVENT_TYPES = ("delivered", "open", "click", "reply", "unsubscribe", "bounce", "spam_report")
# Added for SendGrid's Event Webhook (docs/webhook.md); appended so existing types keep their order.
# Only the webhook reports them: a shop's own export (and the sample shop) has none.
WEBHOOK_ONLY_EVENT_TYPES = ("processed", "deferred", "dropped", "blocked", "group_unsubscribe", "group_resubscribe")
EMAIL_EVENT_TYPES += WEBHOOK_ONLY_EVENT_TYPES
EVENT_TYPES = SITE_EVENT_TYPES + EMAIL_EVENT_TYPES

# Email events that report on one letter must name it; a list-wide unsubscribe, a bounce or a
# spam report may arrive without one.
EVENTS_REQUIRING_LETTER_KEY = ("delivered", "open", "click", "reply")
EVENTS_REQUIRING_PRODUCT = ("product_view", "add_to_cart", "remove_from_cart")

LANDING_FORMATS = ("csv", "parquet", "jsonl")

# A timestamp later than the end of its landing day by more than this is rejected as
# "in the future": one day covers every timezone and a late-night export.
FUTURE_TOLERANCE_HOURS = 24


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True
    allowed: tuple[str, ...] | None = None
    non_negative: bool = False
    description: str = ""
    # Required whenever this other column is given.
    required_with: str | None = None


@dataclass(frozen=True)
class Entity:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str
    # Other entities whose ids this one refers to: (column, entity, that entity's key column).
    references: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    # Ingest order: an entity is ingested after the entities it references.
    depends_on: tuple[str, ...] = field(default_factory=tuple)
    # Rows of one id that differ within a landing day are changes (kept; the latest wins in
    # staging), not duplicates. Only an exact copy of an earlier row is then `duplicate_id`.
    changes_within_day: bool = False
    # A row without this column is a change of an existing record: it changes only the columns it
    # carries (customers: a consent withdrawal needs no registration time), and must carry one.
    partial_rows_without: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


CUSTOMERS = Entity(
    name="customers",
    key=("customer_id",),
    description="Registered (identified) shop customers. Every row is a change of its customer: the "
    "latest change by its time wins, whichever day and file it lands in; a row without registered_at "
    "changes only the fields it carries (a consent withdrawal).",
    columns=(
        Column("customer_id", "string", description="The shop's customer id."),
        Column("email", "email", required=False, required_with="registered_at", description="Where letters go."),
        Column("first_name", "string", required=False, description="Used to personalise letters."),
        Column(
            "registered_at",
            "timestamp",
            required=False,
            description="Registration time (ISO 8601, UTC if no offset); empty on a row that only changes a customer.",
        ),
        Column("birthday", "date", required=False, description="YYYY-MM-DD."),
        Column("timezone", "string", required=False, description="IANA name, e.g. Europe/Berlin."),
        Column(
            "marketing_consent",
            "boolean",
            required=False,
            required_with="registered_at",
            description="true/false (also 1/0, yes/no).",
        ),
        Column(
            "updated_at",
            "timestamp",
            required=False,
            description="When the row's values became true in the shop (a consent change's time); the latest wins.",
        ),
    ),
    changes_within_day=True,
    partial_rows_without="registered_at",
)

PRODUCTS = Entity(
    name="products",
    key=("product_id",),
    description="The catalogue. A later landing day's row for the same product_id updates it.",
    columns=(
        Column("product_id", "string"),
        Column("name", "string"),
        Column("category", "string"),
        Column("price", "amount", non_negative=True, description="List price in the shop's currency."),
        Column(
            "rebuy_interval_days",
            "integer",
            required=False,
            non_negative=True,
            description="Days after which a consumable is typically bought again (coffee: 30); "
            "empty for durable goods.",
        ),
        # Added for letters' product cards (issue 14); optional, so older catalogues stay valid.
        Column("url", "string", required=False, description="The product's page in the shop (absolute URL)."),
        Column("image_url", "string", required=False, description="The product's image (absolute URL)."),
    ),
)

ORDERS = Entity(
    name="orders",
    key=("order_id",),
    description="Orders. Another row for the same order_id, on the same or a later landing day, is a "
    "status change (for example completed -> refunded); the latest change by its time wins.",
    columns=(
        Column("order_id", "string"),
        Column("customer_id", "string"),
        Column("ordered_at", "timestamp"),
        Column("status", "string", allowed=ORDER_STATUSES),
        Column("total_amount", "amount", non_negative=True),
        Column("updated_at", "timestamp", required=False, description="When the order got this status."),
    ),
    changes_within_day=True,
    references=(("customer_id", "customers", "customer_id"),),
    depends_on=("customers",),
)

ORDER_ITEMS = Entity(
    name="order_items",
    key=("order_id", "line_number"),
    description="Lines of an order: which product, how many, at what unit price.",
    columns=(
        Column("order_id", "string"),
        Column("line_number", "integer", non_negative=True),
        Column("product_id", "string"),
        Column("quantity", "integer", non_negative=True),
        Column("unit_price", "amount", non_negative=True),
    ),
    references=(("order_id", "orders", "order_id"), ("product_id", "products", "product_id")),
    depends_on=("orders", "products"),
)

INTERACTIONS = Entity(
    name="interactions",
    key=("event_id",),
    description="Site events (visits, views, searches, carts, checkouts) and email events "
    "(delivered, open, click, reply, unsubscribe, bounce, spam report) in one stream.",
    columns=(
        Column("event_id", "string"),
        Column("occurred_at", "timestamp"),
        Column("event_type", "string", allowed=EVENT_TYPES),
        Column(
            "customer_id",
            "string",
            required=False,
            description="Required for email events; a site event needs customer_id or anonymous_id.",
        ),
        Column("anonymous_id", "string", required=False, description="Cookie id of a not-yet-identified visitor."),
        Column("product_id", "string", required=False, description="Required for product_view and cart events."),
        Column("letter_key", "string", required=False, description="Required for delivered/open/click/reply."),
        Column("search_query", "string", required=False),
    ),
    references=(("customer_id", "customers", "customer_id"),),
    depends_on=("customers",),
)

ENTITIES: dict[str, Entity] = {
    e.name: e for e in (CUSTOMERS, PRODUCTS, ORDERS, ORDER_ITEMS, INTERACTIONS)
}

# Money is stored exactly: an amount with more than two decimals is rejected, not rounded.
AMOUNT_SQL_TYPE = "DECIMAL(18,2)"

# Columns every raw table carries besides the entity's own: where each row came from.
LINEAGE_COLUMNS = ("_landing_date", "_source_file", "_row_number", "_ingested_at")
