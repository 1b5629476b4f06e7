"""Work in slices: a background thread gives the interpreter back every fraction of a
millisecond.

A thread that holds the GIL through a long stretch of Python (a batch of records through
the privacy step and five encoders) makes a caller whose answer has arrived wait for the
interpreter's switch interval (5 ms) before it may run again, several times per call: the
calls' tail latency. The worker checks its slice after each small piece of work, and once
it has held the interpreter for `HOLD_S` it lets go of it (`time.sleep(0)`), so that a
waiting thread takes it within microseconds. A library never changes
`sys.setswitchinterval`: that is the application's setting.
"""

from __future__ import annotations

import time

__all__ = ["HOLD_S", "SLICE_RECORDS", "Slices"]

# How long the worker runs before it lets another thread in, and how many records it takes
# through the fan-out at a time (a record costs tens of microseconds per destination).
HOLD_S = 0.0002
SLICE_RECORDS = 4

_clock = time.perf_counter


class Slices:
    """The current slice of one thread's work."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = _clock()

    def check(self) -> None:
        """After a piece of work: let other threads run if this slice is used up."""
        if _clock() - self._since >= HOLD_S:
            time.sleep(0)  # releases the GIL; a thread waiting for it takes it now
            self._since = _clock()
