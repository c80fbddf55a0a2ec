"""A killed push leaves letters unknown; SendGrid's own events settle them and the next push sends each letter once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import duckdb

from lifecycle_assets.webhook.signing import new_private_key
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid, Fault
from lifecycle_assets_tests.fake_sendgrid.events import FakeEventWebhook
from lifecycle_assets_tests.test_activation.conftest import API_KEY, ledger_rows, planned_letters, push, sendgrid_for
from lifecycle_assets_tests.test_activation.test_kill_and_rerun import start_push_process

from .receiver import WebhookReceiver
from .warehouse import copy_marts, sensor_ingests_webhook_files, shop_with_plan

HORIZON_SECONDS = 4.0  # SendGrid's is 24 h; the rule is the same at any scale


def test_unknown_letters_resolve_from_the_fakes_events_and_the_next_push_sends_each_once(tmp_path):
    # 4 letter types x 300 letters (one per customer): 4 Mail Send requests, one at a time.
    landing, warehouse, sample = shop_with_plan(tmp_path, customers=1200, letters=1200)
    copy_marts(warehouse, sample, instances=1)
    key = new_private_key()

    with FakeSendGrid(api_key=API_KEY) as fake, WebhookReceiver(landing, private_key=key) as receiver:
        # The first request vanishes before SendGrid acts on it (unknown, never sent); the others are held
        # 1 s each, and the push is killed while the third is in flight (unknown, but SendGrid sends it).
        fake.inject(Fault(kind="drop_before_effect", path_prefix="/v3/mail/send", times=1))
        fake.inject(Fault(kind="latency", path_prefix="/v3/mail/send", times=100, seconds=1.0))
        webhook = FakeEventWebhook(fake, receiver.url, key, delivery_delay_seconds=HORIZON_SECONDS + 1).start()
        try:
            process = start_push_process(fake, warehouse, tmp_path)
            deadline = time.monotonic() + 120
            while fake.request_count(method="POST", path_prefix="/v3/mail/send") < 3:
                assert process.poll() is None and time.monotonic() < deadline, "the push ended before the kill"
                time.sleep(0.05)
            time.sleep(0.3)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            fake.reset_faults()
            time.sleep(1.0)  # the fake finishes the request the dead process sent

            states = Counter(row[0] for row in ledger_rows(warehouse).values())
            assert states["unknown"] > 0 and states["claimed"] > 0, states  # the dropped request; the one in flight

            # SendGrid posts processed at once and delivered later; wait until all of it has reached the receiver.
            deadline = time.monotonic() + 60
            while webhook.pending():
                assert time.monotonic() < deadline, "the fake's events did not reach the receiver"
                time.sleep(0.2)
        finally:
            webhook.stop()

        sensor_ingests_webhook_files(landing, warehouse)
        push(warehouse, sendgrid_for(fake, webhook_retry_horizon_seconds=HORIZON_SECONDS))

        sent = Counter(message["custom_args"]["letter_key"] for message in fake.sent_messages())
    planned = set(planned_letters(warehouse))
    assert set(sent) == planned, "every planned letter was delivered"
    assert max(sent.values()) == 1, "no letter was delivered twice"
    assert {row[0] for row in ledger_rows(warehouse).values()} == {"accepted"}
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        decisions = dict(connection.execute(
            "select decision, count(*) from activation.unknown_resolutions group by decision"
        ).fetchall())
    assert decisions["accepted"] > 0 and decisions["released"] > 0, decisions
    print({"letters": len(planned), "resolved_accepted": decisions["accepted"], "released": decisions["released"],
           "delivered_twice": sum(1 for count in sent.values() if count > 1)})
