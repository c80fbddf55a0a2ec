"""Kill figures: SIGKILL a real push process mid-send, resolve the unknown letters in bulk, push again.

    .venv/bin/python benchmarks/push_kill_figures.py [--kills 6] [--letters 4000] [--settings 4x1000,2x100]

For each setting `concurrency x letters_per_request` (SENDGRID_MAX_CONCURRENT_REQUESTS x
SENDGRID_LETTERS_PER_REQUEST) and each kill: a fresh warehouse, a push subprocess against the
fake SendGrid (every Mail Send held 0.3 s), SIGKILL once the k-th Mail Send arrived (k spread
over the run), then the operator's procedure: `unknown_requests` lists one letter key per
request; that key is looked up once in SendGrid's activity (here: the fake's record of what it
accepted); the request is settled as accepted or released; then a second push. Reported: kills,
letters left unknown (max and total), lookups needed (one per unknown request), letters sent
twice, letters never sent. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifecycle_assets.activation import ledger  # noqa: E402
from lifecycle_assets.activation.assets import activation_assets, activation_checks  # noqa: E402
from lifecycle_assets.activation.resources import SendGridResource  # noqa: E402
from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid, Fault  # noqa: E402
from lifecycle_assets_tests.test_activation.sample_marts import write_sample_marts  # noqa: E402

API_KEY = "SG.kill-benchmark-key"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def settle(fake: FakeSendGrid, quiet_seconds: float = 2.0) -> None:
    """Wait until SendGrid has finished what the dead process sent (its activity stops changing).

    The operator looks up a letter in Email Activity only once SendGrid is done with the requests in
    flight at the kill; a lookup before that would call a letter unsent that SendGrid is still sending.
    """
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < quiet_seconds:
        count = len(fake.sent_messages())
        if count != seen:
            seen, quiet_since = count, time.monotonic()
        time.sleep(0.1)


def one_kill(workdir: Path, letters: int, concurrency: int, per_request: int, kill_at_request: int) -> dict:
    warehouse = workdir / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=letters, letters=letters)
    with FakeSendGrid(api_key=API_KEY) as fake:
        fake.inject(Fault(kind="latency", path_prefix="/v3/mail/send", times=10_000, seconds=0.3))
        (workdir / "home").mkdir()
        environment = {
            **os.environ,
            "LIFECYCLE_DUCKDB_PATH": str(warehouse),
            "SENDGRID_API_KEY": API_KEY,
            "SENDGRID_HOST": fake.base_url,
            "SENDGRID_UNSUBSCRIBE_GROUP_ID": "1",
            "SENDGRID_MAX_CONCURRENT_REQUESTS": str(concurrency),
            "SENDGRID_LETTERS_PER_REQUEST": str(per_request),
            "DAGSTER_HOME": str(workdir / "home"),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "lifecycle_assets.activation", "push"],
            cwd=PROJECT_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while fake.request_count(method="POST", path_prefix="/v3/mail/send") < kill_at_request:
            if process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        settle(fake)
        fake.reset_faults()

        with duckdb.connect(str(warehouse)) as connection:
            ledger.ensure_schema(connection)
            ledger.mark_interrupted_claims_unknown(connection)
            requests = ledger.unknown_requests(connection)
            unknown = len(ledger.letters_in_state(connection, "unknown"))
            accepted_by_sendgrid = {m["custom_args"]["letter_key"] for m in fake.sent_messages()}
            for _run, request_id, _type, _count, _claimed, sample_key in requests:
                if sample_key in accepted_by_sendgrid:  # the one lookup for this request
                    ledger.resolve_unknown(connection, [sample_key], evidence="Email Activity")
                else:
                    ledger.release_unknown(connection, request_id=request_id)
            left_unknown = len(ledger.letters_in_state(connection, "unknown"))
        resource = SendGridResource(
            api_key=API_KEY, host=fake.base_url, unsubscribe_group_id=1, max_concurrent_requests=concurrency,
            letters_per_request=per_request, timeout_seconds=60,
        )
        dg.materialize(
            [*activation_assets, *activation_checks],
            resources={"sendgrid": resource, "duckdb": DuckDBResource(database=str(warehouse))},
        )
        sent: dict[str, int] = {}
        for message in fake.sent_messages():
            key = message["custom_args"]["letter_key"]
            sent[key] = sent.get(key, 0) + 1
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            planned = {row[0] for row in connection.execute("select letter_key from marts.letters_planned").fetchall()}
            states = dict(connection.execute("select state, count(*) from activation.send_ledger group by state").fetchall())
    return {
        "killed": killed,
        "unknown": unknown,
        "lookups": len(requests),
        "left_unknown_after_resolution": left_unknown,
        "sent_twice": sum(1 for count in sent.values() if count > 1),
        "never_sent": len(planned - set(sent)),
        "ledger_not_accepted": sum(count for state, count in states.items() if state != "accepted"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--letters", type=int, default=4000)
    parser.add_argument("--settings", default="4x1000,2x100")
    arguments = parser.parse_args()
    figures = {}
    for setting in arguments.settings.split(","):
        concurrency, per_request = (int(part) for part in setting.split("x"))
        requests_total = -(-arguments.letters // 4 // per_request) * 4
        runs = []
        for kill in range(arguments.kills):
            kill_at = 1 + (kill * max(1, requests_total - 1)) // max(1, arguments.kills)
            with tempfile.TemporaryDirectory() as workdir:
                runs.append(one_kill(Path(workdir), arguments.letters, concurrency, per_request, kill_at))
            print(f"{setting} kill at Mail Send #{kill_at}: {runs[-1]}", flush=True)
        killed = [run for run in runs if run["killed"]]
        figures[setting] = {
            "blast_radius_setting": concurrency * per_request,
            "kills": len(killed),
            "max_unknown_per_kill": max((run["unknown"] for run in killed), default=0),
            "unknown_total": sum(run["unknown"] for run in killed),
            "lookups_total": sum(run["lookups"] for run in killed),
            "left_unknown_after_resolution": sum(run["left_unknown_after_resolution"] for run in runs),
            "sent_twice": sum(run["sent_twice"] for run in runs),
            "never_sent": sum(run["never_sent"] for run in runs),
        }
        print(f"{setting}: {figures[setting]}", flush=True)
    print(json.dumps({"letters": arguments.letters, **figures}))


if __name__ == "__main__":
    main()
