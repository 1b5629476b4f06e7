"""AsyncClient's connection pool: httpcore's, with a pass over it that scales.

httpcore's stock asyncio pool walks every connection (with a `poll()` per idle socket) on
every request and every release, closes idle connections as soon as the pool holds more
than `max_keepalive_connections` (idle or not), and hands one idle connection to several
waiting requests, all but one of which then go round again: at 256 calls in flight that
bookkeeping costs more than the calls. `FastAsyncPool` keeps the pool's semantics with a
cheaper pass: a connection handed to a request is taken until it starts, only idle
connections count toward the keep-alive limit, and the full sweep (closed, expired,
surplus idle) runs at most every `SWEEP_S` or when a request would otherwise wait.
"""

from __future__ import annotations

import time
from typing import Any

import httpcore
import httpx

__all__ = ["SWEEP_S", "FastAsyncPool", "speed_up"]

SWEEP_S = 0.25


class FastAsyncPool(httpcore.AsyncConnectionPool):
    """httpcore's asyncio pool (HTTP/1.1) with a pass that does not scan per request."""

    _next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list[Any]:
        closing: list[Any] = []
        requests = self._requests
        taken = {id(r.connection) for r in requests if r.connection is not None}
        queued = [r for r in requests if r.connection is None]
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(taken, closing)
            self._next_sweep = now + SWEEP_S
        waiting = self._assign(queued, taken, closing)
        if waiting:  # a closed or surplus connection may hold a slot: sweep now, once
            self._sweep(taken, closing)
            self._next_sweep = now + SWEEP_S
            self._assign(waiting, taken, closing)
        return closing

    def _sweep(self, taken: set[int], closing: list[Any]) -> None:
        """Drop closed connections, close expired ones and idle ones over the limit."""
        keep: list[Any] = []
        idle: list[Any] = []
        for connection in self._connections:
            if id(connection) in taken:
                keep.append(connection)
            elif connection.is_closed():
                continue
            elif connection.has_expired():
                closing.append(connection)
            else:
                keep.append(connection)
                if connection.is_idle():
                    idle.append(connection)
        surplus = idle[: max(0, len(idle) - self._max_keepalive_connections)]
        if surplus:
            gone = {id(c) for c in surplus}
            keep = [c for c in keep if id(c) not in gone]
            closing.extend(surplus)
        self._connections = keep

    def _assign(self, queued: list[Any], taken: set[int], closing: list[Any]) -> list[Any]:
        """Give each queued request a connection, oldest first; those left waiting."""
        waiting = []
        for request in queued:
            origin = request.request.url.origin
            connection = self._idle_for(origin, taken, closing)
            if connection is None and len(self._connections) >= self._max_connections:
                # Full: close an idle connection (to another origin) to make room.
                spare = next(
                    (c for c in self._connections if id(c) not in taken and c.is_idle()), None
                )
                if spare is None:
                    waiting.append(request)
                    continue
                self._connections.remove(spare)
                closing.append(spare)
            if connection is None:
                connection = self.create_connection(origin)
                self._connections.append(connection)
            taken.add(id(connection))
            request.assign_to_connection(connection)
        return waiting

    def _idle_for(self, origin: Any, taken: set[int], closing: list[Any]) -> Any:
        """The first connection to `origin` ready for a request and not taken."""
        connections = self._connections
        index = 0
        while index < len(connections):
            connection = connections[index]
            if (
                id(connection) not in taken
                and connection.can_handle_request(origin)
                and connection.is_available()
            ):
                if not connection.has_expired():
                    return connection
                del connections[index]  # the server closed it, or its keep-alive ran out
                closing.append(connection)
                continue
            index += 1
        return None


def speed_up(http: httpx.AsyncClient) -> httpx.AsyncClient:
    """`http` with FastAsyncPool under its default transport (proxies' are left alone);
    unchanged if the transport is not httpx's own HTTP/1.1 pool."""
    transport = getattr(http, "_transport", None)
    pool = getattr(transport, "_pool", None)
    if (
        type(transport) is httpx.AsyncHTTPTransport
        and type(pool) is httpcore.AsyncConnectionPool
        and not getattr(pool, "_http2", True)
        and isinstance(getattr(pool, "_requests", None), list)
        and isinstance(getattr(pool, "_connections", None), list)
    ):
        pool.__class__ = FastAsyncPool  # same state, another pass over it
    return http
