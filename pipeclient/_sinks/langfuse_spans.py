"""Langfuse's spans: records as OTLP/JSON spans carrying Langfuse's `langfuse.*` attributes,
rendered as the preview's payloads (`span_payload`) or, for the export worker, as the same
JSON text written directly (`span_json`, byte for byte `json_text` of the payload).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .._telemetry.record import CallRecord, ErrorInfo, TraceRecord
from .._telemetry.sink import Payload, error_summary, json_text, strict_json, with_message

__all__ = ["Span", "attribute", "record_span", "span_json", "span_payload", "wire"]

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

_KIND_INTERNAL = 1
_KIND_CLIENT = 3
_STATUS_ERROR = 2


def record_span(record: CallRecord | TraceRecord) -> Span:
    return _trace_span(record) if isinstance(record, TraceRecord) else _call_span(record)


def _call_span(record: CallRecord) -> Span:
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


def _trace_span(record: TraceRecord) -> Span:
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


class Span(NamedTuple):
    """One span's fields, rendered as OTLP/JSON by `span_payload` (the preview's dicts)
    or `span_json` (the same JSON text, written directly)."""

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
) -> Span:
    status: Payload = {}  # unset, as instrumentation leaves a span that went well
    if failed:
        summary = error_summary(error)
        attributes[OBSERVATION_LEVEL] = "ERROR"
        # Error text is content: it is in a view only where content may go, and then only
        # in the Langfuse status message, never in the OTLP span status.
        attributes[OBSERVATION_STATUS_MESSAGE] = with_message(summary, error)
        status = {"code": _STATUS_ERROR, "message": summary}
    return Span(
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


def span_payload(span: Span) -> Payload:
    payload: Payload = {"traceId": span.trace_id, "spanId": span.span_id}
    if span.parent_id:
        payload["parentSpanId"] = span.parent_id
    payload.update(
        name=span.name,
        kind=span.kind,
        # int64 as JSON strings (proto3 JSON): nanoseconds overflow a JSON number's precision
        startTimeUnixNano=str(span.start_ns),
        endTimeUnixNano=str(span.end_ns),
        attributes=[attribute(key, value) for key, value in span.attributes.items()],
        status=span.status,
    )
    return payload


def span_json(span: Span) -> str:
    """`json_text(span_payload(span), ascii_only=False)`, written without the dicts."""
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


def attribute(key: str, value: Any) -> Payload:
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
    """`attribute(key, value)` as JSON text (a NaN or infinity as null, as `json_text`)."""
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


def wire(payload: Payload) -> bytes:
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
