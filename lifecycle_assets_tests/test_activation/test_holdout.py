"""Control groups: a stable global control group gets no letter and no newsletter, each letter type holds out
its own share, and the push records held-out letters as `held_out` without sending them (real DuckDB, the
lifecycle model built from a tiny shop, the spec-validating fake SendGrid)."""

from __future__ import annotations

import duckdb
import pytest

from lifecycle_assets.activation.holdout import in_global_control_group, in_letter_holdout
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day

from .conftest import ledger_rows, push, sendgrid_for

CUSTOMERS = 600


def welcome_shop(database, customers: int = CUSTOMERS):
    """`customers` customers who register on day 10: each is due a welcome letter that day."""
    shop = TinyShop().product("p1")
    for number in range(customers):
        shop.customer(f"c{number:04d}", at(10, 8))
    shop.seen_until(at(10, 23))
    shop.write(database)


def build(database, as_of: int = 10, **rules) -> None:
    with duckdb.connect(str(database)) as connection:
        build_all(connection, LifecycleSettings(as_of=day(as_of).isoformat(), **rules))


def rows(database, sql: str) -> list[tuple]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param({}, id="defaults-5pct-global-10pct-per-type"),
        pytest.param({"control_group_salt": "spring-2026", "control_group_share": 0.2}, id="new-salt-20pct"),
        pytest.param({"letter_holdout_shares": {"welcome": 0.5}}, id="welcome-holds-out-half"),
    ],
)
def test_the_plan_holds_out_exactly_the_customers_the_documented_hash_picks(tmp_path, rules):
    database = tmp_path / "shop.duckdb"
    welcome_shop(database)
    build(database, **rules)
    settings = LifecycleSettings(**rules)
    share = settings.letter_holdout_shares.get("welcome", settings.letter_holdout_share)

    expected = {}
    for number in range(CUSTOMERS):
        customer_id = f"c{number:04d}"
        if in_global_control_group(customer_id, settings.control_group_salt, settings.control_group_share):
            expected[customer_id] = "global"
        elif in_letter_holdout(customer_id, "welcome", settings.control_group_salt, share):
            expected[customer_id] = "letter_type"
        else:
            expected[customer_id] = None
    planned = dict(rows(database, "select customer_id, control_group from marts.letters_planned"))
    assert planned == expected
    global_share = sum(group == "global" for group in planned.values()) / CUSTOMERS
    assert abs(global_share - settings.control_group_share) < 0.04
    held_of_the_rest = sum(group == "letter_type" for group in planned.values()) / sum(
        group != "global" for group in planned.values()
    )
    assert abs(held_of_the_rest - share) < 0.06


def test_membership_is_stable_from_day_to_day_and_a_new_salt_draws_a_new_group(tmp_path):
    database = tmp_path / "shop.duckdb"
    welcome_shop(database)
    query = "select customer_id from intermediate.control_groups where in_global_control_group order by 1"
    build(database, as_of=10)
    day_10 = rows(database, query)
    build(database, as_of=11)
    assert rows(database, query) == day_10
    build(database, as_of=11, control_group_salt="another-salt")
    assert rows(database, query) != day_10


def test_the_push_records_held_out_letters_and_never_sends_them(tmp_path, fake):
    database = tmp_path / "shop.duckdb"
    welcome_shop(database)
    build(database)
    plan = dict(rows(database, "select letter_key, control_group from marts.letters_planned"))

    push(database, sendgrid_for(fake))

    sent = {message["custom_args"]["letter_key"] for message in fake.sent_messages()}
    ledger = ledger_rows(database)
    held_out = {key for key, group in plan.items() if group}
    assert held_out and not held_out & sent
    assert sent == set(plan) - held_out
    for key in held_out:
        state, message_id, _error, reason = ledger[key]
        assert (state, message_id) == ("held_out", None)
        assert reason == {"global": "global_control_group", "letter_type": "letter_type_holdout"}[plan[key]]
    assert {ledger[key][0] for key in sent} == {"accepted"}

    push(database, sendgrid_for(fake))  # a second push sends nothing new and keeps them held out
    assert {message["custom_args"]["letter_key"] for message in fake.sent_messages()} == sent
    assert {ledger_rows(database)[key][0] for key in held_out} == {"held_out"}


@pytest.mark.parametrize("leaves_audiences", [True, False], ids=["control-group-left-out", "configured-to-stay-in"])
def test_audiences_and_the_newsletter_leave_the_global_control_group_out(tmp_path, fake, leaves_audiences):
    database = tmp_path / "shop.duckdb"
    welcome_shop(database)
    build(database, control_group_leaves_audiences=leaves_audiences)
    control = {row[0] for row in rows(database, "select customer_id from intermediate.control_groups where in_global_control_group")}
    assert control

    push(database, sendgrid_for(fake))

    newsletter = fake.list_members("newsletter")
    control_addresses = {f"{customer_id}@example.com" for customer_id in control}
    assert len(newsletter) == CUSTOMERS - (len(control) if leaves_audiences else 0)
    assert (newsletter & control_addresses == set()) if leaves_audiences else (control_addresses <= newsletter)
