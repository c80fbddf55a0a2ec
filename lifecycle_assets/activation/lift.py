"""The lift of every letter type: do customers who got the letter buy more than the held-out ones?

Reads the send ledger (who was sent a letter, who was held out: activation/holdout.py) and the
completed orders of staging.stg_orders. A letter counts once its attribution window has passed
(planned at least `lift_attribution_window_days` before the report's as-of day); it converted when
its customer completed an order in the window's days after the planned day. Held-out letters are
chosen by a hash, at random with respect to buying, so sent vs held out is a randomised comparison.

Statistics come from statsmodels (Newcombe's score interval and the score test for two independent
proportions, sound for rare conversions and small groups) and scipy (Welch's t for revenue per
recipient). The verdict reads the interval.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

import dagster as dg
from dagster_duckdb import DuckDBResource

from lifecycle_assets.activation import ledger
from lifecycle_assets.activation.holdout import HELD_OUT
from lifecycle_assets.metadata import markdown_table
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import known_values

LETTER_LIFT = dg.AssetKey(["activation", "letter_lift"])
SENDGRID_LETTERS = dg.AssetKey(["activation", "sendgrid_letters"])
STAGED_ORDERS = dg.AssetKey(["staging", "stg_orders"])
LIFT_TABLE = "activation.letter_lift"
ALL_LETTERS = "all letters"
CONFIDENCE = 0.95
# Letters that reached the customer's inbox (dry_run: the outbox of a demo without an API key stands in for it).
SENT_STATES = ("accepted", "dry_run")

# One row per letter type and group: how many letters, how many converted, revenue per letter (mean, variance).
OUTCOMES_SQL = f"""
with letters as (
    select letter_key, customer_id, template_name as letter_type, as_of as planned_on, state = '{HELD_OUT}' as held_out
    from activation.send_ledger
    where state in ('{HELD_OUT}', {", ".join(f"'{state}'" for state in SENT_STATES)})
      and as_of + $window_days <= $report_as_of
),
outcomes as (
    select
        letters.letter_key,
        any_value(letters.letter_type) as letter_type,
        any_value(letters.held_out) as held_out,
        count(orders.order_id) > 0 as converted,
        coalesce(sum(orders.total_amount), 0) as revenue
    from letters
    left join staging.stg_orders as orders
        on orders.customer_id = letters.customer_id
       and orders.is_purchase
       and orders.ordered_on > letters.planned_on
       and orders.ordered_on <= letters.planned_on + $window_days
    group by letters.letter_key
)
select
    coalesce(letter_type, '{ALL_LETTERS}') as letter_type,
    held_out,
    count(*) as letters,
    count(*) filter (where converted) as converted,
    avg(revenue) as revenue_mean,
    coalesce(var_samp(revenue), 0) as revenue_variance
from outcomes
group by grouping sets ((letter_type, held_out), (held_out))
"""


@dataclass
class Group:
    letters: int = 0
    converted: int = 0
    revenue_mean: float = 0.0
    revenue_variance: float = 0.0

    @property
    def conversion(self) -> float | None:
        return self.converted / self.letters if self.letters else None


@dataclass
class Lift:
    """The comparison for one letter type (or all letters); lifts are sent minus held out."""

    letter_type: str
    sent: int
    held_out: int
    sent_converted: int
    held_out_converted: int
    conversion_sent: float | None = None
    conversion_held_out: float | None = None
    lift_points: float | None = None  # percentage points
    lift_points_low: float | None = None
    lift_points_high: float | None = None
    relative_lift: float | None = None  # sent / held out - 1
    relative_lift_low: float | None = None
    relative_lift_high: float | None = None
    p_value: float | None = None
    revenue_per_recipient_sent: float | None = None
    revenue_per_recipient_held_out: float | None = None
    revenue_lift: float | None = None
    revenue_lift_low: float | None = None
    revenue_lift_high: float | None = None
    revenue_p_value: float | None = None
    verdict: str = ""


def compare(letter_type: str, sent: Group, held_out: Group, min_letters_per_group: int) -> Lift:
    """Conversion and revenue per recipient, sent vs held out, with 95% intervals and a plain-language verdict."""
    lift = Lift(letter_type, sent.letters, held_out.letters, sent.converted, held_out.converted)
    lift.conversion_sent, lift.conversion_held_out = sent.conversion, held_out.conversion
    if sent.letters:
        lift.revenue_per_recipient_sent = sent.revenue_mean
    if held_out.letters:
        lift.revenue_per_recipient_held_out = held_out.revenue_mean
    if min(sent.letters, held_out.letters) < max(min_letters_per_group, 2):
        lift.verdict = f"not enough data yet: {min_letters_per_group} sent and held out each needed"
        return lift
    if sent.converted + held_out.converted == 0:
        lift.verdict = "not enough data yet: no purchase in either group"
        return lift
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    counts = (sent.converted, sent.letters, held_out.converted, held_out.letters)
    # Newcombe's hybrid score interval: closed form, sound with 0 or all conversions in a group (statsmodels'
    # score-interval inversion fails to bracket a root on counts like 3/314 vs 1/53).
    low, high = confint_proportions_2indep(*counts, method="newcomb", compare="diff", alpha=1 - CONFIDENCE)
    lift.lift_points = 100 * (sent.conversion - held_out.conversion)
    lift.lift_points_low, lift.lift_points_high = 100 * float(low), 100 * float(high)
    p_value = float(test_proportions_2indep(*counts, method="score", compare="diff").pvalue)
    lift.p_value = p_value if math.isfinite(p_value) else None
    if held_out.converted and sent.converted:
        ratio_low, ratio_high = confint_proportions_2indep(*counts, method="log-adjusted", compare="ratio", alpha=1 - CONFIDENCE)
        lift.relative_lift = sent.conversion / held_out.conversion - 1
        lift.relative_lift_low, lift.relative_lift_high = float(ratio_low) - 1, float(ratio_high) - 1
    _revenue_lift(lift, sent, held_out)
    lift.verdict = _verdict(lift)
    return lift


def _revenue_lift(lift: Lift, sent: Group, held_out: Group) -> None:
    """Welch's t on revenue per letter, from each group's mean and variance (the letters never leave DuckDB)."""
    from scipy import stats

    standard_errors = (sent.revenue_variance / sent.letters, held_out.revenue_variance / held_out.letters)
    if sum(standard_errors) == 0:
        return
    lift.revenue_lift = sent.revenue_mean - held_out.revenue_mean
    result = stats.ttest_ind_from_stats(
        sent.revenue_mean, math.sqrt(sent.revenue_variance), sent.letters,
        held_out.revenue_mean, math.sqrt(held_out.revenue_variance), held_out.letters,
        equal_var=False,
    )
    lift.revenue_p_value = float(result.pvalue)
    # Welch-Satterthwaite degrees of freedom: the ones ttest_ind_from_stats tested with.
    degrees = sum(standard_errors) ** 2 / sum(error**2 / (n - 1) for error, n in zip(standard_errors, (sent.letters, held_out.letters)))
    margin = float(stats.t.ppf(0.5 + CONFIDENCE / 2, degrees)) * math.sqrt(sum(standard_errors))
    lift.revenue_lift_low, lift.revenue_lift_high = lift.revenue_lift - margin, lift.revenue_lift + margin


def _verdict(lift: Lift) -> str:
    low, high = lift.lift_points_low, lift.lift_points_high
    if low <= 0 <= high:
        return f"no measurable effect: conversion lift between {low:+.1f} and {high:+.1f} points"
    if low > 0:
        return f"lifts conversion by {low:.1f} to {high:.1f} points"
    return f"lowers conversion by {-high:.1f} to {-low:.1f} points"


def letter_lift_report(connection, report_as_of: dt.date | None, window_days: int, min_letters_per_group: int) -> list[Lift]:
    """One Lift per known letter type (no letters: not enough data yet) and for all letters together, last.

    No `report_as_of` (no orders built yet): every row says not enough data yet.
    """
    ledger.ensure_schema(connection)
    groups: dict[tuple[str, bool], Group] = {}
    if report_as_of is not None:
        for letter_type, held_out, letters, converted, mean, variance in connection.execute(
            OUTCOMES_SQL, {"window_days": window_days, "report_as_of": report_as_of}
        ).fetchall():
            groups[(letter_type, held_out)] = Group(letters, converted, float(mean or 0), float(variance or 0))
    seen = {letter_type for letter_type, _ in groups if letter_type != ALL_LETTERS}
    letter_types = [*known_values()["template_name"], *sorted(seen - set(known_values()["template_name"])), ALL_LETTERS]
    return [
        compare(letter_type, groups.get((letter_type, False), Group()), groups.get((letter_type, True), Group()), min_letters_per_group)
        for letter_type in letter_types
    ]


def _table_exists(connection, schema: str, table: str) -> bool:
    return bool(connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
    ).fetchone()[0])


def _number(value: float | None, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def _interval(value: float | None, low: float | None, high: float | None, pattern: str) -> str:
    if value is None:
        return "-"
    return f"{format(value, pattern)} ({format(low, pattern)} to {format(high, pattern)})" if low is not None else format(value, pattern)


def lift_markdown(lifts: list[Lift]) -> str:
    header = ["letter type", "sent", "held out", "conversion sent", "conversion held out", "lift, points (95% CI)",
              "relative lift (95% CI)", "p-value", "revenue/recipient sent", "revenue/recipient held out",
              "revenue lift (95% CI)", "verdict"]
    rows = [
        (
            lift.letter_type, lift.sent, lift.held_out,
            _number(lift.conversion_sent, ".1%"), _number(lift.conversion_held_out, ".1%"),
            _interval(lift.lift_points, lift.lift_points_low, lift.lift_points_high, "+.1f"),
            _interval(lift.relative_lift, lift.relative_lift_low, lift.relative_lift_high, "+.0%"),
            _number(lift.p_value, ".3g"),
            _number(lift.revenue_per_recipient_sent, ".2f"), _number(lift.revenue_per_recipient_held_out, ".2f"),
            _interval(lift.revenue_lift, lift.revenue_lift_low, lift.revenue_lift_high, "+.2f"),
            lift.verdict,
        )
        for lift in lifts
    ]
    return markdown_table(header, rows)


def write_lift_table(connection, lifts: list[Lift]) -> None:
    """activation.letter_lift: the report as a table, one row per letter type and one for all letters."""
    import pyarrow

    rows = pyarrow.Table.from_pylist([asdict(lift) for lift in lifts])
    connection.register("_letter_lift", rows)
    connection.execute(f"create or replace table {LIFT_TABLE} as select * from _letter_lift")
    connection.unregister("_letter_lift")


def lift_metadata(lifts: list[Lift]) -> dict[str, object]:
    """Counts for every letter type every time (a steady line per type); lift figures once there is enough data."""
    metadata: dict[str, object] = {}
    for lift in lifts:
        prefix = f"lift/{lift.letter_type.replace(' ', '_')}"
        metadata[f"{prefix}/sent"] = dg.MetadataValue.int(lift.sent)
        metadata[f"{prefix}/held_out"] = dg.MetadataValue.int(lift.held_out)
        for name in ("conversion_sent", "conversion_held_out", "lift_points", "lift_points_low", "lift_points_high",
                     "relative_lift", "p_value", "revenue_per_recipient_sent", "revenue_per_recipient_held_out", "revenue_lift"):
            value = getattr(lift, name)
            if value is not None and math.isfinite(value):
                metadata[f"{prefix}/{name}"] = dg.MetadataValue.float(float(value))
    return metadata


@dg.asset(
    key=LETTER_LIFT,
    deps=[SENDGRID_LETTERS, STAGED_ORDERS],
    group_name="activation",
    kinds={"duckdb", "python"},
    owners=["team:lifecycle-marketing"],
)
def letter_lift(duckdb: DuckDBResource, lifecycle_settings: LifecycleSettings) -> dg.MaterializeResult:
    """Per letter type and overall: do recipients buy more than the held-out customers, by how much, and is it real?

    Conversion and revenue per recipient within the attribution window, sent vs held out, with 95% intervals,
    a p-value and a verdict; letters count once their window has passed.
    """
    window = lifecycle_settings.lift_attribution_window_days
    with duckdb.get_connection() as connection:
        # Before the first build there are no orders to judge by (a push of hand-made marts, say).
        as_of = lifecycle_settings.resolve_as_of(connection) if _table_exists(connection, "staging", "stg_orders") else None
        lifts = letter_lift_report(connection, as_of, window, lifecycle_settings.lift_min_letters_per_group)
        write_lift_table(connection, lifts)
    overall = lifts[-1]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(lifts),
            "as_of": as_of.isoformat() if as_of else "no orders built yet (staging.stg_orders)",
            "letters_planned_up_to": (as_of - dt.timedelta(days=window)).isoformat() if as_of else "-",
            "attribution_window_days": window,
            "verdict": overall.verdict,
            "lift": dg.MetadataValue.md(lift_markdown(lifts)),
            **lift_metadata(lifts),
        }
    )
