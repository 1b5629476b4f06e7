"""The router: which backend a call tries next, how long it waits first, and which
backends are the managed gateway. No I/O here; the client's send loops ask it.

The client holds one `Router` (its backends with their health, shared by every call);
each call gets a `CallRoute` (that call's failures and waits). Under DO_NOT_TRACK the
gateway is never in a route: it requires its telemetry stream, so a call with no other
backend is refused before any network I/O.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable, Sequence

from .._exceptions import ConfigError, GatewayTelemetryRequiredError
from .backends import Backend, is_gateway
from .retry import RetryPolicy

__all__ = ["CallRoute", "Router"]

Refusal = GatewayTelemetryRequiredError


class _Health:
    __slots__ = ("cooldown_until", "failures_in_a_row")

    def __init__(self) -> None:
        self.failures_in_a_row = 0
        self.cooldown_until = 0.0


class Router:
    """A client's backends, their health, and the gateway rule."""

    def __init__(
        self,
        backends: Sequence[Backend],
        policy: RetryPolicy,
        *,
        gateway_url: str | None = None,
        do_not_track: bool = False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backends = tuple(backends)
        self.policy = policy
        self.gateway_url = gateway_url
        self.do_not_track = do_not_track
        self.rng = rng or random.Random()
        self.clock = clock
        self._gateway = {b.name: is_gateway(b, gateway_url) for b in self.backends}
        for backend in self.backends:
            if backend.local and self._gateway[backend.name]:
                # [routing] sensitive = "local" trusts local=True: the gateway never is.
                raise ConfigError(
                    f"backend {backend.name!r} is marked local=True but its URL is the managed "
                    f"gateway's ({backend.host}, PIPECLIENT_GATEWAY_URL): the gateway is a third "
                    "party; remove local=True from it",
                    source=f"Backend {backend.name!r}",
                    key="local",
                )
        self._health = {backend.name: _Health() for backend in self.backends}
        self._lock = threading.Lock()

    def with_policy(self, policy: RetryPolicy) -> Router:
        """The same backends and health (shared), under another retry policy."""
        other = copy.copy(self)
        other.policy = policy
        return other

    # -- the gateway rule ------------------------------------------------------------------

    def is_gateway(self, backend: Backend) -> bool:
        """Whether calls to this backend go to the managed gateway, whatever its kind says."""
        known = self._gateway.get(backend.name)
        return is_gateway(backend, self.gateway_url) if known is None else known

    @property
    def gateways(self) -> list[Backend]:
        return [backend for backend in self.backends if self._gateway[backend.name]]

    # -- routes ----------------------------------------------------------------------------

    def order(self) -> list[Backend]:
        """The order to try backends in for one call.

        Healthy weighted backends first, in a weighted random order (the first one is a
        weighted choice), then weight-0 standbys, then backends cooling down.
        """
        if len(self.backends) == 1:
            return [self.backends[0]]
        now = self.clock()
        rng = self.rng

        def sort_key(backend: Backend) -> tuple[int, float]:
            if self.cooling_down(backend, now):
                return (2, -rng.random())
            if backend.weight == 0:
                return (1, -rng.random())
            # Efraimidis-Spirakis: u ** (1 / w) sorted descending is a weighted shuffle.
            return (0, -(rng.random() ** (1.0 / backend.weight)))

        return sorted(self.backends, key=sort_key)

    def route(
        self, request_id: str, allowed: frozenset[str] | None = None
    ) -> tuple[CallRoute | None, GatewayTelemetryRequiredError | None]:
        """One call's route, or (under DO_NOT_TRACK, when every backend is the gateway)
        the refusal to raise before any network I/O. `allowed`: the backends `[routing]`
        left this call (the plan is narrowed to them, in the same order)."""
        plan = self.order()
        if allowed is not None:
            plan = [backend for backend in plan if backend.name in allowed]
        if self.do_not_track:
            usable = [backend for backend in plan if not self.is_gateway(backend)]
            if not usable:
                return None, self._refusal(plan, request_id)
            plan = usable
        return CallRoute(self, plan), None

    def _refusal(self, plan: list[Backend], request_id: str) -> Refusal:
        names = ", ".join(repr(backend.name) for backend in plan)
        refusal = GatewayTelemetryRequiredError(
            f"backend {names} is the managed gateway, which requires its metadata telemetry "
            f"stream, and the environment variable DO_NOT_TRACK is set: the call was not sent. "
            f"Unset DO_NOT_TRACK to use the gateway, or call a backend that is not the "
            f"gateway (request id {request_id})"
        )
        refusal.request_id = request_id
        return refusal

    # -- health ----------------------------------------------------------------------------

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
            now = self.clock()
            if health.failures_in_a_row >= self.policy.cooldown_after:
                health.cooldown_until = max(health.cooldown_until, now + self.policy.cooldown)
            if retry_after:
                wait = min(retry_after, self.policy.max_retry_after)
                health.cooldown_until = max(health.cooldown_until, now + wait)

    def cooling_down(self, backend: Backend, now: float | None = None) -> bool:
        """Whether the backend waits at the back of every route (cooldown, Retry-After)."""
        return self._health[backend.name].cooldown_until > (self.clock() if now is None else now)


class CallRoute:
    """One call's attempts: the backends in order, who failed, who may be tried when."""

    __slots__ = ("_failures", "_not_before", "plan", "rounds", "router")

    def __init__(self, router: Router, plan: list[Backend]) -> None:
        self.router = router
        self.plan = plan
        #: every call makes up to max_retries + 1 rounds; a round tries each backend once
        self.rounds = router.policy.max_retries + 1
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}

    def order(self) -> list[Backend]:
        """The plan, with backends that may be tried at once before those still waiting."""
        if not self._not_before:
            return self.plan
        return sorted(self.plan, key=lambda backend: self._not_before.get(backend.name, 0.0))

    def wait_for(self, backend: Backend) -> float:
        """Seconds to wait before trying this backend again (<= 0: now)."""
        return self._not_before.get(backend.name, 0.0) - self.router.clock()

    def failed(self, backend: Backend, hint: float | None) -> None:
        """An attempt failed and may be retried: wait the server's hint (capped) or a
        jittered backoff before this backend again; the others are tried meanwhile."""
        router, policy = self.router, self.router.policy
        count = self._failures.get(backend.name, 0) + 1
        self._failures[backend.name] = count
        wait = min(hint, policy.max_retry_after) if hint is not None else None
        if wait is None:
            wait = policy.backoff(count, router.rng)
        self._not_before[backend.name] = router.clock() + wait
        if count == 1:  # a backend's health counts calls, not attempts
            router.failed(backend, hint)

    def succeeded(self, backend: Backend) -> None:
        self.router.succeeded(backend)
