"""`pipeclient.wrap(openai_client)`: a user's own `OpenAI` / `AsyncOpenAI`, unchanged in
behaviour, with pipeclient's telemetry. The openai SDK calls a real loopback backend;
real sinks send to real loopback servers; the tests read the bytes that arrived.

CI runs this file twice: with the newest openai release and with the newest 1.x.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import pipeclient
from pipeclient.testing import (
    CaptureServer,
    Fault,
    MockBackend,
    MockGateway,
    MockServer,
    capture_telemetry,
)

CANARY = "CANARY-77a1c0de"
HI = [{"role": "user", "content": f"hi {CANARY}"}]


@pytest.fixture
def backend() -> Iterator[tuple[MockBackend, MockServer]]:
    mock = MockBackend()
    with mock.serve() as server:
        yield mock, server


@pytest.fixture
def posthog() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def posthog_on(server: CaptureServer, **options: Any) -> dict[str, Any]:
    return {"posthog": {"enabled": True, "host": server.url, "api_key": "phc_test", **options}}


def events(server: CaptureServer) -> list[dict[str, Any]]:
    return [event for r in server.requests for event in r.json()["batch"]]


def sent(server: CaptureServer) -> str:
    """Every byte that reached the server (bodies decompressed, and headers), as text."""
    return "\n".join(
        json.dumps(r.headers) + r.content.decode("utf-8", "replace") for r in server.requests
    )


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A loopback HTTP server for a test's own handler; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def start_event_stream(handler: BaseHTTPRequestHandler) -> None:
    """Read the request; answer 200 with an event stream's headers (the events follow)."""
    handler.rfile.read(int(handler.headers["content-length"]))
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.end_headers()


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_wrap_returns_the_same_client_answering_exactly_as_before(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer
) -> None:
    mock, server = backend
    plain = openai.OpenAI(base_url=server.url, api_key="sk-test")
    before = plain.chat.completions.create(model="m", messages=HI, temperature=0.2)
    client = openai.OpenAI(base_url=server.url, api_key="sk-test")
    assert pipeclient.wrap(client, telemetry=posthog_on(posthog)) is client
    assert pipeclient.wrap(client) is client  # a second wrap changes nothing
    after = client.chat.completions.create(model="m", messages=HI, temperature=0.2)
    assert type(after) is type(before)
    drop = {"id", "created"}
    assert after.model_dump(exclude=drop) == before.model_dump(exclude=drop)
    assert after.choices[0].message.content == f"Mock reply to: hi {CANARY}"
    client.close()
    [event] = events(posthog)
    assert event["event"] == "$ai_generation"
    props = event["properties"]
    assert props["request_id"] == mock.requests[-1].headers["x-request-id"]
    assert props["$ai_input_tokens"] == after.usage.prompt_tokens
    assert props["$ai_output_tokens"] == after.usage.completion_tokens
    assert props["$ai_model_parameters"] == {"temperature": 0.2}
    assert props["$ai_http_status"] == 200
    assert CANARY not in json.dumps(event)  # redact = true by default: metadata only
    assert "x-request-id" not in mock.requests[0].headers  # the plain client: untouched


def test_one_request_id_for_every_retry_of_a_call(
    backend: tuple[MockBackend, MockServer], tmp_path: Path
) -> None:
    mock, server = backend
    audit = tmp_path / "audit.jsonl"
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=2),
        telemetry={"audit": {"enabled": True, "path": str(audit)}},
    )
    mock.push(Fault(status=503), times=2)
    client.with_options(max_retries=2).chat.completions.create(model="m", messages=HI)
    client.chat.completions.create(model="m", messages=HI)
    client.close()
    ids = [r.headers["x-request-id"] for r in mock.requests]
    retries = [r.headers.get("x-stainless-retry-count") for r in mock.requests]
    assert retries == ["0", "1", "2", "0"]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    lines = audit_lines(audit)
    assert [line["x_request_id"] for line in lines] == [ids[0], ids[3]]
    assert [line["http_status"] for line in lines] == [200, 200]
    assert lines[0]["endpoint"].endswith("/chat/completions")
    assert "sk-test" not in audit.read_text()


def test_a_request_id_the_caller_sends_is_the_calls_and_a_bad_one_is_refused(
    backend: tuple[MockBackend, MockServer],
) -> None:
    mock, server = backend
    client = pipeclient.wrap(openai.OpenAI(base_url=server.url, api_key="sk", max_retries=1))
    mock.push(Fault(status=500))
    client.chat.completions.create(
        model="m", messages=HI, extra_headers={"X-Request-Id": "order-42"}
    )
    assert [r.headers["x-request-id"] for r in mock.requests] == ["order-42", "order-42"]
    with pytest.raises(pipeclient.ConfigError, match="request_id"):
        client.chat.completions.create(
            model="m", messages=HI, extra_headers={"X-Request-Id": "x" * 201}
        )
    assert len(mock.requests) == 2  # refused before anything was sent


def test_a_failed_call_is_one_record_with_openais_error(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer
) -> None:
    mock, server = backend
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=1),
        telemetry=posthog_on(posthog),
    )
    mock.push(Fault(status=429), times=2)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=HI)
    mock.push(Fault(status=400))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=HI)
    client.close()
    found = events(posthog)
    assert len(found) == 2 == len({e["properties"]["request_id"] for e in found})
    limited, bad = (e["properties"] for e in found)
    assert limited["$ai_is_error"] is True and limited["$ai_http_status"] == 429
    assert bad["$ai_http_status"] == 400
    assert "RateLimitError" in limited["$ai_error"] and "BadRequestError" in bad["$ai_error"]
    assert CANARY not in sent(posthog)


def test_streams_reach_the_caller_unbuffered_and_are_recorded_at_their_end(
    posthog: CaptureServer,
) -> None:
    # The server holds the rest of the stream until the caller has read the first chunk:
    # a wrapper that buffered would never hand it over (the server then gives up).
    release = threading.Event()
    held: list[bool] = []
    events_sent = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "one"}}]},
        {"choices": [{"index": 0, "delta": {"content": " two"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            start_event_stream(self)
            for index, event in enumerate(events_sent):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1}
                chunk.update(model="m", **event)
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if index == 0:
                    held.append(release.wait(timeout=30))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        client = pipeclient.wrap(
            openai.OpenAI(base_url=url, api_key="sk"), telemetry=posthog_on(posthog)
        )
        stream = client.chat.completions.create(
            model="m", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        first = next(iter(stream))
        release.set()
        rest = list(stream)
        client.close()
    assert held == [True]  # the first chunk arrived while the server held the rest
    assert first.choices[0].delta.content == "one"
    assert [c.choices[0].delta.content for c in rest if c.choices] == [" two"]
    assert rest[-1].usage is not None and rest[-1].usage.prompt_tokens == 3
    [event] = events(posthog)
    props = event["properties"]
    assert props["$ai_stream"] is True
    assert (props["$ai_input_tokens"], props["$ai_output_tokens"]) == (3, 2)
    assert props["$ai_stop_reason"] == "stop"
    assert "$ai_time_to_first_token" in props


class _Gzipped(BaseHTTPRequestHandler):
    """Answers gzip-compressed, as providers behind a CDN do: JSON, or SSE when asked."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        base = {"id": "c1", "created": 1, "model": "m"}
        if body.get("stream"):
            events = [
                {"choices": [{"index": 0, "delta": {"content": "zip"}, "finish_reason": "stop"}]},
                {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1}},
            ]
            text = "".join(
                f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', **e})}\n\n"
                for e in events
            )
            raw, kind = (text + "data: [DONE]\n\n").encode(), "text/event-stream"
        else:
            message = {"role": "assistant", "content": "zip"}
            answer = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
            }
            raw, kind = json.dumps(answer).encode(), "application/json"
        packed = gzip.compress(raw)
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(packed)))
        self.end_headers()
        self.wfile.write(packed)

    def log_message(self, *args: Any) -> None:
        pass


def test_compressed_answers_are_read_for_the_record(posthog: CaptureServer) -> None:
    with serving(_Gzipped) as url:
        client = pipeclient.wrap(
            openai.OpenAI(base_url=url, api_key="sk"), telemetry=posthog_on(posthog)
        )
        answer = client.chat.completions.create(model="m", messages=HI)
        streamed = client.chat.completions.create(
            model="m", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(streamed)
        client.close()
    assert answer.choices[0].message.content == "zip" and chunks[0].choices[0].delta.content
    found = [e["properties"] for e in events(posthog)]
    assert [(p["$ai_input_tokens"], p["$ai_output_tokens"]) for p in found] == [(7, 1)] * 2
    assert [p["$ai_is_error"] for p in found] == [False, False]


def test_a_stream_closed_early_ends_its_record_once(
    backend: tuple[MockBackend, MockServer], tmp_path: Path
) -> None:
    _, server = backend
    audit = tmp_path / "audit.jsonl"
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk"),
        telemetry={"audit": {"enabled": True, "path": str(audit), "durable": True}},
    )
    words = [{"role": "user", "content": "one two three four five six"}]
    stream = client.chat.completions.create(model="m", messages=words, stream=True)
    next(iter(stream))
    stream.close()
    lines = audit_lines(audit)
    assert len(lines) == 1 and lines[0]["error"] is None
    client.close()
    assert len(audit_lines(audit)) == 1


def test_the_gateway_gets_its_stream_and_under_do_not_track_no_byte_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = MockGateway()
    with gateway.serve() as server:
        monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", server.url)
        client = pipeclient.wrap(openai.OpenAI(base_url=server.url, api_key="gw-test-key"))
        client.chat.completions.create(model="m", messages=HI, seed=3)
        client.embeddings.create(model="e", input=["x"])
        client.close()
        [chat, embedding] = gateway.events
        rid = gateway.requests[0].headers["x-request-id"]
        assert (chat["request_id"], chat["operation"], chat["outcome"]) == (rid, "chat", "ok")
        assert chat["parameters"] == {"seed": 3} and chat["attempts"] == 1
        assert embedding["operation"] == "embeddings"
        assert CANARY not in b"".join(r.body for r in gateway.telemetry_requests).decode()

        monkeypatch.setenv("DO_NOT_TRACK", "1")
        seen, connections = len(gateway.requests), server.connections
        refused = pipeclient.wrap(openai.OpenAI(base_url=server.url, api_key="gw-test-key"))
        with pytest.raises(pipeclient.GatewayTelemetryRequiredError, match="DO_NOT_TRACK"):
            refused.chat.completions.create(model="m", messages=HI)
        with pytest.raises(pipeclient.GatewayTelemetryRequiredError):
            refused.models.list()
        assert (len(gateway.requests), server.connections) == (seen, connections)


def test_under_do_not_track_other_backends_work_and_nothing_is_sent(
    backend: tuple[MockBackend, MockServer],
    posthog: CaptureServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock, server = backend
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk"), telemetry=posthog_on(posthog)
    )
    assert client.chat.completions.create(model="m", messages=HI).choices
    client.close()
    assert posthog.requests == []
    assert "x-request-id" in mock.requests[-1].headers  # the id is the call's, not telemetry


def test_no_log_and_redaction_keep_the_canary_from_every_metadata_destination(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer, tmp_path: Path
) -> None:
    mock, server = backend
    langfuse = CaptureServer()
    audit = tmp_path / "audit.jsonl"
    telemetry = {
        **posthog_on(posthog, redact=True),
        "langfuse": {
            "enabled": True,
            "host": langfuse.url,
            "public_key": "pk-lf",
            "secret_key": "sk-lf",
        },
        "audit": {"enabled": True, "path": str(audit)},
    }
    try:
        client = pipeclient.wrap(
            openai.OpenAI(base_url=server.url, api_key="sk"), telemetry=telemetry
        )
        client.chat.completions.create(model="m", messages=HI)
        mock.push(Fault(status=400, body=json.dumps({"error": {"message": f"bad {CANARY}"}})))
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=HI)
        client.close()
        quiet = pipeclient.wrap(
            openai.OpenAI(base_url=server.url, api_key="sk"), telemetry=telemetry, no_log=True
        )
        quiet.chat.completions.create(model="m", messages=[{"role": "user", "content": "Q"}])
        quiet.close()
    finally:
        langfuse.close()
    assert len(events(posthog)) == 2
    assert CANARY not in sent(posthog)  # redact = true: prompts, answers, error text
    assert CANARY not in audit.read_text() and len(audit_lines(audit)) == 2
    # The content destination did receive it: the canary was there to be leaked.
    assert CANARY in sent(langfuse)
    # no_log: nothing of that call anywhere (its request id is in no payload).
    quiet_id = mock.requests[-1].headers["x-request-id"]
    for text in (sent(posthog), sent(langfuse), audit.read_text()):
        assert quiet_id not in text


def test_attribution_per_wrapped_client_reaches_posthog_and_never_the_provider(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer
) -> None:
    mock, server = backend
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk"),
        telemetry=posthog_on(posthog, redact=False),
        user_id=f"u-{CANARY}",
        session_id="s-1",
        properties={"plan": "pro", "seats": 3},
    )
    client.chat.completions.create(model="m", messages=HI)
    client.close()
    [event] = events(posthog)
    assert event["distinct_id"] == f"u-{CANARY}"
    props = event["properties"]
    assert (props["$ai_session_id"], props["plan"], props["seats"]) == ("s-1", "pro", 3)
    [sent_request] = mock.requests
    assert b"u-CANARY" not in sent_request.body and b"s-1" not in sent_request.body
    assert "u-CANARY" not in json.dumps(dict(sent_request.headers))
    with pytest.raises(TypeError, match="properties"):
        pipeclient.wrap(openai.OpenAI(base_url=server.url, api_key="sk"), properties={"a": [1]})


def test_a_trace_block_groups_wrapped_calls_and_its_no_log_and_attribution_apply(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer
) -> None:
    _, server = backend
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk"),
        telemetry=posthog_on(posthog, redact=False),
        user_id="u-client",
    )
    blocks = pipeclient.Client(api_key="sk", base_url=server.url)
    with blocks.trace("outer", user_id="u-block") as outer:
        client.chat.completions.create(model="m", messages=HI)
    with blocks.trace("quiet", no_log=True):
        client.chat.completions.create(model="m", messages=HI)
    client.chat.completions.create(model="m", messages=HI)
    client.close()
    inside, alone = events(posthog)
    assert inside["properties"]["$ai_trace_id"] == outer.trace_id
    assert (inside["distinct_id"], alone["distinct_id"]) == ("u-block", "u-client")
    assert alone["properties"]["$ai_trace_id"] != outer.trace_id


def test_other_openai_clients_and_the_class_are_untouched(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer
) -> None:
    mock, server = backend
    shared = httpx.Client()
    before = openai.OpenAI(base_url=server.url, api_key="sk")
    wrapped = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk", http_client=shared),
        telemetry=posthog_on(posthog),
    )
    after = openai.OpenAI(base_url=server.url, api_key="sk")
    sharing = openai.OpenAI(base_url=server.url, api_key="sk", http_client=shared)
    for other in (before, after, sharing):
        other.chat.completions.create(model="m", messages=HI)
        assert "x-request-id" not in mock.requests[-1].headers
        assert "request" not in vars(other)
    shared.get(server.url + "/models")  # the shared httpx client, used directly
    assert "x-request-id" not in mock.requests[-1].headers
    wrapped.chat.completions.create(model="m", messages=HI)
    assert "x-request-id" in mock.requests[-1].headers
    assert openai.OpenAI.request is openai._base_client.SyncAPIClient.request
    wrapped.close()
    assert len(events(posthog)) == 1


def test_copies_stay_instrumented_and_another_endpoint_gets_its_own_rule(
    backend: tuple[MockBackend, MockServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    mock, server = backend
    gateway = MockGateway()
    with gateway.serve() as gw_server:
        gw_host_url = gw_server.url.replace("127.0.0.1", "localhost")
        monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", gw_host_url)
        client = pipeclient.wrap(openai.OpenAI(base_url=server.url, api_key="sk"))
        client.with_options(timeout=30).chat.completions.create(model="m", messages=HI)
        assert "x-request-id" in mock.requests[-1].headers
        to_gateway = client.with_options(base_url=gw_host_url, api_key="gw-test-key")
        to_gateway.chat.completions.create(model="m", messages=HI)
        to_gateway.close()
        assert [e["request_id"] for e in gateway.events] == [
            gateway.requests[-1].headers["x-request-id"]
        ]


def test_raw_responses_and_embeddings_are_recorded(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer
) -> None:
    _, server = backend
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk"), telemetry=posthog_on(posthog)
    )
    raw = client.chat.completions.with_raw_response.create(model="m", messages=HI)
    assert raw.headers.get("content-type", "").startswith("application/json")
    assert raw.parse().choices[0].message.content
    with client.chat.completions.with_streaming_response.create(model="m", messages=HI) as streamed:
        assert streamed.parse().usage is not None
    vectors = client.embeddings.create(model="e", input=["a", "b"])
    assert len(vectors.data) == 2
    client.models.list()  # not an inference call: passed through, not recorded
    client.close()
    found = events(posthog)
    assert [e["event"] for e in found] == ["$ai_generation"] * 2 + ["$ai_embedding"]
    assert all(e["properties"]["$ai_input_tokens"] for e in found), [
        (e["event"], sorted(e["properties"])) for e in found
    ]


def test_every_inference_endpoint_is_recorded_and_an_upload_is_described_not_kept(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer
) -> None:
    _, server = backend
    audio = b"RIFF" + CANARY.encode() * 8
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk"),
        telemetry=posthog_on(posthog, redact=False),  # content allowed: the upload still is not
    )
    assert client.moderations.create(input="x").results[0].flagged is False
    assert client.completions.create(model="m", prompt="p").choices[0].text
    assert [
        c.choices[0].text for c in client.completions.create(model="m", prompt="p", stream=True)
    ]
    heard = client.audio.transcriptions.create(file=("a.wav", audio), model="w")
    assert isinstance(heard.text, str)
    as_text = client.audio.transcriptions.create(
        file=("b.wav", audio), model="w", response_format="text"
    )
    assert isinstance(as_text, str)
    said = client.audio.speech.create(input="two words", model="t", voice="alloy")
    assert said.content.startswith(b"RIFF")
    client.close()
    found = events(posthog)
    operations = [e["properties"].get("pipeclient_operation", e["event"]) for e in found]
    assert len(found) == 6, operations
    assert all(
        "$ai_is_error" not in e["properties"] or not e["properties"]["$ai_is_error"] for e in found
    ), [e["properties"] for e in found]
    assert CANARY not in sent(posthog)  # the audio's bytes never left
    uploads = [e["properties"]["$ai_input"] for e in found if "a.wav" in json.dumps(e)]
    assert uploads and f'"bytes": {len(audio)}' in json.dumps(uploads[0])
    assert {e["properties"]["$ai_model"] for e in found} >= {"m", "w", "t"}


SENSITIVE = {
    "privacy": {"pii": ["email"]},
    "routing": {"sensitive": "local", "rules": [{"model": "big", "backends": ["elsewhere"]}]},
}


def test_sensitive_routing_refuses_a_flagged_request_unless_the_wrapped_client_is_local(
    backend: tuple[MockBackend, MockServer],
) -> None:
    mock, server = backend
    flagged = [{"role": "user", "content": "mail canary.77@example.com"}]
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk", max_retries=0), telemetry=SENSITIVE
    )
    with pytest.raises(pipeclient.RoutingError) as caught:
        client.chat.completions.create(model="m", messages=flagged)
    assert "email" in str(caught.value) and "canary.77" not in str(caught.value)
    assert mock.requests == []  # refused before any I/O
    client.chat.completions.create(model="big", messages=HI)  # clean: sent; rules not applied
    assert len(mock.requests) == 1
    own = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk"), telemetry=SENSITIVE, local=True
    )
    own.chat.completions.create(model="m", messages=flagged)  # your own server: it may
    assert b"canary.77@example.com" in mock.requests[-1].body
    elsewhere = own.with_options(base_url=server.url.replace("127.0.0.1", "localhost"))
    with pytest.raises(pipeclient.RoutingError):  # a copy to another endpoint is not local
        elsewhere.chat.completions.create(model="m", messages=flagged)
    assert len(mock.requests) == 2
    for wrapped in (client, own, elsewhere):
        wrapped.close()


def test_capture_telemetry_shows_what_a_wrapped_client_sends(
    backend: tuple[MockBackend, MockServer],
) -> None:
    _, server = backend
    with capture_telemetry() as captured:
        client = pipeclient.wrap(
            openai.OpenAI(base_url=server.url, api_key="sk"),
            telemetry={"posthog": {"enabled": True, "api_key": "phc", "redact": False}},
        )
        client.chat.completions.create(model="m", messages=HI)
        client.close()
    [event] = captured["posthog"]
    assert event["properties"]["$ai_input"] == HI  # redact = false: content, as asked


def test_async_clients_are_wrapped_alike(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer, tmp_path: Path
) -> None:
    mock, server = backend
    audit = tmp_path / "audit.jsonl"

    async def main() -> list[str]:
        client = pipeclient.wrap(
            openai.AsyncOpenAI(base_url=server.url, api_key="sk", max_retries=1),
            telemetry={
                **posthog_on(posthog),
                "audit": {"enabled": True, "path": str(audit), "durable": True},
            },
        )
        mock.push(Fault(status=500))
        await client.chat.completions.create(model="m", messages=HI)
        assert len(audit_lines(audit)) == 1  # durable: written before the call returned
        stream = await client.chat.completions.create(
            model="m", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        text = [c.choices[0].delta.content async for c in stream if c.choices]
        await client.close()
        return [t for t in text if t]

    text = asyncio.run(main())
    assert "".join(text) == f"Mock reply to: hi {CANARY}"
    ids = [r.headers["x-request-id"] for r in mock.requests]
    assert ids[0] == ids[1] != ids[2]
    found = events(posthog)
    assert [e["properties"]["request_id"] for e in found] == [ids[0], ids[2]]
    assert found[1]["properties"]["$ai_stream"] is True
    assert found[1]["properties"]["$ai_output_tokens"] > 0
    assert [line["x_request_id"] for line in audit_lines(audit)] == [ids[0], ids[2]]


def test_async_gateway_calls_are_refused_under_do_not_track(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = MockGateway()
    with gateway.serve() as server:
        monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", server.url)
        monkeypatch.setenv("DO_NOT_TRACK", "1")
        client = pipeclient.wrap(openai.AsyncOpenAI(base_url=server.url, api_key="gw-test-key"))

        async def call() -> None:
            await client.chat.completions.create(model="m", messages=HI)

        with pytest.raises(pipeclient.GatewayTelemetryRequiredError):
            asyncio.run(call())
        assert (gateway.requests, server.connections) == ([], 0)


def test_anything_but_an_openai_client_is_a_clear_error() -> None:
    with pytest.raises(pipeclient.ConfigError, match=r"wrap\(\).*expected an openai.OpenAI"):
        pipeclient.wrap(object())


def test_wrap_does_not_import_openai() -> None:
    code = (
        "import sys, pipeclient; pipeclient.wrap; "
        "print('openai' in sys.modules, 'pipeclient._client.wrap' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "True"]


# -- responses.create ---------------------------------------------------------------------

# What differs between two recordings of the same call: its ids, its timings, and the
# backend's name (the native client's is its own, a wrapped client's the host it calls).
_PER_CALL = {
    "$ai_latency",
    "$ai_response_id",
    "$ai_span_id",
    "$ai_time_to_first_token",
    "$ai_trace_id",
    "distinct_id",
    "endTimeUnixNano",
    "langfuse.observation.completion_start_time",
    "langfuse.observation.metadata.backend",
    "langfuse.observation.metadata.request_id",
    "langfuse.observation.metadata.response_id",
    "request_id",
    "spanId",
    "startTimeUnixNano",
    "timestamp",
    "traceId",
    "uuid",
}


def _same_call(event: Any) -> Any:
    """An event without what is the call's own; OTLP attributes (`{"key": name, ...}`)
    are left out by name as keys are."""
    if isinstance(event, dict):
        return {key: _same_call(value) for key, value in event.items() if key not in _PER_CALL}
    if isinstance(event, list):
        return [
            _same_call(item)
            for item in event
            if not (isinstance(item, dict) and item.get("key") in _PER_CALL)
        ]
    return event


def _recorded_natively(server: MockServer, telemetry: dict[str, Any], stream: bool) -> Any:
    with capture_telemetry() as captured:
        with pipeclient.Client(backends=[server.backend()], telemetry=telemetry) as client:
            answer = client.responses.create(model="m", input=f"hi {CANARY}", stream=stream)
            if stream:
                list(answer)  # type: ignore[arg-type]
    return captured


@pytest.mark.parametrize("stream", [False, True])
def test_responses_are_recorded_as_the_native_client_records_them(
    backend: tuple[MockBackend, MockServer], tmp_path: Path, stream: bool
) -> None:
    mock, server = backend
    telemetry = {
        "posthog": {"enabled": True, "api_key": "phc", "redact": False},
        "langfuse": {"enabled": True, "public_key": "pk", "secret_key": "sk"},
    }
    native = _recorded_natively(server, telemetry, stream)
    with capture_telemetry() as wrapped:
        client = pipeclient.wrap(
            openai.OpenAI(base_url=server.url, api_key="sk"), telemetry=telemetry
        )
        answer = client.responses.create(model="m", input=f"hi {CANARY}", stream=stream)
        if stream:
            kinds = [event.type for event in answer]  # type: ignore[union-attr]
            assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        else:
            assert answer.output_text == f"Mock response to: hi {CANARY}"  # type: ignore[union-attr]
        client.close()
    assert sorted(wrapped) == sorted(native) == ["langfuse", "posthog"]
    [event] = wrapped["posthog"]
    props = event["properties"]
    assert event["event"] == "$ai_generation" and props["$ai_stream"] is stream
    assert props["$ai_input_tokens"] > 0 and props["$ai_output_tokens"] > 0
    assert props["request_id"] == mock.requests[-1].headers["x-request-id"]
    assert CANARY in json.dumps(props["$ai_output_choices"])  # content, as asked
    for destination in ("posthog", "langfuse"):
        assert _same_call(wrapped[destination]) == _same_call(native[destination]), destination


def test_responses_keep_the_privacy_audit_and_request_id_rules(
    backend: tuple[MockBackend, MockServer], posthog: CaptureServer, tmp_path: Path
) -> None:
    mock, server = backend
    audit = tmp_path / "audit.jsonl"
    client = pipeclient.wrap(
        openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=1),
        telemetry={**posthog_on(posthog), "audit": {"enabled": True, "path": str(audit)}},
    )
    mock.push(Fault(status=503))
    client.responses.create(model="m", input=f"hi {CANARY}", instructions="be brief")
    stream = client.responses.create(
        model="m", input=[{"role": "user", "content": f"hi {CANARY}"}], stream=True
    )
    assert [event.type for event in stream][-1] == "response.completed"
    client.close()
    ids = [r.headers["x-request-id"] for r in mock.requests]
    assert ids[0] == ids[1] != ids[2]  # one id for both attempts of the first call
    found = events(posthog)
    assert [e["properties"]["request_id"] for e in found] == [ids[0], ids[2]]
    assert [e["properties"]["$ai_stream"] for e in found] == [False, True]
    assert all(e["properties"]["$ai_output_tokens"] > 0 for e in found)
    assert CANARY not in sent(posthog)  # redact = true by default
    lines = audit_lines(audit)
    assert [line["x_request_id"] for line in lines] == [ids[0], ids[2]]
    assert all(line["token_counts"]["output"] > 0 for line in lines)
    assert all(line["endpoint"].endswith("/responses") for line in lines)
    assert CANARY not in audit.read_text() and "sk-test" not in audit.read_text()


def test_a_responses_error_event_ends_the_record_with_the_error(posthog: CaptureServer) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            start_event_stream(self)
            created = {"id": "resp_1", "object": "response", "model": "m", "output": []}
            for event in (
                {"type": "response.created", "sequence_number": 0, "response": created},
                {"type": "error", "sequence_number": 1, "message": "overloaded", "code": "x"},
            ):
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        client = pipeclient.wrap(
            openai.OpenAI(base_url=url, api_key="sk", max_retries=0), telemetry=posthog_on(posthog)
        )
        with contextlib.suppress(Exception):  # openai raises on the error event, or not
            list(client.responses.create(model="m", input="hi", stream=True))
        client.close()
    [event] = events(posthog)
    assert event["properties"]["$ai_is_error"] is True
    assert event["properties"]["$ai_stream"] is True


def test_async_responses_are_recorded_and_the_gateway_rule_holds(
    backend: tuple[MockBackend, MockServer],
    posthog: CaptureServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock, server = backend
    audit = tmp_path / "audit.jsonl"

    async def main() -> list[str]:
        client = pipeclient.wrap(
            openai.AsyncOpenAI(base_url=server.url, api_key="sk"),
            telemetry={
                **posthog_on(posthog),
                "audit": {"enabled": True, "path": str(audit), "durable": True},
            },
        )
        answer = await client.responses.create(model="m", input=f"hi {CANARY}")
        assert len(audit_lines(audit)) == 1  # durable: written before the call returned
        stream = await client.responses.create(model="m", input="hi", stream=True)
        kinds = [event.type async for event in stream]
        await client.close()
        return [answer.output_text, *kinds]

    seen = asyncio.run(main())
    assert seen[0] == f"Mock response to: hi {CANARY}" and seen[-1] == "response.completed"
    ids = [r.headers["x-request-id"] for r in mock.requests]
    found = events(posthog)
    assert [e["properties"]["request_id"] for e in found] == ids
    assert [e["properties"]["$ai_stream"] for e in found] == [False, True]
    assert found[1]["properties"]["$ai_output_tokens"] > 0
    assert [line["x_request_id"] for line in audit_lines(audit)] == ids

    gateway = MockGateway()
    with gateway.serve() as gateway_server:
        monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", gateway_server.url)
        client = pipeclient.wrap(
            openai.AsyncOpenAI(base_url=gateway_server.url, api_key="gw-test-key")
        )

        async def through_the_gateway() -> None:
            await client.responses.create(model="m", input=f"hi {CANARY}")
            await client.close()

        asyncio.run(through_the_gateway())
        [recorded] = gateway.events
        assert (recorded["operation"], recorded["outcome"]) == ("responses", "ok")
        assert CANARY not in b"".join(r.body for r in gateway.telemetry_requests).decode()

        monkeypatch.setenv("DO_NOT_TRACK", "1")
        seen_requests, connections = len(gateway.requests), gateway_server.connections
        refused = pipeclient.wrap(
            openai.AsyncOpenAI(base_url=gateway_server.url, api_key="gw-test-key")
        )

        async def refused_call() -> None:
            await refused.responses.create(model="m", input="hi", stream=True)

        with pytest.raises(pipeclient.GatewayTelemetryRequiredError):
            asyncio.run(refused_call())
        assert (len(gateway.requests), gateway_server.connections) == (seen_requests, connections)


def test_openais_responses_helpers_are_recorded_through_it(
    backend: tuple[MockBackend, MockServer],
) -> None:
    import pydantic

    class Echo(pydantic.BaseModel):
        echo: str

    _, server = backend
    with capture_telemetry() as captured:
        client = pipeclient.wrap(
            openai.OpenAI(base_url=server.url, api_key="sk"),
            telemetry={"posthog": {"enabled": True, "api_key": "phc"}},
        )
        with client.responses.stream(model="m", input="hi") as stream:
            for _ in stream:
                pass
            assert stream.get_final_response().output_text == "Mock response to: hi"
        parsed = client.responses.parse(model="m", input="hi", text_format=Echo)
        assert parsed.output_parsed == Echo(echo="hi")
        client.close()
    found = [event["properties"] for event in captured["posthog"]]
    assert [props["$ai_stream"] for props in found] == [True, False]
    assert all(props["$ai_output_tokens"] > 0 for props in found)
