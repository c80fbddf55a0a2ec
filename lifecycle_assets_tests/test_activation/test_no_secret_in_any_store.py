"""A push with a canary key and canary addresses, DEBUG logging on: neither shows up in any store.

Stores: the subprocess's stdout and stderr (DEBUG logs of every library included), everything the
Dagster instance writes under DAGSTER_HOME (event log with asset and check metadata, compute
logs, run storage), and the ledger's error columns.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from lifecycle_assets_tests.fake_sendgrid import FakeSendGrid, Fault

from .conftest import UNSUBSCRIBE_GROUP
from .sample_marts import customer_id_of, write_sample_marts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CANARY_KEY = "SG.CANARYKEY7f3a.canarysecretpart9b1"
CANARY_MAILBOX = "canarymailbox"

PUSH_WITH_DEBUG_LOGGING = (
    "import logging, sys\n"
    "logging.basicConfig(level=logging.DEBUG)\n"
    "from lifecycle_assets.activation.__main__ import main\n"
    "sys.exit(main(['push']))\n"
)


def canary_address(number: int) -> str:
    return f"{CANARY_MAILBOX}{number}@example.com"


def canary_warehouse(path: Path) -> Path:
    write_sample_marts(path, customers=24)
    with duckdb.connect(str(path)) as connection:
        for table in ("raw.customers", "marts.letters_planned", "marts.audiences"):
            connection.execute(
                f"update {table} set email = '{CANARY_MAILBOX}' || cast(substr(customer_id, 2) as integer) || '@example.com'"
            )
        # One letter SendGrid rejects (custom_args over 10,000 bytes): its error lands in the ledger.
        connection.execute(
            "update marts.letters_planned set letter_key = letter_key || repeat('x', 10001) where customer_id = ?",
            [customer_id_of(5)],
        )
    return path


def run_push(fake_url: str, warehouse: Path, home: Path, api_key: str) -> subprocess.CompletedProcess:
    home.mkdir(exist_ok=True)
    environment = {
        **os.environ,
        "LIFECYCLE_DUCKDB_PATH": str(warehouse),
        "LIFECYCLE_OUTBOX_DIR": str(home / "outbox"),
        "SENDGRID_API_KEY": api_key,
        "SENDGRID_HOST": fake_url,
        "SENDGRID_UNSUBSCRIBE_GROUP_ID": str(UNSUBSCRIBE_GROUP),
        "SENDGRID_MAX_CONCURRENT_REQUESTS": "1",
        "DAGSTER_HOME": str(home),
    }
    return subprocess.run(
        [sys.executable, "-c", PUSH_WITH_DEBUG_LOGGING],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, timeout=600,
    )


def stores(process: subprocess.CompletedProcess, home: Path, warehouse: Path) -> dict[str, bytes]:
    found = {"stdout": process.stdout, "stderr": process.stderr}
    for path in home.rglob("*"):
        if path.is_file():
            found[str(path.relative_to(home))] = path.read_bytes()
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = {row[0] for row in connection.execute(
            "select table_name from information_schema.tables where table_schema = 'activation'"
        ).fetchall()}
        for table, column in (("send_ledger", "error"), ("contact_import_jobs", "errors")):
            if table not in tables:
                continue
            values = connection.execute(f"select {column} from activation.{table} where {column} is not null").fetchall()
            found[f"activation.{table}.{column}"] = "\n".join(row[0] for row in values).encode()
    return found


def leaks(found: dict[str, bytes], needles: list[str]) -> list[tuple[str, str]]:
    return [(store, needle) for store, data in found.items() for needle in needles if needle.encode() in data]


def test_push_with_debug_logging_and_faults_leaks_neither_key_nor_address(tmp_path):
    warehouse = canary_warehouse(tmp_path / "warehouse.duckdb")
    with FakeSendGrid(api_key=CANARY_KEY) as fake:
        fake.reject_contacts_on_import([canary_address(3)], message="mailbox unavailable")
        fake.inject(Fault(kind="drop_after_body", path_prefix="/v3/mail/send", times=1))
        fake.inject(Fault(kind="server_error", path_prefix="/v3/marketing/contacts", status=500, times=1))

        process = run_push(fake.base_url, warehouse, tmp_path / "home", CANARY_KEY)

        assert fake.sent_messages(), "the push did send letters"
    found = stores(process, tmp_path / "home", warehouse)
    assert b"DEBUG" in process.stderr, "DEBUG logging was on"
    assert found["activation.send_ledger.error"], "a rejected and an unknown letter left errors to scan"
    assert any(name.endswith(".db") or "storage" in name for name in found), "the instance recorded the run"
    assert leaks(found, ["CANARYKEY", "canarysecretpart", CANARY_MAILBOX]) == []


def test_a_key_with_a_trailing_newline_is_refused_when_the_resource_loads_without_echoing_it(tmp_path):
    warehouse = canary_warehouse(tmp_path / "warehouse.duckdb")
    with FakeSendGrid(api_key=CANARY_KEY) as fake:
        process = run_push(fake.base_url, warehouse, tmp_path / "home", CANARY_KEY + "\n")

        assert fake.requests == [], "refused before any request"
    assert process.returncode == 1
    found = stores(process, tmp_path / "home", warehouse)
    assert b"SENDGRID_API_KEY contains whitespace or control characters" in process.stdout + process.stderr
    assert leaks(found, ["CANARYKEY", "canarysecretpart", CANARY_MAILBOX]) == []
