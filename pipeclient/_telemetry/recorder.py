"""The recorder: the fan-out run at once, its payloads kept instead of sent.

What `pipeclient.testing.capture_telemetry()` and `pipeclient telemetry preview` show is
what the dispatcher's worker would hand each destination: the same privacy step and the
same encoders, only no lane, no thread and no socket.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar

from .fanout import Fanout
from .privacy import PrivacyStep, Record
from .report import FlushReport
from .sink import Payload

__all__ = ["CAPTURE", "Recorder"]

# Set by `capture_telemetry()`: clients built meanwhile record into this store.
CAPTURE: ContextVar[dict[str, list[Payload]] | None] = ContextVar(
    "pipeclient_capture", default=None
)


class Recorder:
    def __init__(self, fanout: Fanout, store: dict[str, list[Payload]]) -> None:
        self.fanout = fanout
        self.privacy: PrivacyStep = fanout.privacy
        self.store = store
        self._lock = threading.Lock()
        self._report = FlushReport(
            sent=dict.fromkeys(fanout.names, 0), failed=dict.fromkeys(fanout.names, 0)
        )

    def submit(self, record: Record) -> bool:
        with self._lock:
            self._report.submitted += 1
            for batch in self.fanout.prepare([record]):
                name = batch.route.sink.name
                if batch.error is not None:
                    self._report.failed[name] += batch.records
                    continue
                if batch.payloads:
                    self.store.setdefault(name, []).extend(batch.payloads)
                self._report.sent[name] += batch.records
        return True

    def lost(self, exc: Exception) -> None:
        with self._lock:
            self._report.dropped += 1

    def report(self) -> FlushReport:
        with self._lock:
            report = self._report
            return FlushReport(
                submitted=report.submitted,
                sent=dict(report.sent),
                failed=dict(report.failed),
                redactions=self.privacy.counts(),
                unpriced=self.fanout.unpriced,
            )

    def flush(self, timeout: float | None = None) -> FlushReport:
        return self.report()

    def close(self, timeout: float | None = None) -> FlushReport:
        return self.report()

    def release(self) -> None:
        """Nothing runs in the background: nothing to stop."""
