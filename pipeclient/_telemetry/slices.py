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

__all__ = ["BURST_GAP_S", "DEFER_MAX_S", "HOLD_S", "SLICE_RECORDS", "Burst", "Slices"]

# How long the worker runs before it lets another thread in, and how many records it takes
# through the fan-out at a time (a record costs tens of microseconds per destination).
HOLD_S = 0.0002
SLICE_RECORDS = 4
# Records arriving less than this apart are a burst of calls; the worker waits it out, but
# never holds back its work longer than `DEFER_MAX_S` (from the first record it holds) or
# past the dispatcher's bounds on records and bytes.
BURST_GAP_S = 0.005
DEFER_MAX_S = 1.0

_clock = time.perf_counter


class Burst:
    """When the application last handed over a record, and whether the worker should wait."""

    __slots__ = ("_hurry", "last")

    def __init__(self, hurry: threading.Event) -> None:
        self.last = -1e9  # perf_counter of the last record submitted
        self._hurry = hurry  # set by flush and close: nobody waits

    def wait_out(self, since: float, enough: Callable[[], bool]) -> None:
        """Wait while records keep arriving, unless somebody waits for them, they have
        waited `DEFER_MAX_S` since `since`, or `enough` of them are held back."""
        hurry = self._hurry
        while not hurry.is_set() and not enough():
            now = _clock()
            # Until the burst is over if no record arrives meanwhile, or the deadline.
            wait = min(self.last + BURST_GAP_S, since + DEFER_MAX_S) - now
            if wait <= 0:
                return
            hurry.wait(wait)


class Slices:
    """The current slice of one thread's work."""

    __slots__ = ("_burst", "_enough", "_held_since", "_since")

    def __init__(
        self,
        burst: Burst | None = None,
        held_since: float = 0.0,
        enough: Callable[[], bool] = bool,
    ) -> None:
        self._since = _clock()
        self._burst = burst
        self._held_since = held_since
        self._enough = enough

    def check(self) -> None:
        """After a piece of work: let other threads run if this slice is used up."""
        if _clock() - self._since >= HOLD_S:
            time.sleep(0)  # releases the GIL; a thread waiting for it takes it now
            if self._burst is not None:
                self._burst.wait_out(self._held_since, self._enough)
            self._since = _clock()
