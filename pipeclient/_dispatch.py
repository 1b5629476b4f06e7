"""The dispatcher: a bounded queue and one background worker that feeds the sinks.

The caller only enqueues (`submit` never waits: a full queue drops and counts). The
worker takes records in batches, runs the privacy step, and hands each sink its view.
`flush` and `close` wait against a deadline and report what was sent and what was not;
drops are reported once through logging. The worker is a daemon thread started on first
use and started again after a fork (the pid is checked), so exit never hangs on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ._privacy import PrivacyStep
from ._record import CallRecord, TraceRecord
from ._sinks.base import Payload, Sink

__all__ = ["CAPTURE", "Dispatcher", "FlushReport"]

logger = logging.getLogger("pipeclient")

_BATCH = 512
_STOP = object()

# Set by pipeclient.testing.capture_telemetry(): payloads are recorded, never sent.
CAPTURE: ContextVar[dict[str, list[Payload]] | None] = ContextVar(
    "pipeclient_capture", default=None
)


@dataclass
class FlushReport:
    """What happened to the records handed to the dispatcher so far."""

    submitted: int = 0
    dropped: int = 0  # the queue was full
    pending: int = 0  # still queued or in flight when the deadline passed
    sent: dict[str, int] = field(default_factory=dict)  # per sink: records delivered
    failed: dict[str, int] = field(default_factory=dict)  # per sink: records whose send failed

    @property
    def complete(self) -> bool:
        return self.pending == 0 and self.dropped == 0 and not any(self.failed.values())


class Dispatcher:
    def __init__(
        self,
        sinks: Sequence[Sink],
        privacy: PrivacyStep,
        *,
        max_queue: int,
        flush_timeout: float,
        capture: dict[str, list[Payload]] | None = None,
    ) -> None:
        self.sinks = tuple(sinks)
        self.privacy = privacy
        self.flush_timeout = flush_timeout
        self._max_queue = max_queue
        self._capture = capture
        self._report = FlushReport(
            sent={sink.name: 0 for sink in self.sinks},
            failed={sink.name: 0 for sink in self.sinks},
        )
        self._warned: set[str] = set()
        self._closed = False
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue[Any] = queue.Queue(self._max_queue)
        self._thread: threading.Thread | None = None

    # -- the caller's side: never blocks -------------------------------------------------

    def submit(self, record: CallRecord | TraceRecord) -> bool:
        if self._closed:
            return False
        self._report.submitted += 1
        if self._capture is not None:
            self._process([record])
            return True
        if self._pid != os.getpid():  # forked: the parent's queue and worker are not ours
            with self._lock:
                if self._pid != os.getpid():
                    self._reset()
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._report.dropped += 1
            self._warn_once(
                "dropped",
                "telemetry queue full (export.max_queue = %d): records are being dropped",
                self._max_queue,
            )
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="pipeclient-telemetry", daemon=True
                )
                thread.start()
                self._thread = thread

    # -- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        work = self._queue
        while True:
            item = work.get()
            batch = [item]
            while len(batch) < _BATCH:
                try:
                    batch.append(work.get_nowait())
                except queue.Empty:
                    break
            records = [entry for entry in batch if entry is not _STOP]
            try:
                if records:
                    self._process(records)
            finally:
                for _ in batch:
                    work.task_done()
            if len(records) < len(batch):
                return

    def _process(self, records: Sequence[CallRecord | TraceRecord]) -> None:
        privacy = self.privacy
        content_views: dict[int, CallRecord | TraceRecord] = {}
        metadata_views: dict[int, CallRecord | TraceRecord] = {}
        for sink in self.sinks:
            payloads: list[Payload] = []
            count = 0
            try:
                for index, record in enumerate(records):
                    if isinstance(record, CallRecord) and record.no_log and sink.custom:
                        continue
                    views = content_views if sink.receives_content else metadata_views
                    view = views.get(index)
                    if view is None:
                        view = (
                            privacy.with_content(record)
                            if sink.receives_content
                            else privacy.metadata_only(record)
                        )
                        views[index] = view
                    payloads += sink.encode(view)
                    count += 1
                if not payloads:
                    continue
                if self._capture is not None:
                    self._capture.setdefault(sink.name, []).extend(payloads)
                else:
                    sink.send(payloads, self.flush_timeout)
                self._report.sent[sink.name] += count
            except Exception as exc:
                self._report.failed[sink.name] += count
                # The class name only: an SDK's message may quote what it tried to send.
                self._warn_once(
                    sink.name,
                    "telemetry to %s failed (%s); records are counted as failed",
                    sink.name,
                    type(exc).__name__,
                )

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("pipeclient: " + message, *args)

    # -- flush and close: bounded by a deadline --------------------------------------------

    def flush(self, timeout: float | None = None) -> FlushReport:
        """Wait until every queued record was handed to its sinks, or the deadline passed."""
        deadline = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        self._wait_idle(deadline)
        for sink in self.sinks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                sink.force_flush(remaining)
            except Exception as exc:
                self._warn_once(
                    sink.name + ".flush",
                    "flushing telemetry to %s failed (%s)",
                    sink.name,
                    type(exc).__name__,
                )
        return self.report()

    def _wait_idle(self, deadline: float) -> None:
        if self._thread is None or self._pid != os.getpid():
            return
        work = self._queue
        with work.all_tasks_done:
            while work.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                work.all_tasks_done.wait(remaining)

    def report(self) -> FlushReport:
        report = self._report
        pending = self._queue.unfinished_tasks if self._thread is not None else 0
        return FlushReport(
            submitted=report.submitted,
            dropped=report.dropped,
            pending=pending,
            sent=dict(report.sent),
            failed=dict(report.failed),
        )

    def close(self, timeout: float | None = None) -> FlushReport:
        """Flush, stop the worker and the sinks, all within one deadline. Idempotent."""
        if self._closed:
            return self.report()
        budget = self.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        report = self.flush(budget)
        self._closed = True
        if self._thread is not None and self._pid == os.getpid():
            with contextlib.suppress(queue.Full):  # a full queue: the worker is a daemon
                self._queue.put_nowait(_STOP)
        for sink in self.sinks:
            try:
                sink.shutdown(max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                self._warn_once(
                    sink.name + ".shutdown",
                    "closing telemetry to %s failed (%s)",
                    sink.name,
                    type(exc).__name__,
                )
        if report.pending or report.dropped or any(report.failed.values()):
            logger.warning(
                "pipeclient: telemetry closed with %d records dropped (queue full), %d not "
                "sent before the %.1f s deadline, failures per destination: %s",
                report.dropped,
                report.pending,
                budget,
                {name: n for name, n in report.failed.items() if n} or "none",
            )
        return report
