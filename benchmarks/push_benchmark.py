"""Push throughput to the fake SendGrid on 127.0.0.1: batched push vs one request per letter.

    .venv/bin/python benchmarks/push_benchmark.py [--letters 100000] [--contacts 100000] [--baseline-sample 2000]

Letters: the real push (ledger claim -> Mail Send with up to 1000 personalizations -> settle), and
a baseline that sends one letter per request through the same code, on a sample of
`--baseline-sample` letters (sending 100k single requests would take minutes); the baseline's
rate is measured on that sample and the ratio compares rates. Contacts: the audience sync
(chunked upserts, import job polling, sync state) for `--contacts` customers in 4 lists each.
Times are wall clock, including DuckDB ledger writes and the fake's OpenAPI validation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle_assets.activation import ledger  # noqa: E402
from lifecycle_assets.activation.audiences import sync_audiences  # noqa: E402
from lifecycle_assets.activation.letters import LetterSender, push_letters  # noqa: E402
from lifecycle_assets.activation.resources import SendGridResource  # noqa: E402
from lifecycle_assets.activation.templates import load_templates, sync_templates  # noqa: E402
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid  # noqa: E402
from lifecycle_assets_tests.test_activation.sample_marts import write_sample_marts  # noqa: E402

API_KEY = "SG.benchmark-key"


def push_letters_timed(fake: FakeSendGrid, warehouse: Path, letters_per_request: int, concurrency: int) -> tuple[int, float, int]:
    resource = SendGridResource(
        api_key=API_KEY, host=fake.base_url, sender_email="shop@example.com", unsubscribe_group_id=1,
        max_concurrent_requests=concurrency, timeout_seconds=120,
    )
    session = resource.session(f"benchmark-{letters_per_request}")
    template_ids = sync_templates(session, load_templates()).template_ids
    sender = LetterSender(session, resource.sender_email, resource.sender_name, resource.unsubscribe_group_id)
    with duckdb.connect(str(warehouse)) as connection, resource.thread_pool() as pool:
        ledger.ensure_schema(connection)
        requests_before = session.stats.requests
        started = time.perf_counter()
        result = push_letters(
            connection, session, pool, sender, lambda: template_ids, "benchmark",
            max_in_flight=concurrency, letters_per_request=letters_per_request,
        )
        elapsed = time.perf_counter() - started
    assert result.failed == result.unknown == 0, result
    return result.accepted, elapsed, session.stats.requests - requests_before


def sync_contacts_timed(fake: FakeSendGrid, warehouse: Path, concurrency: int) -> tuple[int, int, float, int]:
    resource = SendGridResource(api_key=API_KEY, host=fake.base_url, max_concurrent_requests=concurrency, timeout_seconds=300)
    session = resource.session("benchmark-audiences")
    with duckdb.connect(str(warehouse)) as connection, resource.thread_pool() as pool:
        ledger.ensure_schema(connection)
        started = time.perf_counter()
        result = sync_audiences(connection, session, pool, "benchmark", import_poll_timeout_seconds=600)
        elapsed = time.perf_counter() - started
    return result.contacts_in_audiences, result.list_adds, elapsed, session.stats.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--baseline-sample", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=4)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder, FakeSendGrid(api_key=API_KEY) as fake:
        batched_db = Path(folder) / "batched.duckdb"
        baseline_db = Path(folder) / "baseline.duckdb"
        write_sample_marts(batched_db, customers=arguments.contacts, letters=arguments.letters)
        write_sample_marts(baseline_db, customers=arguments.baseline_sample, letters=arguments.baseline_sample, audience_customers=0)

        contacts, memberships, contacts_seconds, contact_requests = sync_contacts_timed(fake, batched_db, arguments.concurrency)
        batched, batched_seconds, batched_requests = push_letters_timed(fake, batched_db, 1000, arguments.concurrency)
        single, single_seconds, single_requests = push_letters_timed(fake, baseline_db, 1, arguments.concurrency)

    batched_rate = batched / batched_seconds
    single_rate = single / single_seconds
    print(f"contacts: {contacts} contacts ({memberships} list memberships) in {contacts_seconds:.1f}s "
          f"= {contacts / contacts_seconds:,.0f} contacts/s, {contact_requests} requests")
    print(f"letters, batched (<=1000 per request): {batched} in {batched_seconds:.1f}s "
          f"= {batched_rate:,.0f} letters/s, {batched_requests} requests")
    print(f"letters, one request per letter (sample of {single}, same code and concurrency): {single_seconds:.1f}s "
          f"= {single_rate:,.0f} letters/s, {single_requests} requests; "
          f"100k would take ~{arguments.letters / single_rate:,.0f}s")
    print(f"ratio batched / one-per-letter: {batched_rate / single_rate:,.1f}x")


if __name__ == "__main__":
    main()
