"""Delivery, open, click, bounce and unsubscribe rates per letter type, from events posted to the real receiver."""

from __future__ import annotations

import time

from lifecycle_assets.webhook.signing import new_private_key
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid
from lifecycle_assets_tests.fake_sendgrid.events import FakeEventWebhook
from lifecycle_assets_tests.test_activation.conftest import (
    API_KEY,
    materialization_metadata,
    planned_letters,
    push,
    sendgrid_for,
)
from lifecycle_assets_tests.test_activation.sample_marts import TEMPLATES, customer_id_of

from .receiver import WebhookReceiver, sendgrid_event
from .warehouse import copy_marts, sensor_ingests_webhook_files, shop_with_plan

CUSTOMERS = 20  # customer n gets one letter of type TEMPLATES[n % 4]: 5 letters of each type


def test_engagement_rates_per_letter_type_sit_beside_the_ledger_totals(tmp_path):
    landing, warehouse, sample = shop_with_plan(tmp_path, CUSTOMERS, letters=CUSTOMERS)
    copy_marts(warehouse, sample, instances=1)
    letter_of = {letter_key.split(":")[1]: letter_key for letter_key in planned_letters(warehouse)}
    key = new_private_key()

    with FakeSendGrid(api_key=API_KEY) as fake, WebhookReceiver(landing, private_key=key) as receiver:
        with FakeEventWebhook(fake, receiver.url, key) as webhook:
            push(warehouse, sendgrid_for(fake))
            deadline = time.monotonic() + 60
            while webhook.pending():  # processed + delivered for each of the 20 letters
                assert time.monotonic() < deadline
                time.sleep(0.1)

        def event(name: str, n: int, copy: int = 0, **extra) -> dict:
            event = sendgrid_event(name, n, customer_id=customer_id_of(n), letter_key=letter_of[customer_id_of(n)], **extra)
            return {**event, "sg_event_id": f"{event['sg_event_id']}-{copy}"}

        # welcome: customers 0, 4, 8, 12, 16. Two of them open (customer 0 twice), one clicks, one unsubscribes.
        # birthday: customers 3, 7, 11, 15, 19. One bounces.
        assert receiver.post([
            event("open", 0), event("open", 0, copy=1), event("open", 4), event("click", 0),
            event("unsubscribe", 8), event("bounce", 3, type="bounce"),
        ]).status_code == 200

        sensor_ingests_webhook_files(landing, warehouse)
        metadata = materialization_metadata(push(warehouse, sendgrid_for(fake)), ["activation", "sendgrid_letters"])

    assert metadata["ledger_accepted_total"] == CUSTOMERS
    welcome, birthday = (name for name, _ in TEMPLATES if name in ("welcome", "birthday"))
    assert metadata[f"engagement_{welcome}_delivery_rate"] == 1.0
    assert metadata[f"engagement_{welcome}_open_rate"] == 2 / 5
    assert metadata[f"engagement_{welcome}_click_rate"] == 1 / 5
    assert metadata[f"engagement_{welcome}_unsubscribe_rate"] == 1 / 5
    assert metadata[f"engagement_{welcome}_bounce_rate"] == 0.0
    assert metadata[f"engagement_{birthday}_bounce_rate"] == 1 / 5
    assert metadata[f"engagement_{birthday}_open_rate"] == 0.0
    assert all(isinstance(value, float) for name, value in metadata.items() if name.startswith("engagement_"))
    assert "@" not in metadata["engagement"]
