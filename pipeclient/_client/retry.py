"""Which backend to try next, and how long to wait first. No I/O here."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._exceptions import ConfigError
from .backends import Backend

__all__ = ["BackendPool", "RetryPolicy", "retry_after_seconds", "should_retry_status"]

_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """Every call makes up to `max_retries + 1` rounds; a round tries each backend once.

    A failing backend is left for the next one at once (failover); the same backend is
    tried again only after its `Retry-After` (capped at `max_retry_after`) or a jittered
    exponential backoff. A backend that fails `cooldown_after` calls in a row goes to the
    back of the queue for `cooldown` seconds.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    cooldown_after: int = 3
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_retries", "cooldown_after"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError("must be an integer >= 0", source="RetryPolicy", key=name)
        for name in ("initial_delay", "max_delay", "max_retry_after", "cooldown"):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not 0 <= value < float("inf")
            ):
                raise ConfigError(
                    "must be a number of seconds >= 0", source="RetryPolicy", key=name
                )

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the n-th failure (n >= 1) of one backend."""
        ceiling = min(self.max_delay, self.initial_delay * 2.0 ** (failures - 1))
        return ceiling * (0.5 + rng.random() / 2)


def should_retry_status(status: int, headers: Mapping[str, str]) -> bool:
    hint = headers.get("x-should-retry")
    if hint == "true":
        return True
    if hint == "false":
        return False
    return status in _RETRY_STATUSES or status >= 500


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's wait hint: `retry-after-ms`, `Retry-After` seconds or HTTP date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


class _Health:
    __slots__ = ("cooldown_until", "failures_in_a_row")

    def __init__(self) -> None:
        self.failures_in_a_row = 0
        self.cooldown_until = 0.0


class BackendPool:
    """The client's backends with their health, shared by all its calls."""

    def __init__(self, backends: Sequence[Backend], policy: RetryPolicy) -> None:
        self.backends = tuple(backends)
        self.policy = policy
        self._health = {backend.name: _Health() for backend in self.backends}
        self._lock = threading.Lock()
        self.rng = random.Random()

    def plan(self) -> list[Backend]:
        """The order to try backends in for one call.

        Healthy weighted backends first, in a weighted random order (the first one is a
        weighted choice), then weight-0 standbys, then backends cooling down.
        """
        if len(self.backends) == 1:
            return [self.backends[0]]
        now = time.monotonic()
        rng = self.rng

        def sort_key(backend: Backend) -> tuple[int, float]:
            cooling = self._health[backend.name].cooldown_until > now
            if cooling:
                return (2, -rng.random())
            if backend.weight == 0:
                return (1, -rng.random())
            # Efraimidis-Spirakis: u ** (1 / w) sorted descending is a weighted shuffle.
            return (0, -(rng.random() ** (1.0 / backend.weight)))

        return sorted(self.backends, key=sort_key)

    def succeeded(self, backend: Backend) -> None:
        health = self._health[backend.name]
        if health.failures_in_a_row:
            with self._lock:
                health.failures_in_a_row = 0
                health.cooldown_until = 0.0

    def failed(self, backend: Backend, retry_after: float | None = None) -> None:
        """One call failed on this backend (counted once per call, not per attempt).

        A server's Retry-After also keeps the backend at the back until it has passed.
        """
        health = self._health[backend.name]
        with self._lock:
            health.failures_in_a_row += 1
            now = time.monotonic()
            if health.failures_in_a_row >= self.policy.cooldown_after:
                health.cooldown_until = max(health.cooldown_until, now + self.policy.cooldown)
            if retry_after:
                wait = min(retry_after, self.policy.max_retry_after)
                health.cooldown_until = max(health.cooldown_until, now + wait)

    def cooling_down(self, backend: Backend) -> bool:
        return self._health[backend.name].cooldown_until > time.monotonic()
