"""Marketing contacts, lists, custom field definitions and their import jobs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import threading
import uuid
from typing import Any, Iterable

from .api import ApiError, ApiRequest, Response, now_iso, paginate, query_value
from .openapi import is_valid_email

# "up to 30,000 contacts, or 6MB of data, whichever is lower"; 6,000,000 is the strict reading.
CONTACTS_MAX_BYTES = 6_000_000
SEARCH_MAX_EMAILS = 100
MAX_CUSTOM_FIELDS = 500
CUSTOM_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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


class ContactsApi:
    """/v3/marketing/contacts, /lists and /field_definitions, with the import jobs an upsert starts."""

    _lock: threading.RLock
    import_pending_polls: int
    base_url: str

    def _init_contacts(self) -> None:
        self._lists: dict[str, dict[str, Any]] = {}
        self._contacts: dict[str, dict[str, Any]] = {}  # key: lower-cased email or "<identifier>:<value>"
        self._fields: dict[str, dict[str, Any]] = {}  # field id -> definition
        self._field_counter = itertools.count(1)
        self._jobs: dict[str, dict[str, Any]] = {}
        self._import_rejections: dict[str, str] = {}  # lower-cased email -> error message
        self._errors_url_override: str | None = None

    def _contacts_routes(self) -> dict:
        return {
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
        }

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

    def import_jobs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {job_id: json.loads(json.dumps(job)) for job_id, job in self._jobs.items()}

    def reject_contacts_on_import(self, emails: Iterable[str], message: str = "invalid email") -> None:
        """Contacts with these emails fail inside their import job, as SendGrid reports row errors.

        The upsert request is still accepted (202); the other contacts apply, and the job's status is
        `errored` with `errored_count` and an `errors_url` whose CSV (`email,error`) names each failed row.
        """
        with self._lock:
            for email in emails:
                self._import_rejections[email.lower()] = message

    def report_errors_url(self, url: str | None) -> None:
        """Jobs with row errors report this `errors_url` (e.g. one that is not a URL) instead of the real file's."""
        with self._lock:
            self._errors_url_override = url

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
        now = now_iso()
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
            job["results"]["errors_url"] = self._errors_url_override or f"{self.base_url}/_fake/imports/{job_id}/errors.csv"
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
            "started_at": now_iso(),
            "finished_at": now_iso(),
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


    def _list_lists(self, request: ApiRequest) -> Response:
        page, metadata = paginate(request, list(self._lists.values()), 100, self.base_url)
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
        if query_value(request, "contact_sample") == "true":
            members = [c for c in self._contacts.values() if entry["id"] in c["list_ids"]]
            payload["contact_sample"] = [self._contact_details(c) for c in members[-50:]]
        return Response(200, payload)

    def _list_contact_count(self, request: ApiRequest) -> Response:
        entry = self._existing_list(request.path_params["id"])
        size = self._list_size(entry["id"])
        return Response(200, {"contact_count": size, "billable_count": size})

    def _remove_list_contacts(self, request: ApiRequest) -> Response:
        entry = self._existing_list(request.path_params["id"])
        contact_ids = [part for part in (query_value(request, "contact_ids") or "").split(",") if part]
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
