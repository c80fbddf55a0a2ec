"""Fault injection: the failures a real network and a rate-limited API produce, queued per path."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from .api import Response, error_response

FAULT_KINDS = ("rate_limit", "server_error", "latency", "drop_after_body", "drop_before_effect", "error_after_effect")


@dataclass(frozen=True)
class Fault:
    """One failure to inject into the next `times` requests whose path starts with `path_prefix`.

    kind: "rate_limit" (429 + X-RateLimit-* headers), "server_error" (`status`, default 500),
    "latency" (sleep `seconds`, then handle normally), "drop_after_body" (apply the request,
    then close the socket without answering), "drop_before_effect" (close without applying) or
    "error_after_effect" (apply the request, then answer `status` as a gateway that lost SendGrid's
    answer would, e.g. 502 or 504).
    """

    kind: str
    path_prefix: str = "/"
    times: int = 1
    status: int = 500
    seconds: float = 0.0
    reset_in_seconds: float = 1.0
    method: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.times < 1:
            raise ValueError("a fault must apply at least once (times >= 1)")

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and (self.method is None or self.method.upper() == method)


class FaultQueue:
    """The faults waiting for their requests; FakeSendGrid inherits `inject` and `reset_faults`."""

    _lock: threading.RLock
    _faults: list[list[Any]]  # [fault, remaining]

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append([fault, fault.times])

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for slot in self._faults:
                fault, remaining = slot
                if remaining > 0 and fault.matches(method, path):
                    slot[1] -= 1
                    if slot[1] == 0:
                        self._faults.remove(slot)
                    return fault
        return None


def fault_response(fault: Fault) -> Response | None:
    """The answer a 429 or 5xx fault gives before any effect, instead of the real one (None for the other kinds)."""
    if fault.kind == "rate_limit":
        reset = math.ceil(time.time() + fault.reset_in_seconds)
        return Response(
            429,
            {"errors": [{"field": None, "message": "too many requests"}]},
            {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        )
    if fault.kind == "server_error":
        return error_response(fault.status, "internal server error")
    return None


def gateway_response(fault: Fault) -> Response:
    """What a gateway says after it forwarded the request and lost the answer (not SendGrid's error shape)."""
    return Response(fault.status, {"message": "gateway error"})
