"""Per-segment audiences mirrored to SendGrid contact lists, as a diff against the last sync.

Marketing contacts are upserted asynchronously by SendGrid, so a change only counts as synced
once its import job is polled to `completed`. What was synced is remembered in DuckDB
(`activation.audience_members`, `activation.contact_state`); the next run sends only the
adds, removes and changed contacts, and a run with no change sends no write request.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lifecycle_assets.activation.client import SendGridRejected, SendGridSession, pages
from lifecycle_assets.activation.letters import current_recipients

MAX_CONTACTS_PER_UPSERT = 30_000
# SendGrid's limit on the body as sent. The official client serialises with json.dumps' default
# separators (", " and ": "), so sizes are counted the same way; the margin covers the envelope.
MAX_UPSERT_BYTES = 6_000_000
UPSERT_BYTE_BUDGET = MAX_UPSERT_BYTES - 10_000
EMAILS_PER_SEARCH = 100
CONTACT_FIELD = re.compile(r"^contacts(?:\[(\d+)\]|\.(\d+))")
CONTACT_IDS_PER_REMOVE = 100
# Columns of SendGrid's import error file that explain a failure; the rest repeats the contact's data.
REASON_COLUMNS = ("error", "message", "reason")

# Custom field name in SendGrid -> (column of marts.audiences, SendGrid field type).
CUSTOM_FIELDS: dict[str, tuple[str, str]] = {
    "customer_id": ("customer_id", "Text"),
    "lifecycle_stage": ("stage", "Text"),
    "recency_segment": ("recency_segment", "Text"),
    "rfm_segment": ("rfm_segment", "Text"),
    "expected_next_purchase_on": ("expected_next_purchase_on", "Date"),
    "last_purchase_on": ("last_purchase_on", "Date"),
    "orders_count": ("orders_count", "Number"),
}


@dataclass
class AudienceSyncResult:
    lists_created: list[str] = field(default_factory=list)
    fields_created: list[str] = field(default_factory=list)
    contacts_in_audiences: int = 0
    contacts_upserted: int = 0
    list_adds: int = 0
    list_removes: int = 0
    upsert_requests: int = 0
    import_jobs: int = 0
    import_jobs_with_errors: int = 0
    rows_with_errors: int = 0
    list_sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Contact:
    email: str
    customer_id: str
    payload: dict
    fields_hash: str


@dataclass
class _UpsertChunk:
    purpose: str  # "add:<list_name>" or "update"
    list_name: str | None
    contacts: list[_Contact]


def _sendgrid_value(value: Any, field_type: str) -> Any:
    if value is None:
        return None
    if field_type == "Date":
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
        return day.strftime("%m/%d/%Y")
    if field_type == "Number":
        return float(value) if isinstance(value, float) else int(value)
    return str(value)


def read_audiences(connection) -> tuple[dict[str, dict], dict[str, set[str]]]:
    """(contacts by email, members by list) from marts.audiences; emails compared lower-cased, as SendGrid does."""
    rows = connection.execute(
        """
        select lower(trim(email)) as email, customer_id, first_name, list_name,
               stage, recency_segment, rfm_segment, expected_next_purchase_on, last_purchase_on, orders_count
        from marts.audiences
        order by email, list_name
        """
    ).fetchall()
    contacts: dict[str, dict] = {}
    members: dict[str, set[str]] = defaultdict(set)
    withdrawn = _withdrawn_since_build(connection)
    for email, customer_id, first_name, list_name, *attributes in rows:
        if customer_id in withdrawn or (email or "").strip().lower() in withdrawn:
            continue
        columns = ["stage", "recency_segment", "rfm_segment", "expected_next_purchase_on", "last_purchase_on", "orders_count"]
        contacts[email] = {"customer_id": customer_id, "first_name": first_name, **dict(zip(columns, attributes))}
        members[list_name].add(email)
    return contacts, dict(members)


def _withdrawn_since_build(connection) -> set[str]:
    """Customers (and their addresses) the recipient rule excludes, as of the raw tables now.

    marts.audiences is rebuilt daily, but consent changes and webhook events are ingested hourly
    (and within minutes): checking the raw tables at sync time takes such a customer off every
    list, the newsletter included, at the next push rather than the next day.
    """
    has_customers = connection.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = 'customers'"
    ).fetchone()[0]
    if not has_customers:
        return set()
    excluded = [(customer_id, address) for customer_id, (address, reason) in current_recipients(connection).items() if reason]
    return {customer_id for customer_id, _ in excluded} | {address for _, address in excluded if address}


def _paged_lists(session: SendGridSession) -> dict[str, str]:
    return {item["name"]: item["id"] for page in pages(session, "/v3/marketing/lists", {"page_size": 1000}) for item in page}


def ensure_lists(session: SendGridSession, names: set[str], result: AudienceSyncResult) -> dict[str, str]:
    lists = _paged_lists(session)
    for name in sorted(names - set(lists)):
        lists[name] = session.request("POST", "/v3/marketing/lists", {"name": name}).body["id"]
        result.lists_created.append(name)
    return lists


def ensure_custom_fields(session: SendGridSession, result: AudienceSyncResult) -> dict[str, str]:
    """Field definition ids by name; contacts' custom_fields are keyed by these ids."""
    body = session.request("GET", "/v3/marketing/field_definitions").body or {}
    ids = {item["name"]: item["id"] for item in body.get("custom_fields", [])}
    for name, (_, field_type) in CUSTOM_FIELDS.items():
        if name not in ids:
            ids[name] = session.request(
                "POST", "/v3/marketing/field_definitions", {"name": name, "field_type": field_type}
            ).body["id"]
            result.fields_created.append(name)
    return ids


def _contact(email: str, attributes: dict, field_ids: dict[str, str]) -> _Contact:
    payload: dict[str, Any] = {"email": email}
    if attributes.get("first_name"):
        payload["first_name"] = str(attributes["first_name"])[:50]
    custom = {}
    for name, (column, field_type) in CUSTOM_FIELDS.items():
        value = _sendgrid_value(attributes.get(column), field_type)
        if value is not None:
            custom[field_ids[name]] = value
    if custom:
        payload["custom_fields"] = custom
    # The hash is over names, not SendGrid's field ids, so it survives a re-created field.
    named = {name: _sendgrid_value(attributes.get(column), kind) for name, (column, kind) in CUSTOM_FIELDS.items()}
    digest = hashlib.sha256(json.dumps([payload.get("first_name"), named], sort_keys=True, default=str).encode())
    return _Contact(email, str(attributes.get("customer_id")), payload, digest.hexdigest()[:16])


def _chunks(purpose: str, list_name: str | None, contacts: list[_Contact]) -> list[_UpsertChunk]:
    """Split within SendGrid's limits: 30,000 contacts or 6 MB per request, whichever comes first."""
    chunks: list[_UpsertChunk] = []
    current: list[_Contact] = []
    size = 0
    for contact in contacts:
        contact_bytes = len(json.dumps(contact.payload).encode("utf-8")) + len(", ")
        if current and (len(current) >= MAX_CONTACTS_PER_UPSERT or size + contact_bytes > UPSERT_BYTE_BUDGET):
            chunks.append(_UpsertChunk(purpose, list_name, current))
            current, size = [], 0
        current.append(contact)
        size += contact_bytes
    if current:
        chunks.append(_UpsertChunk(purpose, list_name, current))
    return chunks


def _previous_state(connection) -> tuple[dict[str, set[str]], dict[str, str]]:
    members: dict[str, set[str]] = defaultdict(set)
    for list_name, email in connection.execute("select list_name, email from activation.audience_members").fetchall():
        members[list_name].add(email)
    hashes = dict(connection.execute("select email, fields_hash from activation.contact_state").fetchall())
    return dict(members), hashes


def _poll_import(
    session: SendGridSession,
    job_id: str,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict:
    """The import job's final answer, or status pending when it is still running at the timeout."""
    deadline = monotonic() + timeout_seconds
    wait = 0.05
    while True:
        body = session.request("GET", f"/v3/marketing/contacts/imports/{job_id}").body or {}
        status = body.get("status")
        if status and status != "pending":
            return body
        if monotonic() > deadline:
            return {"status": "pending", "results": {}}
        sleep(wait)
        wait = min(wait * 2, 2.0)


def _row_errors(session: SendGridSession, errors_url: str | None) -> tuple[str | None, dict[str, str]]:
    """The import's error file (CSV with an email column, as SendGrid provides): failed rows' email -> reason.

    Only the file's error/message/reason columns are kept: the file repeats each row's contact data,
    which stays out of what we store.
    """
    if not errors_url or session.dry_run:
        return None, {}
    try:
        scheme = urllib.parse.urlsplit(errors_url).scheme if isinstance(errors_url, str) else ""
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        # Recorded, not raised: the import's other rows applied, and nothing but http(s) is fetched.
        return "SendGrid's errors_url is not an http(s) URL; the error file was not read", {}
    try:
        with urllib.request.urlopen(errors_url, timeout=session.timeout_seconds) as response:
            text = response.read().decode("utf-8", "replace")
    except (OSError, ValueError) as error:
        return f"could not download the error file: {type(error).__name__}", {}
    failed: dict[str, str] = {}
    try:
        for row in csv.DictReader(io.StringIO(text)):
            lowered = {(key or "").strip().lower(): (value or "").strip() for key, value in row.items() if key}
            if lowered.get("email"):
                reasons = [value for key, value in lowered.items() if value and any(word in key for word in REASON_COLUMNS)]
                failed[lowered["email"].lower()] = "; ".join(reasons) or "listed in SendGrid's error file"
    except csv.Error:
        return "SendGrid's error file is not readable CSV", {}
    return None, failed


def sync_audiences(
    connection,
    session: SendGridSession,
    pool: ThreadPoolExecutor,
    run_id: str,
    import_poll_timeout_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> AudienceSyncResult:
    """`sleep` and `monotonic` pace the import-job polls; a test passes a clock it advances itself."""
    result = AudienceSyncResult()
    contacts, desired = read_audiences(connection)
    result.contacts_in_audiences = len(contacts)
    result.list_sizes = {name: len(emails) for name, emails in sorted(desired.items())}
    previous, previous_hashes = _previous_state(connection)

    adds = {name: emails - previous.get(name, set()) for name, emails in desired.items()}
    removes = {name: emails - desired.get(name, set()) for name, emails in previous.items()}
    adds = {name: emails for name, emails in adds.items() if emails}
    removes = {name: emails for name, emails in removes.items() if emails}
    if not adds and not removes and not _any_changed(contacts, previous_hashes):
        return result

    field_ids = ensure_custom_fields(session, result)
    list_ids = ensure_lists(session, set(adds), result)
    built = {email: _contact(email, attributes, field_ids) for email, attributes in contacts.items()}
    changed = {email for email, contact in built.items() if previous_hashes.get(email) != contact.fields_hash}

    chunks: list[_UpsertChunk] = []
    covered: set[str] = set()
    for list_name in sorted(adds):
        emails = sorted(adds[list_name])
        covered.update(emails)
        chunks += _chunks(f"add:{list_name}", list_name, [built[email] for email in emails])
    chunks += _chunks("update", None, [built[email] for email in sorted(changed - covered)])

    def upsert(chunk: _UpsertChunk) -> tuple[_UpsertChunk, dict]:
        """A 400 names the offending rows (contacts[N]); they are recorded and the rest is sent again."""
        rejected: dict[str, str] = {}
        sendable = list(chunk.contacts)
        while sendable:
            body: dict[str, Any] = {"contacts": [contact.payload for contact in sendable]}
            if chunk.list_name is not None:
                body["list_ids"] = [list_ids[chunk.list_name]]
            try:
                job_id = session.request("PUT", "/v3/marketing/contacts", body).body["job_id"]
            except SendGridRejected as rejection:
                offending = {}
                for error in rejection.errors:
                    match = CONTACT_FIELD.search(str(error.get("field") or ""))
                    index = int(match.group(1) or match.group(2)) if match else None
                    if index is not None and index < len(sendable):
                        offending[index] = f"{error.get('field')}: {error.get('message')}"
                if not offending:
                    raise
                for index, message in offending.items():
                    rejected[sendable[index].email] = message
                sendable = [contact for index, contact in enumerate(sendable) if index not in offending]
                continue
            job = {"job_id": job_id, **_poll_import(session, job_id, import_poll_timeout_seconds, sleep, monotonic)}
            return chunk, {**job, "rejected": rejected}
        return chunk, {"job_id": None, "status": "rejected", "results": {}, "rejected": rejected}

    remove_jobs = []
    for list_name in sorted(removes):
        if list_name not in list_ids:
            remove_jobs.append((list_name, sorted(removes[list_name]), []))  # the list itself is gone
            continue
        remove_jobs.append((list_name, sorted(removes[list_name]), None))

    def remove(job: tuple[str, list[str], list | None]) -> tuple[str, list[str], list[dict]]:
        list_name, emails, preset = job
        if preset is not None:
            return list_name, emails, []
        contact_ids = _contact_ids(session, emails)
        jobs = []
        ids = sorted(contact_ids.values())
        for start in range(0, len(ids), CONTACT_IDS_PER_REMOVE):
            query = {"contact_ids": ",".join(ids[start : start + CONTACT_IDS_PER_REMOVE])}
            reply = session.request("DELETE", f"/v3/marketing/lists/{list_ids[list_name]}/contacts", query=query)
            job_id = (reply.body or {}).get("job_id")
            jobs.append({"job_id": job_id, "status": "completed"} if not job_id else {"job_id": job_id, **_poll_import(session, job_id, import_poll_timeout_seconds, sleep, monotonic)})
        return list_name, emails, jobs

    upsert_futures = [pool.submit(upsert, chunk) for chunk in chunks]
    remove_futures = [pool.submit(remove, job) for job in remove_jobs]
    result.upsert_requests = len(chunks)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    for future in upsert_futures:
        chunk, job = future.result()
        result.import_jobs += 1
        status = job.get("status")
        failed_emails: set[str] = set()
        errors_text = None
        results = job.get("results") or {}
        errored = int(results.get("errored_count") or 0)
        rejected = job.get("rejected") or {}
        if rejected:
            # Emails stay out of logs; the row's position and SendGrid's message are what an operator needs.
            errors_text = json.dumps(sorted(rejected.values()))
            errored += len(rejected)
            result.import_jobs_with_errors += 1
            result.rows_with_errors += len(rejected)
            failed_emails = set(rejected)
        if status not in ("completed", "rejected"):
            result.import_jobs_with_errors += 1
            file_problem, row_failures = _row_errors(session, results.get("errors_url"))
            # As for rejected rows: the customer id and SendGrid's reason, never the email.
            customer_of = {contact.email: contact.customer_id for contact in chunk.contacts}
            row_reasons = sorted(
                f"customer {customer_of[email]}: {reason}" for email, reason in row_failures.items() if email in customer_of
            )
            parts = (errors_text, file_problem, json.dumps(row_reasons) if row_reasons else None)
            errors_text = "\n".join(part for part in parts if part) or None
            result.rows_with_errors += errored or len(chunk.contacts)
            failed_in_chunk = set(row_failures) & set(customer_of)
            if status in ("failed", "pending") or not failed_in_chunk:
                # Without a per-row answer nothing of the chunk counts as synced; the next run retries it.
                failed_in_chunk = set(customer_of)
            failed_emails |= failed_in_chunk
        connection.execute(
            "insert into activation.contact_import_jobs values (?, ?, ?, ?, ?, ?, ?, ?)",
            [job["job_id"], run_id, chunk.purpose, len(chunk.contacts), status, errored, errors_text, now],
        )
        if session.dry_run:
            continue
        synced = [contact for contact in chunk.contacts if contact.email not in failed_emails]
        _record_synced(connection, chunk.list_name, synced, now)
        result.contacts_upserted += len(synced)
        if chunk.list_name is not None:
            result.list_adds += len(synced)

    for future in remove_futures:
        list_name, emails, jobs = future.result()
        for job in jobs:
            result.import_jobs += 1
            connection.execute(
                "insert into activation.contact_import_jobs values (?, ?, ?, ?, ?, ?, ?, ?)",
                [job.get("job_id"), run_id, f"remove:{list_name}", None, job.get("status"), None, None, now],
            )
        if session.dry_run or any(job.get("status") != "completed" for job in jobs):
            continue
        connection.execute(
            "delete from activation.audience_members where list_name = ? and email in (select unnest(?))",
            [list_name, emails],
        )
        result.list_removes += len(emails)
    return result


def _any_changed(contacts: dict[str, dict], previous_hashes: dict[str, str]) -> bool:
    """Cheap pre-check before any request: field ids are not needed to know whether a contact changed."""
    placeholder_ids = {name: name for name in CUSTOM_FIELDS}
    return any(
        previous_hashes.get(email) != _contact(email, attributes, placeholder_ids).fields_hash
        for email, attributes in contacts.items()
    )


def _contact_ids(session: SendGridSession, emails: list[str]) -> dict[str, str]:
    """SendGrid contact ids for emails (removing from a list needs ids); unknown emails are skipped."""
    found: dict[str, str] = {}
    for start in range(0, len(emails), EMAILS_PER_SEARCH):
        batch = emails[start : start + EMAILS_PER_SEARCH]
        try:
            reply = session.request(
                "POST", "/v3/marketing/contacts/search/emails", {"emails": batch}, idempotent=True
            )
        except SendGridRejected as error:
            if error.status == 404:  # none of them exists any more: nothing to remove
                continue
            raise
        for email, entry in ((reply.body or {}).get("result") or {}).items():
            contact = (entry or {}).get("contact") or {}
            if contact.get("id"):
                found[email.lower()] = contact["id"]
    return found


def _record_synced(connection, list_name: str | None, contacts: list[_Contact], now: dt.datetime) -> None:
    if not contacts:
        return
    import pyarrow

    synced_rows = pyarrow.table(
        {
            "email": [c.email for c in contacts],
            "customer_id": [c.customer_id for c in contacts],
            "fields_hash": [c.fields_hash for c in contacts],
        }
    )
    connection.register("_synced", synced_rows)
    connection.execute(
        """insert or replace into activation.contact_state
           select email, customer_id, fields_hash, ? from _synced""",
        [now],
    )
    if list_name is not None:
        connection.execute(
            """insert or replace into activation.audience_members
               select ?, email, customer_id, ? from _synced""",
            [list_name, now],
        )
    connection.unregister("_synced")
