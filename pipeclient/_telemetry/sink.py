"""The contract every telemetry destination implements.

As OpenTelemetry's exporters: a sink turns records into its destination's payloads
(`encode`, pure and cheap to test) and delivers batches of them (`send`, the only I/O),
with `force_flush` and `shutdown`; `pack` and `after_fork` are what a background sender
needs besides. A sink knows nothing of the client, the queue or the privacy rules: it
renders the view the privacy step made for its audience, whatever fields that view has.
Heavy SDKs are imported inside the sink, on first use, never at module import.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from .record import CallRecord, TraceRecord

__all__ = ["Payload", "Sink", "json_text", "strict_json"]

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


class Sink(ABC):
    #: "posthog", "langfuse", "otlp:<name>", "gateway", "audit"
    name: str

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

    @abstractmethod
    def send(self, payloads: Sequence[Any], timeout: float) -> None:
        """Deliver a batch (of payloads, or of what `pack` made of them), giving up after
        about `timeout` seconds. May raise."""

    def force_flush(self, timeout: float) -> bool:
        """Push out anything the sink buffers itself. True when all was delivered."""
        return True

    def after_fork(self) -> None:  # noqa: B027 - optional to override
        """In a forked child: drop the parent's sessions and state (never close them)."""

    def shutdown(self, timeout: float) -> None:  # noqa: B027 - optional to override
        """Release threads, sockets and SDK clients. Called once, at close."""
