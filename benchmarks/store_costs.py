"""What the encrypted content store costs, per call and per operation.

    .venv/bin/python benchmarks/store_costs.py [--calls 3000] [--users 200]

1. The caller's part: the wall time of a chat call against an in-process `MockBackend`,
   median and p99, with the store off and on (and the audit log on, for comparison),
   side by side in one run. With the store on, the caller only keeps the call's content
   and enqueues its record; the rest happens on the worker and the store's lane.
2. The worker's and the lane's part, per record, on one thread: the privacy step's
   STORE view, `encode` + `pack` (JSON), and `send` (per-user key lookup, AES-GCM seal,
   one SQLite transaction per batch) for batches of 1, 16 and 256 records.
3. Throughput: how long a client takes to flush `--calls` calls into the store, and the
   database size per record.
4. Operations: export of one user's records, deletion of a user (with the scrub of the
   files), key rotation for `--users` users, prune.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pipeclient
from pipeclient._builder import build_pipeline
from pipeclient._config.keys import decode_key
from pipeclient._config.settings import load_settings
from pipeclient._sinks.store import build_store_sink
from pipeclient._store.crypto import KeyEncryptionKey
from pipeclient._store.store import ContentStore, NewRecord
from pipeclient._telemetry.privacy import STORE
from pipeclient._telemetry.record import CallTracker
from pipeclient.testing import MockBackend

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant. " * 4},
    {"role": "user", "content": "Summarise the attached ticket in two sentences. " * 8},
]


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def caller_part(tmp: Path, calls: int) -> None:
    print(f"1. the caller's part: wall time per chat call ({calls} calls, in-process backend)")
    variants: dict[str, dict[str, Any] | None] = {
        "no telemetry": None,
        "audit log": {"audit": {"enabled": True, "path": str(tmp / "a.jsonl")}},
        "store": {"store": {"enabled": True, "path": str(tmp / "c1.db")}},
        "store + audit log": {
            "store": {"enabled": True, "path": str(tmp / "c2.db")},
            "audit": {"enabled": True, "path": str(tmp / "b.jsonl")},
        },
    }
    baseline = None
    for name, telemetry in variants.items():
        client = pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry)
        for _ in range(200):  # warm up: imports, the lane's thread, SQLite's cache
            client.chat.completions.create(model="m", messages=MESSAGES)
        client.flush()
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            client.chat.completions.create(model="m", messages=MESSAGES)
            times.append((time.perf_counter() - started) * 1e6)
        client.close()
        median, p99 = statistics.median(times), _percentile(times, 0.99)
        baseline = baseline or median
        print(
            f"   {name:<18} median {median:7.1f} us  p99 {p99:7.1f} us  "
            f"({median / baseline:.2f}x the median without telemetry)"
        )


def _records(count: int, users: int) -> list[Any]:
    """Finished chat calls, as a client's tracker emits them, for `users` users."""
    records: list[Any] = []
    body = {"model": "m", "messages": MESSAGES}
    for index in range(count):
        tracker = CallTracker(
            request_id=f"req-{index}",
            operation="chat",
            body=body,
            stream=False,
            no_log=False,
            trace=None,
            capture_content=True,
            emit=records.append,
        )
        tracker.request_body = json.dumps(body).encode()
        tracker.attempt("mock", "http://mock/v1", False)
        tracker.finish(
            output=[{"role": "assistant", "content": "A short answer. " * 10}],
            input_tokens=120,
            output_tokens=40,
        )
    return [
        dataclasses.replace(record, user_id=f"user-{index % users}")
        for index, record in enumerate(records)
    ]


def lane_part(tmp: Path, count: int) -> None:
    print(f"\n2. the worker's and the lane's part, per record ({count} records, one thread)")
    os.environ["PIPECLIENT_STORE_KEY"] = _key()
    settings = load_settings({"store": {"enabled": True, "path": str(tmp / "lane.db")}})
    pipeline = build_pipeline(settings)
    assert pipeline is not None
    privacy = pipeline.privacy
    pipeline.close()
    records = _records(count, users=50)
    sink = build_store_sink(
        settings.config.store, api_keys={}, key_source="benchmark", path_source=None
    )

    def timed(work: Callable[[], Any]) -> tuple[float, Any]:
        started = time.perf_counter()
        result = work()
        return (time.perf_counter() - started) / count * 1e6, result

    view_us, views = timed(lambda: [privacy.view(r, STORE) for r in records])
    encode_us, payloads = timed(lambda: [p for v in views for p in sink.encode(v)])
    pack_us, packed = timed(lambda: sink.pack(payloads))
    print(f"   privacy view (STORE)  {view_us:7.1f} us")
    print(f"   encode                {encode_us:7.1f} us")
    print(f"   pack (JSON bytes)     {pack_us:7.1f} us   {len(packed[0].plaintext)} bytes each")
    for batch in (1, 16, 256):

        def send(size: int = batch) -> None:
            for start in range(0, count, size):
                sink.send(packed[start : start + size], 10.0)

        send_us, _ = timed(send)
        print(
            f"   send, batches of {batch:<4} {send_us:7.1f} us  (seal + one transaction per batch)"
        )
    sink.shutdown(1.0)


def throughput(tmp: Path, calls: int) -> None:
    print(f"\n3. throughput: {calls} calls into the store, flushed")
    path = tmp / "through.db"
    client = pipeclient.Client(
        backends=[MockBackend().backend()],
        telemetry={"store": {"enabled": True, "path": str(path)}},
    )
    started = time.perf_counter()
    for index in range(calls):
        client.chat.completions.create(model="m", messages=MESSAGES, ephemeral=index % 2 == 0)
    issued = time.perf_counter() - started
    report = client.flush(60)
    flushed = time.perf_counter() - started
    client.close()
    assert report is not None and report.complete, report
    size = sum(
        Path(str(path) + suffix).stat().st_size
        for suffix in ("", "-wal")
        if Path(str(path) + suffix).exists()
    )
    print(
        f"   calls issued in {issued:.2f} s, all stored after {flushed:.2f} s "
        f"({calls / flushed:,.0f} records/s); {size / calls:,.0f} bytes on disk per record"
    )


def operations(tmp: Path, users: int) -> None:
    print(f"\n4. operations ({users} users, 20 records each)")
    kek = KeyEncryptionKey(decode_key(_key()))
    store = ContentStore.open(str(tmp / "ops.db"), kek, key_source="benchmark")
    body = b'{"input": "' + b"x" * 1500 + b'"}'
    now = time.time()
    for user in range(users):
        store.put(
            [
                NewRecord(
                    f"user-{user}", f"r-{user}-{i}", now - i, now - 1 if i < 5 else None, body
                )
                for i in range(20)
            ]
        )

    def timed(what: str, work: Callable[[], Any]) -> None:
        started = time.perf_counter()
        result = work()
        print(f"   {what:<34} {(time.perf_counter() - started) * 1e3:8.2f} ms  ({result})")

    timed("export one user (15 live records)", lambda: len(store.records(user_id="user-7")))
    timed("show one request", lambda: len(store.records(request_id="r-9-12")))
    timed("delete one user, with the scrub", lambda: store.delete_user("user-3"))
    timed(
        f"rotate the key ({users - 1} data keys)",
        lambda: store.rotate(KeyEncryptionKey(os.urandom(32))),
    )
    timed("prune (expired ephemeral records)", lambda: store.prune())
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    for name in list(os.environ):
        if name.startswith(("PIPECLIENT_", "OPENAI_", "POSTHOG_", "LANGFUSE_", "OTEL_")):
            del os.environ[name]
    os.environ.pop("DO_NOT_TRACK", None)
    os.environ["PIPECLIENT_STORE_KEY"] = _key()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        os.chdir(tmp)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        caller_part(tmp, args.calls)
        lane_part(tmp, args.calls)
        throughput(tmp, args.calls)
        operations(tmp, args.users)


if __name__ == "__main__":
    main()
