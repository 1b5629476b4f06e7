"""Async clients under concurrency: pipeclient's AsyncClient against raw httpx.AsyncClient
and openai.AsyncOpenAI, on loopback, 64 and 256 calls in flight.

    .venv/bin/python benchmarks/async_concurrency.py            # about 4 minutes on 2 cores
    .venv/bin/python benchmarks/async_concurrency.py --smoke    # tiny counts: does it run

Needs the benchmark-only packages of benchmarks/requirements.txt. Prints the report
(Markdown) on stdout and progress on stderr; `--out FILE` also writes it to a file.

How: the backend and the telemetry capture of `run.py` (`_server.py`, asyncio, each in its
own process; its CPU is read at `/__stats` around every block to show it is not the
bottleneck). Each (client, concurrency, kind) block runs in a fresh worker process (this
script with `--worker`): N tasks share a queue of calls on one asyncio loop, each awaiting
its next call as soon as the last one returned. Every client has the same connection
pool limits, openai-python's defaults (`max_connections=1000, max_keepalive_connections=100,
keepalive_expiry=5`), which pipeclient's clients use too: the openai SDK and pipeclient
as built by their users, raw httpx given the same `httpx.Limits`. Throughput is calls
over the wall time of the block plus the flush of the client's telemetry after it (queued
records count as work still to do); CPU is `time.process_time()` over the same span
(exporter threads count).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _variants import API_KEY, MESSAGES, MODEL, PARAMS, Endpoints, dispatcher_of, every_stream
from run import Server, clean_env, log, pct, server_capacity

VARIANTS = ["httpx", "openai", "pipeclient", "pipeclient+all"]
POOL = {"max_connections": 1000, "max_keepalive_connections": 100, "keepalive_expiry": 5.0}
clock = time.perf_counter_ns


# -- the clients under test (worker side) ------------------------------------------------


@dataclass
class AsyncVariant:
    call: Callable[[], Awaitable[Any]]
    stream: Callable[[], Awaitable[int]]  # chunks seen
    settle: Callable[[], Awaitable[Any]]
    close: Callable[[], Awaitable[Any]]


async def _nothing() -> None:
    return None


def _pool() -> Any:
    import httpx

    return httpx.AsyncClient(
        limits=httpx.Limits(**POOL), timeout=httpx.Timeout(600.0, connect=10.0)
    )


def _openai_calls(client: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    create = client.chat.completions.create

    async def call() -> Any:
        answer = await create(model=MODEL, messages=MESSAGES, **PARAMS)
        return answer.choices[0].message.content

    async def stream() -> int:
        n = 0
        async for chunk in await create(model=MODEL, messages=MESSAGES, stream=True, **PARAMS):
            if chunk.choices:
                n += 1
        return n

    return call, stream


def raw_httpx(ep: Endpoints, fast_pool: bool = False) -> AsyncVariant:
    """`fast_pool`: on the connection pool pipeclient's AsyncClient builds (the floor under
    it), not httpx's own."""
    http = _pool()
    if fast_pool:
        from pipeclient._client.pool import speed_up

        speed_up(http)
    url = f"{ep.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": MODEL, "messages": MESSAGES, **PARAMS}
    stream_body = {**body, "stream": True}

    async def call() -> Any:
        response = await http.post(url, json=body, headers=headers)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    async def stream() -> int:
        n = 0
        async with http.stream("POST", url, json=stream_body, headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                data = line[6:] if line.startswith("data: ") else "[DONE]"
                if data != "[DONE]" and json.loads(data)["choices"]:
                    n += 1
        return n

    return AsyncVariant(call, stream, _nothing, http.aclose)


def openai_bare(ep: Endpoints) -> AsyncVariant:
    import openai
    from openai._constants import DEFAULT_CONNECTION_LIMITS as limits

    given = (limits.max_connections, limits.max_keepalive_connections, limits.keepalive_expiry)
    assert given == tuple(POOL.values()), f"openai's pool limits changed: {limits}"
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=ep.base_url)
    call, stream = _openai_calls(client)
    return AsyncVariant(call, stream, _nothing, client.close)


def pipeclient_bare(ep: Endpoints) -> AsyncVariant:
    import pipeclient

    backend = pipeclient.Backend(name="bench", base_url=ep.base_url, api_key=API_KEY)
    client = pipeclient.AsyncClient(backends=[backend])
    assert client._http_for(backend)._transport._pool._max_connections == POOL["max_connections"]
    assert client._telemetry is None, "telemetry is on: the bare variant must have none"
    call, stream = _openai_calls(client)
    return AsyncVariant(call, stream, _nothing, client.close)


def pipeclient_all(ep: Endpoints, stock_pool: bool = False) -> AsyncVariant:
    """Every stream on; `stock_pool`: on httpx's own pool (an `http_client=` of the same
    limits), not the one pipeclient builds."""
    import pipeclient

    os.environ["PIPECLIENT_GATEWAY_SPOOL_DIR"] = str(ep.tmp / "spool")
    backend = pipeclient.Backend(
        name="gateway", base_url=ep.base_url, api_key="gw-bench-key", kind="gateway"
    )
    http = _pool() if stock_pool else None
    client = pipeclient.AsyncClient(
        backends=[backend], telemetry=every_stream(ep), http_client=http
    )
    names = sorted(sink.name for sink in dispatcher_of(client).sinks)
    assert names == ["audit", "gateway", "langfuse", "otlp:bench", "posthog"], names
    call, stream = _openai_calls(client)
    return AsyncVariant(call, stream, client.flush, client.close)


BUILD: dict[str, Callable[[Endpoints], AsyncVariant]] = {
    "httpx": raw_httpx,
    "httpx@fast-pool": lambda ep: raw_httpx(ep, fast_pool=True),
    "openai": openai_bare,
    "pipeclient": pipeclient_bare,
    "pipeclient+all": pipeclient_all,
    "pipeclient+all@stock-pool": lambda ep: pipeclient_all(ep, stock_pool=True),
}


def server_cpu(url: str) -> float:
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", "/__stats")
        return float(json.loads(connection.getresponse().read())["cpu_s"])
    finally:
        connection.close()


async def drive(one: Callable[[], Awaitable[Any]], concurrency: int, n: int) -> list[int]:
    """`n` calls, `concurrency` in flight at every moment; each call's wall time (ns)."""
    latencies: list[int] = []
    left = n

    async def lane() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = clock()
            await one()
            latencies.append(clock() - started)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return latencies


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    ep = Endpoints(args.llm, args.capture, False, Path(args.tmp))
    variant = BUILD[args.worker](ep)
    one = variant.call if args.kind == "call" else variant.stream
    expect = "Hello" if args.kind == "call" else 34
    first = await one()
    if (args.kind == "call" and expect not in first) or (args.kind == "stream" and first != 34):
        raise SystemExit(f"{args.worker}: unexpected answer {first!r}")
    await drive(one, args.concurrency, args.warmup)
    await variant.settle()
    server0 = server_cpu(args.llm)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    latencies = await drive(one, args.concurrency, args.calls)
    wall_calls = time.perf_counter() - wall0
    await variant.settle()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    server = server_cpu(args.llm) - server0
    await variant.close()
    return {
        "lat_ns": latencies,
        "wall_s": wall,
        "wall_calls_s": wall_calls,
        "cpu_s": cpu,
        "server_cpu_s": server,
        "made": 1 + args.warmup + args.calls,  # every call of the process, warm-up included
    }


def worker_main(args: argparse.Namespace) -> None:
    print(json.dumps(asyncio.run(measure(args))), flush=True)


# -- the run (parent side) ---------------------------------------------------------------


def run_block(
    variant: str, concurrency: int, kind: str, n: int, warmup: int, urls: dict[str, str], tmp: Path
) -> dict[str, Any]:
    slug = f"{variant.replace('+', '-')}-{kind}-{concurrency}"
    wtmp = Path(tempfile.mkdtemp(prefix=slug + "-", dir=tmp))
    env = clean_env(tmp / "home")
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        variant,
        "--kind",
        kind,
        "--concurrency-one",
        str(concurrency),
        "--calls",
        str(n),
        "--warmup",
        str(warmup),
        "--llm",
        urls["llm"],
        "--capture",
        f"{urls['capture']}/w/{slug}",
        "--tmp",
        str(wtmp),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{variant} ({kind}, {concurrency}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@dataclass
class Figures:
    rates: list[float]
    latencies: list[int]
    cpu_s: float
    calls: int
    server_busy: list[float]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    def ms(self, q: float) -> float:
        return pct(self.latencies, q) / 1e6

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.calls * 1e6


def collect(blocks: list[dict[str, Any]]) -> Figures:
    return Figures(
        rates=[len(b["lat_ns"]) / b["wall_s"] for b in blocks],
        latencies=[x for b in blocks for x in b["lat_ns"]],
        cpu_s=sum(b["cpu_s"] for b in blocks),
        calls=sum(len(b["lat_ns"]) for b in blocks),
        server_busy=[b["server_cpu_s"] / b["wall_s"] for b in blocks],
    )


def render(
    figures: dict[tuple[str, int, str], Figures], args: argparse.Namespace, capacity: Any
) -> str:
    out = [
        "## Async concurrency",
        "",
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at the end; {args.rounds} rounds, {args.calls} calls "
        f"({args.streams} streams) per client, concurrency and round; pool "
        f"max_connections={POOL['max_connections']}, "
        f"max_keepalive_connections={POOL['max_keepalive_connections']} for every client.",
        "",
        f"Backend capacity (raw socket, pipelined): "
        f"{capacity['pipelined']['call_rps']:,.0f} completions/s.",
        "",
    ]
    for kind in args.kinds:
        title = "Non-streamed chat calls" if kind == "call" else "Streamed chat calls (34 chunks)"
        out += [
            f"### {title}",
            "",
            "| client | in flight | calls/s | p50 ms | p99 ms | CPU us/call | calls/s vs "
            "AsyncOpenAI | vs httpx | p99 vs AsyncOpenAI | backend busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for concurrency in args.concurrency:
            base = figures[("openai", concurrency, kind)]
            floor = figures[("httpx", concurrency, kind)]
            for variant in args.variants:
                f = figures[(variant, concurrency, kind)]
                out.append(
                    f"| {_label(variant)} | {concurrency} | {f.rate:,.0f} | {f.ms(50):.1f} | "
                    f"{f.ms(99):.1f} | {f.cpu_us:,.0f} | {f.rate / base.rate:.2f}x | "
                    f"{f.rate / floor.rate:.2f}x | {f.ms(99) / base.ms(99):.2f}x | "
                    f"{max(f.server_busy):.0%} |"
                )
        out.append("")
    out += ["### Every stream on against the bare AsyncOpenAI", ""]
    for kind in args.kinds:
        for concurrency in args.concurrency:
            if ("pipeclient+all", concurrency, kind) not in figures:
                continue
            mine = figures[("pipeclient+all", concurrency, kind)].rate
            theirs = figures[("openai", concurrency, kind)].rate
            verdict = "holds" if mine >= theirs else "does NOT hold"
            out.append(
                f"* {kind}s, {concurrency} in flight: {mine:,.0f} vs {theirs:,.0f} calls/s "
                f"({mine / theirs:.2f}x): throughput >= AsyncOpenAI bare {verdict}"
            )
    out.append("")
    return "\n".join(out)


def _label(variant: str) -> str:
    return {
        "httpx": "httpx.AsyncClient",
        "openai": "AsyncOpenAI",
        "pipeclient": "pipeclient AsyncClient",
        "pipeclient+all": "pipeclient AsyncClient, every stream on",
        "pipeclient+all@stock-pool": "the same on httpx's stock pool (`http_client=`)",
        "httpx@fast-pool": "httpx.AsyncClient on pipeclient's pool",
    }[variant]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4000, help="calls per block")
    parser.add_argument("--streams", type=int, default=1500, help="streams per block")
    parser.add_argument(
        "--kinds", nargs="+", choices=["call", "stream"], default=["call", "stream"]
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(BUILD),
        default=VARIANTS,
        help="httpx and openai are always run: the ratios are to them",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts: check that it runs")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--out", type=Path, help="also write the report here")
    # A worker process: one block of one client.
    parser.add_argument("--worker", choices=list(BUILD), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["call", "stream"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--concurrency-one", dest="concurrency_one", type=int, help=argparse.SUPPRESS
    )
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--llm", help=argparse.SUPPRESS)
    parser.add_argument("--capture", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.concurrency = args.concurrency_one
        worker_main(args)
        return
    args.variants = [v for v in BUILD if v in {"httpx", "openai", *args.variants}]
    if args.smoke:
        args.concurrency, args.rounds, args.calls, args.streams = [8], 1, 24, 12

    tmp = Path(tempfile.mkdtemp(prefix="pipeclient-async-bench-"))
    (tmp / "home").mkdir()
    env = clean_env(tmp / "home")
    llm = Server("llm", env, tmp)
    capture = Server("capture", env, tmp)
    try:
        urls = {
            "llm": f"http://127.0.0.1:{llm.ports[0]}",
            "capture": f"http://127.0.0.1:{capture.ports[0]}",
        }
        capacity = server_capacity(llm.ports[0], env)
        blocks: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        order = random.Random(args.seed)
        for round_ in range(args.rounds):
            for kind in args.kinds:
                n = args.calls if kind == "call" else args.streams
                for concurrency in args.concurrency:
                    variants = args.variants[:]
                    order.shuffle(variants)
                    for variant in variants:
                        log(f"round {round_ + 1}: {variant}, {kind}s, {concurrency} in flight")
                        block = run_block(
                            variant, concurrency, kind, n, max(n // 4, concurrency), urls, tmp
                        )
                        blocks.setdefault((variant, concurrency, kind), []).append(block)
        delivered = capture.stats()["delivered"]
        figures = {key: collect(value) for key, value in blocks.items()}
        made = {key: sum(b["made"] for b in value) for key, value in blocks.items()}
    finally:
        llm.stop()
        capture.stop()
    report = render(figures, args, capacity)
    report += "\n" + _deliveries(delivered, made, args)
    print(report)
    if args.out:
        args.out.write_text(report)


def _deliveries(
    delivered: dict[str, dict[str, int]],
    made: dict[tuple[str, int, str], int],
    args: argparse.Namespace,
) -> str:
    """What the capture counted from the every-stream-on blocks (warm-up calls included)."""
    if "pipeclient+all" not in args.variants:
        return ""
    lines = ["Delivered at the capture by the every-stream-on blocks (warm-up included):", ""]
    for kind in args.kinds:
        for concurrency in args.concurrency:
            prefix = f"/w/pipeclient-all-{kind}-{concurrency}"
            posthog = sum(
                c.get("events", 0)
                for p, c in delivered.items()
                if p.startswith(prefix + "/") and "batch" in p
            )
            spans = sum(
                c.get("spans", 0)
                for p, c in delivered.items()
                if p.startswith(prefix + "/v1/traces")
            )
            langfuse = sum(
                c.get("requests", 0)
                for p, c in delivered.items()
                if p.startswith(prefix + "/api/public")
            )
            calls = made[("pipeclient+all", concurrency, kind)]
            lines.append(
                f"* {kind}s, {concurrency} in flight: {calls:,} calls, {posthog:,} PostHog events, "
                f"{spans:,} OTLP spans, {langfuse:,} Langfuse requests"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
