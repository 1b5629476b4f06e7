"""The `pipeclient` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeclient.testing import Fault, MockBackend


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PIPECLIENT_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "pipeclient", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def test_chat_against_a_loopback_backend() -> None:
    mock = MockBackend()
    with mock.serve() as server:
        env = {"PIPECLIENT_BASE_URL": server.url, "PIPECLIENT_API_KEY": "mock-key"}
        result = run_cli("chat", "what is a lighthouse", "--model", "m1", env=env)
        streamed = run_cli("chat", "what is a lighthouse", "--stream", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Mock reply to: what is a lighthouse\n"
    assert streamed.returncode == 0 and streamed.stdout == result.stdout
    assert mock.requests[0].json()["model"] == "m1"
    assert mock.requests[1].json()["stream"] is True


def test_chat_offline_with_mock() -> None:
    result = run_cli("chat", "--mock", "hi")
    assert (result.returncode, result.stdout) == (0, "Mock reply to: hi\n")


def test_no_backend_is_a_configuration_error_without_traceback() -> None:
    result = run_cli("chat", "hi")
    assert result.returncode == 2
    assert "PIPECLIENT_BASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_backend_failure_exits_1_without_traceback() -> None:
    mock = MockBackend()
    mock.push(Fault(status=401))
    with mock.serve() as server:
        env = {"PIPECLIENT_BASE_URL": server.url, "PIPECLIENT_API_KEY": "sk-cli-secret-key"}
        result = run_cli("chat", "hi", env=env)
    assert result.returncode == 1
    assert "AuthenticationError" in result.stderr and "Traceback" not in result.stderr
    assert "sk-cli-secret-key" not in result.stderr


@pytest.mark.parametrize("args", [[], ["chat"], ["nonsense"], ["chat", "hi", "--bogus"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2 and "usage:" in result.stderr
