"""The examples run offline, as a user runs them, and show what arrived."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PIPECLIENT_", "OPENAI_"))}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env={**environ, **(env or {})},
        timeout=120,
    )
    assert result.returncode == code, result.stderr
    return result.stdout + result.stderr


def refused_url() -> str:
    """A loopback URL nothing listens on: any connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_quickstart() -> None:
    out = run("quickstart.py")
    assert "chat: Mock reply to: Say hello in five words." in out
    primary, standby = [line.split(": ")[1] for line in out.splitlines() if "X-Request-Id" in line]
    assert primary == standby


def test_quickstart_stays_offline_whatever_the_environment_holds() -> None:
    refused = refused_url()
    env = {
        "OPENAI_API_KEY": "sk-test-not-a-real-key",
        "PIPECLIENT_BASE_URL": refused,
        "PIPECLIENT_API_KEY": "sk-test-not-a-real-key",
        "PIPECLIENT_POSTHOG__ENABLED": "true",
        "POSTHOG_API_KEY": "phc_test",
        "POSTHOG_HOST": refused.removesuffix("/v1"),
    }
    out = run("quickstart.py", env=env)
    assert "Offline" in out and "chat: Mock reply to: Say hello in five words." in out
    assert "telemetry recorded, not sent: posthog: " in out
    assert "Traceback" not in out


def test_quickstart_goes_online_only_when_asked() -> None:
    from pipeclient.testing import MockBackend

    with MockBackend().serve() as server:
        out = run(
            "quickstart.py",
            "--online",
            env={"PIPECLIENT_BASE_URL": server.url, "PIPECLIENT_API_KEY": "k"},
        )
    assert f"Online: using the backend from the environment: {server.url}" in out
    assert "chat: Mock reply to: Say hello in five words." in out
    refused = {"PIPECLIENT_BASE_URL": refused_url(), "PIPECLIENT_API_KEY": "k"}
    out = run("quickstart.py", "--online", env=refused, code=1)
    assert "APIConnectionError" in out and "Traceback" not in out


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
