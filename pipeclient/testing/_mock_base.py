"""What the mock's endpoints share: errors in OpenAI's shape, ids, words."""

from __future__ import annotations

import hashlib
import json
import re
from http import HTTPStatus
from typing import Any

__all__ = ["CREATED", "MOCK_MODEL", "Json"]

MOCK_MODEL = "mock-model"
CREATED = 1700000000

Json = dict[str, Any]


class _RequestError(Exception):
    """An answer given as an OpenAI-style error: a bad request, or a failing reply callable."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def _json(payload: Json) -> tuple[int, str, bytes, None]:
    return 200, "application/json", json.dumps(payload).encode(), None


def _error(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> tuple[int, str, bytes, None]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    if status == 429:
        kind, code = "requests", code or "rate_limit_exceeded"
    error = {"message": message, "type": kind, "param": param, "code": code}
    return status, "application/json", json.dumps({"error": error}).encode(), None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _digest(data: bytes | str, length: int = 24) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:length]


def _seconds(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    """Words with their leading whitespace, so that "".join(_pieces(t)) == t."""
    pieces = re.findall(r"\s*\S+", text)
    rest = text[len("".join(pieces)) :]
    return [*pieces, rest] if rest else pieces


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _int_param(body: Json, name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _RequestError(
            400, f"{value!r} is not valid for '{name}': expected an integer >= 1", param=name
        )
    return value
