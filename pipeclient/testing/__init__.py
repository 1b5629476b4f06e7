"""Test support: a deterministic OpenAI-compatible backend, in-process or on loopback."""

from ._mock import Fault, RecordedRequest
from ._mock_server import MockBackend, MockServer, refused_url

__all__ = ["Fault", "MockBackend", "MockServer", "RecordedRequest", "refused_url"]
