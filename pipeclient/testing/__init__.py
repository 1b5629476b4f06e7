"""Test support: a deterministic OpenAI-compatible backend, in-process or on loopback."""

from ._capture import CapturedTelemetry, capture_telemetry
from ._capture_server import CapturedRequest, CaptureServer
from ._mock import Fault, RecordedRequest
from ._mock_server import MockBackend, MockServer, refused_url

__all__ = [
    "CaptureServer",
    "CapturedRequest",
    "CapturedTelemetry",
    "Fault",
    "MockBackend",
    "MockServer",
    "RecordedRequest",
    "capture_telemetry",
    "refused_url",
]
