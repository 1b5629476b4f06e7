"""The PostHog sink, against a loopback server standing in for PostHog's /batch/ endpoint."""

from __future__ import annotations

import gzip
import json
import math
import re
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeclient._sinks import posthog as posthog_sink
from pipeclient._sinks import posthog_wire as wire
from pipeclient._sinks.posthog import PostHogExportError, PostHogSink
from pipeclient._telemetry.privacy import PrivacyStep, audience_of
from pipeclient._telemetry.record import CallRecord, ErrorInfo, TraceRecord
from pipeclient.config import PostHogConfig, PrivacyConfig
from pipeclient.testing import CaptureServer, refused_url

API_KEY = "phc_secret_project_key_0123456789"
CANARY = "canary-7f3a9c-do-not-leak"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
STARTED_AT = 1_700_000_000.25


def sink_for(url: str, **settings: Any) -> PostHogSink:
    return PostHogSink(PostHogConfig(enabled=True, host=url, api_key=API_KEY, **settings))


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
        parameters={"temperature": 0.2, "max_tokens": 64},
        input_tokens=12,
        output_tokens=5,
        response_id="chatcmpl-1",
        response_model="gpt-4o-mini-2024-07-18",
        finish_reasons=("stop",),
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )
    return replace(record, **changes)


def with_content(record: CallRecord) -> CallRecord:
    return replace(
        record,
        input={
            "messages": [{"role": "user", "content": f"say {CANARY}"}],
            "tools": [{"type": "function", "function": {"name": f"tool_{CANARY}"}}],
        },
        output=[{"role": "assistant", "content": f"here: {CANARY}"}],
    )


def deliver(sink: PostHogSink, *records: CallRecord | TraceRecord) -> None:
    payloads = [payload for record in records for payload in sink.encode(record)]
    sink.send(payloads, timeout=5.0)


def arrived(server: CaptureServer) -> list[dict[str, Any]]:
    """The events as PostHog would read them: gunzip, parse, take the batch."""
    events: list[dict[str, Any]] = []
    for request in server.requests_to("/batch/"):
        assert request.method == "POST"
        assert request.headers["content-encoding"] == "gzip"
        body = json.loads(gzip.decompress(request.body))
        assert body["api_key"] == API_KEY
        events += body["batch"]
    return events


def only_event(server: CaptureServer) -> dict[str, Any]:
    events = arrived(server)
    assert len(events) == 1
    return events[0]


# -- the events that arrive ---------------------------------------------------------------


def test_chat_call_arrives_as_ai_generation_with_posthog_properties() -> None:
    with CaptureServer() as server:
        sink = sink_for(server.url, distinct_id="user-42")
        deliver(sink, call())
        sink.shutdown(1.0)
        request = server.requests[0]
        event = only_event(server)

    assert request.path == "/batch/"
    assert request.headers["user-agent"].startswith("posthog-python/")
    assert event["event"] == "$ai_generation"
    assert event["distinct_id"] == "user-42"
    stamp = datetime.fromisoformat(event["timestamp"])
    assert stamp == datetime.fromtimestamp(STARTED_AT, tz=timezone.utc)
    assert uuid.UUID(event["uuid"]) == uuid.UUID(sink.encode(call())[0]["uuid"])
    props = event["properties"]
    assert props["$ai_model"] == "gpt-4o-mini-2024-07-18"
    assert props["$ai_provider"] == "openai"
    assert props["$ai_framework"] == "pipeclient"
    assert props["$ai_input_tokens"] == 12
    assert props["$ai_output_tokens"] == 5
    assert props["$ai_latency"] == pytest.approx(1.25)
    assert props["$ai_stream"] is False
    assert props["$ai_trace_id"] == TRACE_ID
    assert props["$ai_span_id"] == SPAN_ID
    assert props["$ai_http_status"] == 200
    assert props["$ai_base_url"] == "https://api.openai.com/v1"
    assert props["$ai_request_url"] == "https://api.openai.com/v1/chat/completions"
    assert props["$ai_is_error"] is False
    assert props["$ai_model_parameters"] == {"temperature": 0.2, "max_tokens": 64}
    assert props["request_id"] == "req-123"
    assert props["$ai_response_id"] == "chatcmpl-1"
    assert props["$ai_stop_reason"] == "stop"
    assert props["$lib"] == "posthog-python"
    assert props["$lib_version"]
    for absent in (
        "$ai_parent_id",
        "$ai_time_to_first_token",
        "$ai_error",
        "$ai_input",
        "$ai_output_choices",
        "$ai_tools",
        "$process_person_profile",
    ):
        assert absent not in props


def test_streamed_call_carries_time_to_first_token() -> None:
    with CaptureServer() as server:
        deliver(sink_for(server.url), call(stream=True, ttft_ms=250.0))
        props = only_event(server)["properties"]
    assert props["$ai_stream"] is True
    assert props["$ai_time_to_first_token"] == pytest.approx(0.25)


def test_error_call_without_content_has_type_and_code_only() -> None:
    error = ErrorInfo("RateLimitError", 429, None)  # as the privacy step leaves it
    record = call(outcome="error", error=error, http_status=429, output_tokens=None)
    with CaptureServer() as server:
        deliver(sink_for(server.url), record)
        props = only_event(server)["properties"]
    assert props["$ai_is_error"] is True
    assert props["$ai_error"] == "RateLimitError: 429"
    assert props["$ai_http_status"] == 429
    assert "$ai_output_tokens" not in props


def test_provider_error_code_is_kept_when_it_is_a_plain_word() -> None:
    sink = sink_for("http://127.0.0.1:9")
    word = ErrorInfo("APIStatusError", "rate_limit_exceeded", None)
    prose = ErrorInfo("APIStatusError", "not a code: it has spaces", None)
    first = sink.encode(call(outcome="error", error=word, http_status=429))[0]
    second = sink.encode(call(outcome="error", error=prose, http_status=None))[0]
    assert first["properties"]["$ai_error"] == "APIStatusError: 429 rate_limit_exceeded"
    assert second["properties"]["$ai_error"] == "APIStatusError"


def test_embeddings_call_arrives_as_ai_embedding() -> None:
    record = call(
        operation="embeddings",
        model="text-embedding-3-small",
        response_model=None,
        output_tokens=None,
        finish_reasons=(),
        input=["first", CANARY],
    )
    with CaptureServer() as server:
        deliver(sink_for(server.url, redact=False), record)
        event = only_event(server)
    props = event["properties"]
    assert event["event"] == "$ai_embedding"
    assert props["$ai_model"] == "text-embedding-3-small"
    assert props["$ai_input"] == ["first", CANARY]
    assert props["$ai_request_url"] == "https://api.openai.com/v1/embeddings"
    assert "$ai_output_choices" not in props


def test_images_call_is_a_generation_with_the_prompt_as_input() -> None:
    record = call(operation="images", model="dall-e-3", input=f"draw {CANARY}")
    with CaptureServer() as server:
        deliver(sink_for(server.url, redact=False), record)
        event = only_event(server)
    assert event["event"] == "$ai_generation"
    assert event["properties"]["$ai_input"] == [{"role": "user", "content": f"draw {CANARY}"}]


def test_provider_is_named_from_the_backend_host() -> None:
    sink = sink_for("http://127.0.0.1:9")

    def provider(base_url: str) -> str:
        return str(sink.encode(call(base_url=base_url))[0]["properties"]["$ai_provider"])

    assert provider("https://api.anthropic.com/v1") == "anthropic"
    assert provider("https://myres.openai.azure.com/openai") == "azure"
    assert provider("http://localhost:11434/v1") == "localhost"
    event = sink.encode(call(base_url="https://user:pw@llm.example:8443/v1/?token=x"))[0]
    assert event["properties"]["$ai_provider"] == "llm.example"
    assert event["properties"]["$ai_base_url"] == "https://llm.example:8443/v1"


# -- traces -------------------------------------------------------------------------------


def posthog_tree(events: list[dict[str, Any]], trace_id: str) -> dict[str, list[str]]:
    """PostHog's trace view (restoreTree): `$ai_trace` is left out, the tree is rooted at
    the trace id, each node is `$ai_span_id` and hangs from `$ai_parent_id ?? $ai_trace_id`.
    Returns the event names reachable under each node id."""
    children: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["event"] == "$ai_trace":
            continue
        props = event["properties"]
        parent = props.get("$ai_parent_id") or props["$ai_trace_id"]
        children.setdefault(parent, []).append(event)
    reached: dict[str, list[str]] = {}

    def walk(node_id: str) -> None:
        for child in children.get(node_id, []):
            reached.setdefault(node_id, []).append(child["event"])
            walk(child["properties"]["$ai_span_id"])

    walk(trace_id)
    return reached


def test_trace_and_the_calls_inside_it_form_posthogs_tree() -> None:
    root = TraceRecord(
        trace_id=TRACE_ID,
        span_id="1111111111111111",
        parent_id=None,
        name="answer-question",
        started_at=STARTED_AT,
        total_ms=3000.0,
        outcome="ok",
    )
    nested = TraceRecord(
        trace_id=TRACE_ID,
        span_id="2222222222222222",
        parent_id=root.span_id,
        name="retrieve",
        started_at=STARTED_AT + 0.1,
        total_ms=500.0,
        outcome="error",
        error=ErrorInfo("ValueError", None),
    )
    in_root = call(
        request_id="req-a",
        span_id="aaaaaaaaaaaaaaaa",
        parent_id=root.span_id,
        trace_name="answer-question",
    )
    in_nested = call(
        request_id="req-b",
        span_id="bbbbbbbbbbbbbbbb",
        parent_id=nested.span_id,
        operation="embeddings",
        trace_name="retrieve",
    )
    with CaptureServer() as server:
        deliver(sink_for(server.url), in_nested, nested, in_root, root)
        events = arrived(server)

    by_name = {(e["event"], e["properties"].get("$ai_span_id")): e for e in events}
    trace = by_name[("$ai_trace", None)]["properties"]
    assert trace["$ai_trace_id"] == TRACE_ID
    assert trace["$ai_span_name"] == trace["$ai_trace_name"] == "answer-question"
    assert trace["$ai_latency"] == pytest.approx(3.0)
    assert trace["$ai_is_error"] is False
    assert "$ai_parent_id" not in trace
    node = by_name[("$ai_span", root.span_id)]["properties"]
    assert node["$ai_span_name"] == "answer-question"
    assert "$ai_latency" not in node and "$ai_is_error" not in node  # counted once, on the trace
    span = by_name[("$ai_span", nested.span_id)]["properties"]
    assert span["$ai_parent_id"] == root.span_id
    assert span["$ai_span_name"] == "retrieve"
    assert span["$ai_latency"] == pytest.approx(0.5)
    assert span["$ai_is_error"] is True
    assert span["$ai_error"] == "ValueError"
    assert by_name[("$ai_generation", "aaaaaaaaaaaaaaaa")]["properties"]["$ai_parent_id"] == (
        root.span_id
    )
    assert by_name[("$ai_embedding", "bbbbbbbbbbbbbbbb")]["properties"]["$ai_parent_id"] == (
        nested.span_id
    )
    assert {e["properties"]["$ai_trace_id"] for e in events} == {TRACE_ID}
    assert len({e["uuid"] for e in events}) == len(events) == 5

    tree = posthog_tree(events, TRACE_ID)
    assert tree == {
        TRACE_ID: ["$ai_span"],
        root.span_id: ["$ai_span", "$ai_generation"],
        nested.span_id: ["$ai_embedding"],
    }


# -- identity and redaction ---------------------------------------------------------------


def test_anonymous_events_use_the_trace_id_and_no_person_profile() -> None:
    with CaptureServer() as server:
        deliver(sink_for(server.url, distinct_id=""), call())
        event = only_event(server)
    assert event["distinct_id"] == TRACE_ID
    assert event["properties"]["$process_person_profile"] is False


def test_redact_properties_are_removed_from_every_event() -> None:
    names = ["$ai_model_parameters", "$ai_base_url", "$ai_request_url", "$lib"]
    root = TraceRecord(
        trace_id=TRACE_ID,
        span_id="1111111111111111",
        parent_id=None,
        name="t",
        started_at=STARTED_AT,
        total_ms=1.0,
        outcome="ok",
    )
    with CaptureServer() as server:
        deliver(sink_for(server.url, redact_properties=names), call(), root)
        events = arrived(server)
    assert len(events) == 3
    for event in events:
        assert not set(names) & set(event["properties"])
    assert "$ai_model" in events[0]["properties"]


def test_redacted_sink_sends_no_content_and_no_error_text() -> None:
    error = ErrorInfo("RateLimitError", 429, None)
    record = call(outcome="error", error=error, http_status=429)  # content None, as given
    with CaptureServer() as server:
        sink = sink_for(server.url)  # redact = true by default
        deliver(sink, record)
        props = only_event(server)["properties"]
        wire = server.all_bytes()
    assert CANARY.encode() not in wire
    assert not {"$ai_input", "$ai_output_choices", "$ai_tools"} & set(props)
    assert props["$ai_error"] == "RateLimitError: 429"


def test_redacted_posthog_gets_the_privacy_steps_view_without_content() -> None:
    error = ErrorInfo("RateLimitError", 429, f"quota for {CANARY}")
    record = with_content(call(outcome="error", error=error, http_status=429))
    config = PostHogConfig(enabled=True, api_key=API_KEY, redact=True)
    view = PrivacyStep(PrivacyConfig()).view(record, audience_of(config))
    assert view is not None
    with CaptureServer() as server:
        deliver(sink_for(server.url, redact=True), view)
        wire = server.all_bytes()
        props = only_event(server)["properties"]
    assert CANARY.encode() not in wire
    assert props["$ai_error"] == "RateLimitError: 429"


def test_unredacted_sink_sends_content_where_posthog_reads_it() -> None:
    error = ErrorInfo("RateLimitError", 429, f"quota for {CANARY}")
    record = with_content(call(outcome="error", error=error, http_status=429))
    with CaptureServer() as server:
        sink = sink_for(server.url, redact=False)
        deliver(sink, record)
        props = only_event(server)["properties"]
    assert props["$ai_input"] == [{"role": "user", "content": f"say {CANARY}"}]
    assert props["$ai_tools"] == [{"type": "function", "function": {"name": f"tool_{CANARY}"}}]
    assert props["$ai_output_choices"] == [{"role": "assistant", "content": f"here: {CANARY}"}]
    assert props["$ai_error"] == f"RateLimitError: 429 - quota for {CANARY}"


def test_content_too_large_for_posthog_is_replaced_not_sent() -> None:
    huge = "x" * (1024 * 1024)
    record = replace(
        call(),
        input={"messages": [{"role": "user", "content": huge}]},
        output=[{"role": "assistant", "content": "ok"}],
    )
    props = sink_for("http://127.0.0.1:9", redact=False).encode(record)[0]["properties"]
    assert props["$ai_input"] == props["$ai_output_choices"] == posthog_sink._TOO_LARGE
    assert props["$ai_model"] == "gpt-4o-mini-2024-07-18"


def test_large_batches_are_split_into_several_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(posthog_sink, "_MAX_BATCH_BYTES", 4000)
    records = [call(request_id=f"req-{i}", span_id=f"{i:016x}") for i in range(6)]
    with CaptureServer() as server:
        deliver(sink_for(server.url), *records)
        assert len(server.requests) > 1
        events = arrived(server)
    assert [e["properties"]["request_id"] for e in events] == [f"req-{i}" for i in range(6)]


def test_secrets_stay_out_of_repr_and_encode() -> None:
    sink = sink_for("https://us.i.posthog.com")
    assert API_KEY not in repr(sink)
    assert API_KEY not in json.dumps(sink.encode(call()))


def test_importing_and_encoding_does_not_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "from pipeclient._sinks.posthog import PostHogSink\n"
        "from pipeclient.config import PostHogConfig\n"
        "from pipeclient._telemetry.record import CallRecord\n"
        "record = CallRecord('r', 'chat', 'm', False, 'b', 'https://api.openai.com/v1', False,\n"
        "                    False, 1.0, 2.0, None, 1, 200, 'ok', None, {})\n"
        "sink = PostHogSink(PostHogConfig(api_key='k', host='https://h.example'))\n"
        "sink.encode(record)\n"
        "assert not [m for m in sys.modules if m == 'posthog' or m.startswith('posthog.')]\n"
        "assert 'requests' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- faults: bounded, no retries, nothing left behind -------------------------------------


def test_refused_connection_raises_at_once() -> None:
    sink = sink_for(refused_url())
    with pytest.raises(PostHogExportError, match="connection failed") as caught:
        sink.send(sink.encode(call()), timeout=5.0)
    assert caught.value.transient and sink.retryable(caught.value)
    assert API_KEY not in str(caught.value)
    sink.shutdown(1.0)


def test_server_error_raises_without_retrying() -> None:
    with CaptureServer(behaviour="error") as server:
        sink = sink_for(server.url)
        with pytest.raises(PostHogExportError, match="HTTP 500") as caught:
            sink.send(sink.encode(call()), timeout=5.0)
        assert caught.value.transient  # the dispatcher's lane tries again, not the sink
        assert len(server.requests) == 1
    assert API_KEY not in str(caught.value)
    sink.shutdown(1.0)


@pytest.mark.timeout(5)
def test_hanging_endpoint_gives_up_within_the_timeout_and_shutdown_returns() -> None:
    before = set(threading.enumerate())
    with CaptureServer(behaviour="hang") as server:
        sink = sink_for(server.url)
        with pytest.raises(PostHogExportError, match="no answer"):  # after 0.5 s, no retry
            sink.send(sink.encode(call()), timeout=0.5)
        sink.shutdown(1.0)
        assert len(server.requests) == 1
        ours = [
            t
            for t in set(threading.enumerate()) - before
            if not t.name.startswith("pipeclient-capture-server")
            and "process_request" not in t.name
        ]
    assert ours == []  # the sink starts no thread of its own
    with pytest.raises(PostHogExportError, match="shut down"):
        sink.send(sink.encode(call()), timeout=0.5)


def test_empty_batch_sends_nothing() -> None:
    with CaptureServer() as server:
        sink = sink_for(server.url)
        sink.send([], timeout=1.0)
        assert server.requests == []
        assert sink.force_flush(1.0) is True
        sink.shutdown(1.0)


# -- the wire: the bytes the posthog SDK would send -----------------------------------------

_SENT_AT = re.compile(rb'"sent_at": "[^"]*"')


def test_the_request_body_is_the_one_the_sdk_sends() -> None:
    from posthog.request import batch_post

    records = [
        with_content(call(properties={"team": "søk ✓", "plan": "pro"}, user_id="u-ß")),
        call(request_id="req-nan", span_id="cccccccccccccccc", parameters={"top_p": math.nan}),
        call(request_id="req-err", outcome="error", error=ErrorInfo("RateLimitError", 429)),
        TraceRecord(TRACE_ID, "1111111111111111", None, "block \ud800", STARTED_AT, 9.5, "ok"),
    ]
    with CaptureServer() as ours, CaptureServer() as theirs:
        sink = sink_for(ours.url, redact=False)
        events = [payload for record in records for payload in sink.encode(record)]
        sink.send(sink.pack(events), timeout=5.0)
        batch_post(
            API_KEY, theirs.url, gzip=True, timeout=5.0, batch=events, historical_migration=False
        )
        sink.shutdown(1.0)
        (mine,), (sdk,) = ours.requests, theirs.requests
    assert mine.path == sdk.path == "/batch/"
    assert mine.headers["content-encoding"] == sdk.headers["content-encoding"] == "gzip"
    assert mine.headers["content-type"] == sdk.headers["content-type"] == "application/json"
    assert mine.headers["user-agent"] == sdk.headers["user-agent"]
    assert b'"sent_at": "' in mine.content
    assert _SENT_AT.sub(b"", mine.content) == _SENT_AT.sub(b"", sdk.content)
    assert len(json.loads(mine.content)["batch"]) == 5


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(properties=st.dictionaries(st.text(), _JSON, max_size=6))
def test_an_event_is_written_as_the_sdks_json(properties: dict[str, Any]) -> None:
    from posthog.request import DatetimeSerializer

    event = {"event": "$ai_generation", "properties": properties, "uuid": str(uuid.uuid4())}
    event["properties"]["$when"] = datetime(2026, 12, 7, tzinfo=timezone.utc)
    assert wire.event_bytes(event) == json.dumps(event, cls=DatetimeSerializer).encode()


def test_hosts_are_mapped_to_ingestion_as_the_sdk_maps_them() -> None:
    from posthog.request import determine_server_host

    for host in (
        "https://app.posthog.com/",
        "https://us.posthog.com",
        "https://eu.posthog.com",
        "https://ph.example.com/",
        " ",
        "http://127.0.0.1:8000",
    ):
        expected = determine_server_host(host).strip().rstrip("/") + "/batch/"
        assert wire.batch_url(host) == expected


@pytest.mark.parametrize(
    ("status", "transient"), [(400, False), (401, False), (429, True), (503, True)]
)
def test_a_refused_batch_says_whether_trying_again_may_help(status: int, transient: bool) -> None:
    with CaptureServer(answer=lambda request: (status, {"detail": "no"})) as server:
        sink = sink_for(server.url)
        with pytest.raises(PostHogExportError, match=f"HTTP {status}") as caught:
            sink.send(sink.pack(sink.encode(call())), timeout=5.0)
        sink.shutdown(1.0)
        assert len(server.requests) == 1  # the sink never retries; the lane decides
    assert caught.value.transient is transient and sink.retryable(caught.value) is transient
    assert API_KEY not in str(caught.value)
