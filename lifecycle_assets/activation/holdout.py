"""Control groups at push time: a letter the plan holds out is recorded as `held_out` and never sent.

Who is held out is decided once, in SQL at plan time (`dbt_like_sql/intermediate/control_groups.sql`
and the `control_group` column of `marts.letters_planned`), so the push, the audiences and the lift
report read one definition. This module records the decision in the send ledger, and gives the
same hash in Python for the sample shop, which simulates who would get a letter.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TypeVar

HELD_OUT = "held_out"
BUCKETS = 10_000
# Why a letter was held out, kept in the ledger's suppression_reason (the column that says why a letter was not sent).
HOLDOUT_REASONS = {"global": "global_control_group", "letter_type": "letter_type_holdout"}

LetterT = TypeVar("LetterT")


def control_bucket(*parts: str) -> int:
    """The bucket (0..9999) the SQL gives `customer_id[:letter_type]:salt`: md5, first 8 hex digits, modulo 10000."""
    return int(hashlib.md5(":".join(parts).encode("utf-8")).hexdigest()[:8], 16) % BUCKETS


def in_share(bucket: int, share: float) -> bool:
    """SQL's `bucket < round(share * 10000)` (DuckDB rounds half away from zero)."""
    return bucket < math.floor(share * BUCKETS + 0.5)


def in_global_control_group(customer_id: str, salt: str, share: float) -> bool:
    return in_share(control_bucket(customer_id, salt), share)


def in_letter_holdout(customer_id: str, letter_type: str, salt: str, share: float) -> bool:
    return in_share(control_bucket(customer_id, letter_type, salt), share)


def hold_out_letters(connection, letters: Sequence[LetterT]) -> list[LetterT]:
    """Record the letters whose plan row names a control group as `held_out`; return the others, to send.

    A plan written before control groups existed (no `control_group` column) holds nobody out.
    """
    keys = [letter.letter_key for letter in letters]
    has_column = connection.execute(
        """select count(*) from information_schema.columns
           where table_schema = 'marts' and table_name = 'letters_planned' and column_name = 'control_group'"""
    ).fetchone()[0]
    if not keys or not has_column:
        return list(letters)
    held = dict(
        connection.execute(
            """select letter_key, control_group from marts.letters_planned
               where control_group is not null and letter_key in (select unnest(?))""",
            [keys],
        ).fetchall()
    )
    if held:
        connection.execute(
            f"""update activation.send_ledger
                set state = '{HELD_OUT}', finished_at = now() at time zone 'UTC', updated_at = now() at time zone 'UTC',
                    suppression_reason = case held.control_group
                        {' '.join(f"when '{group}' then '{reason}'" for group, reason in HOLDOUT_REASONS.items())}
                        else 'control_group_' || held.control_group end
                from (select unnest(?) as letter_key, unnest(?) as control_group) as held
                where send_ledger.letter_key = held.letter_key and send_ledger.state in ('planned', 'dry_run')""",
            [list(held), list(held.values())],
        )
    return [letter for letter in letters if letter.letter_key not in held]
