"""Langfuse: one generation observation per call, one span observation per trace block.

Observations travel as OTLP/JSON spans carrying Langfuse's `langfuse.*` attributes to
`POST {host}/api/public/otel/v1/traces`, through the SDK's own REST client (its
`SyncClientWrapper`: base URL, basic auth and SDK headers, the `HttpClient` that sends):
one synchronous request per batch, no retries, bounded by the dispatcher's timeout. The
body is the batch's JSON, encoded once with `json.dumps`: the generated endpoint method
(`opentelemetry.export_traces`) would first walk it through the SDK's `jsonable_encoder`
and type-hint machinery, several hundred microseconds per span for a body that is
already plain JSON. Why not the other routes:

* The legacy batch ingestion API (`/api/public/ingestion`) is gone from SDK 5 and
  Langfuse v4 servers reject trace and generation events on it.
* `Langfuse()` and its span processor are a `BatchSpanProcessor` (a thread per client), a
  process-wide resource manager with atexit hooks, and, when the app has no provider yet,
  a global TracerProvider (langfuse/langfuse#7212). Our records are already finished, so
  nothing of that machinery is needed: no TracerProvider exists here at all.

Importing the SDK sets the level of, and adds a handler to, the `httpx` logger
(langfuse-python#1532); `_sdk()` puts that logger back as it found it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import httpx

from .._telemetry.record import CallRecord, ErrorInfo, TraceRecord
from .._telemetry.sink import (
    ExportError,
    Payload,
    Sink,
    error_summary,
    json_text,
    strict_json,
    with_message,
)
from .._version import __version__

if TYPE_CHECKING:
    from .._config.models import LangfuseConfig

__all__ = ["LangfuseExportError", "LangfuseSink"]

#: the observation types Langfuse knows; embeddings get their own
# Every operation not named here is a "generation".
_OBSERVATION_TYPE = {"embeddings": "embedding", "moderations": "guardrail"}

# Span attributes Langfuse reads (the SDK's `LangfuseOtelSpanAttributes`; a test checks).
TRACE_NAME = "langfuse.trace.name"
TRACE_USER_ID = "user.id"
TRACE_SESSION_ID = "session.id"
TRACE_METADATA = "langfuse.trace.metadata"
OBSERVATION_TYPE = "langfuse.observation.type"
OBSERVATION_LEVEL = "langfuse.observation.level"
OBSERVATION_STATUS_MESSAGE = "langfuse.observation.status_message"
OBSERVATION_INPUT = "langfuse.observation.input"
OBSERVATION_OUTPUT = "langfuse.observation.output"
OBSERVATION_METADATA = "langfuse.observation.metadata"
OBSERVATION_MODEL = "langfuse.observation.model.name"
OBSERVATION_MODEL_PARAMETERS = "langfuse.observation.model.parameters"
OBSERVATION_COST_DETAILS = "langfuse.observation.cost_details"
OBSERVATION_USAGE_DETAILS = "langfuse.observation.usage_details"
OBSERVATION_COMPLETION_START_TIME = "langfuse.observation.completion_start_time"

_TRACES_PATH = "api/public/otel/v1/traces"
SCOPE_NAME = "langfuse-sdk.pipeclient"
_KIND_INTERNAL = 1
_KIND_CLIENT = 3
_STATUS_ERROR = 2


class LangfuseExportError(ExportError):
    """Langfuse did not take a batch. The message never quotes keys, headers or content."""


class LangfuseSink(Sink):
    name = "langfuse"

    def __init__(self, config: LangfuseConfig, *, service_name: str = "pipeclient") -> None:
        self._host = config.host.rstrip("/")
        self._public_key = config.public_key
        self._secret_key = config.secret_key
        self._resource: Payload = {"attributes": [_attribute("service.name", service_name)]}
        # Langfuse reads spans whose scope name starts with "langfuse-sdk" as written in its
        # own attribute format (these are): it does not then repeat every raw attribute in
        # the observation's metadata. The SDK's own spans carry the public key likewise.
        self._scope: Payload = {
            "name": SCOPE_NAME,
            "version": __version__,
            "attributes": [_attribute("public_key", config.public_key)],
        }
        self._packed_head = (
            f'{{"resource":{json_text(self._resource, ascii_only=False)},'
            f'"scopeSpans":[{{"scope":{json_text(self._scope, ascii_only=False)},"spans":['
        )
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._wrapper: Any = None
        self._pid = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"LangfuseSink(host={self._host!r})"

    # -- records to OTLP/JSON ---------------------------------------------------------------

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        """One `resourceSpans` element per record; `send` posts `{"resourceSpans": payloads}`."""
        span = _span_payload(_record_span(record))
        return [
            {"resource": self._resource, "scopeSpans": [{"scope": self._scope, "spans": [span]}]}
        ]

    def encode_packed(self, record: CallRecord | TraceRecord) -> list[bytes]:
        """`pack(encode(record))`, the same bytes, written without building the payload."""
        text = self._packed_head + _span_json(_record_span(record)) + "]}]}"
        return [text.encode("utf-8", "replace")]

    # -- delivery -----------------------------------------------------------------------------

    def pack(self, payloads: list[Payload]) -> list[bytes]:
        """Each `resourceSpans` element as its JSON bytes: what the lane holds and joins."""
        return [_wire(payload) for payload in payloads]

    def send(self, payloads: Sequence[Payload | bytes], timeout: float) -> None:
        if not payloads:
            return
        sdk = self._client()
        # Encoded span by span (in `pack`, on the worker): one dumps of a large batch would
        # hold the GIL throughout.
        body = b'{"resourceSpans":[%s]}' % b",".join(
            part if isinstance(part, bytes) else _wire(part) for part in payloads
        )
        problem: LangfuseExportError | None = None
        try:
            answer = sdk.httpx_client.request(
                _TRACES_PATH,
                method="POST",
                content=body,
                headers={"content-type": "application/json"},
                request_options={"timeout_in_seconds": max(timeout, 0.001), "max_retries": 0},
            )
        except httpx.TimeoutException:
            problem = LangfuseExportError(
                f"Langfuse did not answer within {timeout:.1f} s", transient=True
            )
        except httpx.HTTPError as exc:
            problem = LangfuseExportError(
                f"the connection to Langfuse failed ({type(exc).__name__})", transient=True
            )
        if problem is not None:
            # Raised here, outside the handler: no __context__ keeps the httpx request and
            # its Authorization header.
            raise problem
        if not 200 <= answer.status_code < 300:
            status = answer.status_code
            raise LangfuseExportError(
                f"Langfuse answered HTTP {status}", transient=status >= 500 or status in (408, 429)
            )
        rejected = _rejected_spans(answer.content)
        if rejected:
            raise LangfuseExportError(f"Langfuse rejected {rejected} of the spans sent")

    def prepare(self) -> None:
        _sdk()

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # the client is rebuilt on first use (pid check)

    def shutdown(self, timeout: float) -> None:
        self._closed = True
        # Bounded: a send (or the SDK import) may hold the lock past the deadline.
        if not self._lock.acquire(timeout=max(0.01, timeout)):
            return
        try:
            http, self._http, self._wrapper = self._http, None, None
        finally:
            self._lock.release()
        if http is not None and self._pid == os.getpid():
            http.close()

    def _client(self) -> Any:
        """The SDK's client wrapper, built on first use and again in a forked child."""
        with self._lock:
            if self._closed:
                raise LangfuseExportError("the Langfuse sink is shut down")
            if self._wrapper is None or self._pid != os.getpid():
                # A child process leaves its parent's pooled sockets alone: a new client.
                self._http = httpx.Client(follow_redirects=False)
                self._wrapper = _sdk().SyncClientWrapper(
                    base_url=self._host,
                    username=self._public_key,
                    password=self._secret_key,
                    x_langfuse_public_key=self._public_key,
                    x_langfuse_sdk_name="pipeclient",
                    x_langfuse_sdk_version=__version__,
                    # without it, Langfuse v4 does not process spans in real time
                    headers={"x-langfuse-ingestion-version": "4"},
                    httpx_client=self._http,
                )
                self._pid = os.getpid()
            return self._wrapper


class _Sdk:
    def __init__(self) -> None:
        quiet = logging.getLogger("httpx")
        level, handlers = quiet.level, list(quiet.handlers)
        first_import = "langfuse.logger" not in sys.modules
        try:
            from langfuse.api.core.client_wrapper import SyncClientWrapper
        finally:
            if first_import:  # undo what `langfuse.logger` does to a library's logger
                quiet.setLevel(level)
                for handler in list(quiet.handlers):
                    if handler not in handlers:
                        quiet.removeHandler(handler)
        self.SyncClientWrapper = SyncClientWrapper


_loaded: list[_Sdk] = []
_load_lock = threading.Lock()


def _sdk() -> _Sdk:
    with _load_lock:
        if not _loaded:
            _loaded.append(_Sdk())
        return _loaded[0]


def _rejected_spans(answer: bytes) -> int:
    """OTLP partial success: how many spans the endpoint refused (0 when it took them all)."""
    try:
        partial = json.loads(answer).get("partialSuccess") if answer.strip() else None
        return int(partial.get("rejectedSpans") or 0) if isinstance(partial, dict) else 0
    except (AttributeError, TypeError, ValueError):
        return 0  # an answer that is not OTLP JSON: accepted, as its status says


# -- spans ------------------------------------------------------------------------------------


def _record_span(record: CallRecord | TraceRecord) -> _Span:
    return _trace_span(record) if isinstance(record, TraceRecord) else _call_span(record)


def _call_span(record: CallRecord) -> _Span:
    start_ns = _nanos(record.started_at)
    attributes: dict[str, Any] = {
        OBSERVATION_TYPE: _OBSERVATION_TYPE.get(record.operation, "generation"),
        OBSERVATION_MODEL: record.response_model or record.model,
    }
    if record.parameters:
        attributes[OBSERVATION_MODEL_PARAMETERS] = json.dumps(dict(record.parameters))
    usage = {
        key: value
        for key, value in (("input", record.input_tokens), ("output", record.output_tokens))
        if value is not None
    }
    if len(usage) == 2:
        usage["total"] = usage["input"] + usage["output"]
    if usage:
        attributes[OBSERVATION_USAGE_DETAILS] = json.dumps(usage)
    if record.total_cost_usd is not None:
        attributes[OBSERVATION_COST_DETAILS] = json.dumps(
            {
                "input": (record.input_cost_usd or 0.0) + (record.cached_cost_usd or 0.0),
                "output": record.output_cost_usd,
                "total": record.total_cost_usd,
            }
        )
    if record.ttft_ms is not None:
        first = datetime.fromtimestamp(record.started_at + record.ttft_ms / 1000, timezone.utc)
        attributes[OBSERVATION_COMPLETION_START_TIME] = _iso(first)  # an ISO 8601 string
    if record.trace_name:
        attributes[TRACE_NAME] = record.trace_name
    if record.input is not None:
        prompt = record.input
        if isinstance(prompt, Mapping):  # chat: {"messages": [...], "tools": [...] or None}
            prompt = {key: value for key, value in prompt.items() if value is not None}
        attributes[OBSERVATION_INPUT] = _json_text(prompt)
    if record.output is not None:
        output = record.output
        if isinstance(output, list) and len(output) == 1:
            output = output[0]  # one choice: the assistant message itself
        attributes[OBSERVATION_OUTPUT] = _json_text(output)
    metadata: dict[str, Any] = {
        "request_id": record.request_id,
        "operation": record.operation,
        "backend": record.backend,
        "server_address": urlsplit(record.base_url).hostname if record.base_url else None,
        "gateway": record.gateway,
        "http_status": record.http_status,
        "attempts": record.attempts,
        "stream": record.stream,
        "closed_early": record.closed_early,
        "response_id": record.response_id,
        "finish_reasons": ",".join(record.finish_reasons) or None,
        "route": record.route,
        "cache_hit": True if record.cache_hit else None,  # answered by pipeclient's [cache]
    }
    attributes.update(
        (f"{OBSERVATION_METADATA}.{key}", value)
        for key, value in metadata.items()
        if value is not None
    )
    _attribute_people(attributes, record)
    return _span(
        trace_id=record.trace_id or _derived_id(record.request_id, 32),
        span_id=record.span_id or _derived_id(record.request_id, 16),
        parent_id=record.parent_id,
        name=f"{record.operation} {record.model}".strip(),
        kind=_KIND_CLIENT,
        start_ns=start_ns,
        end_ns=start_ns + round(record.total_ms * 1_000_000),
        attributes=attributes,
        error=record.error if record.outcome == "error" else None,
        failed=record.outcome == "error",
    )


def _trace_span(record: TraceRecord) -> _Span:
    start_ns = _nanos(record.started_at)
    attributes: dict[str, Any] = {
        OBSERVATION_TYPE: "span",
        # The outermost block's name on every span: Langfuse keeps whichever arrives last.
        TRACE_NAME: record.trace_name or record.name,
        f"{OBSERVATION_METADATA}.outcome": record.outcome,
    }
    _attribute_people(attributes, record)
    return _span(
        trace_id=record.trace_id or _derived_id(record.span_id or record.name, 32),
        span_id=record.span_id or _derived_id(record.trace_id or record.name, 16),
        parent_id=record.parent_id,
        name=record.name,
        kind=_KIND_INTERNAL,
        start_ns=start_ns,
        end_ns=start_ns + round(record.total_ms * 1_000_000),
        attributes=attributes,
        error=record.error,
        failed=record.outcome == "error",
    )


def _attribute_people(attributes: dict[str, Any], record: CallRecord | TraceRecord) -> None:
    """Attribution: Langfuse's user and session of the trace, properties as the trace's
    metadata (filterable in Langfuse); pipeclient's own metadata keys win."""
    if record.user_id:
        attributes[TRACE_USER_ID] = record.user_id
    if record.session_id:
        attributes[TRACE_SESSION_ID] = record.session_id
    for key, value in record.properties.items():
        attributes.setdefault(f"{TRACE_METADATA}.{key}", value)


class _Span(NamedTuple):
    """One span's fields, rendered as OTLP/JSON by `_span_payload` (the preview's dicts)
    or `_span_json` (the same JSON text, written directly)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status: Payload


def _span(
    *,
    trace_id: str,
    span_id: str,
    parent_id: str | None,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, Any],
    error: ErrorInfo | None,
    failed: bool,
) -> _Span:
    status: Payload = {}  # unset, as instrumentation leaves a span that went well
    if failed:
        summary = error_summary(error)
        attributes[OBSERVATION_LEVEL] = "ERROR"
        # Error text is content: it is in a view only where content may go, and then only
        # in the Langfuse status message, never in the OTLP span status.
        attributes[OBSERVATION_STATUS_MESSAGE] = with_message(summary, error)
        status = {"code": _STATUS_ERROR, "message": summary}
    return _Span(
        trace_id,
        span_id,
        parent_id,
        name,
        kind,
        start_ns,
        max(end_ns, start_ns),
        attributes,
        status,
    )


def _span_payload(span: _Span) -> Payload:
    payload: Payload = {"traceId": span.trace_id, "spanId": span.span_id}
    if span.parent_id:
        payload["parentSpanId"] = span.parent_id
    payload.update(
        name=span.name,
        kind=span.kind,
        # int64 as JSON strings (proto3 JSON): nanoseconds overflow a JSON number's precision
        startTimeUnixNano=str(span.start_ns),
        endTimeUnixNano=str(span.end_ns),
        attributes=[_attribute(key, value) for key, value in span.attributes.items()],
        status=span.status,
    )
    return payload


def _span_json(span: _Span) -> str:
    """`json_text(_span_payload(span), ascii_only=False)`, written without the dicts."""
    parent = f',"parentSpanId":{_text(span.parent_id)}' if span.parent_id else ""
    attributes = ",".join([_attribute_json(key, value) for key, value in span.attributes.items()])
    status = span.status
    status_json = (
        f'{{"code":{status["code"]},"message":{_text(status["message"])}}}' if status else "{}"
    )
    return (
        f'{{"traceId":{_text(span.trace_id)},"spanId":{_text(span.span_id)}{parent},'
        f'"name":{_text(span.name)},"kind":{span.kind},'
        f'"startTimeUnixNano":"{span.start_ns}","endTimeUnixNano":"{span.end_ns}",'
        f'"attributes":[{attributes}],"status":{status_json}}}'
    )


def _attribute(key: str, value: Any) -> Payload:
    if isinstance(value, bool):
        typed: Payload = {"boolValue": value}
    elif isinstance(value, int):
        typed = {"intValue": value}
    elif isinstance(value, float):
        typed = {"doubleValue": value}
    else:
        typed = {"stringValue": str(value)}
    return {"key": key, "value": typed}


_text = json.encoder.encode_basestring  # what json_text(ascii_only=False) escapes with
_KEYS: dict[str, str] = {}


def _attribute_json(key: str, value: Any) -> str:
    """`_attribute(key, value)` as JSON text (a NaN or infinity as null, as `json_text`)."""
    head = _KEYS.get(key)
    if head is None:
        head = f'{{"key":{_text(key)},"value":{{'
        if len(_KEYS) < 4096:
            _KEYS[key] = head
    if isinstance(value, bool):
        return f'{head}"boolValue":{"true" if value else "false"}}}}}'
    if isinstance(value, int):
        return f'{head}"intValue":{int.__repr__(value)}}}}}'
    if isinstance(value, float):
        number = float.__repr__(value) if math.isfinite(value) else "null"
        return f'{head}"doubleValue":{number}}}}}'
    return f'{head}"stringValue":{_text(str(value))}}}}}'


def _json_text(value: Any) -> str:
    """As the SDK serialises input/output: text as is, anything else as JSON (strict: a
    NaN would keep Langfuse from reading it as JSON)."""
    if isinstance(value, str):
        return value
    return strict_json(_CONTENT_JSON, value)


def _wire(payload: Payload) -> bytes:
    """UTF-8 JSON. A lone surrogate (from a provider's broken escape) cannot be UTF-8: it
    goes out as "?" rather than failing the batch."""
    return json_text(payload, ascii_only=False).encode("utf-8", "replace")


def _fallback(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, tuple, frozenset)):
        return list(value)
    return str(value)


_CONTENT_JSON = json.JSONEncoder(ensure_ascii=False, default=_fallback, allow_nan=False)


def _nanos(seconds: float) -> int:
    return round(seconds * 1_000_000) * 1_000  # microseconds: what a float epoch holds


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _derived_id(seed: str, width: int) -> str:
    """A stable id for a record that came without one (encode stays pure)."""
    return hashlib.sha256(seed.encode()).hexdigest()[:width]
