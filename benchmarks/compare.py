"""Latency and CPU of a few clients, side by side: the quick check while optimising.

    .venv/bin/python benchmarks/compare.py [--variants httpx,openai,pipeclient,pipeclient+all]
        [--rounds 4] [--calls 300] [--streams 60] [--hang]

The same machinery as `run.py` (the loopback backend and telemetry capture, one worker
process per client, a new shuffled order each round, a settle after each block so that CPU
includes the exporter threads), without its cold imports, soaks, close() timings and local
work: one Markdown table of latency and CPU, and what each pipeclient+all delivered,
counted at the capture. `--hang` points every client at destinations that accept and never
answer (run.py's hanging capture port, and the gateway's `/hang/` path); then nothing is
settled, as in run.py. A variant written `NAME@hang` runs with hanging destinations beside
the others, so that healthy and hanging are measured in the same run:
`--variants httpx,pipeclient,pipeclient+all,pipeclient+all@hang`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _variants import VARIANTS
from run import Sample, Server, Worker, _git, clean_env, delivered, log

DEFAULT_VARIANTS = "httpx,openai,pipeclient,pipeclient+all"


def variant_list(text: str) -> list[str]:
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name.removesuffix("@hang") not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(VARIANTS)}"
        )
    return names


def command_line() -> str:
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):  # outside the current directory: in full
        python = python.relative_to(Path.cwd())
    return shlex.join([str(python), "benchmarks/compare.py", *sys.argv[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants",
        type=variant_list,
        default=DEFAULT_VARIANTS,
        help=f"comma separated, from: {', '.join(VARIANTS)} (default {DEFAULT_VARIANTS})",
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=300, help="non-streaming calls per round")
    parser.add_argument("--streams", type=int, default=60, help="streams per round")
    parser.add_argument("--hang", action="store_true", help="destinations never answer")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="pipeclient-compare-"))
    (tmp / "home").mkdir()
    env = clean_env(tmp / "home")
    servers: list[Server] = []
    workers: list[Worker] = []
    try:
        llm, capture = Server("llm", env, tmp), Server("capture", env, tmp)
        servers += [llm, capture]
        llm_url = f"http://127.0.0.1:{llm.ports[0]}"
        log(f"starting {', '.join(args.variants)}{' (hanging)' if args.hang else ''}")
        for entry in args.variants:
            variant, hang = entry.removesuffix("@hang"), args.hang or entry.endswith("@hang")
            # as run.py, whose delivered() relies on it (hanging clients deliver nothing)
            slug = variant.replace("+", "-") + ("-hang" if hang else "")
            # run.py's two capture ports: [0] answers, [1] accepts and never answers
            capture_url = f"http://127.0.0.1:{capture.ports[1 if hang else 0]}"
            workers.append(
                Worker(variant, hang, llm_url, f"{capture_url}/w/{slug}", tmp / "w" / slug, env)
            )
        for worker in workers:
            if not worker.wait_ready(180):
                raise SystemExit(f"{worker.name}: {worker.error}")
        samples = {w.name: Sample(calls=50, streams=10) for w in workers}  # the warm-up
        log(f"{args.rounds} rounds x ({args.calls} calls + {args.streams} streams) per client")
        rng = random.Random(args.seed)
        for index in range(args.rounds):
            order = list(workers)
            rng.shuffle(order)
            for worker in order:
                sample = samples[worker.name]
                for kind, n in (("call", args.calls), ("stream", args.streams)):
                    if not sample.block(worker, kind, n):
                        raise SystemExit(f"{worker.name}: {worker.error}")
            log(f"round {index + 1}/{args.rounds} done")
        counts = delivered(capture.stats(), llm.stats(), workers)
    finally:
        for worker in workers:
            worker.stop(grace=1.0 if worker.hang else 3.0)
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    print(render(args, samples, counts, elapsed))
    if any(w.hang for w in workers) and not args.hang:
        print(_hanging_versus_healthy(samples))
    log(f"done in {elapsed:.0f} s")


def render(
    args: argparse.Namespace,
    samples: dict[str, Sample],
    counts: dict[str, Any],
    elapsed: float,
) -> str:
    lines: list[str] = []
    add = lines.append
    floor, bare = samples.get("httpx"), samples.get("openai")

    def ratio(value: float, base: float) -> str:
        return f"{value / base:.2f}x" if base and base == base else "-"

    def cpu(s: Sample, kind: str) -> float:
        n = len(s.call_ns if kind == "call" else s.stream_ns)
        return (s.call_cpu_s if kind == "call" else s.stream_cpu_s) / max(1, n) * 1e6

    dirty = _git("status", "--porcelain", "pipeclient")
    add(f"command: `{command_line()}`")
    add(
        f"pipeclient at git {_git('rev-parse', '--short', 'HEAD')}"
        f"{' with uncommitted changes in pipeclient/' if dirty else ''}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end"
    )
    add(
        f"{args.rounds} rounds x {args.calls} calls + {args.streams} streams per client "
        "(+50 calls, 10 streams warm-up), destinations "
        f"{'hanging (never settled)' if args.hang else 'healthy'}, {elapsed:.0f} s in all"
    )
    add("")
    header = ["client", "calls", "median us"]
    header += ["x httpx"] * bool(floor) + ["p99 us"] + ["x httpx"] * bool(floor)
    header += ["stream total median us"] + ["x httpx"] * bool(floor)
    header += ["first chunk median us"] + ["x httpx"] * bool(floor)
    header += ["CPU/call us"] + ["x openai"] * bool(bare)
    header += ["CPU/stream us"] + ["x openai"] * bool(bare)
    add("| " + " | ".join(header) + " |")
    add("|---|" + "---:|" * (len(header) - 1))
    for name in samples:
        s = samples[name]
        cells = [name, f"{len(s.call_ns):,}"]
        for what, stat in (
            ("call_ns", s.median_us),
            ("call_ns", s.p99_us),
            ("stream_ns", s.median_us),
            ("ttfc_ns", s.median_us),
        ):
            cells.append(f"{stat(what):.0f}")
            if floor:
                base = floor.median_us(what) if stat == s.median_us else floor.p99_us(what)
                cells.append(ratio(stat(what), base))
        for kind in ("call", "stream"):
            cells.append(f"{cpu(s, kind):.0f}")
            if bare:
                cells.append(ratio(cpu(s, kind), cpu(bare, kind)))
        add("| " + " | ".join(cells) + " |")
    add("")
    add("Delivered, counted at the capture (each call and stream is one event/span):")
    add("")
    for name, found in counts.items():
        made = samples[name].calls + samples[name].streams if name in samples else None
        made_text = f" ({made:,} calls and streams made)" if made else ""
        add(f"* {name}{made_text}: " + ", ".join(f"{k} {_counts(v)}" for k, v in found.items()))
    if args.hang and "pipeclient+all" in args.variants:
        add("* (hanging destinations: nothing is delivered, only accepted and never answered)")
    return "\n".join(lines)


def _hanging_versus_healthy(samples: dict[str, Sample]) -> str:
    lines = ["", "Hanging against healthy destinations, same run:", ""]
    for name, s in samples.items():
        healthy = samples.get(name.removesuffix(" (hanging)"))
        if name.endswith(" (hanging)") and healthy is not None:
            call = s.median_us("call_ns") / healthy.median_us("call_ns") - 1
            stream = s.median_us("stream_ns") / healthy.median_us("stream_ns") - 1
            lines.append(f"* {name}: median call {call:+.1%}, median stream {stream:+.1%}")
    return "\n".join(lines)


def _counts(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k} {_counts(v)}" for k, v in value.items()) + ")"
    return f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
