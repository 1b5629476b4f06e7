"""The retry policy and the server's hints (status, Retry-After). No I/O here."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from .._exceptions import ConfigError
from .._telemetry.sink import retry_after_seconds

__all__ = ["RetryPolicy", "retry_after_seconds", "should_retry_status"]

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
