"""Turning what a backend answered into a result or a typed error. No I/O here.

Functions return errors rather than raise them, so that the caller raises outside any
`except` block and no `__context__` keeps the httpx request (and its headers).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from .._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    status_error_class,
)
from .._privacy.known_secrets import KnownSecrets
from ..types import (
    ChatCompletion,
    CreateEmbeddingBase64Response,
    CreateEmbeddingResponse,
    ImagesResponse,
)
from .backends import Backend
from .call import Call
from .retry import retry_after_seconds, should_retry_status

__all__ = ["not_an_event_stream", "parse", "status_error", "transport_error"]

# Every answer type a call can be parsed into (one definition, used by the resources too).
ResponseT = TypeVar(
    "ResponseT",
    ChatCompletion,
    CreateEmbeddingResponse,
    CreateEmbeddingBase64Response,
    ImagesResponse,
)


def _content_type(response: httpx.Response) -> str:
    value: str = response.headers.get("content-type", "no content type")
    return value.split(";")[0].strip()


def transport_error(exc: httpx.HTTPError, call: Call, backend: Backend) -> tuple[APIError, bool]:
    """(error, retryable) for an httpx failure; only the class name of `exc` is kept."""
    rid, name = call.request_id, backend.name
    if isinstance(exc, httpx.TimeoutException):
        message = f"backend {name!r} did not answer in time ({type(exc).__name__})"
        return APITimeoutError(f"{message} (request id {rid})", request_id=rid, backend=name), True
    if isinstance(exc, httpx.LocalProtocolError):
        message = f"the request to backend {name!r} could not be sent (invalid request)"
        return APIConnectionError(
            f"{message} (request id {rid})", request_id=rid, backend=name
        ), False
    if isinstance(exc, httpx.TransportError):
        message = f"could not reach backend {name!r} at {backend.base_url} ({type(exc).__name__})"
        return APIConnectionError(
            f"{message} (request id {rid})", request_id=rid, backend=name
        ), True
    message = f"the answer of backend {name!r} could not be read ({type(exc).__name__})"
    return APIResponseValidationError(
        f"{message} (request id {rid})", request_id=rid, backend=name
    ), False


def status_error(
    response: httpx.Response, call: Call, backend: Backend, secrets: KnownSecrets
) -> tuple[APIError, bool, float | None]:
    """(error, retryable, wait hint) for a 3xx/4xx/5xx answer whose body has been read."""
    status = response.status_code
    call.tracker.http_status = status
    text = secrets.replace(response.text)
    body: Any = text
    code: str | None = None
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        target = urlsplit(location)
        shown = f"{target.scheme}://{target.netloc}{target.path}" if target.netloc else "?"
        detail = (
            f"a redirect to {shown}; set base_url to the final URL (redirects are not followed)"
        )
    else:
        try:
            body = json.loads(text)
        except ValueError:
            detail = f"a non-JSON body ({_content_type(response)}, {len(response.content)} bytes)"
        else:
            error = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(error, dict):
                message = error.get("message") or error.get("detail") or json.dumps(error)
                raw_code = error.get("code") or error.get("type")
                code = str(raw_code) if raw_code is not None else None
            else:
                message = error
            detail = secrets.scrub(str(message))
    failure = status_error_class(status)(
        f"backend {backend.name!r} answered {status}: {detail} (request id {call.request_id})",
        request_id=call.request_id,
        status_code=status,
        body=body,
        backend=backend.name,
        code=code,
    )
    retry = should_retry_status(status, response.headers)
    return failure, retry, retry_after_seconds(response.headers) if retry else None


def not_an_event_stream(response: httpx.Response, call: Call, backend: Backend) -> APIError | None:
    """A 2xx answer to a stream request that is plain JSON: the server ignored `stream`."""
    if _content_type(response) != "application/json":
        return None
    call.tracker.http_status = response.status_code
    return APIResponseValidationError(
        f"backend {backend.name!r} answered {response.status_code} with JSON where an event "
        f"stream was asked for (request id {call.request_id})",
        request_id=call.request_id,
        backend=backend.name,
    )


def parse(
    model: type[ResponseT], response: httpx.Response, call: Call, backend: Backend
) -> tuple[ResponseT | None, APIError | None]:
    """The typed result of a 2xx answer, with the call's record ended; or the error."""
    tracker = call.tracker
    tracker.http_status = response.status_code
    invalid = False
    try:
        result = model.model_validate_json(response.content)
    except ValidationError:
        invalid = True
    if invalid:
        return None, APIResponseValidationError(
            f"backend {backend.name!r} answered {response.status_code} with a body that is not "
            f"a {model.__name__} ({_content_type(response)}, {len(response.content)} bytes) "
            f"(request id {call.request_id})",
            request_id=call.request_id,
            backend=backend.name,
        )
    result._request_id = call.request_id
    input_tokens = output_tokens = None
    finish_reasons: tuple[str, ...] = ()
    output: Any = None
    if isinstance(result, ChatCompletion):
        if result.usage is not None:
            input_tokens = result.usage.prompt_tokens
            output_tokens = result.usage.completion_tokens
        finish_reasons = tuple(choice.finish_reason or "" for choice in result.choices)
        if tracker.capture_content:
            output = [choice.message.model_dump(exclude_none=True) for choice in result.choices]
    elif isinstance(result, CreateEmbeddingResponse):
        input_tokens = result.usage.prompt_tokens
    elif isinstance(result, ImagesResponse) and isinstance(result.usage, dict):
        input_tokens = result.usage.get("input_tokens")
        output_tokens = result.usage.get("output_tokens")
    tracker.finish(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        response_id=getattr(result, "id", None),
        response_model=getattr(result, "model", None),
        finish_reasons=finish_reasons,
        output=output,
    )
    return result, None
