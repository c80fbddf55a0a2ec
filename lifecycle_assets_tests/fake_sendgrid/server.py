"""A stateful stand-in for the parts of SendGrid the activation push uses, over real HTTP.

This module is the HTTP server and the request pipeline; each API family lives in its own module
(mail, contacts, templates, suppressions) and fault injection in `faults`.

The official `sendgrid` client talks to it unchanged (only `host` points here). Every request
is checked against SendGrid's published OpenAPI documents plus the limits their descriptions
state, so a request the real SendGrid would reject is rejected here too. Tests read the
resulting state (lists, contacts, templates, sent letters) and inject the failures a real
network and a rate-limited API produce: 429s, 5xx, latency and connections cut before or
after SendGrid applied the request, and contacts that fail inside an import job.
"""

from __future__ import annotations

import functools
import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, NamedTuple
from urllib.parse import parse_qs, urlsplit

from .api import ApiError, ApiRequest, Response, error_response, problems_response
from .contacts import CONTACTS_MAX_BYTES, ERRORS_FILE_PATH, ContactsApi
from .faults import FAULT_KINDS, Fault, FaultQueue, fault_response, gateway_response
from .mail import MAIL_MAX_BYTES, MailApi
from .openapi import SpecCatalog
from .suppressions import SUPPRESSION_KINDS, SuppressionsApi
from .templates import TemplatesApi

__all__ = ["DEFAULT_SPEC_DIR", "FAULT_KINDS", "SUPPRESSION_KINDS", "FakeSendGrid", "Fault", "RequestRecord"]

# Vendored with their MIT licence (see sendgrid_openapi/README.md): the tests need nothing outside the repo.
DEFAULT_SPEC_DIR = Path(__file__).resolve().parent / "sendgrid_openapi"


class RequestRecord(NamedTuple):
    """What arrived, in order. `status` is None when a fault closed the connection unanswered."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None
    body_bytes_len: int
    fault: str | None = None


class FakeSendGrid(MailApi, ContactsApi, TemplatesApi, SuppressionsApi, FaultQueue):
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
        self._init_mail()
        self._init_contacts()
        self._init_templates()
        self._init_suppressions()
        self._routes: dict[tuple[str, str], Callable[[ApiRequest], Response]] = {
            **self._mail_routes(),
            **self._contacts_routes(),
            **self._suppressions_routes(),
            **self._templates_routes(),
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
            return error_response(401, "authorization required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.api_key:
            return error_response(401, "The provided authorization grant is invalid, expired, or revoked")
        if self.forbidden:
            return error_response(403, "access forbidden")
        return None

    def _prepare(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw_body: bytes, index: int
    ) -> tuple[Response | None, Callable[[], Response] | None]:
        """Route and validate; returns either an immediate response or the effect to apply."""
        route = self.catalog.match(method, path)
        if route.path_template is None:
            return error_response(404, "resource not found"), None
        if route.operation is None:
            return error_response(405, f"method {method} not allowed; documented: {', '.join(route.allowed_methods)}"), None
        handler = self._routes.get((method, route.path_template))
        if handler is None:
            return error_response(
                501, f"fake SendGrid does not implement {method} {route.path_template} (documented as {route.operation.operation_id})"
            ), None
        operation = route.operation
        problems = operation.validate_parameters(route.path_params, query, headers)
        if problems:
            return problems_response(problems), None
        if method == "POST" and path == "/v3/mail/send" and len(raw_body) > MAIL_MAX_BYTES:
            return error_response(413, "content too large"), None
        if method == "PUT" and path == "/v3/marketing/contacts" and len(raw_body) > CONTACTS_MAX_BYTES:
            return error_response(400, f"request body is {len(raw_body)} bytes; at most {CONTACTS_MAX_BYTES} (6MB) allowed"), None
        body: Any = None
        if operation.body_validator is not None:
            if not raw_body:
                return error_response(400, "request body is required"), None
            try:
                body = json.loads(raw_body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return error_response(400, "request body is not valid JSON"), None
            problems = operation.validate_body(body)
            if problems:
                return problems_response(problems), None
        request = ApiRequest(method, path, route.path_template, route.path_params, query, headers, body, len(raw_body), index)

        def effect() -> Response:
            try:
                with self._lock:
                    return handler(request)
            except ApiError as error:
                return Response(error.status, {"errors": error.errors})

        return None, effect


class _SendGridHTTPServer(ThreadingHTTPServer):
    """One thread per connection; a deep accept backlog so a burst from a thread pool is not refused."""

    daemon_threads = True
    request_queue_size = 128


@functools.lru_cache(maxsize=4)
def _load_catalog(spec_dir: Path) -> SpecCatalog:
    """Validators are immutable once built; every fake in a test session shares them."""
    return SpecCatalog(spec_dir)



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
            refused = fault_response(fault) if fault is not None else None
            if refused is not None:
                fake._finish(index, refused.status, fault.kind)  # type: ignore[union-attr]
                self._send(refused)
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
            if fault is not None and fault.kind == "error_after_effect":
                response = gateway_response(fault)
            fake._finish(index, response.status, fault.kind if fault is not None else None)
            self._send(response)

        def _safe_handle(self) -> None:
            try:
                self._handle()
            except (ConnectionError, BrokenPipeError):
                self.close_connection = True
            except Exception as error:  # the fake's own bug: answer 500 and say which
                self._send(error_response(500, f"fake SendGrid internal error: {type(error).__name__}: {error}"))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _safe_handle

    return SendGridRequestHandler
