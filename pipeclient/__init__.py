"""pipeclient: an OpenAI-compatible LLM client with telemetry the user controls.

`import pipeclient` stays light: the client and its dependencies load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._dnt import do_not_track
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    GatewayTelemetryRequiredError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PipeclientError,
    RateLimitError,
    StreamInterruptedError,
    UnprocessableEntityError,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._backends import Backend
    from ._client import AsyncClient, Client
    from ._retry import RetryPolicy
    from ._streaming import AsyncStream, Stream
    from .config import TelemetryConfig

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "Client",
    "ConfigError",
    "ConflictError",
    "GatewayTelemetryRequiredError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PipeclientError",
    "RateLimitError",
    "RetryPolicy",
    "Stream",
    "StreamInterruptedError",
    "TelemetryConfig",
    "UnprocessableEntityError",
    "__version__",
    "do_not_track",
]

_LAZY = {
    "Backend": "._backends",
    "Client": "._client",
    "AsyncClient": "._client",
    "RetryPolicy": "._retry",
    "Stream": "._streaming",
    "AsyncStream": "._streaming",
    "TelemetryConfig": ".config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeclient' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
