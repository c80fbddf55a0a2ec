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
