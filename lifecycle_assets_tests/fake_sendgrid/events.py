"""The fake SendGrid's Event Webhook: signed event batches for what the fake accepted, POSTed as SendGrid does.

For each message the fake accepted through Mail Send it posts a `processed` event at once and,
`delivery_delay_seconds` later, `delivered` (or `dropped` when the fake lists the address as
suppressed), each carrying the personalization's custom_args at the top level and signed with
ECDSA over timestamp + body. A batch that gets no 2xx is posted again on the next tick, as
SendGrid retries. It reads the fake's `sent_messages()`, so the fake itself needs no change.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import requests

from lifecycle_assets.webhook.signing import signature_headers

from .server import FakeSendGrid


@dataclass
class _Pending:
    due: float
    event: dict


@dataclass
class FakeEventWebhook:
    fake: FakeSendGrid
    url: str
    private_key: object
    delivery_delay_seconds: float = 0.0
    batch_size: int = 500
    interval_seconds: float = 0.1
    posted_batches: int = 0
    failed_posts: int = 0
    _seen_messages: int = 0
    _pending: list[_Pending] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _event(self, message: dict, name: str, at: float, **extra) -> dict:
        return {
            "email": message["to"],
            "timestamp": int(at),
            "event": name,
            "sg_event_id": f"{message['message_id']}-{name}",
            "sg_message_id": message["message_id"],
            "category": message.get("categories") or [],
            **(message.get("custom_args") or {}),
            **extra,
        }

    def _collect(self, now: float) -> None:
        messages = self.fake.sent_messages()
        for message in messages[self._seen_messages :]:
            self._pending.append(_Pending(now, self._event(message, "processed", now)))
            due = now + self.delivery_delay_seconds
            if message.get("suppressed"):
                later = self._event(message, "dropped", due, reason="Unsubscribed Address")
            else:
                later = self._event(message, "delivered", due, response="250 OK")
            self._pending.append(_Pending(due, later))
        self._seen_messages = len(messages)

    def tick(self) -> int:
        """Post every due event once (in batches); returns how many were acknowledged."""
        with self._lock:
            now = time.time()
            self._collect(now)
            due = [p for p in self._pending if p.due <= now]
            acknowledged = 0
            for start in range(0, len(due), self.batch_size):
                batch = due[start : start + self.batch_size]
                body = json.dumps([p.event for p in batch]).encode()
                headers = {"Content-Type": "application/json", **signature_headers(self.private_key, body, int(time.time()))}
                try:
                    ok = requests.post(self.url, data=body, headers=headers, timeout=10).status_code // 100 == 2
                except requests.RequestException:
                    ok = False
                if not ok:  # SendGrid keeps the batch and retries it later
                    self.failed_posts += 1
                    continue
                self.posted_batches += 1
                acknowledged += len(batch)
                posted = {id(p) for p in batch}
                self._pending = [p for p in self._pending if id(p) not in posted]
            return acknowledged

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self.fake.sent_messages()) - self._seen_messages

    def start(self) -> "FakeEventWebhook":
        def loop() -> None:
            while not self._stop.wait(self.interval_seconds):
                self.tick()

        self._thread = threading.Thread(target=loop, name="fake-event-webhook", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "FakeEventWebhook":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
