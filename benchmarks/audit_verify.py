"""How fast the audit log appends and verifies, with and without its Merkle tree, side by
side with the code of a baseline revision (default: where this branch left `main`).

Builds a log of N lines (default 1,000,000) in a temporary directory, with the same line
format and chain as `AuditLog.append` (through `format_line`, without the per-line lock
and syscalls, so building is quick), then times, best of 3 and interleaved:

* `verify` of the baseline revision, `verify` now, and `verify` now against a checkpoint
  of the whole log (the chain plus the tree: every leaf hashed, the head compared);
* `audit checkpoint`'s work (chain, tree, leaf hashes kept) and one inclusion proof,
  with the proof's size in bytes;
* `AuditLog.append` per line (not durable) of the baseline and now, without and with
  segment rotation on (a limit never reached, so only its check is paid).

    python benchmarks/audit_verify.py [--lines N] [--baseline REV]

The baseline is the `pipeclient` package of REV (`git archive`), imported under another
name; `--baseline none` skips it.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeclient._audit.checkpoint import Checkpoint
from pipeclient._audit.log import GENESIS, AuditLog, format_line
from pipeclient._audit.rotate import SegmentRotation
from pipeclient._audit.tree import checkpoint_log, prove, tree_file_for
from pipeclient._audit.verify import verify

ROOT = Path(__file__).resolve().parent.parent


def sample_fields(index: int) -> dict[str, object]:
    failed = index % 50 == 0
    return {
        "user_id": "sha256:3f2a9c0b7d1e",
        "timestamp": "2025-06-01T12:00:00.000Z",
        "endpoint": "/v1/chat/completions",
        "method": "POST",
        "model": "gpt-4o-mini",
        "http_status": 429 if failed else 200,
        "x_request_id": str(uuid.UUID(int=index)),
        "error": {"type": "RateLimitError", "code": 429} if failed else None,
        "timings": {"ttft_ms": 120.5 + index % 7, "total_ms": 812.345 + index % 100},
        "token_counts": {"prompt": 12 + index % 30, "output": 57},
    }


def build(path: Path, lines: int) -> None:
    prev, chunk = GENESIS, []
    with path.open("wb") as file:
        for seq in range(1, lines + 1):
            data, prev = format_line(sample_fields(seq), seq, prev)
            chunk.append(data)
            if len(chunk) == 10_000:
                file.write(b"".join(chunk))
                chunk.clear()
        file.write(b"".join(chunk))


def baseline_package(rev: str, directory: Path) -> ModuleType | None:
    """The `pipeclient` package of `rev`, importable as `pipeclient_baseline`."""
    if rev == "none":
        return None
    if rev == "merge-base":
        found = subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True
        )
        if found.returncode != 0:
            print("no baseline: `git merge-base HEAD main` failed", file=sys.stderr)
            return None
        rev = found.stdout.strip()
    archive = subprocess.run(
        ["git", "archive", rev, "pipeclient"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    (directory / "pipeclient").rename(directory / "pipeclient_baseline")
    sys.path.insert(0, str(directory))
    print(f"baseline: pipeclient at {rev[:12]}")
    return importlib.import_module("pipeclient_baseline")


def best_of(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def append_per_line(make_log: Callable[[Path], Any], directory: Path, count: int) -> float:
    path = directory / f"append-{uuid.uuid4().hex}.jsonl"
    log = make_log(path)
    try:
        started = time.perf_counter()
        for index in range(count):
            log.append(sample_fields(index))
        return (time.perf_counter() - started) / count
    finally:
        log.close()
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=5_000)
    parser.add_argument("--baseline", default="merge-base", help="a git revision, or none")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        base = baseline_package(args.baseline, work / "baseline")
        base_verify = importlib.import_module(f"{base.__name__}._audit.verify") if base else None
        base_log = importlib.import_module(f"{base.__name__}._audit.log") if base else None

        path = work / "audit.jsonl"
        started = time.perf_counter()
        build(path, args.lines)
        size = path.stat().st_size
        print(
            f"built {args.lines:,} lines ({size / 2**20:.0f} MiB) in "
            f"{time.perf_counter() - started:.1f} s"
        )

        made, (checkpoint, _leaves) = best_of(
            1, lambda: checkpoint_log(path, None, tree_file=tree_file_for(path))
        )
        print(f"checkpoint (chain + tree + tree file): {made:.2f} s")
        assert isinstance(checkpoint, Checkpoint) and checkpoint.size == args.lines

        times: dict[str, float] = {}
        for _ in range(3):  # interleaved, so a busy neighbour hurts every variant alike
            if base_verify is not None:
                spent, result = best_of(1, lambda: base_verify.verify(path))
                assert result.ok
                times["before"] = min(times.get("before", spent), spent)
            spent, result = best_of(1, lambda: verify(path))
            assert result.ok and result.head_seq == args.lines, result
            times["now"] = min(times.get("now", spent), spent)
            spent, result = best_of(1, lambda: verify(path, checkpoint=checkpoint))
            assert result.ok and result.tree_size == args.lines, result
            times["now, with the checkpoint"] = min(
                times.get("now, with the checkpoint", spent), spent
            )
        reference = times.get("before", times["now"])
        for name, spent in times.items():
            print(
                f"verify {name}: {spent:.2f} s = {args.lines / spent:,.0f} lines/s "
                f"({spent / reference:.2f}x {'before' if 'before' in times else 'now'})"
            )

        request = str(uuid.UUID(int=args.lines // 2))
        spent, proof = best_of(1, lambda: prove(path, checkpoint, request_id=request))
        entry = proof["entries"][0]
        text = json.dumps(proof)
        print(
            f"inclusion proof at {args.lines:,} lines: {len(entry['inclusion_path'])} hashes = "
            f"{32 * len(entry['inclusion_path'])} bytes raw, JSON {len(text)} bytes with its "
            f"line ({len(text) - len(entry['line'])} without); built in {spent:.2f} s"
        )

        variants: dict[str, Callable[[Path], Any]] = {}
        if base_log is not None:
            variants["before"] = lambda p: base_log.AuditLog(p, user_id="bench")
        variants["now"] = lambda p: AuditLog(p, user_id="bench")
        variants["now, rotation on"] = lambda p: AuditLog(
            p, user_id="bench", rotation=SegmentRotation(1 << 40)
        )
        per_line: dict[str, float] = {}
        for _ in range(3):
            for name, make in variants.items():
                spent = append_per_line(make, work, args.appends)
                per_line[name] = min(per_line.get(name, spent), spent)
        reference = per_line.get("before", per_line["now"])
        for name, spent in per_line.items():
            print(
                f"AuditLog.append {name}: {spent * 1e6:.1f} us per line "
                f"({spent / reference:.2f}x {'before' if 'before' in per_line else 'now'})"
            )


if __name__ == "__main__":
    main()
