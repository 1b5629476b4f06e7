from __future__ import annotations

import os
from collections.abc import Iterator
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

    def emit(self, record: Any) -> None:
        self.records.append(record)
        if self.inner is not None:
            self.inner.emit(record)

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
