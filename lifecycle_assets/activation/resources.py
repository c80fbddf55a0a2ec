"""The SendGrid account the push talks to, configured only from the environment.

Without SENDGRID_API_KEY the push runs dry: every request it would send is appended to a
JSONL file per run under the outbox folder, and nothing leaves the machine.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
from pydantic import Field

from lifecycle_assets import environment
from lifecycle_assets.activation.client import SendGridSession, api_key_problem
from lifecycle_assets.activation.templates import TEMPLATES_DIR

SENDGRID_DEFAULT_HOST = "https://api.sendgrid.com"


class SendGridResource(dg.ConfigurableResource):
    """SendGrid over the official client: explicit timeouts, bounded retries, a bounded thread pool."""

    api_key: str | None = Field(
        default=None, description="From SENDGRID_API_KEY only; empty means dry-run into the outbox."
    )
    host: str = Field(default=SENDGRID_DEFAULT_HOST, description="From SENDGRID_HOST; a fake on 127.0.0.1 in tests.")
    sender_email: str = "hello@example.com"
    sender_name: str = "Lifecycle"
    unsubscribe_group_id: int = Field(default=0, description="asm.group_id on every letter; 0 = none configured.")
    timeout_seconds: float = 30.0
    max_concurrent_requests: int = Field(default=4, description="Mail Send requests in flight at once.")
    letters_per_request: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Personalizations per Mail Send request. A kill leaves at most "
        "max_concurrent_requests x letters_per_request letters unknown.",
    )
    max_retries: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    import_poll_timeout_seconds: float = 300.0
    webhook_retry_horizon_seconds: float = Field(
        default=24 * 3600.0,
        description="An unknown letter with no Event Webhook event this long after its claim is released (docs/webhook.md).",
    )
    outbox_dir: str = Field(default_factory=lambda: str(environment.outbox_dir()))
    templates_dir: str = Field(
        default=str(TEMPLATES_DIR), description="The letter templates mirrored to SendGrid (one folder per letter type)."
    )
    previews_dir: str = Field(
        default_factory=lambda: str(environment.previews_dir()),
        description="Where each letter type's HTML preview (and screenshots from `make previews`) are written.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a key that cannot be a header value when the resource loads, before any request or log line."""
        problem = api_key_problem(self.api_key)
        if problem:
            raise dg.Failure(description=problem, allow_retries=False)

    @property
    def dry_run(self) -> bool:
        return not self.api_key

    @property
    def unknown_blast_radius(self) -> int:
        """The most letters one kill or dropped connection can leave `unknown`."""
        return max(1, self.max_concurrent_requests) * self.letters_per_request

    def session(self, run_id: str, log=None) -> SendGridSession:
        """A request sender for one run; in dry-run it writes to `<outbox_dir>/<run_id>.jsonl`."""
        return SendGridSession(
            api_key=self.api_key or None,
            host=self.host,
            timeout_seconds=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_seconds=self.backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
            outbox_path=Path(self.outbox_dir) / f"{run_id}.jsonl",
            log=log or (lambda message: None),
        )

    def thread_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=max(1, self.max_concurrent_requests), thread_name_prefix="sendgrid")


def sendgrid_resource_from_environment() -> SendGridResource:
    """The key only ever comes from SENDGRID_API_KEY via dg.EnvVar, so the UI shows the name, never the value."""
    api_key = dg.EnvVar("SENDGRID_API_KEY") if os.environ.get("SENDGRID_API_KEY") else None
    settings: dict = {"api_key": api_key, "host": os.environ.get("SENDGRID_HOST") or SENDGRID_DEFAULT_HOST}
    optional = {
        "sender_email": "SENDGRID_SENDER_EMAIL",
        "sender_name": "SENDGRID_SENDER_NAME",
        "unsubscribe_group_id": "SENDGRID_UNSUBSCRIBE_GROUP_ID",
        "max_concurrent_requests": "SENDGRID_MAX_CONCURRENT_REQUESTS",
        "timeout_seconds": "SENDGRID_TIMEOUT_SECONDS",
        "letters_per_request": "SENDGRID_LETTERS_PER_REQUEST",
    }
    numeric = {
        "unsubscribe_group_id": int,
        "max_concurrent_requests": int,
        "timeout_seconds": float,
        "letters_per_request": int,
    }
    for field_name, variable in optional.items():
        value = os.environ.get(variable)
        if value:
            settings[field_name] = numeric.get(field_name, str)(value)
    return SendGridResource(**settings)
