"""The benchmark scripts run (tiny counts, no figure checked): they must not rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_async_concurrency_smoke(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PIPECLIENT_", "OPENAI_"))}
    out = tmp_path / "report.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "async_concurrency.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report in result.stdout
    for title in ("Non-streamed chat calls", "Streamed chat calls"):
        assert f"### {title}" in report
    for client in ("httpx.AsyncClient", "AsyncOpenAI", "pipeclient AsyncClient, every stream on"):
        assert report.count(f"| {client} | 8 |") == 2  # one row per kind
    # Every call of the every-stream-on blocks reached PostHog and the OTLP collector.
    delivered = re.findall(r"(\d+) calls, (\d+) PostHog events, (\d+) OTLP spans", report)
    assert len(delivered) == 2
    for calls, events, spans in delivered:
        assert int(calls) > 0
        assert events == calls and spans == calls
