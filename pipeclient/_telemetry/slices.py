"""Work in slices: a background thread gives the interpreter back every fraction of a
millisecond, and stands aside while the application is in a burst of calls.

A thread that holds the GIL through a long stretch of Python (a batch of records through
the privacy step and five encoders) makes a caller whose answer has arrived wait for the
interpreter's switch interval (5 ms) before it may run again, several times per call: the
calls' tail latency. The worker checks its slice after each small piece of work, and once
it has held the interpreter for `HOLD_S` it lets go of it (`time.sleep(0)`), so that a
waiting thread takes it within microseconds. A library never changes
`sys.setswitchinterval`: that is the application's setting.

Slices bound how long a caller waits, not how much: while the application makes calls
back to back (a batch job, a loop over a dataset), every microsecond the worker holds the
interpreter is one its calls wait for. So between slices the worker also asks `Burst`
whether records are still arriving within `BURST_GAP_S` of each other; while they are, it
waits (up to bounds: how many records, how many bytes, how long) and catches up in the
gaps: the time the application waits on the network, the end of the burst, a `flush`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = [
    "BURST_GAP_S",
    "BURST_POLL_MAX_S",
    "DEFER_MAX_S",
    "HOLD_S",
    "SLICE_RECORDS",
    "Burst",
    "Slices",
]

# How long the worker runs before it lets another thread in, and how many records it takes
# through the fan-out at a time (a record costs tens of microseconds per destination).
HOLD_S = 0.0002
SLICE_RECORDS = 4
# Records arriving less than this apart are a burst of calls; the worker waits it out, but
# never holds back its work longer than `DEFER_MAX_S` (from the first record it holds) or
# past the dispatcher's bounds on records and bytes.
BURST_GAP_S = 0.005
DEFER_MAX_S = 1.0
# While a burst lasts, how seldom at most the waiting thread looks again.
BURST_POLL_MAX_S = 0.08

_clock = time.perf_counter


class Burst:
    """When the application last handed over a record, and whether the worker should wait."""

    __slots__ = ("_hurry", "last")

    def __init__(self, hurry: threading.Event) -> None:
        self.last = -1e9  # perf_counter of the last record submitted
        self._hurry = hurry  # set by flush and close: nobody waits

    def wait_out(
        self,
        since: float,
        held: Callable[[], int],
        limit: int,
        over: Callable[[], bool] = lambda: False,
        pause: float = BURST_GAP_S,
    ) -> None:
        """Wait while records keep arriving, unless somebody waits for them, they have
        waited `DEFER_MAX_S` since `since`, `held()` reached `limit` or `over()` says
        too much is held back otherwise.

        The longer the burst, the less often the waiting thread wakes to look (a wake
        takes the interpreter from the calls), but always before the records would reach
        `limit` at the rate they have been arriving. `pause`: the first wait while records
        keep coming (a thread that just lingered for more records: as long again)."""
        hurry = self._hurry
        count, at = held(), _clock()
        while not hurry.is_set():
            now, now_held = _clock(), held()
            if now_held >= limit or over():
                return
            deadline = since + DEFER_MAX_S
            if min(self.last + BURST_GAP_S, deadline) <= now:
                return
            wait = max(self.last + BURST_GAP_S - now, pause)
            if now_held > count and now > at:  # at this rate, half the way to the limit
                wait = min(wait, (limit - now_held) * (now - at) / (now_held - count) / 2)
            count, at = now_held, now
            pause = max(pause, min(pause * 2, BURST_POLL_MAX_S))
            hurry.wait(max(min(wait, deadline - now), 0.0005))


class Slices:
    """The current slice of one thread's work."""

    __slots__ = ("_burst", "_held", "_held_since", "_limit", "_over", "_since")

    def __init__(
        self,
        burst: Burst | None = None,
        held_since: float = 0.0,
        held: Callable[[], int] = int,
        limit: int = 0,
        over: Callable[[], bool] = bool,
    ) -> None:
        self._since = _clock()
        self._burst = burst
        self._held_since = held_since
        self._held, self._limit, self._over = held, limit, over

    def check(self) -> None:
        """After a piece of work: let other threads run if this slice is used up."""
        if _clock() - self._since >= HOLD_S:
            time.sleep(0)  # releases the GIL; a thread waiting for it takes it now
            if self._burst is not None:
                self._burst.wait_out(self._held_since, self._held, self._limit, self._over)
            self._since = _clock()
