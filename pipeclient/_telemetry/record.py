"""CallRecord: what one finished call was, built in one place for every sink to read."""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .attribution import NO_ATTRIBUTION, Attribution

__all__ = [
    "ENDPOINTS",
    "CallRecord",
    "CallTracker",
    "ErrorInfo",
    "Operation",
    "TraceRecord",
    "new_span_id",
    "new_trace_id",
]

# One per inference endpoint. "text_completion" is the legacy completions endpoint, as
# the GenAI conventions name it.
Operation = Literal[
    "chat",
    "embeddings",
    "images",
    "responses",
    "text_completion",
    "moderations",
    "transcriptions",
    "speech",
]

# The request path of each operation, under the backend's base URL.
ENDPOINTS: Mapping[str, str] = {
    "chat": "/chat/completions",
    "embeddings": "/embeddings",
    "images": "/images/generations",
    "responses": "/responses",
    "text_completion": "/completions",
    "moderations": "/moderations",
    "transcriptions": "/audio/transcriptions",
    "speech": "/audio/speech",
}

# Request parameters kept as metadata: numbers, booleans and short enum-like words only,
# never text (a `stop` list, a schema or a tool definition is content).
NUMERIC_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "dimensions",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
)
ENUM_PARAMETERS = (
    "size",
    "quality",
    "style",
    "encoding_format",
    "reasoning_effort",
    "service_tier",
    "response_format",
    "tool_choice",
)
_ENUM_WORD = re.compile(r"[A-Za-z0-9_.\-]{1,32}")


def recorded_parameters(body: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    text = body.get("text")
    if isinstance(text, Mapping) and isinstance(text.get("format"), Mapping):
        # The Responses API's structured output: its `text.format` is `response_format`.
        body = {**body, "response_format": text["format"]}
    for name in NUMERIC_PARAMETERS:
        value = body.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            found[name] = value
    for name in ENUM_PARAMETERS:
        value = body.get(name)
        if isinstance(value, Mapping):  # response_format / tool_choice objects: their type
            value = value.get("type")
        if isinstance(value, str) and _ENUM_WORD.fullmatch(value):
            found[name] = value
    return found


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str  # exception class name, e.g. "RateLimitError"
    code: int | str | None  # HTTP status or provider error code
    message: str | None = None  # provider/exception text: content, for content sinks only


@dataclass(frozen=True, slots=True)
class CallRecord:
    request_id: str
    operation: Operation
    model: str
    stream: bool
    backend: str
    base_url: str
    gateway: bool
    no_log: bool
    started_at: float  # wall clock, seconds since the epoch
    total_ms: float
    ttft_ms: float | None
    attempts: int
    http_status: int | None
    outcome: Literal["ok", "error"]
    error: ErrorInfo | None
    parameters: Mapping[str, Any]
    input_tokens: int | None = None
    output_tokens: int | None = None
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    trace_id: str = ""  # 32 hex: the trace this call belongs to (its own if none)
    span_id: str = ""  # 16 hex: this call
    parent_id: str | None = None  # 16 hex: the enclosing trace span or application span
    trace_name: str | None = None  # the outermost trace block's name: free text
    request_id_supplied: bool = False  # the caller chose the request id: free text
    # Per-call attribution (`user_id=`, `session_id=`, `properties=`): personal data,
    # decided per destination by the privacy step; never sent to the provider or gateway.
    user_id: str | None = None
    session_id: str | None = None
    properties: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    closed_early: bool = False  # the caller stopped reading a stream before its end
    # Content: present only when some destination may receive it. The request is kept as
    # the bytes sent (a snapshot: the caller may reuse its lists), decoded on the worker.
    request_body: bytes | None = None
    input: Any = None
    output: Any = None
    # Set by the privacy step on content views: redactions in this record per detector
    # ("email", "secret", "api_key", "hook", ...), numbers only. Empty: none.
    redactions: Mapping[str, int] = field(default_factory=dict)
    # `ephemeral=True`: the content store keeps the call only for `[store] ttl_hours`
    ephemeral: bool = False
    # Cost, priced on the dispatcher's worker ([pricing]); None when the model has no price.
    cached_tokens: int | None = None  # of input_tokens, read from the provider's cache
    input_cost_usd: float | None = None  # uncached input tokens
    output_cost_usd: float | None = None
    cached_cost_usd: float | None = None
    total_cost_usd: float | None = None
    # The `[routing]` decision: a rule's name, "sensitive" or "function"; never content.
    # None: no rule applied.
    route: str | None = None
    # Answered from the local response cache ([cache]): no provider call, cost 0.
    cache_hit: bool = False
    # Of input_tokens / output_tokens, audio (priced at the model's audio rates).
    input_audio_tokens: int | None = None
    output_audio_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """A `client.trace(name)` block: the parent of the calls made inside it."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str  # free text, as the application chose it
    started_at: float
    total_ms: float
    outcome: Literal["ok", "error"]
    error: ErrorInfo | None = None
    trace_name: str = ""  # the outermost block's name (this one's, for a root block)
    no_log: bool = False
    user_id: str | None = None  # the block's attribution, as a call's
    session_id: str | None = None
    properties: Mapping[str, str | int | float | bool] = field(default_factory=dict)


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


class CallTracker:
    """Collects one call's facts as they happen and emits its record exactly once."""

    __slots__ = (
        "_emit",
        "_finished",
        "_start",
        "attempts",
        "attribution",
        "backend",
        "base_url",
        "body",
        "cache_hit",
        "capture_content",
        "ephemeral",
        "gateway",
        "http_status",
        "model",
        "no_log",
        "operation",
        "request_body",
        "request_id",
        "request_id_supplied",
        "route",
        "started_at",
        "stream",
        "trace",
        "ttft_ms",
    )

    def __init__(
        self,
        *,
        request_id: str,
        operation: Operation,
        body: Mapping[str, Any],
        stream: bool,
        no_log: bool,
        trace: Any,
        capture_content: bool,
        emit: Callable[[CallRecord], None] | None,
        request_id_supplied: bool = False,
        attribution: Attribution = NO_ATTRIBUTION,
        ephemeral: bool = False,
    ) -> None:
        self.request_id = request_id
        self.attribution = attribution
        self.ephemeral = ephemeral
        self.request_id_supplied = request_id_supplied
        self.operation = operation
        self.body = body
        self.model = str(body.get("model", ""))
        self.stream = stream
        self.no_log = no_log
        self.trace = trace
        self.capture_content = capture_content
        self._emit = emit
        self._finished = False
        self.started_at = time.time()
        self._start = time.perf_counter()
        self.attempts = 0
        self.backend = ""
        self.base_url = ""
        self.gateway = False
        self.http_status: int | None = None
        self.ttft_ms: float | None = None
        self.request_body: bytes | None = None
        self.route: str | None = None  # set by the client's [routing], before any attempt
        self.cache_hit = False

    def attempt(self, backend: str, base_url: str, gateway: bool, *, no_log: bool = False) -> None:
        self.attempts += 1
        self.backend = backend
        self.base_url = base_url
        self.gateway = gateway
        if no_log:  # a no-log backend key makes the call no-log, whatever the caller said
            self.no_log = True
            self.capture_content = False

    def first_chunk(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self._start) * 1000.0

    @property
    def finished(self) -> bool:
        return self._finished

    def finish(
        self,
        *,
        error: ErrorInfo | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        input_audio_tokens: int | None = None,
        output_audio_tokens: int | None = None,
        response_id: str | None = None,
        response_model: str | None = None,
        finish_reasons: tuple[str, ...] = (),
        output: Any = None,
        closed_early: bool = False,
    ) -> None:
        """End the call; later calls are ignored, so every exit path may call it."""
        if self._finished:
            return
        self._finished = True
        if self._emit is None:
            return
        total_ms = (time.perf_counter() - self._start) * 1000.0
        body = self.body
        trace = self.trace
        self._emit(
            CallRecord(
                request_id=self.request_id,
                operation=self.operation,
                model=self.model,
                stream=self.stream,
                backend=self.backend,
                base_url=self.base_url,
                gateway=self.gateway,
                no_log=self.no_log,
                started_at=self.started_at,
                total_ms=total_ms,
                ttft_ms=self.ttft_ms,
                attempts=self.attempts,
                http_status=self.http_status,
                outcome="error" if error else "ok",
                error=error,
                parameters=recorded_parameters(body),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                response_id=response_id,
                response_model=response_model,
                finish_reasons=finish_reasons,
                trace_id=getattr(trace, "trace_id", None) or new_trace_id(),
                span_id=new_span_id(),
                parent_id=getattr(trace, "span_id", None),
                trace_name=getattr(trace, "trace_name", None),
                request_id_supplied=self.request_id_supplied,
                user_id=self.attribution.user_id,
                session_id=self.attribution.session_id,
                properties=self.attribution.properties,
                request_body=self.request_body if self.capture_content else None,
                output=output if self.capture_content else None,
                closed_early=closed_early,
                ephemeral=self.ephemeral,
                cached_tokens=cached_tokens,
                route=self.route,
                input_audio_tokens=input_audio_tokens,
                output_audio_tokens=output_audio_tokens,
                **(_FREE if self.cache_hit else {}),
            )
        )


# A call answered from the response cache: nothing was spent.
_FREE: Mapping[str, Any] = {
    "cache_hit": True,
    "input_cost_usd": 0.0,
    "output_cost_usd": 0.0,
    "cached_cost_usd": 0.0,
    "total_cost_usd": 0.0,
}
