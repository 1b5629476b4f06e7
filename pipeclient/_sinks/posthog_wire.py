"""PostHog's `/batch/` request body, written by pipeclient.

The bytes are the ones the posthog SDK's `batch_post` writes (`json.dumps` with its
default separators and ASCII escapes, NaN and infinities as null, dates and UUIDs as
their text; the keys `batch`, `historical_migration`, `sent_at`, `api_key` in that order;
a test decodes both and compares them), but each event is encoded once, on the export
worker in its slices, and a batch is those bytes joined: no single `json.dumps` of a
whole batch holds the interpreter on the sender's thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import Any
from uuid import UUID

from .._telemetry.sink import Payload, strict_json

__all__ = ["DEFAULT_HOST", "batch_body", "batch_url", "event_bytes"]

DEFAULT_HOST = "https://us.i.posthog.com"
_EU_HOST = "https://eu.i.posthog.com"
_BATCH_PATH = "/batch/"


def _default(value: Any) -> Any:
    """As the SDK's `DatetimeSerializer`: anything else is a TypeError."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(allow_nan=False, default=_default)


def event_bytes(event: Payload) -> bytes:
    """One event's JSON, as it appears inside the SDK's batch."""
    return strict_json(_ENCODER, event).encode("ascii")


def batch_body(events: Sequence[bytes], api_key: str, sent_at: datetime | None = None) -> bytes:
    """The request body for these events (from `event_bytes`)."""
    moment = (sent_at or datetime.now(tz=timezone.utc)).isoformat()
    return b"".join(
        [
            b'{"batch": [',
            b", ".join(events),
            b'], "historical_migration": false, "sent_at": ',
            json.dumps(moment).encode("ascii"),
            b', "api_key": ',
            json.dumps(api_key).encode("ascii"),
            b"}",
        ]
    )


def batch_url(host: str) -> str:
    """The `/batch/` endpoint of the configured host, mapped as the SDK maps it (PostHog
    Cloud's app hosts to their ingestion hosts)."""
    trimmed = (host or "").strip() or DEFAULT_HOST
    trimmed = trimmed[:-1] if trimmed.endswith("/") else trimmed
    if trimmed in ("https://app.posthog.com", "https://us.posthog.com"):
        trimmed = DEFAULT_HOST
    elif trimmed == "https://eu.posthog.com":
        trimmed = _EU_HOST
    return trimmed + _BATCH_PATH
