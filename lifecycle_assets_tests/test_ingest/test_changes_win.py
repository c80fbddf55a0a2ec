"""Consent and status changes always win: a later change to a customer or an order is never lost,
whichever day and file it lands in, and a consent withdrawal that lands after the letters were planned
still stops the letter. Real ingest, real models, the real push to the fake SendGrid on 127.0.0.1."""

from __future__ import annotations

import duckdb
import pytest

from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.quality.checks import QualityPolicy
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid
from lifecycle_assets_tests.ingest_harness import run_ingest, write_landing_file
from lifecycle_assets_tests.test_activation.conftest import API_KEY, ledger_rows, push, sendgrid_for
from lifecycle_assets_tests.test_ingest.test_ingest_assets import DAY, customer, item, order

PRODUCTS = [{"product_id": "p1", "name": "Coffee", "category": "coffee", "price": "10.00", "rebuy_interval_days": "30"}]
CUSTOMERS = range(1, 7)


def land_registrations(landing) -> None:
    """Six customers register on DAY with consent; c5 and c6 buy."""
    write_landing_file(landing, "customers", DAY, "customers.csv", [customer(i) for i in CUSTOMERS])
    write_landing_file(landing, "products", DAY, "products.csv", PRODUCTS)
    write_landing_file(landing, "orders", DAY, "orders.csv", [order(5), order(6)])
    write_landing_file(landing, "order_items", DAY, "items.csv", [item(5), item(6)])


def land_the_races(landing) -> None:
    """The same day, in second files (named to sort after and before the first ones: file order must not matter)."""
    # c1: a whole customers row again, now without consent, no time of its own.
    write_landing_file(landing, "customers", DAY, "updates.csv", [customer(1, marketing_consent="false")])
    # c2: a withdrawal alone, with its time; c3: a withdrawal alone, without a time; c4 changes only its name.
    write_landing_file(landing, "customers", DAY, "a_withdrawals.jsonl", [
        {"customer_id": "c2", "marketing_consent": False, "updated_at": "2024-03-01T10:30:00"},
        {"customer_id": "c3", "marketing_consent": "no"},
        {"customer_id": "c4", "first_name": "Renamed"},
    ])
    # o5: completed -> refunded later that day.
    write_landing_file(landing, "orders", DAY, "a_order_changes.csv", [order(5, status="refunded", updated_at="2024-03-01T18:00:00")])


def build(warehouse) -> None:
    with duckdb.connect(str(warehouse)) as connection:
        build_all(connection, LifecycleSettings(as_of=DAY))


def query(warehouse, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).fetchall()


@pytest.fixture
def fake():
    with FakeSendGrid(api_key=API_KEY) as server:
        yield server


def test_changes_landing_after_the_plan_stop_the_letters_and_count_in_the_next_build(tmp_path, fake):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    land_registrations(landing)
    assert run_ingest(landing, warehouse, DAY).result.success
    build(warehouse)
    planned = {row[0] for row in query(warehouse, "SELECT DISTINCT customer_id FROM marts.letters_planned")}
    assert {"c1", "c2", "c3", "c4"} <= planned  # letters were planned before the withdrawals landed

    land_the_races(landing)
    run_ingest(landing, warehouse, DAY, policy=QualityPolicy(max_quarantine_rate=1.0))  # the hourly run re-ingests the open day
    push(warehouse, sendgrid_for(fake))  # the plan is not rebuilt: the push itself reads the freshest rows
    written_to = {message["custom_args"]["customer_id"] for message in fake.sent_messages()}
    assert "c4" in written_to, "a customer who only changed a name is still written to"
    assert not written_to & {"c1", "c2", "c3"}
    held_back = {key.split(":")[1] for key, row in ledger_rows(warehouse).items() if row[0] != "accepted"}
    assert {"c1", "c2", "c3"} <= held_back
    assert query(warehouse, "SELECT count(*) FROM quality.quarantined_rows") == [(0,)]

    build(warehouse)
    assert not {row[0] for row in query(warehouse, "SELECT customer_id FROM marts.letters_planned")} & {"c1", "c2", "c3"}
    assert query(warehouse, "SELECT customer_id, marketing_consent FROM staging.stg_customers ORDER BY 1") == [
        (f"c{i}", i > 3) for i in CUSTOMERS
    ]
    # A partial row changes only what it carries: c4 keeps its address and consent, with the new name.
    assert query(warehouse, "SELECT email, first_name, marketing_consent FROM staging.stg_customers WHERE customer_id = 'c4'") == [
        ("person4@example.com", "Renamed", True)
    ]
    assert query(warehouse, "SELECT order_id, status, is_purchase FROM staging.stg_orders ORDER BY 1") == [
        ("o5", "refunded", False), ("o6", "completed", True)
    ]


def test_the_latest_change_wins_by_its_own_time_whichever_day_it_lands(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    days = ["2024-03-01", "2024-03-02", "2024-03-03"]
    write_landing_file(landing, "customers", days[0], "customers.csv", [customer(1), customer(2)])
    # Day 2: c1 withdraws at 10:00; c2 re-consents ... after a withdrawal that only lands on day 3 (late, timed earlier).
    write_landing_file(landing, "customers", days[1], "changes.jsonl", [
        {"customer_id": "c1", "marketing_consent": "false", "updated_at": "2024-03-02T10:00:00"},
        {"customer_id": "c2", "marketing_consent": "true", "updated_at": "2024-03-02T12:00:00"},
    ])
    write_landing_file(landing, "customers", days[2], "late.jsonl", [
        {"customer_id": "c1", "email": "new.address1@example.com", "updated_at": "2024-03-01T20:00:00"},
        {"customer_id": "c2", "marketing_consent": "false", "updated_at": "2024-03-01T20:00:00"},
    ])
    assert run_ingest(landing, warehouse, days[0], days[-1]).result.success
    with duckdb.connect(str(warehouse)) as connection:
        build_all(connection, LifecycleSettings(as_of=days[-1]))
        current = connection.execute("SELECT customer_id, email, marketing_consent FROM staging.stg_customers ORDER BY 1").fetchall()
        history = connection.execute(
            "SELECT customer_id, marketing_consent, changed_at::VARCHAR, source_file FROM staging.stg_consent_changes ORDER BY 1, 3"
        ).fetchall()
    # c1: the late email change (timed before the withdrawal) is applied, the withdrawal stands.
    # c2: the late withdrawal is older than the re-consent: the re-consent stands.
    assert current == [("c1", "new.address1@example.com", False), ("c2", "person2@example.com", True)]
    assert history == [
        ("c1", True, "2024-03-01 09:00:00", f"customers/date={days[0]}/customers.csv"),
        ("c1", False, "2024-03-02 10:00:00", f"customers/date={days[1]}/changes.jsonl"),
        ("c2", True, "2024-03-01 09:00:00", f"customers/date={days[0]}/customers.csv"),
        ("c2", False, "2024-03-01 20:00:00", f"customers/date={days[2]}/late.jsonl"),
        ("c2", True, "2024-03-02 12:00:00", f"customers/date={days[1]}/changes.jsonl"),
    ]


def test_a_row_that_changes_nothing_is_quarantined(tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    write_landing_file(landing, "customers", DAY, "customers.csv", [customer(1)])
    write_landing_file(landing, "customers", DAY, "changes.jsonl", [{"customer_id": "c1", "updated_at": "2024-03-01T10:00:00"}])
    run = run_ingest(landing, warehouse, DAY, policy=None)
    assert query(warehouse, "SELECT source_file, reason FROM quality.quarantined_rows") == [
        (f"customers/date={DAY}/changes.jsonl", "missing_required:registered_at")
    ]
    assert run.query("SELECT count(*) FROM raw.customers")[0][0] == 1


def test_a_day_with_many_consent_changes_is_not_a_broken_export(tmp_path):
    """The day profile judges registrations, not the emptiness that partial change rows have by design."""
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    days = [f"2024-03-{d:02d}" for d in range(1, 11)]
    for n, day in enumerate(days):
        registrations = [customer(1000 * n + i, registered_at=f"{day}T09:00:00") for i in range(250)]
        write_landing_file(landing, "customers", day, "customers.csv", registrations)
    # The last day also brings 100 withdrawals alone (a quarter of its rows).
    write_landing_file(landing, "customers", days[-1], "withdrawals.jsonl", [
        {"customer_id": f"c{i}", "marketing_consent": False, "updated_at": f"{days[-1]}T08:00:00"} for i in range(100)
    ])
    run = run_ingest(landing, warehouse, days[0], days[-1], policy=QualityPolicy(volume_min_median_rows=10_000))
    assert run.check_passed("customers", "great_expectations_suite")
    assert run.query("SELECT count(*) FROM raw.customers WHERE registered_at IS NULL")[0][0] == 100
