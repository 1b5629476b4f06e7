"""The Langfuse sink against a loopback stand-in for Langfuse's OTLP endpoint.

Assertions are on the bytes that arrived, decoded as Langfuse decodes them: OTLP/JSON
spans whose `langfuse.*` attributes become a generation (or span) observation.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pipeclient._sinks.langfuse import LangfuseExportError, LangfuseSink
from pipeclient._telemetry.record import CallRecord, ErrorInfo, TraceRecord
from pipeclient.config import LangfuseConfig
from pipeclient.testing import CapturedRequest, CaptureServer, refused_url

PUBLIC = "pk-lf-public-0001"
SECRET = "sk-lf-secret-0002"
CANARY = "canary-7f3a9c"
OTEL_PATH = "/api/public/otel/v1/traces"
STARTED = 1_700_000_000.25
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACE_SPAN = "b7ad6b7169203331"


def _sink(host: str, *, capture_content: bool = True) -> LangfuseSink:
    config = LangfuseConfig(
        enabled=True,
        host=host,
        public_key=PUBLIC,
        secret_key=SECRET,
        capture_content=capture_content,
    )
    return LangfuseSink(config, service_name="test-service")


def _call(**fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "request_id": "req-0001",
        "operation": "chat",
        "model": "gpt-4o-mini",
        "stream": False,
        "backend": "openai",
        "base_url": "https://api.openai.com/v1",
        "gateway": False,
        "no_log": False,
        "started_at": STARTED,
        "total_ms": 250.0,
        "ttft_ms": None,
        "attempts": 1,
        "http_status": 200,
        "outcome": "ok",
        "error": None,
        "parameters": {"temperature": 0.2, "max_tokens": 64, "response_format": "json_object"},
        "input_tokens": 12,
        "output_tokens": 7,
        "response_id": "chatcmpl-1",
        "response_model": "gpt-4o-mini-2024-07-18",
        "finish_reasons": ("stop",),
        "trace_id": TRACE_ID,
        "span_id": "00f067aa0ba902b7",
    }
    values.update(fields)
    return CallRecord(**values)


def _with_content(**fields: Any) -> CallRecord:
    return _call(
        input={"messages": [{"role": "user", "content": f"say {CANARY}"}], "tools": None},
        output=[{"role": "assistant", "content": f"{CANARY} said"}],
        **fields,
    )


def _post(server: CaptureServer, sink: LangfuseSink, *records: CallRecord | TraceRecord) -> Any:
    """Encode and send the records; return the one request body that arrived, decoded."""
    payloads = [payload for record in records for payload in sink.encode(record)]
    sink.send(payloads, timeout=5.0)
    (request,) = server.requests
    body = request.json()
    assert body == {"resourceSpans": payloads}  # the preview payloads are the wire bytes
    assert request.headers["content-type"] == "application/json"
    # The body is OTLP/JSON: the OTLP protobuf parses it strictly (unknown fields refused),
    # and so does the SDK's own model of the endpoint's request.
    traces = json_format.Parse(request.body, ExportTraceServiceRequest())
    assert len(traces.resource_spans) == len(payloads)
    from langfuse.api.opentelemetry.types import OtelResourceSpan

    for resource in body["resourceSpans"]:
        OtelResourceSpan.model_validate(resource)
    return body


def _spans(body: Any) -> list[dict[str, Any]]:
    return [
        span
        for resource in body["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    """OTLP key/value list to a dict, as Langfuse reads it."""
    found: dict[str, Any] = {}
    for item in span["attributes"]:
        ((_, value),) = item["value"].items()
        found[item["key"]] = value
    return found


def _nanos(seconds: float) -> int:
    return round(seconds * 1_000_000) * 1_000


@pytest.fixture
def server() -> Any:
    with CaptureServer() as capture:
        yield capture


# -- what Langfuse receives -------------------------------------------------------------------


def test_attribute_names_are_the_sdks() -> None:
    from langfuse._client.attributes import LangfuseOtelSpanAttributes as Names

    from pipeclient._sinks import langfuse as module

    for name in (
        "TRACE_NAME",
        "OBSERVATION_TYPE",
        "OBSERVATION_LEVEL",
        "OBSERVATION_STATUS_MESSAGE",
        "OBSERVATION_INPUT",
        "OBSERVATION_OUTPUT",
        "OBSERVATION_METADATA",
        "OBSERVATION_MODEL",
        "OBSERVATION_MODEL_PARAMETERS",
        "OBSERVATION_USAGE_DETAILS",
        "OBSERVATION_COMPLETION_START_TIME",
    ):
        assert getattr(module, name) == getattr(Names, name)


def test_a_chat_call_is_a_generation(server: CaptureServer) -> None:
    sink = _sink(server.url, capture_content=False)
    body = _post(server, sink, _call())
    (request,) = server.requests
    assert request.method == "POST" and request.path == OTEL_PATH
    scheme, _, credentials = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{PUBLIC}:{SECRET}"
    assert request.headers["x-langfuse-ingestion-version"] == "4"
    assert request.headers["x-langfuse-public-key"] == PUBLIC
    assert request.headers["content-type"] == "application/json"

    (resource,) = body["resourceSpans"]
    resource_attributes = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}
    assert resource_attributes["service.name"] == {"stringValue": "test-service"}
    # A scope named "langfuse-sdk..." (with the public key, as the SDK's own spans): Langfuse
    # reads the spans as written in its attribute format and does not repeat each raw
    # attribute in the observation's metadata.
    scope = resource["scopeSpans"][0]["scope"]
    assert scope["name"] == "langfuse-sdk.pipeclient"
    assert scope["attributes"] == [{"key": "public_key", "value": {"stringValue": PUBLIC}}]

    (span,) = _spans(body)
    assert span["traceId"] == TRACE_ID and span["spanId"] == "00f067aa0ba902b7"
    assert "parentSpanId" not in span
    assert span["name"] == "chat gpt-4o-mini"
    assert int(span["startTimeUnixNano"]) == _nanos(STARTED)
    assert int(span["endTimeUnixNano"]) == _nanos(STARTED) + 250_000_000
    assert span["status"] == {}
    attributes = _attributes(span)
    assert attributes["langfuse.observation.type"] == "generation"
    assert attributes["langfuse.observation.model.name"] == "gpt-4o-mini-2024-07-18"
    assert json.loads(attributes["langfuse.observation.model.parameters"]) == {
        "temperature": 0.2,
        "max_tokens": 64,
        "response_format": "json_object",
    }
    assert json.loads(attributes["langfuse.observation.usage_details"]) == {
        "input": 12,
        "output": 7,
        "total": 19,
    }
    metadata = {
        key.removeprefix("langfuse.observation.metadata."): value
        for key, value in attributes.items()
        if key.startswith("langfuse.observation.metadata.")
    }
    assert metadata == {
        "request_id": "req-0001",
        "operation": "chat",
        "backend": "openai",
        "server_address": "api.openai.com",
        "gateway": False,
        "http_status": 200,
        "attempts": 1,
        "stream": False,
        "closed_early": False,
        "response_id": "chatcmpl-1",
        "finish_reasons": "stop",
    }
    for absent in (
        "langfuse.observation.completion_start_time",
        "langfuse.observation.level",
        "langfuse.observation.status_message",
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.trace.name",
    ):
        assert absent not in attributes


def test_a_streamed_call_has_its_completion_start_time(server: CaptureServer) -> None:
    sink = _sink(server.url)
    body = _post(server, sink, _call(stream=True, ttft_ms=80.0, closed_early=True))
    attributes = _attributes(_spans(body)[0])
    # An ISO 8601 string as it is: a JSON-quoted one is read only by a fallback for old SDKs
    first_chunk = attributes["langfuse.observation.completion_start_time"]
    assert first_chunk == "2023-11-14T22:13:20.330000Z"  # STARTED + 80 ms, UTC
    assert attributes["langfuse.observation.metadata.stream"] is True
    assert attributes["langfuse.observation.metadata.closed_early"] is True


def test_an_error_call_is_level_error_with_type_and_code(server: CaptureServer) -> None:
    error = ErrorInfo(type="RateLimitError", code=429, message=None)
    record = _call(
        outcome="error", error=error, http_status=429, attempts=3, input_tokens=None,
        output_tokens=None, response_id=None, response_model=None, finish_reasons=(),
    )  # fmt: skip
    body = _post(server, _sink(server.url, capture_content=False), record)
    span = _spans(body)[0]
    attributes = _attributes(span)
    assert attributes["langfuse.observation.level"] == "ERROR"
    assert attributes["langfuse.observation.status_message"] == "RateLimitError: 429"
    assert span["status"] == {"code": 2, "message": "RateLimitError: 429"}
    assert attributes["langfuse.observation.metadata.http_status"] == 429
    assert attributes["langfuse.observation.metadata.attempts"] == 3
    assert attributes["langfuse.observation.model.name"] == "gpt-4o-mini"
    assert "langfuse.observation.usage_details" not in attributes


def test_a_provider_error_code_is_named(server: CaptureServer) -> None:
    error = ErrorInfo(type="BadRequestError", code="context_length_exceeded")
    body = _post(server, _sink(server.url), _call(outcome="error", error=error))
    attributes = _attributes(_spans(body)[0])
    assert attributes["langfuse.observation.status_message"] == (
        "BadRequestError: context_length_exceeded"
    )


def test_an_embeddings_call_is_an_embedding_observation(server: CaptureServer) -> None:
    record = _call(
        operation="embeddings", model="text-embedding-3-small", input=["alpha", "beta"],
        output_tokens=None, response_model=None, finish_reasons=(),
        parameters={"dimensions": 256},
    )  # fmt: skip
    body = _post(server, _sink(server.url), record)
    span = _spans(body)[0]
    attributes = _attributes(span)
    assert span["name"] == "embeddings text-embedding-3-small"
    assert attributes["langfuse.observation.type"] == "embedding"
    assert json.loads(attributes["langfuse.observation.input"]) == ["alpha", "beta"]
    assert "langfuse.observation.output" not in attributes
    assert json.loads(attributes["langfuse.observation.usage_details"]) == {"input": 12}


def test_a_trace_block_is_the_parent_of_its_calls(server: CaptureServer) -> None:
    trace = TraceRecord(
        trace_id=TRACE_ID, span_id=TRACE_SPAN, parent_id=None, name="answer-question",
        started_at=STARTED - 1, total_ms=2000.0, outcome="ok",
    )  # fmt: skip
    inside = _call(parent_id=TRACE_SPAN, trace_name="answer-question")
    body = _post(server, _sink(server.url), inside, trace)
    call_span, trace_span = _spans(body)
    assert trace_span["traceId"] == call_span["traceId"] == TRACE_ID
    assert trace_span["spanId"] == TRACE_SPAN and "parentSpanId" not in trace_span
    assert call_span["parentSpanId"] == TRACE_SPAN
    assert trace_span["name"] == "answer-question"
    assert int(trace_span["endTimeUnixNano"]) - int(trace_span["startTimeUnixNano"]) == 2 * 10**9
    trace_attributes = _attributes(trace_span)
    assert trace_attributes["langfuse.observation.type"] == "span"
    assert trace_attributes["langfuse.trace.name"] == "answer-question"
    assert trace_attributes["langfuse.observation.metadata.outcome"] == "ok"
    assert _attributes(call_span)["langfuse.trace.name"] == "answer-question"


def test_a_failed_trace_block_names_the_error_type_only(server: CaptureServer) -> None:
    trace = TraceRecord(
        trace_id=TRACE_ID, span_id=TRACE_SPAN, parent_id="1234567890abcdef", name="job",
        started_at=STARTED, total_ms=5.0, outcome="error", error=ErrorInfo("ValueError", None),
    )  # fmt: skip
    span = _spans(_post(server, _sink(server.url), trace))[0]
    assert span["parentSpanId"] == "1234567890abcdef"  # an application's span
    attributes = _attributes(span)
    assert attributes["langfuse.observation.level"] == "ERROR"
    assert attributes["langfuse.observation.status_message"] == "ValueError"


# -- content: only for a sink that may receive it ----------------------------------------------


def test_content_arrives_when_the_sink_receives_it(server: CaptureServer) -> None:
    error = ErrorInfo(type="RateLimitError", code=429, message=f"slow down {CANARY}")
    record = _with_content(outcome="error", error=error)
    span = _spans(_post(server, _sink(server.url), record))[0]
    attributes = _attributes(span)
    assert json.loads(attributes["langfuse.observation.input"]) == {
        "messages": [{"role": "user", "content": f"say {CANARY}"}]
    }
    assert json.loads(attributes["langfuse.observation.output"]) == {
        "role": "assistant",
        "content": f"{CANARY} said",
    }
    assert attributes["langfuse.observation.status_message"] == (
        f"RateLimitError: 429 - slow down {CANARY}"
    )
    # error text stays out of the OTLP span status even here
    assert CANARY not in json.dumps(span["status"])


def test_no_content_leaves_when_the_record_has_none(server: CaptureServer) -> None:
    # What the privacy step hands a sink that may not receive content.
    sink = _sink(server.url, capture_content=False)
    error = ErrorInfo(type="RateLimitError", code=429, message=None)
    record = _call(outcome="error", error=error, request_id=f"req-{CANARY[:6]}")
    _post(server, sink, record)
    wire = server.all_bytes()
    assert CANARY.encode() not in wire
    assert b"langfuse.observation.input" not in wire
    assert b"langfuse.observation.output" not in wire


def test_several_choices_are_sent_as_a_list(server: CaptureServer) -> None:
    choices = [{"role": "assistant", "content": "one"}, {"role": "assistant", "content": "two"}]
    span = _spans(_post(server, _sink(server.url), _call(output=choices)))[0]
    assert json.loads(_attributes(span)["langfuse.observation.output"]) == choices


# -- isolation: nothing process-wide ----------------------------------------------------------


def test_the_global_tracer_provider_is_left_alone(server: CaptureServer) -> None:
    from opentelemetry import trace

    before = trace.get_tracer_provider()
    sink = _sink(server.url)
    _post(server, sink, _call())
    sink.shutdown(1.0)
    assert trace.get_tracer_provider() is before


_ISOLATION_SCRIPT = textwrap.dedent(
    """
    import atexit, logging, sys, threading
    from opentelemetry import trace
    from pipeclient._telemetry.record import CallRecord
    from pipeclient._sinks.langfuse import LangfuseSink
    from pipeclient.config import LangfuseConfig
    from pipeclient.testing import CaptureServer

    server = CaptureServer()
    httpx_logger = logging.getLogger("httpx")
    state = lambda: (httpx_logger.level, list(httpx_logger.handlers), atexit._ncallbacks())
    before, threads = state(), set(threading.enumerate())
    sink = LangfuseSink(LangfuseConfig(enabled=True, host=server.url, public_key="pk",
                                       secret_key="sk"))
    record = CallRecord(request_id="r", operation="chat", model="m", stream=False,
                        backend="b", base_url="http://x/v1", gateway=False, no_log=False,
                        started_at=1.0, total_ms=1.0, ttft_ms=None, attempts=1,
                        http_status=200, outcome="ok", error=None, parameters={},
                        trace_id="1" * 32, span_id="2" * 16)
    payloads = sink.encode(record)
    assert "langfuse" not in sys.modules, "constructing or encoding imported the SDK"
    sink.send(payloads, 5.0)
    assert "langfuse" in sys.modules
    sink.shutdown(1.0)
    server.close()
    assert len(server.requests) == 1
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    assert state() == before, (state(), before)
    left = [t.name for t in threading.enumerate()
            if t not in threads and t.is_alive() and "process_request" not in t.name]
    assert not left, left
    print("isolated")
    """
)


def test_the_sdk_changes_nothing_process_wide() -> None:
    """In a fresh interpreter: lazy import, no provider, logger as found, no threads left."""
    result = subprocess.run(
        [sys.executable, "-c", _ISOLATION_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "isolated"


# -- faults: bounded, counted, no secrets -----------------------------------------------------


def test_a_refused_connection_raises() -> None:
    sink = _sink(refused_url().removesuffix("/v1"))
    with pytest.raises(LangfuseExportError) as caught:
        sink.send(sink.encode(_call()), timeout=2.0)
    assert "connection to Langfuse failed (ConnectError)" in str(caught.value)
    # Nothing chained: the httpx error holds the request, and its Authorization header.
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    sink.shutdown(1.0)


def test_a_500_raises_without_retrying() -> None:
    with CaptureServer(behaviour="error") as server:
        sink = _sink(server.url)
        with pytest.raises(LangfuseExportError, match="HTTP 500"):
            sink.send(sink.encode(_call()), timeout=2.0)
        assert len(server.requests) == 1
        sink.shutdown(1.0)


@pytest.mark.timeout(10)
def test_a_hanging_endpoint_is_given_up_on_after_the_timeout() -> None:
    with CaptureServer(behaviour="hang") as server:
        sink = _sink(server.url)
        with pytest.raises(LangfuseExportError, match="did not answer"):
            sink.send(sink.encode(_call()), timeout=0.5)
        assert len(server.requests) == 1
        sink.shutdown(0.5)


def _answer(status: int, payload: Any) -> Any:
    def answer(request: CapturedRequest) -> tuple[int, Any]:
        return status, payload

    return answer


def test_a_rejected_key_raises_without_quoting_it() -> None:
    with CaptureServer(answer=_answer(401, {"message": "Invalid credentials"})) as server:
        sink = _sink(server.url)
        with pytest.raises(LangfuseExportError) as caught:
            sink.send(sink.encode(_call()), timeout=2.0)
    text = f"{caught.value!s} {caught.value!r} {caught.value.__cause__!r} {sink!r}"
    assert "HTTP 401" in text
    assert SECRET not in text and PUBLIC not in text
    # no chained exception (an SDK error keeps the request and its Authorization header)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_spans_the_endpoint_rejects_count_as_a_failure() -> None:
    partial = {"partialSuccess": {"rejectedSpans": 1, "errorMessage": "bad span"}}
    with CaptureServer(answer=_answer(200, partial)) as server:
        sink = _sink(server.url)
        with pytest.raises(LangfuseExportError, match="rejected 1"):
            sink.send(sink.encode(_call()), timeout=2.0)


def test_an_answer_that_is_not_json_is_still_a_success() -> None:
    with CaptureServer(answer=_answer(200, b"")) as server:
        sink = _sink(server.url)
        sink.send(sink.encode(_call()), timeout=2.0)
        assert len(server.requests) == 1


def test_after_shutdown_nothing_is_sent(server: CaptureServer) -> None:
    sink = _sink(server.url)
    sink.send(sink.encode(_call()), timeout=2.0)
    sink.shutdown(1.0)
    sink.shutdown(1.0)  # idempotent
    with pytest.raises(LangfuseExportError, match="shut down"):
        sink.send(sink.encode(_call()), timeout=2.0)
    assert len(server.requests) == 1


def test_encode_is_pure_and_cheap() -> None:
    sink = _sink("https://cloud.langfuse.com")
    record = _with_content(trace_id="", span_id="")  # ids filled in stably if missing
    first, second = sink.encode(record), sink.encode(record)
    assert first == second
    assert json.loads(json.dumps(first)) == first
    span = _spans({"resourceSpans": first})[0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16


def test_packed_spans_go_out_as_the_same_bytes_and_are_not_gc_tracked() -> None:
    import gc

    sink = _sink("http://127.0.0.1:9")
    payloads = [p for i in range(3) for p in sink.encode(_with_content(request_id=f"r-{i}"))]
    packed = sink.pack(payloads)
    assert not any(gc.is_tracked(part) for part in packed)  # lingering spans: no GC work
    with CaptureServer() as server:
        sink = _sink(server.url)
        sink.send(payloads, timeout=5.0)
        sink.send(packed, timeout=5.0)
        plain, from_packed = (request.body for request in server.requests)
    assert plain == from_packed
    assert json.loads(from_packed) == {"resourceSpans": payloads}


def test_the_body_is_utf8_and_always_valid_json() -> None:
    """Non-ASCII content stays UTF-8 (not escaped, twice the size); a lone surrogate (a
    provider's broken escape) and non-finite numbers cannot make the batch unparseable."""
    record = _call(
        input={"messages": [{"role": "user", "content": "日本語 \ud800 ok"}], "tools": None},
        output=[{"role": "assistant", "content": "réponse", "score": float("nan")}],
    )
    with CaptureServer() as server:
        sink = _sink(server.url)
        sink.send(sink.pack(sink.encode(record)), timeout=5.0)
        (request,) = server.requests
    assert "日本語".encode() in request.body and b"\\u65e5" not in request.body
    body = json.loads(request.body)  # strict UTF-8
    text = json.dumps(body, ensure_ascii=False)
    assert "日本語 ? ok" in text and "réponse" in text
    spans = [span for r in body["resourceSpans"] for s in r["scopeSpans"] for span in s["spans"]]
    output = _attributes(spans[0])["langfuse.observation.output"]
    assert json.loads(output, parse_constant=_refuse) == {
        "role": "assistant",
        "content": "réponse",
        "score": None,
    }


def _refuse(token: str) -> Any:
    raise AssertionError(f"{token} is not JSON")


_VALUES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities too: null, as json_text writes them
    st.text(),  # lone surrogates too: "?" on the wire
)


@settings(max_examples=200, deadline=None)
@given(
    properties=st.dictionaries(st.text(), _VALUES, max_size=5),
    content=st.text(),
    parameters=st.dictionaries(st.text(min_size=1), _VALUES, max_size=3),
    failed=st.booleans(),
    user=st.text(max_size=8),
)
def test_packed_bytes_written_directly_are_the_payloads_json(
    properties: dict[str, Any], content: str, parameters: dict[str, Any], failed: bool, user: str
) -> None:
    """The worker's `encode_packed` writes the JSON text itself: byte for byte what
    `pack(encode(record))` (the preview's payloads, through `json_text`) gives."""
    sink = _sink("http://127.0.0.1:9")
    error = ErrorInfo("RateLimitError", 429, f"slow {content}") if failed else None
    call = _call(
        input={"messages": [{"role": "user", "content": content}], "tools": None},
        output=[{"role": "assistant", "content": content}],
        properties=properties,
        parameters=parameters,
        user_id=user or None,
        session_id=content[:5] or None,
        trace_name=content or None,
        parent_id=TRACE_SPAN if failed else None,
        ttft_ms=12.5 if failed else None,
        outcome="error" if failed else "ok",
        error=error,
    )
    trace = TraceRecord(TRACE_ID, TRACE_SPAN, None, content, STARTED, 3.25, "ok", error=error)
    for record in (call, trace):
        assert sink.encode_packed(record) == sink.pack(sink.encode(record))
