"""One SendGrid request at a time, with the failure policy every caller shares.

The official client has no retries, no default timeout, and keeps per-call headers on the
shared client object, so every request here gets a fresh client, an explicit timeout and
no per-call headers. Failures are classified like dlt does: terminal (stop the run),
rejected (this request's content is wrong, the rest goes on), transient (retry with
bounded backoff), and outcome-unknown (the request may have reached SendGrid; never
repeated for a request that is not idempotent, such as Mail Send).
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import threading
import time
import urllib.error
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from python_http_client import exceptions as http_errors

IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})
# Answers of a gateway in front of SendGrid that lost its upstream after forwarding the request: the
# body was sent, and SendGrid may have accepted it. 500 and 503 come from SendGrid's own application
# (its error shape, before any work), so they stay retryable; a non-idempotent request answered by a
# gateway error is never repeated.
GATEWAY_ERROR_STATUSES = frozenset({502, 504})


# Anything that could be a key or a person's address is cut out of every message leaving this module.
_SECRET_PATTERNS = (
    re.compile(r"SG\.[A-Za-z0-9_\-.]+"),  # SendGrid's key format
    re.compile(r"(?i)bearer\s+\S+"),
    re.compile(r"(?i)authorization['\"]?\s*[:=]\s*['\"]?[^'\",}\s]+"),
)
_ADDRESS = re.compile(r"[^\s@'\"<>(),;:\[\]]+@[^\s@'\"<>(),;:\[\]]+")
API_KEY_PROBLEM = (
    "SENDGRID_API_KEY contains whitespace or control characters (a trailing newline from a file or a "
    "copy-paste?); strip them. The value is not shown."
)


def scrub(text: str, *secrets: str | None) -> str:
    """The text without the given secrets, anything shaped like an API key or bearer token, or an email address."""
    for secret in secrets:
        if secret and secret.strip():
            text = text.replace(secret, "<secret>").replace(secret.strip(), "<secret>")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub("<secret>", text)
    return _ADDRESS.sub("<address>", text)


def api_key_problem(api_key: str | None) -> str | None:
    """Why this key cannot go into an Authorization header (without echoing it), or None when it can."""
    if api_key and any(char.isspace() or not char.isprintable() for char in api_key):
        return API_KEY_PROBLEM
    return None


class _NoClientDebug(logging.Filter):
    """python_http_client logs every request's headers (the key) and payload (addresses) at DEBUG: drop them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("python_http_client").addFilter(_NoClientDebug())
logging.getLogger("python_http_client.client").addFilter(_NoClientDebug())


class SendGridError(Exception):
    """Base of every failure this module raises; messages never contain the API key or an address."""

    def __init__(self, message: str = "", *args: object):
        super().__init__(scrub(str(message)), *args)


class SendGridAuthError(SendGridError):
    """401/403: the key is missing, wrong or lacks a scope. Terminal: the run stops."""


class SendGridRejected(SendGridError):
    """4xx other than 401/403/429: SendGrid read the request and refused its content."""

    def __init__(self, status: int, errors: list[dict], text: str):
        super().__init__(f"SendGrid rejected the request with {status}: {text}")
        self.status = status
        # SendGrid's messages may quote an address; what reaches the ledger's error column must not.
        self.errors = [{key: scrub(value) if isinstance(value, str) else value for key, value in error.items()} for error in errors]
        self.text = scrub(text)


class SendGridUnavailable(SendGridError):
    """429/5xx/connection failures that outlasted every retry. Nothing was accepted."""


class SendGridOutcomeUnknown(SendGridError):
    """The request may have reached SendGrid but no answer came back (dropped connection, timeout)."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class RequestStats:
    """Counts shared by the worker threads of one run (for asset metadata)."""

    requests: int = 0
    retries: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, method: str, path: str, retry: bool) -> None:
        endpoint = f"{method} {_endpoint_family(path)}"
        with self._lock:
            self.requests += 1
            self.retries += int(retry)
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1


def _endpoint_family(path: str) -> str:
    """`/v3/marketing/lists/<id>/contacts` -> `/v3/marketing/lists/{id}/contacts`, for readable counts."""
    parts = []
    for part in path.split("?")[0].strip("/").split("/"):
        looks_like_id = len(part) >= 16 and any(ch.isdigit() for ch in part)
        parts.append("{id}" if looks_like_id else part)
    return "/" + "/".join(parts)


class SendGridSession:
    """Sends requests for one run: live over HTTP, or into an outbox file when there is no key."""

    def __init__(
        self,
        *,
        api_key: str | None,
        host: str,
        timeout_seconds: float,
        max_retries: int,
        backoff_seconds: float,
        max_backoff_seconds: float,
        outbox_path: Path | None,
        log: Callable[[str], None] = lambda message: None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        problem = api_key_problem(api_key)
        if problem:
            raise SendGridAuthError(problem)
        self._api_key = api_key
        self.host = host.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.outbox_path = outbox_path
        self.stats = RequestStats()
        self._log = log
        self._sleep = sleep
        self._outbox_lock = threading.Lock()

    @property
    def dry_run(self) -> bool:
        return not self._api_key

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> Reply:
        """Send one request, retrying what is safe to retry; raise a classified SendGridError otherwise."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        if self.dry_run:
            return self._write_to_outbox(method, path, body, query)
        failure: SendGridError | None = None
        try:
            return self._request_with_retries(method, path, body, query, idempotent)
        except SendGridError as error:
            failure = error
        except Exception as error:  # noqa: BLE001 - nothing unscrubbed leaves the SendGrid layer
            failure = SendGridError(
                f"{type(error).__name__} on {method} {_endpoint_family(path)}: {scrub(str(error), self._api_key)}"
            )
        # Raised outside the except block, its chain cut: no original (with its unscrubbed text) travels along.
        failure.__cause__ = failure.__context__ = None
        raise failure

    def _request_with_retries(
        self, method: str, path: str, body: Any, query: dict[str, Any] | None, idempotent: bool
    ) -> Reply:
        attempt = 0
        while True:
            self.stats.count(method, path, retry=attempt > 0)
            try:
                return self._send_once(method, path, body, query)
            except http_errors.HTTPError as error:
                status = int(error.status_code)
                text = _error_text(error.body)
                if status in (401, 403):
                    raise SendGridAuthError(
                        f"SendGrid refused the API key ({status}) for {method} {_endpoint_family(path)}: {text}. "
                        "Check SENDGRID_API_KEY and its scopes."
                    ) from None
                if status in GATEWAY_ERROR_STATUSES and not idempotent:
                    raise SendGridOutcomeUnknown(
                        f"{status} from a gateway after the request was sent on {method} {_endpoint_family(path)}: {text}"
                    ) from None
                if status == 429 or status >= 500:
                    if attempt >= self.max_retries:
                        raise SendGridUnavailable(
                            f"{method} {_endpoint_family(path)} still failing with {status} after "
                            f"{attempt + 1} attempts: {text}"
                        ) from None
                    wait = self._rate_limit_wait(error.headers) if status == 429 else None
                    self._back_off(attempt, wait, f"{status} on {method} {_endpoint_family(path)}")
                    attempt += 1
                    continue
                raise SendGridRejected(status, _error_list(error.body), text) from None
            except urllib.error.URLError as error:
                # urllib wraps failures of connect and of writing the request: it did not arrive
                # whole, so even Mail Send may be retried.
                if attempt >= self.max_retries:
                    raise SendGridUnavailable(
                        f"cannot reach SendGrid at {self.host} for {method} {_endpoint_family(path)}: {error.reason}"
                    ) from None
                self._back_off(attempt, None, f"connection failed on {method} {_endpoint_family(path)}")
                attempt += 1
            except (OSError, http.client.HTTPException) as error:
                # The request was written, the answer never came: SendGrid may have acted on it.
                description = f"{type(error).__name__} after the request was sent: {error}"
                if not idempotent:
                    raise SendGridOutcomeUnknown(description) from None
                if attempt >= self.max_retries:
                    raise SendGridUnavailable(f"{method} {_endpoint_family(path)}: {description}") from None
                self._back_off(attempt, None, f"no answer on {method} {_endpoint_family(path)}")
                attempt += 1

    def _send_once(self, method: str, path: str, body: Any, query: dict[str, Any] | None) -> Reply:
        # A fresh client per request: the official client keeps headers on shared state and is
        # not safe to share between threads.
        from sendgrid import SendGridAPIClient

        client = SendGridAPIClient(api_key=self._api_key, host=self.host).client
        client.timeout = self.timeout_seconds
        # The official client adds the /v3 version prefix itself.
        segments = path.strip("/").split("/")
        if segments[0] == f"v{client._version}":
            segments = segments[1:]
        endpoint = client
        for segment in segments:
            endpoint = endpoint._(segment)
        call = getattr(endpoint, method.lower())
        response = call(request_body=body, query_params=query, timeout=self.timeout_seconds)
        raw = response.body
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        headers = {key: value for key, value in response.headers.items()}
        return Reply(status=response.status_code, headers=headers, body=parsed)

    def _rate_limit_wait(self, headers: Any) -> float | None:
        try:
            reset = float(headers.get("X-RateLimit-Reset"))
        except (TypeError, ValueError, AttributeError):
            return None
        return max(0.0, min(reset - time.time(), self.max_backoff_seconds))

    def _back_off(self, attempt: int, wait: float | None, reason: str) -> None:
        if wait is None:
            wait = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
            wait = wait * (0.5 + random.random() / 2)
        self._log(f"SendGrid {reason}; retry {attempt + 1}/{self.max_retries} in {wait:.2f}s")
        self._sleep(wait)

    def _write_to_outbox(self, method: str, path: str, body: Any, query: dict[str, Any] | None) -> Reply:
        """Dry-run: record the request an operator can inspect; answer like SendGrid would, without data."""
        assert self.outbox_path is not None, "dry-run needs an outbox path"
        line = json.dumps({"method": method, "path": path, "query": query, "body": body}, default=str)
        with self._outbox_lock:
            self.outbox_path.parent.mkdir(parents=True, exist_ok=True)
            with self.outbox_path.open("a", encoding="utf-8") as outbox:
                outbox.write(line + "\n")
        self.stats.count(method, path, retry=False)
        if method == "GET":
            return Reply(200, {}, _empty_listing(path))
        made_up_id = f"dry-run-{uuid.uuid4()}"
        return Reply(202, {"X-Message-Id": made_up_id}, {"id": made_up_id, "job_id": made_up_id})


def pages(session: SendGridSession, path: str, query: dict[str, Any]) -> Iterator[list[dict]]:
    """The `result` of every page of a listing SendGrid pages with `_metadata.next` and a `page_token`.

    Stops when there is no next page, or when SendGrid hands back the token just used (no loop).
    """
    query = dict(query)
    while True:
        body = session.request("GET", path, query=query).body or {}
        yield list(body.get("result", []))
        next_url = (body.get("_metadata") or {}).get("next") if isinstance(body, dict) else None
        token = parse_qs(urlsplit(next_url).query).get("page_token", [None])[0] if next_url else None
        if not token or token == query.get("page_token"):
            return
        query["page_token"] = token


def _empty_listing(path: str) -> Any:
    if path.startswith("/v3/suppression/") or "/suppressions" in path:
        return []
    if path.startswith("/v3/marketing/field_definitions"):
        return {"custom_fields": [], "reserved_fields": []}
    if path.startswith("/v3/marketing/contacts/imports/"):
        return {"status": "completed", "results": {}}
    return {"result": []}


def _error_list(raw: Any) -> list[dict]:
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return []
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    if isinstance(errors, dict):
        return [errors]
    return [item for item in errors or [] if isinstance(item, dict)]


def _error_text(raw: Any) -> str:
    errors = _error_list(raw)
    if errors:
        return "; ".join(
            f"{item.get('field')}: {item.get('message')}" if item.get("field") else str(item.get("message"))
            for item in errors
        )
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text[:500]
