"""Test support: a deterministic OpenAI-compatible backend, in-process or on loopback."""

from ._capture import CapturedTelemetry, capture_telemetry
from ._capture_server import CapturedRequest, CaptureServer
from ._gateway import MockGateway
from ._mock import Fault, RecordedRequest
from ._mock_server import MockBackend, MockServer, refused_url

__all__ = [
    "CaptureServer",
    "CapturedRequest",
    "CapturedTelemetry",
    "Fault",
    "MockBackend",
    "MockGateway",
    "MockServer",
    "RecordedRequest",
    "capture_telemetry",
    "refused_url",
]
