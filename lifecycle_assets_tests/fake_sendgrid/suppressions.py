"""Suppressions: global lists (unsubscribes, bounces, ...) and unsubscribe-group (ASM) suppressions."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from .api import ApiError, ApiRequest, Response, query_value

SUPPRESSION_KINDS = ("unsubscribes", "bounces", "spam_reports", "invalid_emails", "blocks", "group")


class SuppressionsApi:
    """/v3/suppression/* and /v3/asm/*; `add_suppression` seeds what SendGrid already refuses."""

    _lock: threading.RLock

    def _init_suppressions(self) -> None:
        self._suppressions: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in SUPPRESSION_KINDS if kind != "group"}
        self._group_suppressions: dict[int, dict[str, int]] = {}

    def _suppressions_routes(self) -> dict:
        return {
            ("GET", "/v3/suppression/unsubscribes"): self._suppression_lister("unsubscribes"),
            ("GET", "/v3/suppression/bounces"): self._suppression_lister("bounces"),
            ("GET", "/v3/suppression/spam_reports"): self._suppression_lister("spam_reports"),
            ("GET", "/v3/suppression/invalid_emails"): self._suppression_lister("invalid_emails"),
            ("GET", "/v3/suppression/blocks"): self._suppression_lister("blocks"),
            ("GET", "/v3/asm/suppressions"): self._all_group_suppressions,
            ("GET", "/v3/asm/groups/{group_id}/suppressions"): self._group_suppression_list,
        }

    def add_suppression(
        self,
        kind: str,
        email: str,
        group_id: int | None = None,
        *,
        created: int | None = None,
        reason: str = "seeded by test",
    ) -> None:
        """Record an address SendGrid already refuses to deliver to (globally or for one group)."""
        if kind not in SUPPRESSION_KINDS:
            raise ValueError(f"unknown suppression kind {kind!r}; expected one of {SUPPRESSION_KINDS}")
        created = int(time.time()) if created is None else created
        address = email.lower()
        with self._lock:
            if kind == "group":
                if group_id is None:
                    raise ValueError("a group suppression needs group_id")
                self._group_suppressions.setdefault(int(group_id), {})[address] = created
                return
            entry: dict[str, Any] = {"created": created, "email": address}
            if kind in ("bounces", "blocks"):
                entry.update(reason=reason, status="5.1.1" if kind == "bounces" else "4.0.0")
            if kind == "invalid_emails":
                entry["reason"] = reason
            if kind == "spam_reports":
                entry["ip"] = "10.0.0.1"
            self._suppressions[kind][address] = entry

    def _suppressions_for(self, email: str, group_id: int | None) -> list[str]:
        kinds = [kind for kind, entries in self._suppressions.items() if email in entries]
        if group_id is not None and email in self._group_suppressions.get(int(group_id), {}):
            kinds.append("group")
        return kinds

    def _suppression_lister(self, kind: str) -> Callable[[ApiRequest], Response]:
        def list_suppressions(request: ApiRequest) -> Response:
            entries = sorted(self._suppressions[kind].values(), key=lambda e: (e["created"], e["email"]))
            start_time = query_value(request, "start_time")
            end_time = query_value(request, "end_time")
            email_filter = query_value(request, "email")
            if start_time is not None:
                entries = [e for e in entries if e["created"] >= int(start_time)]
            if end_time is not None:
                entries = [e for e in entries if e["created"] <= int(end_time)]
            if email_filter:
                entries = [e for e in entries if e["email"].startswith(email_filter.lower())]
            offset = int(query_value(request, "offset", "0") or 0)
            limit = query_value(request, "limit")
            entries = entries[offset:] if limit is None else entries[offset : offset + int(limit)]
            return Response(200, [dict(e) for e in entries])

        return list_suppressions

    def _all_group_suppressions(self, request: ApiRequest) -> Response:
        return Response(
            200,
            [
                {"email": email, "group_id": group_id, "group_name": f"Group {group_id}", "created_at": created}
                for group_id, members in sorted(self._group_suppressions.items())
                for email, created in sorted(members.items())
            ],
        )

    def _group_suppression_list(self, request: ApiRequest) -> Response:
        try:
            group_id = int(request.path_params["group_id"])
        except ValueError:
            raise ApiError(400, "group_id must be an integer", "group_id") from None
        return Response(200, sorted(self._group_suppressions.get(group_id, {})))
