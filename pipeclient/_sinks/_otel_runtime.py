"""The OpenTelemetry SDK objects behind one OTLP sink, imported on first use.

A TracerProvider and a MeterProvider of the sink's own (never the global ones), ids given
by `encode`, ended spans collected into a list, metrics pulled by a manual reader, and one
HTTP session bounded by the send's deadline. No SDK thread, atexit hook or global provider.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .._version import __version__
from ._genai import INSTRUMENTS
from .base import Payload

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.trace import Tracer

__all__ = ["OtelRuntime"]

_Exporter = TypeVar("_Exporter")

# The only headers that reach the collector besides the configured ones: the exporter
# would otherwise add OTEL_EXPORTER_OTLP_*HEADERS to every endpoint, and a token meant
# for one collector must not reach another.
_PROTOCOL_HEADERS = frozenset({"content-type", "content-encoding", "user-agent"})


class _CollectorUnreachable(OSError):
    """No connection could be made: not a type the exporter retries, so it fails at once."""


class OtelRuntime:
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
        # Resource.create() would run resource detectors on a thread pool, which cannot
        # start at interpreter exit (when a short script's only export happens).
        resource = Resource(
            {
                "service.name": service_name,
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": _sdk_version(),
            }
        )
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
            for name, (unit, description, buckets) in INSTRUMENTS.items()
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
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        exporter = self._exporter(OTLPMetricExporter, self.metrics_url, remaining)
        self.reader.exporter = exporter
        self.reader.delivered = False
        try:
            self._run(exporter, deadline, lambda: self.reader.collect(remaining * 1000.0))
        except Exception:  # a collect that failed or timed out: nothing was delivered
            return False
        finally:
            self.reader.exporter = None
        return bool(self.reader.delivered)

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


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opentelemetry-sdk")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
