"""The clients under test, each built as its users would build it, with default settings.

A variant is `(call, stream, settle, close)`: one non-streaming chat completion, one
34-chunk stream read to the end, a flush of whatever telemetry it buffers (healthy
destinations only), and its shutdown. Every variant runs in its own process (`_worker.py`):
the Langfuse and OpenTelemetry wrappers patch the `openai` module process-wide.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]
PARAMS: dict[str, Any] = {"temperature": 0.2}
API_KEY = "sk-bench-0123456789"
clock = time.perf_counter_ns


@dataclass
class Variant:
    call: Callable[[], Any]
    stream: Callable[[], tuple[int, int]]  # (chunks seen, perf_counter_ns at the first)
    settle: Callable[[], Any]
    close: Callable[[], Any]
    client: Any = None  # pipeclient's Client, for the memory-bound estimate
    helper_cpu: list[float] | None = None  # CPU seconds of helper processes, settled so far


@dataclass(frozen=True)
class Endpoints:
    llm: str  # http://127.0.0.1:PORT (the backend; gateway telemetry at /v1/telemetry)
    capture: str  # telemetry destinations (healthy or hanging): http://127.0.0.1:PORT/w/NAME
    hang: bool  # the destinations never answer
    tmp: Path  # audit log and gateway spool

    @property
    def base_url(self) -> str:
        # Under /hang/ the backend answers chat normally and the gateway's /telemetry hangs.
        return f"{self.llm}/hang/v1" if self.hang else f"{self.llm}/v1"


def _nothing() -> None:
    return None


def _openai_calls(client: Any) -> tuple[Callable[[], Any], Callable[[], tuple[int, int]]]:
    create = client.chat.completions.create

    def call() -> Any:
        return create(model=MODEL, messages=MESSAGES, **PARAMS).choices[0].message.content

    def stream() -> tuple[int, int]:
        n, first = 0, 0
        for chunk in create(model=MODEL, messages=MESSAGES, stream=True, **PARAMS):
            if chunk.choices:
                n += 1
                if n == 1:
                    first = clock()
        return n, first

    return call, stream


def raw_httpx(ep: Endpoints) -> Variant:
    import httpx

    http = httpx.Client(
        base_url=ep.base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=httpx.Timeout(600.0, connect=10.0),
    )
    body = {"model": MODEL, "messages": MESSAGES, **PARAMS}
    stream_body = {**body, "stream": True}

    def call() -> Any:
        response = http.post("/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    def stream() -> tuple[int, int]:
        n, first = 0, 0
        with http.stream("POST", "/chat/completions", json=stream_body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                data = line[6:] if line.startswith("data: ") else "[DONE]"
                if data != "[DONE]" and json.loads(data)["choices"]:
                    n += 1
                    if n == 1:
                        first = clock()
        return n, first

    return Variant(call, stream, _nothing, http.close)


def openai_bare(ep: Endpoints) -> Variant:
    import openai

    client = openai.OpenAI(api_key=API_KEY, base_url=ep.base_url)
    call, stream = _openai_calls(client)
    return Variant(call, stream, _nothing, client.close)


def openai_posthog(ep: Endpoints) -> Variant:
    from posthog import Posthog
    from posthog.ai.openai import OpenAI

    posthog = Posthog("phc_bench", host=ep.capture)
    client = OpenAI(api_key=API_KEY, base_url=ep.base_url, posthog_client=posthog)
    call, stream = _openai_calls(client)

    def close() -> None:
        posthog.shutdown()
        client.close()

    return Variant(call, stream, posthog.flush, close)


def openai_langfuse(ep: Endpoints) -> Variant:
    from langfuse import Langfuse

    langfuse = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url=ep.capture)
    from langfuse.openai import OpenAI

    client = OpenAI(api_key=API_KEY, base_url=ep.base_url)
    call, stream = _openai_calls(client)

    def close() -> None:
        langfuse.shutdown()
        client.close()

    return Variant(call, stream, langfuse.flush, close)


def openai_otel(ep: Endpoints) -> Variant:
    import openai
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "bench"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{ep.capture}/v1/traces"))
    )
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{ep.capture}/v1/metrics"))
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    client = openai.OpenAI(api_key=API_KEY, base_url=ep.base_url)
    call, stream = _openai_calls(client)

    def settle() -> None:
        tracer_provider.force_flush()
        meter_provider.force_flush()

    def close() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()
        client.close()

    return Variant(call, stream, settle, close)


def pipeclient_bare(ep: Endpoints) -> Variant:
    import pipeclient

    backend = pipeclient.Backend(name="bench", base_url=ep.base_url, api_key=API_KEY)
    client = pipeclient.Client(backends=[backend])
    assert client._telemetry is None, "telemetry is on: the bare variant must have none"
    call, stream = _openai_calls(client)
    return Variant(call, stream, _nothing, client.close, client)


def dispatcher_of(client: Any) -> Any:
    """The client's dispatcher (its telemetry pipeline's exporter)."""
    pipeline = client._telemetry
    assert pipeline is not None and pipeline.exporter is not None, "telemetry is off"
    return pipeline.exporter


def every_stream(ep: Endpoints) -> dict[str, Any]:
    """pipeclient's telemetry with every custom stream on (the gateway is the backend)."""
    return {
        "posthog": {"enabled": True, "host": ep.capture, "api_key": "phc_bench"},
        "langfuse": {
            "enabled": True,
            "host": ep.capture,
            "public_key": "pk-lf-bench",
            "secret_key": "sk-lf-bench",
        },
        "otlp": [{"name": "bench", "enabled": True, "endpoint": ep.capture}],
        "audit": {"enabled": True, "path": str(ep.tmp / "audit.jsonl")},
    }


def pipeclient_all(ep: Endpoints) -> Variant:
    import pipeclient

    hold = os.environ.get("BENCH_SLICE_HOLD_S")  # tail_latency.py --hold: the worker's slice
    if hold:
        from pipeclient._telemetry import dispatch, slices

        slices.HOLD_S = float(hold) if float(hold) > 0 else float("inf")
        if float(hold) <= 0:  # no slices at all: whole batches, as before slices existed
            dispatch.SLICE_RECORDS = 1 << 30

    os.environ["PIPECLIENT_GATEWAY_SPOOL_DIR"] = str(ep.tmp / "spool")
    backend = pipeclient.Backend(
        name="gateway", base_url=ep.base_url, api_key="gw-bench-key", kind="gateway"
    )
    client = pipeclient.Client(backends=[backend], telemetry=every_stream(ep))
    dispatcher = dispatcher_of(client)
    names = sorted(sink.name for sink in dispatcher.sinks)
    assert names == ["audit", "gateway", "langfuse", "otlp:bench", "posthog"], names
    call, stream = _openai_calls(client)
    return Variant(call, stream, client.flush, client.close, client)


def _mapping_proxy(values: dict[str, Any]) -> Any:
    import types

    return types.MappingProxyType(values)


def pipeclient_all_helper(ep: Endpoints) -> Variant:
    """What-if, not a pipeclient feature: `pipeclient+all` with its dispatcher in a helper
    process. The client is forked before its first call (no telemetry thread exists yet);
    the parent's `submit` pickles each record and writes it to a pipe, the child feeds its
    copy of the dispatcher (which starts over as after any fork: its own threads, sockets
    and counts). `settle` asks the child to flush and adds the child's CPU time to the
    parent's, so CPU figures stay honest."""
    import io
    import pickle
    import struct
    import types

    variant = pipeclient_all(ep)
    dispatcher = dispatcher_of(variant.client)
    records_r, records_w = os.pipe()
    answers_r, answers_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper: records in, flush answers out, until the pipe closes
        os.close(records_w)
        os.close(answers_r)
        reader = os.fdopen(records_r, "rb")
        cpu = time.process_time()
        while header := reader.read(4):
            (size,) = struct.unpack("<I", header)
            if size == 0:  # a flush
                dispatcher.flush(30.0)
                now = time.process_time()
                os.write(answers_w, struct.pack("<d", now - cpu))
                cpu = now
                continue
            dispatcher.submit(pickle.loads(reader.read(size)))
        dispatcher.close(5.0)
        os._exit(0)
    os.close(records_r)
    os.close(answers_w)
    fcntl_setpipe = 1031  # F_SETPIPE_SZ: room for a few thousand records in flight
    import fcntl

    fcntl.fcntl(records_w, fcntl_setpipe, 1 << 20)

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is types.MappingProxyType:
                return (_mapping_proxy, (dict(obj),))
            return NotImplemented

    def submit(record: Any) -> bool:  # errors surface: the pipeline would count them lost
        buffer = io.BytesIO()
        buffer.write(b"\0\0\0\0")
        Pickler(buffer, 5).dump(record)
        data = buffer.getbuffer()
        struct.pack_into("<I", data, 0, len(data) - 4)
        os.write(records_w, data)
        return True

    dispatcher.submit = submit
    helper_cpu = [0.0]

    def settle() -> None:
        os.write(records_w, b"\0\0\0\0")
        helper_cpu[0] += struct.unpack("<d", os.read(answers_r, 8))[0]

    def close() -> None:
        os.close(records_w)
        os.waitpid(pid, 0)
        variant.client.close()

    return Variant(variant.call, variant.stream, settle, close, variant.client, helper_cpu)


def openai_wrap(ep: Endpoints) -> Variant:
    """The openai SDK under pipeclient.wrap, with what pipeclient+all has: every custom
    stream, the audit log, and the gateway stream (the backend's host is the gateway's)."""
    import openai

    import pipeclient

    os.environ["PIPECLIENT_GATEWAY_SPOOL_DIR"] = str(ep.tmp / "spool")
    os.environ["PIPECLIENT_GATEWAY_URL"] = ep.base_url
    client = pipeclient.wrap(
        openai.OpenAI(api_key="gw-bench-key", base_url=ep.base_url), telemetry=every_stream(ep)
    )
    telemetry = client._pipeclient_wrapping.telemetry  # type: ignore[attr-defined]
    names = sorted(sink.name for sink in telemetry.exporter.sinks)
    assert names == ["audit", "gateway", "langfuse", "otlp:bench", "posthog"], names
    call, stream = _openai_calls(client)
    return Variant(call, stream, telemetry.flush, client.close)


VARIANTS: dict[str, Callable[[Endpoints], Variant]] = {
    "httpx": raw_httpx,
    "openai": openai_bare,
    "openai+posthog": openai_posthog,
    "openai+langfuse": openai_langfuse,
    "openai+otel": openai_otel,
    "pipeclient": pipeclient_bare,
    "pipeclient+all": pipeclient_all,
    "pipeclient+all+helper": pipeclient_all_helper,
    "openai+wrap": openai_wrap,
}
