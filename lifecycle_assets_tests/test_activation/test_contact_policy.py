"""The contact policy over a real DuckDB file and the spec-validating fake SendGrid: caps, priority,
deferral to a later plan day, expiry, and one recorded state with its reason for every letter."""

from __future__ import annotations

import datetime as dt

import duckdb

from .conftest import materialization_metadata, push, sendgrid_for
from .sample_marts import customer_id_of, email_of, write_plan, write_sample_marts

DAY = dt.date(2024, 3, 1)


def policy_config(**policy) -> dict:
    return {"ops": {"activation__sendgrid_letters": {"config": {"contact_policy": policy}}}}


def ledger(warehouse) -> dict[str, dict]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        cursor = connection.execute(
            """select letter_key, state, state_reason, suppression_reason, error, send_day, valid_until, deferrals
               from activation.send_ledger"""
        )
        names = [column[0] for column in cursor.description]
        return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}


def sent_keys(fake) -> list[str]:
    return [message["custom_args"]["letter_key"] for message in fake.sent_messages()]


def test_a_day_over_the_cap_defers_the_lower_priority_letter_and_sends_it_the_next_day(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=4)
    with duckdb.connect(str(warehouse)) as connection:
        # Customer 0: a welcome letter (priority 2) and an abandoned cart (priority 1) due the same day.
        write_plan(connection, DAY, [
            {"customer": 0, "template": "welcome", "priority": 2},
            {"customer": 0, "template": "abandoned_cart", "priority": 1},
            {"customer": 1, "template": "welcome", "priority": 2},
        ])
    cart, welcome = f"abandoned_cart:{customer_id_of(0)}:{DAY}", f"welcome:{customer_id_of(0)}:{DAY}"

    first = push(warehouse, sendgrid_for(fake))

    assert sorted(sent_keys(fake)) == sorted([cart, f"welcome:{customer_id_of(1)}:{DAY}"])
    rows = ledger(warehouse)
    assert rows[welcome]["state"] == "deferred"
    assert rows[welcome]["state_reason"].startswith("daily cap")
    assert materialization_metadata(first, ["activation", "sendgrid_letters"])["letters_deferred"] == 1

    # The next plan day no longer holds the welcome letter (it left the plan's due window): it is
    # sent as it was planned, one letter that day.
    with duckdb.connect(str(warehouse)) as connection:
        write_plan(connection, DAY + dt.timedelta(days=1), [{"customer": 2, "template": "winback", "priority": 2}])
    push(warehouse, sendgrid_for(fake))

    to_customer_0 = [m for m in fake.sent_messages() if m["to"] == email_of(0)]
    assert [m["custom_args"]["letter_key"] for m in to_customer_0] == [cart, welcome]
    assert to_customer_0[1]["dynamic_template_data"]["first_name"] == "Name0"
    rows = ledger(warehouse)
    assert (rows[welcome]["state"], rows[welcome]["send_day"]) == ("accepted", DAY + dt.timedelta(days=1))
    assert rows[cart]["send_day"] == DAY


def test_the_caps_count_per_address_and_per_week(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=4)
    with duckdb.connect(str(warehouse)) as connection:
        # Customers 1 and 2 share one inbox (two spellings of it).
        connection.execute("update raw.customers set email = ? where customer_id = ?", [email_of(1).upper(), customer_id_of(2)])
    templates = ["welcome", "abandoned_cart", "winback", "birthday", "replenishment"]
    for offset, template in enumerate(templates):
        day = DAY + dt.timedelta(days=offset)
        with duckdb.connect(str(warehouse)) as connection:
            write_plan(connection, day, [
                {"customer": 0, "template": template, "priority": 1},
                {"customer": 1, "template": template, "priority": 2, "trigger": template + "_a"},
                {"customer": 2, "template": templates[(offset + 1) % len(templates)], "priority": 1},
            ])
        push(warehouse, sendgrid_for(fake), run_config=policy_config(max_letters_per_day=1, max_letters_per_week=3))
        if offset == 0:  # customer 2's priority-1 letter took the shared inbox's day
            assert ledger(warehouse)[f"welcome_a:{customer_id_of(1)}:{day}"]["state_reason"] == "daily cap: 1 letter(s) per address a day"

    per_inbox: dict[str, int] = {}
    for message in fake.sent_messages():
        per_inbox[message["to"]] = per_inbox.get(message["to"], 0) + 1
    # Five plan days: the default 3 in 7 days holds for customer 0 and for the shared inbox alike.
    assert per_inbox == {email_of(0): 3, email_of(1): 3}
    reasons = {row["state_reason"] for row in ledger(warehouse).values() if row["state"] == "deferred"}
    assert {"weekly cap: 3 letter(s) per customer in 7 days", "weekly cap: 3 letter(s) per address in 7 days"} <= reasons


def test_a_deferred_letter_past_its_validity_expires(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=4)
    short_winback = policy_config(validity_days={"winback": 1, "abandoned_cart": 2})
    winback = f"winback:{customer_id_of(0)}:{DAY}"
    for offset in range(3):
        day = DAY + dt.timedelta(days=offset)
        with duckdb.connect(str(warehouse)) as connection:
            # Every day customer 0 gets a new abandoned cart (priority 1); the winback (priority 2) is due on DAY.
            write_plan(connection, day, [
                {"customer": 0, "template": "abandoned_cart", "priority": 1, "instance": day.isoformat()},
                {"customer": 0, "template": "winback", "priority": 2, "due_on": DAY},
            ])
        result = push(warehouse, sendgrid_for(fake), run_config=short_winback)
        row = ledger(warehouse)[winback]
        if offset < 2:  # valid until DAY + 1
            assert row["state"] == "deferred", (offset, row)

    assert winback not in sent_keys(fake)
    assert row["state"] == "expired"
    assert row["valid_until"] == DAY + dt.timedelta(days=1)
    assert "not sent by 2024-03-02" in row["state_reason"] and "daily cap" in row["state_reason"]
    assert materialization_metadata(result, ["activation", "sendgrid_letters"])["letters_expired"] == 1
    assert materialization_metadata(result, ["activation", "sendgrid_letters"])["ledger_expired_total"] == 1


def test_every_planned_letter_ends_in_one_recorded_state_with_its_reason(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=6, without_consent=frozenset({3}))
    plan = [
        {"customer": 0, "template": "welcome", "priority": 2},  # sent
        {"customer": 0, "template": "abandoned_cart", "priority": 1, "trigger": "cart"},  # wins customer 0's day
        {"customer": 1, "template": "winback", "priority": 2},
        {"customer": 1, "template": "birthday", "priority": 3},  # deferred behind the winback
        {"customer": 2, "template": "no_such_letter", "priority": 1},  # failed: no template
        {"customer": 3, "template": "welcome", "priority": 2},  # suppressed: no consent
        {"customer": 4, "template": "welcome", "priority": 2, "due_on": DAY - dt.timedelta(days=30)},  # expired
    ]
    with duckdb.connect(str(warehouse)) as connection:
        write_plan(connection, DAY, plan)
    push(warehouse, sendgrid_for(fake), raise_on_error=False)

    rows = ledger(warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        planned = {row[0] for row in connection.execute("select letter_key from marts.letters_planned").fetchall()}
    assert set(rows) == planned
    reason_of = {
        "accepted": lambda row: True,
        "deferred": lambda row: row["state_reason"],
        "expired": lambda row: row["state_reason"],
        "suppressed": lambda row: row["suppression_reason"],
        "failed": lambda row: row["error"],
    }
    for key, row in rows.items():
        assert row["state"] in reason_of and reason_of[row["state"]](row), (key, row)
    by_state: dict[str, int] = {}
    for row in rows.values():
        by_state[row["state"]] = by_state.get(row["state"], 0) + 1
    assert by_state == {"accepted": 2, "deferred": 2, "failed": 1, "suppressed": 1, "expired": 1}
