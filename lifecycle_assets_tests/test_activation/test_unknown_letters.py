"""Letters whose outcome is unknown: never retried after a gateway error, bounded by a setting, resolved in bulk."""

from __future__ import annotations

import duckdb
import pytest

from lifecycle_assets.activation import ledger
from lifecycle_assets.activation.__main__ import main as activation_cli
from lifecycle_assets_tests.fake_sendgrid import Fault

from .conftest import ledger_rows, planned_letters, push, sendgrid_for
from .sample_marts import write_sample_marts


def sent_count_by_letter_key(fake) -> dict[str, int]:
    sent: dict[str, int] = {}
    for message in fake.sent_messages():
        key = message["custom_args"]["letter_key"]
        sent[key] = sent.get(key, 0) + 1
    return sent


def keys_in_state(warehouse, state: str) -> set[str]:
    return {key for key, row in ledger_rows(warehouse).items() if row[0] == state}


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_error_after_sendgrid_accepted_a_mail_send_is_unknown_and_not_resent(fake, warehouse, status):
    # SendGrid accepts the request, the gateway in front of it answers 502/504.
    fake.inject(Fault(kind="error_after_effect", path_prefix="/v3/mail/send", status=status, times=1))

    result = push(warehouse, sendgrid_for(fake))

    sent = sent_count_by_letter_key(fake)
    assert max(sent.values()) == 1, "a letter SendGrid already accepted was sent again"
    assert set(sent) == set(planned_letters(warehouse))
    unknown = keys_in_state(warehouse, "unknown")
    assert unknown and unknown <= set(sent)
    assert keys_in_state(warehouse, "accepted") == set(sent) - unknown
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity.value == "ERROR"


def test_a_503_before_sendgrid_acted_is_still_retried(fake, warehouse):
    fake.inject(Fault(kind="server_error", path_prefix="/v3/mail/send", status=503, times=2))

    result = push(warehouse, sendgrid_for(fake))

    assert set(sent_count_by_letter_key(fake)) == set(planned_letters(warehouse))
    assert keys_in_state(warehouse, "unknown") == set()
    assert all(check.passed for check in result.get_asset_check_evaluations())


def test_unknown_letters_per_cut_connection_are_bounded_by_letters_per_request(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=400, letters=400)
    fake.inject(Fault(kind="drop_after_body", path_prefix="/v3/mail/send", times=1))

    push(warehouse, sendgrid_for(fake, letters_per_request=7, max_concurrent_requests=1))

    assert len(keys_in_state(warehouse, "unknown")) == 7
    mail_sends = [r for r in fake.requests if r.path == "/v3/mail/send"]
    assert len(mail_sends) == sum((count + 6) // 7 for count in (100, 100, 100, 100))


def cli(warehouse, monkeypatch, *arguments: str) -> int:
    monkeypatch.setenv("LIFECYCLE_DUCKDB_PATH", str(warehouse))
    return activation_cli(list(arguments))


def test_bulk_release_by_letter_type_run_request_and_age_then_the_next_push_sends_them_once(fake, tmp_path, monkeypatch, capsys):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=40)
    # Requests go template by template (abandoned_cart, birthday, welcome, winback), 10 letters each:
    # the connection is cut before SendGrid acts on the first two.
    fake.inject(Fault(kind="drop_before_effect", path_prefix="/v3/mail/send", times=2))
    push(warehouse, sendgrid_for(fake, max_concurrent_requests=1))
    unknown = keys_in_state(warehouse, "unknown")
    assert {key.split(":")[0] for key in unknown} == {"abandoned_cart", "birthday"}
    assert not unknown & set(sent_count_by_letter_key(fake))

    assert cli(warehouse, monkeypatch, "unknown") == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 1 + 2, "one line per Mail Send request, not per letter"
    with pytest.raises(SystemExit):
        cli(warehouse, monkeypatch, "release")  # no filter: refused, nothing released
    assert keys_in_state(warehouse, "unknown") == unknown

    assert cli(warehouse, monkeypatch, "release", "--older-than-hours", "1") == 0
    assert keys_in_state(warehouse, "unknown") == unknown, "claimed seconds ago: not old enough"
    assert cli(warehouse, monkeypatch, "release", "--letter-type", "birthday", "--dry-run") == 0
    assert keys_in_state(warehouse, "unknown") == unknown
    assert cli(warehouse, monkeypatch, "release", "--letter-type", "birthday") == 0
    assert {key.split(":")[0] for key in keys_in_state(warehouse, "unknown")} == {"abandoned_cart"}

    with duckdb.connect(str(warehouse)) as connection:
        [(run_id, request_id, *_)] = ledger.unknown_requests(connection)
    assert cli(warehouse, monkeypatch, "release", "--run", "some-other-run") == 0
    assert keys_in_state(warehouse, "unknown"), "another run's filter releases nothing"
    assert cli(warehouse, monkeypatch, "release", "--run", run_id, "--request", request_id) == 0
    assert keys_in_state(warehouse, "unknown") == set()

    result = push(warehouse, sendgrid_for(fake))

    sent = sent_count_by_letter_key(fake)
    assert set(sent) == set(planned_letters(warehouse)) and max(sent.values()) == 1
    assert keys_in_state(warehouse, "accepted") == set(planned_letters(warehouse))
    assert all(check.passed for check in result.get_asset_check_evaluations())


def test_one_letter_key_as_evidence_settles_its_whole_request_as_accepted(fake, warehouse, monkeypatch):
    fake.inject(Fault(kind="drop_after_body", path_prefix="/v3/mail/send", times=1))
    push(warehouse, sendgrid_for(fake))
    unknown = keys_in_state(warehouse, "unknown")
    assert len(unknown) > 1
    some_letter = sorted(unknown)[0]

    with duckdb.connect(str(warehouse)) as connection:
        settled = ledger.resolve_unknown(connection, [some_letter], evidence="processed event")
    assert set(settled) == unknown
    result = push(warehouse, sendgrid_for(fake))

    assert keys_in_state(warehouse, "accepted") == set(planned_letters(warehouse))
    assert max(sent_count_by_letter_key(fake).values()) == 1
    assert all(check.passed for check in result.get_asset_check_evaluations())
