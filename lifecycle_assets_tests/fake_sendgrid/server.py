"""A stateful stand-in for the parts of SendGrid the activation push uses, over real HTTP.

The official `sendgrid` client talks to it unchanged (only `host` points here). Every request
is checked against SendGrid's published OpenAPI documents plus the limits their descriptions
state, so a request the real SendGrid would reject is rejected here too. Tests read the
resulting state (lists, contacts, templates, sent letters) and inject the failures a real
network and a rate-limited API produce: 429s, 5xx, latency and connections cut before or
after SendGrid applied the request, and contacts that fail inside an import job.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import functools
import gzip
import io
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

from .openapi import SpecCatalog, ValidationProblem, is_valid_email

# Vendored with their MIT licence (see sendgrid_openapi/README.md): the tests need nothing outside the repo.
DEFAULT_SPEC_DIR = Path(__file__).resolve().parent / "sendgrid_openapi"

FAULT_KINDS = ("rate_limit", "server_error", "latency", "drop_after_body", "drop_before_effect")
SUPPRESSION_KINDS = ("unsubscribes", "bounces", "spam_reports", "invalid_emails", "blocks", "group")

# Limits SendGrid states in prose, which no schema keyword carries.
MAIL_MAX_RECIPIENTS = 1000
MAIL_MAX_BYTES = 30 * 1024 * 1024  # "The total size of your email ... must be less than 30MB"
MAIL_MAX_SCHEDULE_AHEAD_SECONDS = 72 * 3600
CUSTOM_ARGS_MAX_BYTES = 10_000
# "up to 30,000 contacts, or 6MB of data, whichever is lower"; 6,000,000 is the strict reading.
CONTACTS_MAX_BYTES = 6_000_000
SEARCH_MAX_EMAILS = 100
MAX_CUSTOM_FIELDS = 500
CUSTOM_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DYNAMIC_TEMPLATE_ID = re.compile(r"^d-[0-9a-f]{32}$")
RESERVED_FIELDS = (
    ("first_name", "Text", False),
    ("last_name", "Text", False),
    ("email", "Text", False),
    ("alternate_emails", "Text", False),
    ("address_line_1", "Text", False),
    ("address_line_2", "Text", False),
    ("city", "Text", False),
    ("state_province_region", "Text", False),
    ("postal_code", "Text", False),
    ("country", "Text", False),
    ("phone_number", "Text", False),
    ("whatsapp", "Text", False),
    ("line", "Text", False),
    ("facebook", "Text", False),
    ("unique_name", "Text", False),
    ("external_id", "Text", False),
    ("anonymous_id", "Text", False),
    ("phone_number_id", "Text", False),
    ("created_at", "Date", True),
    ("updated_at", "Date", True),
    ("contact_id", "Text", True),
)
CONTACT_TEXT_FIELDS = (
    "first_name", "last_name", "unique_name", "address_line_1", "address_line_2", "city",
    "state_province_region", "country", "postal_code", "phone_number", "whatsapp", "line", "facebook",
    "phone_number_id", "external_id", "anonymous_id",
)
CONTACT_IDENTIFIERS = ("email", "phone_number_id", "external_id", "anonymous_id")
# Where a job's error file is served: the fake's own address, outside the API, so no key and no spec apply
# (SendGrid hands out a pre-signed download URL the same way).
ERRORS_FILE_PATH = re.compile(r"^/_fake/imports/([^/]+)/errors\.csv$")
FIELD_TYPE_SUFFIX = {"Text": "T", "Number": "N", "Date": "D"}


@dataclass(frozen=True)
class Fault:
    """One failure to inject into the next `times` requests whose path starts with `path_prefix`.

    kind: "rate_limit" (429 + X-RateLimit-* headers), "server_error" (`status`, default 500),
    "latency" (sleep `seconds`, then handle normally), "drop_after_body" (apply the request,
    then close the socket without answering) or "drop_before_effect" (close without applying).
    """

    kind: str
    path_prefix: str = "/"
    times: int = 1
    status: int = 500
    seconds: float = 0.0
    reset_in_seconds: float = 1.0
    method: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.times < 1:
            raise ValueError("a fault must apply at least once (times >= 1)")

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and (self.method is None or self.method.upper() == method)


class RequestRecord(NamedTuple):
    """What arrived, in order. `status` is None when a fault closed the connection unanswered."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None
    body_bytes_len: int
    fault: str | None = None


class ApiError(Exception):
    """A response SendGrid would give instead of doing the work."""

    def __init__(self, status: int, message: str, field: str | None = None, extra: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.errors = [{"field": field, "message": message}, *(extra or [])]


@dataclass
class ApiRequest:
    method: str
    path: str
    path_template: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    body_bytes: int
    request_index: int


@dataclass
class Response:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_template_time() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        kind, value = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        if kind != "offset" or int(value) < 0:
            raise ValueError(token)
        return int(value)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid page_token", "page_token") from error


def _query_value(request: ApiRequest, name: str, default: str | None = None) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else default


class FakeSendGrid:
    """SendGrid on 127.0.0.1 for tests: documented validation, observable state, injectable faults."""

    def __init__(
        self,
        api_key: str = "SG.test-key",
        spec_dir: str | Path | None = None,
        *,
        forbidden: bool = False,
        import_pending_polls: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.api_key = api_key
        self.spec_dir = Path(spec_dir) if spec_dir is not None else DEFAULT_SPEC_DIR
        self.forbidden = forbidden
        self.import_pending_polls = import_pending_polls
        self._host = host
        self._port = port
        self.catalog = _load_catalog(self.spec_dir.resolve())
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._faults: list[list[Any]] = []  # [fault, remaining]
        self._requests: list[RequestRecord] = []
        self._lists: dict[str, dict[str, Any]] = {}
        self._contacts: dict[str, dict[str, Any]] = {}  # key: lower-cased email or "<identifier>:<value>"
        self._fields: dict[str, dict[str, Any]] = {}  # field id -> definition
        self._field_counter = itertools.count(1)
        self._templates: dict[str, dict[str, Any]] = {}
        self._suppressions: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in SUPPRESSION_KINDS if kind != "group"}
        self._group_suppressions: dict[int, dict[str, int]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._import_rejections: dict[str, str] = {}  # lower-cased email -> error message
        self._sent: list[dict[str, Any]] = []
        self._routes: dict[tuple[str, str], Callable[[ApiRequest], Response]] = {
            ("POST", "/v3/mail/send"): self._mail_send,
            ("PUT", "/v3/marketing/contacts"): self._upsert_contacts,
            ("GET", "/v3/marketing/contacts/imports/{id}"): self._import_status,
            ("POST", "/v3/marketing/contacts/search/emails"): self._search_contacts_by_email,
            ("GET", "/v3/marketing/contacts/count"): self._contact_count,
            ("GET", "/v3/marketing/lists"): self._list_lists,
            ("POST", "/v3/marketing/lists"): self._create_list,
            ("GET", "/v3/marketing/lists/{id}"): self._get_list,
            ("DELETE", "/v3/marketing/lists/{id}/contacts"): self._remove_list_contacts,
            ("GET", "/v3/marketing/lists/{id}/contacts/count"): self._list_contact_count,
            ("GET", "/v3/marketing/field_definitions"): self._list_fields,
            ("POST", "/v3/marketing/field_definitions"): self._create_field,
            ("GET", "/v3/suppression/unsubscribes"): self._suppression_lister("unsubscribes"),
            ("GET", "/v3/suppression/bounces"): self._suppression_lister("bounces"),
            ("GET", "/v3/suppression/spam_reports"): self._suppression_lister("spam_reports"),
            ("GET", "/v3/suppression/invalid_emails"): self._suppression_lister("invalid_emails"),
            ("GET", "/v3/suppression/blocks"): self._suppression_lister("blocks"),
            ("GET", "/v3/asm/suppressions"): self._all_group_suppressions,
            ("GET", "/v3/asm/groups/{group_id}/suppressions"): self._group_suppression_list,
            ("GET", "/v3/templates"): self._list_templates,
            ("POST", "/v3/templates"): self._create_template,
            ("GET", "/v3/templates/{template_id}"): self._get_template,
            ("POST", "/v3/templates/{template_id}/versions"): self._create_version,
            ("GET", "/v3/templates/{template_id}/versions/{version_id}"): self._get_version,
            ("PATCH", "/v3/templates/{template_id}/versions/{version_id}"): self._update_version,
            ("POST", "/v3/templates/{template_id}/versions/{version_id}/activate"): self._activate_version,
        }

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> "FakeSendGrid":
        if self._server is not None:
            return self
        server = _SendGridHTTPServer((self._host, self._port), _make_handler(self))
        self._server = server
        # A short poll interval keeps stop() fast: each test starts and stops its own fake.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-sendgrid", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> "FakeSendGrid":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSendGrid is not started; use `with FakeSendGrid() as fake:` or .start()")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- state a test inspects ----------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def request_count(self, method: str | None = None, path_prefix: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for record in self._requests
                if (method is None or record.method == method.upper())
                and (path_prefix is None or record.path.startswith(path_prefix))
            )

    def lists(self) -> dict[str, str]:
        with self._lock:
            return {entry["name"]: list_id for list_id, entry in self._lists.items()}

    def list_members(self, list_name: str) -> set[str]:
        with self._lock:
            for entry in self._lists.values():
                if entry["name"] == list_name:
                    return {
                        contact["email"]
                        for contact in self._contacts.values()
                        if entry["id"] in contact["list_ids"] and contact.get("email")
                    }
            raise KeyError(f"no list named {list_name!r}")

    def contacts(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {key: self._contact_view(contact) for key, contact in self._contacts.items()}

    def field_definitions(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {d["name"]: {"id": d["id"], "field_type": d["field_type"]} for d in self._fields.values()}

    def templates(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                template["name"]: {
                    "id": template["id"],
                    "generation": template["generation"],
                    "versions": [
                        {
                            "id": version["id"],
                            "name": version["name"],
                            "subject": version["subject"],
                            "html_content": version.get("html_content", ""),
                            "plain_content": version.get("plain_content", ""),
                            "active": version["active"] == 1,
                        }
                        for version in template["versions"]
                    ],
                }
                for template in self._templates.values()
            }

    def sent_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(message) for message in self._sent]

    def import_jobs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {job_id: json.loads(json.dumps(job)) for job_id, job in self._jobs.items()}

    # --- seeding --------------------------------------------------------------------------------

    def add_suppression(
        self,
        kind: str,
        email: str,
        group_id: int | None = None,
        *,
        created: int | None = None,
        reason: str = "seeded by test",
    ) -> None:
        """Record an address SendGrid already refuses to deliver to (globally or for one group)."""
        if kind not in SUPPRESSION_KINDS:
            raise ValueError(f"unknown suppression kind {kind!r}; expected one of {SUPPRESSION_KINDS}")
        created = int(time.time()) if created is None else created
        address = email.lower()
        with self._lock:
            if kind == "group":
                if group_id is None:
                    raise ValueError("a group suppression needs group_id")
                self._group_suppressions.setdefault(int(group_id), {})[address] = created
                return
            entry: dict[str, Any] = {"created": created, "email": address}
            if kind in ("bounces", "blocks"):
                entry.update(reason=reason, status="5.1.1" if kind == "bounces" else "4.0.0")
            if kind == "invalid_emails":
                entry["reason"] = reason
            if kind == "spam_reports":
                entry["ip"] = "10.0.0.1"
            self._suppressions[kind][address] = entry

    def reject_contacts_on_import(self, emails: Iterable[str], message: str = "invalid email") -> None:
        """Contacts with these emails fail inside their import job, as SendGrid reports row errors.

        The upsert request is still accepted (202); the other contacts apply, and the job's status is
        `errored` with `errored_count` and an `errors_url` whose CSV (`email,error`) names each failed row.
        """
        with self._lock:
            for email in emails:
                self._import_rejections[email.lower()] = message

    def clear_import_rejections(self) -> None:
        with self._lock:
            self._import_rejections.clear()

    def import_errors_csv(self, job_id: str) -> str | None:
        """The error file of an import job (header `email,error`), or None for an unknown job."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["email", "error"])
            writer.writerows(job.get("error_rows", []))
            return buffer.getvalue()

    # --- faults ---------------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append([fault, fault.times])

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for slot in self._faults:
                fault, remaining = slot
                if remaining > 0 and fault.matches(method, path):
                    slot[1] -= 1
                    if slot[1] == 0:
                        self._faults.remove(slot)
                    return fault
        return None

    # --- request pipeline (called from the HTTP handler threads) --------------------------------

    def _arrive(self, method: str, path: str, query: dict[str, list[str]], body_len: int) -> int:
        with self._lock:
            self._requests.append(RequestRecord(method, path, query, None, body_len))
            return len(self._requests) - 1

    def _finish(self, index: int, status: int | None, fault: str | None = None) -> None:
        with self._lock:
            self._requests[index] = self._requests[index]._replace(status=status, fault=fault)

    def _authorize(self, headers: dict[str, str]) -> Response | None:
        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        if not authorization:
            return _error_response(401, "authorization required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.api_key:
            return _error_response(401, "The provided authorization grant is invalid, expired, or revoked")
        if self.forbidden:
            return _error_response(403, "access forbidden")
        return None

    def _prepare(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw_body: bytes, index: int
    ) -> tuple[Response | None, Callable[[], Response] | None]:
        """Route and validate; returns either an immediate response or the effect to apply."""
        route = self.catalog.match(method, path)
        if route.path_template is None:
            return _error_response(404, "resource not found"), None
        if route.operation is None:
            return _error_response(405, f"method {method} not allowed; documented: {', '.join(route.allowed_methods)}"), None
        handler = self._routes.get((method, route.path_template))
        if handler is None:
            return _error_response(
                501, f"fake SendGrid does not implement {method} {route.path_template} (documented as {route.operation.operation_id})"
            ), None
        operation = route.operation
        problems = operation.validate_parameters(route.path_params, query, headers)
        if problems:
            return _problems_response(problems), None
        if method == "POST" and path == "/v3/mail/send" and len(raw_body) > MAIL_MAX_BYTES:
            return _error_response(413, "content too large"), None
        if method == "PUT" and path == "/v3/marketing/contacts" and len(raw_body) > CONTACTS_MAX_BYTES:
            return _error_response(400, f"request body is {len(raw_body)} bytes; at most {CONTACTS_MAX_BYTES} (6MB) allowed"), None
        body: Any = None
        if operation.body_validator is not None:
            if not raw_body:
                return _error_response(400, "request body is required"), None
            try:
                body = json.loads(raw_body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return _error_response(400, "request body is not valid JSON"), None
            problems = operation.validate_body(body)
            if problems:
                return _problems_response(problems), None
        request = ApiRequest(method, path, route.path_template, route.path_params, query, headers, body, len(raw_body), index)

        def effect() -> Response:
            try:
                with self._lock:
                    return handler(request)
            except ApiError as error:
                return Response(error.status, {"errors": error.errors})

        return None, effect

    # --- mail send --------------------------------------------------------------------------------

    def _mail_send(self, request: ApiRequest) -> Response:
        body = request.body
        personalizations = body["personalizations"]
        if not personalizations:
            raise ApiError(400, "The personalizations field is required and must have at least one personalization.", "personalizations")
        recipients = 0
        for position, personalization in enumerate(personalizations):
            if not personalization["to"]:
                raise ApiError(
                    400,
                    "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                    f"personalizations.{position}.to",
                )
            seen: set[str] = set()
            for kind in ("to", "cc", "bcc"):
                for address in personalization.get(kind, []):
                    lowered = address["email"].lower()
                    if lowered in seen:
                        raise ApiError(
                            400,
                            "Each email address in the personalization block should be unique between to, cc, and bcc.",
                            f"personalizations.{position}.{kind}",
                        )
                    seen.add(lowered)
            recipients += len(seen)
            custom_args = personalization.get("custom_args")
            if custom_args is not None and len(json.dumps(custom_args).encode()) > CUSTOM_ARGS_MAX_BYTES:
                raise ApiError(400, "custom_args may not exceed 10,000 bytes", f"personalizations.{position}.custom_args")
            self._check_send_at(personalization.get("send_at"), f"personalizations.{position}.send_at")
        if recipients > MAIL_MAX_RECIPIENTS:
            raise ApiError(400, f"The total number of recipients must be no more than {MAIL_MAX_RECIPIENTS}.", "personalizations")
        if "reply_to" in body and "reply_to_list" in body:
            raise ApiError(400, "You can use either the reply_to property or reply_to_list property but not both.", "reply_to_list")
        self._check_send_at(body.get("send_at"), "send_at")
        message_custom_args = body.get("custom_args") or {}
        if len(json.dumps(message_custom_args).encode()) > CUSTOM_ARGS_MAX_BYTES:
            raise ApiError(400, "custom_args may not exceed 10,000 bytes", "custom_args")

        template_id = body.get("template_id")
        template = None
        if template_id is not None:
            template = self._template_for_send(template_id)
        else:
            content = body.get("content") or []
            if not content:
                raise ApiError(
                    400,
                    "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block.",
                    "content",
                )
            types = [block["type"] for block in content]
            if "text/plain" in types and types[0] != "text/plain":
                raise ApiError(400, "If present, text/plain content must be first, followed by text/html, then any other content.", "content")
            if "subject" not in body and not all("subject" in p for p in personalizations):
                raise ApiError(
                    400,
                    "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
                    "subject",
                )

        message_id = uuid.uuid4().hex[:22]
        group_id = (body.get("asm") or {}).get("group_id")
        for position, personalization in enumerate(personalizations):
            sender = personalization.get("from") or body["from"]
            merged_args = {**message_custom_args, **(personalization.get("custom_args") or {})}
            for kind in ("to", "cc", "bcc"):
                for address in personalization.get(kind, []):
                    email = address["email"].lower()
                    self._sent.append(
                        {
                            "message_id": f"{message_id}.{position}.{len(self._sent)}",
                            "x_message_id": message_id,
                            "to": email,
                            "recipient_type": kind,
                            "personalization_index": position,
                            "template_id": template_id,
                            "template_name": template["name"] if template else None,
                            "subject": personalization.get("subject", body.get("subject")),
                            "dynamic_template_data": personalization.get("dynamic_template_data"),
                            "custom_args": merged_args,
                            "categories": list(body.get("categories", [])),
                            "asm": body.get("asm"),
                            "from": dict(sender),
                            "send_at": personalization.get("send_at", body.get("send_at")),
                            "request_index": request.request_index,
                            "suppressed": self._suppressions_for(email, group_id),
                        }
                    )
        return Response(202, None, {"X-Message-Id": message_id})

    def _check_send_at(self, send_at: int | None, field_name: str) -> None:
        if send_at is not None and send_at > time.time() + MAIL_MAX_SCHEDULE_AHEAD_SECONDS:
            raise ApiError(400, "The send_at parameter cannot be scheduled more than 72 hours in advance.", field_name)

    def _template_for_send(self, template_id: str) -> dict[str, Any]:
        if template_id.startswith("d-"):
            if not DYNAMIC_TEMPLATE_ID.match(template_id):
                raise ApiError(400, "The template_id must be a valid GUID.", "template_id")
        else:
            try:
                uuid.UUID(template_id)
            except ValueError:
                raise ApiError(400, "The template_id must be a valid GUID.", "template_id") from None
        template = self._templates.get(template_id)
        if template is None:
            raise ApiError(400, "The template_id is not a valid template ID.", "template_id")
        if not any(version["active"] == 1 for version in template["versions"]):
            raise ApiError(400, "The template_id refers to a template with no active version.", "template_id")
        return template

    def _suppressions_for(self, email: str, group_id: int | None) -> list[str]:
        kinds = [kind for kind, entries in self._suppressions.items() if email in entries]
        if group_id is not None and email in self._group_suppressions.get(int(group_id), {}):
            kinds.append("group")
        return kinds

    # --- contacts -------------------------------------------------------------------------------

    def _contact_view(self, contact: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in contact.items() if k != "custom_field_values"}
        view["list_ids"] = sorted(contact["list_ids"])
        view["custom_fields"] = {
            self._fields[field_id]["name"]: value
            for field_id, value in contact["custom_field_values"].items()
            if field_id in self._fields
        }
        return view

    def _check_custom_fields(self, position: int, custom_fields: dict[str, Any]) -> None:
        for field_id, value in custom_fields.items():
            definition = self._fields.get(field_id)
            where = f"contacts[{position}].custom_fields.{field_id}"
            if definition is None:
                by_name = next((d for d in self._fields.values() if d["name"] == field_id), None)
                hint = f"; custom fields are keyed by id, use {by_name['id']!r}" if by_name else ""
                raise ApiError(400, f"custom field ID {field_id!r} does not exist{hint}", where)
            field_type = definition["field_type"]
            if field_type == "Number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ApiError(400, f"custom field {field_id!r} is a Number field; got {type(value).__name__}", where)
            if field_type == "Text" and not isinstance(value, str):
                raise ApiError(400, f"custom field {field_id!r} is a Text field; got {type(value).__name__}", where)
            if field_type == "Date" and not _is_sendgrid_date(value):
                raise ApiError(400, f"custom field {field_id!r} is a Date field; expected MM/DD/YYYY or ISO 8601", where)

    def _upsert_contacts(self, request: ApiRequest) -> Response:
        body = request.body
        list_ids = body.get("list_ids", [])
        missing = [list_id for list_id in list_ids if list_id not in self._lists]
        if missing:
            raise ApiError(404, f"list_ids {missing} do not exist", "list_ids")
        contacts = body["contacts"]
        for position, contact in enumerate(contacts):
            if not any(contact.get(identifier) for identifier in CONTACT_IDENTIFIERS):
                raise ApiError(
                    400,
                    "each contact needs at least one of email, phone_number_id, external_id or anonymous_id",
                    f"contacts[{position}]",
                )
            if "email" in contact and not is_valid_email(contact["email"]):
                raise ApiError(400, "email is not a valid email address", f"contacts[{position}].email")
            for alternate in contact.get("alternate_emails", []):
                if not is_valid_email(alternate):
                    raise ApiError(400, "alternate email is not a valid email address", f"contacts[{position}].alternate_emails")
            self._check_custom_fields(position, contact.get("custom_fields", {}))

        created = updated = 0
        now = _now_iso()
        error_rows: list[list[str]] = []
        for contact in contacts:
            email = (contact.get("email") or "").lower()
            if email in self._import_rejections:
                error_rows.append([email, self._import_rejections[email]])
                continue
            key = self._contact_key(contact)
            existing = self._contacts.get(key)
            if existing is None:
                created += 1
                existing = {
                    "id": str(uuid.uuid4()),
                    "email": None,
                    "alternate_emails": [],
                    "list_ids": set(),
                    "segment_ids": [],
                    "custom_field_values": {},
                    "created_at": now,
                }
                self._contacts[key] = existing
            else:
                updated += 1
            if "email" in contact:
                existing["email"] = contact["email"].lower()
            for name in CONTACT_TEXT_FIELDS:
                if name in contact:
                    existing[name] = contact[name]
            if "alternate_emails" in contact:
                existing["alternate_emails"] = [e.lower() for e in contact["alternate_emails"]]
            existing["custom_field_values"].update(contact.get("custom_fields", {}))
            existing["list_ids"].update(list_ids)
            existing["updated_at"] = now
        job_id = self._new_job(
            "upsert_contacts",
            {"requested_count": len(contacts), "created_count": created, "updated_count": updated, "errored_count": len(error_rows)},
        )
        job = self._jobs[job_id]
        job["contact_keys"] = [self._contact_key(contact) for contact in contacts]  # what a test asks was sent
        if error_rows:
            job.update(status="errored", error_rows=error_rows)
            job["results"]["errors_url"] = f"{self.base_url}/_fake/imports/{job_id}/errors.csv"
        return Response(202, {"job_id": job_id})

    @staticmethod
    def _contact_key(contact: dict[str, Any]) -> str:
        if contact.get("email"):
            return contact["email"].lower()
        identifier = next(i for i in CONTACT_IDENTIFIERS if contact.get(i))
        return f"{identifier}:{contact[identifier]}"

    def _new_job(self, job_type: str, results: dict[str, int]) -> str:
        job_id = str(uuid.uuid4())
        self._jobs[job_id] = {
            "id": job_id,
            "job_type": job_type,
            "results": results,
            "started_at": _now_iso(),
            "finished_at": _now_iso(),
            "pending_polls_left": self.import_pending_polls,
            "status": "completed",
        }
        return job_id

    def _import_status(self, request: ApiRequest) -> Response:
        job = self._jobs.get(request.path_params["id"])
        if job is None:
            raise ApiError(404, "job not found", "id")
        if job["pending_polls_left"] > 0:
            job["pending_polls_left"] -= 1
            return Response(
                200, {"id": job["id"], "status": "pending", "job_type": job["job_type"], "results": {}, "started_at": job["started_at"]}
            )
        return Response(
            200,
            {
                "id": job["id"],
                "status": job["status"],
                "job_type": job["job_type"],
                "results": dict(job["results"]),
                "started_at": job["started_at"],
                "finished_at": job["finished_at"],
            },
        )

    def _contact_details(self, contact: dict[str, Any]) -> dict[str, Any]:
        view = self._contact_view(contact)
        details = {name: view.get(name, "") for name in CONTACT_TEXT_FIELDS if name not in ("phone_number_id", "external_id", "anonymous_id")}
        details.update(
            id=view["id"],
            email=view["email"] or "",
            alternate_emails=view["alternate_emails"],
            list_ids=view["list_ids"],
            segment_ids=[],
            custom_fields=view["custom_fields"],
            created_at=view["created_at"],
            updated_at=view["updated_at"],
            _metadata={"self": f"{self.base_url}/v3/marketing/contacts/{view['id']}"},
        )
        for identifier in ("phone_number_id", "external_id", "anonymous_id"):
            if view.get(identifier):
                details[identifier] = view[identifier]
        return details

    def _search_contacts_by_email(self, request: ApiRequest) -> Response:
        emails = [email for email in request.body["emails"] if email != ""]
        if len(emails) > SEARCH_MAX_EMAILS:
            raise ApiError(400, f"at most {SEARCH_MAX_EMAILS} emails may be searched per request", "emails")
        for position, email in enumerate(emails):
            if not is_valid_email(email):
                raise ApiError(400, "email address is invalid", f"emails[{position}]")
        result: dict[str, Any] = {}
        found = 0
        for email in emails:
            lowered = email.lower()
            contact = self._contacts.get(lowered) or next(
                (c for c in self._contacts.values() if lowered in c["alternate_emails"]), None
            )
            if contact is None:
                result[lowered] = {"error": "contact not found"}
            else:
                found += 1
                result[lowered] = {"contact": self._contact_details(contact)}
        if not found:
            raise ApiError(404, "No contacts found")
        return Response(200, {"result": result})

    def _contact_count(self, request: ApiRequest) -> Response:
        return Response(200, {"contact_count": len(self._contacts), "billable_count": len(self._contacts)})

    # --- lists ----------------------------------------------------------------------------------

    def _list_payload(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": entry["id"],
            "name": entry["name"],
            "contact_count": self._list_size(entry["id"]),
            "_metadata": {"self": f"{self.base_url}/v3/marketing/lists/{entry['id']}"},
        }

    def _list_size(self, list_id: str) -> int:
        return sum(1 for contact in self._contacts.values() if list_id in contact["list_ids"])

    def _page(self, request: ApiRequest, items: list[Any], default_size: int) -> tuple[list[Any], dict[str, Any]]:
        size = int(float(_query_value(request, "page_size", str(default_size))))
        offset = _decode_page_token(_query_value(request, "page_token"))
        page = items[offset : offset + size]
        base_query = {k: v[-1] for k, v in request.query.items() if k != "page_token"}
        metadata: dict[str, Any] = {
            "self": f"{self.base_url}{request.path}?{urlencode(request.query, doseq=True)}",
            "count": len(items),
        }
        if offset + size < len(items):
            metadata["next"] = f"{self.base_url}{request.path}?{urlencode({**base_query, 'page_token': _encode_page_token(offset + size)})}"
        if offset > 0:
            metadata["prev"] = f"{self.base_url}{request.path}?{urlencode({**base_query, 'page_token': _encode_page_token(max(0, offset - size))})}"
        return page, metadata

    def _list_lists(self, request: ApiRequest) -> Response:
        page, metadata = self._page(request, list(self._lists.values()), 100)
        return Response(200, {"result": [self._list_payload(entry) for entry in page], "_metadata": metadata})

    def _create_list(self, request: ApiRequest) -> Response:
        name = request.body["name"]
        if any(entry["name"] == name for entry in self._lists.values()):
            raise ApiError(400, "a list with this name already exists", "name")
        list_id = str(uuid.uuid4())
        self._lists[list_id] = {"id": list_id, "name": name}
        return Response(201, self._list_payload(self._lists[list_id]))

    def _existing_list(self, list_id: str) -> dict[str, Any]:
        entry = self._lists.get(list_id)
        if entry is None:
            raise ApiError(404, "list not found", "id")
        return entry

    def _get_list(self, request: ApiRequest) -> Response:
        entry = self._existing_list(request.path_params["id"])
        payload = self._list_payload(entry)
        if _query_value(request, "contact_sample") == "true":
            members = [c for c in self._contacts.values() if entry["id"] in c["list_ids"]]
            payload["contact_sample"] = [self._contact_details(c) for c in members[-50:]]
        return Response(200, payload)

    def _list_contact_count(self, request: ApiRequest) -> Response:
        entry = self._existing_list(request.path_params["id"])
        size = self._list_size(entry["id"])
        return Response(200, {"contact_count": size, "billable_count": size})

    def _remove_list_contacts(self, request: ApiRequest) -> Response:
        entry = self._existing_list(request.path_params["id"])
        contact_ids = [part for part in (_query_value(request, "contact_ids") or "").split(",") if part]
        if not contact_ids:
            raise ApiError(400, "contact_ids is required", "contact_ids")
        by_id = {contact["id"]: contact for contact in self._contacts.values()}
        unknown = [contact_id for contact_id in contact_ids if contact_id not in by_id]
        if unknown:
            raise ApiError(404, f"contact IDs {unknown} do not exist", "contact_ids")
        for contact_id in contact_ids:
            by_id[contact_id]["list_ids"].discard(entry["id"])
        job_id = self._new_job("remove_contacts_from_list", {"requested_count": len(contact_ids), "deleted_count": len(contact_ids)})
        return Response(202, {"job_id": job_id})

    # --- custom fields --------------------------------------------------------------------------

    def _list_fields(self, request: ApiRequest) -> Response:
        return Response(
            200,
            {
                "custom_fields": [dict(definition) for definition in self._fields.values()],
                "reserved_fields": [
                    {"name": name, "field_type": field_type, "read_only": read_only}
                    for name, field_type, read_only in RESERVED_FIELDS
                ],
                "_metadata": {"self": f"{self.base_url}/v3/marketing/field_definitions"},
            },
        )

    def _create_field(self, request: ApiRequest) -> Response:
        name, field_type = request.body["name"], request.body["field_type"]
        if not CUSTOM_FIELD_NAME.match(name):
            raise ApiError(400, "custom field names may contain only letters, digits and underscores and may not start with a digit", "name")
        lowered = name.lower()
        if any(lowered == reserved for reserved, _, _ in RESERVED_FIELDS):
            raise ApiError(400, "custom field name collides with a reserved field", "name")
        if any(lowered == definition["name"].lower() for definition in self._fields.values()):
            raise ApiError(400, "custom field name already exists", "name")
        if len(self._fields) >= MAX_CUSTOM_FIELDS:
            raise ApiError(400, f"at most {MAX_CUSTOM_FIELDS} custom fields are allowed", "name")
        field_id = f"e{next(self._field_counter)}_{FIELD_TYPE_SUFFIX[field_type]}"
        self._fields[field_id] = {"id": field_id, "name": name, "field_type": field_type}
        return Response(200, {**self._fields[field_id], "_metadata": {"self": f"{self.base_url}/v3/marketing/field_definitions/{field_id}"}})

    # --- suppressions ---------------------------------------------------------------------------

    def _suppression_lister(self, kind: str) -> Callable[[ApiRequest], Response]:
        def list_suppressions(request: ApiRequest) -> Response:
            entries = sorted(self._suppressions[kind].values(), key=lambda e: (e["created"], e["email"]))
            start_time = _query_value(request, "start_time")
            end_time = _query_value(request, "end_time")
            email_filter = _query_value(request, "email")
            if start_time is not None:
                entries = [e for e in entries if e["created"] >= int(start_time)]
            if end_time is not None:
                entries = [e for e in entries if e["created"] <= int(end_time)]
            if email_filter:
                entries = [e for e in entries if e["email"].startswith(email_filter.lower())]
            offset = int(_query_value(request, "offset", "0") or 0)
            limit = _query_value(request, "limit")
            entries = entries[offset:] if limit is None else entries[offset : offset + int(limit)]
            return Response(200, [dict(e) for e in entries])

        return list_suppressions

    def _all_group_suppressions(self, request: ApiRequest) -> Response:
        return Response(
            200,
            [
                {"email": email, "group_id": group_id, "group_name": f"Group {group_id}", "created_at": created}
                for group_id, members in sorted(self._group_suppressions.items())
                for email, created in sorted(members.items())
            ],
        )

    def _group_suppression_list(self, request: ApiRequest) -> Response:
        try:
            group_id = int(request.path_params["group_id"])
        except ValueError:
            raise ApiError(400, "group_id must be an integer", "group_id") from None
        return Response(200, sorted(self._group_suppressions.get(group_id, {})))

    # --- templates ------------------------------------------------------------------------------

    def _existing_template(self, template_id: str) -> dict[str, Any]:
        template = self._templates.get(template_id)
        if template is None:
            raise ApiError(404, "template not found", "template_id")
        return template

    def _existing_version(self, request: ApiRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        template = self._existing_template(request.path_params["template_id"])
        version_id = request.path_params["version_id"]
        version = next((v for v in template["versions"] if v["id"] == version_id), None)
        if version is None:
            raise ApiError(404, "version not found", "version_id")
        return template, version

    @staticmethod
    def _template_payload(template: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": template["id"],
            "name": template["name"],
            "generation": template["generation"],
            "updated_at": template["updated_at"],
            "versions": [{k: v for k, v in version.items() if k not in ("html_content", "plain_content")} for version in template["versions"]],
        }

    def _list_templates(self, request: ApiRequest) -> Response:
        wanted = set((_query_value(request, "generations") or "legacy").split(","))
        matching = [t for t in self._templates.values() if t["generation"] in wanted]
        page, metadata = self._page(request, matching, 100)
        return Response(200, {"result": [self._template_payload(t) for t in page], "_metadata": metadata})

    def _create_template(self, request: ApiRequest) -> Response:
        generation = request.body.get("generation", "legacy")
        template_id = f"d-{uuid.uuid4().hex}" if generation == "dynamic" else str(uuid.uuid4())
        self._templates[template_id] = {
            "id": template_id,
            "name": request.body["name"],
            "generation": generation,
            "updated_at": _now_template_time(),
            "versions": [],
        }
        return Response(201, self._template_payload(self._templates[template_id]))

    def _get_template(self, request: ApiRequest) -> Response:
        return Response(200, self._template_payload(self._existing_template(request.path_params["template_id"])))

    def _create_version(self, request: ApiRequest) -> Response:
        template = self._existing_template(request.path_params["template_id"])
        body = request.body
        active = 1 if not template["versions"] else body.get("active", 0)
        version = {
            "id": str(uuid.uuid4()),
            "template_id": template["id"],
            "active": active,
            "name": body["name"],
            "subject": body["subject"],
            "html_content": body.get("html_content", ""),
            "plain_content": body.get("plain_content", ""),
            "generate_plain_content": body.get("generate_plain_content", True),
            "editor": body.get("editor", "code"),
            "updated_at": _now_template_time(),
        }
        if "test_data" in body:
            version["test_data"] = body["test_data"]
        if active == 1:
            for other in template["versions"]:
                other["active"] = 0
        template["versions"].append(version)
        template["updated_at"] = version["updated_at"]
        return Response(201, dict(version))

    def _get_version(self, request: ApiRequest) -> Response:
        return Response(200, dict(self._existing_version(request)[1]))

    def _update_version(self, request: ApiRequest) -> Response:
        template, version = self._existing_version(request)
        for name in ("name", "subject", "html_content", "plain_content", "generate_plain_content", "editor", "test_data"):
            if name in request.body:
                version[name] = request.body[name]
        if request.body.get("active") == 1:
            for other in template["versions"]:
                other["active"] = 0
            version["active"] = 1
        version["updated_at"] = _now_template_time()
        return Response(200, dict(version))

    def _activate_version(self, request: ApiRequest) -> Response:
        template, version = self._existing_version(request)
        for other in template["versions"]:
            other["active"] = 0
        version["active"] = 1
        version["updated_at"] = _now_template_time()
        return Response(200, dict(version))


class _SendGridHTTPServer(ThreadingHTTPServer):
    """One thread per connection; a deep accept backlog so a burst from a thread pool is not refused."""

    daemon_threads = True
    request_queue_size = 128


@functools.lru_cache(maxsize=4)
def _load_catalog(spec_dir: Path) -> SpecCatalog:
    """Validators are immutable once built; every fake in a test session shares them."""
    return SpecCatalog(spec_dir)


def _is_sendgrid_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.strptime(value, "%m/%d/%Y")
        return True
    except ValueError:
        pass
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _error_response(status: int, message: str, field: str | None = None) -> Response:
    return Response(status, {"errors": [{"field": field, "message": message}]})


def _problems_response(problems: list[ValidationProblem]) -> Response:
    return Response(400, {"errors": [problem.as_sendgrid_error() for problem in problems]})


def _make_handler(fake: FakeSendGrid) -> type[BaseHTTPRequestHandler]:
    class SendGridRequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeSendGrid/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            """Silent: request lines carry query strings, and tests read `fake.requests` instead."""

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                raw = b"".join(chunks)
            else:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding", "").lower() == "gzip" and raw:
                raw = gzip.decompress(raw)
            return raw

        def _send(self, response: Response) -> None:
            payload = b"" if response.payload is None else json.dumps(response.payload).encode("utf-8")
            self.send_response(response.status)
            if response.payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        def _send_errors_file(self, job_id: str) -> None:
            """An import job's error file: plain CSV, no authorization, not recorded as an API request."""
            text = fake.import_errors_csv(job_id)
            payload = (text if text is not None else "job not found\n").encode("utf-8")
            self.send_response(200 if text is not None else 404)
            self.send_header("Content-Type", "text/csv" if text is not None else "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _drop(self) -> None:
            """Close without a status line, as a network cut between SendGrid and the client would."""
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _handle(self) -> None:
            method = self.command
            split = urlsplit(self.path)
            query = parse_qs(split.query, keep_blank_values=True)
            raw_body = self._read_body()
            errors_file = ERRORS_FILE_PATH.match(split.path)
            if errors_file is not None and method == "GET":
                self._send_errors_file(errors_file.group(1))
                return
            index = fake._arrive(method, split.path, query, len(raw_body))
            headers = {name: value for name, value in self.headers.items()}
            denied = fake._authorize(headers)
            if denied is not None:
                fake._finish(index, denied.status)
                self._send(denied)
                return
            fault = fake._take_fault(method, split.path)
            if fault is not None and fault.kind == "latency":
                time.sleep(fault.seconds)
            if fault is not None and fault.kind == "rate_limit":
                reset = math.ceil(time.time() + fault.reset_in_seconds)
                response = Response(
                    429,
                    {"errors": [{"field": None, "message": "too many requests"}]},
                    {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
                )
                fake._finish(index, 429, fault.kind)
                self._send(response)
                return
            if fault is not None and fault.kind == "server_error":
                response = _error_response(fault.status, "internal server error")
                fake._finish(index, fault.status, fault.kind)
                self._send(response)
                return
            if fault is not None and fault.kind == "drop_before_effect":
                fake._finish(index, None, fault.kind)
                self._drop()
                return
            immediate, effect = fake._prepare(method, split.path, query, headers, raw_body, index)
            response = immediate if immediate is not None else effect()  # type: ignore[misc]
            if fault is not None and fault.kind == "drop_after_body":
                fake._finish(index, None, fault.kind)
                self._drop()
                return
            fake._finish(index, response.status, fault.kind if fault is not None else None)
            self._send(response)

        def _safe_handle(self) -> None:
            try:
                self._handle()
            except (ConnectionError, BrokenPipeError):
                self.close_connection = True
            except Exception as error:  # the fake's own bug: answer 500 and say which
                self._send(_error_response(500, f"fake SendGrid internal error: {type(error).__name__}: {error}"))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _safe_handle

    return SendGridRequestHandler
