"""The send ledger: one row per letter key, the only memory that makes "send once" true.

Mail Send has no idempotency key, so a letter is claimed (committed) before its request
leaves and settled after the answer. A run killed in between leaves `claimed` rows; the next
run turns them into `unknown`, which are never sent again automatically. Every claim carries the
id of the Mail Send request it went in (`request_id`): SendGrid accepts or refuses a request as a
whole, so one piece of evidence per request (an Email Activity lookup, or a webhook event for any
of its letter keys) settles all its letters. `release_unknown` (back to planned: the next push
sends them) and `resolve_unknown` (accepted, or failed, on SendGrid's evidence) do that in bulk.

States:
  planned     seen in marts.letters_planned, not yet sent
  claimed     a request carrying it is (or was) in flight
  accepted    SendGrid answered 202; message_id holds X-Message-Id
  failed      SendGrid rejected it (error holds SendGrid's message); not retried automatically
  suppressed  never sent: suppression_reason says why (unsubscribed, bounced, no consent, ...)
  unknown     the request may have reached SendGrid, no answer came back; shown to operators
  dry_run     written to the outbox by a run without an API key; a real run still sends it
  deferred    held back by the contact policy (a cap, one letter of a type per inbox a day);
              state_reason says which; a later day sends it while valid_until has not passed
  expired     not sent by valid_until (the letter type's validity after its due day); state_reason says why
  held_out    never sent: the plan put it in a control group (activation/holdout.py; suppression_reason says which)

Every timestamp is UTC (`now() at time zone 'UTC'`), whatever the machine's or DuckDB's time zone; `send_at` is
when SendGrid delivers the letter (the customer's local send hour), `send_day` the plan day whose
caps it counts against (activation/policy.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SENDABLE_STATES = ("planned", "dry_run", "deferred")
ALL_STATES = (
    "planned", "claimed", "accepted", "failed", "suppressed", "unknown", "dry_run", "deferred", "expired", "held_out"
)
# DuckDB's now() is in the session time zone (the machine's): every statement here writes and
# compares `now() at time zone 'UTC'`, so the ledger holds UTC.

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
    updated_at timestamp not null,
    request_id varchar
);
-- ledgers made before request ids existed
alter table activation.send_ledger add column if not exists request_id varchar;
-- the contact policy (activation/policy.py): ranking, validity, deferral and the local send time
alter table activation.send_ledger add column if not exists priority integer;
alter table activation.send_ledger add column if not exists due_on date;
alter table activation.send_ledger add column if not exists deliver_on date;
alter table activation.send_ledger add column if not exists valid_until date;
alter table activation.send_ledger add column if not exists state_reason varchar;
alter table activation.send_ledger add column if not exists deferrals integer default 0;
alter table activation.send_ledger add column if not exists send_day date;
alter table activation.send_ledger add column if not exists send_at timestamp;
alter table activation.send_ledger add column if not exists time_zone varchar;
-- a deferred letter's content, kept until it is sent or expires: the plan may no longer hold it
alter table activation.send_ledger add column if not exists first_name varchar;
alter table activation.send_ledger add column if not exists personalisation varchar;
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


def plan_new_letters(
    connection, validity_days: Mapping[str, int] | None = None, default_validity_days: int | None = None
) -> int:
    """Add letters of the current plan the ledger has not seen; a known key keeps its state.

    A new letter is valid until its due day plus the validity of its type (`validity_days`, by
    template name, else `default_validity_days`; without either it never expires).
    """
    columns = _plan_columns(connection)
    due_on = "plan.due_on" if "due_on" in columns else "plan.as_of"
    deliver_on = "plan.deliver_on" if "deliver_on" in columns else "null::date"
    priority = "plan.priority" if "priority" in columns else "null::integer"
    validity = dict(validity_days or {})
    before = connection.execute("select count(*) from activation.send_ledger").fetchone()[0]
    connection.execute(
        f"""
        insert into activation.send_ledger
            (letter_key, customer_id, trigger, template_name, as_of, state, planned_at, updated_at,
             priority, due_on, deliver_on, valid_until, deferrals)
        select plan.letter_key, plan.customer_id, plan.trigger, plan.template_name, plan.as_of,
               'planned', (now() at time zone 'UTC'), (now() at time zone 'UTC'),
               {priority}, {due_on}, {deliver_on},
               {due_on} + coalesce(
                   (select validity.days from (select unnest($types) as template_name, unnest($days) as days) as validity
                    where validity.template_name = plan.template_name),
                   $default_days
               )::integer,
               0
        from marts.letters_planned as plan
        anti join activation.send_ledger as ledger using (letter_key)
        """,
        {"types": list(validity), "days": list(validity.values()), "default_days": default_validity_days},
    )
    return connection.execute("select count(*) from activation.send_ledger").fetchone()[0] - before


def _plan_columns(connection) -> set[str]:
    return {row[0] for row in connection.execute(
        "select column_name from information_schema.columns where table_schema = 'marts' and table_name = 'letters_planned'"
    ).fetchall()}


def expire_stale(connection, send_day) -> int:
    """Letters still owed whose validity ended before `send_day` become `expired`, with the reason."""
    rows = connection.execute(
        """update activation.send_ledger
           set state = 'expired',
               state_reason = 'not sent by ' || strftime(valid_until, '%Y-%m-%d') || ' (valid until)'
                   || case when deferrals > 0 then ', deferred ' || deferrals || ' time(s): ' || coalesce(state_reason, '')
                           else '' end,
               personalisation = null, first_name = null,
               finished_at = (now() at time zone 'UTC'), updated_at = (now() at time zone 'UTC')
           where state in ('planned', 'dry_run', 'deferred') and valid_until < ?::date
           returning letter_key""",
        [send_day],
    ).fetchall()
    return len(rows)


def mark_deferred(connection, reasons: Mapping[str, str], contents: Mapping[str, tuple[str | None, str]]) -> None:
    """Hold letters back for a later day, keeping what they say: the plan of a later day may no longer hold them.

    `contents`: letter_key -> (first_name, personalisation JSON) as planned.
    """
    if not reasons:
        return
    import pyarrow

    keys = list(reasons)
    connection.register(
        "_deferred",
        pyarrow.table({
            "letter_key": keys,
            "reason": [reasons[key] for key in keys],
            "first_name": [contents.get(key, (None, None))[0] for key in keys],
            "personalisation": [contents.get(key, (None, None))[1] for key in keys],
        }),
    )
    connection.execute(
        """update activation.send_ledger as ledger
           set state = 'deferred', state_reason = d.reason,
               deferrals = coalesce(ledger.deferrals, 0) + case when ledger.state = 'deferred' then 0 else 1 end,
               first_name = coalesce(d.first_name, ledger.first_name),
               personalisation = coalesce(d.personalisation, ledger.personalisation),
               updated_at = (now() at time zone 'UTC')
           from _deferred as d
           where ledger.letter_key = d.letter_key and ledger.state in ('planned', 'dry_run', 'deferred')"""
    )
    connection.unregister("_deferred")


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
               set state = 'unknown', updated_at = (now() at time zone 'UTC'),
                   error = 'the run that claimed it stopped before SendGrid answered'
               where state = 'claimed'"""
        )
    return keys


def claim(
    connection,
    letter_keys: list[str],
    run_id: str,
    request_id: str | None = None,
    *,
    send_day=None,
    send_times: Mapping[str, tuple] | None = None,
) -> list[str]:
    """Claim sendable letters for one request; returns only those this call claimed, committed before it leaves.

    `send_day` is the plan day the letters count against in the caps; `send_times` maps a letter key
    to (send_at as a naive UTC datetime, the customer's time zone).
    """
    if not letter_keys:
        return []
    times = send_times or {}
    rows = connection.execute(
        """update activation.send_ledger as ledger
           set state = 'claimed', run_id = $run_id, request_id = $request_id,
               claimed_at = (now() at time zone 'UTC'), updated_at = (now() at time zone 'UTC'),
               attempts = attempts + 1, send_day = coalesce($send_day::date, ledger.send_day),
               send_at = times.send_at, time_zone = times.time_zone
           from (select unnest($keys) as letter_key, unnest($send_ats)::timestamp as send_at,
                        unnest($zones) as time_zone) as times
           where ledger.letter_key = times.letter_key and ledger.state in ('planned', 'dry_run', 'deferred')
           returning ledger.letter_key""",
        {
            "run_id": run_id,
            "request_id": request_id,
            "send_day": send_day,
            "keys": list(letter_keys),
            "send_ats": [times.get(key, (None, None))[0] for key in letter_keys],
            "zones": [times.get(key, (None, None))[1] for key in letter_keys],
        },
    ).fetchall()
    return [row[0] for row in rows]


def _settle(connection, letter_keys: list[str], state: str, *, message_id=None, error=None) -> None:
    if not letter_keys:
        return
    connection.execute(
        """update activation.send_ledger
           set state = ?, message_id = coalesce(?, message_id), error = ?, finished_at = (now() at time zone 'UTC'),
               updated_at = (now() at time zone 'UTC'),
               -- a deferred letter's kept content is dropped once it is settled for good
               personalisation = case when ? in ('planned', 'dry_run') then personalisation end,
               first_name = case when ? in ('planned', 'dry_run') then first_name end
           where letter_key in (select unnest(?)) and state = 'claimed'""",
        [state, message_id, error, state, state, letter_keys],
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
           set state = 'suppressed', suppression_reason = s.reason, finished_at = (now() at time zone 'UTC'), updated_at = (now() at time zone 'UTC')
           from _suppressed as s
           where ledger.letter_key = s.letter_key and ledger.state in ('planned', 'dry_run', 'deferred')"""
    )
    connection.unregister("_suppressed")


def release_letters(connection, letter_keys: Iterable[str], from_states: tuple[str, ...] = ("unknown",)) -> int:
    """Operator action: make these unknown (or, explicitly, failed) letters sendable again.

    A released letter that did reach SendGrid will be sent a second time: see `release_unknown`.
    """
    keys = list(letter_keys)
    if not keys:
        return 0
    return len(release_unknown(connection, letter_keys=keys, from_states=from_states))


def _unknown_filter(
    *,
    letter_keys: Iterable[str] | None,
    run_id: str | None,
    request_id: str | None,
    letter_type: str | None,
    older_than_hours: float | None,
    from_states: tuple[str, ...],
) -> tuple[str, list]:
    """A where clause over the ledger for the operator's filters (all optional, combined with and)."""
    clauses, parameters = ["state in (select unnest(?))"], [list(from_states)]
    if letter_keys is not None:
        clauses.append("letter_key in (select unnest(?))")
        parameters.append(list(letter_keys))
    if run_id:
        clauses.append("run_id = ?")
        parameters.append(run_id)
    if request_id:
        clauses.append("request_id = ?")
        parameters.append(request_id)
    if letter_type:
        clauses.append("(template_name = ? or trigger = ?)")
        parameters += [letter_type, letter_type]
    if older_than_hours is not None:
        clauses.append("coalesce(claimed_at, updated_at) <= (now() at time zone 'UTC') - to_microseconds(?::bigint)")
        parameters.append(int(older_than_hours * 3600 * 1_000_000))
    return " and ".join(clauses), parameters


def select_unknown(connection, *, from_states: tuple[str, ...] = ("unknown",), **filters) -> list[str]:
    """Letter keys matching the filters (see `release_unknown`), without changing them."""
    where, parameters = _unknown_filter(from_states=from_states, **{**_NO_FILTERS, **filters})
    return [row[0] for row in connection.execute(
        f"select letter_key from activation.send_ledger where {where} order by letter_key", parameters
    ).fetchall()]


_NO_FILTERS: dict = dict(letter_keys=None, run_id=None, request_id=None, letter_type=None, older_than_hours=None)


def release_unknown(connection, *, from_states: tuple[str, ...] = ("unknown",), **filters) -> list[str]:
    """Operator action in bulk: unknown letters matching every filter go back to `planned`; the next push sends them.

    Filters: `letter_keys`, `run_id`, `request_id` (one Mail Send request), `letter_type` (template
    name or trigger), `older_than_hours` (since the claim). Release only what SendGrid did not accept:
    a request with no trace in Email Activity, or, with the Event Webhook on, unknown letters older
    than the time SendGrid takes to report `processed` for what it accepted.
    """
    ensure_schema(connection)
    where, parameters = _unknown_filter(from_states=from_states, **{**_NO_FILTERS, **filters})
    rows = connection.execute(
        f"""update activation.send_ledger
            set state = 'planned', error = null, updated_at = (now() at time zone 'UTC')
            where {where}
            returning letter_key""",
        parameters,
    ).fetchall()
    return sorted(row[0] for row in rows)


def resolve_unknown(
    connection,
    letter_keys: Iterable[str],
    *,
    state: str = "accepted",
    evidence: str,
    message_id: str | None = None,
    whole_request: bool = True,
) -> list[str]:
    """Settle unknown letters on SendGrid's evidence (an event or an Email Activity record naming a letter key).

    `state` is `accepted` (SendGrid has it: processed, delivered, dropped ...) or `failed`. With
    `whole_request`, every unknown letter of the same Mail Send request is settled too: SendGrid
    accepts or refuses a request as a whole. Returns the keys settled; other states are untouched.
    """
    if state not in ("accepted", "failed"):
        raise ValueError(f"an unknown letter resolves to accepted or failed, not {state!r}")
    keys = list(letter_keys)
    if not keys:
        return []
    ensure_schema(connection)
    scope = (
        """(letter_key in (select unnest($keys))
            or request_id in (select request_id from activation.send_ledger
                              where letter_key in (select unnest($keys)) and request_id is not null))"""
        if whole_request
        else "letter_key in (select unnest($keys))"
    )
    rows = connection.execute(
        f"""update activation.send_ledger
            set state = $state, message_id = coalesce($message_id, message_id), error = $evidence,
                finished_at = (now() at time zone 'UTC'), updated_at = (now() at time zone 'UTC')
            where state = 'unknown' and {scope}
            returning letter_key""",
        {"keys": keys, "state": state, "message_id": message_id, "evidence": evidence},
    ).fetchall()
    return sorted(row[0] for row in rows)


def unknown_requests(connection) -> list[tuple]:
    """(run_id, request_id, template_name, letters, first claimed_at, one letter key) per request with unknown letters.

    One Email Activity lookup of the sample letter key settles the whole request; no email is shown.
    """
    ensure_schema(connection)
    return connection.execute(
        """select run_id, request_id, template_name, count(*) as letters, min(claimed_at) as claimed_at,
                  min(letter_key) as sample_letter_key
           from activation.send_ledger where state = 'unknown'
           group by all order by claimed_at, request_id"""
    ).fetchall()


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
              and ledger.claimed_at + to_seconds(?::double) <= (now() at time zone 'UTC')
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
           set state = ?, error = null, updated_at = (now() at time zone 'UTC'),
               finished_at = case when ? = 'accepted' then (now() at time zone 'UTC') else finished_at end
           where letter_key in (select unnest(?)) and state = 'unknown'""",
        [new_state, new_state, keys],
    )
    connection.execute(
        """insert into activation.unknown_resolutions
           select unnest(?), ?, unnest(?), unnest(?), (now() at time zone 'UTC')""",
        [keys, decision, [row[2] for row in rows], [row[1] for row in rows]],
    )
