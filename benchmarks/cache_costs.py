"""Per-call cost of `[cache]` (µs, one process), beside a raw httpx call to a loopback mock
server: a miss's lookup (canonical form, digest, one SQLite read) and its write, and a
whole call answered from the cache, unencrypted and sealed (AES-256-GCM).

Run: .venv/bin/python benchmarks/cache_costs.py
"""

from __future__ import annotations

import base64
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from _timing import median_and_best_us

import pipeclient
from pipeclient.testing import MockBackend
from pipeclient.types import ChatCompletion

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]


def _row(name: str, timing: tuple[float, float]) -> None:
    print(f"  {name:<44} {timing[0]:>9.1f} µs median  ({timing[1]:.1f} best)")


def _raw_httpx(url: str) -> tuple[float, float]:
    with httpx.Client() as http:
        body = {"model": "m", "messages": MESSAGES}

        def run(n: int) -> None:
            for _ in range(n):
                http.post(url + "/chat/completions", json=body).read()

        run(20)
        return median_and_best_us(run, 200)


def _cache_rows(client: pipeclient.Client, backend: pipeclient.Backend) -> None:
    cache = client._cache
    assert cache is not None
    counter = itertools.count()

    def start(content: str) -> Any:
        messages = [MESSAGES[0], {"role": "user", "content": content}]
        body = {"model": "m", "messages": messages}
        return client._start(
            "chat",
            "/chat/completions",
            body,
            request_id=None,
            no_log=None,
            trace=None,
            timeout=pipeclient._client.resources.NOT_GIVEN,
            extra_headers=None,
            extra_body=None,
        )

    answer = client.chat.completions.create(model="m", messages=MESSAGES, cache=False)
    body = answer.model_dump_json().encode()
    response = httpx.Response(200, headers={"content-type": "application/json"}, content=body)

    def timed(step: Callable[[Any], None], n: int) -> tuple[float, float]:
        """µs per `step` over fresh calls (each a miss), the calls made before timing."""
        timings = []
        for _ in range(5):
            calls = [start(f"miss {next(counter)}") for _ in range(n)]
            if step is write:
                for call in calls:
                    cache.lookup(call, ChatCompletion, [backend], sync=True)
            begin = time.perf_counter()
            for call in calls:
                step(call)
            timings.append((time.perf_counter() - begin) / n * 1e6)
        return statistics.median(timings), min(timings)

    def lookup(call: Any) -> None:
        cache.lookup(call, ChatCompletion, [backend], sync=True)

    def write(call: Any) -> None:
        cache.remember(call, response)

    client.chat.completions.create(model="m", messages=MESSAGES)  # kept

    def hit(n: int) -> None:
        for _ in range(n):
            client.chat.completions.create(model="m", messages=MESSAGES)

    def uncached(n: int) -> None:
        for _ in range(n):
            client.chat.completions.create(model="m", messages=MESSAGES, cache=False)

    _row("lookup, a miss (canonical form, digest, read)", timed(lookup, 1000))
    _row("write of a miss's answer (one transaction)", timed(write, 500))
    _row("whole call answered from the cache (a hit)", median_and_best_us(hit, 1000))
    _row("whole call, cache=False, to the loopback server", median_and_best_us(uncached, 200))


def main() -> None:
    mock = MockBackend()
    with mock.serve() as served, tempfile.TemporaryDirectory() as directory:
        backend = served.backend()
        print(f"raw httpx POST /chat/completions to the loopback mock ({backend.base_url})")
        _row("raw httpx call", _raw_httpx(backend.base_url))
        for sealed in (False, True):
            path = Path(directory) / f"cache-{sealed}.db"
            cache: dict[str, Any] = {"enabled": True, "path": str(path)}
            if sealed:
                cache["key"] = base64.b64encode(os.urandom(32)).decode()
            print(f"\n[cache] {'sealed (AES-256-GCM, HMAC digests)' if sealed else 'unencrypted'}")
            with pipeclient.Client(backends=[backend], telemetry={"cache": cache}) as client:
                _cache_rows(client, backend)


if __name__ == "__main__":
    main()
