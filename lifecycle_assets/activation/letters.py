"""Planned letters sent through SendGrid Mail Send, each at most once.

Order of a push: record new letters in the ledger; turn claims a dead run left behind into
`unknown`; pull SendGrid's suppressions; evaluate the one recipient rule
(`dbt_like_sql/intermediate/letter_recipients.sql`) over the freshest customer and interaction
rows, so a letter goes to the address current now and never to an address where any customer
withdrew consent, unsubscribed, bounced or reported spam; apply the contact policy
(activation/policy.py): letters past their validity expire, the day's letters are ranked by
priority, and one letter per address and letter type a day and the daily and weekly caps per
customer and per address defer the rest to a later day; then send in requests of up to 1000
personalizations, one template per request, each address at most once per request, each letter
with a `send_at` at the customer's local send hour. Each request's letters are claimed in the
ledger before it leaves.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from lifecycle_assets.activation import holdout, ledger
from lifecycle_assets.activation.policy import ONE_INBOX_REASON, CapCounter, ContactPolicy, customer_zones, plan_day, send_at
from lifecycle_assets.models.sql_models import SQL_MODELS_DIR, parse_model
from lifecycle_assets.activation.client import (
    SendGridAuthError,
    SendGridOutcomeUnknown,
    SendGridRejected,
    SendGridSession,
    SendGridUnavailable,
)

MAX_PERSONALIZATIONS_PER_REQUEST = 1000
# A 400 names the offending personalization; peel those off and resend the rest. Bounded so a
# request SendGrid keeps rejecting for new reasons cannot loop.
MAX_REJECTION_ROUNDS = 5
SENDGRID_SUPPRESSION_LISTS = {
    "unsubscribes": "/v3/suppression/unsubscribes",
    "bounces": "/v3/suppression/bounces",
    "spam_reports": "/v3/suppression/spam_reports",
    "invalid_emails": "/v3/suppression/invalid_emails",
}
SUPPRESSION_PAGE_SIZE = 500
RECIPIENT_RULE = SQL_MODELS_DIR / "intermediate" / "letter_recipients.sql"
# The freshest row per customer, whatever day it landed: a withdrawal landed after the build still wins.
# The freshest state of every customer by staging's own rule (the latest change by its time wins, a
# partial row changes only what it carries, a withdrawal wins a tie), over everything landed so far.
LATEST_CUSTOMER_ROWS = "(" + parse_model(SQL_MODELS_DIR / "staging" / "stg_customers.sql").select_sql.replace(
    "$as_of", "DATE '9999-12-30'"
) + ")"
NO_INTERACTIONS = "(select null::varchar as customer_id, null::varchar as event_type where false)"
PERSONALIZATION_FIELD = re.compile(r"personalizations\.(\d+)")


@dataclass
class Letter:
    letter_key: str
    customer_id: str
    email: str
    first_name: str | None
    trigger: str
    template_name: str
    personalisation: dict
    priority: int | None = None
    valid_until: dt.date | None = None
    deliver_on: dt.date | None = None  # the local day it should arrive on (birthday, anniversary); None: the next
    send_at: int | None = None  # unix seconds, SendGrid's per-personalization send_at
    planned_personalisation: str | None = None  # as planned, kept in the ledger if the letter is deferred


@dataclass
class BatchOutcome:
    """What happened to one claimed batch; recorded in the ledger by the main thread."""

    accepted: list[tuple[list[str], str | None]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    unknown_error: str | None = None
    not_sent: list[str] = field(default_factory=list)
    not_sent_error: str | None = None
    stop_error: Exception | None = None


@dataclass
class LetterPushResult:
    newly_planned: int = 0
    interrupted_claims_now_unknown: list[str] = field(default_factory=list)
    unknown_resolved: dict[str, int] = field(default_factory=dict)  # from webhook events: accepted / released
    sendable: int = 0
    accepted: int = 0
    dry_run: int = 0
    suppressed: int = 0
    failed: int = 0
    unknown: int = 0
    returned_to_planned: int = 0
    deferred_same_inbox_today: int = 0
    deferred: int = 0
    expired: int = 0
    deferred_by_reason: dict[str, int] = field(default_factory=dict)
    plan_day: dt.date | None = None
    mail_send_requests: int = 0
    suppressed_by_reason: dict[str, int] = field(default_factory=dict)
    accepted_by_template: dict[str, int] = field(default_factory=dict)
    stop_error: Exception | None = None


def pull_sendgrid_suppressions(session: SendGridSession, unsubscribe_group_id: int) -> dict[str, str]:
    """Every address SendGrid will not deliver to, with the list it is on (lower-cased)."""
    suppressed: dict[str, str] = {}
    for kind, path in SENDGRID_SUPPRESSION_LISTS.items():
        offset = 0
        while True:
            page = session.request("GET", path, query={"limit": SUPPRESSION_PAGE_SIZE, "offset": offset}).body or []
            for entry in page:
                email = entry.get("email") if isinstance(entry, dict) else entry
                if email:
                    suppressed.setdefault(email.strip().lower(), f"sendgrid_{kind}")
            if len(page) < SUPPRESSION_PAGE_SIZE:
                break
            offset += SUPPRESSION_PAGE_SIZE
    if unsubscribe_group_id:
        group = session.request("GET", f"/v3/asm/groups/{unsubscribe_group_id}/suppressions").body or []
        for email in group:
            suppressed.setdefault(str(email).strip().lower(), "sendgrid_group_unsubscribe")
    return suppressed


def _table_exists(connection, schema: str, table: str) -> bool:
    return bool(
        connection.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def current_recipients(connection) -> dict[str, tuple[str | None, str | None]]:
    """customer_id -> (address, reason not to write or None): the one recipient rule over the freshest rows."""
    if not _table_exists(connection, "raw", "customers"):
        raise RuntimeError(
            "raw.customers is missing: the push checks marketing consent there before sending any letter"
        )
    interactions = "raw.interactions" if _table_exists(connection, "raw", "interactions") else NO_INTERACTIONS
    rule = parse_model(RECIPIENT_RULE).select_sql
    for staged in ("staging.stg_customers", "staging.stg_interactions"):
        if staged not in rule:
            raise RuntimeError(f"{RECIPIENT_RULE} no longer reads {staged}; the push cannot evaluate it")
    sql = rule.replace("staging.stg_customers", LATEST_CUSTOMER_ROWS).replace("staging.stg_interactions", interactions)
    return {
        customer_id: (address, reason)
        for customer_id, address, reason, _may_receive in connection.execute(sql).fetchall()
    }


def sendable_letters(connection) -> list[Letter]:
    """Letters the ledger still owes, addressed as planned (`push_letters` readdresses them to the current address).

    A letter the current plan holds is sent as the plan says now; a deferred letter the plan no longer
    holds (its due day left the plan's window) is sent as it was planned. Ranked: priority (1 first),
    then the validity that ends first.
    """
    rows = connection.execute(
        """
        select ledger.letter_key, ledger.customer_id, lower(trim(plan.email)),
               case when plan.letter_key is null then ledger.first_name else plan.first_name end,
               ledger.trigger, ledger.template_name,
               case when plan.letter_key is null then ledger.personalisation else plan.personalisation end,
               coalesce(plan.priority, ledger.priority), ledger.valid_until, ledger.deliver_on
        from activation.send_ledger as ledger
        left join marts.letters_planned as plan using (letter_key)
        where ledger.state in ('planned', 'dry_run', 'deferred')
          and (plan.letter_key is not null or ledger.personalisation is not null)
        order by coalesce(plan.priority, ledger.priority) nulls last, ledger.valid_until nulls last, ledger.due_on,
                 ledger.template_name, ledger.letter_key
        """
    ).fetchall()
    letters = []
    for letter_key, customer_id, email, first_name, trigger, template_name, personalisation, priority, valid_until, deliver_on in rows:
        try:
            data = json.loads(personalisation) if personalisation else {}
        except ValueError:
            data = None
        letters.append(
            Letter(
                letter_key, customer_id, email, first_name, trigger, template_name,
                data if isinstance(data, dict) else None, priority, valid_until, deliver_on,
                planned_personalisation=personalisation,
            )
        )
    return letters


def inboxes_written_today(
    connection, recipients: dict[str, tuple[str | None, str | None]], day: dt.date | None
) -> set[tuple[str, str]]:
    """(address, letter type) pairs a letter already went to (or may have: claimed, unknown) on this plan day."""
    rows = connection.execute(
        """select distinct customer_id, template_name from activation.send_ledger
           where state in ('accepted', 'claimed', 'unknown') and send_day = ?""",
        [day],
    ).fetchall()
    return {(recipients[customer_id][0], template) for customer_id, template in rows if recipients.get(customer_id, (None,))[0]}


class LetterSender:
    """Builds Mail Send requests and interprets SendGrid's answers for one batch (runs in worker threads)."""

    def __init__(self, session: SendGridSession, sender_email: str, sender_name: str, unsubscribe_group_id: int):
        self.session = session
        self.sender = {"email": sender_email, "name": sender_name} if sender_name else {"email": sender_email}
        self.unsubscribe_group_id = unsubscribe_group_id

    def request_body(self, template_id: str, template_name: str, letters: list[Letter]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "from": self.sender,
            "template_id": template_id,
            "personalizations": [self._personalization(letter) for letter in letters],
            "categories": ["lifecycle", template_name],
        }
        if self.unsubscribe_group_id:
            body["asm"] = {"group_id": self.unsubscribe_group_id}
        return body

    @staticmethod
    def _personalization(letter: Letter) -> dict[str, Any]:
        recipient: dict[str, Any] = {"email": letter.email}
        if letter.first_name:
            recipient["name"] = letter.first_name
        data = {"first_name": letter.first_name, **letter.personalisation}
        personalization = {
            "to": [recipient],
            "dynamic_template_data": data,
            "custom_args": {"letter_key": letter.letter_key, "customer_id": str(letter.customer_id), "trigger": letter.trigger},
        }
        if letter.send_at is not None:
            personalization["send_at"] = letter.send_at
        return personalization

    def send(self, template_id: str, template_name: str, letters: list[Letter]) -> BatchOutcome:
        outcome = BatchOutcome()
        remaining = list(letters)
        for _ in range(MAX_REJECTION_ROUNDS):
            if not remaining:
                return outcome
            keys = [letter.letter_key for letter in remaining]
            try:
                reply = self.session.request("POST", "/v3/mail/send", self.request_body(template_id, template_name, remaining))
            except SendGridRejected as rejection:
                offending = _offending_indexes(rejection, len(remaining))
                if not offending:
                    outcome.failed.update(dict.fromkeys(keys, _short(rejection.text)))
                    return outcome
                messages = _messages_by_index(rejection)
                for index in offending:
                    outcome.failed[remaining[index].letter_key] = _short(messages.get(index, rejection.text))
                remaining = [letter for index, letter in enumerate(remaining) if index not in offending]
                continue
            except SendGridOutcomeUnknown as error:
                outcome.unknown, outcome.unknown_error = keys, _short(str(error))
                return outcome
            except (SendGridAuthError, SendGridUnavailable) as error:
                outcome.not_sent, outcome.not_sent_error, outcome.stop_error = keys, _short(str(error)), error
                return outcome
            message_id = None if self.session.dry_run else reply.headers.get("X-Message-Id")
            outcome.accepted.append((keys, message_id))
            return outcome
        keys = [letter.letter_key for letter in remaining]
        outcome.failed.update(dict.fromkeys(keys, "SendGrid kept rejecting the request this letter was in"))
        return outcome


def _offending_indexes(rejection: SendGridRejected, size: int) -> set[int]:
    if rejection.status != 400:
        return set()
    indexes = set()
    for error in rejection.errors:
        match = PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < size:
            indexes.add(int(match.group(1)))
    return indexes


def _messages_by_index(rejection: SendGridRejected) -> dict[int, str]:
    messages: dict[int, list[str]] = defaultdict(list)
    for error in rejection.errors:
        match = PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if match:
            messages[int(match.group(1))].append(f"{error.get('field')}: {error.get('message')}")
    return {index: "; ".join(parts) for index, parts in messages.items()}


def _short(text: str) -> str:
    return text if len(text) <= 1000 else text[:997] + "..."


def push_letters(
    connection,
    session: SendGridSession,
    pool: ThreadPoolExecutor,
    sender: LetterSender,
    template_ids_for_sending: Callable[[], dict[str, str]],
    run_id: str,
    max_in_flight: int,
    letters_per_request: int = MAX_PERSONALIZATIONS_PER_REQUEST,
    suppressions: dict[str, str] | None = None,
    webhook_retry_horizon_seconds: float = ledger.WEBHOOK_RETRY_HORIZON_SECONDS,
    policy: ContactPolicy | None = None,
) -> LetterPushResult:
    """Send every sendable letter once; the ledger is written only from this (the calling) thread.

    At most `max_in_flight` requests of at most `letters_per_request` letters are claimed and not yet
    settled at any moment: their product is how many letters one kill can leave unknown.

    Templates and suppressions are asked of SendGrid only when there is a letter to send, so a
    push with nothing new makes no request at all.
    """
    result = LetterPushResult()
    ledger.ensure_schema(connection)
    result.interrupted_claims_now_unknown = ledger.mark_interrupted_claims_unknown(connection)
    result.unknown_resolved = ledger.resolve_unknown_from_webhook(connection, webhook_retry_horizon_seconds)
    policy = policy or ContactPolicy()
    result.newly_planned = ledger.plan_new_letters(connection, policy.validity_days, policy.default_validity_days)
    result.plan_day = day = plan_day(connection)
    if day is not None:
        result.expired = ledger.expire_stale(connection, day)
    letters = holdout.hold_out_letters(connection, sendable_letters(connection))  # control groups: held_out, never sent
    if not letters:
        return result
    template_ids = template_ids_for_sending()

    sendgrid_suppressed = suppressions if suppressions is not None else pull_sendgrid_suppressions(
        session, sender.unsubscribe_group_id
    )
    recipients = current_recipients(connection)
    written = inboxes_written_today(connection, recipients, day)
    caps = CapCounter.from_ledger(connection, policy, day, {customer: address for customer, (address, _) in recipients.items()})
    zones, shop_zone = customer_zones(connection, policy), policy.shop_zone()
    now = dt.datetime.now(dt.timezone.utc)
    suppress: dict[str, str] = {}
    failures: dict[str, str] = {}
    defer: dict[str, str] = {}
    send_times: dict[str, tuple[dt.datetime, str]] = {}
    to_send: dict[str, list[Letter]] = defaultdict(list)
    for letter in letters:  # ranked: the first letters of a customer's day win its caps
        address, reason = recipients.get(letter.customer_id, (None, "unknown_customer"))
        reason = sendgrid_suppressed.get(address or "") or reason
        if reason:
            suppress[letter.letter_key] = reason
            continue
        letter.email = address  # the address current now, not the one the plan was made with
        zone, zone_name = zones.get(letter.customer_id, (shop_zone, shop_zone.key))
        arrives = send_at(policy, zone, now, letter.deliver_on)
        if (address, letter.template_name) in written:
            result.deferred_same_inbox_today += 1
            defer[letter.letter_key] = ONE_INBOX_REASON
        elif letter.template_name not in template_ids:
            failures[letter.letter_key] = f"no letter template named {letter.template_name!r} in the repository"
        elif letter.personalisation is None:
            failures[letter.letter_key] = "personalisation is not a JSON object"
        elif (refusal := caps.refusal(letter.customer_id, address)) is not None:
            defer[letter.letter_key] = refusal
        elif arrives is None:
            defer[letter.letter_key] = f"arrives on {letter.deliver_on}, more than 72 h ahead"
        else:
            written.add((address, letter.template_name))
            caps.count(letter.customer_id, address)
            letter.send_at = int(arrives.timestamp())
            send_times[letter.letter_key] = (arrives.replace(tzinfo=None), zone_name)
            to_send[letter.template_name].append(letter)
    ledger.mark_suppressed(connection, suppress)
    contents = {letter.letter_key: (letter.first_name, letter.planned_personalisation) for letter in letters if letter.letter_key in defer}
    ledger.mark_deferred(connection, defer, contents)
    result.deferred = len(defer)
    for reason in defer.values():
        result.deferred_by_reason[reason] = result.deferred_by_reason.get(reason, 0) + 1
    result.suppressed = len(suppress)
    for reason in suppress.values():
        result.suppressed_by_reason[reason] = result.suppressed_by_reason.get(reason, 0) + 1
    if failures:
        claimed = ledger.claim(connection, list(failures), run_id)
        ledger.mark_failed(connection, {key: failures[key] for key in claimed})
        result.failed += len(claimed)

    batches = [
        (template_name, group[start : start + letters_per_request])
        for template_name, group in sorted(to_send.items())
        for start in range(0, len(group), letters_per_request)
    ]
    result.sendable = sum(len(batch) for _, batch in batches)
    in_flight: dict = {}
    position = 0
    while position < len(batches) or in_flight:
        while result.stop_error is None and position < len(batches) and len(in_flight) < max_in_flight:
            template_name, batch = batches[position]
            position += 1
            request_id = uuid.uuid4().hex
            claimed = set(ledger.claim(
                connection, [letter.letter_key for letter in batch], run_id, request_id, send_day=day, send_times=send_times
            ))
            batch = [letter for letter in batch if letter.letter_key in claimed]
            if batch:
                future = pool.submit(sender.send, template_ids[template_name], template_name, batch)
                in_flight[future] = template_name
        if not in_flight:
            break
        done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            template_name = in_flight.pop(future)
            _record(connection, future.result(), template_name, session.dry_run, result)
    result.mail_send_requests = session.stats.by_endpoint.get("POST /v3/mail/send", 0)
    return result


def _record(connection, outcome: BatchOutcome, template_name: str, dry_run: bool, result: LetterPushResult) -> None:
    for keys, message_id in outcome.accepted:
        if dry_run:
            ledger.mark_dry_run(connection, keys)
            result.dry_run += len(keys)
        else:
            ledger.mark_accepted(connection, keys, message_id)
            result.accepted += len(keys)
            result.accepted_by_template[template_name] = result.accepted_by_template.get(template_name, 0) + len(keys)
    if outcome.failed:
        ledger.mark_failed(connection, outcome.failed)
        result.failed += len(outcome.failed)
    if outcome.unknown:
        ledger.mark_unknown(connection, outcome.unknown, outcome.unknown_error or "no answer from SendGrid")
        result.unknown += len(outcome.unknown)
    if outcome.not_sent:
        ledger.return_to_planned(connection, outcome.not_sent, outcome.not_sent_error or "not sent")
        result.returned_to_planned += len(outcome.not_sent)
    if outcome.stop_error is not None and result.stop_error is None:
        result.stop_error = outcome.stop_error
