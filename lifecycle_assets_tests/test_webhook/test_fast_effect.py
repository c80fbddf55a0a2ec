"""An unsubscribe, group unsubscribe, bounce or spam report posted to the real endpoint takes effect at the next push."""

from __future__ import annotations

import json
import time

import duckdb

from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid
from lifecycle_assets_tests.test_activation.conftest import API_KEY, push, sendgrid_for
from lifecycle_assets_tests.test_activation.sample_marts import customer_id_of, email_of

from .receiver import WebhookReceiver, sendgrid_event
from .warehouse import copy_marts, sensor_ingests_webhook_files, shop_with_plan, today

CUSTOMERS = 12
# customer number -> the SendGrid event that should stop every letter and list membership
SUPPRESSING = {1: ("unsubscribe", {}), 2: ("group_unsubscribe", {"asm_group_id": 4242}),
               3: ("bounce", {"type": "bounce"}), 4: ("spamreport", {})}
BLOCKED_ONLY = 5  # a temporary "blocked" bounce: still a customer we write to


def _sent_to(fake: FakeSendGrid, since: int = 0) -> list[str]:
    return [message["to"] for message in fake.sent_messages()[since:]]


def _lists_holding(fake: FakeSendGrid, email: str) -> list[str]:
    return sorted(name for name in fake.lists() if email in fake.list_members(name))


def test_webhook_events_suppress_letters_and_list_membership_at_the_next_push(tmp_path):
    landing, warehouse, sample = shop_with_plan(tmp_path, CUSTOMERS, letters=2 * CUSTOMERS)
    copy_marts(warehouse, sample, instances=1)

    with FakeSendGrid(api_key=API_KEY) as fake:
        sendgrid = sendgrid_for(fake)
        push(warehouse, sendgrid)
        first_push = len(fake.sent_messages())
        for n in [*SUPPRESSING, BLOCKED_ONLY]:
            assert email_of(n) in _sent_to(fake) and "newsletter" in _lists_holding(fake, email_of(n))

        # SendGrid reports what the customers did, to the real receiver.
        events = [
            sendgrid_event(name, n, customer_id=customer_id_of(n), letter_key=f"letter-of-{n}", **extra)
            for n, (name, extra) in SUPPRESSING.items()
        ] + [sendgrid_event("bounce", BLOCKED_ONLY, customer_id=customer_id_of(BLOCKED_ONLY), type="blocked")]
        with WebhookReceiver(landing) as receiver:
            posted = time.monotonic()
            assert receiver.post(events).status_code == 200

        # The webhook sensor sees the new file and ingests today's interactions.
        assert sensor_ingests_webhook_files(landing, warehouse) == [today()]

        # The next day's build plans a second letter for everyone; audiences are as the daily run built them.
        # (The first push is moved to yesterday: one letter of a type per inbox and day would hold it back today.)
        with duckdb.connect(str(warehouse)) as connection:
            connection.execute("update activation.send_ledger set claimed_at = claimed_at - interval 1 day")
        copy_marts(warehouse, sample, instances=2)
        push(warehouse, sendgrid)
        left_lists = time.monotonic() - posted

        second_push = _sent_to(fake, since=first_push)
        for n in SUPPRESSING:
            assert email_of(n) not in second_push, SUPPRESSING[n]
            assert _lists_holding(fake, email_of(n)) == [], SUPPRESSING[n]
        assert email_of(BLOCKED_ONLY) in second_push and "newsletter" in _lists_holding(fake, email_of(BLOCKED_ONLY))
        assert len(second_push) == CUSTOMERS - len(SUPPRESSING)
    print(json.dumps({"seconds_from_event_posted_to_lists_left": round(left_lists, 1)}))
