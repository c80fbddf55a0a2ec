"""The real receiver (`python -m lifecycle_assets.webhook` under uvicorn) as a subprocess on a free port, and a SendGrid-like poster."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from lifecycle_assets.webhook.app import EVENTS_PATH
from lifecycle_assets.webhook.signing import new_private_key, public_key_as_sendgrid_shows_it, signature_headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookReceiver:
    """One receiver process; `kill()` is SIGKILL, `start()` again restarts it on the same port and landing zone."""

    def __init__(self, landing_dir: Path, private_key=None, max_bytes: int | None = None, log_path: Path | None = None):
        self.landing_dir = Path(landing_dir)
        self.private_key = private_key or new_private_key()
        self.max_bytes = max_bytes
        self.port = free_port()
        self.log_path = log_path or self.landing_dir.parent / "webhook.log"
        self.process: subprocess.Popen | None = None
        self.http = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{EVENTS_PATH}"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = public_key_as_sendgrid_shows_it(self.private_key)
        env["LIFECYCLE_LANDING_DIR"] = str(self.landing_dir)
        if self.max_bytes:
            env["LIFECYCLE_WEBHOOK_MAX_BYTES"] = str(self.max_bytes)
        return env

    def start(self, timeout: float = 30.0) -> "WebhookReceiver":
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lifecycle_assets.webhook", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"receiver exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).ok:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("receiver did not answer /healthz in time")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "WebhookReceiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def post(self, events, *, body: bytes | None = None, timestamp: int | None = None, headers=None, key=None,
             timeout: float = 10.0) -> requests.Response:
        """POST like SendGrid: the JSON array, signed over timestamp + body with the account's key."""
        body = body if body is not None else json.dumps(events).encode()
        signed = signature_headers(key or self.private_key, body, int(time.time()) if timestamp is None else timestamp)
        all_headers = {"Content-Type": "application/json", **signed, **(headers or {})}
        return self.http.post(self.url, data=body, headers={k: v for k, v in all_headers.items() if v is not None},
                              timeout=timeout)


def sendgrid_event(event: str, n: int, *, customer_id: str | None = "C00001", letter_key: str | None = None,
                   timestamp: int | None = None, **extra) -> dict:
    """One event shaped as SendGrid posts it, custom_args at the top level."""
    body = {
        "email": f"customer{n}@example.com",
        "timestamp": int(time.time()) if timestamp is None else timestamp,
        "event": event,
        "sg_event_id": f"sg-event-{event}-{n}",
        "sg_message_id": f"msg-{n}.filter0001.example",
        "smtp-id": f"<msg-{n}@example.com>",
        "category": ["lifecycle", "welcome"],
        **extra,
    }
    if customer_id is not None:
        body["customer_id"] = customer_id
    if letter_key is not None:
        body["letter_key"] = letter_key
    return body


def landed_rows(landing_dir: Path) -> list[dict]:
    """Every row of every webhook landing file, in file-name order."""
    return [
        json.loads(line)
        for path in sorted(Path(landing_dir).glob("interactions/date=*/sendgrid-*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
