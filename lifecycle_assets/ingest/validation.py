"""Row rules as SQL generated from the contract: split the landed text rows into typed good rows and
quarantined rows with a reason.

The reason of a rejected row is the first rule it breaks, in the order of docs/data_contract.md,
so the same bad row always gets the same reason. Nothing is dropped: every landed row leaves
either as a good row (temp view `good_rows`) or as a quarantined row with its raw values as
JSON (temp view `bad_rows`), both over the temp table `checked`. DuckDB runs the rules, so memory is bounded by its `memory_limit`.

One pass over the rows as read does everything per row (lineage, cleaning, parsing, the reason), and
only the typed values are kept: the text as delivered is looked up again for quarantined rows only.
"""

from __future__ import annotations

import duckdb
import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from lifecycle_assets.ingest.contract import (
    AMOUNT_SQL_TYPE,
    EMAIL_EVENT_TYPES,
    EVENTS_REQUIRING_LETTER_KEY,
    EVENTS_REQUIRING_PRODUCT,
    FUTURE_TOLERANCE_HOURS,
    SITE_EVENT_TYPES,
    Column,
    Entity,
)
from lifecycle_assets.ingest.landing import FILES_TABLE, LANDED_TABLE, READ_TABLE

# Addresses are judged by email-validator (syntax only, no DNS lookup). Calling it for every row would
# cost seconds per million rows, so SQL first admits the plain ASCII shape it always accepts (a test
# holds the two together) and only the other distinct addresses, usually a handful, go to Python.
PLAIN_EMAIL_PATTERN = r"[A-Za-z0-9_+-]+([.][A-Za-z0-9_+-]+)*@([A-Za-z0-9]+(-[A-Za-z0-9]+)*[.])+[A-Za-z]{2,24}"
PLAIN_EMAIL_MAX_LENGTH = 64
SPECIAL_USE_TLD_PATTERN = r"[.](" + "|".join(SPECIAL_USE_DOMAIN_NAMES) + r")$"
MALFORMED_EMAILS_TABLE = "malformed_emails"
OFFSET_PATTERN = r"[0-9]:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?\s*([+-][0-9]{2}(:?[0-9]{2})?|[Zz])$"
AMOUNT_PATTERN = r"[+-]?([0-9]+([.][0-9]{0,2})?|[.][0-9]{1,2})"
TRUE_WORDS = ("true", "1", "yes", "t", "y")
FALSE_WORDS = ("false", "0", "no", "f", "n")
WHITESPACE = " \t\n\r\x0b\x0c"

SQL_TYPES = {
    "string": "VARCHAR",
    "email": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "amount": AMOUNT_SQL_TYPE,
}
# For tests that build raw tables by hand in polars (money is a float there; DuckDB casts it exactly).
POLARS_TYPES = {
    "string": pl.String,
    "email": pl.String,
    "timestamp": pl.Datetime("us"),
    "date": pl.Date,
    "boolean": pl.Boolean,
    "integer": pl.Int64,
    "amount": pl.Float64,
}
UNPARSABLE_REASON = {
    "timestamp": "unparsable_timestamp",
    "date": "unparsable_date",
    "integer": "unparsable_number",
    "amount": "unparsable_number",
    "boolean": "unparsable_boolean",
}
# The order in which unparsable types are reported (the contract's rule order).
UNPARSABLE_ORDER = ("timestamp", "date", "integer", "amount", "boolean")

GOOD_TABLE = "good_rows"
BAD_TABLE = "bad_rows"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


def parse_sql(column: Column) -> str:
    """SQL turning the cleaned text of a column into its contract type; NULL where it does not parse."""
    c = q(column.name)
    # Each cast is guarded by a cheap pattern: DuckDB's failing casts are slow, and the pattern is
    # also the contract (no '1e3', no rounding to fit).
    if column.type == "timestamp":
        # ISO 8601 with 'T' or space, optional fraction and offset; no offset means UTC (the session's zone).
        # Only a value with an offset pays for the time-zone-aware cast.
        return (
            f"CASE WHEN NOT regexp_matches({c}, '^[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}') THEN NULL "
            f"WHEN regexp_matches({c}, {lit(OFFSET_PATTERN)}) THEN try_cast({c} AS TIMESTAMPTZ)::TIMESTAMP "
            f"ELSE try_cast({c} AS TIMESTAMP) END"
        )
    if column.type == "date":
        return f"try_strptime({c}, '%Y-%m-%d')::DATE"
    if column.type == "boolean":
        return f"CASE WHEN lower({c}) IN {_in(TRUE_WORDS)} THEN true WHEN lower({c}) IN {_in(FALSE_WORDS)} THEN false END"
    if column.type == "integer":
        return f"CASE WHEN regexp_full_match({c}, '[+-]?[0-9]{{1,18}}') THEN try_cast({c} AS BIGINT) END"
    if column.type == "amount":
        # Exact money: at most two decimals, never rounded to fit.
        return f"CASE WHEN regexp_full_match({c}, {lit(AMOUNT_PATTERN)}) THEN try_cast({c} AS {AMOUNT_SQL_TYPE}) END"
    if column.type == "email":
        return f"lower({c})"
    return c


def padded_sql(value: str) -> str:
    """SQL: the value may start or end with WHITESPACE (it is empty, starts with a byte below '!', or ends
    with one of WHITESPACE). Only those values pay for trim() with a character set, ~4x slower than a
    regular expression, which is itself twice as slow as this test (byte comparisons, no pattern)."""
    return f"({value} < '!' OR " + " OR ".join(f"suffix({value}, chr({ord(char)}))" for char in WHITESPACE) + ")"


def cleaned_sql(name: str) -> str:
    """SQL of a value without surrounding WHITESPACE, NULL when nothing is left."""
    c = q(name)
    return f"nullif(CASE WHEN {padded_sql(c)} THEN trim({c}, {lit(WHITESPACE)}) ELSE {c} END, '')"


def typed(column: Column) -> str:
    return q(f"__typed_{column.name}")


def _missing_rules(entity: Entity) -> list[tuple[str, str]]:
    """Required columns, including the rules that depend on another column (event type, registration)."""
    rules = [(f"{q(c)} IS NULL", f"missing_required:{c}") for c in entity.required_columns]
    rules += [
        (f"{q(c.name)} IS NULL AND {q(c.required_with)} IS NOT NULL", f"missing_required:{c.name}")
        for c in entity.columns
        if c.required_with
    ]
    if entity.partial_rows_without:
        # A change row must change something besides its time.
        changed = [q(c.name) for c in entity.columns if c.name not in (*entity.key, "updated_at", entity.partial_rows_without)]
        rules.append(
            (
                f"{q(entity.partial_rows_without)} IS NULL AND {' AND '.join(f'{c} IS NULL' for c in changed)}",
                f"missing_required:{entity.partial_rows_without}",
            )
        )
    if entity.name == "interactions":
        rules += [
            (f"event_type IN {_in(EMAIL_EVENT_TYPES)} AND customer_id IS NULL", "missing_required:customer_id"),
            (
                f"event_type IN {_in(SITE_EVENT_TYPES)} AND customer_id IS NULL AND anonymous_id IS NULL",
                "missing_required:customer_id_or_anonymous_id",
            ),
            (f"event_type IN {_in(EVENTS_REQUIRING_PRODUCT)} AND product_id IS NULL", "missing_required:product_id"),
            (f"event_type IN {_in(EVENTS_REQUIRING_LETTER_KEY)} AND letter_key IS NULL", "missing_required:letter_key"),
        ]
    return rules


def row_rules(entity: Entity) -> list[tuple[str, str]]:
    """(condition, reason) in the contract's order; the first that holds is the row's reason."""
    rules = [("_nested IS NOT NULL", "'nested_value:' || _nested")]
    rules += [(condition, lit(reason)) for condition, reason in _missing_rules(entity)]
    for column_type in UNPARSABLE_ORDER:
        rules += [
            (f"{q(c.name)} IS NOT NULL AND {typed(c)} IS NULL", lit(f"{UNPARSABLE_REASON[column_type]}:{c.name}"))
            for c in entity.columns
            if c.type == column_type
        ]
    rules += [(f"{typed(c)} < 0", lit(f"negative_value:{c.name}")) for c in entity.columns if c.non_negative]
    for c in entity.columns:
        if c.allowed:
            reason = "unknown_status" if c.name == "status" else f"unknown_{c.name}"
            rules.append((f"{q(c.name)} IS NOT NULL AND {q(c.name)} NOT IN {_in(c.allowed)}", lit(reason)))
    rules += [
        (f"{q(c.name)} IN (SELECT address FROM {MALFORMED_EMAILS_TABLE})", lit("malformed_email"))
        for c in entity.columns
        if c.type == "email"
    ]
    latest_allowed = f"_landing_date::TIMESTAMP + INTERVAL {24 + FUTURE_TOLERANCE_HOURS} HOUR"
    rules += [
        (f"{typed(c)} > {latest_allowed}", lit(f"future_timestamp:{c.name}"))
        for c in entity.columns
        if c.type == "timestamp"
    ]
    return rules


def plain_email_sql(value: str) -> str:
    """SQL: the address has the plain ASCII shape email-validator always accepts (no need to ask it)."""
    return (
        f"(length({value}) <= {PLAIN_EMAIL_MAX_LENGTH} AND regexp_full_match({value}, {lit(PLAIN_EMAIL_PATTERN)}) "
        f"AND NOT regexp_matches({value}, {lit(SPECIAL_USE_TLD_PATTERN)}, 'i'))"
    )


def is_valid_email(address: str) -> bool:
    """email-validator's verdict on the address's syntax; deliverability (DNS) is never checked."""
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def find_malformed_emails(con: duckdb.DuckDBPyConnection, entity: Entity, cleaned: dict[str, str]) -> None:
    """Fill the temp table `malformed_emails` with the landed addresses email-validator rejects."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {MALFORMED_EMAILS_TABLE} (address VARCHAR)")
    for column in (c for c in entity.columns if c.type == "email"):
        # A plain address has no whitespace to trim: the shape is checked on the value as landed (cheaper),
        # the others are judged as the row rules see them (trimmed).
        unusual = con.execute(
            f"SELECT DISTINCT {cleaned[column.name]} FROM {LANDED_TABLE} "
            f"WHERE {q(column.name)} IS NOT NULL AND NOT {plain_email_sql(q(column.name))}"
        ).fetchall()
        malformed = [(address,) for (address,) in unusual if address is not None and not is_valid_email(address)]
        if malformed:
            con.executemany(f"INSERT INTO {MALFORMED_EMAILS_TABLE} VALUES (?)", malformed)


def _case(rules: list[tuple[str, str]]) -> str:
    if not rules:
        return "NULL::VARCHAR"
    return "CASE " + " ".join(f"WHEN {condition} THEN {reason}" for condition, reason in rules) + " END"


def validate_landed(con: duckdb.DuckDBPyConnection, entity: Entity) -> None:
    """Apply the row rules to the `landed` temp table; defines the temp views `good_rows` and `bad_rows`.

    References (an order's customer, an item's order and product) are looked up in the raw tables,
    which the entities referred to were written to earlier in the same run.
    """
    names = entity.column_names
    # The quarantined row as delivered (before trimming), looked up in the rows as read for bad rows only.
    raw_row = "to_json(struct_pack(" + ", ".join(f"{q(c)} := r.{q(c)}" for c in names) + "))"
    cleaned_value = {c: cleaned_sql(c) for c in names}
    cleaned = ", ".join(f"{value} AS {q(c)}" for c, value in cleaned_value.items())
    find_malformed_emails(con, entity, cleaned_value)
    typed_columns = ", ".join(f"{parse_sql(c)} AS {typed(c)}" for c in entity.columns)
    # Within a landing day the first row of an id wins (by file name, then row; files are numbered in
    # the order of their names): a later row is a duplicate. Where the contract allows changes within a day, only an exact copy is a duplicate.
    # Found by grouping (only ids seen twice are joined back), which is far cheaper than a window.
    same_row = [*map(q, entity.key), "_landing_date"]
    if entity.changes_within_day:
        same_row += [q(c) for c in names if c not in entity.key]
    same_row_match = " AND ".join(f"r.{c} IS NOT DISTINCT FROM d.{c}" for c in same_row)
    reference_rules = [
        (
            f"{q(column)} IS NOT NULL AND {q(column)} NOT IN "
            f"(SELECT {q(key)} FROM raw.{referenced} WHERE {q(key)} IS NOT NULL)",
            lit(f"unknown_{referenced.removesuffix('s')}"),
        )
        for column, referenced, key in entity.references
    ]
    later_rules = _case([("_occurrence > 1", lit("duplicate_id")), *reference_rules])
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE checked AS
        WITH cleaned AS (
            SELECT {cleaned}, _nested, _landing_date, _file, _row_number, _ordinal FROM {LANDED_TABLE}
        ),
        parsed AS (SELECT *, {typed_columns} FROM cleaned),
        reasoned AS (SELECT *, {_case(row_rules(entity))} AS _reason FROM parsed),
        seen_twice AS (
            SELECT {', '.join(same_row)} FROM reasoned WHERE _reason IS NULL GROUP BY ALL HAVING count(*) > 1
        ),
        twins AS (
            SELECT r._file, r._ordinal, row_number() OVER (
                PARTITION BY {', '.join(f"r.{c}" for c in same_row)} ORDER BY r._file, r._row_number
            ) AS _occurrence
            FROM reasoned AS r JOIN seen_twice AS d ON {same_row_match}
            WHERE r._reason IS NULL
        ),
        counted AS (
            SELECT r.*, t._occurrence FROM reasoned AS r LEFT JOIN twins AS t USING (_file, _ordinal)
        )
        SELECT {', '.join(typed(c) for c in entity.columns)}, _landing_date, _file, _row_number, _ordinal,
            coalesce(_reason, {later_rules}) AS _reason
        FROM counted
        """
    )
    good_columns = ", ".join(f"{typed(c)}::{SQL_TYPES[c.type]} AS {q(c.name)}" for c in entity.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {GOOD_TABLE} AS SELECT {good_columns}, c._landing_date, f._source_file, "
        f"c._row_number FROM checked AS c JOIN {FILES_TABLE} AS f USING (_file) WHERE c._reason IS NULL"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {BAD_TABLE} AS SELECT {lit(entity.name)} AS entity, c._landing_date AS landing_date, "
        f"f._source_file AS source_file, c._row_number AS row_number, c._reason AS reason, {raw_row} AS raw_row "
        f"FROM checked AS c JOIN {READ_TABLE} AS r USING (_file, _ordinal) JOIN {FILES_TABLE} AS f USING (_file) "
        "WHERE c._reason IS NOT NULL"
    )
