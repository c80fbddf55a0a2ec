"""SendGrid Event Webhook events -> rows of the `interactions` landing contract.

SendGrid posts a JSON array of events. The custom_args the push sets on every personalization
(`letter_key`, `customer_id`, `trigger`, see activation/letters.py) come back as top-level keys
of each event, so every event about one of our letters names its letter and customer.

The row's `event_id` is derived from SendGrid's `sg_event_id`, so a batch SendGrid retries
carries the same ids: the receiver's index skips them, and ingest's duplicate-id rule would
drop any copy that still got through. Addresses, IPs, user agents, URLs and bounce reasons
(which quote addresses) are not copied: the warehouse needs none of them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

# SendGrid event name -> the contract's event_type (lifecycle_assets/ingest/contract.py).
EVENT_TYPE_BY_SENDGRID_EVENT = {
    "processed": "processed",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounce",
    "dropped": "dropped",
    "open": "open",
    "click": "click",
    "spamreport": "spam_report",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "group_unsubscribe",
    "group_resubscribe": "group_resubscribe",
}
# A `bounce` event with type "blocked" is a temporary refusal by the receiving server, not a hard
# bounce: SendGrid does not suppress the address, and neither do we.
BLOCKED_BOUNCE_TYPE = "blocked"
EVENT_ID_PREFIX = "sg:"

# Landing columns written for every event: the contract's interaction columns plus three that
# ingest ignores (extra columns are allowed) but an operator needs to trace an event in SendGrid.
LANDING_COLUMNS = (
    "event_id",
    "occurred_at",
    "event_type",
    "customer_id",
    "letter_key",
    "sendgrid_event",
    "sg_event_id",
    "sg_message_id",
)


class MalformedEvent(ValueError):
    """An element of the batch that is not a SendGrid event at all."""


def event_id(event: dict[str, Any]) -> str:
    """Stable across SendGrid's retries: its own sg_event_id, else a hash of the event itself."""
    sg_event_id = event.get("sg_event_id")
    if isinstance(sg_event_id, str) and sg_event_id:
        return EVENT_ID_PREFIX + sg_event_id
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return EVENT_ID_PREFIX + "sha256-" + hashlib.sha256(canonical.encode()).hexdigest()


def contract_event_type(event: dict[str, Any]) -> str:
    """The contract's type; an event SendGrid may add later keeps its own name and is quarantined by ingest."""
    name = str(event.get("event") or "")
    if name == "bounce" and event.get("type") == BLOCKED_BOUNCE_TYPE:
        return "blocked"
    return EVENT_TYPE_BY_SENDGRID_EVENT.get(name, name or "missing_event")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _occurred_at(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _text(value)  # ingest quarantines an unparsable timestamp with its reason
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def interaction_row(event: Any) -> dict[str, str | None]:
    if not isinstance(event, dict):
        raise MalformedEvent(f"an event must be a JSON object, got {type(event).__name__}")
    return {
        "event_id": event_id(event),
        "occurred_at": _occurred_at(event.get("timestamp")),
        "event_type": contract_event_type(event),
        "customer_id": _text(event.get("customer_id")),
        "letter_key": _text(event.get("letter_key")),
        "sendgrid_event": _text(event.get("event")),
        "sg_event_id": _text(event.get("sg_event_id")),
        "sg_message_id": _text(event.get("sg_message_id")),
    }
