"""Audits of the lifecycle outputs: each is SQL that returns the bad rows, so an empty result passes.

The letter audits are blocking: a duplicated key or a letter to a customer without consent must not
reach SendGrid. The others warn an operator with the count and a sample of what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from dagster_duckdb import DuckDBResource

from lifecycle_assets.models.sql_models import STAGES

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Audit:
    name: str
    asset: tuple[str, ...]
    description: str
    bad_rows_sql: str
    blocking: bool = False
    additional_deps: tuple[tuple[str, ...], ...] = ()


AUDITS = (
    Audit(
        name="one_stage_per_customer",
        asset=("marts", "customer_lifecycle"),
        description="Every customer has exactly one row and a known stage.",
        bad_rows_sql=f"""
            select customer_id, count(*) as rows_for_customer, min(stage) as stage
            from marts.customer_lifecycle
            group by customer_id
            having count(*) <> 1 or bool_or(stage is null or stage not in {STAGES!r})
        """,
    ),
    Audit(
        name="stage_counts_sum_to_customers",
        asset=("marts", "customer_lifecycle"),
        description="The stage counts add up to the number of known customers: nobody lost, nobody counted twice.",
        bad_rows_sql="""
            select stage_total, customers_known
            from (
                select
                    (select count(*) from marts.customer_lifecycle where stage is not null) as stage_total,
                    (select count(distinct customer_id) from staging.stg_customers) as customers_known
            )
            where stage_total <> customers_known
        """,
        additional_deps=(("staging", "stg_customers"),),
    ),
    Audit(
        name="letter_keys_unique",
        asset=("marts", "letters_planned"),
        description="A letter key names one letter, so the send ledger can send it once.",
        bad_rows_sql="""
            select letter_key, count(*) as letters
            from marts.letters_planned
            group by letter_key
            having count(*) > 1
        """,
        blocking=True,
    ),
    Audit(
        name="no_letter_without_consent",
        asset=("marts", "letters_planned"),
        description="No letter to an address intermediate.letter_recipients does not allow: no consent, or an "
        "unsubscribe, bounce or spam report by any customer at that address.",
        bad_rows_sql="""
            select letters.letter_key, recipients.not_receiving_reason
            from marts.letters_planned as letters
            left join intermediate.letter_recipients as recipients using (customer_id)
            where recipients.may_receive_letters is distinct from true
        """,
        blocking=True,
        additional_deps=(("intermediate", "letter_recipients"),),
    ),
    Audit(
        name="one_letter_per_address_type_and_day",
        asset=("marts", "letters_planned"),
        description="One inbox gets at most one letter of a type per due day, whichever customers share the address.",
        bad_rows_sql="""
            select template_name, due_on, count(*) as letters
            from marts.letters_planned
            group by email, template_name, due_on
            having count(*) > 1
        """,
        blocking=True,
    ),
    Audit(
        name="no_audience_member_without_consent",
        asset=("marts", "audiences"),
        description="No contact list holds a customer intermediate.letter_recipients does not allow.",
        bad_rows_sql="""
            select audiences.customer_id, audiences.list_name, recipients.not_receiving_reason
            from marts.audiences as audiences
            left join intermediate.letter_recipients as recipients using (customer_id)
            where recipients.may_receive_letters is distinct from true
        """,
        blocking=True,
        additional_deps=(("intermediate", "letter_recipients"),),
    ),
    Audit(
        name="no_overlapping_stage_periods",
        asset=("marts", "customer_stage_history"),
        description="A customer's stage periods (from one transition to the next) never overlap: one transition per "
        "customer and day, and a transition always changes the stage.",
        bad_rows_sql="""
            select customer_id, started_on, stage, previous_recorded_stage
            from (
                select
                    *,
                    count(*) over (partition by customer_id, started_on) as transitions_that_day,
                    lag(stage) over (partition by customer_id order by started_on) as previous_recorded_stage
                from marts.customer_stage_history
            )
            where transitions_that_day > 1 or stage = previous_recorded_stage
        """,
    ),
)


def build_audit_check(audit: Audit) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(list(audit.asset)),
        name=audit.name,
        description=audit.description,
        blocking=audit.blocking,
        additional_deps=[dg.AssetKey(list(key)) for key in audit.additional_deps],
    )
    def _audit(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as connection:
            bad_rows = connection.execute(f"select count(*) from ({audit.bad_rows_sql})").fetchone()[0]
            sample = connection.execute(f"{audit.bad_rows_sql} limit {SAMPLE_ROWS}").fetchall()
        return dg.AssetCheckResult(
            passed=bad_rows == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "bad_rows": dg.MetadataValue.int(int(bad_rows)),
                "sample": dg.MetadataValue.text(repr(sample)),
            },
        )

    return _audit


def build_audit_checks() -> list[dg.AssetChecksDefinition]:
    return [build_audit_check(audit) for audit in AUDITS]
