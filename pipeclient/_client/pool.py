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
from collections import deque
from typing import Any

import httpcore
import httpx

__all__ = ["SWEEP_S", "FastAsyncPool", "speed_up"]

SWEEP_S = 0.25


class FastAsyncPool(httpcore.AsyncConnectionPool):
    """httpcore's asyncio pool (HTTP/1.1) with a pass that does not scan per request."""

    _next_sweep = 0.0
    _requests: _Requests

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests = _Requests(self._requests)

    def _assign_requests_to_connections(self) -> list[Any]:
        closing: list[Any] = []
        queued = [r for r in self._requests if r.connection is None]
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(closing)
            self._next_sweep = now + SWEEP_S
        waiting = self._assign(queued, closing)
        if waiting:  # a closed or surplus connection may hold a slot: sweep now, once
            self._sweep(closing)
            self._next_sweep = now + SWEEP_S
            self._assign(waiting, closing)
        return closing

    def _taken(self, connection: Any) -> bool:
        """Whether an idle connection was handed to a request that has not started on it
        yet (an HTTP/1.1 connection stays idle until the request is sent)."""
        handed = self._requests.handed
        entry = handed.get(id(connection))
        if entry is None:
            return False
        request, count = entry
        if request.connection is connection and _requests_sent(connection) == count:
            return True
        del handed[id(connection)]  # started on it (and maybe done), or requeued
        return False

    def _sweep(self, closing: list[Any]) -> None:
        """Drop closed connections, close expired ones and idle ones over the limit."""
        keep: list[Any] = []
        idle: list[Any] = []
        for connection in self._connections:
            taken = connection.is_idle() and self._taken(connection)
            if taken:
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
        handed = self._requests.handed
        alive = {id(c) for c in keep}
        for key in [key for key in handed if key not in alive]:
            del handed[key]

    def _assign(self, queued: list[Any], closing: list[Any]) -> list[Any]:
        """Give each queued request a connection, oldest first; those left waiting."""
        waiting = []
        for request in queued:
            origin = request.request.url.origin
            connection = self._idle_for(origin, closing)
            if connection is None and len(self._connections) >= self._max_connections:
                # Full: close an idle connection (to another origin) to make room.
                spare = next(
                    (c for c in self._connections if c.is_idle() and not self._taken(c)), None
                )
                if spare is None:
                    waiting.append(request)
                    continue
                self._connections.remove(spare)
                closing.append(spare)
            if connection is None:
                connection = self.create_connection(origin)
                self._connections.append(connection)
            else:
                self._requests.handed[id(connection)] = (request, _requests_sent(connection))
            request.assign_to_connection(connection)
        return waiting

    def _idle_for(self, origin: Any, closing: list[Any]) -> Any:
        """A connection to `origin` ready for a request and not taken: the last one freed
        that still is, else the first in the pool."""
        freed = self._requests.freed
        while freed:
            connection = freed.pop()
            if (
                connection.is_available()
                and connection.can_handle_request(origin)
                and not self._taken(connection)
                and connection in self._connections  # not one being closed
            ):
                if not connection.has_expired():
                    return connection
                self._connections.remove(connection)
                closing.append(connection)
        connections = self._connections
        index = 0
        while index < len(connections):
            connection = connections[index]
            if (
                connection.is_available()
                and connection.can_handle_request(origin)
                and not self._taken(connection)
            ):
                if not connection.has_expired():
                    return connection
                del connections[index]  # the server closed it, or its keep-alive ran out
                closing.append(connection)
                continue
            index += 1
        return None


class _Requests(list[Any]):
    """The pool's requests. httpcore removes one when its response is closed (or it
    failed, or was cancelled): its connection, maybe free now, is remembered for the next
    request, and is no longer held for it."""

    def __init__(self, requests: list[Any]) -> None:
        super().__init__(requests)
        self.freed: deque[Any] = deque(maxlen=4096)
        #: connection id -> (the request it was handed to, its request count then)
        self.handed: dict[int, tuple[Any, int]] = {}

    def remove(self, request: Any) -> None:
        super().remove(request)
        connection = request.connection
        if connection is not None:
            self.freed.append(connection)
            entry = self.handed.get(id(connection))
            if entry is not None and entry[0] is request:
                del self.handed[id(connection)]


def _requests_sent(connection: Any) -> int:
    """How many requests a connection has started (httpcore's HTTP/1.1 count)."""
    return int(getattr(getattr(connection, "_connection", None), "_request_count", -1))


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
        pool._requests = _Requests(pool._requests)
    return http
