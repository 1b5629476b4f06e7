"""The OTLP sink, against a loopback server standing in for an OTLP/HTTP collector.

Every assertion is on what arrived: the protobuf requests are decoded as a collector would
decode them, and every attribute and metric name is checked against the constants of the
installed `opentelemetry-semantic-conventions` package.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.semconv._incubating.attributes import (
    gen_ai_attributes,
    openai_attributes,
)
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import (
    error_attributes,
    exception_attributes,
    server_attributes,
    service_attributes,
)

from pipeclient._sinks.otlp.sink import OtlpExportError, OtlpSink
from pipeclient._telemetry.record import CallRecord, ErrorInfo, TraceRecord
from pipeclient.config import OtlpConfig
from pipeclient.testing import CaptureServer, refused_url

from .conftest import wait_child, wait_until

TOKEN = "Bearer otlp-secret-token-0123456789"
CANARY = "canary-5e1d-do-not-leak"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACE_SPAN_ID = "00f067aa0ba902b7"
STARTED_AT = 1_700_000_000.25


def _constants(*modules: Any) -> set[str]:
    return {
        value
        for module in modules
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str)
    }


CONVENTION_ATTRIBUTES = _constants(
    gen_ai_attributes, openai_attributes, server_attributes, error_attributes
)
EVENT_ATTRIBUTES = _constants(exception_attributes)
CONVENTION_METRICS = _constants(gen_ai_metrics)
OPERATIONS = {member.value for member in gen_ai_attributes.GenAiOperationNameValues}
PROVIDERS = {member.value for member in gen_ai_attributes.GenAiProviderNameValues}
OUTPUT_TYPES = {member.value for member in gen_ai_attributes.GenAiOutputTypeValues}
TOKEN_TYPES = {member.value for member in gen_ai_attributes.GenAiTokenTypeValues}
SECONDS_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                   40.96, 81.92]  # fmt: skip
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864]  # fmt: skip


# -- records -------------------------------------------------------------------------------


def call(**changes: Any) -> CallRecord:
    record = CallRecord(
        request_id="req-123",
        operation="chat",
        model="gpt-4o-mini",
        stream=False,
        backend="openai",
        base_url="https://api.openai.com/v1",
        gateway=False,
        no_log=False,
        started_at=STARTED_AT,
        total_ms=1250.0,
        ttft_ms=None,
        attempts=1,
        http_status=200,
        outcome="ok",
        error=None,
        parameters={
            "temperature": 0.2,
            "top_p": 1,
            "max_tokens": 64,
            "seed": 7,
            "frequency_penalty": 0.5,
            "presence_penalty": 0,
            "n": 2,
        },
        input_tokens=12,
        output_tokens=5,
        response_id="chatcmpl-1",
        response_model="gpt-4o-mini-2024-07-18",
        finish_reasons=("stop", "tool_calls"),
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )
    return replace(record, **changes)


RATE_LIMITED = {
    "outcome": "error",
    "http_status": 429,
    "input_tokens": None,
    "output_tokens": None,
    "response_id": None,
    "response_model": None,
    "finish_reasons": (),
    "attempts": 3,
}


def with_content(record: CallRecord) -> CallRecord:
    """The record as a content-receiving sink gets it: a canary in every kind of content."""
    error = record.error
    if error is not None:
        error = replace(error, message=f"quota exceeded for '{CANARY} error'")
    return replace(
        record,
        error=error,
        input={
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": f"say {CANARY} input"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "lookup",
                        "description": f"{CANARY} tool",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            ],
        },
        output=[
            {"role": "assistant", "content": f"here: {CANARY} output"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "y"}'},
                    }
                ],
            },
        ],
    )


def trace_block(**changes: Any) -> TraceRecord:
    record = TraceRecord(
        trace_id=TRACE_ID,
        span_id=TRACE_SPAN_ID,
        parent_id=None,
        name="answer-question",
        started_at=STARTED_AT - 0.5,
        total_ms=3000.0,
        outcome="ok",
    )
    return replace(record, **changes)


# -- the sink and what arrived ---------------------------------------------------------------


INFERENCE_INPUT = "gen_ai.client.inference.usage.input_tokens"
INFERENCE_OUTPUT = "gen_ai.client.inference.usage.output_tokens"


def sink_for(url: str, **settings: Any) -> OtlpSink:
    config = OtlpConfig(
        name="test", enabled=True, endpoint=url, headers={"Authorization": TOKEN}, **settings
    )
    return OtlpSink(config, service_name="otlp-sink-test")


@pytest.fixture
def collector() -> Iterator[CaptureServer]:
    with CaptureServer() as server:
        yield server


@pytest.fixture
def sink(collector: CaptureServer) -> Iterator[OtlpSink]:
    sink = sink_for(collector.url)
    yield sink
    sink.shutdown(timeout=2.0)


def deliver(sink: OtlpSink, *records: CallRecord | TraceRecord) -> list[dict[str, Any]]:
    payloads = [payload for record in records for payload in sink.encode(record)]
    sink.send(payloads, timeout=5.0)
    return payloads


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes_of(items: Any) -> dict[str, Any]:
    return {item.key: value_of(item.value) for item in items}


def arrived_spans(server: CaptureServer) -> list[tuple[dict[str, Any], Span]]:
    """(resource attributes, span) for every span that arrived."""
    found = []
    for request in server.requests_to("/v1/traces"):
        assert request.headers["content-type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(request.content)
        for resource_spans in message.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "pipeclient"
                found += [(resource, span) for span in scope_spans.spans]
    return found


def only_span(server: CaptureServer) -> Span:
    spans = arrived_spans(server)
    assert len(spans) == 1
    return spans[0][1]


def arrived_metrics(server: CaptureServer, index: int = -1) -> dict[str, Metric]:
    requests = server.requests_to("/v1/metrics")
    assert requests, "no metrics arrived"
    message = ExportMetricsServiceRequest.FromString(requests[index].content)
    found = {}
    for resource_metrics in message.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            found.update({metric.name: metric for metric in scope_metrics.metrics})
    return found


def points(metric: Metric) -> list[tuple[dict[str, Any], Any]]:
    return [(attributes_of(p.attributes), p) for p in metric.histogram.data_points]


def assert_convention_names(server: CaptureServer) -> None:
    """Every non-pipeclient name that arrived is one the conventions define."""
    for _, span in arrived_spans(server):
        for key in attributes_of(span.attributes):
            assert key.startswith("pipeclient.") or key in CONVENTION_ATTRIBUTES, key
        for event in span.events:
            assert set(attributes_of(event.attributes)) <= EVENT_ATTRIBUTES
    for request_index in range(len(server.requests_to("/v1/metrics"))):
        for name, metric in arrived_metrics(server, request_index).items():
            assert name in CONVENTION_METRICS, name
            for attributes, _ in points(metric):
                assert set(attributes) <= CONVENTION_ATTRIBUTES, attributes


def span_id_bytes(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id)


# -- spans -----------------------------------------------------------------------------------


def test_a_chat_call_arrives_as_a_genai_client_span(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    deliver(sink, call())

    (resource, span), = arrived_spans(collector)  # fmt: skip
    assert resource[service_attributes.SERVICE_NAME] == "otlp-sink-test"
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert span.trace_id == span_id_bytes(TRACE_ID)
    assert span.span_id == span_id_bytes(SPAN_ID)
    assert span.parent_span_id == b""
    assert span.start_time_unix_nano == 1_700_000_000_250_000_000
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_250_000_000
    assert span.status.code == Status.StatusCode.STATUS_CODE_UNSET
    assert list(span.events) == []
    ga = gen_ai_attributes
    assert attributes_of(span.attributes) == {
        ga.GEN_AI_OPERATION_NAME: "chat",
        ga.GEN_AI_PROVIDER_NAME: "openai",
        ga.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        server_attributes.SERVER_ADDRESS: "api.openai.com",
        server_attributes.SERVER_PORT: 443,
        # no gen_ai.request.stream: the convention sets it on streamed calls only
        openai_attributes.OPENAI_API_TYPE: "chat_completions",
        ga.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        ga.GEN_AI_REQUEST_TOP_P: 1.0,
        ga.GEN_AI_REQUEST_MAX_TOKENS: 64,
        ga.GEN_AI_REQUEST_SEED: 7,
        ga.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.5,
        ga.GEN_AI_REQUEST_PRESENCE_PENALTY: 0.0,
        ga.GEN_AI_REQUEST_CHOICE_COUNT: 2,
        ga.GEN_AI_RESPONSE_ID: "chatcmpl-1",
        ga.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        ga.GEN_AI_RESPONSE_FINISH_REASONS: ["stop", "tool_calls"],
        ga.GEN_AI_USAGE_INPUT_TOKENS: 12,
        ga.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        "pipeclient.request_id": "req-123",
        "pipeclient.attempts": 1,
        "pipeclient.backend": "openai",
        "pipeclient.gateway": False,
        "pipeclient.http_status": 200,
    }
    assert_convention_names(collector)


def test_the_payload_is_json_and_send_replays_it_exactly(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    (payload,) = sink.encode(call(stream=True, ttft_ms=150.0))
    assert payload["name"] == "chat gpt-4o-mini"
    assert payload["kind"] == "CLIENT"
    assert (payload["trace_id"], payload["span_id"], payload["parent_span_id"]) == (
        TRACE_ID,
        SPAN_ID,
        None,
    )
    assert payload["status"] == {"code": "UNSET", "description": None}
    # What preview and capture_telemetry() show is what goes out, even after a JSON trip.
    sink.send(json.loads(json.dumps([payload])), timeout=5.0)

    span = only_span(collector)
    assert attributes_of(span.attributes) == payload["attributes"]
    assert span.start_time_unix_nano == payload["start_time_unix_nano"]
    assert span.end_time_unix_nano == payload["end_time_unix_nano"]
    metrics = arrived_metrics(collector)
    assert {m["name"] for m in payload["metrics"]} == set(metrics)


def test_a_streamed_call_has_its_time_to_first_chunk(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    deliver(sink, call(stream=True, ttft_ms=150.0))

    attributes = attributes_of(only_span(collector).attributes)
    assert attributes[gen_ai_attributes.GEN_AI_REQUEST_STREAM] is True
    assert attributes[gen_ai_attributes.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == 0.15
    metric = arrived_metrics(collector)[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK]
    assert metric.unit == "s"
    ((_, point),) = points(metric)
    assert (point.count, point.sum) == (1, 0.15)
    assert_convention_names(collector)


def test_an_error_call_has_an_error_status_with_its_type_and_code_only(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    error = ErrorInfo(type="RateLimitError", code=429)
    deliver(sink, call(error=error, **RATE_LIMITED))

    span = only_span(collector)
    assert span.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert span.status.message == "RateLimitError: 429"
    attributes = attributes_of(span.attributes)
    assert attributes[error_attributes.ERROR_TYPE] == "RateLimitError"
    assert attributes["pipeclient.error.code"] == "429"
    assert attributes["pipeclient.attempts"] == 3
    assert gen_ai_attributes.GEN_AI_USAGE_INPUT_TOKENS not in attributes
    (event,) = span.events
    assert event.name == "exception"
    assert attributes_of(event.attributes) == {
        exception_attributes.EXCEPTION_TYPE: "RateLimitError"
    }
    metrics = arrived_metrics(collector)
    ((duration_attributes, _),) = points(metrics[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION])
    assert duration_attributes[error_attributes.ERROR_TYPE] == "RateLimitError"
    assert gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE not in metrics  # no usage, no points
    assert_convention_names(collector)


def test_an_embeddings_call(collector: CaptureServer, sink: OtlpSink) -> None:
    record = call(
        operation="embeddings",
        model="text-embedding-3-small",
        parameters={"dimensions": 256, "encoding_format": "float"},
        output_tokens=None,
        response_id=None,
        finish_reasons=(),
        response_model="text-embedding-3-small",
    )
    deliver(sink, replace(with_content(record), input=[f"{CANARY} a", "b"], output=None))

    span = only_span(collector)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind == Span.SpanKind.SPAN_KIND_CLIENT
    attributes = attributes_of(span.attributes)
    assert attributes[gen_ai_attributes.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attributes[gen_ai_attributes.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 256
    assert attributes[gen_ai_attributes.GEN_AI_REQUEST_ENCODING_FORMATS] == ["float"]
    assert attributes[gen_ai_attributes.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert gen_ai_attributes.GEN_AI_USAGE_OUTPUT_TOKENS not in attributes
    assert openai_attributes.OPENAI_API_TYPE not in attributes  # chat completions only
    assert json.loads(attributes[gen_ai_attributes.GEN_AI_INPUT_MESSAGES]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": f"{CANARY} a"},
                {"type": "text", "content": "b"},
            ],
        }
    ]
    usage = arrived_metrics(collector)[gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE]
    assert [a[gen_ai_attributes.GEN_AI_TOKEN_TYPE] for a, _ in points(usage)] == ["input"]
    assert_convention_names(collector)


def test_an_image_generation_is_generate_content_with_an_image_output(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    record = call(
        operation="images",
        model="dall-e-3",
        parameters={"size": "1024x1024", "quality": "hd", "n": 1},
        input_tokens=None,
        output_tokens=None,
        response_id=None,
        response_model=None,
        finish_reasons=(),
    )
    deliver(sink, record)

    span = only_span(collector)
    assert span.name == "generate_content dall-e-3"
    attributes = attributes_of(span.attributes)
    assert attributes[gen_ai_attributes.GEN_AI_OPERATION_NAME] == "generate_content"
    assert attributes[gen_ai_attributes.GEN_AI_OUTPUT_TYPE] == "image"
    assert attributes["pipeclient.request.size"] == "1024x1024"
    assert gen_ai_attributes.GEN_AI_REQUEST_CHOICE_COUNT not in attributes  # n == 1
    assert_convention_names(collector)


def test_enumerated_values_are_the_conventions_own() -> None:
    sink = sink_for("http://127.0.0.1:9")
    records = [
        call(),
        call(parameters={"response_format": "json_schema"}),
        call(operation="embeddings", base_url="https://api.mistral.ai/v1"),
        call(operation="images", base_url="https://my-res.openai.azure.com/openai"),
        call(base_url="https://generativelanguage.googleapis.com/v1beta/openai"),
        call(base_url="http://localhost:11434/v1"),
    ]
    for record in records:
        (payload,) = sink.encode(record)
        attributes = payload["attributes"]
        assert attributes["gen_ai.operation.name"] in OPERATIONS
        assert attributes["gen_ai.provider.name"] in PROVIDERS
        assert attributes.get("gen_ai.output.type", "text") in OUTPUT_TYPES
        for measurement in payload["metrics"]:
            assert measurement["name"] in CONVENTION_METRICS
            token_type = measurement["attributes"].get("gen_ai.token.type", "input")
            assert token_type in TOKEN_TYPES
    (local,) = sink.encode(records[-1])
    assert local["attributes"]["server.address"] == "localhost"
    assert local["attributes"]["server.port"] == 11434


def test_a_trace_block_is_the_parent_of_the_calls_inside_it(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    inner = call(parent_id=TRACE_SPAN_ID, trace_name="answer-question")
    deliver(sink, inner, trace_block())

    spans = {span.name: span for _, span in arrived_spans(collector)}
    block, child = spans["answer-question"], spans["chat gpt-4o-mini"]
    assert block.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    assert block.trace_id == child.trace_id == span_id_bytes(TRACE_ID)
    assert block.span_id == span_id_bytes(TRACE_SPAN_ID)
    assert block.parent_span_id == b""
    assert child.parent_span_id == block.span_id
    assert block.status.code == Status.StatusCode.STATUS_CODE_UNSET
    assert_convention_names(collector)


def test_a_failed_trace_block_and_an_application_parent(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    app_span = "1111222233334444"
    block = trace_block(
        parent_id=app_span, outcome="error", error=ErrorInfo(type="ValueError", code=None)
    )
    deliver(sink, block)

    span = only_span(collector)
    assert span.parent_span_id == span_id_bytes(app_span)
    assert span.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert span.status.message == "ValueError"
    assert attributes_of(span.attributes) == {error_attributes.ERROR_TYPE: "ValueError"}


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_follow_the_conventions(collector: CaptureServer, sink: OtlpSink) -> None:
    deliver(sink, call(), call(span_id="c" * 16, input_tokens=100, output_tokens=50))

    metrics = arrived_metrics(collector)
    duration = metrics[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION]
    assert duration.unit == "s"
    assert duration.histogram.aggregation_temporality == 2  # cumulative
    ((attributes, point),) = points(duration)
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "server.address": "api.openai.com",
        "server.port": 443,
    }
    assert (point.count, point.sum) == (2, 2.5)
    assert list(point.explicit_bounds) == SECONDS_BUCKETS

    usage = metrics[gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE]
    assert usage.unit == "{token}"
    by_type = {a["gen_ai.token.type"]: p for a, p in points(usage)}
    assert (by_type["input"].count, by_type["input"].sum) == (2, 112)
    assert (by_type["output"].count, by_type["output"].sum) == (2, 55)
    assert list(by_type["input"].explicit_bounds) == TOKEN_BUCKETS
    assert_convention_names(collector)


def test_spans_and_metrics_state_the_pinned_conventions_version(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    from pipeclient._sinks.otlp.genai import CONVENTIONS_VERSION

    assert CONVENTIONS_VERSION == "1.41.0"
    deliver(sink, call())
    schema = "https://opentelemetry.io/schemas/1.41.0"
    (traces,) = collector.requests_to("/v1/traces")
    message = ExportTraceServiceRequest.FromString(traces.content)
    assert [s.schema_url for r in message.resource_spans for s in r.scope_spans] == [schema]
    metrics = ExportMetricsServiceRequest.FromString(
        collector.requests_to("/v1/metrics")[0].content
    )
    assert [s.schema_url for r in metrics.resource_metrics for s in r.scope_metrics] == [schema]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("v1.41", {"gen_ai.client.token.usage"}),
        ("inference", {INFERENCE_INPUT, INFERENCE_OUTPUT}),
        ("both", {"gen_ai.client.token.usage", INFERENCE_INPUT, INFERENCE_OUTPUT}),
    ],
)
def test_the_newer_token_histograms_are_an_opt_in(
    collector: CaptureServer, choice: str, expected: set[str]
) -> None:
    sink = sink_for(collector.url, token_metrics=choice)
    try:
        deliver(sink, call(input_tokens=100, output_tokens=50))
    finally:
        sink.shutdown(timeout=2.0)
    metrics = arrived_metrics(collector)
    tokens = {name for name in metrics if "token" in name}
    assert tokens == expected
    if choice != "v1.41":
        ((attributes, point),) = points(metrics[INFERENCE_INPUT])
        assert "gen_ai.token.type" not in attributes and (point.count, point.sum) == (1, 100)
        ((_, point),) = points(metrics[INFERENCE_OUTPUT])
        assert point.sum == 50 and list(point.explicit_bounds) == TOKEN_BUCKETS


def test_metrics_go_at_most_every_few_seconds_and_at_flush(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    deliver(sink, call())
    deliver(sink, call(span_id="c" * 16))
    assert len(collector.requests_to("/v1/traces")) == 2
    assert len(collector.requests_to("/v1/metrics")) == 1  # the first batch's, at once

    assert sink.force_flush(timeout=5.0) is True
    assert len(collector.requests_to("/v1/metrics")) == 2
    ((_, point),) = points(
        arrived_metrics(collector)[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION]
    )
    assert point.count == 2  # cumulative: the running total
    assert sink.force_flush(timeout=5.0) is True  # nothing new: nothing sent
    assert len(collector.requests_to("/v1/metrics")) == 2


def test_shutdown_sends_the_metrics_still_pending(collector: CaptureServer) -> None:
    sink = sink_for(collector.url)
    deliver(sink, call())
    deliver(sink, call(span_id="c" * 16))
    sink.shutdown(timeout=5.0)

    assert len(collector.requests_to("/v1/metrics")) == 2
    with pytest.raises(OtlpExportError, match="shut down"):
        deliver(sink, call())


# -- content ---------------------------------------------------------------------------------


def test_content_arrives_in_the_conventions_message_format(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    error = ErrorInfo(type="RateLimitError", code=429)
    deliver(sink, with_content(call()), with_content(call(span_id="c" * 16, error=error)))

    assert collector.all_bytes().count(f"{CANARY} input".encode()) >= 2
    for canary in ("output", "tool", "error"):
        assert f"{CANARY} {canary}".encode() in collector.all_bytes()
    spans = {span.span_id.hex(): span for _, span in arrived_spans(collector)}
    attributes = attributes_of(spans[SPAN_ID].attributes)
    assert json.loads(attributes[gen_ai_attributes.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": f"say {CANARY} input"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/a.png"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": "x"}}
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "42"}],
        },
    ]
    assert json.loads(attributes[gen_ai_attributes.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": f"here: {CANARY} output"}],
            "finish_reason": "stop",
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_2", "name": "lookup", "arguments": {"q": "y"}}
            ],
            "finish_reason": "tool_call",
        },
    ]
    assert json.loads(attributes[gen_ai_attributes.GEN_AI_TOOL_DEFINITIONS]) == [
        {
            "type": "function",
            "name": "lookup",
            "description": f"{CANARY} tool",
            "parameters": {"type": "object", "properties": {}},
        }
    ]
    failed = spans["c" * 16]
    assert failed.status.message == f"RateLimitError: 429 - quota exceeded for '{CANARY} error'"
    assert attributes_of(failed.events[0].attributes)[exception_attributes.EXCEPTION_MESSAGE] == (
        f"quota exceeded for '{CANARY} error'"
    )
    assert_convention_names(collector)


def test_no_content_leaves_when_the_record_has_none(collector: CaptureServer) -> None:
    sink = sink_for(collector.url, capture_content=False)
    # What the privacy step hands a sink that may not receive content.
    error = ErrorInfo(type="RateLimitError", code=429, message=None)
    records = [call(), call(span_id="c" * 16, error=error), trace_block()]
    records += [call(span_id="d" * 16, operation="embeddings"), call(span_id="e" * 16, stream=True)]
    payloads = [p for record in records for p in sink.encode(record)]
    assert CANARY not in json.dumps(payloads)
    sink.send(payloads, timeout=5.0)
    sink.shutdown(timeout=5.0)

    assert len(arrived_spans(collector)) == 5
    assert CANARY.encode() not in collector.all_bytes()
    content_keys = {
        gen_ai_attributes.GEN_AI_INPUT_MESSAGES,
        gen_ai_attributes.GEN_AI_OUTPUT_MESSAGES,
        gen_ai_attributes.GEN_AI_TOOL_DEFINITIONS,
        gen_ai_attributes.GEN_AI_SYSTEM_INSTRUCTIONS,
    }
    for _, span in arrived_spans(collector):
        assert not content_keys & set(attributes_of(span.attributes))
        for event in span.events:
            assert exception_attributes.EXCEPTION_MESSAGE not in attributes_of(event.attributes)
        assert span.status.message in ("", "RateLimitError: 429")


# -- isolation -------------------------------------------------------------------------------


def test_no_global_provider_no_thread_no_atexit_hook(collector: CaptureServer) -> None:
    from opentelemetry import metrics, trace

    # A first sink, so that the libraries' one-time hooks (certifi's on first import,
    # weakref.finalize's on first use) are in place before counting: they are not ours.
    warm_up = sink_for(collector.url)
    deliver(warm_up, call(span_id="c" * 16))
    warm_up.shutdown(timeout=5.0)
    threads_before = set(threading.enumerate())
    hooks_before = atexit._ncallbacks()
    sink = sink_for(collector.url)
    deliver(sink, call())
    assert sink.force_flush(timeout=5.0)
    sink.shutdown(timeout=5.0)

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert trace._TRACER_PROVIDER is None
    assert metrics._internal._METER_PROVIDER is None
    assert atexit._ncallbacks() == hooks_before
    new_threads = [
        t for t in set(threading.enumerate()) - threads_before if "process_request" not in t.name
    ]
    assert new_threads == []


def use_every_path(collector: CaptureServer) -> None:
    """Construct a sink, send spans (with a parent, an error event) and metrics, flush,
    and shut down: everything the sink does that could set up SDK machinery."""
    sink = sink_for(collector.url)
    deliver(sink, call(), trace_block())
    error = ErrorInfo(type="RateLimitError", code=429)
    deliver(sink, call(span_id="c" * 16, parent_id=TRACE_SPAN_ID, error=error, **RATE_LIMITED))
    assert sink.force_flush(timeout=5.0) is True
    deliver(sink, call(span_id="d" * 16))
    sink.shutdown(timeout=5.0)
    assert len(arrived_spans(collector)) == 4
    assert len(collector.requests_to("/v1/metrics")) == 3  # first batch, flush, shutdown


def test_no_fork_handler_is_registered(
    collector: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A provider's handler re-runs resource detectors on a thread pool in a forked child,
    # which can hang it (opentelemetry-python#5533); and it would be a process-wide effect.
    registered: list[dict[str, Any]] = []
    monkeypatch.setattr(os, "register_at_fork", lambda **hooks: registered.append(hooks))

    use_every_path(collector)
    assert registered == []

    # The check can see the SDK's handlers: a provider, built here, is caught registering.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    TracerProvider(resource=Resource({}), shutdown_on_exit=False)
    assert registered


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exits_promptly_after_the_sink_sent(collector: CaptureServer) -> None:
    sink = sink_for(collector.url)
    deliver(sink, call(), trace_block())
    assert sink.force_flush(timeout=5.0) is True
    assert collector.requests_to("/v1/traces") and collector.requests_to("/v1/metrics")

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: nothing may run before this line
        os._exit(0)
    code = wait_child(pid, 10.0)
    assert code is not None, "the forked child hung: a fork handler ran in it"
    assert code == 0
    sink.shutdown(timeout=5.0)


def test_no_thread_or_executor_is_created(
    collector: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    test_thread = threading.current_thread()
    started: list[threading.Thread] = []
    executors: list[object] = []
    start = threading.Thread.start

    def spy_start(thread: threading.Thread) -> None:
        if threading.current_thread() is test_thread:  # not the collector's own threads
            started.append(thread)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", spy_start)
    for executor_class in (
        concurrent.futures.ThreadPoolExecutor,
        concurrent.futures.ProcessPoolExecutor,
    ):
        init = executor_class.__init__

        def spy_init(executor: Any, *args: Any, _init: Any = init, **kwargs: Any) -> None:
            executors.append(executor)
            _init(executor, *args, **kwargs)

        monkeypatch.setattr(executor_class, "__init__", spy_init)
    threads_before = set(threading.enumerate())

    use_every_path(collector)
    assert started == []
    assert executors == []
    new_threads = [
        t for t in set(threading.enumerate()) - threads_before if "process_request" not in t.name
    ]
    assert new_threads == []


def test_importing_constructing_and_encoding_do_not_import_the_sdk() -> None:
    # In a fresh interpreter: this test module itself imports the SDK.
    script = _record_builders_source() + (
        "import sys\n"
        "from pipeclient._sinks.otlp.sink import OtlpSink\n"
        "from pipeclient.config import OtlpConfig\n"
        "sink = OtlpSink(OtlpConfig())\n"
        "sink.encode(with_content(call())); sink.encode(trace_block())\n"
        "heavy = ('opentelemetry.sdk', 'opentelemetry.exporter', 'requests', 'google.protobuf')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def _record_builders_source() -> str:
    return (
        "from pipeclient._telemetry.record import CallRecord, TraceRecord\n"
        "def call():\n"
        "    return CallRecord(request_id='r', operation='chat', model='m', stream=False,\n"
        "        backend='b', base_url='https://api.openai.com/v1', gateway=False, no_log=False,\n"
        "        started_at=1.0, total_ms=1.0, ttft_ms=None, attempts=1, http_status=200,\n"
        "        outcome='ok', error=None, parameters={}, trace_id='a'*32, span_id='b'*16)\n"
        "def with_content(r):\n"
        "    import dataclasses\n"
        "    return dataclasses.replace(r, input={'messages': [{'role': 'user', 'content': 'x'}],\n"
        "        'tools': None}, output=[{'role': 'assistant', 'content': 'y'}])\n"
        "def trace_block():\n"
        "    return TraceRecord(trace_id='a'*32, span_id='c'*16, parent_id=None, name='t',\n"
        "        started_at=1.0, total_ms=1.0, outcome='ok')\n"
    )


def test_two_sinks_send_to_two_collectors_at_once() -> None:
    with CaptureServer() as first, CaptureServer() as second:
        sinks = [
            OtlpSink(OtlpConfig(name="one", endpoint=first.url, headers={"x-tenant": "one"})),
            OtlpSink(
                OtlpConfig(name="two", endpoint=second.url + "/", headers={"x-tenant": "two"})
            ),
        ]
        assert [s.name for s in sinks] == ["otlp:one", "otlp:two"]
        errors: list[BaseException] = []

        def run(sink: OtlpSink, span_id: str) -> None:
            try:
                for _ in range(5):
                    sink.send(sink.encode(call(span_id=span_id)), timeout=5.0)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [
            threading.Thread(target=run, args=(sinks[0], "1" * 16)),
            threading.Thread(target=run, args=(sinks[1], "2" * 16)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        for sink in sinks:
            sink.shutdown(timeout=5.0)

        assert errors == []
        for server, span_id, tenant in ((first, "1" * 16, "one"), (second, "2" * 16, "two")):
            spans = arrived_spans(server)
            assert [span.span_id.hex() for _, span in spans] == [span_id] * 5
            assert {r.path for r in server.requests} == {"/v1/traces", "/v1/metrics"}
            assert {r.headers["x-tenant"] for r in server.requests} == {tenant}
            ((_, point),) = points(
                arrived_metrics(server)[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION]
            )
            assert point.count == 5  # each sink meters its own calls only


def test_headers_are_the_configured_ones_and_stay_secret(
    collector: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-leak=from-env")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-leak-traces=from-env")
    sink = sink_for(collector.url)
    assert TOKEN not in repr(sink)
    deliver(sink, call())
    sink.shutdown(timeout=5.0)

    for request in collector.requests:
        assert request.headers["authorization"] == TOKEN
        assert "x-leak" not in request.headers
        assert "x-leak-traces" not in request.headers


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.timeout(15)
def test_a_refused_connection_fails_at_once(caplog: pytest.LogCaptureFixture) -> None:
    url = refused_url().removesuffix("/v1")
    sink = sink_for(url)
    # A generous timeout: only a prompt failure (no retry with backoff) fits the test's.
    with pytest.raises(OtlpExportError) as raised:
        sink.send(sink.encode(call()), timeout=60.0)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in caplog.text
    assert sink.force_flush(timeout=1.0) is False  # the metrics are still owed
    sink.shutdown(timeout=1.0)


@pytest.mark.timeout(15)
def test_a_500_fails_at_once_without_retrying() -> None:
    with CaptureServer(behaviour="error") as server:
        sink = sink_for(server.url)
        with pytest.raises(OtlpExportError, match=r"otlp:test: 1 span\(s\)"):
            sink.send(sink.encode(call()), timeout=60.0)
        assert len(server.requests_to("/v1/traces")) == 1
        server.behaviour = "ok"
        sink.send(sink.encode(call(span_id="c" * 16)), timeout=5.0)  # it recovers
        sink.shutdown(timeout=5.0)
        delivered = ExportTraceServiceRequest.FromString(
            server.requests_to("/v1/traces")[-1].content
        )
        assert delivered.resource_spans[0].scope_spans[0].spans[0].span_id.hex() == "c" * 16


@pytest.mark.timeout(10)
def test_a_hanging_collector_is_bounded_by_the_timeout() -> None:
    with CaptureServer(behaviour="hang") as server:
        sink = sink_for(server.url)
        with pytest.raises(OtlpExportError):
            sink.send(sink.encode(call()), timeout=0.5)
        assert sink.force_flush(timeout=0.3) is False
        sink.shutdown(timeout=0.3)
        assert len(server.requests_to("/v1/traces")) >= 1


@pytest.mark.timeout(10)
def test_shutdown_returns_while_a_send_hangs() -> None:
    with CaptureServer(behaviour="hang") as server:
        sink = sink_for(server.url)
        outcome: list[BaseException | None] = []

        def send() -> None:
            try:
                sink.send(sink.encode(call()), timeout=1.5)
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

        worker = threading.Thread(target=send)
        worker.start()
        wait_until(lambda: server.requests, 5.0, "the export to reach the collector")
        sink.shutdown(timeout=0.2)  # returns although the worker holds the sink
        worker.join(timeout=5.0)
        assert not worker.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], OtlpExportError)


def test_an_empty_batch_sends_nothing(collector: CaptureServer, sink: OtlpSink) -> None:
    sink.send([], timeout=1.0)
    assert collector.requests == []


# -- span limits and metric points ---------------------------------------------------------


def test_no_attribute_is_dropped_or_cut_without_limits(
    collector: CaptureServer, sink: OtlpSink
) -> None:
    deliver(sink, with_content(call()))
    span = only_span(collector)
    attributes = attributes_of(span.attributes)
    assert span.dropped_attributes_count == 0
    assert attributes[gen_ai_attributes.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop", "tool_calls"]
    assert f"{CANARY} input" in attributes[gen_ai_attributes.GEN_AI_INPUT_MESSAGES]


def deliver_with_a_new_sink(collector: CaptureServer, record: CallRecord) -> None:
    """A sink made now reads the OTEL_* limits as they are now."""
    sink = sink_for(collector.url)
    try:
        deliver(sink, record)
    finally:
        sink.shutdown(1.0)


def test_the_sdks_attribute_length_limit_applies(
    collector: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "12")
    deliver_with_a_new_sink(collector, with_content(call()))
    attributes = attributes_of(only_span(collector).attributes)
    assert len(attributes[gen_ai_attributes.GEN_AI_INPUT_MESSAGES]) == 12
    assert len(attributes[gen_ai_attributes.GEN_AI_OUTPUT_MESSAGES]) == 12
    assert attributes[gen_ai_attributes.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"  # 11: whole
    assert f"{CANARY} input".encode() not in collector.all_bytes()


def test_the_sdks_attribute_count_limit_drops_and_counts(
    collector: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "5")
    deliver_with_a_new_sink(collector, call())
    span = only_span(collector)
    assert len(span.attributes) == 5
    assert span.dropped_attributes_count == 23 - 5  # the 23 of a plain call, as above


def test_one_metric_point_per_attribute_set_whatever_the_order_or_type() -> None:
    from pipeclient._sinks.otlp.metrics import Histograms

    histograms = Histograms()
    duration = gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
    histograms.record(duration, 1.0, {"a": "x", "b": 1})
    histograms.record(duration, 2.0, {"b": 1, "a": "x"})  # the same set: the same point
    histograms.record(duration, 4.0, {"a": "x", "b": 1.0})  # 1.0 is not 1
    histograms.record(duration, 8.0, {"a": "x", "b": True})  # nor is True
    histograms.record(duration, 16.0, {"a": ["x"], "b": 1})  # an unhashable value too
    ((name, found_points),) = histograms.snapshot()
    assert name == duration
    found = sorted((repr(point.attributes), point.count, point.sum) for point in found_points)
    assert found == sorted(
        [
            (repr({"a": "x", "b": 1}), 2, 3.0),
            (repr({"a": "x", "b": 1.0}), 1, 4.0),
            (repr({"a": "x", "b": True}), 1, 8.0),
            (repr({"a": ["x"], "b": 1}), 1, 16.0),
        ]
    )


def test_broken_text_and_non_finite_numbers_in_content_still_arrive(
    collector: CaptureServer, sink: OtlpSink, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone surrogate (a provider's broken escape) cannot be UTF-8 and a NaN is not JSON:
    the attribute arrives with "?" and null instead of being dropped by the SDK."""
    record = replace(
        call(),
        input={"messages": [{"role": "user", "content": "bad \ud800 input"}], "tools": None},
        output=[
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x": NaN}'},
                    }
                ],
            }
        ],
    )
    deliver(sink, record)
    attributes = attributes_of(only_span(collector).attributes)
    messages = json.loads(attributes[gen_ai_attributes.GEN_AI_INPUT_MESSAGES])
    assert messages[0]["parts"][0]["content"] == "bad ? input"
    output = attributes[gen_ai_attributes.GEN_AI_OUTPUT_MESSAGES]
    arguments = json.loads(output, parse_constant=_not_json)[0]["parts"][0]["arguments"]
    assert arguments == {"x": None}
    assert "Failed to encode" not in caplog.text


def _not_json(token: str) -> Any:
    raise AssertionError(f"{token} is not JSON")
