"""What a batching delay in pipeclient's dispatcher would buy, measured before it exists.

    .venv/bin/python benchmarks/whatif_batching.py [--rounds N]

`run.py` shows pipeclient with every stream on sending about one HTTP request per
destination for every two calls: each destination's lane sends as soon as anything is
queued, and the worker hands records over one at a time. This runs pipeclient+all as it
is and with a delay patched in from the outside (`_variants._Linger`: a lane waits 0.5 s
after its first payload, the worker 50 ms after its first record, so what arrives
meanwhile goes in the same batch), side by side with raw httpx, the bare openai SDK and
pipeclient without telemetry, and counts the requests each destination received.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from run import Sample, Server, Worker, clean_env, log

CLIENTS = {
    "httpx": "httpx",
    "openai": "openai",
    "pipeclient": "pipeclient",
    "pipeclient+all": "pipeclient+all",
    "pipeclient+all, lanes linger 0.5s": "wi-lanes",
    "pipeclient+all, worker 50ms + lanes 0.5s": "wi-both",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--streams", type=int, default=100)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pipeclient-whatif-"))
    (tmp / "home").mkdir()
    env = clean_env(tmp / "home")
    servers: list[Server] = []
    workers: list[Worker] = []
    try:
        llm, capture = Server("llm", env, tmp), Server("capture", env, tmp)
        servers += [llm, capture]
        llm_url = f"http://127.0.0.1:{llm.ports[0]}"
        for variant, slug in CLIENTS.items():
            capture_url = f"http://127.0.0.1:{capture.ports[0]}/w/{slug}"
            workers.append(Worker(variant, False, llm_url, capture_url, tmp / "w" / slug, env))
        for worker in workers:
            if not worker.wait_ready(180):
                raise SystemExit(f"{worker.name}: {worker.error}")
        samples = {w.variant: Sample() for w in workers}
        rng = random.Random(8)
        for index in range(args.rounds):
            order = list(workers)
            rng.shuffle(order)
            for worker in order:
                sample = samples[worker.variant]
                for kind, n in (("call", args.calls), ("stream", args.streams)):
                    answer = worker.ask(op="run", kind=kind, n=n)
                    settled = worker.ask(op="settle", timeout=60)
                    if answer is None or settled is None:
                        raise SystemExit(f"{worker.name}: {worker.error}")
                    cpu = answer["cpu_s"] + settled["cpu_s"]
                    if kind == "call":
                        sample.call_ns += answer["lat_ns"]
                        sample.call_cpu_s += cpu
                    else:
                        sample.stream_ns += answer["lat_ns"]
                        sample.stream_cpu_s += cpu
            log(f"round {index + 1}/{args.rounds}")
        stats = capture.stats()["delivered"]
        gateway = llm.stats()["delivered"]
    finally:
        for worker in workers:
            worker.stop()
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    floor = samples["httpx"]
    bare_cpu = samples["openai"].call_cpu_s / len(samples["openai"].call_ns) * 1e6
    print(
        f"{args.rounds} rounds x {args.calls} calls + {args.streams} streams per client, "
        "destinations healthy\n"
    )
    print(
        "| client | median us | x httpx | p99 us | stream us | x httpx | CPU/call us | "
        "x openai | requests to posthog / langfuse / otlp traces |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for variant, slug in CLIENTS.items():
        s = samples[variant]
        med, stream = s.median_us("call_ns"), s.median_us("stream_ns")
        cpu = s.call_cpu_s / len(s.call_ns) * 1e6
        requests = "-"
        if variant.startswith("pipeclient+all"):
            prefix = f"/w/{slug}/"
            counts = [
                sum(
                    c.get("requests", 0)
                    for p, c in stats.items()
                    if p.startswith(prefix + sub) and p.endswith(end)
                )
                for sub, end in (
                    ("", "batch/"),
                    ("api/public/otel/", "/traces"),
                    ("v1/", "/traces"),
                )
            ]
            events = sum(
                c.get("events", 0)
                for p, c in stats.items()
                if p.startswith(prefix) and p.endswith("batch/")
            )
            requests = " / ".join(f"{n:,}" for n in counts) + f" ({events:,} events)"
        print(
            f"| {variant} | {med:.0f} | {med / floor.median_us('call_ns'):.2f}x | "
            f"{s.p99_us('call_ns'):.0f} | {stream:.0f} | "
            f"{stream / floor.median_us('stream_ns'):.2f}x | {cpu:.0f} | "
            f"{cpu / bare_cpu:.2f}x | {requests} |"
        )
    gateway_requests = sum(c.get("requests", 0) for p, c in gateway.items())
    print(
        f"\ngateway telemetry requests, the three pipeclient+all variants together: "
        f"{gateway_requests:,}"
    )


if __name__ == "__main__":
    started = time.monotonic()
    main()
    log(f"done in {time.monotonic() - started:.0f} s")
