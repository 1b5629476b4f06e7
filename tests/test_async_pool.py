"""AsyncClient's connection pool: httpcore's semantics, counted at a real loopback server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import httpcore
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai._constants import DEFAULT_CONNECTION_LIMITS

import pipeclient
from pipeclient._client.pool import FastAsyncPool, speed_up
from pipeclient.testing import MockBackend, MockServer

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockBackend().serve() as running:
        yield running


def pool_of(http: httpx.AsyncClient) -> httpcore.AsyncConnectionPool:
    return http._transport._pool  # type: ignore[attr-defined,no-any-return]


def fast(**limits: float | int | None) -> httpx.AsyncClient:
    http = speed_up(httpx.AsyncClient(limits=httpx.Limits(**limits)))  # type: ignore[arg-type]
    assert type(pool_of(http)) is FastAsyncPool
    return http


def models(server: MockServer) -> str:
    return f"{server.url}/models"


def test_the_clients_pool_has_the_openai_sdks_limits(server: MockServer) -> None:
    async def run() -> tuple[httpcore.AsyncConnectionPool, httpcore.ConnectionPool]:
        backend = server.backend()
        async with pipeclient.AsyncClient(backends=[backend]) as client:
            await client.chat.completions.create(model="m", messages=MESSAGES)
            async_pool = pool_of(client._http_for(backend))
        with pipeclient.Client(backends=[backend]) as sync:
            sync_pool = sync._http_for(backend)._transport._pool  # type: ignore[attr-defined]
        return async_pool, sync_pool

    async_pool, sync_pool = asyncio.run(run())
    assert type(async_pool) is FastAsyncPool
    limits = DEFAULT_CONNECTION_LIMITS
    for pool in (async_pool, sync_pool):
        assert pool._max_connections == limits.max_connections
        assert pool._max_keepalive_connections == limits.max_keepalive_connections
        assert pool._keepalive_expiry == limits.keepalive_expiry


def test_a_given_http_client_or_transport_is_left_as_it_is(server: MockServer) -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    assert speed_up(httpx.AsyncClient(transport=mock))._transport is mock  # type: ignore[attr-defined]

    async def run() -> httpx.AsyncClient:
        mine = httpx.AsyncClient()
        backend = server.backend()
        async with pipeclient.AsyncClient(backends=[backend], http_client=mine) as client:
            await client.chat.completions.create(model="m", messages=MESSAGES)
            assert client._http_for(backend) is mine
        return mine

    assert type(pool_of(asyncio.run(run()))) is httpcore.AsyncConnectionPool


def test_released_connections_under_the_keepalive_limit_stay_open(server: MockServer) -> None:
    """httpcore's stock pass closes a released connection whenever the pool holds more
    than max_keepalive connections, busy ones included; only idle ones count here."""

    async def run() -> int:
        before = server.connections
        async with fast(max_connections=10, max_keepalive_connections=2) as http:
            held = [await http.send(http.build_request("GET", models(server)), stream=True)]
            held += [await http.send(http.build_request("GET", models(server)), stream=True)]
            held += [await http.send(http.build_request("GET", models(server)), stream=True)]
            held += [await http.send(http.build_request("GET", models(server)), stream=True)]
            for response in held[:2]:
                await response.aread()
                await response.aclose()
            # Two idle (at the limit), two busy: the two new calls reuse the idle ones.
            again = [await http.get(models(server)) for _ in range(2)]
            for response in held[2:]:
                await response.aclose()
            assert all(r.status_code == 200 for r in again)
        return server.connections - before

    assert asyncio.run(run()) == 4


def test_a_full_pool_queues_calls_on_its_connections(server: MockServer) -> None:
    async def run() -> tuple[list[int], int]:
        before = server.connections
        async with fast(max_connections=2, max_keepalive_connections=2) as http:
            answers = await asyncio.gather(*(http.get(models(server)) for _ in range(12)))
        return [a.status_code for a in answers], server.connections - before

    statuses, opened = asyncio.run(run())
    assert statuses == [200] * 12
    assert opened == 2


def test_an_expired_connection_is_closed_not_reused(server: MockServer) -> None:
    async def run(expiry: float) -> int:
        before = server.connections
        async with fast(max_connections=5, keepalive_expiry=expiry) as http:
            for _ in range(3):
                assert (await http.get(models(server))).status_code == 200
        return server.connections - before

    assert asyncio.run(run(0.0)) == 3  # each idle connection has expired when it is picked
    assert asyncio.run(run(60.0)) == 1


def test_a_connection_handed_to_a_cancelled_call_serves_the_next(server: MockServer) -> None:
    """A call cancelled after the pool handed it a connection, before it sent anything:
    the connection is not held for it forever (a one-connection pool would hang)."""

    async def run() -> tuple[int, int]:
        before = server.connections
        async with fast(max_connections=1) as http:
            pool = pool_of(http)
            first = await http.send(http.build_request("GET", models(server)), stream=True)
            second = asyncio.create_task(http.get(models(server)))
            while not any(r.connection is None for r in pool._requests):
                await asyncio.sleep(0)  # until the second call waits for the connection
            await first.aread()
            await first.aclose()  # the pool hands the connection to the second call
            assert not any(r.connection is None for r in pool._requests)
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
            third = await asyncio.wait_for(http.get(models(server)), 30)
        return third.status_code, server.connections - before

    assert asyncio.run(run()) == (200, 1)


def test_the_async_client_under_concurrency(server: MockServer) -> None:
    async def run() -> tuple[list[str], int]:
        before = server.connections
        async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
            calls = [
                client.chat.completions.create(model="m", messages=MESSAGES) for _ in range(40)
            ]
            first = await asyncio.gather(*calls)
            calls = [
                client.chat.completions.create(model="m", messages=MESSAGES) for _ in range(40)
            ]
            second = await asyncio.gather(*calls)
        texts = [a.choices[0].message.content or "" for a in first + second]
        return texts, server.connections - before

    texts, opened = asyncio.run(run())
    assert texts == ["Mock reply to: hello"] * 80
    assert opened <= 40  # the second wave reuses the first wave's connections


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    max_connections=st.integers(1, 6),
    keepalive=st.integers(0, 6),
    calls=st.integers(1, 24),
    held=st.integers(0, 6),
)
def test_every_call_is_answered_within_the_limits(
    server: MockServer, max_connections: int, keepalive: int, calls: int, held: int
) -> None:
    """Some responses held open while others queue: all answered, never more connections
    at once than max_connections, and at most max_keepalive idle ones left."""
    held = min(held, max_connections - 1)

    async def run() -> tuple[list[int], int, int]:
        async with fast(
            max_connections=max_connections, max_keepalive_connections=keepalive
        ) as http:
            pool = pool_of(http)
            kept = [
                await http.send(http.build_request("GET", models(server)), stream=True)
                for _ in range(held)
            ]
            peak = 0

            async def one() -> int:
                nonlocal peak
                response = await http.get(models(server))
                peak = max(peak, len(pool.connections))
                return response.status_code

            statuses = await asyncio.gather(*(one() for _ in range(calls)))
            for response in kept:
                await response.aclose()
            pool._next_sweep = 0.0  # type: ignore[attr-defined]  # the next pass sweeps
            await http.get(models(server))
            idle = sum(1 for c in pool.connections if c.is_idle())
        return statuses, peak, idle

    statuses, peak, idle = asyncio.run(run())
    assert statuses == [200] * calls
    assert peak <= max_connections
    assert idle <= max(keepalive, 1)  # the last call's own connection may stay
