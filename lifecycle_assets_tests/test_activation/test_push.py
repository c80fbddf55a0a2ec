"""The SendGrid push against the fake over real HTTP: what ends up in SendGrid, and what never does."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.activation.assets import activation_assets, activation_checks
from lifecycle_assets.activation.audiences import CUSTOM_FIELDS
from lifecycle_assets.activation.templates import TEMPLATES_DIR, load_templates
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid, Fault

from .conftest import (
    API_KEY,
    UNSUBSCRIBE_GROUP,
    ledger_rows,
    materialization_metadata,
    planned_letters,
    push,
    sendgrid_for,
)
from .sample_marts import STAGES, customer_id_of, email_of, write_audiences, write_sample_marts


def sent_by_letter_key(fake: FakeSendGrid) -> dict[str, list[dict]]:
    sent: dict[str, list[dict]] = {}
    for message in fake.sent_messages():
        sent.setdefault(message["custom_args"]["letter_key"], []).append(message)
    return sent


def test_first_push_puts_every_letter_and_audience_into_sendgrid(fake, warehouse):
    result = push(warehouse, sendgrid_for(fake))

    planned = planned_letters(warehouse)
    sent = sent_by_letter_key(fake)
    assert set(sent) == set(planned)
    templates = fake.templates()
    for letter_key, (email, template_name, personalisation) in planned.items():
        [message] = sent[letter_key]
        assert message["to"] == email
        assert message["template_id"] == templates[f"lifecycle:{template_name}"]["id"]
        assert {k: v for k, v in message["dynamic_template_data"].items()} == {
            "first_name": json.loads(personalisation)["first_name"],
            **json.loads(personalisation),
        }
        assert message["categories"] == ["lifecycle", template_name]
        assert message["asm"] == {"group_id": UNSUBSCRIBE_GROUP}
        assert message["from"]["email"] == "shop@example.com"
    assert {state for state, *_ in ledger_rows(warehouse).values()} == {"accepted"}
    assert all(message_id for _, message_id, *_ in ledger_rows(warehouse).values())

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        expected = connection.execute("select list_name, lower(email) from marts.audiences").fetchall()
    by_list: dict[str, set[str]] = {}
    for list_name, email in expected:
        by_list.setdefault(list_name, set()).add(email)
    assert set(fake.lists()) == set(by_list)
    for list_name, emails in by_list.items():
        assert fake.list_members(list_name) == emails
    contact = fake.contacts()[email_of(7)]
    assert contact["custom_fields"]["lifecycle_stage"] == STAGES[7 % len(STAGES)]
    assert contact["custom_fields"]["customer_id"] == customer_id_of(7)
    assert set(fake.field_definitions()) >= set(CUSTOM_FIELDS)

    letters = materialization_metadata(result, ["sendgrid_letters"])
    assert letters["letters_accepted"] == len(planned)
    assert letters["mail_send_requests"] == len({template for _, template, _ in planned.values()})


def test_rerun_without_change_sends_nothing_new(fake, warehouse):
    push(warehouse, sendgrid_for(fake))
    before = len(fake.requests)
    sent_before = len(fake.sent_messages())

    result = push(warehouse, sendgrid_for(fake))

    new_requests = fake.requests[before:]
    assert len(fake.sent_messages()) == sent_before
    # Only the template listing that confirms SendGrid still holds our templates: no suppression
    # pulls and no template lookups when there is no letter to send, no audience request at all.
    assert {(r.method, r.path) for r in new_requests} == {("GET", "/v3/templates")}
    assert materialization_metadata(result, ["sendgrid_audiences"])["requests_made"] == 0
    assert materialization_metadata(result, ["sendgrid_letters"])["requests_made"] == 0


def test_audience_change_sends_only_the_diff(fake, warehouse):
    push(warehouse, sendgrid_for(fake))
    with duckdb.connect(str(warehouse)) as connection:
        # Customer 3 leaves (consent withdrawn) and every customer moves one stage on.
        write_audiences(connection, [n for n in range(40) if n != 3], as_of=__import__("datetime").date(2024, 3, 2), stage_shift=1)
    before = len(fake.requests)

    result = push(warehouse, sendgrid_for(fake))

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        expected = connection.execute("select list_name, lower(email) from marts.audiences").fetchall()
    by_list: dict[str, set[str]] = {}
    for list_name, email in expected:
        by_list.setdefault(list_name, set()).add(email)
    for list_name in fake.lists():
        assert fake.list_members(list_name) == by_list.get(list_name, set()), list_name
    metadata = materialization_metadata(result, ["sendgrid_audiences"])
    assert metadata["list_removes"] > 0 and metadata["list_adds"] > 0
    puts = [r for r in fake.requests[before:] if r.method == "PUT"]
    assert 0 < len(puts) <= len(fake.lists())
    assert fake.contacts()[email_of(7)]["custom_fields"]["lifecycle_stage"] == STAGES[8 % len(STAGES)]


def test_never_sends_to_suppressed_unsubscribed_or_unconsenting_customers(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=30, without_consent=frozenset({1}), unsubscribed_in_interactions=frozenset({2}))
    fake.add_suppression("unsubscribes", email_of(3))
    fake.add_suppression("bounces", email_of(4))
    fake.add_suppression("spam_reports", email_of(5))
    fake.add_suppression("group", email_of(6), group_id=UNSUBSCRIBE_GROUP)
    fake.add_suppression("invalid_emails", email_of(8))

    push(warehouse, sendgrid_for(fake))

    received = {message["to"] for message in fake.sent_messages()}
    never = {email_of(n) for n in (1, 2, 3, 4, 5, 6, 8)}
    assert received == {email_of(n) for n in range(30)} - never
    reasons = {key.split(":")[1]: row[3] for key, row in ledger_rows(warehouse).items() if row[0] == "suppressed"}
    assert reasons == {
        customer_id_of(1): "no_consent",
        customer_id_of(2): "interaction_unsubscribe",
        customer_id_of(3): "sendgrid_unsubscribes",
        customer_id_of(4): "sendgrid_bounces",
        customer_id_of(5): "sendgrid_spam_reports",
        customer_id_of(6): "sendgrid_group_unsubscribe",
        customer_id_of(8): "sendgrid_invalid_emails",
    }


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([Fault(kind="rate_limit", path_prefix="/v3/mail/send", times=3, reset_in_seconds=0.2)], id="rate-limited"),
        pytest.param([Fault(kind="server_error", path_prefix="/v3/mail/send", times=3, status=503)], id="server-errors"),
        pytest.param(
            [
                Fault(kind="server_error", path_prefix="/v3/marketing/contacts", times=2, status=500),
                Fault(kind="rate_limit", path_prefix="/v3/marketing/lists", times=2, reset_in_seconds=0.1),
                Fault(kind="drop_after_body", path_prefix="/v3/marketing/contacts", method="PUT", times=1),
                Fault(kind="latency", path_prefix="/v3/mail/send", times=2, seconds=0.3),
                Fault(kind="server_error", path_prefix="/v3/mail/send", times=1, status=500),
            ],
            id="mixed-everywhere",
        ),
    ],
)
def test_fault_injected_run_delivers_every_letter_exactly_once(fake, warehouse, faults):
    for fault in faults:
        fake.inject(fault)

    push(warehouse, sendgrid_for(fake))

    sent = sent_by_letter_key(fake)
    assert set(sent) == set(planned_letters(warehouse))
    assert all(len(messages) == 1 for messages in sent.values())
    assert {state for state, *_ in ledger_rows(warehouse).values()} == {"accepted"}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        newsletter = {row[0] for row in connection.execute("select lower(email) from marts.audiences where list_name = 'newsletter'").fetchall()}
    assert fake.list_members("newsletter") == newsletter


def test_dropped_answer_on_mail_send_leaves_letters_unknown_and_never_resends_them(fake, warehouse):
    fake.inject(Fault(kind="drop_after_body", path_prefix="/v3/mail/send", times=1))

    first = push(warehouse, sendgrid_for(fake))
    push(warehouse, sendgrid_for(fake))

    ledger = ledger_rows(warehouse)
    unknown = {key for key, row in ledger.items() if row[0] == "unknown"}
    assert unknown, "one request's letters have no answer"
    sent = sent_by_letter_key(fake)
    assert all(len(messages) == 1 for messages in sent.values())
    assert unknown <= set(sent)  # SendGrid did act on the dropped request: resending would duplicate
    assert {key for key, row in ledger.items() if row[0] == "accepted"} == set(sent) - unknown
    check = first.get_asset_check_evaluations()[0]
    assert not check.passed and check.severity.value == "ERROR"
    assert set(check.metadata["unknown_letter_keys"].value) == unknown


def test_released_unknown_letters_are_sent_on_the_next_push(fake, warehouse):
    fake.inject(Fault(kind="drop_before_effect", path_prefix="/v3/mail/send", times=1))
    push(warehouse, sendgrid_for(fake))
    unknown = sorted(key for key, row in ledger_rows(warehouse).items() if row[0] == "unknown")
    assert unknown and not set(unknown) & set(sent_by_letter_key(fake))

    push(warehouse, sendgrid_for(fake), run_config={"ops": {"activation__sendgrid_letters": {"config": {"release_unknown_letter_keys": unknown}}}})

    sent = sent_by_letter_key(fake)
    assert set(sent) == set(planned_letters(warehouse))
    assert all(len(messages) == 1 for messages in sent.values())


def test_a_rejected_personalization_fails_only_its_letter(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=20)
    with duckdb.connect(str(warehouse)) as connection:
        # A custom_args value over SendGrid's 10,000-byte limit: only this personalization is invalid.
        connection.execute(
            "update marts.letters_planned set letter_key = letter_key || repeat('x', 10001) where customer_id = ?",
            [customer_id_of(4)],
        )

    result = push(warehouse, sendgrid_for(fake))

    ledger = ledger_rows(warehouse)
    [bad_key] = [key for key in ledger if customer_id_of(4) in key]
    assert ledger[bad_key][0] == "failed"
    assert "custom_args" in ledger[bad_key][2]
    sent = sent_by_letter_key(fake)
    assert set(sent) == set(ledger) - {bad_key}
    assert all(len(messages) == 1 for messages in sent.values())
    assert materialization_metadata(result, ["sendgrid_letters"])["letters_failed"] == 1


def test_wrong_key_stops_the_run_without_echoing_it(fake, warehouse):
    secret = "SG.this-must-never-be-printed"
    result = push(warehouse, sendgrid_for(fake, api_key=secret), raise_on_error=False)

    assert not result.success
    failures = [event for event in result.all_events if event.is_step_failure]
    assert failures
    messages = " ".join(str(event.event_specific_data.error.message) for event in failures)
    assert "SendGrid refused the API key (401)" in messages
    assert secret not in messages
    assert all(secret not in str(event) for event in result.all_events)
    assert fake.sent_messages() == []


def test_without_api_key_requests_go_to_the_outbox_and_a_real_run_still_sends(fake, warehouse, tmp_path):
    outbox = tmp_path / "outbox"
    dry = push(warehouse, sendgrid_for(fake, api_key=None, outbox_dir=str(outbox)))

    assert fake.requests == []
    [outbox_file] = list(outbox.glob("*.jsonl"))
    requests = [json.loads(line) for line in outbox_file.read_text().splitlines()]
    mail = [r for r in requests if r["path"] == "/v3/mail/send"]
    assert sum(len(r["body"]["personalizations"]) for r in mail) == len(planned_letters(warehouse))
    assert API_KEY not in outbox_file.read_text()
    assert {row[0] for row in ledger_rows(warehouse).values()} == {"dry_run"}
    assert materialization_metadata(dry, ["sendgrid_letters"])["letters_dry_run"] == len(planned_letters(warehouse))

    push(warehouse, sendgrid_for(fake))

    assert set(sent_by_letter_key(fake)) == set(planned_letters(warehouse))
    assert {row[0] for row in ledger_rows(warehouse).values()} == {"accepted"}


def test_template_sync_creates_once_and_versions_only_changes(fake, warehouse, tmp_path):
    push(warehouse, sendgrid_for(fake))
    templates = fake.templates()
    assert set(templates) == {f"lifecycle:{name}" for name in load_templates()}
    assert all(len(t["versions"]) == 1 and t["versions"][0]["active"] for t in templates.values())
    welcome = load_templates()["welcome"]
    assert templates["lifecycle:welcome"]["versions"][0]["subject"] == welcome.subject

    changed = tmp_path / "templates"
    import shutil

    shutil.copytree(TEMPLATES_DIR, changed)
    (changed / "welcome" / "subject.txt").write_text("Welcome, new subject\n")
    push(warehouse, sendgrid_for(fake, templates_dir=str(changed)))

    after = fake.templates()
    assert len(after["lifecycle:welcome"]["versions"]) == 2
    active = [v for v in after["lifecycle:welcome"]["versions"] if v["active"]]
    assert [v["subject"] for v in active] == ["Welcome, new subject"]
    assert all(len(after[name]["versions"]) == 1 for name in after if name != "lifecycle:welcome")


def test_a_change_to_the_shared_letter_layout_versions_every_letter_type(fake, warehouse, tmp_path):
    push(warehouse, sendgrid_for(fake))
    import shutil

    changed = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, changed)
    layout = changed / "_layout" / "letter.mjml"
    layout.write_text(layout.read_text().replace("Unsubscribe</a>", "Unsubscribe from these letters</a>"))
    push(warehouse, sendgrid_for(fake, templates_dir=str(changed)))

    for name, template in fake.templates().items():
        active = [v for v in template["versions"] if v["active"]]
        assert len(template["versions"]) == 2, name
        assert "Unsubscribe from these letters" in active[0]["html_content"], name
        assert "[[message]]" not in active[0]["html_content"] and "[[products_heading]]" not in active[0]["html_content"]


def test_a_contact_sendgrid_rejects_inside_its_import_is_recorded_and_alone_retried_next_push(fake, warehouse):
    rejected = email_of(3)
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        audiences = connection.execute("select list_name, lower(email) from marts.audiences").fetchall()
    by_list: dict[str, set[str]] = {}
    for list_name, email in audiences:
        by_list.setdefault(list_name, set()).add(email)
    rejected_lists = {list_name for list_name, emails in by_list.items() if rejected in emails}
    assert len(rejected_lists) > 1  # one import row per list the contact joins
    fake.reject_contacts_on_import([rejected], message="email domain does not accept mail")

    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.materialize(
            [*activation_assets, *activation_checks],
            resources={"sendgrid": sendgrid_for(fake), "duckdb": DuckDBResource(database=str(warehouse))},
            instance=instance,
        )
        run_log = [entry.user_message or "" for entry in instance.all_logs(first.run_id)]

    assert first.success
    assert rejected not in fake.contacts()
    for list_name, emails in by_list.items():
        assert fake.list_members(list_name) == emails - {rejected}, list_name
    assert set(sent_by_letter_key(fake)) == set(planned_letters(warehouse))  # letters go on, the rejected contact's too
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        errored_jobs = connection.execute(
            "select purpose, status, errored_count, errors from activation.contact_import_jobs where errored_count > 0"
        ).fetchall()
        state = {row[0] for row in connection.execute("select email from activation.contact_state").fetchall()}
    assert sorted(purpose for purpose, *_ in errored_jobs) == sorted(f"add:{name}" for name in rejected_lists)
    for _, status, errored_count, errors in errored_jobs:
        assert (status, errored_count) == ("errored", 1)
        assert errors == json.dumps([f"customer {customer_id_of(3)}: email domain does not accept mail"])
    assert state == {email for emails in by_list.values() for email in emails} - {rejected}
    audiences_metadata = materialization_metadata(first, ["sendgrid_audiences"])
    assert audiences_metadata["import_jobs_with_errors"] == len(rejected_lists)
    assert audiences_metadata["rows_with_errors"] == len(rejected_lists)
    customer_emails = {email for _, email in audiences}
    assert any(f"reported errors for {len(rejected_lists)} row(s)" in message for message in run_log)
    assert not [message for message in run_log if any(email in message for email in customer_emails)]

    fake.clear_import_rejections()
    jobs_before = set(fake.import_jobs())
    sent_before = len(fake.sent_messages())

    second = push(warehouse, sendgrid_for(fake))

    new_jobs = [job for job_id, job in fake.import_jobs().items() if job_id not in jobs_before]
    assert [job["contact_keys"] for job in new_jobs] == [[rejected]] * len(rejected_lists)
    assert all(job["status"] == "completed" for job in new_jobs)
    for list_name, emails in by_list.items():
        assert fake.list_members(list_name) == emails, list_name
    assert fake.contacts()[rejected]["custom_fields"]["customer_id"] == customer_id_of(3)
    assert len(fake.sent_messages()) == sent_before
    retried = materialization_metadata(second, ["sendgrid_audiences"])
    assert retried["contacts_upserted"] == len(rejected_lists)  # counted per list it joined
    assert retried["list_adds"] == len(rejected_lists)
    assert (retried["import_jobs_with_errors"], retried["rows_with_errors"], retried["list_removes"]) == (0, 0, 0)
