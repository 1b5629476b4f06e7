"""The contract every telemetry destination implements.

As OpenTelemetry's exporters: a sink turns records into its destination's payloads
(`encode`, pure and cheap to test) and delivers batches of them (`send`, the only I/O),
with `force_flush` and `shutdown`; `pack` (`encode_packed`: both in one step) and
`after_fork` are what a background sender needs besides. A sink knows nothing of the
client, the queue or the privacy rules: it renders the view the privacy step made for its
audience, whatever fields that view has. Heavy SDKs are imported inside the sink, on first
use, never at module import.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .record import CallRecord, ErrorInfo, TraceRecord

__all__ = [
    "ExportError",
    "Payload",
    "Sink",
    "error_summary",
    "json_text",
    "public_url",
    "retry_after_seconds",
    "rfc3339",
    "strict_json",
    "with_message",
]

Payload = dict[str, Any]  # JSON-able: exactly what goes on the wire (or, for OTLP, the span)


_STRICT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_STRICT_UTF8 = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def json_text(value: Any, *, ascii_only: bool = True) -> str:
    """Compact JSON that every parser takes (see `strict_json`)."""
    return strict_json(_STRICT if ascii_only else _STRICT_UTF8, value)


def strict_json(encoder: json.JSONEncoder, value: Any) -> str:
    """The encoder's JSON (made with `allow_nan=False`) that every parser takes: NaN and
    infinities (never produced by the sinks, but content is the provider's) go out as
    null, as PostHog's SDK does, instead of tokens that would make a destination refuse
    the whole batch."""
    try:
        return encoder.encode(value)
    except ValueError:
        return encoder.encode(_finite(value))


def _finite(value: Any) -> Any:
    """The value with NaN and infinities, at any depth, as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


_WORD = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def error_summary(error: ErrorInfo | None, http_status: int | None = None) -> str:
    """`RateLimitError: 429 rate_limit_exceeded`: the type and codes, never the text. Every
    destination names an error this way."""
    if error is None:
        return f"Error: {http_status}" if http_status else "Error"
    name = error.type if _WORD.fullmatch(error.type) else "Error"
    code = error.code
    status = code if isinstance(code, int) and not isinstance(code, bool) else http_status
    parts = [str(status)] if status is not None else []
    if isinstance(code, str) and _WORD.fullmatch(code) and code not in parts:
        parts.append(code)
    return f"{name}: {' '.join(parts)}" if parts else name


def with_message(summary: str, error: ErrorInfo | None) -> str:
    """The summary and, in a view that may carry it, the error's text."""
    message = error.message if error is not None else None
    return f"{summary} - {message}" if message else summary


def public_url(url: str) -> str:
    """scheme://host[:port]/path: never user info, a query or a fragment."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """A server's wait hint, for the client's retries and the sinks' sends:
    `retry-after-ms`, `Retry-After` seconds or HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def rfc3339(seconds: float) -> str:
    """An epoch time as RFC 3339 UTC with milliseconds: `2026-12-07T10:48:33.123Z`."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ExportError(RuntimeError):
    """A send that did not deliver. `transient`: it may succeed if tried again soon (a
    refused connection, a timeout, a 5xx), and the destination's lane tries again. The
    message never quotes keys, headers or content. `retry_after`: the destination's own
    wait hint (its Retry-After), in seconds, when it gave one."""

    transient = False
    retry_after: float | None = None

    def __init__(
        self, message: str, *, transient: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class Sink(ABC):
    #: "posthog", "langfuse", "otlp:<name>", "gateway", "audit", "store", "budget"
    name: str
    #: how long its lane waits for more records before a send; None: the dispatcher's
    linger_s: float | None = None
    #: whether each record must reach it at once (the budget's ledger: the next call's
    #: check reads it). While one is on, the dispatcher never holds records back during a
    #: burst of calls (`slices.Burst`), for any destination.
    prompt: bool = False

    @abstractmethod
    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        """The payloads for one record (often one; none for a record the sink skips)."""

    def pack(self, payloads: list[Payload]) -> list[Any]:
        """What the destination's lane holds until the send: the payloads themselves, or
        (a sink whose wire format is bytes) those bytes, made here on the worker. Bytes are
        not tracked by the garbage collector: thousands of records lingering in a lane as
        nested dicts make the interpreter run full collections, tens of milliseconds each,
        that stall every thread, the caller's too."""
        return payloads

    def encode_packed(self, record: CallRecord | TraceRecord) -> list[Any]:
        """`pack(encode(record))`, in one step: what the dispatcher's worker calls. A sink
        whose wire format is bytes may write them straight from the record, without the
        payloads (a test holds the two ways to the same bytes)."""
        return self.pack(self.encode(record))

    @abstractmethod
    def send(self, payloads: Sequence[Any], timeout: float) -> None:
        """Deliver a batch (of payloads, or of what `pack` made of them), giving up after
        about `timeout` seconds. May raise."""

    def prepare(self) -> None:  # noqa: B027 - optional to override
        """Load what sending needs (the SDK and its encoders). Run on the destination's
        sender thread as soon as the first record arrives, so that no send's deadline
        pays for an import."""

    def retryable(self, error: Exception) -> bool:
        """Whether a failed send may succeed if tried again soon."""
        return isinstance(error, ExportError) and error.transient

    def force_flush(self, timeout: float) -> bool:
        """Push out anything the sink buffers itself. True when all was delivered."""
        return True

    def keep(self, payloads: Sequence[Any]) -> bool:
        """At close, a batch (as `pack` made it) its lane had no time left to send: a sink
        that can keep it for a later process (the gateway's spool) does, and says True."""
        return False

    def after_fork(self) -> None:  # noqa: B027 - optional to override
        """In a forked child: drop the parent's sessions and state (never close them)."""

    def shutdown(self, timeout: float) -> None:  # noqa: B027 - optional to override
        """Release threads, sockets and SDK clients. Called once, at close."""
