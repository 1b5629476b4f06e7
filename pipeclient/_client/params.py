"""The keyword arguments each public signature takes, typed, so that type checkers and
IDEs catch `temprature=` and `Client(max_retry=3)`; at run time an unknown name is a
`TypeError` that suggests the name meant.

Request parameters are the OpenAI REST API's, named as openai-python names them; a
parameter left out is not sent. Provider-specific fields go in `extra_body=`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import httpx

if TYPE_CHECKING:
    from .._config.models import TelemetryConfig
    from .._telemetry.trace import TraceParent
    from .retry import RetryPolicy

__all__ = [
    "CallExtras",
    "ChatParams",
    "ClientOptions",
    "EmbeddingParams",
    "ImageParams",
    "reject_unexpected",
]


class ClientOptions(TypedDict, total=False):
    api_key: str | None
    base_url: str | None
    timeout: float | httpx.Timeout | None
    max_retries: int | None
    retry_policy: RetryPolicy | None
    no_log: bool
    default_headers: Mapping[str, str] | None
    telemetry: TelemetryConfig | Mapping[str, Any] | None
    telemetry_file: str | Path | None
    redact: Callable[[str], str] | None
    user_id: str | None
    session_id: str | None
    properties: Mapping[str, str | int | float | bool] | None
    ephemeral: bool


class CallExtras(TypedDict, total=False):
    """pipeclient's own per-call arguments: never sent in the body."""

    request_id: str | None
    no_log: bool | None
    trace: TraceParent | None
    timeout: float | httpx.Timeout | None
    extra_headers: Mapping[str, str] | None
    extra_query: Mapping[str, object] | None
    extra_body: Mapping[str, Any] | None
    user_id: str | None
    session_id: str | None
    properties: Mapping[str, str | int | float | bool] | None
    ephemeral: bool | None


class ChatParams(CallExtras, total=False):
    audio: Mapping[str, Any] | None
    frequency_penalty: float | None
    function_call: str | Mapping[str, Any]
    functions: Iterable[Mapping[str, Any]]
    logit_bias: Mapping[str, int] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: Mapping[str, str] | None
    modalities: list[str] | None
    moderation: Any
    n: int | None
    parallel_tool_calls: bool
    prediction: Mapping[str, Any] | None
    presence_penalty: float | None
    prompt_cache_key: str
    prompt_cache_options: Any
    prompt_cache_retention: Any
    reasoning_effort: str | None
    response_format: Mapping[str, Any]
    safety_identifier: str
    seed: int | None
    service_tier: str | None
    stop: str | list[str] | None
    store: bool | None
    stream_options: Mapping[str, Any] | None
    temperature: float | None
    tool_choice: str | Mapping[str, Any]
    tools: Iterable[Mapping[str, Any]]
    top_logprobs: int | None
    top_p: float | None
    user: str
    verbosity: str | None
    web_search_options: Mapping[str, Any]


class EmbeddingParams(CallExtras, total=False):
    """Besides `encoding_format=`, which `create`'s overloads type: it sets the answer's."""

    dimensions: int
    user: str


class ImageParams(CallExtras, total=False):
    background: str | None
    complexity: Any
    frame_count: Any
    frame_duration_ms: Any
    moderation: str | None
    n: int | None
    output_compression: int | None
    output_format: str | None
    partial_images: int | None
    quality: str | None
    response_format: str | None
    safety_identifier: str
    size: str | None
    style: str | None
    svg: Any
    user: str


def reject_unexpected(
    given: Mapping[str, Any], accepted: type[Any], where: str, *, body_hint: bool = True
) -> None:
    """A `TypeError` naming the first unknown keyword and the known one it resembles."""
    known: Iterable[str] = accepted.__annotations__
    unknown = [name for name in given if name not in known]
    if not unknown:
        return
    import difflib

    name = unknown[0]
    close = difflib.get_close_matches(name, list(known), n=1)
    message = f"{where} got an unexpected keyword argument {name!r}"
    if close:
        message += f"; did you mean {close[0]!r}?"
    if body_hint:
        message += " (fields of a provider's own go in extra_body=)"
    raise TypeError(message)
