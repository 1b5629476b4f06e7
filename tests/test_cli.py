"""The `pipeclient` command: in this process, and as a user runs it where the process matters."""

from __future__ import annotations

import io
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
    # The command's own options and variables, not the library's arguments.
    assert "--base-url" in result.stderr and "--api-key-env" in result.stderr
    assert "--mock" in result.stderr and "Client(" not in result.stderr


def test_version(cli: RunCli) -> None:
    import pipeclient

    result = cli("--version")
    assert (result.returncode, result.stdout) == (0, f"pipeclient {pipeclient.__version__}\n")


def test_chat_reads_the_prompt_from_standard_input(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a prompt\nover two lines\n"))
    result = cli("chat", "-", "--mock")
    assert (result.returncode, result.stdout) == (0, "Mock reply to: a prompt\nover two lines\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    result = cli("chat", "-", "--mock")
    assert result.returncode == 2 and "standard input is empty" in result.stderr


def test_chat_backend_options(cli: RunCli) -> None:
    mock = MockBackend()
    refused = {"PIPECLIENT_BASE_URL": "http://127.0.0.1:9/v1", "PIPECLIENT_API_KEY": "sk-env"}
    with mock.serve() as server:
        options = ["--base-url", server.url, "--model", "m2", "--api-key-env", "MY_KEY"]
        result = cli("chat", "hi", *options, env={**refused, "MY_KEY": "sk-from-my-var"})
        assert (result.returncode, result.stdout) == (0, "Mock reply to: hi\n"), result.stderr
        result = cli("chat", "hi", "--base-url", server.url, env=refused)  # the env's key
        assert result.returncode == 0, result.stderr
    first, second = mock.requests
    assert first.json()["model"] == "m2"
    assert first.headers["authorization"] == "Bearer sk-from-my-var"
    assert second.headers["authorization"] == "Bearer sk-env"

    result = cli("chat", "hi", "--api-key-env", "UNSET_KEY_VARIABLE")
    assert result.returncode == 2
    assert "UNSET_KEY_VARIABLE" in result.stderr and "--api-key-env" in result.stderr
    result = cli("chat", "hi", "--base-url", "http://127.0.0.1:9/v1")
    assert result.returncode == 2 and "--api-key-env" in result.stderr
    assert "PIPECLIENT_API_KEY" in result.stderr
    bad_url = ["--base-url", "ftp://x", "--api-key-env", "MY_KEY"]
    result = cli("chat", "hi", *bad_url, env={"MY_KEY": "k"})
    assert result.returncode == 2 and "option --base-url" in result.stderr
    assert "not an http(s) URL" in result.stderr
    result = cli("chat", "hi", "--mock", "--base-url", "http://127.0.0.1:9/v1")
    assert result.returncode == 2 and "--mock" in result.stderr


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
