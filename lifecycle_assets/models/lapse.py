"""The lapse model: for every buyer, P(buy within the next H days) and the expected next purchase day.

Fitted on the shop's own history at every build, in two layers (docs/lifecycle_model.md section 10):

1. **BG/NBD** (Fader, Hardie & Lee 2005) on each buyer's repeat purchase days, span and age. We fit
   its published log-likelihood with ``scipy.optimize`` ourselves: the reference package
   ``lifetimes`` is unmaintained since 2020 (it still imports with our pins, nothing says it will
   with the next numpy or pandas), and the model is four parameters and one formula;
   ``benchmarks/lapse_model_comparison.py`` shows our fit reproduces the published estimates.
   It gives P(alive), P(buy within H) and the expected waiting time to the next purchase.
2. **A scikit-learn logistic regression** trained on the shop's own past: features of every buyer as
   of ``as_of - H`` (the BG/NBD probability among them) against whether they bought in the H days
   that followed. It corrects what BG/NBD's assumptions miss (recent activity, spend), and the
   same past split chooses the departing threshold: the one with the best balanced accuracy.

A shop too small or too young for that (fewer than ``lapse_min_buyers`` buyers, fewer than
``lapse_min_history_days`` days of orders, or a past split with one outcome only) falls back to the
fixed rule: departing after ``departing_days`` (90) days without a purchase. The outcome says
which rule is in force and why.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from lifecycle_assets.models.settings import LifecycleSettings

LAPSE_SCORES_TABLE = "marts.customer_lapse_scores"
# The tables the lapse model reads: it runs after them and before the models that read its table.
LAPSE_READS = (("intermediate", "purchase_days"),)
MODEL_RULE = "model"
FEATURES = (
    "log_repeat_days",
    "log_days_since_last",
    "log_age_days",
    "log_amount_per_day",
    "recent_purchase_days",
    "overdue_ratio",
    "bgnbd_p_buy",
    "log_bgnbd_p_buy",
)
MAX_WAIT_DAYS = 3_650


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters in days: purchase rate ~ Gamma(r, alpha), dropout after a purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x, t_x, age):
        """P(still a customer at the end of their observed period); x repeat purchase days, t_x and age in days."""
        ratio = np.where(
            x > 0,
            self.a / (self.b + np.maximum(x, 1) - 1) * ((self.alpha + age) / (self.alpha + t_x)) ** (self.r + x),
            0.0,
        )
        return 1.0 / (1.0 + ratio)

    def p_buy_within(self, x, t_x, age, horizon_days: int):
        """P(at least one purchase in the next horizon_days): alive, and the Poisson rate gives one.

        Dropout only happens right after a purchase, so an alive customer with rate lambda makes no
        purchase in h days with probability exp(-lambda h); over the posterior Gamma(r + x, alpha + T)
        that is ((alpha + T) / (alpha + T + h)) ** (r + x).
        """
        no_purchase = ((self.alpha + age) / (self.alpha + age + horizon_days)) ** (self.r + x)
        return self.p_alive(x, t_x, age) * (1.0 - no_purchase)

    def median_wait_days(self, x, t_x):
        """Median days from the last purchase to the next one, for a customer alive, as known on the last purchase day."""
        shape = self.r + x
        return (self.alpha + t_x) * (2.0 ** (1.0 / shape) - 1.0)


def _negative_log_likelihood(log_parameters, x_values, x_index, t_x, age, weight) -> tuple[float, np.ndarray]:
    """Minus the BG/NBD log-likelihood and its gradient in the log-parameters (gamma terms once per distinct x)."""
    from scipy.special import betaln, digamma, gammaln  # scipy is imported where used: it slows every process's start

    r, alpha, a, b = np.exp(log_parameters)
    per_x = gammaln(r + x_values) - gammaln(r) + betaln(a, b + x_values) - betaln(a, b)
    x = x_values[x_index]
    shape = r + x
    log_alive_span, log_span = np.log(alpha + age), np.log(alpha + t_x)
    alive = -shape * log_alive_span
    repeat = x > 0
    dropped = np.where(repeat, np.log(a) - np.log(b + np.maximum(x, 1) - 1) - shape * log_span, -np.inf)
    log_likelihood = per_x[x_index] + r * np.log(alpha) + np.logaddexp(alive, dropped)
    # share of the likelihood from "still alive at T" (1 where there is no repeat purchase)
    alive_share = np.exp(alive - np.logaddexp(alive, dropped))
    dropped_share = 1.0 - alive_share
    d_r = (digamma(r + x_values) - digamma(r))[x_index] + np.log(alpha) - alive_share * log_alive_span - dropped_share * log_span
    d_alpha = r / alpha - shape * (alive_share / (alpha + age) + dropped_share / (alpha + t_x))
    d_a = (digamma(a + b) - digamma(a + b + x_values))[x_index] + dropped_share / a
    d_b = (digamma(b + x_values) - digamma(a + b + x_values) - digamma(b) + digamma(a + b))[x_index] - np.where(
        repeat, dropped_share / (b + np.maximum(x, 1) - 1), 0.0
    )
    # (weight * v).sum(), not weight @ v: a BLAS dot product fights for the cores of a busy machine.
    gradient = np.array([(weight * d).sum() * value for d, value in ((d_r, r), (d_alpha, alpha), (d_a, a), (d_b, b))])
    return -float((weight * log_likelihood).sum()), -gradient


def fit_bgnbd(x, t_x, age, sample_size: int = 100_000, seed: int = 0) -> BgNbd:
    """Maximum likelihood on (a random sample of) the buyers, each distinct (x, t_x, T) once with its count.

    Four parameters are pinned down long before 100k buyers; the sample keeps a 1M-buyer fit fast.
    """
    from scipy.optimize import minimize

    x, t_x, age = (np.asarray(values, dtype=float) for values in (x, t_x, age))
    if len(x) > sample_size:
        chosen = np.random.default_rng(seed).choice(len(x), size=sample_size, replace=False)
        x, t_x, age = x[chosen], t_x[chosen], age[chosen]
    triples, counts = np.unique(np.column_stack([x, t_x, age]), axis=0, return_counts=True)
    x_values, x_index = np.unique(triples[:, 0], return_inverse=True)
    start = np.log([1.0, max(float(np.mean(age)), 1.0), 1.0, 1.0])
    result = minimize(
        _negative_log_likelihood,
        start,
        args=(x_values, x_index, triples[:, 1], triples[:, 2], counts.astype(float)),
        method="L-BFGS-B",
        jac=True,
        bounds=[(-12.0, 12.0)] * 4,
    )
    return BgNbd(*(float(value) for value in np.exp(result.x)))


@dataclass
class Buyers:
    """Every buyer's purchase history summarised as of a cutoff day (numpy columns, one row per buyer)."""

    customer_id: np.ndarray
    repeat_days: np.ndarray
    span_days: np.ndarray
    age_days: np.ndarray
    days_since_last: np.ndarray
    last_purchase_on: np.ndarray
    amount_per_day: np.ndarray
    recent_purchase_days: np.ndarray
    bought_after: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.customer_id)

    def take(self, rows: np.ndarray) -> Buyers:
        return Buyers(**{name: None if value is None else value[rows] for name, value in vars(self).items()})


def read_buyers(connection, cutoff: dt.date, horizon_days: int, outcome_until: dt.date | None = None) -> Buyers:
    """Buyers with a purchase day on or before the cutoff; with outcome_until, whether they bought after it."""
    columns = connection.execute(
        """
        select
            customer_id,
            count(*) filter (where purchase_on <= $cutoff) - 1 as repeat_days,
            max(purchase_on) filter (where purchase_on <= $cutoff) - min(purchase_on) as span_days,
            $cutoff::date - min(purchase_on) as age_days,
            $cutoff::date - max(purchase_on) filter (where purchase_on <= $cutoff) as days_since_last,
            max(purchase_on) filter (where purchase_on <= $cutoff) as last_purchase_on,
            coalesce(sum(amount_that_day) filter (where purchase_on <= $cutoff), 0)
                / count(*) filter (where purchase_on <= $cutoff) as amount_per_day,
            count(*) filter (where purchase_on <= $cutoff and purchase_on > $cutoff::date - $horizon::integer)
                as recent_purchase_days,
            coalesce(bool_or(purchase_on > $cutoff and purchase_on <= $outcome_until), false) as bought_after
        from intermediate.purchase_days
        group by customer_id
        having min(purchase_on) <= $cutoff
        order by customer_id
        """,
        {"cutoff": cutoff, "horizon": horizon_days, "outcome_until": outcome_until or cutoff},
    ).fetchnumpy()
    return Buyers(
        customer_id=np.asarray(columns["customer_id"], dtype=object),
        repeat_days=np.asarray(columns["repeat_days"], dtype=float),
        span_days=np.asarray(columns["span_days"], dtype=float),
        age_days=np.asarray(columns["age_days"], dtype=float),
        days_since_last=np.asarray(columns["days_since_last"], dtype=float),
        last_purchase_on=np.asarray(columns["last_purchase_on"]),
        amount_per_day=np.nan_to_num(np.asarray(columns["amount_per_day"], dtype=float)),
        recent_purchase_days=np.asarray(columns["recent_purchase_days"], dtype=float),
        bought_after=np.asarray(columns["bought_after"], dtype=bool) if outcome_until else None,
    )


def _features(buyers: Buyers, bgnbd: BgNbd, horizon_days: int) -> np.ndarray:
    p_buy = bgnbd.p_buy_within(buyers.repeat_days, buyers.span_days, buyers.age_days, horizon_days)
    typical_gap = np.where(buyers.repeat_days > 0, buyers.span_days / np.maximum(buyers.repeat_days, 1), np.nan)
    overdue_ratio = np.where(buyers.repeat_days > 0, buyers.days_since_last / (typical_gap + 1.0), -1.0)
    return np.column_stack(
        [
            np.log1p(buyers.repeat_days),
            np.log1p(buyers.days_since_last),
            np.log1p(buyers.age_days),
            np.log1p(np.maximum(buyers.amount_per_day, 0.0)),
            buyers.recent_purchase_days,
            overdue_ratio,
            p_buy,
            np.log(p_buy + 1e-9),
        ]
    )


@dataclass
class LapseOutcome:
    """What the lapse model did at one build: the rule in force, why, and the fitted numbers."""

    rule: str
    reason: str
    as_of: dt.date
    horizon_days: int
    buyers: int
    history_days: int
    lapse_threshold: float | None = None
    training_buyers: int = 0
    training_auc: float | None = None
    bgnbd: BgNbd | None = None
    seconds: float = 0.0
    figures: dict[str, float] = field(default_factory=dict)


def _fallback_reason(settings: LifecycleSettings, buyers: int, history_days: int) -> str | None:
    if buyers < settings.lapse_min_buyers:
        return f"{buyers} buyers, fewer than lapse_min_buyers = {settings.lapse_min_buyers}"
    if history_days < settings.lapse_min_history_days:
        return f"{history_days} days of orders, fewer than lapse_min_history_days = {settings.lapse_min_history_days}"
    return None


def score_buyers(connection, settings: LifecycleSettings, as_of: dt.date) -> tuple[dict[str, np.ndarray], LapseOutcome]:
    """Columns of marts.customer_lapse_scores (one row per buyer) and the outcome; reads intermediate.purchase_days."""
    started = time.perf_counter()
    horizon = settings.lapse_horizon_days
    buyers = read_buyers(connection, as_of, horizon)
    first_day = connection.execute("select min(purchase_on) from intermediate.purchase_days").fetchone()[0]
    history_days = (as_of - first_day).days if first_day else 0
    fixed_rule = f"fixed_{settings.departing_days}_days"
    outcome = LapseOutcome(fixed_rule, "", as_of, horizon, len(buyers), history_days)
    reason = _fallback_reason(settings, len(buyers), history_days)
    training = None
    if reason is None:
        split = as_of - dt.timedelta(days=horizon)
        training = read_buyers(connection, split, horizon, outcome_until=as_of)
        outcomes = set(training.bought_after.tolist())
        if len(training) < settings.lapse_min_buyers:
            reason = f"{len(training)} buyers at {split} (as_of - {horizon} days), fewer than lapse_min_buyers = {settings.lapse_min_buyers}"
        elif len(outcomes) < 2:
            reason = f"every buyer at {split} {'bought' if True in outcomes else 'did not buy'} in the {horizon} days after: nothing to learn from"
    if reason is not None:
        outcome.reason = reason
        days_since = buyers.days_since_last
        columns = {
            "customer_id": buyers.customer_id,
            "p_buy_within_horizon": np.full(len(buyers), np.nan),
            "p_alive": np.full(len(buyers), np.nan),
            "lapse_score": days_since / settings.departing_days,
            "expected_next_purchase_on": np.full(len(buyers), None, dtype=object),
            "is_departing": days_since >= settings.departing_days,
        }
        outcome.seconds = time.perf_counter() - started
        return columns, outcome

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, precision_score, recall_score, roc_auc_score, roc_curve
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sample, training_buyers = settings.lapse_fit_sample, len(training)
    past_bgnbd = fit_bgnbd(training.repeat_days, training.span_days, training.age_days, sample)
    # Eight coefficients and a threshold need no more than the sample either; every buyer is scored.
    if len(training) > sample:
        training = training.take(np.sort(np.random.default_rng(1).choice(len(training), size=sample, replace=False)))
    lapsed = ~training.bought_after
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    past_features = _features(training, past_bgnbd, horizon)
    classifier.fit(past_features, lapsed)
    past_scores = classifier.predict_proba(past_features)[:, 1]
    false_positive_rate, true_positive_rate, thresholds = roc_curve(lapsed, past_scores)
    best = int(np.argmax(true_positive_rate - false_positive_rate))  # = the best balanced accuracy
    lapse_threshold = float(min(thresholds[best], 1.0))

    bgnbd = fit_bgnbd(buyers.repeat_days, buyers.span_days, buyers.age_days, settings.lapse_fit_sample)
    lapse_score = classifier.predict_proba(_features(buyers, bgnbd, horizon))[:, 1]
    wait = np.minimum(bgnbd.median_wait_days(buyers.repeat_days, buyers.span_days), MAX_WAIT_DAYS)
    expected = buyers.last_purchase_on.astype("datetime64[D]") + np.round(wait).astype("timedelta64[D]")
    columns = {
        "customer_id": buyers.customer_id,
        "p_buy_within_horizon": 1.0 - lapse_score,
        "p_alive": bgnbd.p_alive(buyers.repeat_days, buyers.span_days, buyers.age_days),
        "lapse_score": lapse_score,
        "expected_next_purchase_on": expected,
        "is_departing": lapse_score >= lapse_threshold,
    }
    outcome.rule = MODEL_RULE
    outcome.reason = (
        f"{len(buyers)} buyers and {history_days} days of orders; threshold chosen on the {training_buyers} buyers "
        f"of {as_of - dt.timedelta(days=horizon)} and what they did in the {horizon} days after"
    )
    outcome.lapse_threshold = lapse_threshold
    outcome.training_buyers = training_buyers
    outcome.training_auc = float(roc_auc_score(lapsed, past_scores))
    # How good the flag itself is on that split, as the backtest reports it on a past day.
    past_flag = past_scores >= lapse_threshold
    outcome.figures = {
        "training_lapse_share": float(lapsed.mean()),
        "training_flagged_share": float(past_flag.mean()),
        "training_balanced_accuracy": float(balanced_accuracy_score(lapsed, past_flag)),
        "training_precision": float(precision_score(lapsed, past_flag, zero_division=0.0)),
        "training_recall": float(recall_score(lapsed, past_flag, zero_division=0.0)),
    }
    outcome.bgnbd = bgnbd
    outcome.seconds = time.perf_counter() - started
    return columns, outcome


def write_lapse_scores(connection, settings: LifecycleSettings, as_of: dt.date) -> LapseOutcome:
    """Fit, score every buyer and (re)write marts.customer_lapse_scores."""
    columns, outcome = score_buyers(connection, settings, as_of)
    frame = pa.table(
        {
            "customer_id": pa.array(columns["customer_id"].tolist(), pa.string()),
            "p_buy_within_horizon": pa.array(columns["p_buy_within_horizon"], pa.float64(), from_pandas=True),
            "p_alive": pa.array(columns["p_alive"], pa.float64(), from_pandas=True),
            "lapse_score": pa.array(columns["lapse_score"], pa.float64()),
            "expected_next_purchase_on": pa.array(columns["expected_next_purchase_on"], pa.date32()),
            "is_departing": pa.array(columns["is_departing"], pa.bool_()),
        }
    )
    connection.execute("create schema if not exists marts")
    connection.register("lapse_scores_frame", frame)
    try:
        connection.execute(
            f"""
            create or replace table {LAPSE_SCORES_TABLE} as
            select
                *,
                ?::varchar as departing_rule,
                ?::varchar as departing_rule_reason,
                ?::integer as horizon_days,
                ?::date as as_of
            from lapse_scores_frame
            """,
            [outcome.rule, outcome.reason, outcome.horizon_days, as_of],
        )
    finally:
        connection.unregister("lapse_scores_frame")
    return outcome


def outcome_metadata(outcome: LapseOutcome) -> dict[str, object]:
    """The rule in force and why, with the fitted numbers (numeric entries plot over builds in the UI)."""
    metadata: dict[str, object] = {
        "departing_rule": dg.MetadataValue.text(outcome.rule),
        "departing_rule_reason": dg.MetadataValue.text(outcome.reason),
        "as_of": dg.MetadataValue.text(outcome.as_of.isoformat()),
        "horizon_days": dg.MetadataValue.int(outcome.horizon_days),
        "buyers": dg.MetadataValue.int(outcome.buyers),
        "history_days": dg.MetadataValue.int(outcome.history_days),
        "fit_seconds": dg.MetadataValue.float(round(outcome.seconds, 3)),
    }
    if outcome.rule == MODEL_RULE:
        metadata["lapse_threshold"] = dg.MetadataValue.float(outcome.lapse_threshold)
        metadata["training_buyers"] = dg.MetadataValue.int(outcome.training_buyers)
        metadata["training_auc"] = dg.MetadataValue.float(outcome.training_auc)
        for name, value in outcome.figures.items():
            metadata[name] = dg.MetadataValue.float(round(value, 4))
        metadata["training_accuracy"] = dg.MetadataValue.md(training_accuracy_note(outcome))
        for name in ("r", "alpha", "a", "b"):
            metadata[f"bgnbd_{name}"] = dg.MetadataValue.float(getattr(outcome.bgnbd, name))
    return metadata


def training_accuracy_note(outcome: LapseOutcome) -> str:
    """The flag's accuracy at this build in one sentence an operator can read (and what it is not)."""
    figures = outcome.figures
    return (
        f"On the {outcome.training_buyers} buyers of the past split ({figures['training_lapse_share']:.1%} did not buy "
        f"in the {outcome.horizon_days} days after), the departing flag (lapse score >= {outcome.lapse_threshold:.3f}) "
        f"flags {figures['training_flagged_share']:.1%}: balanced accuracy {figures['training_balanced_accuracy']:.3f}, "
        f"precision {figures['training_precision']:.3f}, recall {figures['training_recall']:.3f}, AUC "
        f"{outcome.training_auc:.3f}. Measured on the split the model was fitted on (optimistic); "
        "marts/lapse_backtest judges it out of time at every build, on rows landed by then only."
    )


@dg.asset(
    key=LAPSE_SCORES_TABLE.split("."),
    deps=[dg.AssetKey(list(table)) for table in LAPSE_READS],
    group_name="lifecycle",
    kinds={"duckdb", "python", "scikitlearn"},
    owners=["team:data"],
    description="One row per buyer: P(buy within lapse_horizon_days), P(alive), the lapse score, the expected next "
    "purchase and whether they are departing, from the lapse model fitted on the shop's own history at this build "
    "(or the fixed-days rule in a small or young shop; metadata says which and why).",
)
def customer_lapse_scores(duckdb: DuckDBResource, lifecycle_settings: LifecycleSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as connection:
        as_of = lifecycle_settings.resolve_as_of(connection)
        outcome = write_lapse_scores(connection, lifecycle_settings, as_of)
        departing = connection.execute(f"select count(*) filter (where is_departing) from {LAPSE_SCORES_TABLE}").fetchone()[0]
        metadata = outcome_metadata(outcome)
        metadata["dagster/row_count"] = dg.MetadataValue.int(outcome.buyers)
        metadata["departing"] = dg.MetadataValue.int(int(departing))
        return dg.MaterializeResult(metadata=metadata)
