"""pipeclient against raw httpx and the openai SDK (bare and with PostHog's, Langfuse's and
OpenTelemetry's wrappers), side by side in one run, on loopback.

    .venv/bin/python benchmarks/run.py            # the full run, about 8 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # a smoke run, about 2-3 minutes

Needs the benchmark-only packages of benchmarks/requirements.txt. Prints the report
(Markdown tables) on stdout and progress on stderr; `--out FILE` also writes it to a file,
and `--json FILE` the raw figures.

How: a fast asyncio backend (`_server.py llm`) and a telemetry capture (`_server.py
capture`, one healthy port and one that accepts and never answers) run in their own
processes; each client runs in its own worker process (`_worker.py`; the Langfuse and
OpenTelemetry wrappers patch `openai` process-wide), and the workers take turns, in a
shuffled order each round, so drift hits every client alike. Latencies are per call, wall
clock; CPU is `time.process_time()` of the worker over its calls plus the flush after them,
so exporter threads count. Every destination's deliveries are counted at the capture.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

HEALTHY = [
    "httpx",
    "openai",
    "openai+posthog",
    "openai+langfuse",
    "openai+otel",
    "pipeclient",
    "pipeclient+all",
]
TELEMETRY = ["openai+posthog", "openai+langfuse", "openai+otel", "pipeclient+all"]
FLUSH_TIMEOUT_S = 2.0  # pipeclient's default [export] flush_timeout_s
PEER_CLOSE_CAP_S = 30.0
FILLED_FLUSH_TIMEOUT_S = 30.0

_ENV_PREFIXES = ("PIPECLIENT_", "OPENAI_", "POSTHOG_", "LANGFUSE_", "OTEL_")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def clean_env(home: Path) -> dict[str, str]:
    """No configuration leaks in from the machine: no telemetry file, variable or key."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_ENV_PREFIXES)
        # PYTHONDONTWRITEBYTECODE: an editable install would recompile pipeclient at every
        # import, while the peers' bytecode was written by pip: not what users run.
        and k not in ("DO_NOT_TRACK", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    }
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- processes ---------------------------------------------------------------------------


class Server:
    def __init__(self, role: str, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, str(HERE / "_server.py"), role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        assert self.proc.stdout is not None
        self.ports = [int(p) for p in self.proc.stdout.readline().split()]

    def stats(self) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.ports[0], timeout=60)
        try:
            connection.request("GET", "/__stats")
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Worker:
    """One client in its own process; JSON commands in, JSON answers out."""

    def __init__(
        self,
        variant: str,
        hang: bool,
        llm: str,
        capture: str,
        tmp: Path,
        env: dict[str, str],
        python: str = PYTHON,
    ) -> None:
        self.variant = variant
        self.hang = hang
        self.name = variant + (" (hanging)" if hang else "")
        self.tmp = tmp
        self.error: str | None = None
        tmp.mkdir(parents=True, exist_ok=True)
        self.stderr = open(tmp / "stderr.txt", "w")  # noqa: SIM115 - closed in stop()
        args = [
            python,
            str(HERE / "_worker.py"),
            variant,
            "--llm",
            llm,
            "--capture",
            capture,
            "--tmp",
            str(tmp),
        ]
        if hang:
            args.append("--hang")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd=tmp,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready: dict[str, Any] = {}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self, timeout: float) -> bool:
        self.ready = self._answer(timeout) or {}
        return bool(self.ready)

    def ask(self, timeout: float = 600.0, **command: Any) -> dict[str, Any] | None:
        if self.error:
            return None
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.error = "worker exited"
            return None
        return self._answer(timeout)

    def send(self, **command: Any) -> None:
        """Ask without waiting; collect the answer with `_answer`."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def _answer(self, timeout: float) -> dict[str, Any] | None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.error = f"no answer within {timeout:.0f} s"
            return None
        if line is None:
            self.error = "worker exited: " + self.stderr_tail()
            return None
        return json.loads(line)

    def stderr_tail(self) -> str:
        self.stderr.flush()
        text = (self.tmp / "stderr.txt").read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:])

    def stop(self, grace: float = 3.0) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"op": "exit"}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:  # an SDK's exit hook waiting on a dead host
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


# -- figures -----------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Sample:
    call_ns: list[int] = field(default_factory=list)
    stream_ns: list[int] = field(default_factory=list)
    ttfc_ns: list[int] = field(default_factory=list)
    call_cpu_s: float = 0.0
    stream_cpu_s: float = 0.0
    calls: int = 0
    streams: int = 0

    def median_us(self, what: str) -> float:
        values = getattr(self, what)
        return statistics.median(values) / 1e3 if values else float("nan")

    def p99_us(self, what: str) -> float:
        values = getattr(self, what)
        return pct(values, 99) / 1e3 if values else float("nan")

    def block(self, worker: Worker, kind: str, n: int) -> bool:
        """Run one block of calls (or streams) on a worker, then settle its telemetry
        (healthy destinations) so that the CPU figure counts the exporters' work too."""
        answer = worker.ask(op="run", kind=kind, n=n)
        if answer is None:
            return False
        cpu = answer["cpu_s"]
        if not worker.hang:
            settled = worker.ask(op="settle", timeout=60)
            if settled is None:
                return False
            cpu += settled["cpu_s"]
        if kind == "call":
            self.call_ns += answer["lat_ns"]
            self.call_cpu_s += cpu
            self.calls += n
        else:
            self.stream_ns += answer["lat_ns"]
            self.ttfc_ns += answer["ttfc_ns"]
            self.stream_cpu_s += cpu
            self.streams += n
        return True


def server_capacity(port: int, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [PYTHON, str(HERE / "_loadgen.py"), str(port), "--seconds", "1.5"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    pipelined = json.loads(out.stdout)
    out = subprocess.run(
        [PYTHON, str(HERE / "_loadgen.py"), str(port), "--seconds", "1.0", "--depth", "1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    return {"pipelined": pipelined, "one_at_a_time": json.loads(out.stdout)}


IMPORTS = {
    "httpx": "import httpx",
    "openai": "import openai",
    "pipeclient": "import pipeclient",
    "openai + first OpenAI()": "import openai; openai.OpenAI(api_key='sk', base_url=URL)",
    "pipeclient + first Client()": (
        "import pipeclient; pipeclient.Client(api_key='sk', base_url=URL)"
    ),
    "pipeclient + first Client(every stream on)": (
        "import sys; sys.path.insert(0, HERE); from _variants import every_stream, Endpoints; "
        "from pathlib import Path; import pipeclient; "
        "pipeclient.Client(backends=[pipeclient.Backend(name='g', base_url=URL, api_key='k', "
        "kind='gateway')], telemetry=every_stream(Endpoints(URL, URL, False, Path(TMP))))"
    ),
}


def import_times(runs: int, env: dict[str, str], tmp: Path) -> dict[str, list[float]]:
    """Cold import in a fresh interpreter, timed inside it (interpreter start-up excluded)."""
    env = {**env, "PIPECLIENT_GATEWAY_SPOOL_DIR": str(tmp / "spool")}
    results: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for index in range(runs + 1):  # the first round compiles bytecode, if needed: dropped
        for name, statement in IMPORTS.items():
            code = (
                f"URL='http://127.0.0.1:9/v1'; HERE={str(HERE)!r}; TMP={str(tmp)!r}\n"
                "import time; _t = time.perf_counter()\n"
                f"{statement}\n"
                "print(time.perf_counter() - _t)"
            )
            out = subprocess.run(
                [PYTHON, "-c", code],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp,
                check=True,
                timeout=60,
            )
            if index:
                results[name].append(float(out.stdout.strip().splitlines()[-1]))
    return results


def run_script(args: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    try:
        out = subprocess.run(
            [PYTHON, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=HERE.parent,
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    return out.returncode, (out.stdout + out.stderr).strip()


# -- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=500, help="non-streaming calls per round")
    parser.add_argument("--streams", type=int, default=100, help="streams per round")
    parser.add_argument("--import-runs", type=int, default=15)
    parser.add_argument("--soak-calls", type=int, default=100_000)
    parser.add_argument(
        "--filled-soak-calls",
        type=int,
        default=20_000,
        help="calls with flush_timeout_s = 30, so that the queues fill",
    )
    parser.add_argument("--baseline-soak-calls", type=int, default=20_000)
    parser.add_argument("--audit-lines", type=int, default=300_000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer of everything")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls, args.streams, args.import_runs = 3, 200, 40, 5
        args.soak_calls, args.baseline_soak_calls, args.audit_lines = 10_000, 5_000, 50_000
        args.filled_soak_calls = 5_000

    started = time.monotonic()
    loadavg = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="pipeclient-bench-"))
    home = tmp / "home"
    home.mkdir()
    env = clean_env(home)
    results: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "loadavg": loadavg,
    }
    servers: list[Server] = []
    workers: list[Worker] = []
    try:
        log("cold imports")
        results["imports"] = import_times(args.import_runs, env, tmp)

        llm = Server("llm", env, tmp)
        capture = Server("capture", env, tmp)
        servers += [llm, capture]
        llm_url = f"http://127.0.0.1:{llm.ports[0]}"
        capture_ok = f"http://127.0.0.1:{capture.ports[0]}"
        capture_hang = f"http://127.0.0.1:{capture.ports[1]}"

        log("backend capacity")
        results["capacity"] = server_capacity(llm.ports[0], env)

        log("starting the clients")
        for variant in HEALTHY:
            slug = variant.replace("+", "-")
            workers.append(
                Worker(variant, False, llm_url, f"{capture_ok}/w/{slug}", tmp / "w" / slug, env)
            )
        for variant in TELEMETRY:
            slug = variant.replace("+", "-")
            workers.append(
                Worker(
                    variant,
                    True,
                    llm_url,
                    f"{capture_hang}/w/{slug}",
                    tmp / "w" / (slug + "-hang"),
                    env,
                )
            )
        for worker in workers:
            if not worker.wait_ready(180):
                log(f"{worker.name}: {worker.error}")
        samples = {w.name: Sample() for w in workers}
        warmup_calls, warmup_streams = 50, 10
        for sample in samples.values():
            sample.calls, sample.streams = warmup_calls, warmup_streams

        log(f"{args.rounds} rounds x ({args.calls} calls + {args.streams} streams) per client")
        llm_before = llm.stats()
        phase_started = time.perf_counter()
        rng = random.Random(args.seed)
        for round_index in range(args.rounds):
            order = list(workers)
            rng.shuffle(order)
            for worker in order:
                sample = samples[worker.name]
                for kind, n in (("call", args.calls), ("stream", args.streams)):
                    if not sample.block(worker, kind, n):
                        break
            log(f"round {round_index + 1}/{args.rounds} done")
        phase_wall = time.perf_counter() - phase_started
        llm_after = llm.stats()
        results["server_load"] = {
            "requests": llm_after["requests"] - llm_before["requests"],
            "cpu_s": llm_after["cpu_s"] - llm_before["cpu_s"],
            "wall_s": phase_wall,
        }
        results["samples"] = {name: vars(s) for name, s in samples.items()}

        log("closing the clients")
        closes: dict[str, Any] = {}
        for worker in workers:
            if not worker.hang and not worker.error:
                worker.ask(op="settle", timeout=60)
        results["delivered"] = delivered(capture.stats(), llm.stats(), workers)
        for worker in workers:
            if not worker.hang:
                answer = worker.ask(op="close", timeout=60)
                closes[worker.name] = answer["wall_s"] if answer else None
        hanging = {w.variant: w for w in workers if w.hang}
        answer = hanging["pipeclient+all"].ask(op="close", timeout=60)
        closes["pipeclient+all (hanging)"] = answer
        peers = [hanging[name] for name in TELEMETRY if name != "pipeclient+all"]
        for worker in peers:
            worker.send(op="close")
        cap_deadline = time.monotonic() + PEER_CLOSE_CAP_S
        for worker in peers:
            answer = worker._answer(max(0.1, cap_deadline - time.monotonic()))
            closes[worker.name] = answer["wall_s"] if answer else f">{PEER_CLOSE_CAP_S:.0f}"
        results["closes"] = closes
        for worker in workers:
            worker.stop()
        workers.clear()

        log(f"dead destinations: {args.soak_calls:,} calls with pipeclient+all")
        soak_worker = Worker(
            "pipeclient+all", True, llm_url, f"{capture_hang}/w/soak", tmp / "w" / "soak", env
        )
        workers.append(soak_worker)
        soak_worker.wait_ready(120)
        results["bound"] = soak_worker.ask(op="bound", timeout=60)
        every = max(1, args.soak_calls // 10)
        results["soak"] = soak_worker.ask(op="soak", n=args.soak_calls, every=every, timeout=900)
        results["soak_close"] = soak_worker.ask(op="close", timeout=60)
        soak_worker.stop()
        log(
            f"dead destinations, queues filling: {args.filled_soak_calls:,} calls with "
            f"pipeclient+all and [export] flush_timeout_s = {FILLED_FLUSH_TIMEOUT_S:.0f}"
        )
        filled_env = {**env, "PIPECLIENT_EXPORT__FLUSH_TIMEOUT_S": str(FILLED_FLUSH_TIMEOUT_S)}
        filled = Worker(
            "pipeclient+all",
            True,
            llm_url,
            f"{capture_hang}/w/filled",
            tmp / "w" / "filled",
            filled_env,
        )
        workers.append(filled)
        filled.wait_ready(120)
        every = max(1, args.filled_soak_calls // 6)
        results["filled_soak"] = filled.ask(
            op="soak", n=args.filled_soak_calls, every=every, timeout=900
        )
        results["filled_report"] = (filled.ask(op="report", timeout=30) or {}).get("report")
        filled.stop(grace=1.0)  # its close() would wait its 30 s deadline: not measured here
        log(f"baseline: {args.baseline_soak_calls:,} calls with pipeclient, no telemetry")
        base_worker = Worker(
            "pipeclient", False, llm_url, f"{capture_ok}/w/base", tmp / "w" / "base", env
        )
        workers.append(base_worker)
        base_worker.wait_ready(120)
        every = max(1, args.baseline_soak_calls // 5)
        results["baseline_soak"] = base_worker.ask(
            op="soak", n=args.baseline_soak_calls, every=every, timeout=600
        )
        base_worker.stop()
        workers.clear()
        for server in servers:
            server.stop()
        servers.clear()

        log("audit verify")
        results["audit_verify"] = run_script(
            [str(HERE / "audit_verify.py"), "--lines", str(args.audit_lines), "--appends", "2000"],
            env,
            300,
        )
        redaction = HERE / "redaction.py"
        if redaction.exists():
            log("redaction")
            results["redaction"] = run_script([str(redaction)], env, 180)
        else:
            results["redaction"] = None
    finally:
        for worker in workers:
            worker.stop(grace=1.0)
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    results["elapsed_s"] = time.monotonic() - started
    report = render(results, args)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    log(f"done in {results['elapsed_s']:.0f} s")


def delivered(
    capture: dict[str, Any], llm: dict[str, Any], workers: list[Worker]
) -> dict[str, Any]:
    """What each destination received, per client, as counted at the capture."""
    out: dict[str, Any] = {}
    paths = capture["delivered"]

    def total(prefix: str, suffixes: tuple[str, ...], key: str, exclude: str = "") -> int:
        return sum(
            counts.get(key, 0)
            for path, counts in paths.items()
            if path.startswith(prefix)
            and path.endswith(suffixes)
            and not (exclude and exclude in path)
        )

    for worker in workers:
        if worker.hang:
            continue
        prefix = f"/w/{worker.variant.replace('+', '-')}/"
        if worker.variant == "openai+posthog":
            out[worker.name] = {"posthog events": total(prefix, ("batch/",), "events")}
        elif worker.variant == "openai+langfuse":
            out[worker.name] = {"langfuse spans": total(prefix, ("/traces",), "spans")}
        elif worker.variant == "openai+otel":
            out[worker.name] = {
                "otlp spans": total(prefix, ("/traces",), "spans"),
                "otlp metric requests": total(prefix, ("/metrics",), "metric_requests"),
            }
        elif worker.variant == "openai+wrap":  # its gateway events count with pipeclient+all's
            audit = worker.tmp / "audit.jsonl"
            out[worker.name] = {
                "posthog events": total(prefix, ("batch/",), "events"),
                "langfuse spans": total(prefix + "api/public/otel/", ("/traces",), "spans"),
                "otlp spans": total(prefix, ("/traces",), "spans", exclude="/api/public/"),
                "audit lines": sum(1 for _ in audit.open()) if audit.exists() else 0,
            }
        elif worker.variant in ("pipeclient+all", "pipeclient+all+helper"):
            audit = worker.tmp / "audit.jsonl"
            out[worker.name] = {
                "posthog events": total(prefix, ("batch/",), "events"),
                "langfuse spans": total(prefix + "api/public/otel/", ("/traces",), "spans"),
                "otlp spans": total(prefix, ("/traces",), "spans", exclude="/api/public/"),
                "otlp metric requests": total(prefix, ("/metrics",), "metric_requests"),
                "gateway events": sum(
                    c.get("events", 0)
                    for p, c in llm["delivered"].items()
                    if p.endswith("/telemetry")
                ),
                "audit lines": sum(1 for _ in audit.open()) if audit.exists() else 0,
                "requests per destination": {
                    name: total(prefix + sub, suffix, "requests")
                    for name, sub, suffix in (
                        ("posthog", "", ("batch/",)),
                        ("langfuse", "api/public/otel/", ("/traces",)),
                        ("otlp", "v1/", ("/traces",)),
                    )
                }
                | {
                    "gateway": sum(
                        c.get("requests", 0)
                        for p, c in llm["delivered"].items()
                        if p.endswith("/telemetry")
                    )
                },
            }
    out["hung requests (never answered)"] = {
        "capture": sum(capture["hung"].values()),
        "gateway": sum(llm["hung"].values()),
    }
    return out


# -- the report --------------------------------------------------------------------------


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines: list[str] = []
    add = lines.append
    samples = {name: Sample(**s) for name, s in results["samples"].items()}
    floor = samples["httpx"]
    bare = samples["openai"]

    def ratio(value: float, base: float) -> str:
        return f"{value / base:.2f}x" if base and base == base else "-"

    add("## Environment")
    add("")
    add(
        f"* machine: {os.cpu_count()} CPUs (nproc), {platform.machine()}, "
        f"{platform.system()} {platform.release()}"
    )
    add(
        f"* python {platform.python_version()} ({sys.executable}); load average at start "
        f"{results['loadavg'][0]:.2f}, at the end {os.getloadavg()[0]:.2f}"
    )
    dirty = _git("status", "--porcelain", "pipeclient")
    add(
        f"* pipeclient at git {_git('rev-parse', '--short', 'HEAD')}"
        f"{' with uncommitted changes in pipeclient/ (others at work)' if dirty else ''}"
    )
    add(
        "* "
        + ", ".join(
            f"{name} {_version(name)}"
            for name in (
                "httpx",
                "openai",
                "posthog",
                "langfuse",
                "opentelemetry-sdk",
                "opentelemetry-instrumentation-openai-v2",
                "pydantic",
                "pipeclient",
            )
        )
    )
    add(
        f"* command: `.venv/bin/python benchmarks/run.py{' --quick' if args.quick else ''}`; "
        f"{args.rounds} rounds x {args.calls} calls + {args.streams} streams per client "
        f"(+50 calls, 10 streams warm-up), {results['elapsed_s']:.0f} s in all"
    )
    add("")

    add("## The backend is not the bottleneck")
    add("")
    capacity = results["capacity"]
    load = results["server_load"]
    per_request = load["cpu_s"] / max(1, load["requests"]) * 1e6
    fastest = min(s.median_us("call_ns") for s in samples.values())
    add("| | completion | 34-chunk stream |")
    add("|---|---|---|")
    add(
        f"| capacity, 32 pipelined | {capacity['pipelined']['call_rps']:,.0f} req/s | "
        f"{capacity['pipelined']['stream_rps']:,.0f} req/s |"
    )
    add(
        f"| capacity, one at a time (round trip) | "
        f"{capacity['one_at_a_time']['call_rps']:,.0f} req/s | "
        f"{capacity['one_at_a_time']['stream_rps']:,.0f} req/s |"
    )
    add("")
    add(
        f"During the measured rounds it served {load['requests']:,} requests with "
        f"{load['cpu_s']:.1f} s of CPU ({per_request:.0f} us per request, busy "
        f"{100 * load['cpu_s'] / load['wall_s']:.0f}% of the time); the fastest client's "
        f"median call is {fastest:.0f} us ({1e6 / fastest:,.0f} calls/s)."
    )
    add("")

    add(
        "## Cold import (fresh interpreter, median of "
        f"{len(next(iter(results['imports'].values())))})"
    )
    add("")
    imports = {name: statistics.median(v) * 1e3 for name, v in results["imports"].items()}
    add("| import | ms | vs httpx | vs openai |")
    add("|---|---:|---:|---:|")
    for name, ms in imports.items():
        add(
            f"| {name} | {ms:.1f} | {ratio(ms, imports['httpx'])} | "
            f"{ratio(ms, imports['openai'])} |"
        )
    add("")

    add("## Per call, healthy destinations (ratios to raw httpx, CPU to the bare openai SDK)")
    add("")
    add(
        "| client | calls | median us | x | p99 us | x | streams | stream total us | x | "
        "first chunk us | x | CPU/call us | x openai | CPU/stream us | x openai |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in HEALTHY:
        s = samples.get(name)
        if s is None or not s.call_ns:
            add(f"| {name} | failed |")
            continue
        cpu_call = s.call_cpu_s / max(1, len(s.call_ns)) * 1e6
        cpu_stream = s.stream_cpu_s / max(1, len(s.stream_ns)) * 1e6
        bare_call = bare.call_cpu_s / len(bare.call_ns) * 1e6
        bare_stream = bare.stream_cpu_s / len(bare.stream_ns) * 1e6
        add(
            f"| {name} | {len(s.call_ns):,} | {s.median_us('call_ns'):.0f} | "
            f"{ratio(s.median_us('call_ns'), floor.median_us('call_ns'))} | "
            f"{s.p99_us('call_ns'):.0f} | {ratio(s.p99_us('call_ns'), floor.p99_us('call_ns'))} | "
            f"{len(s.stream_ns):,} | {s.median_us('stream_ns'):.0f} | "
            f"{ratio(s.median_us('stream_ns'), floor.median_us('stream_ns'))} | "
            f"{s.median_us('ttfc_ns'):.0f} | "
            f"{ratio(s.median_us('ttfc_ns'), floor.median_us('ttfc_ns'))} | "
            f"{cpu_call:.0f} | {ratio(cpu_call, bare_call)} | "
            f"{cpu_stream:.0f} | {ratio(cpu_stream, bare_stream)} |"
        )
    add("")

    add("## Per call, destinations that accept and never answer")
    add("")
    add(
        "| client | calls | median us | x httpx | vs healthy | p99 us | x httpx | "
        "stream total us | x httpx | vs healthy |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in TELEMETRY:
        s, healthy = samples.get(f"{name} (hanging)"), samples.get(name)
        if s is None or not s.call_ns or healthy is None or not healthy.call_ns:
            add(f"| {name} | failed |")
            continue
        add(
            f"| {name} | {len(s.call_ns):,} | {s.median_us('call_ns'):.0f} | "
            f"{ratio(s.median_us('call_ns'), floor.median_us('call_ns'))} | "
            f"{_delta(s.median_us('call_ns'), healthy.median_us('call_ns'))} | "
            f"{s.p99_us('call_ns'):.0f} | {ratio(s.p99_us('call_ns'), floor.p99_us('call_ns'))} | "
            f"{s.median_us('stream_ns'):.0f} | "
            f"{ratio(s.median_us('stream_ns'), floor.median_us('stream_ns'))} | "
            f"{_delta(s.median_us('stream_ns'), healthy.median_us('stream_ns'))} |"
        )
    add("")

    add("## Delivered, counted at the capture (each call and stream is one event/span)")
    add("")
    for name, counts in results["delivered"].items():
        made = samples[name].calls + samples[name].streams if name in samples else None
        made_text = f" ({made:,} calls and streams made)" if made else ""
        add(
            f"* {name}{made_text}: "
            + ", ".join(
                f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in counts.items()
            )
        )
    add("")

    add("## Dead destinations: memory and close()")
    add("")
    soak = results.get("soak") or {}
    filled = results.get("filled_soak") or {}
    bound = results.get("bound") or {}
    base = results.get("baseline_soak") or {}
    soak_close = results.get("soak_close") or {}
    for title, run, report in (
        (f"default settings (flush_timeout_s = {FLUSH_TIMEOUT_S})", soak, soak_close.get("report")),
        (
            f"`[export] flush_timeout_s = {FILLED_FLUSH_TIMEOUT_S:.0f}`, so that the queues fill",
            filled,
            results.get("filled_report"),
        ),
    ):
        if not run:
            continue
        points = run["rss_mib"]
        add(
            f"pipeclient+all, every destination hanging, {title}: {points[-1][0]:,} calls in "
            f"{run['wall_s']:.0f} s ({run['wall_s'] / max(1, points[-1][0]) * 1e6:.0f} us/call)."
        )
        add("")
        add("| calls | " + " | ".join(f"{n:,}" for n, _ in points) + " |")
        add("|---|" + "---:|" * len(points))
        add("| peak RSS MiB | " + " | ".join(f"{m:.0f}" for _, m in points) + " |")
        add("")
        if report:
            add(f"Its dispatcher's report at the end: `{report}`")
            add("")
    if base:
        points = base["rss_mib"]
        add(
            f"Baseline, pipeclient without telemetry: peak RSS {points[0][1]:.0f} MiB at start, "
            f"{points[-1][1]:.0f} MiB after {points[-1][0]:,} calls."
        )
        add("")
    if bound:
        sizes = ", ".join(f"{k} {v:,} B" for k, v in bound["payload_bytes"].items())
        add(
            f"Bound implied by `[export] max_queue = {bound['max_queue']:,}`: the dispatcher's "
            f"queue holds at most max_queue records ({bound['record_bytes']:,} B each, with "
            f"content) and each destination's lane at most max_queue records' payloads "
            f"({sizes}, deep sizes): {bound['bound_mib']:.0f} MiB above the start "
            "(plus the gateway's spool, on disk, 10,000 events)."
        )
        add("")
    closes = results.get("closes", {})
    add(
        f"close() with the `[export] flush_timeout_s = {FLUSH_TIMEOUT_S}` default "
        f"(target {FLUSH_TIMEOUT_S + 0.2:.1f} s):"
    )
    add("")
    add("| client | destinations | close() s |")
    add("|---|---|---:|")
    hung_all = closes.get("pipeclient+all (hanging)") or {}
    if soak_close:
        add(
            f"| pipeclient+all, after the {soak.get('rss_mib', [[0]])[-1][0]:,}-call soak "
            f"| hanging | {soak_close['wall_s']:.2f} |"
        )
    if hung_all:
        add(f"| pipeclient+all | hanging | {hung_all['wall_s']:.2f} |")
    for name in TELEMETRY:
        if name == "pipeclient+all":
            continue
        value = closes.get(f"{name} (hanging)")
        shown = f"{value:.2f}" if isinstance(value, float) else f"{value} (killed)"
        add(f"| {name} (its shutdown/flush) | hanging | {shown} |")
    for name in HEALTHY:
        value = closes.get(name)
        if isinstance(value, float):
            add(f"| {name} | healthy | {value:.3f} |")
    add("")

    add("## Local work")
    add("")
    code, text = results["audit_verify"]
    add(f"`benchmarks/audit_verify.py --lines {args.audit_lines}` (exit {code}):")
    add("")
    add("```")
    add(text)
    add("```")
    add("")
    if results["redaction"] is None:
        add("Redaction cost per KB: skipped, `benchmarks/redaction.py` is not there yet.")
    else:
        code, text = results["redaction"]
        add(f"`benchmarks/redaction.py` (exit {code}):")
        add("")
        add("```")
        add(text)
        add("```")
    add("")

    add("## Targets")
    add("")
    for verdict, text in targets(results, samples, imports):
        add(f"* {'MET   ' if verdict else 'MISSED'} {text}")
    return "\n".join(lines)


def targets(
    results: dict[str, Any], samples: dict[str, Sample], imports: dict[str, float]
) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    floor, bare = samples["httpx"], samples["openai"]
    everything = samples["pipeclient+all"]
    hanging = samples.get("pipeclient+all (hanging)")
    pc, oa, hx = imports["pipeclient"], imports["openai"], imports["httpx"]
    honest = imports["pipeclient + first Client()"]
    out.append(
        (
            pc <= oa / 3,
            f"import pipeclient <= 1/3 import openai: {pc:.1f} ms vs "
            f"{oa / 3:.1f} ms (with the first Client(): {honest:.1f} ms)",
        )
    )
    out.append(
        (
            pc <= 1.5 * hx,
            f"import pipeclient <= 1.5x import httpx: {pc:.1f} ms vs "
            f"{1.5 * hx:.1f} ms (with the first Client(): {honest:.1f} ms)",
        )
    )
    med, floor_med = everything.median_us("call_ns"), floor.median_us("call_ns")
    out.append(
        (
            med <= 1.25 * floor_med,
            f"every stream on, per-call median <= 1.25x raw httpx: "
            f"{med:.0f} us = {med / floor_med:.2f}x",
        )
    )
    bare_med = bare.median_us("call_ns")
    out.append(
        (
            med <= bare_med,
            f"every stream on, per-call median <= bare openai SDK: "
            f"{med:.0f} us vs {bare_med:.0f} us",
        )
    )
    p99, bare_p99 = everything.p99_us("call_ns"), bare.p99_us("call_ns")
    out.append(
        (
            p99 <= bare_p99,
            f"every stream on, per-call p99 <= bare openai SDK: {p99:.0f} us vs {bare_p99:.0f} us",
        )
    )
    stream, floor_stream = everything.median_us("stream_ns"), floor.median_us("stream_ns")
    out.append(
        (
            stream <= 1.5 * floor_stream,
            f"every stream on, streaming total <= 1.5x raw httpx: {stream / floor_stream:.2f}x",
        )
    )
    cpu = everything.call_cpu_s / len(everything.call_ns) * 1e6
    bare_cpu = bare.call_cpu_s / len(bare.call_ns) * 1e6
    out.append(
        (
            cpu <= bare_cpu,
            f"every stream on, CPU per call (all threads) <= bare openai: "
            f"{cpu:.0f} us vs {bare_cpu:.0f} us",
        )
    )
    if hanging and hanging.call_ns:
        hang_med = hanging.median_us("call_ns")
        quiet = samples["pipeclient"].median_us("call_ns")
        out.append(
            (
                hang_med <= 1.05 * med,
                f"hanging destinations, per-call median within 5% of healthy: {hang_med:.0f} "
                f"us vs {med:.0f} us ({_delta(hang_med, med)}); but {hang_med / floor_med:.2f}x"
                f" raw httpx and {_delta(hang_med, quiet)} on pipeclient without telemetry",
            )
        )
    limit = FLUSH_TIMEOUT_S + 0.2
    times = [
        c.get("wall_s")
        for c in (results.get("soak_close"), results["closes"].get("pipeclient+all (hanging)"))
        if c
    ]
    if times:
        out.append(
            (
                max(times) <= limit,
                "close() with hanging destinations <= deadline + 0.2 s: "
                + ", ".join(f"{t:.2f} s" for t in times),
            )
        )
    bound = results.get("bound")
    for label, run in (
        ("default settings", results.get("soak")),
        (
            f"flush_timeout_s = {FILLED_FLUSH_TIMEOUT_S:.0f}, queues full",
            results.get("filled_soak"),
        ),
    ):
        if not run or not bound:
            continue
        points = run["rss_mib"]
        growth = points[-1][1] - points[0][1]
        out.append(
            (
                growth <= bound["bound_mib"],
                f"memory bounded by the queue ({label}): peak RSS {points[0][1]:.0f} -> "
                f"{points[-1][1]:.0f} MiB over {points[-1][0]:,} calls, +{growth:.0f} MiB "
                f"(implied bound {bound['bound_mib']:.0f} MiB)",
            )
        )
    return out


def _delta(value: float, base: float) -> str:
    return f"{100 * (value / base - 1):+.1f}%"


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=HERE.parent, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.strip()


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
