"""The dispatcher: the caller enqueues, one background worker prepares, one lane per
destination sends.

`submit` never waits: a full queue (or the byte budget of content waiting) drops and
counts. The worker takes records in batches, runs the privacy step and encodes each
destination's view; each destination then has its own lane, a bounded queue and a daemon
sender thread, so a destination that hangs delays only itself: never a call, never the
other destinations, never the gateway's billing stream. `flush` and `close` wait against
one deadline and report what was sent and what was not; drops and failures are reported
once through logging. Threads start on first use and again after a fork.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from .fanout import Fanout
from .privacy import PrivacyStep, Record
from .report import FlushReport
from .sink import Sink
from .slices import BURST_GAP_S, SLICE_RECORDS, Burst, Slices

__all__ = ["Dispatcher", "FlushReport"]

logger = logging.getLogger("pipeclient")

_BATCH = 512
_STOP = object()
# How long a lane waits for more records before a send, and the worker before handing
# records on: one request per destination per interval instead of one per call. They
# sleep rather than wake for each record that arrives meanwhile; `flush` and `close` end
# the wait.
LANE_LINGER_S = 0.5
WORKER_LINGER_S = 0.05
# One send's own limit. Not the flush deadline: `flush` and `close` stop waiting at theirs,
# while a send that needs longer (a slow collector, a large batch) may still deliver.
SEND_TIMEOUT_S = 10.0
# A send that failed for a transient reason is tried again after these pauses.
RETRY_DELAYS_S = (0.25, 1.0)
# Content waiting in the queue is bounded in bytes too (large prompts), not only in count.
MAX_QUEUED_CONTENT_BYTES = 64 * 1024 * 1024
# While the application is in a burst of calls the worker holds back its work (`slices`),
# but never more than this many records (nor a quarter of `max_queue`) or bytes of content.
DEFER_MAX_RECORDS = 1024
DEFER_MAX_CONTENT_BYTES = 16 * 1024 * 1024


class _Counter:
    """A thread-safe count, with a condition to wait for it to reach zero."""

    def __init__(self) -> None:
        self.value = 0
        self.changed = threading.Condition()

    def add(self, amount: int) -> None:
        with self.changed:
            self.value += amount
            if self.value == 0:
                self.changed.notify_all()

    def wait_zero(self, deadline: float) -> bool:
        with self.changed:
            while self.value:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True


class _Hurry:
    """Set while somebody waits for the queues to empty (`flush`, `close`): then nobody
    lingers. Threads that linger wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._waiting = 0
        self._for_good = False

    def begin(self) -> None:
        with self._lock:
            self._waiting += 1
            self.event.set()

    def end(self) -> None:
        with self._lock:
            self._waiting -= 1
            if not self._waiting and not self._for_good:
                self.event.clear()

    def for_good(self) -> None:
        with self._lock:
            self._for_good = True
            self.event.set()

    def linger(self, seconds: float) -> None:
        self.event.wait(seconds)


class _Lane:
    """One destination's sender: payload batches in a bounded queue, one daemon thread."""

    def __init__(self, sink: Sink, owner: Dispatcher) -> None:
        self.sink = sink
        self.owner = owner
        self.queue: queue.Queue[Any] = queue.Queue()
        self.queued = _Counter()  # records waiting or being sent
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, payloads: list[Any], count: int) -> None:
        owner = self.owner
        if self.queued.value + count > owner.max_queue:
            owner.count("dropped", count)
            owner.warn_once(
                f"{self.sink.name}.full",
                "telemetry to %s is not keeping up: records are being dropped",
                self.sink.name,
            )
            return
        self.queued.add(count)
        self.start()
        self.queue.put((payloads, count))

    def start(self) -> None:
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._run, name=f"pipeclient-{self.sink.name}", daemon=True
                    )
                    self.thread.start()

    def _run(self) -> None:
        owner, sink = self.owner, self.sink
        try:  # the SDK's import happens here, while the first records linger
            sink.prepare()
        except Exception as exc:
            owner.warn_once(
                sink.name + ".prepare",
                "telemetry to %s could not load what it needs (%s)",
                sink.name,
                type(exc).__name__,
            )
        stopping = False
        while not stopping:
            item = self.queue.get()
            if item is _STOP:
                return
            held_since = _clock()
            # Records arriving within the linger go out together, in one send; and not
            # while the application's calls burst (`slices`).
            linger = LANE_LINGER_S if sink.linger_s is None else sink.linger_s
            if linger and self.queued.value < _BATCH * 4:
                owner.hurry.linger(linger)
                owner.burst.wait_out(held_since, self._held, owner.defer_limit, pause=linger)
            payloads, count = list(item[0]), item[1]
            while len(payloads) < _BATCH * 4:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                payloads += more[0]
                count += more[1]
            try:
                self._deliver(payloads, count)
            finally:
                self.queued.add(-count)

    def _deliver(self, payloads: list[Any], count: int) -> None:
        owner, sink = self.owner, self.sink
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            try:
                sink.send(payloads, owner.send_timeout)
            except Exception as exc:
                pause = _retry_pause(exc, attempt, owner.send_timeout)
                if pause is not None and owner._accepting and sink.retryable(exc):
                    time.sleep(pause)
                    continue
                owner.count_failed(sink.name, count)
                # The class name only: an SDK's message may quote what it tried to send.
                owner.warn_once(
                    sink.name,
                    "telemetry to %s failed (%s); records are counted as failed",
                    sink.name,
                    type(exc).__name__,
                )
                return
            owner.count_sent(sink.name, count)
            return

    def _held(self) -> int:
        return self.queued.value

    def stop(self) -> None:
        if self.thread is not None:
            self.queue.put(_STOP)


class Dispatcher:
    def __init__(self, fanout: Fanout, *, max_queue: int, flush_timeout: float) -> None:
        self.fanout = fanout
        self.sinks: tuple[Sink, ...] = tuple(route.sink for route in fanout.routes)
        self.privacy: PrivacyStep = fanout.privacy
        self.flush_timeout = flush_timeout
        self.send_timeout = max(flush_timeout, SEND_TIMEOUT_S)
        self.max_queue = max_queue
        # How many records may be held back while calls burst; none when a destination
        # needs each record at once (the budget's ledger).
        prompt = any(sink.prompt for sink in self.sinks)
        self.defer_limit = 0 if prompt else max(1, min(DEFER_MAX_RECORDS, max_queue // 4))
        self._accepting = True
        self._closed = False
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._reset()
        _LIVE.add(self)
        _register_exit_hook()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self.hurry = _Hurry()
        self.burst = Burst(self.hurry.event)
        self._queue: queue.Queue[Any] = queue.Queue(self.max_queue)
        self._thread: threading.Thread | None = None
        self._in_worker = _Counter()  # records accepted and not yet handed to the lanes
        self._content_bytes = 0
        self._lanes = {sink.name: _Lane(sink, self) for sink in self.sinks}
        self._report = FlushReport(
            sent={sink.name: 0 for sink in self.sinks},
            failed={sink.name: 0 for sink in self.sinks},
        )

    # -- counting ------------------------------------------------------------------------

    def count(self, what: str, amount: int) -> None:
        with self._lock:
            setattr(self._report, what, getattr(self._report, what) + amount)

    def count_sent(self, name: str, amount: int) -> None:
        with self._lock:
            self._report.sent[name] += amount

    def count_failed(self, name: str, amount: int) -> None:
        with self._lock:
            self._report.failed[name] += amount

    def warn_once(self, key: str, message: str, *args: Any) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning("pipeclient: " + message, *args)

    # -- the caller's side: never blocks -------------------------------------------------

    def submit(self, record: Record) -> bool:
        if not self._accepting:
            return False
        if self._pid != os.getpid():  # forked: the parent's queue, threads and counts
            self._after_fork()
        self.count("submitted", 1)
        self.burst.last = _clock()
        size = _content_size(record)
        if size and self._content_bytes + size > MAX_QUEUED_CONTENT_BYTES:
            return self._drop(
                "content",
                "telemetry content waiting to be sent is over %d MiB: records are being dropped",
                MAX_QUEUED_CONTENT_BYTES >> 20,
            )
        if self._thread is None:
            self._start()
        self._in_worker.add(1)
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._in_worker.add(-1)
            return self._drop(
                "queue",
                "telemetry queue full (export.max_queue = %d): records are being dropped",
                self.max_queue,
            )
        if size:
            with self._lock:
                self._content_bytes += size
        return True

    def lost(self, exc: Exception) -> None:
        """A record that could not be queued (a bug, never the caller's problem)."""
        self.count("dropped", 1)
        self.warn_once("submit", "telemetry could not be queued (%s)", type(exc).__name__)

    def _drop(self, key: str, message: str, *args: Any) -> bool:
        self.count("dropped", 1)
        self.warn_once(key, message, *args)
        return False

    def _after_fork(self) -> None:
        # Not self._lock: another thread of the parent may have held it at the fork, and
        # in the child nobody would ever release it. The guard is only taken here, in a
        # child, so the parent cannot have held it.
        with _FORK_GUARD:
            if self._pid == os.getpid():
                return
            self._lock = threading.Lock()
            self._warned = set()
            self._reset()
        self.privacy.after_fork()
        for sink in self.sinks:
            sink.after_fork()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name="pipeclient-telemetry", daemon=True
                )
                thread.start()
                self._thread = thread
        for lane in self._lanes.values():  # each loads its SDK while records linger
            lane.start()

    # -- the worker: privacy, encoding, hand-off to the lanes -----------------------------

    def _run(self) -> None:
        work = self._queue
        size = min(_BATCH, self.max_queue)  # a lane takes at most max_queue records
        while True:
            batch = [work.get()]
            held_since = _clock()
            lingered = batch[0] is not _STOP and work.qsize() < size
            if lingered:
                self.hurry.linger(WORKER_LINGER_S)
            if batch[0] is not _STOP:  # before taking the rest: a wake mid-burst stays short
                self.burst.wait_out(
                    held_since,
                    self._held,
                    self.defer_limit,
                    self._content_held_back,
                    pause=WORKER_LINGER_S if lingered else BURST_GAP_S,
                )
            while len(batch) < size and batch[-1] is not _STOP:
                try:
                    batch.append(work.get_nowait())
                except queue.Empty:
                    break
            records = [entry for entry in batch if entry is not _STOP]
            try:
                if records:
                    self._process(records, held_since)
            finally:
                freed = sum(_content_size(record) for record in records)
                with self._lock:
                    self._content_bytes -= freed
                self._in_worker.add(-len(records))
            if len(records) < len(batch):
                return

    def _held(self) -> int:
        return self._in_worker.value

    def _content_held_back(self) -> bool:
        """Whether the content held back while calls burst has reached its bound."""
        return self._content_bytes >= DEFER_MAX_CONTENT_BYTES

    def _process(self, records: Sequence[Record], held_since: float) -> None:
        # A few records at a time, one destination at a time, the interpreter given back
        # between slices, and no work while calls burst (`slices`): callers never wait out
        # a whole batch's encoding. Each destination's share then goes to its lane at once.
        slices = Slices(
            self.burst, held_since, self._held, self.defer_limit, self._content_held_back
        )
        shares: dict[str, tuple[list[Any], list[int]]] = {}
        for start in range(0, len(records), SLICE_RECORDS):
            for batch in self.fanout.prepare(records[start : start + SLICE_RECORDS], packed=True):
                sink = batch.route.sink
                if batch.error is not None:
                    self.count_failed(sink.name, batch.records)
                    self.warn_once(
                        sink.name + ".encode",
                        "telemetry to %s could not be prepared (%s)",
                        sink.name,
                        type(batch.error).__name__,
                    )
                else:
                    packed, count = shares.setdefault(sink.name, ([], [0]))
                    packed += batch.payloads
                    count[0] += batch.records
                slices.check()
        for name, (packed, count) in shares.items():
            if packed:
                self._lanes[name].put(packed, count[0])
            elif count[0]:  # nothing for this destination: done
                self.count_sent(name, count[0])

    # -- flush and close: one deadline -----------------------------------------------------

    def flush(self, timeout: float | None = None) -> FlushReport:
        """Wait until queued records were delivered (or failed), or the deadline passed."""
        deadline = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        if self._pid == os.getpid():
            hurry = self.hurry
            hurry.begin()  # nobody lingers while we wait
            try:
                self._in_worker.wait_zero(deadline)
                for lane in self._lanes.values():
                    lane.queued.wait_zero(deadline)
            finally:
                hurry.end()
            for sink in self.sinks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    sink.force_flush(remaining)
                except Exception as exc:
                    self.warn_once(
                        sink.name + ".flush",
                        "flushing telemetry to %s failed (%s)",
                        sink.name,
                        type(exc).__name__,
                    )
        return self.report()

    def report(self) -> FlushReport:
        if self._pid != os.getpid():  # forked: this process's own (empty) account
            self._after_fork()
        with self._lock:
            report = self._report
            lanes = self._lanes.values()
            pending = self._in_worker.value + sum(lane.queued.value for lane in lanes)
            return FlushReport(
                submitted=report.submitted,
                dropped=report.dropped,
                pending=pending,
                sent=dict(report.sent),
                failed=dict(report.failed),
                redactions=self.privacy.counts(),
                unpriced=self.fanout.unpriced,
            )

    def close(self, timeout: float | None = None) -> FlushReport:
        """Flush, then stop the threads and the sinks, all within one deadline. Idempotent."""
        if self._closed:
            return self.report()
        budget = self.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        self._accepting = False
        if self._pid == os.getpid():
            self.hurry.for_good()
        self.flush(budget)
        self._closed = True
        _LIVE.discard(self)
        self._keep_unsent()
        self._stop_threads()
        for sink in self.sinks:
            try:
                sink.shutdown(max(0.0, deadline - time.monotonic()))
            except Exception as exc:
                self.warn_once(
                    sink.name + ".shutdown",
                    "closing telemetry to %s failed (%s)",
                    sink.name,
                    type(exc).__name__,
                )
        report = self.report()
        if report.pending or report.dropped or any(report.failed.values()):
            logger.warning(
                "pipeclient: telemetry closed with %d records dropped, %d not sent before the "
                "%.1f s deadline, failures per destination: %s",
                report.dropped,
                report.pending,
                budget,
                {name: n for name, n in report.failed.items() if n} or "none",
            )
        return report

    def _keep_unsent(self) -> None:
        """Batches still waiting in a lane when the deadline passed: a sink that can keep
        them (the gateway's spool: billing events are never just dropped) does."""
        if self._pid != os.getpid():
            return
        for lane in self._lanes.values():
            waiting: list[Any] = []
            with contextlib.suppress(queue.Empty):
                while True:
                    waiting.append(lane.queue.get_nowait())
            stop = [item for item in waiting if item is _STOP]
            batches = [item for item in waiting if item is not _STOP]
            for payloads, count in batches:
                try:
                    kept = lane.sink.keep(payloads)
                except Exception as exc:
                    kept = False
                    self.warn_once(
                        lane.sink.name + ".keep",
                        "keeping telemetry to %s failed (%s)",
                        lane.sink.name,
                        type(exc).__name__,
                    )
                if kept:
                    lane.queued.add(-count)
                else:
                    lane.queue.put((payloads, count))  # as it was: pending, reported so
            for item in stop:
                lane.queue.put(item)

    def _stop_threads(self) -> None:
        if self._pid != os.getpid():
            return
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # a full queue: the worker is a daemon
                self._queue.put_nowait(_STOP)
        for lane in self._lanes.values():
            lane.stop()

    def release(self) -> None:
        """The client was collected: stop taking records, never block. What is queued is
        still sent by the daemon threads, and flushed at exit within the deadline."""
        self._accepting = False


_clock = time.perf_counter


def _retry_pause(error: Exception, attempt: int, longest: float) -> float | None:
    """How long to wait before trying a failed send again: the next of the pauses, or
    the destination's Retry-After when longer. None: no more tries (the pauses are used
    up, or the destination asks for a wait past one send's limit)."""
    if attempt >= len(RETRY_DELAYS_S):
        return None
    hint = getattr(error, "retry_after", None)
    if hint is None:
        return RETRY_DELAYS_S[attempt]
    return max(RETRY_DELAYS_S[attempt], hint) if hint <= longest else None


def _content_size(record: Record) -> int:
    body = getattr(record, "request_body", None)
    return len(body) if body else 0


# -- exit: every live dispatcher flushed at once, within one deadline -------------------

_LIVE: weakref.WeakSet[Dispatcher] = weakref.WeakSet()
_FORK_GUARD = threading.Lock()
_hook_lock = threading.Lock()
_hooked = False


def _register_exit_hook() -> None:
    global _hooked
    with _hook_lock:
        if not _hooked:
            atexit.register(_close_all_at_exit)
            _hooked = True


def _close_all_at_exit() -> None:
    dispatchers = [d for d in list(_LIVE) if d._pid == os.getpid()]
    if not dispatchers:
        return
    budget = max(d.flush_timeout for d in dispatchers)
    deadline = time.monotonic() + budget + 0.1
    closers = []
    for dispatcher in dispatchers:
        closer = threading.Thread(target=dispatcher.close, args=(budget,), daemon=True)
        try:
            closer.start()
        except RuntimeError:  # no new threads this late: close it here, in turn
            dispatcher.close(max(0.0, deadline - time.monotonic()))
            continue
        closers.append(closer)
    for closer in closers:
        closer.join(max(0.0, deadline - time.monotonic()))
