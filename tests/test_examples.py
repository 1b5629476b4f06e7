"""The examples run offline, as a user runs them, and show what arrived."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPECLIENT_", "OPENAI_"))}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart() -> None:
    out = run("quickstart.py")
    assert "chat: Mock reply to: Say hello in five words." in out
    primary, standby = [line.split(": ")[1] for line in out.splitlines() if "X-Request-Id" in line]
    assert primary == standby


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("telemetry_posthog.py", '"event": "$ai_generation"'),
        ("telemetry_langfuse.py", "langfuse.observation.type = generation"),
        ("telemetry_otlp.py", "gen_ai.operation.name = chat"),
    ],
)
def test_telemetry_examples(name: str, expected: str) -> None:
    out = run(name)
    assert expected in out
