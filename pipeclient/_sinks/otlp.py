"""OTLP: OpenTelemetry GenAI semantic-convention spans and metrics, over OTLP/HTTP protobuf.

`encode` maps a record to a plain span description (ids, times, attributes, status,
events, and the metric measurements it yields); `send` replays exactly those descriptions
through the OpenTelemetry SDK, with a TracerProvider and a MeterProvider of this sink's own
(never the global ones), and exports them with the SDK's OTLP/HTTP exporters on the
dispatcher's worker, within the timeout it is given. No SDK thread, atexit hook or global
provider is ever created: ended spans are collected into a list and exported as one batch,
and metrics are pulled by a manual reader from `send`, `force_flush` and `shutdown`.

Attribute and metric names are the GenAI conventions' (checked against the
`opentelemetry-semantic-conventions` constants in the tests); pipeclient's own facts are
under `pipeclient.*`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._record import CallRecord, ErrorInfo, TraceRecord, new_span_id, new_trace_id
from .._version import __version__
from .base import Payload, Sink

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.trace import Tracer

    from ..config import OtlpConfig

__all__ = ["OtlpExportError", "OtlpSink"]

# `images.generate` has no operation of its own in the conventions: `generate_content`
# ("multimodal content generation") is the well-known value that applies, and
# `gen_ai.output.type = "image"` tells it apart from text generation.
_OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "images": "generate_content"}

# gen_ai.provider.name from the backend's host. The convention asks for the
# instrumentation's best knowledge; an OpenAI-compatible endpoint we do not recognise
# speaks OpenAI's API, so it is "openai" (server.address says which host it really was).
_PROVIDER_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
}
_PROVIDER_SUFFIXES = (
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".inference.ai.azure.com", "azure.ai.inference"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    (".amazonaws.com", "aws.bedrock"),
    (".ml.cloud.ibm.com", "ibm.watsonx.ai"),
)

# Request parameters with a convention attribute of their own: (attribute, type).
_PARAMETER_ATTRIBUTES: dict[str, tuple[str, type[int] | type[float]]] = {
    "temperature": ("gen_ai.request.temperature", float),
    "top_p": ("gen_ai.request.top_p", float),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", float),
    "presence_penalty": ("gen_ai.request.presence_penalty", float),
    "seed": ("gen_ai.request.seed", int),
    "max_tokens": ("gen_ai.request.max_tokens", int),
    "max_completion_tokens": ("gen_ai.request.max_tokens", int),
    "dimensions": ("gen_ai.embeddings.dimension.count", int),
}
_OUTPUT_TYPES = {"text": "text", "json_object": "json", "json_schema": "json"}
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}

# Bucket boundaries the conventions ask for.
_SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
_TOKEN_BUCKETS = tuple(float(4**power) for power in range(14))  # 1, 4, 16, ... 67108864
_DURATION = "gen_ai.client.operation.duration"
_TOKEN_USAGE = "gen_ai.client.token.usage"
_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
_INSTRUMENTS = {  # name: (unit, description, bucket boundaries)
    _DURATION: ("s", "GenAI operation duration.", _SECONDS_BUCKETS),
    _TOKEN_USAGE: ("{token}", "Number of input and output tokens used.", _TOKEN_BUCKETS),
    _TIME_TO_FIRST_CHUNK: (
        "s",
        "Time to receive the first chunk, measured from when the client issues the "
        "generation request to when the first chunk is received in the response stream.",
        _SECONDS_BUCKETS,
    ),
}
_METRIC_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
)
# The only headers that reach the collector besides the configured ones: the exporter
# would otherwise add OTEL_EXPORTER_OTLP_*HEADERS to every endpoint, and a token meant
# for one collector must not reach another.
_PROTOCOL_HEADERS = frozenset({"content-type", "content-encoding", "user-agent"})


class OtlpExportError(RuntimeError):
    """An OTLP export that did not reach the collector (the reason is logged by the SDK)."""


class _CollectorUnreachable(OSError):
    """No connection could be made: not a type the exporter retries, so it fails at once."""


class OtlpSink(Sink):
    #: metrics are cumulative, so exporting them every few seconds loses nothing
    metrics_interval_s = 5.0

    def __init__(self, config: OtlpConfig, *, service_name: str = "pipeclient") -> None:
        self.name = f"otlp:{config.name}"
        self.receives_content = config.capture_content
        self._service_name = service_name
        base = config.endpoint.rstrip("/")
        self._endpoint = base
        self._traces_url = f"{base}/v1/traces"
        self._metrics_url = f"{base}/v1/metrics"
        self._headers = dict(config.headers)
        self._lock = threading.Lock()
        self._runtime: _Runtime | None = None
        self._closed = False
        self._metrics_pending = False
        self._metrics_exported_at = -math.inf

    def __repr__(self) -> str:  # never the headers: they carry tokens
        return f"OtlpSink(name={self.name!r}, endpoint={_safe_url(self._endpoint)!r})"

    # -- encode: pure, no SDK ------------------------------------------------------------

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if isinstance(record, TraceRecord):
            return [_trace_span(record)]
        return [_call_span(record)]

    # -- send: the SDK, on the dispatcher's worker ------------------------------------------

    def send(self, payloads: Sequence[Payload], timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._closed:
                raise OtlpExportError(f"{self.name} is shut down")
            if not payloads:
                return
            runtime = self._ensure_runtime()
            try:
                spans, measured = runtime.replay(payloads)
            except Exception:  # a malformed payload: none of this batch goes out later
                runtime.collected.take()
                raise
            self._metrics_pending = self._metrics_pending or measured
            delivered = runtime.export_spans(spans, deadline)
            due = time.monotonic() - self._metrics_exported_at >= self.metrics_interval_s
            # After a failed span export the collector is likely down: the metrics wait
            # (cumulative, they lose nothing) rather than spend the worker's time.
            if delivered and self._metrics_pending and due:
                self._export_metrics(runtime, deadline)
        if not delivered:
            raise OtlpExportError(
                f"{self.name}: {len(spans)} span(s) were not accepted by "
                f"{_safe_url(self._traces_url)}"
            )

    def force_flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return False
        try:
            if self._runtime is None or self._closed or not self._metrics_pending:
                return not self._metrics_pending
            return self._export_metrics(self._runtime, deadline)
        finally:
            self._lock.release()

    def shutdown(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            # The worker is inside an export: cut it short (its send then fails).
            self._closed = True
            if self._runtime is not None:
                self._runtime.interrupt()
            return
        try:
            if self._closed:
                return
            self._closed = True
            runtime = self._runtime
            if runtime is None:
                return
            if self._metrics_pending:
                self._export_metrics(runtime, deadline)
            runtime.close(deadline)
        finally:
            self._lock.release()

    def _ensure_runtime(self) -> _Runtime:
        if self._runtime is None:
            self._runtime = _Runtime(
                traces_url=self._traces_url,
                metrics_url=self._metrics_url,
                headers=self._headers,
                service_name=self._service_name,
            )
        return self._runtime

    def _export_metrics(self, runtime: _Runtime, deadline: float) -> bool:
        if deadline - time.monotonic() <= 0:
            return False
        self._metrics_exported_at = time.monotonic()
        delivered = runtime.export_metrics(deadline)
        self._metrics_pending = not delivered
        return delivered


# -- encode ------------------------------------------------------------------------------


def _call_span(record: CallRecord) -> Payload:
    operation = _OPERATIONS.get(record.operation, record.operation)
    address, port = _server(record.base_url)
    provider = _provider(address)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": record.model,
    }
    if address:
        attributes["server.address"] = address
        attributes["server.port"] = port
    attributes.update(_request_attributes(record, provider))
    if record.operation == "images":
        attributes["gen_ai.output.type"] = "image"
    if record.response_id:
        attributes["gen_ai.response.id"] = record.response_id
    if record.response_model:
        attributes["gen_ai.response.model"] = record.response_model
    if record.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = list(record.finish_reasons)
    if record.input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = record.input_tokens
    if record.output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = record.output_tokens
    if record.stream and record.ttft_ms is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = record.ttft_ms / 1000.0
    if record.error is not None:
        attributes["error.type"] = record.error.type
        if record.error.code is not None:
            attributes["pipeclient.error.code"] = str(record.error.code)
    # The X-Request-Id of every attempt: pipeclient's idempotency key, under which every
    # sink and the audit log file the call. `http.request.header.*` would describe one
    # HTTP attempt, and this span is the whole operation (all attempts), so it is ours.
    attributes["pipeclient.request_id"] = record.request_id
    attributes["pipeclient.attempts"] = record.attempts
    if record.backend:
        attributes["pipeclient.backend"] = record.backend
    attributes["pipeclient.gateway"] = record.gateway
    if record.http_status is not None:
        attributes["pipeclient.http_status"] = record.http_status
    if record.closed_early:
        attributes["pipeclient.closed_early"] = True
    attributes.update(_content_attributes(record))

    start, end = _times(record.started_at, record.total_ms)
    trace_id, span_id, parent_id = _ids(record.trace_id, record.span_id, record.parent_id)
    return {
        "name": f"{operation} {record.model}".strip(),
        "kind": "CLIENT",
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_id,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "attributes": attributes,
        "status": _status(record.error),
        "events": _error_events(record.error, end),
        "metrics": _measurements(record, attributes),
    }


def _trace_span(record: TraceRecord) -> Payload:
    start, end = _times(record.started_at, record.total_ms)
    trace_id, span_id, parent_id = _ids(record.trace_id, record.span_id, record.parent_id)
    attributes: dict[str, Any] = {}
    if record.error is not None:
        attributes["error.type"] = record.error.type
    return {
        "name": record.name,
        "kind": "INTERNAL",
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_id,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "attributes": attributes,
        "status": _status(record.error),
        "events": _error_events(record.error, end),
        "metrics": [],
    }


def _request_attributes(record: CallRecord, provider: str) -> dict[str, Any]:
    found: dict[str, Any] = {"gen_ai.request.stream": record.stream}
    if record.operation == "chat" and provider == "openai":
        found["openai.api.type"] = "chat_completions"
    for name, value in record.parameters.items():
        if name in _PARAMETER_ATTRIBUTES and not isinstance(value, bool):
            key, kind = _PARAMETER_ATTRIBUTES[name]
            if kind is int and isinstance(value, float) and not value.is_integer():
                found[f"pipeclient.request.{name}"] = value
            else:
                found[key] = kind(value)
        elif name == "n" and isinstance(value, int) and not isinstance(value, bool):
            if value != 1:
                found["gen_ai.request.choice.count"] = value
        elif name == "encoding_format" and isinstance(value, str):
            found["gen_ai.request.encoding_formats"] = [value]
        elif name == "response_format" and value in _OUTPUT_TYPES:
            found["gen_ai.output.type"] = _OUTPUT_TYPES[value]
        elif name == "service_tier" and provider == "openai":
            if value != "auto":  # the convention's condition
                found["openai.request.service_tier"] = value
        elif isinstance(value, (bool, int, float, str)):
            found[f"pipeclient.request.{name}"] = value
    return found


def _measurements(record: CallRecord, span_attributes: Mapping[str, Any]) -> list[Payload]:
    common = {key: span_attributes[key] for key in _METRIC_ATTRIBUTES if key in span_attributes}
    timed = dict(common)
    if record.error is not None:
        timed["error.type"] = record.error.type
    found: list[Payload] = [_measure(_DURATION, max(record.total_ms, 0.0) / 1000.0, timed)]
    for token_type, count in (("input", record.input_tokens), ("output", record.output_tokens)):
        if count is not None:
            found.append(_measure(_TOKEN_USAGE, count, {**common, "gen_ai.token.type": token_type}))
    if record.stream and record.ttft_ms is not None:
        found.append(_measure(_TIME_TO_FIRST_CHUNK, record.ttft_ms / 1000.0, timed))
    return found


def _measure(name: str, value: float, attributes: dict[str, Any]) -> Payload:
    return {"name": name, "unit": _INSTRUMENTS[name][0], "value": value, "attributes": attributes}


def _status(error: ErrorInfo | None) -> Payload:
    if error is None:  # the conventions leave successful spans UNSET
        return {"code": "UNSET", "description": None}
    description = error.type if error.code is None else f"{error.type} ({error.code})"
    if error.message:  # content: present only for a destination that may receive it
        description = f"{description}: {error.message}"
    return {"code": "ERROR", "description": description}


def _error_events(error: ErrorInfo | None, at: int) -> list[Payload]:
    if error is None:
        return []
    attributes: dict[str, Any] = {"exception.type": error.type}
    if error.message:
        attributes["exception.message"] = error.message
    return [{"name": "exception", "time_unix_nano": at, "attributes": attributes}]


def _times(started_at: float, total_ms: float) -> tuple[int, int]:
    seconds = math.floor(started_at)  # whole seconds apart: a float has no room for ns
    start = seconds * 10**9 + round((started_at - seconds) * 1e9)
    return start, start + max(0, round(total_ms * 1e6))


def _ids(trace_id: str, span_id: str, parent_id: str | None) -> tuple[str, str, str | None]:
    if not _is_id(trace_id, 32):
        trace_id, parent_id = new_trace_id(), None
    if not _is_id(span_id, 16):
        span_id = new_span_id()
    return trace_id, span_id, parent_id if parent_id and _is_id(parent_id, 16) else None


def _is_id(value: str | None, length: int) -> bool:
    if not value or len(value) != length:
        return False
    try:
        return int(value, 16) != 0
    except ValueError:
        return False


def _server(base_url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None, None
    if not parts.hostname:
        return None, None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _provider(host: str | None) -> str:
    if not host:
        return "openai"
    host = host.lower()
    if host in _PROVIDER_HOSTS:
        return _PROVIDER_HOSTS[host]
    for suffix, provider in _PROVIDER_SUFFIXES:
        if host.endswith(suffix) and (suffix != ".amazonaws.com" or "bedrock" in host):
            return provider
    return "openai"


def _safe_url(url: str) -> str:
    """scheme://host[:port]/path: never user info or a query string."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


# -- content, in the conventions' message-parts format ------------------------------------


def _content_attributes(record: CallRecord) -> dict[str, str]:
    found: dict[str, str] = {}
    if record.input is not None:
        if record.operation == "chat" and isinstance(record.input, Mapping):
            messages = record.input.get("messages")
            if messages:
                found["gen_ai.input.messages"] = _json(_input_messages(messages))
            tools = record.input.get("tools")
            if tools:
                found["gen_ai.tool.definitions"] = _json(_tool_definitions(tools))
        else:  # an embeddings input or an image prompt
            texts = [record.input] if isinstance(record.input, str) else record.input
            if isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts):
                parts = [{"type": "text", "content": text} for text in texts]
                found["gen_ai.input.messages"] = _json([{"role": "user", "parts": parts}])
    if record.output is not None and isinstance(record.output, list):
        found["gen_ai.output.messages"] = _json(
            _output_messages(record.output, record.finish_reasons)
        )
    return found


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _input_messages(messages: Iterable[Any]) -> list[Payload]:
    converted = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role") or "user"
        parts: list[Payload]
        if role in ("tool", "function"):
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": _text_of(message.get("content")),
                }
            ]
        else:
            parts = _content_parts(message.get("content"))
            parts += _tool_call_parts(message.get("tool_calls"))
        entry: Payload = {"role": role, "parts": parts}
        if isinstance(message.get("name"), str) and role != "function":
            entry["name"] = message["name"]
        converted.append(entry)
    return converted


def _output_messages(choices: Sequence[Any], finish_reasons: Sequence[str]) -> list[Payload]:
    converted = []
    for index, choice in enumerate(choices):
        if not isinstance(choice, Mapping):
            continue
        parts = _content_parts(choice.get("content"))
        if isinstance(choice.get("refusal"), str):
            parts.append({"type": "refusal", "content": choice["refusal"]})
        parts += _tool_call_parts(choice.get("tool_calls"))
        entry: Payload = {"role": choice.get("role") or "assistant", "parts": parts}
        if index < len(finish_reasons):
            reason = finish_reasons[index]
            entry["finish_reason"] = _FINISH_REASONS.get(reason, reason)
        converted.append(entry)
    return converted


def _content_parts(content: Any) -> list[Payload]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list):
        return [{"type": "text", "content": str(content)}]
    parts: list[Payload] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "content": part})
        elif isinstance(part, Mapping):
            parts.append(_content_part(part))
    return parts


def _content_part(part: Mapping[str, Any]) -> Payload:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "content": str(part.get("text", ""))}
    if kind == "refusal":
        return {"type": "refusal", "content": str(part.get("refusal", ""))}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        return _media_part(str(url or ""), "image")
    if kind == "input_audio" and isinstance(part.get("input_audio"), Mapping):
        audio = part["input_audio"]
        return {
            "type": "blob",
            "modality": "audio",
            "mime_type": f"audio/{audio.get('format', 'wav')}",
            "content": audio.get("data", ""),
        }
    if kind == "file" and isinstance(part.get("file"), Mapping):
        file = part["file"]
        if file.get("file_id"):
            return {"type": "file", "modality": "document", "file_id": file["file_id"]}
        return _media_part(str(file.get("file_data", "")), "document")
    return {"type": str(kind or "unknown"), **{k: v for k, v in part.items() if k != "type"}}


def _media_part(url: str, modality: str) -> Payload:
    if url.startswith("data:") and ";base64," in url:
        header, _, data = url.partition(";base64,")
        return {"type": "blob", "modality": modality, "mime_type": header[5:], "content": data}
    return {"type": "uri", "modality": modality, "uri": url}


def _tool_call_parts(tool_calls: Any) -> list[Payload]:
    if not isinstance(tool_calls, list):
        return []
    parts: list[Payload] = []
    for call in tool_calls:
        if not isinstance(call, Mapping):
            continue
        function, custom = _mapping(call.get("function")), _mapping(call.get("custom"))
        arguments = function.get("arguments", custom.get("input"))
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name") or custom.get("name") or "",
                "arguments": arguments,
            }
        )
    return parts


def _tool_definitions(tools: Iterable[Any]) -> list[Payload]:
    definitions = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = str(tool.get("type") or "function")
        body = _mapping(tool.get(kind))
        definition: Payload = {"type": kind, "name": str(body.get("name", kind))}
        for key in ("description", "parameters"):
            if body.get(key) is not None:
                definition[key] = body[key]
        definitions.append(definition)
    return definitions


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text_of(content: Any) -> Any:
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "".join(t for t in texts if isinstance(t, str))
    return content


# -- send: the SDK, imported on first use ------------------------------------------------


class _Runtime:
    """One sink's SDK objects: providers, instruments and one HTTP session."""

    def __init__(
        self, *, traces_url: str, metrics_url: str, headers: dict[str, str], service_name: str
    ) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        sdk = _sdk()
        self.traces_url = traces_url
        self.metrics_url = metrics_url
        self.headers = headers
        resource = Resource.create({"service.name": service_name})
        self.ids = sdk.given_ids()
        self.collected = sdk.collect_spans()
        self.tracer_provider: TracerProvider = TracerProvider(
            sampler=ALWAYS_ON,  # every record is exported, as to every other sink
            resource=resource,
            shutdown_on_exit=False,  # no atexit hook: the dispatcher owns exit
            id_generator=self.ids,
        )
        self.tracer_provider.add_span_processor(self.collected)
        self.tracer: Tracer = self.tracer_provider.get_tracer("pipeclient", __version__)
        self.reader = sdk.pull_reader()
        self.meter_provider: MeterProvider = MeterProvider(
            metric_readers=[self.reader], resource=resource, shutdown_on_exit=False
        )
        meter = self.meter_provider.get_meter("pipeclient", __version__)
        self.instruments: dict[str, Histogram] = {
            name: meter.create_histogram(
                name,
                unit=unit,
                description=description,
                explicit_bucket_boundaries_advisory=buckets,
            )
            for name, (unit, description, buckets) in _INSTRUMENTS.items()
        }
        allowed = _PROTOCOL_HEADERS | {name.lower() for name in headers}
        self.session = sdk.bounded_session(allowed)
        self.in_flight: list[Any] = []

    def replay(self, payloads: Sequence[Payload]) -> tuple[list[ReadableSpan], bool]:
        """Build the SDK spans (with the payloads' own ids) and record the measurements."""
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode

        measured = False
        for payload in payloads:
            trace_id = int(payload["trace_id"], 16)
            context = Context()  # never the worker's current context
            if payload.get("parent_span_id"):
                parent = SpanContext(
                    trace_id,
                    int(payload["parent_span_id"], 16),
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
                context = trace.set_span_in_context(NonRecordingSpan(parent), context)
            self.ids.set(trace_id, int(payload["span_id"], 16))
            span = self.tracer.start_span(
                payload["name"],
                context=context,
                kind=SpanKind[payload["kind"]],
                attributes=payload["attributes"],
                start_time=payload["start_time_unix_nano"],
            )
            for event in payload.get("events", ()):
                span.add_event(event["name"], event.get("attributes"), event.get("time_unix_nano"))
            status = payload.get("status") or {}
            code = StatusCode[status.get("code") or "UNSET"]
            if code is StatusCode.ERROR:
                span.set_status(Status(code, status.get("description")))
            elif code is StatusCode.OK:
                span.set_status(Status(code))
            span.end(end_time=payload["end_time_unix_nano"])
            in_span = trace.set_span_in_context(span, Context())  # exemplars link to it
            for measurement in payload.get("metrics", ()):
                instrument = self.instruments.get(measurement["name"])
                if instrument is not None:
                    instrument.record(measurement["value"], measurement["attributes"], in_span)
                    measured = True
        return self.collected.take(), measured

    def export_spans(self, spans: list[ReadableSpan], deadline: float) -> bool:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult

        if not spans:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # A fresh exporter per batch (about 30 µs) so that its own deadline, which bounds
        # its retries and backoff, is this send's; the session, and its connections, stay.
        exporter = OTLPSpanExporter(
            endpoint=self.traces_url,
            headers=self.headers,
            timeout=remaining,
            compression=Compression.Gzip,
            session=self.session,
        )
        return self._run(exporter, deadline, lambda: exporter.export(spans)) is (
            SpanExportResult.SUCCESS
        )

    def export_metrics(self, deadline: float) -> bool:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        exporter = OTLPMetricExporter(
            endpoint=self.metrics_url,
            headers=self.headers,
            timeout=remaining,
            compression=Compression.Gzip,
            session=self.session,
        )
        self.reader.exporter = exporter
        self.reader.delivered = False
        try:
            self._run(exporter, deadline, lambda: self.reader.collect(remaining * 1000.0))
        except Exception:  # a collect that failed or timed out: nothing was delivered
            return False
        finally:
            self.reader.exporter = None
        return bool(self.reader.delivered)

    def _run(self, exporter: Any, deadline: float, export: Any) -> Any:
        self.session.deadline = deadline
        self.in_flight.append(exporter)
        try:
            return export()
        finally:
            self.in_flight.remove(exporter)
            self.session.deadline = math.inf

    def interrupt(self) -> None:
        """From another thread: abort the export in progress (its retries and backoff)."""
        self.session.deadline = -math.inf
        for exporter in list(self.in_flight):
            with contextlib.suppress(Exception):
                exporter.shutdown()  # wakes its backoff wait and closes the session
        self.session.close()

    def close(self, deadline: float) -> None:
        remaining_ms = max(0.0, deadline - time.monotonic()) * 1000.0
        try:
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown(timeout_millis=max(remaining_ms, 1.0))
        except Exception:  # the SDK raises when its deadline passed; nothing is left open
            pass
        finally:
            self.session.close()


@dataclass(frozen=True)
class _Sdk:
    given_ids: Any
    collect_spans: Any
    pull_reader: Any
    bounded_session: Any


@functools.cache
def _sdk() -> _Sdk:
    """The SDK subclasses this sink needs, defined once the SDK is imported."""
    import requests
    from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
    from urllib3.exceptions import NewConnectionError

    class GivenIds(IdGenerator):
        """Hands out the ids `encode` chose, so that every sink shows the same ids."""

        def __init__(self) -> None:
            self._random = RandomIdGenerator()
            self._trace_id = 0
            self._span_id = 0

        def set(self, trace_id: int, span_id: int) -> None:
            self._trace_id, self._span_id = trace_id, span_id

        def generate_trace_id(self) -> int:
            return self._trace_id or self._random.generate_trace_id()

        def generate_span_id(self) -> int:
            span_id, self._span_id = self._span_id, 0
            return span_id or self._random.generate_span_id()

    class CollectSpans(SpanProcessor):
        """Keeps ended spans for `send` to export as one batch: no queue, no thread."""

        def __init__(self) -> None:
            self._ended: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self._ended.append(span)

        def take(self) -> list[ReadableSpan]:
            taken, self._ended = self._ended, []
            return taken

        def shutdown(self) -> None:
            self._ended = []

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    class PullReader(MetricReader):
        """Collected only when the sink asks (no periodic thread); cumulative, so a
        failed export loses nothing: the next one carries the running totals."""

        def __init__(self) -> None:
            super().__init__()
            self.exporter: Any = None
            self.delivered = False

        def _receive_metrics(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
        ) -> None:
            from opentelemetry.sdk.metrics.export import MetricExportResult

            if self.exporter is not None:
                result = self.exporter.export(metrics_data, timeout_millis=timeout_millis)
                self.delivered = result is MetricExportResult.SUCCESS

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    class BoundedSession(requests.Session):
        """The exporters' HTTP session: every request ends by the send's deadline, a
        collector that is not listening fails at once instead of being retried with
        backoff, and only the configured headers leave."""

        def __init__(self, allowed_headers: frozenset[str]) -> None:
            super().__init__()
            self.deadline = math.inf
            self.allowed_headers = allowed_headers

        def request(
            self, method: str, url: str | bytes, *args: Any, **kwargs: Any
        ) -> requests.Response:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the OTLP export deadline passed")
            timeout = kwargs.get("timeout")
            kwargs["timeout"] = remaining if timeout is None else min(timeout, remaining)
            headers = kwargs.get("headers")
            if headers is not None:
                kwargs["headers"] = {
                    k: v for k, v in headers.items() if k.lower() in self.allowed_headers
                }
            try:
                return super().request(method, url, *args, **kwargs)
            except requests.exceptions.ConnectionError as error:
                reason = getattr(error.args[0], "reason", None) if error.args else None
                if isinstance(reason, NewConnectionError):
                    raise _CollectorUnreachable(
                        f"could not connect to the OTLP endpoint ({type(reason).__name__})"
                    ) from None
                raise

    return _Sdk(GivenIds, CollectSpans, PullReader, BoundedSession)
