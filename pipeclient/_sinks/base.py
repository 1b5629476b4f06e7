"""The contract every telemetry destination implements.

A sink turns records into its destination's payloads (`encode`, pure and cheap to test)
and sends payloads (`send`, the only I/O). It knows nothing of the client, the queue or
the privacy rules: the dispatcher hands it records that the privacy step has already cut
down to what this destination may see, on the dispatcher's one worker thread. Heavy SDKs
are imported inside the sink, on first use, never at module import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from .._record import CallRecord, TraceRecord

__all__ = ["Payload", "Sink"]

Payload = dict[str, Any]  # JSON-able: exactly what goes on the wire (or, for OTLP, the span)


class Sink(ABC):
    #: "posthog", "langfuse", "otlp:<name>", "gateway", "audit"
    name: str
    #: whether this destination may receive content (prompts, completions, error text)
    receives_content: bool = False
    #: custom sinks get nothing for no_log calls; the gateway sink keeps billing fields
    custom: bool = True

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
