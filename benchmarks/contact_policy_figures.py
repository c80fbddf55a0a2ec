"""Letters per final state under the default contact policy, over consecutive plan days of a sample shop.

    .venv/bin/python benchmarks/contact_policy_figures.py WAREHOUSE [--days 7] [--memory-limit 3GB]

WAREHOUSE: a DuckDB file with raw.* ingested (e.g. `make demo`'s, LIFECYCLE_DUCKDB_PATH). It is
copied; on the copy, with a fresh send ledger, the lifecycle models are built as of each of the
last `--days` landing days in turn and every plan day is pushed to the fake SendGrid on 127.0.0.1
(real HTTP, each request validated against SendGrid's OpenAPI spec), so deferred letters compete
again on later days and expire. Prints the states per day, the final counts per state, the
deferral reasons, one plan day's letters for customers in three time zones with their send_at,
and as the last line one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle_assets.activation import ledger  # noqa: E402
from lifecycle_assets.activation.letters import LetterSender, push_letters  # noqa: E402
from lifecycle_assets.activation.policy import ContactPolicy  # noqa: E402
from lifecycle_assets.activation.resources import SendGridResource  # noqa: E402
from lifecycle_assets.activation.templates import load_templates, sync_templates  # noqa: E402
from lifecycle_assets.models.settings import LifecycleSettings  # noqa: E402
from lifecycle_assets.models.sql_models import build_all  # noqa: E402
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid  # noqa: E402

API_KEY = "SG.benchmark-key"
SAMPLE_ZONES = ("Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--memory-limit", default="3GB")
    arguments = parser.parse_args()
    policy = ContactPolicy()
    started = time.perf_counter()
    per_day, samples = [], []
    with tempfile.TemporaryDirectory() as folder, FakeSendGrid(api_key=API_KEY) as fake:
        warehouse = Path(folder) / "warehouse.duckdb"
        shutil.copy(arguments.warehouse, warehouse)
        resource = SendGridResource(api_key=API_KEY, host=fake.base_url, sender_email="shop@example.com",
                                    unsubscribe_group_id=1, timeout_seconds=120)
        session = resource.session("contact-policy-figures")
        template_ids = sync_templates(session, load_templates()).template_ids
        sender = LetterSender(session, resource.sender_email, resource.sender_name, resource.unsubscribe_group_id)
        with duckdb.connect(str(warehouse)) as connection, resource.thread_pool() as pool:
            connection.execute(f"set memory_limit = '{arguments.memory_limit}'")
            connection.execute("drop table if exists activation.send_ledger")
            ledger.ensure_schema(connection)
            last_day = connection.execute("select max(_landing_date) from raw.customers").fetchone()[0]
            for offset in range(arguments.days - 1, -1, -1):
                as_of = last_day - dt.timedelta(days=offset)
                build_all(connection, LifecycleSettings(as_of=as_of.isoformat()))
                planned = connection.execute("select count(*) from marts.letters_planned").fetchone()[0]
                pushed_from = len(fake.sent_messages())
                result = push_letters(connection, session, pool, sender, lambda: template_ids, f"day-{as_of}",
                                      max_in_flight=4, policy=policy)
                per_day.append({
                    "plan_day": as_of.isoformat(), "planned": planned, "newly_planned": result.newly_planned,
                    "accepted": result.accepted, "deferred": result.deferred, "expired": result.expired,
                    "suppressed": result.suppressed, "failed": result.failed, "unknown": result.unknown,
                })
                print(json.dumps(per_day[-1]), flush=True)
                if offset == 0:
                    samples = sample_letters(connection, fake.sent_messages()[pushed_from:], as_of)
            totals = {state: count for state, count in ledger.state_counts(connection).items() if count}
            reasons = {f"{state}: {reason}": count for state, reason, count in connection.execute(
                """select state, regexp_extract(state_reason, '^(daily cap|weekly cap|one letter[a-z ]+|arrives on|not sent by)'), count(*)
                   from activation.send_ledger where state in ('deferred', 'expired') group by all order by 3 desc"""
            ).fetchall()}
            by_type = {f"{state}: {template}": count for state, template, count in connection.execute(
                """select state, template_name, count(*) from activation.send_ledger
                   where state in ('deferred', 'expired') group by all order by 1, 3 desc"""
            ).fetchall()}
            per_customer_day = connection.execute(
                """select max(n) from (select customer_id, send_day, count(*) as n from activation.send_ledger
                   where state = 'accepted' group by all)"""
            ).fetchone()[0]
        print("final state counts:", totals)
        print("deferred/expired by reason:", reasons)
        print("deferred/expired by letter type:", by_type)
        print("most letters accepted for one customer on one plan day:", per_customer_day)
        print("last plan day, one letter per time zone:")
        for sample in samples:
            print("  ", sample)
    figures = {
        "days": arguments.days, "states": totals, "reasons": reasons, "by_type": by_type, "per_day": per_day,
        "max_letters_one_customer_one_day": per_customer_day, "three_time_zones": samples,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures, default=str))


def sample_letters(connection, messages: list[dict], day: dt.date) -> list[dict]:
    """One accepted letter of the plan day for a customer in each of SAMPLE_ZONES: what SendGrid was asked."""
    by_key = {message["custom_args"]["letter_key"]: message for message in messages}
    rows = connection.execute(
        """select customer_id, letter_key, time_zone, send_at from activation.send_ledger
           where state = 'accepted' and send_day = ? and time_zone in (select unnest(?))
           qualify row_number() over (partition by time_zone order by letter_key) = 1 order by time_zone""",
        [day, list(SAMPLE_ZONES)],
    ).fetchall()
    samples = []
    for customer_id, letter_key, zone, send_at_utc in rows:
        message = by_key.get(letter_key)
        if message is None:
            continue
        local = dt.datetime.fromtimestamp(message["send_at"], ZoneInfo(zone))
        samples.append({"letter_key": letter_key, "time_zone": zone, "send_at": message["send_at"],
                        "send_at_utc": send_at_utc.isoformat(), "local": local.isoformat()})
    return samples


if __name__ == "__main__":
    main()
