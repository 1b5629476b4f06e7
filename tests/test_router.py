"""The router alone: order, cooldown, waits and the gateway rule, on a clock of its own."""

from __future__ import annotations

import random
from collections import Counter

import pytest

import pipeclient
from pipeclient._client.retry import RetryPolicy
from pipeclient._client.router import Router

POLICY = RetryPolicy(
    max_retries=2, initial_delay=1.0, max_delay=8.0, max_retry_after=30.0, cooldown_after=2
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def backend(name: str, **options: object) -> pipeclient.Backend:
    url = options.pop("base_url", f"https://{name}.example/v1")
    return pipeclient.Backend(name=name, base_url=url, api_key="sk-test", **options)


def router(*backends: pipeclient.Backend, **options: object) -> tuple[Router, Clock]:
    clock = Clock()
    made = Router(backends, POLICY, rng=random.Random(1), clock=clock, **options)  # type: ignore[arg-type]
    return made, clock


def names(backends: list[pipeclient.Backend]) -> list[str]:
    return [b.name for b in backends]


def test_weighted_backends_first_in_proportion_then_standbys() -> None:
    route, _ = router(backend("a", weight=3), backend("b", weight=1), backend("s", weight=0))
    firsts = Counter(route.order()[0].name for _ in range(4000))
    assert set(firsts) == {"a", "b"}
    assert 2.4 < firsts["a"] / firsts["b"] < 3.8  # 3:1, with room for chance
    assert all(route.order()[-1].name == "s" for _ in range(50))


def test_a_backend_failing_calls_in_a_row_cools_down_then_comes_back() -> None:
    route, clock = router(backend("a"), backend("b", weight=0))
    a = route.backends[0]
    route.failed(a)
    assert not route.cooling_down(a) and names(route.order()) == ["a", "b"]
    route.failed(a)  # cooldown_after = 2
    assert route.cooling_down(a) and names(route.order()) == ["b", "a"]
    clock.now += POLICY.cooldown + 0.001
    assert not route.cooling_down(a) and names(route.order()) == ["a", "b"]
    route.failed(a)
    route.succeeded(a)  # a success clears the count
    route.failed(a)
    assert not route.cooling_down(a)


def test_retry_after_keeps_a_backend_at_the_back_until_it_passed_capped() -> None:
    route, clock = router(backend("a"), backend("b", weight=0))
    a = route.backends[0]
    route.failed(a, retry_after=5.0)
    assert route.cooling_down(a)
    clock.now += 5.001
    assert not route.cooling_down(a)
    route.failed(a, retry_after=10_000.0)  # capped at max_retry_after
    clock.now += POLICY.max_retry_after + 0.001
    assert not route.cooling_down(a)


def test_one_calls_waits_hint_or_jittered_backoff_and_ready_backends_go_first() -> None:
    route, clock = router(backend("a"), backend("b", weight=0))
    call, refusal = route.route("rid-1")
    assert refusal is None and call is not None and call.rounds == POLICY.max_retries + 1
    a, b = call.plan
    call.failed(a, hint=None)  # first failure: backoff in [0.5, 1.0] x initial_delay
    assert 0.5 <= call.wait_for(a) <= 1.0 and call.wait_for(b) <= 0
    assert names(call.order()) == ["b", "a"]
    clock.now += 1.0
    call.failed(a, hint=None)  # second: up to 2 s
    assert 1.0 <= call.wait_for(a) <= 2.0
    call.failed(b, hint=100.0)  # the server's hint, capped
    assert call.wait_for(b) == pytest.approx(POLICY.max_retry_after)
    assert names(call.order()) == ["a", "b"]
    # Health counts calls, not attempts: two attempts of one call are one failure.
    assert not route.cooling_down(a)


def test_the_gateway_rule_and_do_not_track() -> None:
    gateway_url = "https://gw.example/v1"
    backends = (
        backend("gw", kind="gateway"),
        backend("plain-at-gateway-host", base_url="https://gw.example/v1"),
        backend("other"),
    )
    route, _ = router(*backends, gateway_url=gateway_url)
    assert [route.is_gateway(b) for b in backends] == [True, True, False]
    assert names(route.gateways) == ["gw", "plain-at-gateway-host"]

    refused, _ = router(*backends, gateway_url=gateway_url, do_not_track=True)
    call, refusal = refused.route("rid-2")
    assert refusal is None and call is not None and names(call.plan) == ["other"]

    only_gateway, _ = router(backends[0], gateway_url=gateway_url, do_not_track=True)
    call, refusal = only_gateway.route("rid-3")
    assert call is None and isinstance(refusal, pipeclient.GatewayTelemetryRequiredError)
    assert refusal.request_id == "rid-3" and "DO_NOT_TRACK" in str(refusal)
