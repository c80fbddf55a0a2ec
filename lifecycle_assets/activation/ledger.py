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


# --- unknown letters resolved from SendGrid's Event Webhook (docs/webhook.md) -------------------
# SendGrid retries an unacknowledged event batch for up to 24 h: after that, no event will come.
WEBHOOK_RETRY_HORIZON_SECONDS = 24 * 3600
RESOLUTIONS_SQL = """
create table if not exists activation.unknown_resolutions (
    letter_key varchar not null,
    decision varchar not null,  -- 'accepted' (SendGrid reported it) or 'released' (it never reached SendGrid)
    evidence varchar not null,
    claimed_at timestamp,
    decided_at timestamp not null
);
"""


def resolve_unknown_from_webhook(connection, horizon_seconds: float = WEBHOOK_RETRY_HORIZON_SECONDS) -> dict[str, int]:
    """Settle `unknown` letters from webhook events in raw.interactions; each decision is recorded.

    accepted: any SendGrid event names the letter's key (processed, delivered, dropped, bounce, ...):
              SendGrid had the letter, so it is never sent again.
    released: no event names it, the retry horizon has passed since it was claimed, and the webhook
              demonstrably delivered SendGrid's events over that time: events that occurred after
              the claim and events that occurred after claim + horizon were ingested. The letter
              goes back to `planned` only if the current plan still holds it (the push re-checks
              consent and suppressions before sending).
    """
    counts = {"accepted": 0, "released": 0}
    ensure_schema(connection)
    columns = {row[0] for row in connection.execute(
        "select column_name from information_schema.columns where table_schema = 'raw' and table_name = 'interactions'"
    ).fetchall()}
    if not {"event_id", "letter_key", "occurred_at"} <= columns:
        return counts
    connection.execute(RESOLUTIONS_SQL)
    accepted = connection.execute(
        """
        select ledger.letter_key, ledger.claimed_at,
               string_agg(distinct events.event_type, ', ' order by events.event_type) as seen
        from activation.send_ledger as ledger
        join raw.interactions as events on events.letter_key = ledger.letter_key and events.event_id like 'sg:%'
        where ledger.state = 'unknown'
        group by all
        """
    ).fetchall()
    released = connection.execute(
        """
        with webhook as (select occurred_at from raw.interactions where event_id like 'sg:%'),
        candidates as (
            select ledger.letter_key, ledger.claimed_at
            from activation.send_ledger as ledger
            where ledger.state = 'unknown'
              and ledger.claimed_at + to_seconds(?::double) <= now()::timestamp
              and not exists (select 1 from raw.interactions as events where events.letter_key = ledger.letter_key)
              and exists (select 1 from marts.letters_planned as plan where plan.letter_key = ledger.letter_key)
        )
        select letter_key, claimed_at from candidates
        where exists (select 1 from webhook where occurred_at >= date_trunc('second', claimed_at)
                                                 and occurred_at < claimed_at + to_seconds(?::double))
          and exists (select 1 from webhook where occurred_at >= claimed_at + to_seconds(?::double))
        """,
        [horizon_seconds, horizon_seconds, horizon_seconds],
    ).fetchall()
    _record_resolutions(connection, "accepted", [(key, claimed, f"SendGrid reported: {seen}") for key, claimed, seen in accepted])
    reason = f"no SendGrid event {horizon_seconds:.0f} s after the claim while the webhook was receiving"
    _record_resolutions(connection, "released", [(key, claimed, reason) for key, claimed in released])
    counts.update(accepted=len(accepted), released=len(released))
    return counts


def _record_resolutions(connection, decision: str, rows: list[tuple]) -> None:
    """Move unknown letters to `accepted` or back to `planned`, and record why, in one statement each."""
    if not rows:
        return
    keys = [row[0] for row in rows]
    new_state = "accepted" if decision == "accepted" else "planned"
    connection.execute(
        """update activation.send_ledger
           set state = ?, error = null, updated_at = now(),
               finished_at = case when ? = 'accepted' then now() else finished_at end
           where letter_key in (select unnest(?)) and state = 'unknown'""",
        [new_state, new_state, keys],
    )
    connection.execute(
        """insert into activation.unknown_resolutions
           select unnest(?), ?, unnest(?), unnest(?), now()""",
        [keys, decision, [row[2] for row in rows], [row[1] for row in rows]],
    )
