"""A known letter effect in the sample shop, so the lift report (activation/letter_lift) has something to find.

The generator cannot know which letters the pipeline will plan, so it simulates one letter it can
predict: the welcome letter, planned on the day a customer with marketing consent registers. It
decides who is held out with the pipeline's own definition (activation/holdout.py: a hash of the
customer id, the letter type and the salt, with the default shares of LifecycleSettings), so the
customers it treats are the ones the push will send the letter to. Of the recipients who did not buy
on the day they registered and would not have bought within the attribution window, a share
`extra_probability` buys for the first time 1 to 7 days after registering. Held-out customers are
never nudged. Customer ids are those landing_files writes (`C` + the number, zero-padded).

`replay_letter_days` gives the demo a ledger with history: it plans and holds out letters day by
day on a copy of the warehouse, the way the push does, without sending anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from lifecycle_assets.activation.holdout import in_global_control_group, in_letter_holdout
from lifecycle_assets.models.settings import LifecycleSettings

DEFAULTS = LifecycleSettings()
WELCOME = "welcome"


@dataclass(frozen=True)
class LetterEffect:
    """Recipients of the welcome letter buy with this extra probability within the attribution window."""

    extra_probability: float = 0.0
    control_group_salt: str = DEFAULTS.control_group_salt
    control_group_share: float = DEFAULTS.control_group_share
    letter_holdout_share: float = DEFAULTS.letter_holdout_share
    window_days: int = DEFAULTS.lift_attribution_window_days

    def receives_letter(self, customer_id: str) -> bool:
        return not (
            in_global_control_group(customer_id, self.control_group_salt, self.control_group_share)
            or in_letter_holdout(customer_id, WELCOME, self.control_group_salt, self.letter_holdout_share)
        )


def customer_id(number: int, customers: int) -> str:
    """The id landing_files gives customer `number` (its id width: at least 6 digits)."""
    return f"C{number:0{max(6, len(str(customers)))}d}"


def nudge_first_purchases(
    effect: LetterEffect | None,
    rng: np.random.Generator,
    numbers: np.ndarray,
    customers: int,
    consent: np.ndarray,
    buyer: np.ndarray,
    delay: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(buyer, delay) after the letter: nudged recipients buy first 1..window days after registering.

    `numbers` are the chunk's customer numbers, `buyer` indexes into them, `delay` is each buyer's
    first purchase in days after registration. Draws come from `rng`, a stream of their own, so a
    shop without an effect is the same shop.
    """
    if effect is None or effect.extra_probability <= 0:
        return buyer, delay
    draw = rng.random(numbers.size)
    nudge_day = rng.integers(1, effect.window_days + 1, numbers.size)
    first_delay = np.full(numbers.size, -1)
    first_delay[buyer] = delay
    bought_anyway = (first_delay >= 0) & (first_delay <= effect.window_days)
    candidates = np.flatnonzero(consent & ~bought_anyway & (draw < effect.extra_probability))
    nudged = [index for index in candidates if effect.receives_letter(customer_id(int(numbers[index]), customers))]
    first_delay[nudged] = nudge_day[nudged]
    new_buyer = np.flatnonzero(first_delay >= 0)
    return new_buyer, first_delay[new_buyer]


def replay_letter_days(connection, first_day: dt.date, last_day: dt.date, settings: LifecycleSettings) -> int:
    """Build the model as of each day and record its letters in the ledger as a dry-run push would.

    Held-out letters become `held_out` through the push's own hook; the others `dry_run`. Nothing is
    sent and no suppression is pulled: run it on a copy of the warehouse. Returns letters recorded.
    """
    from lifecycle_assets.activation import holdout, ledger
    from lifecycle_assets.activation.letters import sendable_letters
    from lifecycle_assets.models.sql_models import build_all

    ledger.ensure_schema(connection)
    recorded = 0
    day = first_day
    while day <= last_day:
        build_all(connection, settings.model_copy(update={"as_of": day.isoformat()}))
        recorded += ledger.plan_new_letters(connection)
        to_send = [letter.letter_key for letter in holdout.hold_out_letters(connection, sendable_letters(connection))]
        ledger.mark_dry_run(connection, ledger.claim(connection, to_send, f"replay-{day}"))
        day += dt.timedelta(days=1)
    return recorded


def plant_letter_effect(connection, letter_type: str, extra_probability: float, window_days: int, salt: str = "planted") -> int:
    """Land completed orders for a share of the customers the ledger shows were sent `letter_type`.

    The demo's way to plant an effect on a replayed copy, where the ledger knows who got the letter:
    of the sent letters whose customer completed no order in the window, a share `extra_probability`
    (chosen by the same kind of md5 bucket as the control groups, so it is deterministic) gets one
    order on a day of the window, of the shop's average completed order amount. Held-out customers
    get none. Returns the orders landed.
    """
    connection.execute(
        """
        insert into raw.orders by name
        with average as (select avg(total_amount) as amount from raw.orders where status = 'completed'),
        open_letters as (
            select letter_key, customer_id, as_of,
                   ('0x' || left(md5(letter_key || ':' || $salt), 8))::ubigint % 10000 as bucket,
                   1 + ('0x' || left(md5(letter_key || ':day:' || $salt), 8))::ubigint % $window_days as day_after
            from activation.send_ledger as ledger
            where template_name = $letter_type and state in ('accepted', 'dry_run')
              and not exists (
                  select 1 from raw.orders as orders
                  where orders.customer_id = ledger.customer_id and orders.status = 'completed'
                    and orders.ordered_at::date between ledger.as_of + 1 and ledger.as_of + $window_days
              )
        )
        select 'PLANTED-' || letter_key as order_id, customer_id,
               (as_of + day_after::integer)::timestamp + interval 14 hour as ordered_at,
               'completed' as status, (select amount from average) as total_amount,
               as_of + day_after::integer as _landing_date, 'planted/letter_effect' as _source_file,
               row_number() over (order by letter_key) as _row_number, now() at time zone 'UTC' as _ingested_at
        from open_letters
        where bucket < round($share * 10000)
        """,
        {"salt": salt, "window_days": window_days, "letter_type": letter_type, "share": extra_probability},
    )
    return connection.execute("select count(*) from raw.orders where _source_file = 'planted/letter_effect'").fetchone()[0]
