"""A reference gateway: the mock backend plus the gateway's telemetry endpoint."""

from __future__ import annotations

import json
import threading
from typing import Any

from pydantic import ValidationError

from .._client.backends import Backend
from .._sinks.gateway.event import GatewayBillingEvent, GatewayEvent
from ._mock import Answer, RecordedRequest
from ._mock_server import MockBackend

__all__ = ["MockGateway"]


class MockGateway(MockBackend):
    """An OpenAI-compatible gateway that also takes `POST .../telemetry`.

    It checks the gateway key, validates every event against the pinned schema (a bad
    event is a 422), and keeps what arrived: `events`, and the raw `telemetry_requests`
    (every byte, for leak checks). Set `telemetry_status` (e.g. 503) to make the endpoint
    fail, and back to None to make it work again.
    """

    def __init__(self, api_key: str = "gw-test-key", **options: Any) -> None:
        super().__init__(api_key=api_key, **options)
        self.telemetry_status: int | None = None
        self._telemetry_lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._telemetry_requests: list[RecordedRequest] = []

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._telemetry_lock:
            return list(self._events)

    @property
    def telemetry_requests(self) -> list[RecordedRequest]:
        with self._telemetry_lock:
            return list(self._telemetry_requests)

    def backend(self, name: str = "gateway", **kw: Any) -> Backend:
        return super().backend(name, **{"kind": "gateway", **kw})

    def _handle(self, request: RecordedRequest) -> Answer:
        if not request.path.rstrip("/").endswith("/telemetry"):
            return super()._handle(request)
        with self._telemetry_lock:
            self._telemetry_requests.append(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _answer(401, {"error": {"message": "invalid gateway key"}})
        if self.telemetry_status is not None:
            return _answer(self.telemetry_status, {"error": {"message": "telemetry down"}})
        try:
            events = json.loads(request.body)["events"]
            for event in events:
                model = GatewayEvent if "schema" in event else GatewayBillingEvent
                model.model_validate(event)
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            return _answer(422, {"error": {"message": f"invalid events: {type(exc).__name__}"}})
        with self._telemetry_lock:
            self._events.extend(events)
        return _answer(200, {"accepted": len(events)})


def _answer(status: int, payload: dict[str, Any]) -> Answer:
    body = json.dumps(payload).encode()
    return Answer(status=status, headers=(("content-type", "application/json"),), body=body)
