"""How many OTLP spans reach a healthy collector when calls come as fast as one thread
can make them, with default settings: every span sent must arrive.

    .venv/bin/python benchmarks/otlp_delivery.py --calls 5000 20000

The collector is a loopback capture server answering 200 (what an OpenTelemetry Collector
answers a valid request); the spans are counted by decoding each protobuf request. The
backend is pipeclient's in-process mock, so the only sockets are the collector's. Each
count runs in a fresh interpreter: the SDK import on first use is part of what is measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

_CHILD = r"""
import json, sys, time
import pipeclient
from pipeclient.testing import MockBackend
url, calls = sys.argv[1], int(sys.argv[2])
client = pipeclient.Client(
    backends=[MockBackend().backend()],
    telemetry={"otlp": [{"name": "collector", "enabled": True, "endpoint": url}]},
)
messages = [{"role": "user", "content": "hi"}]
started = time.perf_counter()
for _ in range(calls):
    client.chat.completions.create(model="m", messages=messages)
calls_s = time.perf_counter() - started
report = client.close()
print(json.dumps({"calls_s": calls_s, "sent": report.sent, "failed": report.failed,
                  "dropped": report.dropped, "pending": report.pending}))
"""


def spans_in(server: object) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    count = 0
    for request in server.requests_to("/v1/traces"):  # type: ignore[attr-defined]
        message = ExportTraceServiceRequest()
        message.ParseFromString(request.content)
        count += sum(len(scope.spans) for rs in message.resource_spans for scope in rs.scope_spans)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[5000, 20000])
    args = parser.parse_args()
    from pipeclient.testing import CaptureServer

    print("| calls | spans arrived | lost | failed (report) | dropped | calls took |")
    print("|---:|---:|---:|---:|---:|---:|")
    for calls in args.calls:
        with CaptureServer() as server:
            started = time.perf_counter()
            child = subprocess.run(
                [sys.executable, "-c", _CHILD, server.url, str(calls)],
                capture_output=True,
                text=True,
                timeout=600,
            )
            if child.returncode != 0:
                raise SystemExit(child.stderr)
            report = json.loads(child.stdout.strip().splitlines()[-1])
            arrived = spans_in(server)
            elapsed = time.perf_counter() - started
        print(
            f"| {calls:,} | {arrived:,} | {calls - arrived:,} "
            f"| {report['failed'].get('otlp:collector', 0):,} | {report['dropped']:,} "
            f"| {report['calls_s']:.1f} s (all {elapsed:.1f} s) |"
        )


if __name__ == "__main__":
    main()
