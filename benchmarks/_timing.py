"""Per-operation timing shared by the small cost benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_and_best_us(
    run: Callable[[int], object], n: int, rounds: int = 5
) -> tuple[float, float]:
    """(median, best) µs per operation over `rounds` runs of `run(n)`."""
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(n)
        timings.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(timings), min(timings)
