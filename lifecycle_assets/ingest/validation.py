"""Row rules: split a landing day's rows into typed good rows and quarantined rows with a reason.

The reason of a rejected row is the first rule it breaks, in the order of docs/data_contract.md,
so the same bad row always gets the same reason. Nothing is dropped: every input row leaves
either as a good row or as a quarantined row with its raw values.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from lifecycle_assets.ingest.contract import (
    EMAIL_EVENT_TYPES,
    EVENTS_REQUIRING_LETTER_KEY,
    EVENTS_REQUIRING_PRODUCT,
    FUTURE_TOLERANCE_HOURS,
    SITE_EVENT_TYPES,
    Column,
    Entity,
)

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$"
TRUE_WORDS = ("true", "1", "yes", "t", "y")
FALSE_WORDS = ("false", "0", "no", "f", "n")

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


@dataclass
class ValidatedRows:
    good: pl.DataFrame
    quarantined: pl.DataFrame


def _parse_timestamp(text: pl.Expr) -> pl.Expr:
    """ISO 8601 with 'T' or space, optional fraction, optional offset or Z; naive means UTC."""
    normalised = text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T").str.replace(r"[Zz]$", "+00:00")
    with_offset = [
        normalised.str.to_datetime(f, strict=False, time_unit="us")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
        for f in ("%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%:z")
    ]
    naive = [
        normalised.str.to_datetime(f, strict=False, time_unit="us")
        for f in ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
    ]
    return pl.coalesce(with_offset + naive)


def _parse(column: Column, text: pl.Expr) -> pl.Expr:
    if column.type == "timestamp":
        return _parse_timestamp(text)
    if column.type == "date":
        return text.str.to_date("%Y-%m-%d", strict=False)
    if column.type == "boolean":
        lowered = text.str.to_lowercase()
        return pl.when(lowered.is_in(TRUE_WORDS)).then(True).when(lowered.is_in(FALSE_WORDS)).then(False)
    if column.type == "integer":
        return text.cast(pl.Int64, strict=False)
    if column.type == "amount":
        number = text.cast(pl.Float64, strict=False)
        return pl.when(number.is_finite()).then(number)
    if column.type == "email":
        return text.str.to_lowercase()
    return text


def _missing_rules(entity: Entity) -> list[tuple[pl.Expr, str]]:
    """Required columns, including the interaction rules that depend on the event type."""
    rules = [(pl.col(c).is_null(), f"missing_required:{c}") for c in entity.required_columns]
    if entity.name == "interactions":
        event = pl.col("event_type")
        rules += [
            (event.is_in(EMAIL_EVENT_TYPES) & pl.col("customer_id").is_null(), "missing_required:customer_id"),
            (
                event.is_in(SITE_EVENT_TYPES) & pl.col("customer_id").is_null() & pl.col("anonymous_id").is_null(),
                "missing_required:customer_id_or_anonymous_id",
            ),
            (event.is_in(EVENTS_REQUIRING_PRODUCT) & pl.col("product_id").is_null(), "missing_required:product_id"),
            (
                event.is_in(EVENTS_REQUIRING_LETTER_KEY) & pl.col("letter_key").is_null(),
                "missing_required:letter_key",
            ),
        ]
    return rules


def _first_reason(rules: list[tuple[pl.Expr, str]]) -> pl.Expr:
    if not rules:
        return pl.lit(None, dtype=pl.String)
    condition, reason = rules[0]
    chain = pl.when(condition).then(pl.lit(reason))
    for condition, reason in rules[1:]:
        chain = chain.when(condition).then(pl.lit(reason))
    return chain.otherwise(pl.lit(None, dtype=pl.String))


def validate_rows(rows: pl.DataFrame, entity: Entity, known_ids: dict[str, pl.Series]) -> ValidatedRows:
    """Apply the contract's row rules to text rows carrying `_landing_date`, `_source_file`, `_row_number`.

    `known_ids` maps a referencing column (e.g. ``customer_id``) to the ids already ingested for
    the entity it refers to; a reference to anything else is quarantined.
    """
    text_columns = entity.column_names
    rows = rows.with_columns(pl.struct(text_columns).struct.json_encode().alias("__raw_row"))
    # Blank cells are missing values, whatever the format they came from.
    cleaned = rows.with_columns(
        [pl.col(c).str.strip_chars().replace("", None).alias(c) for c in text_columns]
    ).with_columns([_parse(c, pl.col(c.name)).alias(f"__typed_{c.name}") for c in entity.columns])

    typed = {c.name: pl.col(f"__typed_{c.name}") for c in entity.columns}
    rules = _missing_rules(entity)
    for column_type in UNPARSABLE_ORDER:
        rules += [
            (pl.col(c.name).is_not_null() & typed[c.name].is_null(), f"{UNPARSABLE_REASON[column_type]}:{c.name}")
            for c in entity.columns
            if c.type == column_type
        ]
    rules += [(typed[c.name] < 0, f"negative_value:{c.name}") for c in entity.columns if c.non_negative]
    for c in entity.columns:
        if c.allowed:
            reason = "unknown_status" if c.name == "status" else f"unknown_{c.name}"
            rules.append((pl.col(c.name).is_not_null() & ~pl.col(c.name).is_in(c.allowed), reason))
    rules += [
        (pl.col(c.name).is_not_null() & ~pl.col(c.name).str.contains(EMAIL_PATTERN), "malformed_email")
        for c in entity.columns
        if c.type == "email"
    ]
    latest_allowed = pl.col("_landing_date").cast(pl.Datetime("us")) + pl.duration(hours=24 + FUTURE_TOLERANCE_HOURS)
    rules += [(typed[c.name] > latest_allowed, f"future_timestamp:{c.name}") for c in entity.columns if c.type == "timestamp"]

    ordered = cleaned.sort(["_landing_date", "_source_file", "_row_number"]).with_columns(
        _first_reason(rules).alias("__reason")
    )
    # Within a landing day the first row of an id wins; later copies are quarantined.
    occurrence = pl.int_range(pl.len()).over([*entity.key, "_landing_date", pl.col("__reason").is_null()])
    reference_rules = [
        (pl.col(column).is_not_null() & ~pl.col(column).is_in(known_ids.get(column, pl.Series([], dtype=pl.String))),
         f"unknown_{referenced.removesuffix('s')}")
        for column, referenced, _ in entity.references
    ]
    ordered = ordered.with_columns(
        pl.coalesce(
            pl.col("__reason"),
            _first_reason([(occurrence > 0, "duplicate_id"), *reference_rules]),
        ).alias("__reason")
    )

    good = ordered.filter(pl.col("__reason").is_null()).select(
        [pl.col(f"__typed_{c.name}").cast(POLARS_TYPES[c.type]).alias(c.name) for c in entity.columns]
        + [pl.col("_landing_date"), pl.col("_source_file"), pl.col("_row_number")]
    )
    quarantined = ordered.filter(pl.col("__reason").is_not_null()).select(
        pl.lit(entity.name).alias("entity"),
        pl.col("_landing_date").alias("landing_date"),
        pl.col("_source_file").alias("source_file"),
        pl.col("_row_number").alias("row_number"),
        pl.col("__reason").alias("reason"),
        pl.col("__raw_row").alias("raw_row"),
    )
    return ValidatedRows(good=good, quarantined=quarantined)
