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
    from .._config.routing import RoutingConfig
    from .._telemetry.trace import TraceParent
    from .retry import RetryPolicy
    from .routing import RouteFunction

__all__ = [
    "AsyncClientOptions",
    "AsyncCopyOptions",
    "CallExtras",
    "ChatParams",
    "ClientOptions",
    "CompletionParams",
    "CopyOptions",
    "EmbeddingParams",
    "ImageParams",
    "ParseParams",
    "ResponseParams",
    "SpeechParams",
    "TranscriptionParams",
    "reject_unexpected",
]


class _OpenAIOptions(TypedDict, total=False):
    """openai-python's client options, under its names."""

    api_key: str | None
    organization: str | None
    project: str | None
    base_url: str | None
    timeout: float | httpx.Timeout | None
    default_headers: Mapping[str, str] | None
    default_query: Mapping[str, object] | None


class _CommonOptions(_OpenAIOptions, total=False):
    max_retries: int | None
    # pipeclient's
    retry_policy: RetryPolicy | None
    no_log: bool
    telemetry: TelemetryConfig | Mapping[str, Any] | None
    telemetry_file: str | Path | None
    redact: Callable[[str], str] | None
    user_id: str | None
    session_id: str | None
    properties: Mapping[str, str | int | float | bool] | None
    ephemeral: bool
    routing: RoutingConfig | Mapping[str, Any] | RouteFunction | None
    cache: bool


class ClientOptions(_CommonOptions, total=False):
    http_client: httpx.Client | None


class AsyncClientOptions(_CommonOptions, total=False):
    http_client: httpx.AsyncClient | None


class _CopyOptions(_OpenAIOptions, total=False):
    """`with_options(...)`: openai-python's `copy()` arguments, and pipeclient's no_log, cache."""

    max_retries: int
    set_default_headers: Mapping[str, str] | None
    set_default_query: Mapping[str, object] | None
    no_log: bool
    cache: bool


class CopyOptions(_CopyOptions, total=False):
    http_client: httpx.Client | None


class AsyncCopyOptions(_CopyOptions, total=False):
    http_client: httpx.AsyncClient | None


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
    cache: bool | None


class ParseParams(CallExtras, total=False):
    """`chat.completions.parse()` and `.stream()`: a chat's parameters; their
    `response_format` may be a class, so it is spelled out in the signatures."""

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


class ChatParams(ParseParams, total=False):
    response_format: Mapping[str, Any]


class CompletionParams(CallExtras, total=False):
    """The legacy `completions.create()`."""

    best_of: int | None
    echo: bool | None
    frequency_penalty: float | None
    logit_bias: Mapping[str, int] | None
    logprobs: int | None
    max_tokens: int | None
    n: int | None
    presence_penalty: float | None
    seed: int | None
    stop: str | list[str] | None
    stream_options: Mapping[str, Any] | None
    suffix: str | None
    temperature: float | None
    top_p: float | None
    user: str


class ResponseParams(CallExtras, total=False):
    """`responses.create()`, besides `model`, `input` and `stream`."""

    access_programs: Any
    background: bool | None
    background_options: Any
    context_management: Any
    conversation: str | Mapping[str, Any] | None
    image: Any
    include: list[str] | None
    instructions: str | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    metadata: Mapping[str, str] | None
    moderation: Any
    parallel_tool_calls: bool | None
    previous_response_id: str | None
    prompt: Mapping[str, Any] | None
    prompt_cache_key: str
    prompt_cache_options: Any
    prompt_cache_retention: Any
    reasoning: Mapping[str, Any] | None
    safety_identifier: str
    service_tier: str | None
    store: bool | None
    stream_options: Mapping[str, Any] | None
    temperature: float | None
    text: Mapping[str, Any]
    tool_choice: str | Mapping[str, Any]
    tools: Iterable[Mapping[str, Any]]
    top_logprobs: int | None
    top_p: float | None
    truncation: str | None
    user: str


class TranscriptionParams(CallExtras, total=False):
    chunking_strategy: str | Mapping[str, Any] | None
    include: list[str]
    keywords: list[str]
    known_speaker_names: list[str]
    known_speaker_references: list[str]
    language: str
    languages: list[str]
    prompt: str
    temperature: float
    timestamp_granularities: list[str]


class SpeechParams(CallExtras, total=False):
    instructions: str
    response_format: str
    speed: float
    stream_format: str


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
