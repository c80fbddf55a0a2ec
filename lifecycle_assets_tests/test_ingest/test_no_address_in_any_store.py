"""An ingest of landing files full of canary addresses, in every place a parser can choke on them,
with DEBUG logging on: no address shows up in any store but the quarantined row itself.

Stores: the subprocess's stdout and stderr, everything the Dagster instance writes under
DAGSTER_HOME (event log with asset and check metadata, compute logs, run storage), and
`quality.quarantined_files` and the reasons of `quality.quarantined_rows`. The quarantined row's
`raw_row` keeps the row as delivered, by design (that is where an operator repairs it).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl

from lifecycle_assets_tests.ingest_harness import write_landing_file
from lifecycle_assets_tests.test_ingest.test_ingest_assets import DAY, customer, write_good_day

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CANARY = "canarymailbox"
HEADER = ",".join(customer(0))

INGEST_WITH_DEBUG_LOGGING = (
    "import logging, os\n"
    "logging.basicConfig(level=logging.DEBUG)\n"
    "import dagster as dg\n"
    "from lifecycle_assets.definitions import build_definitions\n"
    "defs = build_definitions(first_landing_day=os.environ['FIRST_DAY'])\n"
    "dg.materialize([*defs.assets, *(defs.asset_checks or [])], selection=dg.AssetSelection.groups('ingest', 'quality'),\n"
    "    instance=dg.DagsterInstance.get(), resources=defs.resources, raise_on_error=False,\n"
    "    tags={'dagster/asset_partition_range_start': os.environ['FIRST_DAY'],\n"
    "          'dagster/asset_partition_range_end': os.environ['FIRST_DAY']})\n"
)


def canary(number: int) -> str:
    return f"{CANARY}{number}@example.com"


def canary_row(number: int, **changes) -> dict:
    return customer(100 + number, email=canary(number)) | changes


def line(row: dict) -> str:
    return ",".join(str(value) for value in row.values())


def land_canaries(landing: Path) -> None:
    write_good_day(landing)
    folder = f"customers/date={DAY}"
    # Whole files a parser refuses, with an address on the line it stops at.
    write_landing_file(landing, "customers", DAY, "ragged.csv", f"{HEADER}\n{line(canary_row(1))},extra\n".encode())
    write_landing_file(landing, "customers", DAY, "open_quote.csv", f'{HEADER}\n{line(canary_row(2))}\nc3,"{canary(3)},A\n'.encode())
    write_landing_file(landing, "customers", DAY, "latin1.csv", f"{HEADER}\nc5,{canary(5)},Zoë,2024-03-01,,UTC,true\n".encode("latin-1"))
    write_landing_file(landing, "customers", DAY, "truncated.jsonl", (json.dumps(canary_row(6)) + "\n" + json.dumps(canary_row(7))[:60] + "\n").encode())
    write_landing_file(landing, "customers", DAY, "not_objects.jsonl", (json.dumps(canary_row(8)) + f'\n["{canary(9)}"]\n').encode())
    write_landing_file(landing, "customers", DAY, "long_header.csv", (HEADER + "," + canary(10) * 80_000 + "\n").encode())
    broken = io.BytesIO()
    pl.DataFrame([canary_row(11)]).write_parquet(broken)
    write_landing_file(landing, "customers", DAY, "cut.parquet", broken.getvalue()[:-40])
    # Rows the row rules quarantine, an address in them (a stray quote inside a value is a value).
    write_landing_file(landing, "customers", DAY, "stray_quote.csv", f'{HEADER}\nc4,{canary(4)} "quoted" inside,A,2024-03-01,,UTC,true\n'.encode())
    write_landing_file(landing, "customers", DAY, "rows.jsonl", [
        canary_row(12, email=f"{CANARY}12..x@example.com"),
        canary_row(13, first_name={"nested": canary(13)}),
        canary_row(14, registered_at=canary(14)),
        canary_row(15, marketing_consent=canary(15)),
    ])
    # A file name with an address in it is the shop's choice: only contents are guarded here.
    assert not [p for p in (landing / folder).iterdir() if CANARY in p.name]


def run_ingest_subprocess(landing: Path, warehouse: Path, home: Path) -> subprocess.CompletedProcess:
    home.mkdir(exist_ok=True)
    environment = {
        **os.environ,
        "LIFECYCLE_LANDING_DIR": str(landing),
        "LIFECYCLE_DUCKDB_PATH": str(warehouse),
        "LIFECYCLE_OUTBOX_DIR": str(home / "outbox"),
        "DAGSTER_HOME": str(home),
        "FIRST_DAY": DAY,
    }
    return subprocess.run([sys.executable, "-c", INGEST_WITH_DEBUG_LOGGING], cwd=PROJECT_ROOT, env=environment,
                          capture_output=True, timeout=600)


def test_ingest_with_debug_logging_leaks_no_address_of_a_bad_file_or_row(tmp_path):
    landing, warehouse, home = tmp_path / "landing", tmp_path / "warehouse.duckdb", tmp_path / "home"
    land_canaries(landing)
    process = run_ingest_subprocess(landing, warehouse, home)
    assert process.returncode == 0, process.stderr[-3000:]

    found = {"stdout": process.stdout, "stderr": process.stderr}
    found.update({str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()})
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        files = connection.execute("SELECT source_file, reason FROM quality.quarantined_files").fetchall()
        rows = connection.execute("SELECT reason, raw_row FROM quality.quarantined_rows").fetchall()
    found["quality.quarantined_files"] = "\n".join(map(str, files)).encode()
    found["quality.quarantined_rows.reason"] = "\n".join(reason for reason, _ in rows).encode()

    # The run did meet every canary: seven files refused, five rows quarantined (the address kept there).
    assert b"DEBUG" in process.stderr
    assert any(name.endswith(".db") for name in found), "the instance recorded the run"
    assert len(files) == 7 and all(reason for _, reason in files), files
    assert sum(CANARY in raw_row for _, raw_row in rows) == 5
    assert "line 2" in dict(files)[f"customers/date={DAY}/ragged.csv"]
    assert [(store, CANARY) for store, data in found.items() if CANARY.encode() in data] == []
