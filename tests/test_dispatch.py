"""The dispatcher's promises: never blocks the caller, bounded, honest, fork-safe.

These tests use a small in-process sink to control timing exactly; the real SDK sinks
against real loopback servers are in tests/test_telemetry_*.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import pipeclient
from pipeclient._cli.preview import sample_call
from pipeclient._telemetry import slices
from pipeclient._telemetry.dispatch import SEND_TIMEOUT_S, Dispatcher
from pipeclient._telemetry.fanout import Fanout, Route
from pipeclient._telemetry.privacy import Audience, PrivacyStep
from pipeclient._telemetry.record import CallRecord, ErrorInfo, TraceRecord
from pipeclient._telemetry.sink import ExportError, Payload, Sink
from pipeclient._telemetry.slices import SLICE_RECORDS
from pipeclient.config import PrivacyConfig
from pipeclient.testing import MockBackend

from .conftest import wait_child, wait_until

CANARY = "CANARY-d41d8cd9"


class RecordingSink(Sink):
    def __init__(self, name: str, *, content: bool = False, custom: bool = True) -> None:
        self.name = name
        self.audience = Audience(content=content, custom=custom)
        self.sent: list[Payload] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False
        self.shut = False

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        return [{"record": record}]

    def send(self, payloads: Sequence[Payload], timeout: float) -> None:
        self.gate.wait()
        if self.fail:
            raise ConnectionError("down")
        self.sent.extend(payloads)

    def shutdown(self, timeout: float) -> None:
        self.shut = True


def record(**changes: object) -> CallRecord:
    base = dataclasses.replace(
        sample_call(),
        input={"messages": [{"role": "user", "content": f"hi {CANARY}"}], "tools": None},
        output=[{"role": "assistant", "content": f"hello {CANARY}"}],
        error=ErrorInfo("RateLimitError", 429, f"slow down {CANARY}"),
        outcome="error",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def dispatcher(
    *sinks: Sink, max_queue: int = 100, flush: float = 2.0, privacy: PrivacyConfig | None = None
) -> Dispatcher:
    routes = [Route(sink, getattr(sink, "audience", Audience())) for sink in sinks]
    fanout = Fanout(routes, PrivacyStep(privacy or PrivacyConfig()))
    return Dispatcher(fanout, max_queue=max_queue, flush_timeout=flush)


def test_at_close_batches_a_sink_can_keep_are_kept_not_lost() -> None:
    class KeepingSink(RecordingSink):
        def __init__(self) -> None:
            super().__init__("keeping")
            self.kept: list[Any] = []

        def keep(self, payloads: Sequence[Any]) -> bool:
            self.kept.extend(payloads)
            return True

        def send(self, payloads: Sequence[Payload], timeout: float) -> None:
            sending.set()
            super().send(payloads, timeout)

    sending = threading.Event()

    keeping, plain = KeepingSink(), RecordingSink("plain")
    keeping.gate.clear()  # both destinations stuck: their lanes fill up
    plain.gate.clear()
    d = dispatcher(keeping, plain, flush=0.3)
    d.submit(record(request_id="first"))
    assert sending.wait(5)  # the first batch is out (blocked in send)
    for index in range(3):
        d.submit(record(request_id=f"later-{index}"))
    report = d.close()
    keeping.gate.set()
    plain.gate.set()
    kept = sorted(payload["record"].request_id for payload in keeping.kept)
    assert kept == ["later-0", "later-1", "later-2"]  # waiting in the lane: kept
    assert report.pending >= 3  # the plain sink's could not be kept: reported pending


def test_each_sink_gets_only_its_view() -> None:
    metadata, content = RecordingSink("meta"), RecordingSink("content", content=True)
    work = dispatcher(metadata, content, privacy=PrivacyConfig(content_max_length=8))
    work.submit(record())
    report = work.close()
    assert report.complete and report.sent == {"meta": 1, "content": 1}
    seen_by_meta = metadata.sent[0]["record"]
    assert seen_by_meta.input is None and seen_by_meta.output is None
    assert seen_by_meta.error.message is None and seen_by_meta.error.code == 429
    assert CANARY not in repr(seen_by_meta)
    seen_by_content = content.sent[0]["record"]
    assert seen_by_content.input["messages"][0]["content"] == "hi CANAR…[truncated]"
    assert seen_by_content.error.message == "slow dow…[truncated]"


def test_no_log_records_reach_no_custom_sink() -> None:
    custom, billing = RecordingSink("custom"), RecordingSink("billing", custom=False)
    work = dispatcher(custom, billing)
    work.submit(record(no_log=True))
    work.close()
    assert custom.sent == [] and len(billing.sent) == 1


def test_submit_never_blocks_and_a_full_queue_drops_and_counts() -> None:
    stuck = RecordingSink("stuck")
    stuck.gate.clear()
    work = dispatcher(stuck, max_queue=10, flush=0.2)
    accepted = sum(work.submit(record()) for _ in range(100))
    # The queue plus what the worker took; the rest is dropped.
    assert 10 <= accepted < 100
    report = work.close(timeout=0.2)
    # The stuck destination's lane holds at most max_queue records too: what the worker
    # hands it beyond that is dropped as well, and counted.
    assert 100 - accepted <= report.dropped < 100
    assert report.submitted == 100 and report.pending > 0 and not report.complete
    stuck.gate.set()


def test_flush_and_close_honour_their_deadline_with_a_hanging_sink(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hanging = RecordingSink("hanging")
    hanging.gate.clear()
    work = dispatcher(hanging, flush=0.3)
    work.submit(record())
    flushed = work.flush(timeout=0.1)
    assert flushed.pending == 1
    closed = work.close()
    assert closed.pending == 1 and hanging.shut
    assert "not sent before the 0.3 s deadline" in caplog.text
    assert CANARY not in caplog.text
    hanging.gate.set()


def test_failures_are_counted_and_logged_once_without_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, fine = RecordingSink("broken"), RecordingSink("fine")
    broken.fail = True
    work = dispatcher(broken, fine)
    for _ in range(5):
        work.submit(record())
        work.flush()
    report = work.close()
    assert report.failed["broken"] == 5 and report.sent["fine"] == 5
    assert caplog.text.count("telemetry to broken failed (ConnectionError)") == 1
    assert CANARY not in caplog.text


def test_closed_dispatcher_accepts_nothing() -> None:
    sink = RecordingSink("s")
    work = dispatcher(sink)
    work.close()
    assert work.submit(record()) is False and work.close().submitted == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_worker(tmp_path: Path) -> None:
    out = tmp_path / "child.txt"

    class FileSink(RecordingSink):
        def send(self, payloads: Sequence[Payload], timeout: float) -> None:
            with out.open("a") as handle:
                handle.write(f"{os.getpid()} {len(payloads)}\n")

    work = dispatcher(FileSink("file"))
    work.submit(record())
    work.flush()
    parent_lines = out.read_text().splitlines()
    pid = os.fork()
    if pid == 0:  # the child: its first submit starts a fresh worker
        try:
            work.submit(record())
            report = work.flush(timeout=2)
            os._exit(0 if report.pending == 0 else 3)
        except BaseException:
            os._exit(4)
    status = wait_child(pid, seconds=20)
    assert status == 0
    lines = out.read_text().splitlines()
    assert len(lines) == len(parent_lines) + 1 and lines[-1].startswith(f"{pid} ")
    work.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_another_thread_held_the_lock_does_not_hang() -> None:
    work = dispatcher(RecordingSink("fine"))
    work.submit(record())
    work.flush()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # a lane counting a send at the moment of the fork
        with work._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: the lock's holder does not exist here
        try:
            work.submit(record())
            report = work.flush(timeout=2)
            os._exit(0 if report.submitted == 1 and report.pending == 0 else 3)
        except BaseException:
            os._exit(4)
    release.set()
    holder.join(5)
    assert wait_child(pid, seconds=20) == 0
    work.close()


def test_do_not_track_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    telemetry = {"otlp": [{"name": "c", "enabled": True, "endpoint": "http://127.0.0.1:9"}]}
    before = {thread.name for thread in threading.enumerate()}
    client = pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert client._telemetry is None and client.flush() is None
    after = {thread.name for thread in threading.enumerate()}
    assert "pipeclient-telemetry" not in after - before


class FlakySink(RecordingSink):
    """Fails its first sends with a transient error, then delivers; says where it loaded."""

    def __init__(self, name: str, failures: int, *, transient: bool = True) -> None:
        super().__init__(name)
        self.failures = failures
        self.transient = transient
        self.timeouts: list[float] = []
        self.prepared_on: list[str] = []

    def prepare(self) -> None:
        self.prepared_on.append(threading.current_thread().name)

    def send(self, payloads: Sequence[Payload], timeout: float) -> None:
        self.timeouts.append(timeout)
        if self.failures:
            self.failures -= 1
            raise ExportError("collector unavailable", transient=self.transient)
        super().send(payloads, timeout)


def test_a_transient_failure_is_retried_and_the_batch_delivered() -> None:
    flaky = FlakySink("flaky", failures=2)
    work = dispatcher(flaky, flush=0.5)
    work.submit(record())
    report = work.flush(10.0)
    assert report.sent == {"flaky": 1} and report.failed == {"flaky": 0}
    assert len(flaky.sent) == 1 and len(flaky.timeouts) == 3
    # The send's own limit is not the flush deadline (a slow first send still delivers).
    assert min(flaky.timeouts) >= SEND_TIMEOUT_S
    # The SDK is loaded on the destination's own thread, before its first send.
    assert flaky.prepared_on == ["pipeclient-flaky"]
    work.close()


def test_a_permanent_failure_is_not_retried() -> None:
    broken = FlakySink("broken", failures=5, transient=False)
    work = dispatcher(broken)
    work.submit(record())
    report = work.flush(10.0)
    assert report.failed == {"broken": 1} and len(broken.timeouts) == 1
    work.close()


class FussySink(RecordingSink):
    """Refuses to encode one record: the failure of its slice of the batch."""

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if record.request_id == "req-unencodable":
            raise ValueError("cannot encode this one")
        return super().encode(record)


def test_a_record_that_cannot_be_encoded_costs_only_its_slice() -> None:
    fussy, other = FussySink("fussy"), RecordingSink("other")
    work = dispatcher(fussy, other)
    for index in range(40):  # within the worker's linger: one batch, taken in slices
        request_id = "req-unencodable" if index == 21 else f"req-{index}"
        work.submit(record(request_id=request_id))
    report = work.close()
    assert report.sent["other"] == 40 and len(other.sent) == 40
    assert 1 <= report.failed["fussy"] <= SLICE_RECORDS < 40
    assert report.sent["fussy"] == 40 - report.failed["fussy"] == len(fussy.sent)


# -- a burst of calls: the worker stands aside, within bounds ---------------------------


def test_while_records_keep_arriving_the_worker_holds_them_then_catches_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slices, "BURST_GAP_S", 3.0)  # a burst lasts 3 s past its last record
    sink = RecordingSink("s")
    work = dispatcher(sink)
    for index in range(10):
        work.submit(record(request_id=f"req-{index}"))
    time.sleep(0.5)  # well past the worker's 50 ms linger: it would have handed them on
    assert work._in_worker.value == 10 and sink.sent == []
    # No flush: once no record has come for the gap, the worker delivers them all.
    wait_until(lambda: len(sink.sent) == 10, 10, "the held records, without a flush")
    assert sorted(p["record"].request_id for p in sink.sent) == sorted(
        f"req-{index}" for index in range(10)
    )
    assert work.close().complete


def test_a_burst_holds_back_at_most_a_quarter_of_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slices, "BURST_GAP_S", 600.0)  # the burst never ends here
    sink = RecordingSink("s")
    work = dispatcher(sink, max_queue=40)  # 10 records held back at most
    assert work.defer_limit == 10
    for index in range(30):
        work.submit(record(request_id=f"req-{index}"))
    # Records beyond the bound go on while the burst lasts; nothing is dropped.
    wait_until(lambda: work._in_worker.value < 30, 10, "records sent during the burst")
    wait_until(lambda: work._in_worker.value <= 10, 10, "the worker back at its bound")
    report = work.flush(timeout=5.0)  # a flush does not wait for the burst to end
    assert report.complete and report.dropped == 0 and len(sink.sent) == 30
    work.close()


def test_a_burst_holds_records_back_for_at_most_defer_max_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slices, "BURST_GAP_S", 600.0)
    monkeypatch.setattr(slices, "DEFER_MAX_S", 0.2)
    sink = RecordingSink("s")
    work = dispatcher(sink)
    for _ in range(3):
        work.submit(record())
    wait_until(
        lambda: len(sink.sent) == 3, 10, "len(sink.sent) == 3"
    )  # no flush: the age bound sends them
    assert work.close().complete


def test_flush_and_close_do_not_wait_for_a_burst_to_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slices, "BURST_GAP_S", 600.0)
    sink, other = RecordingSink("s"), RecordingSink("other")
    work = dispatcher(sink, other)
    for _ in range(5):
        work.submit(record())
    assert work.flush(timeout=5.0).complete and len(sink.sent) == 5
    for _ in range(4):
        work.submit(record())
    report = work.close(timeout=5.0)
    assert report.complete and report.sent == {"s": 9, "other": 9}


def test_with_a_prompt_destination_nothing_is_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # The budget's ledger must see each call's cost before the next call's check.
    monkeypatch.setattr(slices, "BURST_GAP_S", 600.0)
    ledger, other = RecordingSink("ledger"), RecordingSink("other")
    ledger.prompt = True
    work = dispatcher(ledger, other)
    assert work.defer_limit == 0
    for _ in range(3):
        work.submit(record())
    wait_until(
        lambda: len(ledger.sent) == 3 and len(other.sent) == 3,
        10,
        "len(ledger.sent) == 3 and len(other.sent) == 3",
    )  # no flush
    assert work.close().complete


def test_a_long_burst_is_watched_ever_less_often_but_never_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fake clock: each wait lets that much time pass, records arriving at 2 per ms.
    state = {"now": 100.0, "held": 0.0}
    waits: list[float] = []
    monkeypatch.setattr(slices, "_clock", lambda: state["now"])

    class Passing(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            assert timeout is not None
            waits.append(timeout)
            state["now"] += timeout
            state["held"] += 2000 * timeout
            burst.last = state["now"]  # the burst goes on
            return False

    burst = slices.Burst(Passing())
    burst.last = state["now"]
    burst.wait_out(state["now"], lambda: int(state["held"]), 1000)
    # Looked at after 5, 10, 20, 40, 80, 80... ms, then sooner as the bound comes near,
    # and left as soon as it was reached: at most one short wait's records past it.
    assert waits[:6] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.08])
    assert max(waits) == pytest.approx(slices.BURST_POLL_MAX_S)
    peak = waits.index(max(waits))
    tail = waits[peak:]
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(tail))
    assert waits[-1] < slices.BURST_POLL_MAX_S / 10
    assert 1000 <= state["held"] <= 1000 + 2000 * 0.0005 + 1
    assert state["now"] - 100.0 < slices.DEFER_MAX_S  # the bound, not the deadline, ended it
