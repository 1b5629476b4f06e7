"""Where pipeclient's telemetry CPU goes, per record, and what it costs the garbage collector.

    .venv/bin/python benchmarks/telemetry_costs.py [--calls 5000]

1. Per destination, on one thread with no network: the privacy step, `encode` (the
   worker's part), `pack` (what a lane holds until its send), and the part of a send that
   is encoding (the join of packed events or spans, PostHog's gzip); `encode_packed` is
   what the dispatcher's worker runs (both steps in one), for 2,000 calls and 400 streams
   recorded from an in-process `MockBackend`.
2. How many objects the garbage collector tracks per packed payload: objects that wait in
   a lane through its linger survive into the oldest generation, and every ~17,000 of those
   make the interpreter run a full collection (40-50 ms here, all threads stopped).
3. `pipeclient+all` against the benchmark's loopback servers (`_server.py`), with
   destinations that answer: wall and CPU per call, and the collections per generation
   with their cost, over `--calls` calls (and, with `--without NAME,...`, the same with
   some destinations taken out).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _variants
from run import Server, clean_env

import pipeclient
from pipeclient._telemetry.privacy import AUDIT, CONTENT, GATEWAY, METADATA
from pipeclient.testing import MockBackend


def per_record_costs(tmp: Path) -> None:
    os.environ["PIPECLIENT_GATEWAY_SPOOL_DIR"] = str(tmp / "spool")
    ep = _variants.Endpoints(
        llm="http://127.0.0.1:9", capture="http://127.0.0.1:9/w", hang=False, tmp=tmp
    )
    mock = MockBackend()
    backend = pipeclient.Backend(
        name="gateway",
        base_url="http://gateway.test/v1",
        api_key="gw-bench-key",
        kind="gateway",
        transport=mock.backend().transport,
    )
    client = pipeclient.Client(backends=[backend], telemetry=_variants.every_stream(ep))
    dispatcher = _variants.dispatcher_of(client)
    records: list[Any] = []
    dispatcher.submit = records.append  # type: ignore[method-assign,assignment]
    for _ in range(2000):
        client.chat.completions.create(
            model=_variants.MODEL, messages=_variants.MESSAGES, **_variants.PARAMS
        )
    for _ in range(400):
        for _chunk in client.chat.completions.create(
            model=_variants.MODEL, messages=_variants.MESSAGES, stream=True, **_variants.PARAMS
        ):
            pass
    n = len(records)
    privacy = dispatcher.privacy

    def timed(work: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        result = work()
        return (time.perf_counter() - started) / n * 1e6, result

    content_us, content = timed(lambda: [privacy.view(r, CONTENT) for r in records])
    metadata_us, metadata = timed(lambda: [privacy.view(r, METADATA) for r in records])
    gateway_views = [privacy.view(r, GATEWAY) for r in records]
    audit_views = [privacy.view(r, AUDIT) for r in records]
    views_of = {CONTENT: content, METADATA: metadata, GATEWAY: gateway_views, AUDIT: audit_views}
    print(f"{n:,} records (2,000 calls, 400 streams), microseconds per record\n")
    print(f"privacy step: content view {content_us:.1f}, metadata view {metadata_us:.1f}\n")
    print(
        "| destination | encode | pack | encode_packed (the worker's) "
        "| send's own encoding | GC-tracked per packed payload |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for sink, audience in dispatcher.fanout.routes:
        views = [view for view in views_of[audience] if view is not None]
        encode_us, payloads = timed(lambda s=sink, v=views: [p for r in v for p in s.encode(r)])
        pack_us, packed = timed(lambda s=sink, p=payloads: s.pack(p))
        worker_us, _ = timed(lambda s=sink, v=views: [p for r in v for p in s.encode_packed(r)])
        gc.collect()  # tuples of atomic values are untracked by the first collection they meet
        tracked = sum(_tracked(item) for item in packed) / max(1, len(packed))
        send_us = _send_encoding(sink, payloads, packed, timed)
        print(
            f"| {sink.name} | {encode_us:.1f} | {pack_us:.1f} | {worker_us:.1f} | {send_us} "
            f"| {tracked:.1f} |"
        )
    client.close()


def _send_encoding(sink: Any, payloads: list[Any], packed: list[Any], timed: Any) -> str:
    if sink.name == "langfuse":
        us, _ = timed(lambda: b",".join(packed))
        return f"{us:.1f} (join)"
    if sink.name.startswith("otlp"):
        from pipeclient._sinks.otlp import proto

        us, _ = timed(lambda: proto.trace_request(sink._resource, sink._scope, "", packed))
        return f"{us:.1f} (join)"
    if sink.name == "posthog":
        from pipeclient._sinks.otlp.transport import gzip_bytes
        from pipeclient._sinks.posthog_wire import batch_body

        join_us, body = timed(lambda: batch_body(packed, "phc_bench"))
        gzip_us, _ = timed(lambda: gzip_bytes(body))
        return f"{join_us + gzip_us:.1f} (join {join_us:.1f} + gzip {gzip_us:.1f}, GIL released)"
    return "-"


def _tracked(value: Any) -> int:
    count = 1 if gc.is_tracked(value) else 0
    if isinstance(value, dict):
        return count + sum(_tracked(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return count + sum(_tracked(item) for item in value)
    return count


def collections(tmp: Path, calls: int, without: list[str], hang: bool) -> None:
    env = clean_env(tmp / "home")
    llm, capture = Server("llm", env, tmp), Server("capture", env, tmp)
    per_generation = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    started = [0.0]

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            entry = per_generation[info["generation"]]
            entry[0] += 1
            entry[1] += time.perf_counter() - started[0]

    try:
        ep = _variants.Endpoints(
            llm=f"http://127.0.0.1:{llm.ports[0]}",
            capture=f"http://127.0.0.1:{capture.ports[1 if hang else 0]}/w/costs",
            hang=hang,
            tmp=tmp,
        )
        variant = _variants.VARIANTS["pipeclient+all"](ep)
        dispatcher = _variants.dispatcher_of(variant.client)
        dispatcher.sinks = tuple(s for s in dispatcher.sinks if s.name not in without)
        fanout = dispatcher.fanout
        fanout.routes = tuple(r for r in fanout.routes if r.sink.name not in without)
        settle = (lambda: None) if hang else variant.settle
        for _ in range(300):
            variant.call()
        settle()
        gc.callbacks.append(watch)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            variant.call()
        settle()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        gc.callbacks.remove(watch)
        variant.close()
    finally:
        llm.stop()
        capture.stop()
    label = "pipeclient+all" + (f" without {', '.join(without)}" if without else "")
    label += ", destinations that never answer" if hang else ""
    figures = ", ".join(
        f"gen{g}: {n} ({s / calls * 1e6:.1f} us/call)" for g, (n, s) in per_generation.items()
    )
    print(
        f"\n{label}: {calls:,} calls, wall {wall / calls * 1e6:.0f} us/call, "
        f"CPU {cpu / calls * 1e6:.0f} us/call; garbage collections {figures}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--without", default="", help="destinations to take out, e.g. otlp:bench")
    parser.add_argument("--hang", action="store_true", help="destinations that never answer")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pipeclient-costs-"))
    (tmp / "home").mkdir()
    try:
        per_record_costs(tmp)
        collections(tmp, args.calls, [n for n in args.without.split(",") if n], args.hang)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
