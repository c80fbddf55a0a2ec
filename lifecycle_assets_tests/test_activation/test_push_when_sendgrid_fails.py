"""The push when SendGrid does not recover in time: nothing is lost, nothing is sent twice, no secret is shown."""

from __future__ import annotations

import threading

import duckdb
import pytest

from lifecycle_assets.activation import ledger
from lifecycle_assets.activation.audiences import sync_audiences
from lifecycle_assets_tests.fake_sendgrid import Fault

from .conftest import API_KEY, ledger_rows, planned_letters, push, sendgrid_for
from .sample_marts import email_of


class ManualClock:
    """A monotonic clock that moves only when the code under test sleeps: a 60 s timeout costs no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def test_sendgrid_down_longer_than_the_retries_fails_the_run_and_keeps_every_letter_planned(fake, warehouse):
    fake.inject(Fault(kind="server_error", path_prefix="/v3/mail/send", times=10_000, status=503))

    result = push(warehouse, sendgrid_for(fake, max_retries=2), raise_on_error=False)

    assert not result.success
    failures = [event for event in result.all_events if event.is_step_failure]
    assert [event.step_key for event in failures] == ["activation__sendgrid_letters"]
    message = failures[0].event_specific_data.error.message
    assert "SendGrid is unavailable" in message and "503 after 3 attempts" in message
    everything = " ".join(str(event) for event in result.all_events)
    assert API_KEY not in everything
    assert not any(email_of(n) in message for n in range(40))
    assert fake.sent_messages() == []
    assert {state for state, *_ in ledger_rows(warehouse).values()} == {"planned"}

    fake.reset_faults()  # SendGrid is back: the next push sends every letter, each once
    assert push(warehouse, sendgrid_for(fake)).success
    sent: dict[str, int] = {}
    for mail in fake.sent_messages():
        sent[mail["custom_args"]["letter_key"]] = sent.get(mail["custom_args"]["letter_key"], 0) + 1
    assert sent == dict.fromkeys(planned_letters(warehouse), 1)


def test_an_import_job_still_pending_at_its_timeout_is_recorded_and_its_contacts_sent_again(fake, warehouse):
    fake.import_pending_polls = 10**6  # SendGrid never finishes an import while this run waits
    clock, timeout = ManualClock(), 60.0
    sendgrid = sendgrid_for(fake, max_concurrent_requests=1)

    with duckdb.connect(str(warehouse)) as connection, sendgrid.thread_pool() as pool:
        ledger.ensure_schema(connection)
        result = sync_audiences(
            connection, sendgrid.session("pending-run"), pool, "pending-run", timeout,
            sleep=clock.sleep, monotonic=clock.monotonic,
        )
        jobs = connection.execute(
            "select status from activation.contact_import_jobs where run_id = 'pending-run'"
        ).fetchall()
        synced = connection.execute(
            "select (select count(*) from activation.audience_members) + (select count(*) from activation.contact_state)"
        ).fetchone()[0]

    assert jobs and {status for (status,) in jobs} == {"pending"}
    assert result.import_jobs_with_errors == len(jobs)
    assert synced == 0  # nothing counts as in SendGrid until its job completes
    # Each job was polled for its whole timeout, no longer than one poll interval beyond it.
    assert len(jobs) * timeout <= clock.now <= len(jobs) * (timeout + max(clock.sleeps))

    fake.import_pending_polls = 0
    with duckdb.connect(str(warehouse)) as connection, sendgrid.thread_pool() as pool:
        again = sync_audiences(
            connection, sendgrid.session("next-run"), pool, "next-run", timeout,
            sleep=clock.sleep, monotonic=clock.monotonic,
        )
        members = set(connection.execute("select list_name, email from activation.audience_members").fetchall())
        expected = set(connection.execute("select list_name, lower(email) from marts.audiences").fetchall())
    assert again.import_jobs_with_errors == 0
    assert members == expected
    for list_name in {name for name, _ in expected}:
        assert fake.list_members(list_name) == {email for name, email in expected if name == list_name}
