"""The contact policy: how many letters a customer may get, which go first, how long a letter stays
worth sending, and at what local time it arrives (docs/activation.md, "Contact policy" and "Send time").

A day is a plan day: the `as_of` of marts.letters_planned. Caps count the letters that went out
(accepted, or maybe: claimed, unknown) per customer and per address (one inbox, one person: issue
8) on that day and on the days of the week before it. Over a cap, the letters of the day are ranked
by `priority` (1 first), then by the validity that ends first; the rest are deferred and compete
again on a later plan day until their type's validity after the due day has passed: then they
expire. A letter arrives at the customer's local send hour (SendGrid's per-personalization
`send_at`), never more than 72 h ahead, never in the customer's night.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import Field

# Days after its due day a letter of a type is still worth sending; a deferred letter expires after.
DEFAULT_VALIDITY_DAYS = {
    "abandoned_cart": 2,
    "abandoned_browse": 2,
    "welcome": 3,
    "welcome_bonus_expiring": 0,  # the bonus ends the next day
    "post_purchase": 3,
    "cross_sell": 5,
    "replenishment": 7,
    "we_miss_you": 5,
    "winback": 7,
    "welcome_back": 5,
    "birthday": 7,
    "anniversary": 7,
    "purchase_jubilee": 7,
}
# SendGrid refuses a send_at more than 72 h ahead.
SENDGRID_MAX_SCHEDULE_AHEAD = dt.timedelta(hours=72)
# Letters that may have reached the customer: they count against the caps.
COUNTED_STATES = ("accepted", "claimed", "unknown")
ONE_INBOX_REASON = "one letter of a type per inbox a day"


class ContactPolicy(dg.Config):
    """Caps, validity and send time of the letters; every field has the documented default."""

    max_letters_per_day: int = Field(default=1, ge=1, description="Marketing letters per customer and per address a plan day.")
    max_letters_per_week: int = Field(
        default=3, ge=1, description="Marketing letters per customer and per address in any 7 plan days."
    )
    validity_days: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_VALIDITY_DAYS),
        description="Per letter type (template name): days after the due day a deferred letter may still go out.",
    )
    default_validity_days: int = Field(default=3, ge=0, description="Validity of a letter type not in validity_days.")
    local_send_hour: int = Field(default=10, ge=0, le=23, description="Hour of the day a letter arrives, customer's local time.")
    shop_timezone: str = Field(
        default="UTC", description="IANA time zone for customers without a (valid) timezone of their own."
    )

    def shop_zone(self) -> ZoneInfo:
        zone = zone_named(self.shop_timezone)
        if zone is None:
            raise ValueError(f"contact policy: shop_timezone {self.shop_timezone!r} is not an IANA time zone")
        return zone


@lru_cache(maxsize=1024)
def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone, or None for an empty or unknown name (the customer then gets the shop's zone)."""
    if not name or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def send_at(
    policy: ContactPolicy, zone: ZoneInfo, now: dt.datetime, deliver_on: dt.date | None = None
) -> dt.datetime | None:
    """When the letter arrives (aware UTC): the local send hour on `deliver_on`, or the next one after `now`.

    None when that moment is more than 72 h ahead: the letter waits for a later push. A `deliver_on`
    whose send hour has passed arrives at the next one.
    """
    local_now = now.astimezone(zone)
    day = local_now.date()
    if deliver_on is not None and deliver_on > day:
        day = deliver_on
    moment = dt.datetime.combine(day, dt.time(policy.local_send_hour), tzinfo=zone)
    if moment <= local_now:
        moment = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(policy.local_send_hour), tzinfo=zone)
    moment = moment.astimezone(dt.timezone.utc)
    return None if moment - now > SENDGRID_MAX_SCHEDULE_AHEAD else moment


def plan_day(connection) -> dt.date | None:
    """The plan day of this push: the as-of day of marts.letters_planned (else the ledger's latest)."""
    day = connection.execute("select max(as_of) from marts.letters_planned").fetchone()[0]
    if day is None:
        day = connection.execute("select max(as_of) from activation.send_ledger").fetchone()[0]
    return day


def customer_zones(connection, policy: ContactPolicy) -> dict[str, tuple[ZoneInfo, str]]:
    """customer_id -> (zone, its name) from the freshest raw.customers row; missing or invalid: not listed."""
    has_column = connection.execute(
        """select count(*) from information_schema.columns
           where table_schema = 'raw' and table_name = 'customers' and column_name = 'timezone'"""
    ).fetchone()[0]
    if not has_column:
        return {}
    rows = connection.execute(
        """select customer_id, timezone from raw.customers
           qualify row_number() over (partition by customer_id order by _landing_date desc, _row_number desc) = 1"""
    ).fetchall()
    zones = {}
    for customer_id, name in rows:
        zone = zone_named(name)
        if zone is not None:
            zones[customer_id] = (zone, zone.key)
    return zones


class CapCounter:
    """Letters counted per customer and per address on the plan day and the 6 days before it."""

    def __init__(self, policy: ContactPolicy, day: dt.date):
        self.policy = policy
        self.day = day
        self.today: Counter = Counter()
        self.week: Counter = Counter()

    @classmethod
    def from_ledger(cls, connection, policy: ContactPolicy, day: dt.date, address_of: dict[str, str | None]) -> "CapCounter":
        """Counts what already went out (or may have) in the week up to `day`; `address_of` maps customers to current addresses."""
        counter = cls(policy, day)
        rows = connection.execute(
            f"""select customer_id, send_day, count(*) from activation.send_ledger
                where state in {COUNTED_STATES} and send_day between ?::date - 6 and ?::date
                group by all""",
            [day, day],
        ).fetchall()
        for customer_id, send_day, count in rows:
            counter._add(customer_id, address_of.get(customer_id), count, send_day == day)
        return counter

    def _keys(self, customer_id: str, address: str | None) -> list[tuple[str, str]]:
        return [("customer", customer_id)] + ([("address", address)] if address else [])

    def _add(self, customer_id: str, address: str | None, count: int, today: bool) -> None:
        for key in self._keys(customer_id, address):
            self.week[key] += count
            if today:
                self.today[key] += count

    def refusal(self, customer_id: str, address: str | None) -> str | None:
        """Why one more letter to this customer / address today breaks a cap, or None."""
        for kind, value in self._keys(customer_id, address):
            if self.today[(kind, value)] >= self.policy.max_letters_per_day:
                return f"daily cap: {self.policy.max_letters_per_day} letter(s) per {kind} a day"
            if self.week[(kind, value)] >= self.policy.max_letters_per_week:
                return f"weekly cap: {self.policy.max_letters_per_week} letter(s) per {kind} in 7 days"
        return None

    def count(self, customer_id: str, address: str | None) -> None:
        self._add(customer_id, address, 1, True)
