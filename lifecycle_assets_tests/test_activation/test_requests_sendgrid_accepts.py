"""The push only sends requests real SendGrid accepts: an unsubscribe group, upserts sized as sent, error files read safely."""

from __future__ import annotations

import json
import logging

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.activation.assets import activation_assets, activation_checks

from .conftest import ledger_rows, materialization_metadata, planned_letters, push, sendgrid_for
from .sample_marts import customer_id_of, email_of, write_sample_marts


def test_a_live_push_without_an_unsubscribe_group_stops_before_any_letter(fake, warehouse):
    result = push(warehouse, sendgrid_for(fake, unsubscribe_group_id=0), raise_on_error=False)

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "SENDGRID_UNSUBSCRIBE_GROUP_ID is not set" in str(failure.event_specific_data.error.message)
    assert fake.sent_messages() == []
    assert {row[0] for row in ledger_rows(warehouse).values()} <= {"planned"}


def test_a_dry_run_without_an_unsubscribe_group_warns_and_writes_the_outbox(fake, warehouse, tmp_path):
    sendgrid = sendgrid_for(fake, api_key=None, unsubscribe_group_id=0, outbox_dir=str(tmp_path / "outbox"))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*activation_assets, *activation_checks],
            resources={"sendgrid": sendgrid, "duckdb": DuckDBResource(database=str(warehouse))},
            instance=instance,
        )
        warnings = [
            entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING
        ]

    assert any("SENDGRID_UNSUBSCRIBE_GROUP_ID is not set" in message for message in warnings)
    assert materialization_metadata(result, ["sendgrid_letters"])["letters_dry_run"] == len(planned_letters(warehouse))
    assert fake.requests == []


def test_contact_upserts_are_sized_on_the_bytes_sent(fake, tmp_path):
    # 30,000 contacts with every custom field: about 5.9 MB as compact JSON, over 6 MB with the
    # client's spaces after ',' and ':'. SendGrid refuses a body over 6 MB.
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=30_000, letters=4, audience_customers=30_000)
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("delete from marts.audiences where list_name <> 'newsletter'")
        connection.execute("update marts.audiences set first_name = 'Name-' || customer_id")

    # Each 6 MB body is checked against SendGrid's OpenAPI spec by the fake: on a loaded machine that
    # takes longer than the suite's 5 s timeout (a timeout after sending is rightly not retried).
    result = push(warehouse, sendgrid_for(fake, import_poll_timeout_seconds=60, timeout_seconds=60))

    assert result.success
    upserts = [r for r in fake.requests if r.method == "PUT" and r.path == "/v3/marketing/contacts"]
    assert len(upserts) >= 2 and all(r.status == 202 for r in upserts)
    assert max(r.body_bytes_len for r in upserts) <= 6_000_000
    assert len(fake.list_members("newsletter")) == 30_000


@pytest.mark.parametrize("errors_url", ["not a url", "file:///etc/passwd", "http://[broken"])
def test_an_errors_url_that_is_not_a_url_is_recorded_not_a_crash(fake, warehouse, errors_url):
    fake.reject_contacts_on_import([email_of(3)], message="invalid")
    fake.report_errors_url(errors_url)

    result = push(warehouse, sendgrid_for(fake))

    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        errors = [row[0] for row in connection.execute(
            "select errors from activation.contact_import_jobs where status = 'errored'"
        ).fetchall()]
    assert errors and all("errors_url is not an http(s) URL" in error for error in errors)
    assert all("root:" not in error for error in errors)
    assert email_of(3) not in json.dumps(errors)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        synced = {row[0] for row in connection.execute("select customer_id from activation.contact_state").fetchall()}
    assert customer_id_of(3) not in synced, "without the error file the chunk is retried on the next push"
