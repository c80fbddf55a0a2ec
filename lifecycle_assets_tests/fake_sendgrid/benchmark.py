"""How fast the fake SendGrid validates and accepts push-sized requests, through the official client.

Run: /work/main/.venv/bin/python -m lifecycle_assets_tests.fake_sendgrid.benchmark
Measures the fake itself (spec validation + state), so push benchmarks can subtract it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import sendgrid

from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid

LETTERS = 100_000
LETTERS_PER_REQUEST = 1000
CONTACTS = 100_000
CONTACTS_PER_REQUEST = 25_000


def _client(fake: FakeSendGrid):
    return sendgrid.SendGridAPIClient(api_key=fake.api_key, host=fake.base_url).client


def main() -> None:
    with FakeSendGrid() as fake:
        client = _client(fake)
        template_id = client.templates.post(request_body={"name": "bench", "generation": "dynamic"}).to_dict["id"]
        client.templates._(template_id).versions.post(request_body={"name": "v1", "subject": "s", "html_content": "<p/>"})
        stage_field = client.marketing.field_definitions.post(request_body={"name": "stage", "field_type": "Text"}).to_dict["id"]
        list_id = client.marketing.lists.post(request_body={"name": "bench"}).to_dict["id"]

        def batch(start: int) -> dict:
            return {
                "from": {"email": "letters@shop.example"},
                "template_id": template_id,
                "asm": {"group_id": 1},
                "categories": ["lifecycle"],
                "personalizations": [
                    {
                        "to": [{"email": f"customer{i}@example.com", "name": f"Customer {i}"}],
                        "dynamic_template_data": {"first_name": f"Customer {i}", "stage": "active", "recommendations": ["a", "b", "c"]},
                        "custom_args": {"letter_id": f"letter-{i}", "segment": "champions"},
                    }
                    for i in range(start, start + LETTERS_PER_REQUEST)
                ],
            }

        operation = fake.catalog.operation("POST", "/v3/mail/send")
        one = batch(0)
        started = time.perf_counter()
        assert operation.validate_body(one) == []
        print(f"schema validation of one {LETTERS_PER_REQUEST}-personalization body: {time.perf_counter() - started:.3f} s")

        started = time.perf_counter()
        client.mail.send.post(request_body=one)
        print(f"one {LETTERS_PER_REQUEST}-personalization mail send, round trip: {time.perf_counter() - started:.3f} s")

        bodies = [batch(start) for start in range(LETTERS_PER_REQUEST, LETTERS, LETTERS_PER_REQUEST)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda body: _client(fake).mail.send.post(request_body=body), bodies))
        elapsed = time.perf_counter() - started
        print(f"{len(bodies)} more mail sends, 4 threads: {elapsed:.2f} s; letters recorded: {len(fake.sent_messages())}")

        started = time.perf_counter()
        for start in range(0, CONTACTS, CONTACTS_PER_REQUEST):
            contacts = [
                {"email": f"customer{i}@example.com", "first_name": f"Customer {i}", "custom_fields": {stage_field: "active"}}
                for i in range(start, start + CONTACTS_PER_REQUEST)
            ]
            client.marketing.contacts.put(request_body={"list_ids": [list_id], "contacts": contacts})
        elapsed = time.perf_counter() - started
        print(f"{CONTACTS} contacts in {CONTACTS // CONTACTS_PER_REQUEST} upserts: {elapsed:.2f} s; list size {len(fake.list_members('bench'))}")


if __name__ == "__main__":
    main()
