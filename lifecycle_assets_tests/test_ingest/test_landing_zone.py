"""Nothing in the landing zone goes unseen: every entry that is not ingested is recorded with why, a
lost file fails a blocking check, nothing is read from outside the landing zone, and odd values
(extra columns of any type, nested values, tricky addresses) get the contract's answer."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import string

import duckdb
import polars as pl
import pytest
from email_validator import EmailNotValidError, validate_email

from lifecycle_assets.ingest.assets import LANDING_FILES_CHECK
from lifecycle_assets.ingest.validation import plain_email_sql
from lifecycle_assets.quality.checks import QualityPolicy
from lifecycle_assets_tests.ingest_harness import run_ingest, tree_fingerprint, write_landing_file
from lifecycle_assets_tests.test_ingest.test_ingest_assets import DAY, customer, write_good_day

LENIENT = QualityPolicy(max_quarantine_rate=1.0)
HEADER = ",".join(customer(0))
DAY_FOLDER = f"customers/date={DAY}"


def csv_line(row: dict) -> str:
    return ",".join(row.values())


def parquet_bytes(rows: list[dict], schema: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame(rows, schema=schema).write_parquet(buffer)
    return buffer.getvalue()


def write_odd_entries(landing) -> None:
    """One entry per way a delivery can fail to be ingested, beside a good day."""
    folder = landing / "customers" / f"date={DAY}"
    write_landing_file(
        landing, "customers", DAY, "ragged.csv",
        f"{HEADER}\n{csv_line(customer(20))}\n{csv_line(customer(21))},one too many\n".encode(),
    )
    write_landing_file(
        landing, "customers", DAY, "open_quote.csv",
        f'{HEADER}\n{csv_line(customer(22))}\n{csv_line(customer(23))}\nc24,"never.closed@example.com,A,2024-03-01,,UTC,true\n'.encode(),
    )
    truncated = '{"customer_id": "c26", "email": "cut.off@exam'
    write_landing_file(landing, "customers", DAY, "truncated.jsonl", (json.dumps(customer(25)) + f"\n{truncated}\n").encode())
    write_landing_file(landing, "customers", DAY, "customers.csv.gz", b"\x1f\x8b compressed")
    write_landing_file(landing, "customers", DAY, ".half_written.csv", [customer(27)])
    (folder / "more").mkdir()
    write_landing_file(folder, "more", DAY, "x.csv", [customer(28)])  # customers/date=.../more/more/date=.../x.csv
    spaced = landing / "customers" / f"date={DAY} "
    spaced.mkdir()
    (spaced / "late.csv").write_text(f"{HEADER}\n{csv_line(customer(29))}\n", encoding="utf-8")
    os.symlink("/proc/self/environ", folder / "environ.csv")


@pytest.fixture(scope="module")
def odd_day(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    landing = root / "landing"
    write_good_day(landing)
    write_odd_entries(landing)
    before = tree_fingerprint(landing)
    return run_ingest(landing, root / "warehouse.duckdb", DAY, policy=LENIENT), landing, before


EXPECTED_RECORDS = {
    f"{DAY_FOLDER}/ragged.csv": "unreadable (line 3: wrong number of columns)",
    f"{DAY_FOLDER}/open_quote.csv": "unreadable (line 4: a quoted value is never closed)",
    f"{DAY_FOLDER}/truncated.jsonl": "unreadable (line 2: not valid JSON)",
    f"{DAY_FOLDER}/customers.csv.gz": "unsupported_format",
    f"{DAY_FOLDER}/.half_written.csv": "hidden_file",
    f"{DAY_FOLDER}/more": "nested_folder",
    f"customers/date={DAY} ": "bad_folder_name",
    f"{DAY_FOLDER}/environ.csv": "symlink_outside_landing",
}


def test_every_entry_not_ingested_is_recorded_with_why_and_the_line(odd_day):
    run, _, _ = odd_day
    recorded = dict(run.query("SELECT source_file, reason FROM quality.quarantined_files WHERE entity = 'customers'"))
    assert recorded == EXPECTED_RECORDS


def test_a_file_not_ingested_fails_the_blocking_check_and_stops_what_follows(odd_day):
    run, _, _ = odd_day
    assert not run.check_passed("customers", LANDING_FILES_CHECK)
    assert run.check_passed("products", LANDING_FILES_CHECK)
    assert "raw/customers" in run.materialized()  # the good rows are stored ...
    assert run.query("SELECT count(*) FROM raw.customers")[0][0] == 5
    assert "raw/orders" not in run.materialized()  # ... but nothing downstream runs on a day with a lost file


def test_a_hidden_file_alone_is_recorded_but_does_not_block(tmp_path):
    landing = tmp_path / "landing"
    write_good_day(landing)
    write_landing_file(landing, "customers", DAY, ".DS_Store", b"\x00\x00\x00\x01Bud1")
    run = run_ingest(landing, tmp_path / "warehouse.duckdb", DAY)
    assert run.result.success
    assert run.check_passed("customers", LANDING_FILES_CHECK)
    assert run.query("SELECT source_file, reason FROM quality.quarantined_files") == [
        (f"{DAY_FOLDER}/.DS_Store", "hidden_file")
    ]


def test_a_misspelt_entity_folder_or_a_loose_file_at_the_top_is_recorded_and_blocks(tmp_path):
    landing = tmp_path / "landing"
    write_good_day(landing)
    write_landing_file(landing, "custmers", DAY, "customers.csv", [customer(50)])
    (landing / "orders.csv").write_text("order_id\n", encoding="utf-8")
    (landing / "_manifest.json").write_text("{}", encoding="utf-8")  # hidden: the operator's own
    run = run_ingest(landing, tmp_path / "warehouse.duckdb", DAY, policy=LENIENT)
    assert run.query("SELECT entity, source_file, reason FROM quality.quarantined_files ORDER BY 2") == [
        ("customers", "custmers", "not_an_entity_folder"),
        ("customers", "orders.csv", "not_an_entity_folder"),
    ]
    assert not run.check_passed("customers", LANDING_FILES_CHECK)


def test_nothing_is_read_through_a_symlink_out_of_the_landing_zone(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    # A well-formed customers file outside the landing zone, linked in as a file and as the entity folder.
    write_landing_file(outside, "customers", DAY, "secret.csv", [customer(40, email="canary.outside@example.com")])
    landing = tmp_path / "landing"
    write_good_day(landing)
    os.symlink(outside / "customers" / f"date={DAY}" / "secret.csv", landing / "customers" / f"date={DAY}" / "linked.csv")
    shutil.rmtree(landing / "products")
    os.symlink(outside / "customers", landing / "products")  # not even a whole entity folder is followed
    run = run_ingest(landing, tmp_path / "warehouse.duckdb", DAY, policy=LENIENT)

    assert run.query("SELECT source_file, reason, sha256, size_bytes FROM quality.quarantined_files ORDER BY 1") == [
        (f"{DAY_FOLDER}/linked.csv", "symlink_outside_landing", None, None),
        ("products", "symlink_outside_landing", None, None),
    ]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        tables = [f"{s}.{t}" for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()]
        for table in tables:
            assert con.execute(f"SELECT count(*) FROM {table} WHERE lower(CAST(COLUMNS(*) AS VARCHAR)) LIKE '%canary%'").fetchone()[0] == 0


def test_the_environment_file_behind_a_symlink_is_never_read(odd_day):
    run, landing, before = odd_day
    assert run.query(
        f"SELECT sha256, size_bytes FROM quality.quarantined_files WHERE source_file = '{DAY_FOLDER}/environ.csv'"
    ) == [(None, None)]
    environment_values = [value for value in os.environ.values() if len(value) > 8]
    stored = " ".join(str(row) for row in run.query("SELECT * FROM quality.quarantined_rows"))
    assert not [value for value in environment_values if value in stored]
    assert tree_fingerprint(landing) == before  # and the landing zone is left as it was


def test_extra_columns_of_any_type_are_ignored(tmp_path):
    landing = tmp_path / "landing"
    write_good_day(landing)
    write_landing_file(landing, "customers", DAY, "tagged.jsonl", [
        customer(50) | {"tags": ["vip", "coffee"], "address": {"city": "Berlin"}, "score": 3.5},
        customer(51) | {"tags": [], "address": None, "score": None},
    ])
    write_landing_file(landing, "customers", DAY, "tagged.parquet", parquet_bytes(
        [customer(52) | {"tags": ["vip"], "address": {"city": "Köln"}}],
        schema={**{c: pl.String for c in customer(0)}, "tags": pl.List(pl.String), "address": pl.Struct({"city": pl.String})},
    ))
    run = run_ingest(landing, tmp_path / "warehouse.duckdb", DAY)
    assert run.result.success
    assert run.query("SELECT customer_id FROM raw.customers WHERE customer_id IN ('c50', 'c51', 'c52') ORDER BY 1") == [
        ("c50",), ("c51",), ("c52",)
    ]
    assert run.query("SELECT count(*) FROM quality.quarantined_files")[0][0] == 0


def test_a_nested_value_in_a_text_column_is_quarantined_with_its_column(tmp_path):
    landing = tmp_path / "landing"
    write_good_day(landing)
    write_landing_file(landing, "customers", DAY, "nested.jsonl", [
        customer(60, first_name={"given": "Ann"}), customer(61, timezone=["UTC"]), customer(62),
    ])
    write_landing_file(landing, "customers", DAY, "nested.parquet", parquet_bytes(
        [customer(63) | {"first_name": ["Ann", "Marie"]}],
        schema={**{c: pl.String for c in customer(0)}, "first_name": pl.List(pl.String)},
    ))
    run = run_ingest(landing, tmp_path / "warehouse.duckdb", DAY, policy=LENIENT)
    assert run.query("SELECT source_file, row_number, reason FROM quality.quarantined_rows ORDER BY 1, 2") == [
        (f"{DAY_FOLDER}/nested.jsonl", 1, "nested_value:first_name"),
        (f"{DAY_FOLDER}/nested.jsonl", 2, "nested_value:timezone"),
        (f"{DAY_FOLDER}/nested.parquet", 1, "nested_value:first_name"),
    ]
    assert run.query("SELECT count(*) FROM raw.customers WHERE customer_id = 'c62'")[0][0] == 1


TRICKY_ADDRESSES = [  # (address, valid)
    pytest.param("nul\x00byte@example.com", False, id="nul-byte"),
    pytest.param("zero\u200bwidth@example.com", False, id="zero-width-space"),
    pytest.param("dot..dot@example.com", False, id="two-dots"),
    pytest.param(".leading@example.com", False, id="leading-dot"),
    pytest.param("two@signs@example.com", False, id="two-at-signs"),
    pytest.param("no-domain-dot@localhost", False, id="no-dot-in-domain"),
    pytest.param("someone@example.test", False, id="special-use-domain"),
    pytest.param("someone@ab--cd.com", False, id="dashes-where-punycode-goes"),
    pytest.param("first.last+tag@sub.example.co.uk", True, id="plus-and-subdomain"),
    pytest.param("José.Müller@exämple.de", True, id="international"),
    pytest.param("o'brien@example.ie", True, id="apostrophe"),
]


def test_addresses_are_judged_by_email_validator(tmp_path):
    landing = tmp_path / "landing"
    write_good_day(landing)
    tricky = [case.values for case in TRICKY_ADDRESSES]
    write_landing_file(landing, "customers", DAY, "tricky.jsonl", [customer(70 + n, email=a) for n, (a, _) in enumerate(tricky)])
    run = run_ingest(landing, tmp_path / "warehouse.duckdb", DAY, policy=LENIENT)
    quarantined = dict(run.query("SELECT row_number, reason FROM quality.quarantined_rows WHERE source_file LIKE '%tricky%'"))
    stored = {row[0] for row in run.query("SELECT customer_id FROM raw.customers")}
    outcome = {address: (quarantined.get(n + 1), f"c{70 + n}" in stored) for n, (address, _) in enumerate(tricky)}
    assert outcome == {address: (None, True) if valid else ("malformed_email", False) for address, valid in tricky}


def _accepted_by_email_validator(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
        return True
    except EmailNotValidError:
        return False


def test_the_plain_shape_admitted_in_sql_is_always_accepted_by_email_validator():
    """SQL admits plain addresses without asking email-validator; it must never admit one it rejects."""
    rng = random.Random(8)
    alphabet = string.ascii_letters + string.digits + "._+-@"
    addresses = ["".join(rng.choice(alphabet) for _ in range(rng.randint(3, 70))) for _ in range(5_000)]
    addresses += [f"{rng.choice(['a', 'a.b', 'a-b', 'a_b'])}@{rng.choice(['x', 'x-y', 'xn--x', 'ab--c', '1'])}."
                  f"{rng.choice(['com', 'test', 'local', 'onion', 'arpa', 'invalid', 'localhost', 'c', 'COM'])}"
                  for _ in range(2_000)]
    with duckdb.connect() as con:
        con.execute("CREATE TABLE a (address VARCHAR)")
        con.executemany("INSERT INTO a VALUES (?)", [(x,) for x in addresses])
        admitted = [x for (x,) in con.execute(f"SELECT address FROM a WHERE {plain_email_sql('address')}").fetchall()]
    assert len(admitted) > 200  # the fast path does admit the common shape
    assert [x for x in admitted if not _accepted_by_email_validator(x)] == []
