"""The Event Webhook receiver as SendGrid sees it: a real uvicorn process on 127.0.0.1, signed posts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from lifecycle_assets.webhook.mapping import EVENT_TYPE_BY_SENDGRID_EVENT
from lifecycle_assets.webhook.signing import new_private_key, public_key_as_sendgrid_shows_it
from lifecycle_assets_tests.ingest_harness import run_ingest, write_landing_file

from .receiver import WebhookReceiver, landed_rows, sendgrid_event

MAX_BYTES = 64 * 1024


@pytest.fixture
def receiver(tmp_path):
    with WebhookReceiver(tmp_path / "landing", max_bytes=MAX_BYTES) as running:
        yield running


def test_every_sendgrid_event_type_lands_as_an_interaction_that_ingest_accepts(receiver, tmp_path):
    today = datetime.now(UTC).date().isoformat()
    write_landing_file(
        receiver.landing_dir, "customers", today, "customers.jsonl",
        [{"customer_id": "C00001", "email": "customer1@example.com", "registered_at": "2026-01-01T00:00:00",
          "marketing_consent": "true"}],
    )
    events = [
        sendgrid_event(name, n, letter_key="welcome_day0:C00001:1", asm_group_id=4242)
        for n, name in enumerate(EVENT_TYPE_BY_SENDGRID_EVENT)
    ] + [sendgrid_event("bounce", 99, letter_key="welcome_day0:C00001:1", type="blocked")]

    answer = receiver.post(events)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": len(events), "stored": len(events)}
    files = list(receiver.landing_dir.glob(f"interactions/date={today}/sendgrid-*.jsonl"))
    assert len(files) == 1
    assert "@" not in files[0].read_text()  # no address is copied into the warehouse

    run = run_ingest(receiver.landing_dir, tmp_path / "warehouse.duckdb", today)
    stored = dict(run.query("select event_id, event_type from raw.interactions where customer_id = 'C00001'"))
    assert run.query("select count(*) from quality.quarantined_rows") == [(0,)]
    assert stored == {
        **{f"sg:sg-event-{name}-{n}": expected for n, (name, expected) in enumerate(EVENT_TYPE_BY_SENDGRID_EVENT.items())},
        "sg:sg-event-bounce-99": "blocked",
    }
    assert {row[0] for row in run.query("select distinct letter_key from raw.interactions")} == {"welcome_day0:C00001:1"}
    assert stored["sg:sg-event-spamreport-7"] == "spam_report"


def _body_over_limit() -> bytes:
    return json.dumps([sendgrid_event("open", n, padding="x" * 1000) for n in range(80)]).encode()


def rejections() -> dict:
    """Each bad request and its status; built when used, so the 'minutes old/ahead' are relative to now."""
    return {
        "unsigned": (dict(headers={"X-Twilio-Email-Event-Webhook-Signature": None, "X-Twilio-Email-Event-Webhook-Timestamp": None}), 401),
        "signature only, no timestamp": (dict(headers={"X-Twilio-Email-Event-Webhook-Timestamp": None}), 401),
        "signed by another key": (dict(key=new_private_key()), 403),
        "signature not base64": (dict(headers={"X-Twilio-Email-Event-Webhook-Signature": "not*base64"}), 403),
        "timestamp 6 minutes old": (dict(timestamp=int(time.time()) - 360), 403),
        "timestamp 6 minutes ahead": (dict(timestamp=int(time.time()) + 360), 403),
        "timestamp not a number": (dict(headers={"X-Twilio-Email-Event-Webhook-Timestamp": "yesterday"}), 403),
        "body over the limit": (dict(body=_body_over_limit()), 413),
        "malformed JSON": (dict(body=b'[{"event": "open",'), 400),
        "JSON object, not an array": (dict(body=b'{"event": "open"}'), 400),
        "array of strings": (dict(body=b'["open"]'), 400),
        "not UTF-8": (dict(body=b'[{"event": "\xff"}]'), 400),
    }


def test_bad_requests_get_a_clear_4xx_and_nothing_is_written(receiver):
    statuses, cases = {}, rejections()
    for case, (kwargs, _) in cases.items():
        answer = receiver.post([sendgrid_event("open", 1)], **kwargs)
        statuses[case] = answer.status_code
        assert answer.json()["error"], case
    assert statuses == {case: status for case, (_, status) in cases.items()}
    assert not list(receiver.landing_dir.rglob("*.jsonl*"))
    assert receiver.post([sendgrid_event("open", 1)]).status_code == 200  # the same request, properly signed


def test_a_retried_batch_is_stored_once_even_after_a_restart(receiver):
    batch = [sendgrid_event("delivered", n, letter_key=f"welcome_day0:C{n:05d}:1") for n in range(50)]
    assert receiver.post(batch).json() == {"received": 50, "stored": 50}
    assert receiver.post(batch).json() == {"received": 50, "stored": 0}
    receiver.kill()
    receiver.start()
    overlapping = batch[25:] + [sendgrid_event("open", n) for n in range(10)]
    assert receiver.post(overlapping).json() == {"received": 35, "stored": 10}
    event_ids = [row["event_id"] for row in landed_rows(receiver.landing_dir)]
    assert len(event_ids) == len(set(event_ids)) == 60


def test_a_key_that_is_not_sendgrids_stops_the_command_without_echoing_it(tmp_path):
    canary = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE-not-a-key-canary"
    env = {"SENDGRID_WEBHOOK_PUBLIC_KEY": canary, "LIFECYCLE_LANDING_DIR": str(tmp_path), "PATH": ""}
    done = subprocess.run([sys.executable, "-m", "lifecycle_assets.webhook", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key" in done.stderr
    assert canary not in done.stdout + done.stderr
    # The key exactly as SendGrid shows it (one base64 line, maybe with a trailing newline) is accepted.
    key = public_key_as_sendgrid_shows_it(new_private_key())
    assert not list(tmp_path.iterdir())
    from lifecycle_assets.webhook.app import load_verifier

    assert load_verifier(key + "\n").public_key is not None
