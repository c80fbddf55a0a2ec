"""What every API family of the fake shares: the request it handles, the answer it gives, SendGrid's error shape."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .openapi import ValidationProblem


class ApiError(Exception):
    """A response SendGrid would give instead of doing the work."""

    def __init__(self, status: int, message: str, field: str | None = None, extra: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.errors = [{"field": field, "message": message}, *(extra or [])]


@dataclass
class ApiRequest:
    method: str
    path: str
    path_template: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    body_bytes: int
    request_index: int


@dataclass
class Response:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_template_time() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        kind, value = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        if kind != "offset" or int(value) < 0:
            raise ValueError(token)
        return int(value)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid page_token", "page_token") from error


def query_value(request: ApiRequest, name: str, default: str | None = None) -> str | None:
    values = request.query.get(name)
    return values[-1] if values else default


def paginate(request: ApiRequest, items: list[Any], default_size: int, base_url: str) -> tuple[list[Any], dict[str, Any]]:
    """One page of `items` and SendGrid's `_metadata` (self, count, next/prev with a `page_token`)."""
    size = int(float(query_value(request, "page_size", str(default_size))))
    offset = decode_page_token(query_value(request, "page_token"))
    page = items[offset : offset + size]
    base_query = {k: v[-1] for k, v in request.query.items() if k != "page_token"}
    metadata: dict[str, Any] = {
        "self": f"{base_url}{request.path}?{urlencode(request.query, doseq=True)}",
        "count": len(items),
    }
    if offset + size < len(items):
        metadata["next"] = f"{base_url}{request.path}?{urlencode({**base_query, 'page_token': encode_page_token(offset + size)})}"
    if offset > 0:
        metadata["prev"] = f"{base_url}{request.path}?{urlencode({**base_query, 'page_token': encode_page_token(max(0, offset - size))})}"
    return page, metadata


def error_response(status: int, message: str, field: str | None = None) -> Response:
    return Response(status, {"errors": [{"field": field, "message": message}]})


def problems_response(problems: list[ValidationProblem]) -> Response:
    return Response(400, {"errors": [problem.as_sendgrid_error() for problem in problems]})
