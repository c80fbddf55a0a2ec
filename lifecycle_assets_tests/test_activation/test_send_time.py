"""Letters arrive at the customer's local send hour (SendGrid's per-personalization send_at, at most
72 h ahead), and the send ledger stores UTC whatever the machine's time zone."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import time
from zoneinfo import ZoneInfo

import duckdb

from .conftest import API_KEY, UNSUBSCRIBE_GROUP, push, sendgrid_for
from .sample_marts import customer_id_of, write_plan, write_sample_marts

DAY = dt.date(2024, 3, 1)
ZONES = {0: "Asia/Tokyo", 1: "America/Los_Angeles", 2: "Europe/Berlin", 3: None, 4: "Mars/Olympus_Mons"}
SHOP_ZONE = "America/New_York"


def with_time_zones(warehouse, zones: dict[int, str | None]) -> None:
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("alter table raw.customers add column if not exists timezone varchar")
        for number, zone in zones.items():
            connection.execute("update raw.customers set timezone = ? where customer_id = ?", [zone, customer_id_of(number)])


def test_customers_in_three_time_zones_get_their_local_ten_oclock_accepted_by_sendgrid(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=5)
    with_time_zones(warehouse, ZONES)
    before = time.time()
    push(warehouse, sendgrid_for(fake), run_config={
        "ops": {"activation__sendgrid_letters": {"config": {"contact_policy": {"shop_timezone": SHOP_ZONE}}}}
    })
    after = time.time()

    sent = {m["custom_args"]["customer_id"]: m["send_at"] for m in fake.sent_messages()}
    assert len(sent) == 5
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        stored = dict(connection.execute("select customer_id, send_at from activation.send_ledger").fetchall())
    for number, zone_name in ZONES.items():
        send_at = sent[customer_id_of(number)]
        # no zone, or one that does not exist: the shop's
        zone = ZoneInfo(zone_name if number in (0, 1, 2) else SHOP_ZONE)
        local = dt.datetime.fromtimestamp(send_at, zone)
        assert (local.hour, local.minute, local.second) == (10, 0, 0), (zone, local)
        # the next 10:00 after the push: in the future, less than a day (and a DST hour) ahead
        assert before < send_at <= after + 25 * 3600
        assert stored[customer_id_of(number)] == dt.datetime.fromtimestamp(send_at, dt.timezone.utc).replace(tzinfo=None)


def test_a_letter_for_a_later_local_day_arrives_that_day_and_never_more_than_72_hours_ahead(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=3)
    with_time_zones(warehouse, {0: "Pacific/Auckland", 1: "Pacific/Honolulu"})
    today = {number: dt.datetime.now(ZoneInfo(zone)).date() for number, zone in ((0, "Pacific/Auckland"), (1, "Pacific/Honolulu"))}
    with duckdb.connect(str(warehouse)) as connection:
        write_plan(connection, DAY, [
            {"customer": 0, "template": "birthday", "priority": 3, "deliver_on": today[0] + dt.timedelta(days=2)},
            {"customer": 1, "template": "birthday", "priority": 3, "deliver_on": today[1] + dt.timedelta(days=4)},
        ])
    push(warehouse, sendgrid_for(fake))

    sent = {m["custom_args"]["customer_id"]: m["send_at"] for m in fake.sent_messages()}
    arrives = dt.datetime.fromtimestamp(sent[customer_id_of(0)], ZoneInfo("Pacific/Auckland"))
    assert (arrives.date(), arrives.hour) == (today[0] + dt.timedelta(days=2), 10)
    assert all(send_at <= time.time() + 72 * 3600 for send_at in sent.values())
    assert customer_id_of(1) not in sent  # four local days ahead is beyond SendGrid's 72 h: it waits
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        state, reason = connection.execute(
            "select state, state_reason from activation.send_ledger where customer_id = ?", [customer_id_of(1)]
        ).fetchone()
    assert state == "deferred" and "more than 72 h ahead" in reason


PUSH_IN_ANOTHER_TIME_ZONE = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from dagster_duckdb import DuckDBResource
    from lifecycle_assets.activation.assets import activation_assets
    from lifecycle_assets.activation.resources import SendGridResource

    warehouse, host, api_key, group = sys.argv[1:]
    dg.materialize(
        activation_assets,
        resources={
            "sendgrid": SendGridResource(api_key=api_key, host=host, unsubscribe_group_id=int(group), sender_email="shop@example.com"),
            "duckdb": DuckDBResource(database=warehouse),
        },
    )
    """
)


def test_the_send_ledger_stores_utc_on_a_machine_in_another_time_zone(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=4)
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    subprocess.run(
        [sys.executable, "-c", PUSH_IN_ANOTHER_TIME_ZONE, str(warehouse), fake.base_url, API_KEY, str(UNSUBSCRIBE_GROUP)],
        env={**os.environ, "TZ": "Pacific/Auckland"},  # UTC+13 in March: a local now() is 13 h off
        check=True,
        timeout=300,
    )
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rows = connection.execute(
            "select state, planned_at, claimed_at, finished_at, updated_at from activation.send_ledger"
        ).fetchall()
    assert len(rows) == 4 and {row[0] for row in rows} == {"accepted"}
    for _, *stamps in rows:
        for stamp in stamps:
            assert before - dt.timedelta(seconds=1) <= stamp <= after + dt.timedelta(seconds=1), stamps
