"""The lifecycle rules and the as-of date, in one resource so an operator changes them in one place.

Every field reaches the SQL models as a bound DuckDB parameter of the same name (`$as_of`,
`$departing_days`, ...); a model only receives the parameters its SQL mentions.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
from pydantic import Field

from lifecycle_assets.ingest.contract import ENTITIES

# The raw tables the models read: the contract's entities, in its order (ingest -> models, one way).
RAW_ENTITIES = tuple(ENTITIES)


class LifecycleSettings(dg.ConfigurableResource):
    """As-of date and the documented, configurable rules of docs/lifecycle_model.md."""

    as_of: str = Field(
        default="",
        description="Build the lifecycle as of this day (YYYY-MM-DD). Empty: the latest landing day in raw.*.",
    )
    departing_days: int = 90
    # The lapse model (lifecycle_assets/models/lapse.py): P(buy within lapse_horizon_days), fitted on
    # the shop's own history; a shop with fewer buyers or days of orders falls back to departing_days.
    lapse_horizon_days: int = 90
    lapse_min_buyers: int = 500
    lapse_min_history_days: int = 180
    lapse_fit_sample: int = 100_000  # buyers sampled to fit (BG/NBD, classifier); every buyer is scored
    returned_window_days: int = 30
    # The backtests (marts.lapse_backtest, marts.recommendation_backtest) judge as of the last day of a grid of this
    # many days (Mondays for 7) and show their stored figures while nothing they read changed (models/backtest_inputs.py).
    backtest_every_days: int = Field(default=7, ge=1, description="The backtests judge as of the latest day of a grid of "
                                     "this many days (7: Mondays; 1: every as-of day), again when what they read changed.")
    rhythm_min_purchase_days: int = 3
    rhythm_overdue_multiple: float = 2.0
    rhythm_min_departing_days: int = 30
    abandoned_cart_window_hours: int = 4
    abandoned_browse_window_hours: int = 24
    letter_catch_up_days: int = 2
    welcome_bonus_amount: float = 10.0
    welcome_bonus_valid_days: int = 7
    post_purchase_bonus_amount: float = 5.0
    winback_90_bonus_amount: float = 10.0
    winback_180_bonus_amount: float = 20.0
    winback_360_bonus_amount: float = 30.0
    welcome_back_bonus_amount: float = 15.0
    birthday_bonus_amount: float = 10.0
    bonus_valid_days: int = 14
    rebuy_min_observations: int = 3
    recommendations_count: int = 3
    # Control groups and lift (docs/activation.md "Control groups and lift"): membership is a hash of the
    # customer id (and letter type) with the salt, so it is stable across days; a new salt draws new groups.
    control_group_salt: str = "lifecycle-control"
    control_group_share: float = Field(default=0.05, ge=0, le=1, description="Global control group: gets no marketing letter.")
    letter_holdout_share: float = Field(default=0.10, ge=0, le=1, description="Per letter type: letters held out, not sent.")
    letter_holdout_shares: dict[str, float] = Field(
        default_factory=dict, description="Holdout share per letter type (template name); others use letter_holdout_share."
    )
    control_group_leaves_audiences: bool = Field(
        default=True, description="Leave the global control group out of marts.audiences (newsletter and segment lists)."
    )
    lift_attribution_window_days: int = 7
    lift_min_letters_per_group: int = 100
    # The active buyers' series (docs/lifecycle_model.md): a letter every N days after the last purchase.
    active_buyers_cadence_days: int = 30  # 0 turns the series off
    active_champions_bonus_amount: float = 10.0  # the loyalty bonus with champions' early access
    active_at_risk_bonus_amount: float = 15.0  # the bonus of at-risk customers' sale invitation
    new_arrivals_days: int = 30  # a product is a new arrival this many days after it first landed
    # The site's recommendations and checkout cross-sell (docs/recommendations.md).
    recommendations_site_count: int = 10
    recommendations_interest_days: int = 90
    recommendations_learn_every_days: int = Field(
        default=7, ge=1, description="The site's recommendations learn from the whole shop (popularity, the chance of a "
        "cart or view, the pairs) as of the latest day of a grid of this many days (7: Mondays; 1: every as-of day), from "
        "what had landed by then; each visitor's own purchases and looks count as of the as-of day.")
    cross_sell_count: int = 5
    cross_sell_min_orders: int = 2
    cross_sell_prior_orders: int = 200

    def sql_parameters(self, as_of: dt.date) -> dict[str, object]:
        """Every rule as a named SQL parameter, with the resolved as-of date."""
        parameters: dict[str, object] = {
            name: getattr(self, name) for name in type(self).model_fields if name != "as_of"
        }
        # DuckDB binds no empty map: a per-letter-type table reaches SQL as JSON.
        parameters["letter_holdout_shares"] = json.dumps(self.letter_holdout_shares)
        parameters["as_of"] = as_of
        return parameters

    def resolve_as_of(self, connection) -> dt.date:
        """The configured day, else the latest landing day found in raw.* (a past sample shop builds as of its own last day)."""
        if self.as_of:
            try:
                return dt.date.fromisoformat(self.as_of)
            except ValueError as error:
                raise ValueError(f"lifecycle_settings.as_of must be a day YYYY-MM-DD, got {self.as_of!r}") from error
        existing = {
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'"
            ).fetchall()
        }
        tables = [f"raw.{entity}" for entity in RAW_ENTITIES if entity in existing]
        if not tables:
            raise ValueError("No as_of configured and no raw.* table to take the latest landing day from.")
        latest_per_table = " union all ".join(f"select max(_landing_date) as day from {table}" for table in tables)
        latest = connection.execute(f"select max(day) from ({latest_per_table})").fetchone()[0]
        if latest is None:
            raise ValueError("No as_of configured and raw.* holds no rows to take the latest landing day from.")
        return latest
