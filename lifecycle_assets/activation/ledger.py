"""The send ledger: one row per letter key, the only memory that makes "send once" true.

Mail Send has no idempotency key, so a letter is claimed (committed) before its request
leaves and settled after the answer. A run killed in between leaves `claimed` rows; the next
run turns them into `unknown`, which are never sent again automatically. An operator who
has checked SendGrid's activity can release them with `release_letters`.

States:
  planned     seen in marts.letters_planned, not yet sent
  claimed     a request carrying it is (or was) in flight
  accepted    SendGrid answered 202; message_id holds X-Message-Id
  failed      SendGrid rejected it (error holds SendGrid's message); not retried automatically
  suppressed  never sent: suppression_reason says why (unsubscribed, bounced, no consent, ...)
  unknown     the request may have reached SendGrid, no answer came back; shown to operators
  dry_run     written to the outbox by a run without an API key; a real run still sends it
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SENDABLE_STATES = ("planned", "dry_run")
ALL_STATES = ("planned", "claimed", "accepted", "failed", "suppressed", "unknown", "dry_run")

SCHEMA_SQL = """
create schema if not exists activation;
create table if not exists activation.send_ledger (
    letter_key varchar primary key,
    customer_id varchar not null,
    trigger varchar,
    template_name varchar not null,
    as_of date,
    state varchar not null,
    message_id varchar,
    error varchar,
    suppression_reason varchar,
    attempts integer not null default 0,
    run_id varchar,
    planned_at timestamp not null,
    claimed_at timestamp,
    finished_at timestamp,
    updated_at timestamp not null
);
create table if not exists activation.audience_members (
    list_name varchar not null,
    email varchar not null,
    customer_id varchar,
    synced_at timestamp not null,
    primary key (list_name, email)
);
create table if not exists activation.contact_state (
    email varchar primary key,
    customer_id varchar,
    fields_hash varchar not null,
    synced_at timestamp not null
);
create table if not exists activation.contact_import_jobs (
    job_id varchar,
    run_id varchar,
    purpose varchar,
    contacts integer,
    status varchar,
    errored_count integer,
    errors varchar,
    polled_at timestamp
);
"""


def ensure_schema(connection) -> None:
    connection.execute(SCHEMA_SQL)


def plan_new_letters(connection) -> int:
    """Add letters of the current plan the ledger has not seen; a known key keeps its state."""
    before = connection.execute("select count(*) from activation.send_ledger").fetchone()[0]
    connection.execute(
        """
        insert into activation.send_ledger
            (letter_key, customer_id, trigger, template_name, as_of, state, planned_at, updated_at)
        select plan.letter_key, plan.customer_id, plan.trigger, plan.template_name, plan.as_of,
               'planned', now(), now()
        from marts.letters_planned as plan
        anti join activation.send_ledger as ledger using (letter_key)
        """
    )
    return connection.execute("select count(*) from activation.send_ledger").fetchone()[0] - before


def mark_interrupted_claims_unknown(connection) -> list[str]:
    """Claims left by a run that died mid-send: their request may have left, so they become unknown."""
    keys = [
        row[0]
        for row in connection.execute(
            "select letter_key from activation.send_ledger where state = 'claimed' order by letter_key"
        ).fetchall()
    ]
    if keys:
        connection.execute(
            """update activation.send_ledger
               set state = 'unknown', updated_at = now(),
                   error = 'the run that claimed it stopped before SendGrid answered'
               where state = 'claimed'"""
        )
    return keys


def claim(connection, letter_keys: list[str], run_id: str) -> list[str]:
    """Claim sendable letters; returns only those this call claimed, committed before any request."""
    if not letter_keys:
        return []
    rows = connection.execute(
        """update activation.send_ledger
           set state = 'claimed', run_id = ?, claimed_at = now(), updated_at = now(), attempts = attempts + 1
           where letter_key in (select unnest(?)) and state in ('planned', 'dry_run')
           returning letter_key""",
        [run_id, letter_keys],
    ).fetchall()
    return [row[0] for row in rows]


def _settle(connection, letter_keys: list[str], state: str, *, message_id=None, error=None) -> None:
    if not letter_keys:
        return
    connection.execute(
        """update activation.send_ledger
           set state = ?, message_id = coalesce(?, message_id), error = ?, finished_at = now(), updated_at = now()
           where letter_key in (select unnest(?)) and state = 'claimed'""",
        [state, message_id, error, letter_keys],
    )


def mark_accepted(connection, letter_keys: list[str], message_id: str | None) -> None:
    _settle(connection, letter_keys, "accepted", message_id=message_id)


def mark_failed(connection, failures: Mapping[str, str]) -> None:
    for letter_key, error in failures.items():
        _settle(connection, [letter_key], "failed", error=error)


def mark_unknown(connection, letter_keys: list[str], error: str) -> None:
    _settle(connection, letter_keys, "unknown", error=error)


def mark_dry_run(connection, letter_keys: list[str]) -> None:
    _settle(connection, letter_keys, "dry_run", error=None)


def return_to_planned(connection, letter_keys: list[str], reason: str) -> None:
    """SendGrid answered and did not accept (auth, unavailable): the letter is still owed."""
    _settle(connection, letter_keys, "planned", error=reason)


def mark_suppressed(connection, reasons: Mapping[str, str]) -> None:
    """Suppress sendable letters; a suppressed letter stays suppressed for its key."""
    if not reasons:
        return
    import pyarrow

    connection.register(
        "_suppressed", pyarrow.table({"letter_key": list(reasons), "reason": list(reasons.values())})
    )
    connection.execute(
        """update activation.send_ledger as ledger
           set state = 'suppressed', suppression_reason = s.reason, finished_at = now(), updated_at = now()
           from _suppressed as s
           where ledger.letter_key = s.letter_key and ledger.state in ('planned', 'dry_run')"""
    )
    connection.unregister("_suppressed")


def release_letters(connection, letter_keys: Iterable[str], from_states: tuple[str, ...] = ("unknown",)) -> int:
    """Operator action: make unknown (or, explicitly, failed) letters sendable again.

    Only do this after checking SendGrid's Email Activity for the letter key (custom_args
    letter_key): a released letter that did reach SendGrid will be sent a second time.
    """
    keys = list(letter_keys)
    if not keys:
        return 0
    ensure_schema(connection)
    rows = connection.execute(
        """update activation.send_ledger
           set state = 'planned', error = null, updated_at = now()
           where letter_key in (select unnest(?)) and state in (select unnest(?))
           returning letter_key""",
        [keys, list(from_states)],
    ).fetchall()
    return len(rows)


def state_counts(connection) -> dict[str, int]:
    counts = dict.fromkeys(ALL_STATES, 0)
    for state, count in connection.execute(
        "select state, count(*) from activation.send_ledger group by state"
    ).fetchall():
        counts[state] = count
    return counts


def letters_in_state(connection, state: str, limit: int | None = None) -> list[tuple[str, str | None]]:
    """(letter_key, error) for an operator; no emails."""
    sql = "select letter_key, error from activation.send_ledger where state = ? order by letter_key"
    if limit:
        sql += f" limit {int(limit)}"
    return connection.execute(sql, [state]).fetchall()
