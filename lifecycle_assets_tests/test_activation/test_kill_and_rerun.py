"""A real push process killed with SIGKILL mid-send, then a rerun: nothing twice, every letter accounted for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from lifecycle_assets.activation import ledger

from lifecycle_assets_tests.fake_sendgrid import Fault

from .conftest import API_KEY, UNSUBSCRIBE_GROUP, ledger_rows, planned_letters, push, sendgrid_for
from .sample_marts import write_sample_marts

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def start_push_process(fake, warehouse: Path, tmp_path: Path, **settings: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "LIFECYCLE_DUCKDB_PATH": str(warehouse),
        "LIFECYCLE_OUTBOX_DIR": str(tmp_path / "outbox"),
        "SENDGRID_API_KEY": API_KEY,
        "SENDGRID_HOST": fake.base_url,
        "SENDGRID_MAX_CONCURRENT_REQUESTS": "1",
        "SENDGRID_UNSUBSCRIBE_GROUP_ID": str(UNSUBSCRIBE_GROUP),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        **settings,
    }
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "lifecycle_assets.activation", "push"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_mid_send_then_rerun_sends_nothing_twice(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    # 8 requests of up to 1000 letters (4 templates x 1500 customers, one letter each), one at a time, each held 1 s by the fake.
    write_sample_marts(warehouse, customers=6000, letters=6000)
    fake.inject(Fault(kind="latency", path_prefix="/v3/mail/send", times=100, seconds=1.0))

    process = start_push_process(fake, warehouse, tmp_path)
    try:
        deadline = time.monotonic() + 120
        while fake.request_count(method="POST", path_prefix="/v3/mail/send") < 3:
            assert process.poll() is None, "the push ended before it could be killed mid-send"
            assert time.monotonic() < deadline, "the push never reached mail send"
            time.sleep(0.05)
        time.sleep(0.3)  # the third request has arrived and is being held: kill while it is in flight
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(1.2)  # let the fake finish the request the dead process sent
    sent_before_rerun = len(fake.sent_messages())
    assert 0 < sent_before_rerun < 6000

    fake.reset_faults()
    push(warehouse, sendgrid_for(fake))

    sent: dict[str, int] = {}
    for message in fake.sent_messages():
        key = message["custom_args"]["letter_key"]
        sent[key] = sent.get(key, 0) + 1
    assert max(sent.values()) == 1, "a letter was sent twice"
    ledger = ledger_rows(warehouse)
    planned = set(planned_letters(warehouse))
    assert set(ledger) == planned
    accepted = {key for key, row in ledger.items() if row[0] == "accepted"}
    unknown = {key for key, row in ledger.items() if row[0] == "unknown"}
    assert accepted | unknown == planned, "every letter is accepted or shown as unknown"
    assert accepted <= set(sent)
    assert 0 < len(unknown) <= 1000, "only the request in flight at the kill is unknown"
    assert unknown <= set(sent), "SendGrid acted on the request the dead process sent; it was not resent"
    assert set(sent) - accepted <= unknown


def test_a_kill_leaves_at_most_the_blast_radius_unknown_and_one_lookup_per_request_resolves_them(fake, tmp_path):
    """SENDGRID_MAX_CONCURRENT_REQUESTS x SENDGRID_LETTERS_PER_REQUEST bounds what one kill leaves unknown."""
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=2000, letters=2000)
    fake.inject(Fault(kind="latency", path_prefix="/v3/mail/send", times=100, seconds=0.5))
    process = start_push_process(
        fake, warehouse, tmp_path, SENDGRID_MAX_CONCURRENT_REQUESTS="2", SENDGRID_LETTERS_PER_REQUEST="50"
    )
    try:
        deadline = time.monotonic() + 120
        while fake.request_count(method="POST", path_prefix="/v3/mail/send") < 5:
            assert process.poll() is None, "the push ended before it could be killed mid-send"
            assert time.monotonic() < deadline, "the push never reached mail send"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.8)  # the requests the dead process sent finish at the fake
    fake.reset_faults()

    with duckdb.connect(str(warehouse)) as connection:
        ledger.ensure_schema(connection)
        ledger.mark_interrupted_claims_unknown(connection)
        requests = ledger.unknown_requests(connection)
        unknown = {key for key, _ in ledger.letters_in_state(connection, "unknown")}
        assert 0 < len(unknown) <= 2 * 50
        assert len(requests) <= 2
        # The operator's evidence: one letter key per request looked up in SendGrid's activity (here the fake's).
        delivered = {message["custom_args"]["letter_key"] for message in fake.sent_messages()}
        for _run, request_id, _type, _letters, _claimed_at, sample_key in requests:
            if sample_key in delivered:
                ledger.resolve_unknown(connection, [sample_key], evidence="found in Email Activity")
            else:
                ledger.release_unknown(connection, request_id=request_id)
        assert ledger.letters_in_state(connection, "unknown") == []

    push(warehouse, sendgrid_for(fake))

    sent: dict[str, int] = {}
    for message in fake.sent_messages():
        key = message["custom_args"]["letter_key"]
        sent[key] = sent.get(key, 0) + 1
    assert max(sent.values()) == 1, "a letter was sent twice"
    ledger_now = ledger_rows(warehouse)
    assert set(sent) == set(planned_letters(warehouse))
    assert {row[0] for row in ledger_now.values()} == {"accepted"}
