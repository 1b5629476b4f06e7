from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeclient._record import CallRecord

_BACKEND_VARIABLES = (
    "PIPECLIENT_BASE_URL",
    "PIPECLIENT_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "PIPECLIENT_GATEWAY_URL",
    "PIPECLIENT_GATEWAY_API_KEY",
    "PIPECLIENT_MODEL",
    "DO_NOT_TRACK",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's own backend or telemetry variables."""
    for name in _BACKEND_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield


class Records(list[CallRecord]):
    def by_request(self, request_id: str) -> list[CallRecord]:
        return [record for record in self if record.request_id == request_id]


def listen(client: object) -> Records:
    """Collect the call records a client emits."""
    records = Records()
    client._record_listeners.append(records.append)  # type: ignore[attr-defined]
    return records
