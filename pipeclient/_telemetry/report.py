"""`FlushReport`: what telemetry did with the records handed to it. Its own small module:
the client's `flush()` and `close()` return it without loading the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FlushReport"]


@dataclass
class FlushReport:
    """What happened to the records handed to the dispatcher so far."""

    submitted: int = 0
    dropped: int = 0  # not accepted: the queue (or a destination's lane) was full
    pending: int = 0  # accepted, not yet delivered or failed when the deadline passed
    sent: dict[str, int] = field(default_factory=dict)  # per destination: records delivered
    failed: dict[str, int] = field(default_factory=dict)  # per destination: send failed
    redactions: dict[str, int] = field(default_factory=dict)  # per detector: values replaced
    unpriced: int = 0  # calls with token usage whose model has no price: no cost sent

    @property
    def complete(self) -> bool:
        return self.pending == 0 and self.dropped == 0 and not any(self.failed.values())
