"""The `pipeclient` command: in this process, and as a user runs it where the process matters."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pipeclient.testing import Fault, MockBackend

from .conftest import RunCli


def run_process(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_chat_against_a_loopback_backend(cli: RunCli) -> None:
    mock = MockBackend()
    with mock.serve() as server:
        env = {"PIPECLIENT_BASE_URL": server.url, "PIPECLIENT_API_KEY": "mock-key"}
        result = cli("chat", "what is a lighthouse", "--model", "m1", env=env)
        streamed = cli("chat", "what is a lighthouse", "--stream", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Mock reply to: what is a lighthouse\n"
    assert streamed.returncode == 0 and streamed.stdout == result.stdout
    assert mock.requests[0].json()["model"] == "m1"
    assert mock.requests[1].json()["stream"] is True


def test_chat_offline_with_mock(cli: RunCli) -> None:
    result = cli("chat", "--mock", "hi")
    assert (result.returncode, result.stdout) == (0, "Mock reply to: hi\n")


def test_no_backend_is_a_configuration_error_without_traceback(cli: RunCli) -> None:
    result = cli("chat", "hi")
    assert result.returncode == 2
    assert "PIPECLIENT_BASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_backend_failure_exits_1_without_traceback(cli: RunCli) -> None:
    mock = MockBackend()
    mock.push(Fault(status=401))
    with mock.serve() as server:
        env = {"PIPECLIENT_BASE_URL": server.url, "PIPECLIENT_API_KEY": "sk-cli-secret-key"}
        result = cli("chat", "hi", env=env)
    assert result.returncode == 1
    assert "AuthenticationError" in result.stderr and "Traceback" not in result.stderr
    assert "sk-cli-secret-key" not in result.stderr


@pytest.mark.parametrize("args", [[], ["chat"], ["nonsense"], ["chat", "hi", "--bogus"]])
def test_usage_errors_exit_2(cli: RunCli, args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2 and "usage:" in result.stderr


# -- as a separate process ------------------------------------------------------------------


def test_the_console_script_is_installed_and_runs() -> None:
    script = Path(sysconfig.get_path("scripts")) / "pipeclient"
    assert script.is_file(), f"no console script at {script}: is the package installed?"
    result = run_process([str(script), "--help"], env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: pipeclient")


def test_do_not_track_at_process_start_refuses_the_gateway_with_exit_1() -> None:
    gateway = MockBackend()
    with gateway.serve() as server:
        env = {
            "DO_NOT_TRACK": "1",
            "PIPECLIENT_GATEWAY_URL": server.url,
            "PIPECLIENT_GATEWAY_API_KEY": "gw-cli-secret-key",
        }
        result = run_process([sys.executable, "-m", "pipeclient", "chat", "hi"], env=env)
    assert result.returncode == 1, result.stderr
    assert "GatewayTelemetryRequiredError" in result.stderr and "DO_NOT_TRACK" in result.stderr
    assert "Traceback" not in result.stderr and "gw-cli-secret-key" not in result.stderr
    assert gateway.requests == []
