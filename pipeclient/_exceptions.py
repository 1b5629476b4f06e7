"""The exceptions pipeclient raises.

* PipeclientError
  * ConfigError - bad configuration: names the file or variable, the key, and the reason.
  * GatewayTelemetryRequiredError - a gateway call under DO_NOT_TRACK.
  * BudgetExceededError - `[budget]` refused a call before it was sent.
  * RoutingError - `[routing]` left a call no backend (sensitive data, no local one).
  * APIError - something went wrong talking to a backend; carries `.request_id`.
    * APIConnectionError - the backend could not be reached, or the connection broke.
      * APITimeoutError
      * StreamInterruptedError - a stream broke after its first byte (no failover then).
    * APIResponseValidationError - a successful answer that is not what the API promises.
    * APIStatusError - the backend answered 4xx/5xx; carries `.status_code`, `.body`,
      `.response` and the provider's own `.provider_request_id`.
      * BadRequestError (400)
      * AuthenticationError (401)
      * PermissionDeniedError (403)
      * NotFoundError (404)
      * ConflictError (409)
      * UnprocessableEntityError (422)
      * RateLimitError (429)
      * InternalServerError (>= 500)

No message or repr contains an API key: messages are built from the request id, the
backend's name and status, never from headers, and provider text is scrubbed of the keys
the client knows (`pipeclient._privacy.known_secrets`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ConflictError",
    "GatewayTelemetryRequiredError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PipeclientError",
    "RateLimitError",
    "RoutingError",
    "StreamInterruptedError",
    "UnprocessableEntityError",
]


class PipeclientError(Exception):
    """Root of every error pipeclient raises."""


_E = TypeVar("_E", bound=PipeclientError)


class ConfigError(PipeclientError, ValueError):
    """Configuration that cannot be used, with where it came from and how to fix it."""

    def __init__(self, reason: str, *, source: str | None = None, key: str | None = None):
        self.reason = reason
        self.source = source
        self.key = key
        where = ", ".join(part for part in (source, f"key {key!r}" if key else None) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class GatewayTelemetryRequiredError(PipeclientError):
    """The managed gateway requires its telemetry stream, and DO_NOT_TRACK forbids it."""

    request_id: str | None = None


class BudgetExceededError(PipeclientError):
    """The `[budget]` spend limit of the period is reached: the call was not sent.

    `limit_usd`, `spent_usd` (recorded in the period so far), `estimate_usd` (this call's
    estimated input cost, 0.0 when unknown), `period` ("day" or "month"), `period_start`
    (e.g. "2026-12" or "2026-12-07", UTC), `scope` ("client" or "user"). The message names
    no user id."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str,
        limit_usd: float,
        spent_usd: float,
        estimate_usd: float,
        period: str,
        period_start: str,
        scope: str,
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd
        self.period = period
        self.period_start = period_start
        self.scope = scope

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.__dict__, str(self)))


class RoutingError(PipeclientError):
    """`[routing]` (or `Client(routing=...)`) left the call no backend: it was not sent.

    `request_id`; `route`: "sensitive" (the `[privacy]` detectors found something and no
    backend is `local=True`) or "function" (the routing function returned no backend).
    The message names the detector, never what it found."""

    def __init__(self, message: str, *, request_id: str, route: str) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.route = route

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.__dict__, str(self)))


class APIError(PipeclientError):
    """A call to a backend failed. `request_id` is the call's X-Request-Id."""

    def __init__(self, message: str, *, request_id: str, backend: str | None = None):
        self.request_id = request_id
        self.backend = backend
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.__dict__, str(self)))


def _rebuild(cls: type[_E], state: dict[str, object], message: str) -> _E:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class APIConnectionError(APIError):
    """The backend could not be reached, or the connection broke mid-answer."""


class APITimeoutError(APIConnectionError):
    """The backend did not answer within the timeout."""


class StreamInterruptedError(APIConnectionError):
    """A stream broke after its first byte had arrived; a call is never replayed then."""


class APIResponseValidationError(APIError):
    """The backend answered 2xx with a body that is not the API's shape."""


class APIStatusError(APIError):
    """The backend answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str,
        status_code: int,
        body: object = None,
        backend: str | None = None,
        code: str | None = None,
        response: httpx.Response | None = None,
        provider_request_id: str | None = None,
    ):
        super().__init__(message, request_id=request_id, backend=backend)
        self.status_code = status_code
        self.body = body
        self.code = code
        #: the answer as received, its body scrubbed of the client's keys; its `.request`
        #: is the request without its headers (which hold the API key) or query
        self.response = response
        #: the id the provider gave this request (its `x-request-id`), beside `request_id`
        self.provider_request_id = provider_request_id


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404."""


class ConflictError(APIStatusError):
    """409."""


class UnprocessableEntityError(APIStatusError):
    """422."""


class RateLimitError(APIStatusError):
    """429."""


class InternalServerError(APIStatusError):
    """5xx."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    if status_code >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status_code, APIStatusError)
