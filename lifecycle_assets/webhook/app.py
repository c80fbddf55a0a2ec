"""The Event Webhook receiver: an ASGI app that verifies SendGrid's signature and lands each batch.

POST /sendgrid/events checks, in this order, and answers the first failure with nothing written:
  413  body larger than max_bytes (Content-Length or counted while reading)
  401  no signature or no timestamp header (an unsigned request)
  403  timestamp not a Unix time, or more than MAX_CLOCK_SKEW_SECONDS from now (a replay)
  403  signature does not verify with the configured public key
  400  body not UTF-8 JSON, not an array, or an element that is not an object
Then the batch is stored durably (landing.py) and only then answered 200. A storage failure is a
500, which SendGrid retries. GET /healthz answers 200 for load balancers and tests.
"""

from __future__ import annotations

import binascii
import json
import logging
import time
from typing import Callable

from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lifecycle_assets.webhook.landing import WebhookLanding
from lifecycle_assets.webhook.mapping import MalformedEvent, interaction_row

log = logging.getLogger("lifecycle_assets.webhook")

EVENTS_PATH = "/sendgrid/events"
# SendGrid batches events by time and count; batches are typically well under 1 MB. 5 MiB leaves
# room for bursts and still bounds the memory one request can take.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
# Older signed requests are refused as replays; the same window ahead absorbs clock skew.
MAX_CLOCK_SKEW_SECONDS = 300


class WebhookKeyError(ValueError):
    """SENDGRID_WEBHOOK_PUBLIC_KEY is missing or not an EC public key; the message never echoes it."""


def load_verifier(public_key: str | None) -> EventWebhook:
    """The key as SendGrid's settings page shows it: base64 of the DER public key (surrounding whitespace ignored)."""
    text = "".join((public_key or "").split())
    if not text:
        raise WebhookKeyError("SENDGRID_WEBHOOK_PUBLIC_KEY is not set: copy the verification key from "
                              "SendGrid's Mail Settings > Event Webhook > Signature Verification")
    try:
        verifier = EventWebhook(text)
    except Exception:  # noqa: BLE001 - any parse failure means the same thing to the operator
        raise WebhookKeyError("SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key as SendGrid shows it") from None
    if not isinstance(verifier.public_key, ec.EllipticCurvePublicKey):
        raise WebhookKeyError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an elliptic-curve (ECDSA) public key")
    return verifier


def _reject(status: int, reason: str) -> JSONResponse:
    log.warning("rejected webhook request: %s %s", status, reason)
    return JSONResponse({"error": reason}, status_code=status)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    verifier: EventWebhook,
    landing: WebhookLanding,
    max_bytes: int = DEFAULT_MAX_BYTES,
    now: Callable[[], float] = time.time,
) -> Starlette:
    def land(text: str):
        try:
            events = json.loads(text)
        except ValueError as error:
            return f"body is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        if not isinstance(events, list):
            return "body must be a JSON array of events"
        try:
            rows = [interaction_row(event) for event in events]
        except MalformedEvent as error:
            return str(error)
        return landing.store(rows)

    async def receive_events(request: Request) -> JSONResponse:
        try:
            body = await _read_body(request, max_bytes)
        except _TooLarge:
            return _reject(413, f"body larger than {max_bytes} bytes")
        signature = request.headers.get(EventWebhookHeader.SIGNATURE)
        timestamp = request.headers.get(EventWebhookHeader.TIMESTAMP)
        if not signature or not timestamp:
            return _reject(401, f"unsigned: {EventWebhookHeader.SIGNATURE} and {EventWebhookHeader.TIMESTAMP} are required")
        if not timestamp.isdigit():
            return _reject(403, "signature timestamp is not a Unix time in seconds")
        if abs(now() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            return _reject(403, f"signature timestamp is more than {MAX_CLOCK_SKEW_SECONDS} s from now")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            return _reject(400, f"body is not UTF-8 (byte {error.start})")
        try:
            valid = verifier.verify_signature(text, signature, timestamp)
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            return _reject(403, "signature does not verify with SENDGRID_WEBHOOK_PUBLIC_KEY")
        try:
            outcome = await run_in_threadpool(land, text)
        except OSError as error:
            log.error("could not store a webhook batch (%s); SendGrid will retry it", type(error).__name__)
            return JSONResponse({"error": "could not store the batch; retry"}, status_code=500)
        if isinstance(outcome, str):
            return _reject(400, outcome)
        log.info(
            "stored webhook batch: %d events, %d new%s",
            outcome.received,
            outcome.new,
            f" -> {outcome.path.parent.name}/{outcome.path.name}" if outcome.path else " (all seen before)",
        )
        return JSONResponse({"received": outcome.received, "stored": outcome.new})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route(EVENTS_PATH, receive_events, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    )

