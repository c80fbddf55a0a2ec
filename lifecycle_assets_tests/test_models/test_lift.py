"""The lift report recovers a planted effect: after a real push (fake SendGrid, real DuckDB), completed orders
land for a chosen share of the sent and of the held-out customers of one letter type; the report's 95%
interval holds the planted difference, and a planted zero effect is not called significant."""

from __future__ import annotations

import math

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.activation.lift import ALL_LETTERS, LIFT_TABLE, letter_lift
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid
from lifecycle_assets_tests.test_activation.conftest import API_KEY, push, sendgrid_for
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day

CUSTOMERS = 1000
PLANNED_DAY = 10
# Balanced groups for a small shop: about a third of the letters held out.
RULES = {"control_group_share": 0.05, "letter_holdout_share": 0.3, "lift_min_letters_per_group": 100}
ORDER_AMOUNT = 10.0  # TinyShop's one item at 10


def customer_ids() -> list[str]:
    return [f"c{number:04d}" for number in range(CUSTOMERS)]


def build(database, as_of: int) -> None:
    with duckdb.connect(str(database)) as connection:
        build_all(connection, LifecycleSettings(as_of=day(as_of).isoformat(), **RULES))


def lift_report(database, as_of: int) -> tuple[dict[str, dict], dict]:
    """The letter_lift asset materialised as of the day: its table by letter type, and its metadata."""
    result = dg.materialize(
        [letter_lift],
        resources={
            "duckdb": DuckDBResource(database=str(database)),
            "lifecycle_settings": LifecycleSettings(as_of=day(as_of).isoformat(), **RULES),
        },
    )
    metadata = {key: value.value for key, value in result.asset_materializations_for_node("activation__letter_lift")[0].metadata.items()}
    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(f"select * from {LIFT_TABLE}")
        columns = [column[0] for column in cursor.description]
        rows = {row[0]: dict(zip(columns, row)) for row in cursor.fetchall()}
    return rows, metadata


@pytest.fixture
def pushed_shop(tmp_path):
    """CUSTOMERS customers register on day 10, each due a welcome letter, pushed through the fake SendGrid."""
    database = tmp_path / "shop.duckdb"
    shop = TinyShop().product("p1")
    for customer_id in customer_ids():
        shop.customer(customer_id, at(PLANNED_DAY, 8))
    shop.seen_until(at(PLANNED_DAY, 23))
    shop.write(database)
    build(database, PLANNED_DAY)
    with FakeSendGrid(api_key=API_KEY) as fake:
        push(database, sendgrid_for(fake))
        sent = {message["custom_args"]["customer_id"] for message in fake.sent_messages()}
    with duckdb.connect(str(database), read_only=True) as connection:
        held_out = {row[0] for row in connection.execute(
            "select customer_id from activation.send_ledger where state = 'held_out'"
        ).fetchall()}
    return database, shop, sorted(sent), sorted(held_out)


def land_orders(shop: TinyShop, database, buyers: list[str]) -> None:
    """A completed order two days after the letter for each buyer, plus orders the report must not count:
    on the planned day itself and a day after the 7-day window, for every fourth customer."""
    for customer_id in buyers:
        shop.order(f"o-{customer_id}", customer_id, at(PLANNED_DAY + 2, 15))
    for number, customer_id in enumerate(customer_ids()):
        if number % 4 == 0:
            shop.order(f"before-{customer_id}", customer_id, at(PLANNED_DAY, 20))
            shop.order(f"after-{customer_id}", customer_id, at(PLANNED_DAY + 8, 9))
    shop.seen_until(at(PLANNED_DAY + 10, 23))
    shop.write(database)


@pytest.mark.parametrize(
    ("sent_share", "held_out_share"),
    [pytest.param(0.30, 0.10, id="letter-lifts-buying-20-points"), pytest.param(0.20, 0.20, id="letter-does-nothing")],
)
def test_the_report_recovers_a_planted_effect(pushed_shop, sent_share, held_out_share):
    database, shop, sent, held_out = pushed_shop
    assert len(held_out) > 250 and len(sent) > 600 and not set(sent) & set(held_out)
    buyers = sent[: round(sent_share * len(sent))] + held_out[: round(held_out_share * len(held_out))]
    land_orders(shop, database, buyers)
    build(database, PLANNED_DAY + 10)

    rows, metadata = lift_report(database, PLANNED_DAY + 10)

    welcome = rows["welcome"]
    assert (welcome["sent"], welcome["held_out"]) == (len(sent), len(held_out))
    planted_points = 100 * (sent_share - held_out_share)
    assert welcome["lift_points_low"] <= planted_points <= welcome["lift_points_high"]
    planted_revenue = ORDER_AMOUNT * (sent_share - held_out_share)
    assert welcome["revenue_lift_low"] <= planted_revenue <= welcome["revenue_lift_high"]
    assert welcome["relative_lift_low"] <= sent_share / held_out_share - 1 <= welcome["relative_lift_high"]
    if planted_points:
        assert welcome["p_value"] < 0.05 and welcome["lift_points_low"] > 0
        assert welcome["verdict"].startswith("lifts conversion by")
    else:
        assert welcome["p_value"] > 0.05
        assert welcome["verdict"].startswith("no measurable effect")
    assert {key: value for key, value in rows[ALL_LETTERS].items() if key != "letter_type"} == {
        key: value for key, value in welcome.items() if key != "letter_type"
    }
    assert metadata["lift/welcome/held_out"] == len(held_out)
    assert math.isclose(metadata["lift/welcome/lift_points"], welcome["lift_points"])
    assert "| welcome |" in metadata["lift"] and metadata["verdict"] == welcome["verdict"]
    print(metadata["lift"])


def test_letters_inside_their_attribution_window_are_not_judged_yet(pushed_shop):
    database, shop, sent, held_out = pushed_shop
    land_orders(shop, database, sent[: len(sent) // 2])
    build(database, PLANNED_DAY + 6)

    rows, metadata = lift_report(database, PLANNED_DAY + 6)

    assert (rows["welcome"]["sent"], rows["welcome"]["held_out"]) == (0, 0)
    assert rows["welcome"]["verdict"].startswith("not enough data yet")
    assert metadata["lift/welcome/sent"] == 0 and "lift/welcome/lift_points" not in metadata
    assert rows["winback"]["verdict"].startswith("not enough data yet")  # every letter type has its row


def first_purchase_after_registration(effect: float) -> tuple[dict[int, int | None], dict[int, bool]]:
    """Customer number -> days from registration to first order (None: never), and -> has consent."""
    from lifecycle_assets.sample_data.letter_effect import LetterEffect
    from lifecycle_assets.sample_data.simulation import SECONDS_PER_DAY, ShopPlan, simulate_chunk

    plan = ShopPlan.draw(7, 6000, 60, 0, chunk_customers=6000, letter_effect=LetterEffect(effect) if effect else None)
    frames = simulate_chunk(plan, 0)
    customers = frames["customers"].filter(pl.col("_file") == 0)
    registered = dict(zip(customers["number"], customers["registered"] // SECONDS_PER_DAY))
    first = {}
    for number, second in frames["orders"].group_by("customer").agg(pl.col("ordered").min()).iter_rows():
        first[number] = second // SECONDS_PER_DAY - registered[number]
    return {number: first.get(number) for number in registered}, dict(zip(customers["number"], customers["consent"]))


def test_the_sample_shop_nudges_welcome_letter_recipients_and_never_the_held_out():
    from lifecycle_assets.sample_data.letter_effect import LetterEffect, customer_id

    base, consent = first_purchase_after_registration(0.0)
    nudged, _ = first_purchase_after_registration(0.5)
    gets_letter = LetterEffect().receives_letter
    recipients = [n for n in base if consent[n] and gets_letter(customer_id(n, 6000))]
    held_out = [n for n in base if consent[n] and not gets_letter(customer_id(n, 6000))]
    assert len(held_out) > 600

    def in_window(days: int | None) -> bool:
        return days is not None and 1 <= days <= 7

    assert [in_window(nudged[n]) for n in held_out] == [in_window(base[n]) for n in held_out]
    # Of the recipients who would neither have bought on the day nor within the week, half now buy within it.
    open_to_the_letter = [n for n in recipients if base[n] is None or base[n] > 7]
    moved = sum(in_window(nudged[n]) for n in open_to_the_letter) / len(open_to_the_letter)
    assert 0.45 < moved < 0.55
    assert all(nudged[n] == base[n] for n in recipients if base[n] is not None and base[n] <= 7)


@pytest.mark.parametrize(
    ("sent", "held_out", "verdict"),
    [
        pytest.param((314, 3), (53, 1), "no measurable effect", id="rare-conversions-3-of-314-vs-1-of-53"),
        pytest.param((300, 5), (40, 0), "no measurable effect", id="no-conversion-held-out"),
        pytest.param((300, 300), (40, 40), "no measurable effect", id="everyone-converts"),
        pytest.param((300, 0), (40, 0), "not enough data yet", id="no-conversion-at-all"),
    ],
)
def test_small_and_extreme_counts_get_a_verdict_not_an_error(sent, held_out, verdict):
    from lifecycle_assets.activation.lift import Group, compare

    lift = compare("winback", Group(sent[0], sent[1], 10.0, 4.0), Group(held_out[0], held_out[1], 9.0, 4.0), 30)
    assert lift.verdict.startswith(verdict)
    if lift.lift_points is not None:
        assert lift.lift_points_low <= lift.lift_points <= lift.lift_points_high
