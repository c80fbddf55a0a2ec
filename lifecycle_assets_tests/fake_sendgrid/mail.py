"""Mail Send: the checks SendGrid applies to a message, and the letters it records as sent."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

from .api import ApiError, ApiRequest, Response

# Limits SendGrid states in prose, which no schema keyword carries.
MAIL_MAX_RECIPIENTS = 1000
MAIL_MAX_BYTES = 30 * 1024 * 1024  # "The total size of your email ... must be less than 30MB"
MAIL_MAX_SCHEDULE_AHEAD_SECONDS = 72 * 3600
CUSTOM_ARGS_MAX_BYTES = 10_000
UNSUBSCRIBE_TAGS = (
    "<%asm_group_unsubscribe_raw_url%>",
    "<%asm_group_unsubscribe_url%>",
    "<%asm_preferences_raw_url%>",
    "<%asm_preferences_url%>",
    "<%asm_global_unsubscribe_raw_url%>",
    "<%asm_global_unsubscribe_url%>",
)
DYNAMIC_TEMPLATE_ID = re.compile(r"^d-[0-9a-f]{32}$")


class MailApi:
    """POST /v3/mail/send; `sent_messages()` is what a test reads back."""

    _lock: threading.RLock

    def _init_mail(self) -> None:
        self._sent: list[dict[str, Any]] = []

    def _mail_routes(self) -> dict:
        return {("POST", "/v3/mail/send"): self._mail_send}

    def sent_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(message) for message in self._sent]

    def _mail_send(self, request: ApiRequest) -> Response:
        body = request.body
        personalizations = body["personalizations"]
        if not personalizations:
            raise ApiError(400, "The personalizations field is required and must have at least one personalization.", "personalizations")
        recipients = 0
        in_request: set[str] = set()
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
            if seen & in_request:
                # SendGrid refuses the whole request; the address is not echoed here.
                raise ApiError(
                    400,
                    "Each unique email address in the personalizations array should only be included once.",
                    "personalizations",
                )
            in_request |= seen
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

        self._check_unsubscribe_tags(body, template)
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

    @staticmethod
    def _check_unsubscribe_tags(body: dict[str, Any], template: dict[str, Any] | None) -> None:
        """Unsubscribe substitution tags resolve only against an unsubscribe group sent in `asm`."""
        if (body.get("asm") or {}).get("group_id"):
            return
        if template is not None:
            version = next(v for v in template["versions"] if v["active"] == 1)
            texts = [version.get("html_content", ""), version.get("plain_content", "")]
        else:
            texts = [block.get("value", "") for block in body.get("content") or []]
        if any(tag in text for text in texts for tag in UNSUBSCRIBE_TAGS):
            raise ApiError(
                400, "The asm group_id is required when the content uses unsubscribe substitution tags.", "asm.group_id"
            )

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
