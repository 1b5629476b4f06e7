from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeclient._telemetry.record import CallRecord

_PREFIXES = ("PIPECLIENT_", "OPENAI_", "POSTHOG_", "LANGFUSE_", "OTEL_")


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests never see the developer's own backend, telemetry variables or files."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name == "DO_NOT_TRACK":
            monkeypatch.delenv(name, raising=False)
    workdir = tmp_path_factory.mktemp("cwd")
    monkeypatch.setenv("HOME", str(workdir / "home"))
    monkeypatch.chdir(workdir)
    yield


class Records(list[CallRecord]):
    def by_request(self, request_id: str) -> list[CallRecord]:
        return [record for record in self if record.request_id == request_id]


class _Listener:
    """Stands in for a client's telemetry pipeline (keeping the one it had, if any) and
    keeps every record its calls emit, before the privacy step."""

    def __init__(self, records: Records, inner: Any) -> None:
        self.records = records
        self.inner = inner
        self.wants_content = bool(inner and inner.wants_content)
        self.audit_now = inner.audit_now if inner is not None else None

    def emit(self, record: Any, deferred: Any = None) -> None:
        self.records.append(record)
        if self.inner is not None:
            self.inner.emit(record, deferred)

    def write_audits(self, records: list[Any]) -> None:
        self.inner.write_audits(records)

    def flush(self, timeout: float | None = None) -> Any:
        return self.inner.flush(timeout) if self.inner is not None else None

    def close(self) -> Any:
        return self.inner.close() if self.inner is not None else None

    def release(self) -> None:
        if self.inner is not None:
            self.inner.release()

    def counts(self) -> dict[str, int]:
        return self.inner.counts() if self.inner is not None else {}


def listen(client: Any) -> Records:
    """Collect the records a client emits from now on (its telemetry still runs)."""
    records = Records()
    client._telemetry = _Listener(records, client._telemetry)
    return records


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Wait for a condition no event announces (a server-side count, a file's size)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.005)


def wait_child(pid: int, seconds: float) -> int | None:
    """A forked child's exit code; a child still running after `seconds` is killed (None)."""
    import signal

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """`cli("audit", "verify", env={...}, cwd=...)`: the `pipeclient` command in this process.

    Each call sees the test's environment plus `env`, in `cwd` if given, as a fresh process
    would; nothing it sets outlives the call.
    """
    from pipeclient._cli.main import main

    def run(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> CliResult:
        capsys.readouterr()
        # A process that configures no logging prints warnings on stderr (logging.lastResort).
        stderr_log = logging.StreamHandler(sys.stderr)
        stderr_log.setLevel(logging.WARNING)
        root = logging.getLogger()
        with monkeypatch.context() as scoped:
            for name, value in (env or {}).items():
                scoped.setenv(name, value)
            if cwd is not None:
                scoped.chdir(cwd)
            root.addHandler(stderr_log)
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse: --help and usage errors
                code = int(exit_.code or 0)
            finally:
                root.removeHandler(stderr_log)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


ROOT = Path(__file__).resolve().parent.parent


def mypy_strict(path: Path) -> subprocess.CompletedProcess[str]:
    """`mypy --strict` on one file, from the checkout (its config and the installed package)."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=170,
    )
