"""`lifecycle-webhook --host HOST --port PORT`: the Event Webhook receiver under uvicorn.

Settings come from the environment only: SENDGRID_WEBHOOK_PUBLIC_KEY (the verification key as
SendGrid's settings page shows it), LIFECYCLE_LANDING_DIR (where batches land) and, optionally,
LIFECYCLE_WEBHOOK_MAX_BYTES (the largest body accepted, default 5 MiB). See docs/webhook.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from lifecycle_assets import environment
from lifecycle_assets.webhook.app import DEFAULT_MAX_BYTES, WebhookKeyError, create_app, load_verifier
from lifecycle_assets.webhook.landing import WebhookLanding


def build_app_from_environment():
    verifier = load_verifier(os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY"))
    max_bytes = int(os.environ.get("LIFECYCLE_WEBHOOK_MAX_BYTES") or DEFAULT_MAX_BYTES)
    return create_app(verifier, WebhookLanding(environment.landing_dir()), max_bytes=max_bytes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lifecycle-webhook", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = build_app_from_environment()
    except WebhookKeyError as error:
        sys.exit(f"lifecycle-webhook: {error}")
    # One process: the index that keeps SendGrid's retries out lives in it (docs/webhook.md).
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)


if __name__ == "__main__":
    main()
