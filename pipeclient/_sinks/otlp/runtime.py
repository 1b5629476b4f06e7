"""The OpenTelemetry objects behind one OTLP sink, imported on first use.

Spans are built as `ReadableSpan`s straight from the payloads, and measurements are summed
here into cumulative histograms: no TracerProvider or MeterProvider, whose fork handlers
re-run resource detectors on a thread pool in a forked child and can hang it
(opentelemetry-python#5533). The SDK's OTLP/HTTP exporters send both over one HTTP session
bounded by the send's deadline. No thread, atexit hook, fork handler or global provider.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..._telemetry.sink import Payload
from ..._version import __version__
from .genai import INSTRUMENTS, SCHEMA_URL

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, MetricsData
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace.status import Status

__all__ = ["OtelRuntime"]

_Exporter = TypeVar("_Exporter")

# The only headers that reach the collector besides the configured ones: the exporter
# would otherwise add OTEL_EXPORTER_OTLP_*HEADERS to every endpoint, and a token meant
# for one collector must not reach another.
_PROTOCOL_HEADERS = frozenset({"content-type", "content-encoding", "user-agent"})

# As the SDK's metrics: at most this many attribute sets per instrument; measurements with
# any further set are summed under the overflow attribute, so memory stays bounded.
_CARDINALITY_LIMIT = 2000
_OVERFLOW_ATTRIBUTES: dict[str, Any] = {"otel.metric.overflow": True}


class _CollectorUnreachable(OSError):
    """No connection could be made: not a type the exporter retries, so it fails at once."""


class OtelRuntime:
    """One sink's resource, span limits, cumulative histograms and HTTP session."""

    def __init__(
        self, *, traces_url: str, metrics_url: str, headers: dict[str, str], service_name: str
    ) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanLimits
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.traces_url = traces_url
        self.metrics_url = metrics_url
        self.headers = headers
        # Resource.create() would run resource detectors on a thread pool, which cannot
        # start at interpreter exit (when a short script's only export happens).
        self.resource = Resource(
            {
                "service.name": service_name,
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": _sdk_version(),
            }
        )
        self.scope = InstrumentationScope("pipeclient", __version__, SCHEMA_URL)
        self.limits = SpanLimits()  # the OTEL_*_LIMIT variables, as a TracerProvider reads
        self.histograms = Histograms()
        allowed = _PROTOCOL_HEADERS | {name.lower() for name in headers}
        self.session = _bounded_session()(allowed)
        self.in_flight: list[Any] = []

    def load(self) -> None:
        """Import the exporters and their protobuf encoders now, not in a send."""
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: F401
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: F401
            OTLPSpanExporter,
        )

    def replay(self, payloads: Sequence[Payload]) -> tuple[list[ReadableSpan], bool]:
        """The spans, with the payloads' own ids, and whether measurements were recorded:
        a malformed payload raises before anything of its batch is kept."""
        spans = [self._span(payload) for payload in payloads]
        measurements = [
            (measurement["name"], float(measurement["value"]), measurement["attributes"])
            for payload in payloads
            for measurement in payload.get("metrics", ())
        ]
        recorded = [self.histograms.record(*measurement) for measurement in measurements]
        return spans, any(recorded)

    def _span(self, payload: Payload) -> ReadableSpan:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.util import BoundedList
        from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

        limits = self.limits
        trace_id = int(payload["trace_id"], 16)
        sampled = TraceFlags(TraceFlags.SAMPLED)  # every record is exported, as to every sink
        parent = None
        if payload.get("parent_span_id"):
            parent_id = int(payload["parent_span_id"], 16)
            parent = SpanContext(trace_id, parent_id, is_remote=False, trace_flags=sampled)
        events: BoundedList[Event] = BoundedList(limits.max_events)
        for event in payload.get("events", ()):
            attributes = BoundedAttributes(
                limits.max_event_attributes,
                event.get("attributes"),
                max_value_len=limits.max_attribute_length,
            )
            events.append(Event(event["name"], attributes, event.get("time_unix_nano")))
        return ReadableSpan(
            name=payload["name"],
            context=SpanContext(
                trace_id, int(payload["span_id"], 16), is_remote=False, trace_flags=sampled
            ),
            parent=parent,
            resource=self.resource,
            attributes=_span_attributes(payload["attributes"], limits),
            events=events,
            kind=SpanKind[payload["kind"]],
            status=_status(payload.get("status") or {}),
            start_time=payload["start_time_unix_nano"],
            end_time=payload["end_time_unix_nano"],
            instrumentation_scope=self.scope,
        )

    def export_spans(self, spans: list[ReadableSpan], deadline: float) -> bool:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult

        if not spans:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        exporter = self._exporter(OTLPSpanExporter, self.traces_url, remaining)
        return self._run(exporter, deadline, lambda: exporter.export(spans)) is (
            SpanExportResult.SUCCESS
        )

    def export_metrics(self, deadline: float) -> bool:
        """The running totals (cumulative, so a failed export loses nothing)."""
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import MetricExportResult

        metrics_data = self.histograms.metrics_data(self.resource, self.scope)
        if metrics_data is None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        exporter = self._exporter(OTLPMetricExporter, self.metrics_url, remaining)
        try:
            result = self._run(
                exporter,
                deadline,
                lambda: exporter.export(metrics_data, timeout_millis=remaining * 1000.0),
            )
        except Exception:  # an export that failed or timed out: nothing was delivered
            return False
        return result is MetricExportResult.SUCCESS

    def _exporter(
        self, exporter_class: Callable[..., _Exporter], url: str, timeout: float
    ) -> _Exporter:
        """A fresh exporter per batch (about 30 µs) so that its own deadline, which bounds
        its retries and backoff, is this send's; the session, and its connections, stay."""
        from opentelemetry.exporter.otlp.proto.http import Compression

        return exporter_class(
            endpoint=url,
            headers=self.headers,
            timeout=timeout,
            compression=Compression.Gzip,
            session=self.session,
        )

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

    def close(self) -> None:
        self.session.close()


_SCALARS = frozenset({str, bool, int, float})


def _span_attributes(attributes: Mapping[str, Any], limits: Any) -> Mapping[str, Any]:
    """The span's attributes as the SDK keeps them. A plain dict when the span limits
    cannot change anything and every value is already a valid attribute value (the sink's
    own attributes always are): `BoundedAttributes` cleans value by value, which costs
    about as much as encoding them."""
    from opentelemetry.attributes import BoundedAttributes

    maxlen, max_value_len = limits.max_span_attributes, limits.max_span_attribute_length
    if max_value_len is None and (maxlen is None or len(attributes) <= maxlen):
        plain: dict[str, Any] = {}
        for key, value in attributes.items():
            kind = type(value)
            if kind in _SCALARS:
                plain[key] = value
            elif kind is list and all(type(item) is str for item in value):
                plain[key] = tuple(value)
            else:
                break
        else:
            return plain
    return BoundedAttributes(maxlen, attributes, max_value_len=max_value_len)


def _status(status: Payload) -> Status:
    from opentelemetry.trace.status import Status, StatusCode

    code = StatusCode[status.get("code") or "UNSET"]
    if code is StatusCode.ERROR:
        return Status(code, status.get("description"))
    return Status(code)  # the SDK keeps a description for errors only


# -- metrics ------------------------------------------------------------------------------


@dataclass
class _Point:
    """One attribute set's cumulative histogram, as the SDK's explicit-bucket aggregation."""

    attributes: dict[str, Any]
    bounds: tuple[float, ...]
    start_time_unix_nano: int = field(default_factory=time.time_ns)
    bucket_counts: list[int] = field(default_factory=list)
    count: int = 0
    sum: float = 0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> None:
        if not self.bucket_counts:
            self.bucket_counts = [0] * (len(self.bounds) + 1)
        self.bucket_counts[bisect_left(self.bounds, value)] += 1  # upper bounds inclusive
        self.count += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def data_point(self, now: int) -> HistogramDataPoint:
        from opentelemetry.sdk.metrics.export import HistogramDataPoint

        return HistogramDataPoint(
            attributes=dict(self.attributes),
            start_time_unix_nano=self.start_time_unix_nano,
            time_unix_nano=now,
            count=self.count,
            sum=self.sum,
            bucket_counts=tuple(self.bucket_counts),
            explicit_bounds=self.bounds,
            min=self.min,
            max=self.max,
            exemplars=[],
        )


def _point_key(attributes: Mapping[str, Any]) -> Hashable:
    """One key per attribute set, whatever the order; 1, 1.0 and True stay apart."""
    try:
        return frozenset((key, type(value), value) for key, value in attributes.items())
    except TypeError:  # an unhashable value (a list)
        return json.dumps(attributes, sort_keys=True, default=str)


class Histograms:
    """The `INSTRUMENTS`' cumulative histograms, one point per attribute set: what a
    MeterProvider with a cumulative reader would hold, without its fork handler."""

    def __init__(self) -> None:
        self._points: dict[str, dict[Hashable, _Point]] = {name: {} for name in INSTRUMENTS}

    def record(self, name: str, value: float, attributes: Mapping[str, Any]) -> bool:
        """False for a metric that is not one of ours (it is ignored)."""
        points = self._points.get(name)
        if points is None:
            return False
        if not math.isfinite(value) or value < 0:  # as the SDK's histograms: dropped
            return True
        point = points.get(key := _point_key(attributes))
        if point is None:
            if len(points) >= _CARDINALITY_LIMIT:
                key, attributes = "overflow", _OVERFLOW_ATTRIBUTES
            bounds = tuple(INSTRUMENTS[name][2])
            point = points.setdefault(key, _Point(dict(attributes), bounds))
        point.add(value)
        return True

    def metrics_data(self, resource: Resource, scope: InstrumentationScope) -> MetricsData | None:
        """The running totals as the exporter takes them; None before any measurement."""
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Histogram,
            Metric,
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )

        now = time.time_ns()
        metrics = [
            Metric(
                name=name,
                description=INSTRUMENTS[name][1],
                unit=INSTRUMENTS[name][0],
                data=Histogram(
                    data_points=[point.data_point(now) for point in points.values()],
                    aggregation_temporality=AggregationTemporality.CUMULATIVE,
                ),
            )
            for name, points in self._points.items()
            if points
        ]
        if not metrics:
            return None
        scope_metrics = ScopeMetrics(scope=scope, metrics=metrics, schema_url=SCHEMA_URL)
        return MetricsData(
            resource_metrics=[
                ResourceMetrics(resource=resource, scope_metrics=[scope_metrics], schema_url="")
            ]
        )


# -- the HTTP session ---------------------------------------------------------------------


@functools.cache
def _bounded_session() -> type[Any]:
    """The exporters' session class, defined once `requests` is imported."""
    import requests
    from urllib3.exceptions import NewConnectionError

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

    return BoundedSession


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opentelemetry-sdk")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
