from __future__ import annotations

import os
from collections.abc import Iterator

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


def listen(client: object) -> Records:
    """Collect the call records a client emits."""
    records = Records()
    client._record_listeners.append(records.append)  # type: ignore[attr-defined]
    return records
