"""Tail latency with every stream on, against raw httpx and the bare openai SDK, in one run.

    .venv/bin/python benchmarks/tail_latency.py [--rounds 6] [--calls 300] [--streams 60]
        [--repeat 1] [--baseline PYTHON] [--helper] [--hold SECONDS,...]

Raw httpx, the bare openai SDK, pipeclient without telemetry and pipeclient with every
stream on (PostHog, Langfuse, OTLP, the gateway, the audit log) run side by side against
the loopback backend, with `compare.py`'s machinery (`run.py`'s servers and workers, a new
shuffled order each round, a settle after each block so that CPU counts the exporter
threads). Reported per client: median and p99 of calls, of streams (to the last chunk) and
of the time to the first chunk, CPU per call and per stream; then the targets, met or not.
`--baseline PYTHON` adds `pipeclient+all` run by another checkout's interpreter (its venv's
`bin/python`: that checkout's pipeclient, this checkout's harness), measured in the same
rounds. `--helper` adds `pipeclient+all+helper`, a what-if (not a pipeclient feature):
the dispatcher in a forked helper process fed pickled records, its CPU counted. `--hold
0.0005,0` adds `pipeclient+all` with the worker's slice at each length (0: no slices).
`--repeat N` runs the whole measurement N times, each with fresh processes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from compare import command_line
from run import Sample, Server, Worker, _git, clean_env, delivered, log

CLIENTS = ["httpx", "openai", "pipeclient", "pipeclient+all"]
BASELINE = "pipeclient+all (baseline)"
HELPER = "pipeclient+all+helper"
NO_SLICES = "pipeclient+all, no slices"


def measure(args: argparse.Namespace, seed: int) -> tuple[dict[str, Sample], dict[str, object]]:
    tmp = Path(tempfile.mkdtemp(prefix="pipeclient-tail-"))
    (tmp / "home").mkdir()
    env = clean_env(tmp / "home")
    servers: list[Server] = []
    workers: list[Worker] = []
    try:
        llm, capture = Server("llm", env, tmp), Server("capture", env, tmp)
        servers += [llm, capture]
        llm_url, capture_url = (
            f"http://127.0.0.1:{llm.ports[0]}",
            f"http://127.0.0.1:{capture.ports[0]}",
        )
        for variant in CLIENTS + ([HELPER] if args.helper else []):
            slug = variant.replace("+", "-")
            workers.append(
                Worker(variant, False, llm_url, f"{capture_url}/w/{slug}", tmp / "w" / slug, env)
            )
        if args.baseline:
            slug = "pipeclient-all-baseline"
            baseline = Worker(
                "pipeclient+all",
                False,
                llm_url,
                f"{capture_url}/w/{slug}",
                tmp / "w" / slug,
                env,
                python=args.baseline,
            )
            baseline.name = BASELINE
            workers.append(baseline)
        for hold in args.hold:
            slug = f"pipeclient-all-hold-{hold}"
            worker = Worker(
                "pipeclient+all",
                False,
                llm_url,
                f"{capture_url}/w/{slug}",
                tmp / "w" / slug,
                {**env, "BENCH_SLICE_HOLD_S": str(hold)},
            )
            worker.name = f"pipeclient+all, hold {hold * 1e3:g} ms" if hold > 0 else NO_SLICES
            workers.append(worker)
        for worker in workers:
            if not worker.wait_ready(180):
                raise SystemExit(f"{worker.name}: {worker.error}")
        samples = {w.name: Sample() for w in workers}
        rng = random.Random(seed)
        for index in range(args.rounds):
            order = list(workers)
            rng.shuffle(order)
            for worker in order:
                for kind, n in (("call", args.calls), ("stream", args.streams)):
                    if not samples[worker.name].block(worker, kind, n):
                        raise SystemExit(f"{worker.name}: {worker.error}")
            log(f"round {index + 1}/{args.rounds} done")
        counts = delivered(
            capture.stats(), llm.stats(), [w for w in workers if w.name in [*CLIENTS, HELPER]]
        )
    finally:
        for worker in workers:
            worker.stop()
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return samples, counts


def cpu_us(sample: Sample, kind: str) -> float:
    n = len(sample.call_ns if kind == "call" else sample.stream_ns)
    return (sample.call_cpu_s if kind == "call" else sample.stream_cpu_s) / max(1, n) * 1e6


def table(samples: dict[str, Sample]) -> list[str]:
    header = ["client", "calls", "call p50", "call p99", "stream p50", "stream p99"]
    header += ["TTFC p50", "TTFC p99", "CPU/call", "CPU/stream"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * 9]
    for name, s in samples.items():
        cells = [name, f"{len(s.call_ns):,}"]
        for what in ("call_ns", "stream_ns", "ttfc_ns"):
            cells += [f"{s.median_us(what):,.0f}", f"{s.p99_us(what):,.0f}"]
        cells += [f"{cpu_us(s, 'call'):,.0f}", f"{cpu_us(s, 'stream'):,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def verdicts(samples: dict[str, Sample], name: str = "pipeclient+all") -> list[str]:
    """The targets: every stream on against raw httpx and the bare openai SDK."""
    all_on, httpx, openai = samples[name], samples["httpx"], samples["openai"]
    checks = [
        ("call p99 <= openai's p99", all_on.p99_us("call_ns"), openai.p99_us("call_ns"), 1.0),
        ("call p99 <= 1.5x httpx's p99", all_on.p99_us("call_ns"), httpx.p99_us("call_ns"), 1.5),
        ("stream p99 <= 1.5x httpx's", all_on.p99_us("stream_ns"), httpx.p99_us("stream_ns"), 1.5),
        ("TTFC p99 <= 1.25x httpx's", all_on.p99_us("ttfc_ns"), httpx.p99_us("ttfc_ns"), 1.25),
        (
            "call median <= 1.25x httpx's",
            all_on.median_us("call_ns"),
            httpx.median_us("call_ns"),
            1.25,
        ),
        ("call median <= openai's", all_on.median_us("call_ns"), openai.median_us("call_ns"), 1.0),
        (
            "stream median <= 1.5x httpx's",
            all_on.median_us("stream_ns"),
            httpx.median_us("stream_ns"),
            1.5,
        ),
        ("CPU/call <= openai's", cpu_us(all_on, "call"), cpu_us(openai, "call"), 1.0),
    ]
    out = []
    for label, value, base, factor in checks:
        verdict = "met" if value <= base * factor else "MISSED"
        out.append(
            f"* {name}: {label}: {value:,.0f} vs {base:,.0f} us = {value / base:.2f}x: {verdict}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=300, help="non-streaming calls per round")
    parser.add_argument("--streams", type=int, default=60, help="streams per round")
    parser.add_argument("--repeat", type=int, default=1, help="whole runs, fresh processes each")
    parser.add_argument("--baseline", default="", help="another checkout's venv python")
    parser.add_argument(
        "--helper",
        action="store_true",
        help=f"also {HELPER}: a what-if with the dispatcher in a helper process (_variants.py)",
    )
    parser.add_argument(
        "--hold",
        type=lambda text: [float(v) for v in text.split(",") if v],
        default=[],
        help="also pipeclient+all with the worker's slice set to each of these seconds "
        "(0: no slices), e.g. 0.0005,0.001,0",
    )
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    if args.baseline and not os.access(args.baseline, os.X_OK):
        raise SystemExit(f"--baseline {args.baseline}: not an executable interpreter")

    print(f"command: `{command_line().replace('compare.py', 'tail_latency.py')}`")
    dirty = _git("status", "--porcelain", "pipeclient")
    print(
        f"pipeclient at git {_git('rev-parse', '--short', 'HEAD')}"
        f"{' with uncommitted changes in pipeclient/' if dirty else ''}; {os.cpu_count()} CPUs; "
        f"{args.rounds} rounds x {args.calls} calls + {args.streams} streams per client per run"
    )
    p99s: dict[str, list[float]] = {}
    for run in range(args.repeat):
        started = time.monotonic()
        samples, counts = measure(args, args.seed + run)
        print(
            f"\n### run {run + 1} of {args.repeat} ({time.monotonic() - started:.0f} s, "
            f"load average {os.getloadavg()[0]:.2f}); microseconds\n"
        )
        print("\n".join(table(samples)))
        print()
        print("\n".join(verdicts(samples)))
        for other in samples:
            if other.startswith("pipeclient+all") and other != "pipeclient+all":
                print("\n".join(verdicts(samples, other)))
        print(
            "\nDelivered, counted at the capture: "
            + "; ".join(
                f"{name}: "
                + ", ".join(f"{k} {v}" for k, v in found.items() if not isinstance(v, dict))
                for name, found in counts.items()
            )
        )
        for name, s in samples.items():
            p99s.setdefault(name, []).append(s.p99_us("call_ns"))
    if args.repeat > 1:
        print(
            "\ncall p99 over the runs (us): "
            + "; ".join(
                f"{name} {statistics.median(v):,.0f} (median; {min(v):,.0f}-{max(v):,.0f})"
                for name, v in p99s.items()
            )
        )


if __name__ == "__main__":
    sys.exit(main())
