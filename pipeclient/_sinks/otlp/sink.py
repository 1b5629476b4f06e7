"""OTLP: OpenTelemetry GenAI semantic-convention spans and metrics, over OTLP/HTTP protobuf.

`encode` maps a record to a plain span description (ids, times, attributes, status,
events, and the metric measurements it yields); `pack`, on the dispatcher's worker, writes
each description once as its protobuf span (`proto`, no SDK) and records its measurements
in the sink's cumulative histograms; `send` joins a batch's spans under the resource and
scope (encoded once per sink) and POSTs them (`transport`) within the timeout it is given.
The histograms go out at most every `metrics_interval_s` after a delivered batch, and at
`force_flush` and `shutdown`. No thread, atexit hook, fork handler or global provider.

Attribute and metric names are the GenAI conventions' (`genai`, checked against the
`opentelemetry-semantic-conventions` constants in the tests); pipeclient's own facts are
under `pipeclient.*`. The span limits are the SDK's (`OTEL_*_LIMIT`, `limits`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..._telemetry.record import CallRecord, ErrorInfo, TraceRecord, new_span_id, new_trace_id
from ..._telemetry.sink import (
    ExportError,
    Payload,
    Sink,
    error_summary,
    public_url,
    with_message,
)
from ..._version import __version__
from . import proto
from .genai import (
    OPERATIONS,
    SCHEMA_URL,
    TokenMetrics,
    content_attributes,
    measurements,
    provider_name,
    request_attributes,
    server,
)
from .limits import SpanLimits
from .metrics import Histograms
from .transport import Transport

if TYPE_CHECKING:
    from ..._config.models import OtlpConfig

__all__ = ["OtlpExportError", "OtlpSink"]


class OtlpExportError(ExportError):
    """An OTLP export the collector did not accept (or that did not reach it)."""


class OtlpSink(Sink):
    #: metrics are cumulative, so exporting them every few seconds loses nothing
    metrics_interval_s = 5.0

    def __init__(self, config: OtlpConfig, *, service_name: str = "pipeclient") -> None:
        self.name = f"otlp:{config.name}"
        base = config.endpoint.rstrip("/")
        self._endpoint = base
        self._traces_url = f"{base}/v1/traces"
        self._metrics_url = f"{base}/v1/metrics"
        self._token_metrics: TokenMetrics = config.token_metrics
        self._limits = SpanLimits.from_environment()
        self._resource = proto.resource(
            {
                "service.name": service_name,
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "pipeclient",
                "telemetry.sdk.version": __version__,
            }
        )
        self._scope = proto.scope("pipeclient", __version__)
        self._transport = Transport(dict(config.headers))
        self._lock = threading.Lock()
        self._histograms = Histograms()
        self._closed = False
        self._metrics_exported_at = -math.inf

    def __repr__(self) -> str:  # never the headers: they carry tokens
        return f"OtlpSink(name={self.name!r}, endpoint={public_url(self._endpoint)!r})"

    # -- encode: pure ----------------------------------------------------------------------

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if isinstance(record, TraceRecord):
            return [_trace_span(record)]
        return [_call_span(record, self._token_metrics)]

    # -- pack: the protobuf, once, on the worker -------------------------------------------

    def pack(self, payloads: list[Payload]) -> list[bytes]:
        """Each span's protobuf bytes; its measurements go into the histograms now. A
        malformed payload raises before anything of its batch is kept."""
        spans = [self._span_bytes(payload) for payload in payloads]
        for payload in payloads:
            for measurement in payload.get("metrics", ()):
                self._histograms.record(
                    measurement["name"], float(measurement["value"]), measurement["attributes"]
                )
        return spans

    def _span_bytes(self, payload: Payload) -> bytes:
        limits = self._limits
        attributes, dropped = limits.span_attributes(payload["attributes"])
        events = list(payload.get("events") or ())
        dropped_events = 0
        if limits.max_events is not None and len(events) > limits.max_events:
            dropped_events = len(events) - limits.max_events
            events = events[dropped_events:]  # the latest kept, as the SDK's
        encoded_events = []
        for event in events:
            event_attributes, event_dropped = limits.event_attributes(event.get("attributes") or {})
            encoded_events.append(
                proto.event(
                    event.get("time_unix_nano") or payload["end_time_unix_nano"],
                    event["name"],
                    proto.attributes(b"\x1a", event_attributes),
                    event_dropped,
                )
            )
        status = payload.get("status") or {}
        code = proto.STATUS_CODES[status.get("code") or "UNSET"]
        parent = payload.get("parent_span_id")
        return proto.span_field(
            trace_id=_id_bytes(payload["trace_id"], 16),
            span_id=_id_bytes(payload["span_id"], 8),
            parent_span_id=_id_bytes(parent, 8) if parent else None,
            name=payload["name"],
            kind=proto.SPAN_KINDS[payload["kind"]],
            start_time_unix_nano=payload["start_time_unix_nano"],
            end_time_unix_nano=payload["end_time_unix_nano"],
            attributes_bytes=proto.attributes(b"\x4a", attributes),
            dropped_attributes=dropped,
            events=encoded_events,
            dropped_events=dropped_events,
            status_code=code,
            # the SDK keeps a description for errors only
            status_message=status.get("description") if code == 2 else None,
        )

    # -- send: one POST per batch, on the destination's lane ----------------------------------

    def prepare(self) -> None:
        with self._lock:
            if not self._closed:
                self._transport.load()

    def send(self, payloads: Sequence[Payload | bytes], timeout: float) -> None:
        with self._lock:
            if self._closed:
                raise OtlpExportError(f"{self.name} is shut down")
            if not payloads:
                return
            deadline = time.monotonic() + max(0.0, timeout)
            # Bytes from `pack`; payloads straight from `encode` (tests, previews) too.
            spans = [item if isinstance(item, bytes) else self.pack([item])[0] for item in payloads]
            body = proto.trace_request(self._resource, self._scope, SCHEMA_URL, spans)
            failure = self._transport.post(self._traces_url, body, deadline)
            due = time.monotonic() - self._metrics_exported_at >= self.metrics_interval_s
            # After a failed span export the collector is likely down: the metrics wait
            # (cumulative, they lose nothing) rather than spend the worker's time.
            if failure is None and self._histograms.pending and due:
                self._export_metrics(deadline)
        if failure is not None:
            raise OtlpExportError(
                f"{self.name}: {len(spans)} span(s) were not accepted by "
                f"{public_url(self._traces_url)} ({failure.reason})",
                transient=failure.transient and not self._closed,
                retry_after=failure.retry_after,
            )

    def force_flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return False
        try:
            if self._closed or not self._histograms.pending:
                return not self._histograms.pending
            return self._export_metrics(deadline)
        finally:
            self._lock.release()

    def after_fork(self) -> None:
        # The parent's histograms and connections are its own: start over.
        self._lock = threading.Lock()
        self._histograms = Histograms()
        self._transport.after_fork()
        self._metrics_exported_at = -math.inf

    def shutdown(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            # The worker is inside an export, which ends by its own deadline and then
            # fails; nothing more goes out.
            self._closed = True
            return
        try:
            if self._closed:
                return
            self._closed = True
            if self._histograms.pending:
                self._export_metrics(deadline)
            self._transport.close()
        finally:
            self._lock.release()

    def _export_metrics(self, deadline: float) -> bool:
        """The running totals (cumulative: a failed export loses nothing)."""
        if deadline - time.monotonic() <= 0:
            return False
        self._metrics_exported_at = time.monotonic()
        body = self._histograms.take(self._resource, self._scope)
        if body is None:
            return True
        delivered = self._transport.post(self._metrics_url, body, deadline) is None
        if not delivered:
            self._histograms.owe()
        return delivered


def _id_bytes(value: str, size: int) -> bytes:
    return int(value, 16).to_bytes(size, "big")


# -- encode ------------------------------------------------------------------------------


def _call_span(record: CallRecord, tokens: TokenMetrics = "v1.41") -> Payload:
    operation = OPERATIONS.get(record.operation, record.operation)
    address, port = server(record.base_url)
    provider = provider_name(address)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": record.model,
    }
    if address:
        attributes["server.address"] = address
        attributes["server.port"] = port
    attributes.update(request_attributes(record, provider))
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
    for name, usd in (
        ("pipeclient.cost.input_usd", record.input_cost_usd),
        ("pipeclient.cost.cached_input_usd", record.cached_cost_usd),
        ("pipeclient.cost.output_usd", record.output_cost_usd),
        ("pipeclient.cost.total_usd", record.total_cost_usd),
    ):
        if usd is not None:
            attributes[name] = usd
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
    if record.redactions:  # how many values the privacy step replaced, never which
        attributes["pipeclient.redactions"] = sum(record.redactions.values())
    if record.http_status is not None:
        attributes["pipeclient.http_status"] = record.http_status
    if record.closed_early:
        attributes["pipeclient.closed_early"] = True
    if record.route is not None:
        attributes["pipeclient.route"] = record.route
    if record.cache_hit:
        attributes["pipeclient.cache_hit"] = True
    attributes.update(content_attributes(record))
    _add_people(attributes, record)
    name = f"{operation} {record.model}".strip()
    return _span(record, name, "CLIENT", attributes, measurements(record, attributes, tokens))


def _trace_span(record: TraceRecord) -> Payload:
    attributes: dict[str, Any] = {}
    if record.error is not None:
        attributes["error.type"] = record.error.type
    _add_people(attributes, record)
    return _span(record, record.name, "INTERNAL", attributes, [])


def _add_people(attributes: dict[str, Any], record: CallRecord | TraceRecord) -> None:
    """Attribution: `user.id`, `gen_ai.conversation.id`, and the application's properties
    as attributes under their own names (pipeclient's attributes win a clash)."""
    if record.user_id:
        attributes["user.id"] = record.user_id
    if record.session_id:
        attributes["gen_ai.conversation.id"] = record.session_id
    for key, value in record.properties.items():
        attributes.setdefault(key, value)


def _span(
    record: CallRecord | TraceRecord,
    name: str,
    kind: str,
    attributes: dict[str, Any],
    metrics: list[Payload],
) -> Payload:
    start, end = _times(record.started_at, record.total_ms)
    trace_id, span_id, parent_id = _ids(record.trace_id, record.span_id, record.parent_id)
    return {
        "name": name,
        "kind": kind,
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_id,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "attributes": attributes,
        "status": _status(record.error),
        "events": _error_events(record.error, end),
        "metrics": metrics,
    }


def _status(error: ErrorInfo | None) -> Payload:
    if error is None:  # the conventions leave successful spans UNSET
        return {"code": "UNSET", "description": None}
    # The error's text is in the view only for a destination that may receive content.
    return {"code": "ERROR", "description": with_message(error_summary(error), error)}


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
