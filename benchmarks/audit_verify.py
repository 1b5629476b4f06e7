"""How fast `pipeclient audit verify` checks a large log.

Builds a log of N lines (default 1,000,000) in a temporary directory, with the same line
format and chain as `AuditLog.append` (through `format_line`, without the per-line lock
and syscalls, so building is quick), then times `verify` on it and prints lines/second.
Also times `AuditLog.append` itself on a few thousand lines, for scale.

    python benchmarks/audit_verify.py [--lines N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from pipeclient._audit.log import GENESIS, AuditLog, format_line
from pipeclient._audit.verify import verify


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.jsonl"
        started = time.perf_counter()
        build(path, args.lines)
        built = time.perf_counter() - started
        size = path.stat().st_size
        print(f"built {args.lines:,} lines ({size / 2**20:.0f} MiB) in {built:.1f} s")

        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            result = verify(path)
            best = min(best, time.perf_counter() - started)
        assert result.ok and result.head_seq == args.lines, result
        print(
            f"verify: {args.lines:,} lines in {best:.2f} s (best of 3) = "
            f"{args.lines / best:,.0f} lines/s, {size / best / 2**20:.0f} MiB/s"
        )

        appended = Path(directory) / "appended.jsonl"
        with AuditLog(appended, user_id="bench") as log:
            started = time.perf_counter()
            for index in range(args.appends):
                log.append(sample_fields(index))
            elapsed = time.perf_counter() - started
        print(f"AuditLog.append: {elapsed / args.appends * 1e6:.0f} us per line (not durable)")


if __name__ == "__main__":
    main()
