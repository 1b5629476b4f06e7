"""pipeclient: an OpenAI-compatible LLM client with telemetry the user controls.

`import pipeclient` stays light: the client and its dependencies load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config.dnt import do_not_track
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ConfigError,
    ConflictError,
    GatewayTelemetryRequiredError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PipeclientError,
    RateLimitError,
    RoutingError,
    StreamInterruptedError,
    UnprocessableEntityError,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._client.backends import Backend
    from ._client.client import AsyncClient, Client
    from ._client.raw import APIResponse, AsyncAPIResponse, LegacyAPIResponse
    from ._client.retry import RetryPolicy
    from ._client.routing import RouteRequest
    from ._client.streaming import AsyncStream, Stream
    from ._client.wrap import wrap
    from ._config.models import TelemetryConfig
    from ._config.routing import RoutingConfig

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponse",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncAPIResponse",
    "AsyncClient",
    "AsyncStream",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "BudgetExceededError",
    "Client",
    "ConfigError",
    "ConflictError",
    "GatewayTelemetryRequiredError",
    "InternalServerError",
    "LegacyAPIResponse",
    "NotFoundError",
    "PermissionDeniedError",
    "PipeclientError",
    "RateLimitError",
    "RetryPolicy",
    "RouteRequest",
    "RoutingConfig",
    "RoutingError",
    "Stream",
    "StreamInterruptedError",
    "TelemetryConfig",
    "UnprocessableEntityError",
    "__version__",
    "do_not_track",
    "wrap",
]

_LAZY = {
    "Backend": "._client.backends",
    "APIResponse": "._client.raw",
    "AsyncAPIResponse": "._client.raw",
    "LegacyAPIResponse": "._client.raw",
    "Client": "._client.client",
    "AsyncClient": "._client.client",
    "RetryPolicy": "._client.retry",
    "RouteRequest": "._client.routing",
    "RoutingConfig": "._config.routing",
    "Stream": "._client.streaming",
    "AsyncStream": "._client.streaming",
    "TelemetryConfig": "._config.models",
    "wrap": "._client.wrap",
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
