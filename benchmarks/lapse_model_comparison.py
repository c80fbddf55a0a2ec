"""Which lapse model, measured on the real CDNOW log (docs/lifecycle_model.md section 10).

    .venv/bin/python benchmarks/lapse_model_comparison.py [--calibrate-to 1997-12-31] [--judge-days 181]

1. Our BG/NBD fit (scipy, lifecycle_assets/models/lapse.py) on the 2,357-customer CDNOW sample in
   weeks that ships with ``lifetimes``, against the estimates published by Fader, Hardie & Lee
   (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, log-likelihood -9582.4.
2. On the full log calibrated to the day and judged on "no purchase in the next N days": AUC and,
   with the threshold the past split (calibration minus N days) chose, balanced accuracy and flagged
   share of (a) BG/NBD expected purchases in the window < 0.5 (the issue's lifetimes detector),
   (b) BG/NBD P(buy in the window), (c) a logistic regression on recency/frequency/age/spend alone,
   (d) what the project uses: the logistic regression with the BG/NBD probability among its features.
Reads the CDNOW files directly (no ingest); the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import duckdb
import numpy as np
from scipy.special import hyp2f1
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lifecycle_assets.sample_data.cdnow import default_source
from lifecycle_assets.models.lapse import BgNbd, _features, _negative_log_likelihood, fit_bgnbd, read_buyers, score_buyers
from lifecycle_assets.models.settings import LifecycleSettings

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4}


def expected_purchases(model: BgNbd, x, t_x, age, window):
    """BG/NBD E[purchases in the next `window` days] (Fader, Hardie & Lee 2005, equation 10)."""
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    term = 1 - ((alpha + age) / (alpha + age + window)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, window / (alpha + age + window)
    )
    return (a + b + x - 1) / (a - 1) * term * model.p_alive(x, t_x, age)


def fit_published_sample() -> dict[str, float]:
    summary = default_source().parent / "cdnow_customers_summary.csv"
    rows = np.genfromtxt(summary, delimiter=",", names=True)
    x, t_x, age = rows["frequency"], rows["recency"], rows["T"]
    started = time.perf_counter()
    model = fit_bgnbd(x, t_x, age)
    seconds = time.perf_counter() - started
    x_values, x_index = np.unique(x, return_inverse=True)
    log_likelihood = -_negative_log_likelihood(
        np.log([model.r, model.alpha, model.a, model.b]), x_values, x_index, t_x, age, np.ones_like(x)
    )[0]
    return {**{k: round(v, 3) for k, v in vars(model).items()}, "log_likelihood": round(log_likelihood, 1), "seconds": round(seconds, 3)}


def judged(lapsed, score, past_lapsed, past_score) -> dict[str, float]:
    false_positive, true_positive, thresholds = roc_curve(past_lapsed, past_score)
    threshold = thresholds[int(np.argmax(true_positive - false_positive))]
    flag = score >= threshold
    return {
        "auc": round(float(roc_auc_score(lapsed, score)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(lapsed, flag)), 4),
        "flagged_share": round(float(flag.mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate-to", type=dt.date.fromisoformat, default=dt.date(1997, 12, 31))
    parser.add_argument("--judge-days", type=int, default=181)
    args = parser.parse_args()
    calibration, window = args.calibrate_to, args.judge_days
    split = calibration - dt.timedelta(days=window)

    figures: dict[str, object] = {"published_sample_fit": fit_published_sample(), "published": PUBLISHED}
    connection = duckdb.connect()
    lines = [line.split() for line in default_source().read_text(encoding="ascii").splitlines()[1:] if line.strip()]
    connection.execute("create schema intermediate")
    connection.execute(
        "create table intermediate.purchase_days (customer_id varchar, purchase_on date, amount_that_day double)"
    )
    connection.executemany(
        "insert into intermediate.purchase_days values (?, strptime(?, '%Y%m%d')::date, ?)",
        [(cid, day, float(value)) for cid, day, _, value in lines],
    )
    connection.execute(
        "create or replace table intermediate.purchase_days as "
        "select customer_id, purchase_on, sum(amount_that_day) as amount_that_day from intermediate.purchase_days group by all"
    )
    now = read_buyers(connection, calibration, window, outcome_until=calibration + dt.timedelta(days=window))
    past = read_buyers(connection, split, window, outcome_until=calibration)
    lapsed, past_lapsed = ~now.bought_after, ~past.bought_after
    model_now = fit_bgnbd(now.repeat_days, now.span_days, now.age_days)
    model_past = fit_bgnbd(past.repeat_days, past.span_days, past.age_days)

    def bgnbd(model, buyers, kind):
        if kind == "expected":
            return -expected_purchases(model, buyers.repeat_days, buyers.span_days, buyers.age_days, window)
        return -model.p_buy_within(buyers.repeat_days, buyers.span_days, buyers.age_days, window)

    detectors = {}
    expected_now = -bgnbd(model_now, now, "expected")
    flag = expected_now < 0.5
    detectors["bgnbd_expected_purchases_below_0.5"] = {
        "auc": round(float(roc_auc_score(lapsed, -expected_now)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(lapsed, flag)), 4),
        "flagged_share": round(float(flag.mean()), 4),
    }
    detectors["bgnbd_p_buy"] = judged(lapsed, bgnbd(model_now, now, "p"), past_lapsed, bgnbd(model_past, past, "p"))
    rfm_only = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000))
    rfm_columns = slice(0, 6)
    rfm_only.fit(_features(past, model_past, window)[:, rfm_columns], past_lapsed)
    detectors["logistic_regression_rfm_only"] = judged(
        lapsed,
        rfm_only.predict_proba(_features(now, model_now, window)[:, rfm_columns])[:, 1],
        past_lapsed,
        rfm_only.predict_proba(_features(past, model_past, window)[:, rfm_columns])[:, 1],
    )
    columns, outcome = score_buyers(connection, LifecycleSettings(lapse_horizon_days=window), calibration)
    score = columns["lapse_score"]
    detectors["project_logistic_regression_with_bgnbd"] = {
        "auc": round(float(roc_auc_score(lapsed, score)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(lapsed, columns["is_departing"])), 4),
        "flagged_share": round(float(columns["is_departing"].mean()), 4),
        "fit_and_score_seconds": round(outcome.seconds, 3),
    }
    figures.update(
        calibrated_to=calibration.isoformat(),
        judge_days=window,
        buyers=len(now),
        lapse_share=round(float(lapsed.mean()), 4),
        bgnbd_days={k: round(v, 4) for k, v in vars(model_now).items()},
        detectors=detectors,
    )
    print("| detector | flagged | balanced accuracy | AUC |\n|---|---|---|---|")
    for name, values in detectors.items():
        print(f"| {name} | {values['flagged_share']:.3f} | {values['balanced_accuracy']:.3f} | {values['auc']:.3f} |")
    print(f"published sample fit: ours {figures['published_sample_fit']} vs published {PUBLISHED}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
