"""One client under test, in its own process, driven by `run.py` over stdin/stdout.

    python benchmarks/_worker.py VARIANT --llm URL --capture URL [--hang] --tmp DIR

Commands (one JSON object per line) and their answers:

* `{"op": "run", "kind": "call"|"stream", "n": N}`: N calls back to back; the wall time
  of each (ns), and the process's CPU time over the block (every thread counted).
* `{"op": "settle"}`: flush the variant's telemetry; its wall and CPU time.
* `{"op": "soak", "n": N, "every": K}`: N calls, `ru_maxrss` every K calls.
* `{"op": "bound"}`: (pipeclient) one record's and its payloads' deep sizes, and the memory
  bound `[export] max_queue` implies.
* `{"op": "report"}`: (pipeclient) the dispatcher's FlushReport so far.
* `{"op": "close"}`: the variant's close/shutdown, timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _variants import VARIANTS, Endpoints, Variant, dispatcher_of

WARMUP_CALLS = 50
WARMUP_STREAMS = 10


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run(variant: Variant, kind: str, n: int) -> dict[str, Any]:
    clock = time.perf_counter_ns
    lat = [0] * n
    first = [0] * n if kind == "stream" else []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if kind == "call":
        call = variant.call
        for i in range(n):
            t = clock()
            result = call()
            lat[i] = clock() - t
        if not result:
            raise SystemExit(f"empty answer {result!r}")
    else:
        stream = variant.stream
        for i in range(n):
            t = clock()
            chunks, at = stream()
            lat[i] = clock() - t
            first[i] = at - t
            if chunks != 34:
                raise SystemExit(f"expected 34 chunks, got {chunks!r}")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"lat_ns": lat, "ttfc_ns": first, "cpu_s": cpu, "wall_s": wall}


def soak(variant: Variant, n: int, every: int) -> dict[str, Any]:
    points = [(0, maxrss_mib())]
    call = variant.call
    started = time.perf_counter()
    for i in range(1, n + 1):
        call()
        if i % every == 0:
            points.append((i, maxrss_mib()))
    return {"rss_mib": points, "wall_s": time.perf_counter() - started}


def deep_size(value: Any, seen: set[int] | None = None) -> int:
    """Bytes held by `value` and everything it references (each object counted once)."""
    seen = set() if seen is None else seen
    if id(value) in seen or value is None or isinstance(value, (bool, int, float)):
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        size += sum(deep_size(item, seen) for item in value)
    elif hasattr(value, "__slots__") or hasattr(value, "__dict__"):
        names = getattr(value, "__slots__", ()) or vars(value).keys()
        size += sum(deep_size(getattr(value, name, None), seen) for name in names)
    return size


def queue_bound(variant: Variant) -> dict[str, Any]:
    """What one call costs in each of pipeclient's bounded queues, and the bound it implies."""
    client = variant.client
    dispatcher = dispatcher_of(client)
    pipeline = client._telemetry
    records: list[Any] = []
    emit = pipeline.emit
    pipeline.emit = records.append
    variant.call()
    pipeline.emit = emit
    record = records[0]
    privacy = dispatcher.privacy
    per_sink = {}
    for sink, audience in dispatcher.fanout.routes:
        view = privacy.view(record, audience)
        payloads = sink.encode(view) if view is not None else []
        per_sink[sink.name] = deep_size(sink.pack(payloads))  # what a lane holds
    record_bytes = deep_size(record)
    max_queue = dispatcher.max_queue
    return {
        "max_queue": max_queue,
        "record_bytes": record_bytes,
        "payload_bytes": per_sink,
        # the dispatcher's queue holds records; each destination's lane holds payloads
        "bound_mib": max_queue * (record_bytes + sum(per_sink.values())) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--llm", required=True)
    parser.add_argument("--capture", required=True)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--no-warmup", action="store_true")
    args = parser.parse_args()

    # Answers go to a private copy of stdout; anything the SDKs print goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def answer(**fields: Any) -> None:
        answers.write(json.dumps(fields) + "\n")

    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    endpoints = Endpoints(llm=args.llm, capture=args.capture, hang=args.hang, tmp=tmp)
    started = time.perf_counter()
    variant = VARIANTS[args.variant](endpoints)
    setup_s = time.perf_counter() - started
    if not args.no_warmup:
        run(variant, "call", WARMUP_CALLS)
        run(variant, "stream", WARMUP_STREAMS)
    answer(ready=True, setup_s=setup_s, rss_mib=maxrss_mib())

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "run":
            answer(**run(variant, command["kind"], command["n"]))
        elif op == "settle":
            cpu0, wall0 = time.process_time(), time.perf_counter()
            helper0 = variant.helper_cpu[0] if variant.helper_cpu else 0.0
            variant.settle()
            cpu = time.process_time() - cpu0
            if variant.helper_cpu:  # a helper process's CPU counts as the client's
                cpu += variant.helper_cpu[0] - helper0
            answer(cpu_s=cpu, wall_s=time.perf_counter() - wall0)
        elif op == "report":
            answer(report=repr(dispatcher_of(variant.client).report()))
        elif op == "bound":
            answer(**queue_bound(variant))
        elif op == "soak":
            answer(**soak(variant, command["n"], command["every"]))
        elif op == "close":
            wall0 = time.perf_counter()
            report = variant.close()
            wall = time.perf_counter() - wall0
            answer(wall_s=wall, report=repr(report) if report is not None else None)
        elif op == "exit":
            answer(bye=True)
            break
        else:
            raise SystemExit(f"unknown op {op!r}")


if __name__ == "__main__":
    main()
