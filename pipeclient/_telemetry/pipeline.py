"""What a client holds of telemetry: where its records go, and what a call must keep.

Built by `pipeclient._builder.build_pipeline`, the only code that turns settings into
sinks. Emitting never fails a call and never waits on a destination: records go to the
dispatcher (or, under `capture_telemetry()`, the recorder); only a durable audit line, or
any audit line under DO_NOT_TRACK (when no worker may exist), is written at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .privacy import AUDIT, PrivacyStep, Record
from .record import CallRecord
from .report import FlushReport

if TYPE_CHECKING:
    from .budget import Budget
    from .dispatch import Dispatcher
    from .recorder import Recorder
    from .sink import Sink

__all__ = ["DeferredAudit", "Pipeline"]

logger = logging.getLogger("pipeclient")


class DeferredAudit:
    """An async call's durable audit lines, held until the call awaits their write in a
    worker thread (an fsync must not block the event loop). Once closed, lines are
    written at once: a stream dropped unread still leaves its line."""

    __slots__ = ("open", "records")

    def __init__(self) -> None:
        self.open = True
        self.records: list[Record] = []

    def take(self) -> list[Record]:
        self.open = False
        records, self.records = self.records, []
        return records


class Pipeline:
    def __init__(
        self,
        privacy: PrivacyStep,
        exporter: Dispatcher | Recorder | None,
        *,
        audit_now: Sink | None = None,
        wants_content: bool = False,
        budget: Budget | None = None,
    ) -> None:
        self.privacy = privacy
        #: `[budget]`: checked before each call is sent; its lane records what calls cost
        self.budget = budget
        self.exporter = exporter
        self.audit_now = audit_now
        #: whether a call must keep its content: some destination may receive it
        self.wants_content = wants_content

    def emit(self, record: Record, deferred: DeferredAudit | None = None) -> None:
        if self.audit_now is not None:
            if deferred is not None and deferred.open:
                deferred.records.append(record)
            else:
                self.write_audit(record)
        exporter = self.exporter
        if exporter is None:
            return
        try:
            exporter.submit(record)
        except Exception as exc:  # telemetry never fails a call
            exporter.lost(exc)

    def write_audit(self, record: Record) -> None:
        """The audit line of a call, written now (durable mode, DO_NOT_TRACK)."""
        sink = self.audit_now
        view = self.privacy.view(record, AUDIT) if sink is not None else None
        if sink is None or view is None:
            return
        try:
            sink.send(sink.encode(view), 0.0)
        except Exception as exc:  # a lost audit line is reported every time
            assert isinstance(record, CallRecord)
            logger.error(
                "pipeclient: the audit line of request %s could not be written (%s)",
                "(an id the caller chose)" if record.request_id_supplied else record.request_id,
                type(exc).__name__,
            )

    def write_audits(self, records: list[Record]) -> None:
        for record in records:
            self.write_audit(record)

    def flush(self, timeout: float | None = None) -> FlushReport | None:
        return self.exporter.flush(timeout) if self.exporter is not None else None

    def close(self) -> FlushReport | None:
        if self.audit_now is not None:
            self.audit_now.shutdown(0.0)
        return self.exporter.close() if self.exporter is not None else None

    def release(self) -> None:
        if self.exporter is not None:
            self.exporter.release()

    def counts(self) -> dict[str, int]:
        return self.privacy.counts()
