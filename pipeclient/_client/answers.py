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
    Completion,
    CreateEmbeddingBase64Response,
    CreateEmbeddingResponse,
    ImagesResponse,
    ModerationCreateResponse,
    Response,
    Transcription,
)
from ..types import _Response as _ResponseBase
from .backends import Backend
from .call import Call
from .retry import retry_after_seconds, should_retry_status

__all__ = [
    "audio_tokens_of",
    "cached_tokens_of",
    "count_of",
    "detached_response",
    "finish_reasons_of",
    "not_an_event_stream",
    "output_message",
    "parse",
    "provider_request_id",
    "safe_request",
    "status_error",
    "transport_error",
    "validate_json",
]

# Where providers put their own id of a request (OpenAI, Anthropic-style, Azure).
_PROVIDER_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id")
# Headers that describe the body as it came over the wire, not as it is kept.
_WIRE_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding"})


def validate_json(model: Any, data: str | bytes) -> Any:
    """`model.model_validate_json(data)`, without the classmethod's own overhead (about
    1.5 us, paid by every chunk of a stream): the same validator, the same errors. A model
    not built yet (types are built on first use) is built by pydantic's own path."""
    if not model.__pydantic_complete__:
        return model.model_validate_json(data)
    return model.__pydantic_validator__.validate_json(data)


def provider_request_id(response: httpx.Response) -> str | None:
    """The provider's own id of this request, beside pipeclient's X-Request-Id."""
    for name in _PROVIDER_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return str(value)
    return None


def safe_request(sent: httpx.Request) -> httpx.Request:
    """The request as shown to the caller: method, URL without its query (a key may be
    there) and X-Request-Id; never the Authorization header."""
    url = sent.url.copy_with(query=None)
    return httpx.Request(
        sent.method, url, headers={"X-Request-Id": sent.headers.get("x-request-id", "")}
    )


def detached_response(response: httpx.Response, text: str | None = None) -> httpx.Response:
    """A read response that holds no secret: its request keeps the method, the URL without
    its query (a key may be there) and the X-Request-Id, never the Authorization header;
    `text` replaces the body (the provider's text scrubbed of the client's keys)."""
    request = safe_request(response.request)
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in _WIRE_HEADERS]
    content = response.content if text is None else text.encode()
    return httpx.Response(response.status_code, headers=headers, content=content, request=request)


ResponseT = TypeVar("ResponseT")


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
        response=detached_response(response, text),
        provider_request_id=provider_request_id(response),
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
    decode = getattr(model, "decode_response", None)
    if decode is not None:  # not JSON: audio bytes, a transcript as text
        return _finished(decode(response), response, call), None
    invalid = False
    try:
        result: Any = validate_json(model, response.content)
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
    return _finished(result, response, call), None


def _finished(result: Any, response: httpx.Response, call: Call) -> Any:
    """The result, with its request ids; the call's record ended with its facts."""
    if isinstance(result, _ResponseBase):
        result._request_id = provider_request_id(response) or ""
        result._pipeclient_request_id = call.request_id
    call.tracker.finish(**facts_of(result, call.tracker.capture_content))
    return result


def facts_of(result: Any, capture_content: bool) -> dict[str, Any]:
    """What a call's record keeps of its answer: usage, ids, finish reasons, and the
    output (content, kept only when some destination may receive it)."""
    facts: dict[str, Any] = {
        "response_id": getattr(result, "id", None) or None,
        "response_model": getattr(result, "model", None) or None,
    }
    output: Any = None
    if isinstance(result, (ChatCompletion, Completion)):
        if result.usage is not None:
            facts["input_tokens"] = result.usage.prompt_tokens
            facts["output_tokens"] = result.usage.completion_tokens
            facts["cached_tokens"] = cached_tokens_of(result.usage.prompt_tokens_details)
            facts.update(audio_tokens_of(result.usage))
        facts["finish_reasons"] = tuple(choice.finish_reason or "" for choice in result.choices)
        if capture_content and isinstance(result, ChatCompletion):
            output = [choice.message.model_dump(exclude_none=True) for choice in result.choices]
        elif capture_content and isinstance(result, Completion):
            output = [{"role": "assistant", "content": choice.text} for choice in result.choices]
    elif isinstance(result, (CreateEmbeddingResponse, CreateEmbeddingBase64Response)):
        facts["input_tokens"] = result.usage.prompt_tokens
    elif isinstance(result, ImagesResponse) and isinstance(result.usage, dict):
        facts["input_tokens"] = result.usage.get("input_tokens")
        facts["output_tokens"] = result.usage.get("output_tokens")
    elif isinstance(result, Response):
        return response_facts(result, capture_content)
    elif isinstance(result, (Transcription, str)):
        usage = result.usage if isinstance(result, Transcription) else None
        if isinstance(usage, dict) and usage.get("type") == "tokens":
            facts["input_tokens"] = usage.get("input_tokens")
            facts["output_tokens"] = usage.get("output_tokens")
            audio = count_of(usage.get("input_token_details"), "audio_tokens")
            if audio:
                facts["input_audio_tokens"] = audio
        if capture_content:
            text = result.text if isinstance(result, Transcription) else str(result)
            output = [{"role": "assistant", "content": text}]
    elif hasattr(result, "decode_response") and capture_content:  # audio: described, not kept
        kind = result.response.headers.get("content-type", "")
        output = [{"role": "assistant", "content": {"audio": kind, "bytes": len(result.content)}}]
    elif isinstance(result, ModerationCreateResponse) and capture_content:
        # what was flagged says what the input was about: content
        output = [moderation.model_dump(exclude_none=True) for moderation in result.results]
    facts["output"] = output
    return facts


def count_of(details: Any, key: str) -> int | None:
    """`key` of a usage's details (a mapping or an object), if a count."""
    found = details.get(key) if isinstance(details, dict) else None
    if found is None and details is not None and not isinstance(details, dict):
        found = getattr(details, key, None)
    if isinstance(found, bool) or not isinstance(found, int) or found < 0:
        return None
    return found


def cached_tokens_of(details: Any) -> int | None:
    """`cached_tokens` of a usage's input details (a mapping or an object), if a count."""
    return count_of(details, "cached_tokens")


def audio_tokens_of(usage: Any) -> dict[str, int]:
    """A chat usage's audio tokens, in and out (only those it reports, nonzero)."""
    found = {
        "input_audio_tokens": count_of(
            getattr(usage, "prompt_tokens_details", None), "audio_tokens"
        ),
        "output_audio_tokens": count_of(
            getattr(usage, "completion_tokens_details", None), "audio_tokens"
        ),
    }
    return {name: count for name, count in found.items() if count}


def response_facts(response: Response, capture_content: bool) -> dict[str, Any]:
    """What a call's record keeps of a Responses API answer."""
    facts: dict[str, Any] = {
        "response_id": response.id or None,
        "response_model": response.model or None,
        "finish_reasons": finish_reasons_of(response),
    }
    if response.usage is not None:
        facts["input_tokens"] = response.usage.input_tokens
        facts["output_tokens"] = response.usage.output_tokens
        facts["cached_tokens"] = cached_tokens_of(response.usage.input_tokens_details)
    facts["output"] = [output_message(response)] if capture_content else None
    return facts


def finish_reasons_of(response: Response) -> tuple[str, ...]:
    if response.status == "incomplete":
        reason = (response.incomplete_details or {}).get("reason")
        return ("length" if reason == "max_output_tokens" else str(reason or "incomplete"),)
    if any(item.type == "function_call" for item in response.output):
        return ("tool_calls",)
    return ("stop",) if response.status in (None, "completed") else (str(response.status),)


def output_message(response: Response) -> dict[str, Any]:
    """The output as the assistant message a chat would give: every destination shows
    outputs that way."""
    message: dict[str, Any] = {"role": "assistant", "content": response.output_text or None}
    calls = [
        {
            "id": item.call_id or item.id,
            "type": "function",
            "function": {"name": item.name or "", "arguments": item.arguments or ""},
        }
        for item in response.output
        if item.type == "function_call"
    ]
    if calls:
        message["tool_calls"] = calls
    return message
