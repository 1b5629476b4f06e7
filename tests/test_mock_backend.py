"""MockBackend, in-process and over loopback: what it answers is what OpenAI's types expect."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse, ImagesResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pipeclient import Backend
from pipeclient.testing import Fault, MockBackend, MockServer, RecordedRequest, refused_url

from .conftest import wait_until

MOCK_URL = "http://mock.pipeclient.invalid/v1"
HELLO = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello mock world"}]}
TOOLS = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}},
]

Connect = Callable[..., httpx.Client]


@pytest.fixture(params=["transport", "server"])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """connect(mock) -> an httpx.Client talking to `mock` in-process or over loopback."""
    with contextlib.ExitStack() as stack:

        def connect_(mock: MockBackend, **kw: Any) -> httpx.Client:
            if request.param == "transport":
                client = httpx.Client(transport=mock.transport, base_url=MOCK_URL, **kw)
            else:
                server = stack.enter_context(mock.serve())
                client = httpx.Client(base_url=server.url, **kw)
            return stack.enter_context(client)

        yield connect_


def sse_data(lines: Iterator[str] | list[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


def client_stream_lines(client: httpx.Client, body: dict[str, Any]) -> list[str]:
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        return list(response.iter_lines())


def stream_chunks(client: httpx.Client, body: dict[str, Any]) -> list[ChatCompletionChunk]:
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        data = sse_data(response.iter_lines())
    assert data[-1] == "[DONE]"
    return [ChatCompletionChunk.model_validate(json.loads(item)) for item in data[:-1]]


# Chat completions ----------------------------------------------------------------------------


def test_chat_completion_is_an_openai_chat_completion(connect: Connect) -> None:
    response = connect(MockBackend()).post("/chat/completions", json=HELLO)

    assert response.status_code == 200
    completion = ChatCompletion.model_validate(response.json())
    assert completion.id.startswith("chatcmpl-") and len(completion.id) == 9 + 24
    assert (completion.object, completion.created, completion.model) == (
        "chat.completion",
        1700000000,
        "gpt-test",
    )
    assert completion.system_fingerprint == "fp_mock"
    [choice] = completion.choices
    assert choice.message.content == "Mock reply to: hello mock world"
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 6)
    assert completion.usage.total_tokens == 9


@pytest.mark.parametrize("include_usage", [False, True])
def test_streamed_text_is_the_non_streamed_text(connect: Connect, include_usage: bool) -> None:
    client = connect(MockBackend())
    body = {**HELLO, "stream_options": {"include_usage": include_usage}}
    whole = ChatCompletion.model_validate(client.post("/chat/completions", json=HELLO).json())

    chunks = stream_chunks(client, body)

    with_choices = [chunk for chunk in chunks if chunk.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in with_choices)
    assert text == whole.choices[0].message.content
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    raw = [json.loads(item) for item in sse_data(client_stream_lines(client, body))[:-1]]
    if include_usage:
        assert all("usage" in item for item in raw)
        assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
        assert all(chunk.usage is None for chunk in chunks[:-1])
    else:
        assert not any("usage" in item for item in raw)
        assert chunks[-1] is with_choices[-1]


def test_tool_call_answers_stream_and_not(connect: Connect) -> None:
    client = connect(MockBackend())
    pick_other = {"type": "function", "function": {"name": "other"}}
    body = {**HELLO, "tools": TOOLS, "tool_choice": pick_other}

    completion = ChatCompletion.model_validate(client.post("/chat/completions", json=body).json())
    chunks = stream_chunks(client, body)

    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.id.startswith("call_") and len(call.id) == 13 and call.type == "function"
    assert call.function.name == "other"
    assert json.loads(call.function.arguments) == {"echo": "hello mock world"}
    first = chunks[0].choices[0].delta.tool_calls or []
    assert first[0].index == 0 and first[0].function and first[0].function.name == "other"
    streamed = "".join(
        (delta.function.arguments or "") if delta.function else ""
        for chunk in chunks
        for delta in (chunk.choices[0].delta.tool_calls or [])
    )
    assert streamed == call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tools_default_to_the_first_and_tool_choice_none_answers_text() -> None:
    client = httpx.Client(transport=MockBackend().transport, base_url=MOCK_URL)
    auto = client.post("/chat/completions", json={**HELLO, "tools": TOOLS}).json()
    none = client.post("/chat/completions", json={**HELLO, "tools": TOOLS, "tool_choice": "none"})

    assert auto["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    assert none.json()["choices"][0]["message"]["content"].startswith("Mock reply to:")


def test_json_mode_n_choices_and_content_parts() -> None:
    client = httpx.Client(transport=MockBackend().transport, base_url=MOCK_URL)
    parts = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
        {"type": "text", "text": "this cat"},
    ]
    body = {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": parts}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "n": 3,
    }

    completion = ChatCompletion.model_validate(client.post("/chat/completions", json=body).json())

    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    for choice in completion.choices:
        assert json.loads(choice.message.content or "") == {"echo": "describe this cat"}
    assert completion.usage is not None and completion.usage.prompt_tokens == 5


def test_reply_as_text_or_callable() -> None:
    seen: list[dict[str, Any]] = []

    def reply(request: dict[str, Any]) -> str:
        seen.append(request)
        return f"{len(request['messages'])} messages"

    fixed = httpx.Client(transport=MockBackend(reply="fixed text").transport, base_url=MOCK_URL)
    computed = httpx.Client(transport=MockBackend(reply=reply).transport, base_url=MOCK_URL)

    fixed_text = fixed.post("/chat/completions", json=HELLO).json()
    computed_text = computed.post("/chat/completions", json=HELLO).json()

    assert fixed_text["choices"][0]["message"]["content"] == "fixed text"
    assert computed_text["choices"][0]["message"]["content"] == "1 messages"
    assert seen == [HELLO]


# Embeddings, images, models, errors ---------------------------------------------------------


def test_embeddings_float_and_base64_agree(connect: Connect) -> None:
    client = connect(MockBackend(embedding_dim=8))
    body = {"model": "emb", "input": ["first text", "second one here"]}

    floats = client.post("/embeddings", json=body).json()
    packed = client.post("/embeddings", json={**body, "encoding_format": "base64"}).json()
    wide = client.post("/embeddings", json={"model": "emb", "input": "x", "dimensions": 20}).json()

    parsed = CreateEmbeddingResponse.model_validate(floats)
    assert [item.index for item in parsed.data] == [0, 1] and parsed.model == "emb"
    assert parsed.usage.prompt_tokens == 5 and parsed.usage.total_tokens == 5
    vectors = [item.embedding for item in parsed.data]
    assert all(len(v) == 8 and all(-1.0 <= x <= 1.0 for x in v) for v in vectors)
    assert vectors[0] != vectors[1]
    for item, vector in zip(packed["data"], vectors, strict=True):
        assert list(struct.unpack("<8f", base64.b64decode(item["embedding"]))) == vector
    assert len(CreateEmbeddingResponse.model_validate(wide).data[0].embedding) == 20
    assert client.post("/embeddings", json=body).json() == floats  # deterministic


def test_images_url_and_b64(connect: Connect) -> None:
    client = connect(MockBackend())

    urls = client.post("/images/generations", json={"prompt": "a cat", "n": 2}).json()
    b64 = client.post(
        "/images/generations", json={"prompt": "a cat", "response_format": "b64_json"}
    ).json()

    parsed = ImagesResponse.model_validate(urls)
    assert parsed.created == 1700000000 and parsed.data is not None and len(parsed.data) == 2
    assert all(
        (image.url or "").startswith("https://mock.pipeclient.invalid/images/")
        for image in parsed.data
    )
    assert parsed.data[0].url != parsed.data[1].url
    image = ImagesResponse.model_validate(b64).data[0]  # type: ignore[index]
    assert base64.b64decode(image.b64_json or "").startswith(b"\x89PNG\r\n\x1a\n")


def test_models_unknown_paths_and_bad_json(connect: Connect) -> None:
    client = connect(MockBackend())

    models = client.get("/models")
    missing = client.post("/fine_tuning/jobs", json={"model": "x"})
    malformed = client.post(
        "/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert Model.model_validate(models.json()["data"][0]).id == "mock-model"
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (POST /v1/fine_tuning/jobs)"
    assert malformed.status_code == 400
    assert set(malformed.json()["error"]) == {"message", "type", "param", "code"}
    assert malformed.json()["error"]["type"] == "invalid_request_error"


def test_the_openai_sdk_accepts_every_answer() -> None:
    mock = MockBackend()
    with httpx.Client(transport=mock.transport) as http_client:
        # openai types http_client as httpx2.Client but accepts httpx.Client too
        sdk = openai.OpenAI(base_url=MOCK_URL, api_key="k", http_client=http_client)  # type: ignore[arg-type]
        hi: Any = [{"role": "user", "content": "hi"}]

        completion = sdk.chat.completions.create(model="m", messages=hi)
        stream = sdk.chat.completions.create(
            model="m", messages=hi, stream=True, stream_options={"include_usage": True}
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        embedding = sdk.embeddings.create(model="e", input="hi")  # the SDK asks for base64
        image = sdk.images.generate(prompt="a cat")

    assert streamed == completion.choices[0].message.content == "Mock reply to: hi"
    assert len(embedding.data[0].embedding) == 8
    assert image.data and image.data[0].url
    assert mock.requests[2].json()["encoding_format"] == "base64"


# Faults, authentication, recording -----------------------------------------------------------


def test_status_fault_with_retry_after_then_normal(connect: Connect) -> None:
    mock = MockBackend()
    client = connect(mock)
    mock.push(Fault(status=429, retry_after=0.05, headers={"retry-after-ms": "50"}), times=2)

    answers = [client.post("/chat/completions", json=HELLO) for _ in range(3)]

    assert [r.status_code for r in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "0.05"
    assert answers[0].headers["retry-after-ms"] == "50"
    error = answers[0].json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "429" in error["message"]
    assert len(mock.requests) == 3


def test_html_fault_body(connect: Connect) -> None:
    mock = MockBackend()
    client = connect(mock)
    mock.push(Fault(status=502, body="<html>Bad Gateway</html>", content_type="text/html"))

    response = client.get("/models")

    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert response.text == "<html>Bad Gateway</html>"


def test_delay_fault_delays_the_normal_answer(connect: Connect) -> None:
    mock = MockBackend()
    client = connect(mock)
    mock.push(Fault(delay=0.1, retry_after=1))

    started = time.monotonic()
    response = client.get("/models")

    assert time.monotonic() - started >= 0.1
    assert response.status_code == 200 and response.headers["retry-after"] == "1"


def test_delay_fault_lets_the_client_time_out(connect: Connect) -> None:
    mock = MockBackend()
    client = connect(mock, timeout=0.1)
    mock.push(Fault(delay=1.0))

    with pytest.raises(httpx.TimeoutException):
        client.get("/models")


def test_disconnect_mid_stream_raises_while_reading(connect: Connect) -> None:
    mock = MockBackend()
    client = connect(mock)
    mock.push(Fault(disconnect_after_chunks=3))
    received: list[str] = []

    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json={**HELLO, "stream": True}) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            received.extend(sse_data([line]))

    assert len(received) == 3 and "[DONE]" not in received
    assert client.post("/chat/completions", json=HELLO).status_code == 200


def test_disconnect_cuts_a_plain_body(connect: Connect) -> None:
    mock = MockBackend()
    client = connect(mock)
    mock.push(Fault(disconnect_after_chunks=0))

    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=HELLO)


def test_refuse_in_process_is_a_connect_error() -> None:
    mock = MockBackend()
    client = httpx.Client(transport=mock.transport, base_url=MOCK_URL)
    mock.push(Fault(refuse=True))

    with pytest.raises(httpx.ConnectError):
        client.get("/models")

    assert client.get("/models").status_code == 200
    assert [r.path for r in mock.requests] == ["/v1/models"]  # refused requests never arrived


@pytest.mark.parametrize("kept_alive", [False, True])
def test_refuse_on_the_server_is_a_transport_error(kept_alive: bool) -> None:
    mock = MockBackend()
    with mock.serve() as server, httpx.Client(base_url=server.url) as client:
        if kept_alive:
            assert client.get("/models").status_code == 200
        mock.push(Fault(refuse=True))

        with pytest.raises(httpx.TransportError):
            client.get("/models")

        assert client.get("/models").status_code == 200
    assert len(mock.requests) == 1 + kept_alive


def test_refused_url_refuses() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(refused_url() + "/models")


def test_api_key_is_checked(connect: Connect) -> None:
    client = connect(MockBackend(api_key="sk-right"))

    missing = client.get("/models")
    wrong = client.get("/models", headers={"Authorization": "Bearer sk-wrong"})
    right = client.get("/models", headers={"Authorization": "Bearer sk-right"})

    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-" not in wrong.text


def test_requests_are_recorded_with_headers_and_body(connect: Connect) -> None:
    mock = MockBackend()
    client = connect(mock)
    mock.push(Fault(status=500))

    client.post("/chat/completions", json=HELLO, headers={"X-Request-Id": "abc-123"})
    client.get("/models?limit=1")

    first, second = mock.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["x-request-id"] == "abc-123"
    assert first.json() == HELLO and json.loads(first.body) == HELLO
    assert (second.method, second.path, second.body) == ("GET", "/v1/models", b"")
    mock.push(Fault(status=500))
    mock.reset()
    assert mock.requests == []
    assert client.get("/models").status_code == 200


def test_faults_are_consumed_once_under_concurrency() -> None:
    mock = MockBackend()
    mock.push(Fault(status=503), times=5)
    limits = httpx.Limits(max_connections=12)
    with mock.serve() as server, httpx.Client(base_url=server.url, limits=limits) as client:
        statuses: list[int] = []

        def call() -> None:
            statuses.append(client.get("/models").status_code)

        threads = [threading.Thread(target=call) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(statuses) == [200] * 7 + [503] * 5
    assert len(mock.requests) == 12


def test_backends_point_at_the_mock() -> None:
    mock = MockBackend(api_key="sk-mock")
    in_process = mock.backend(weight=2)
    assert isinstance(in_process, Backend)
    assert (in_process.name, in_process.base_url, in_process.weight) == ("mock", MOCK_URL, 2)
    assert in_process.transport is mock.transport
    assert in_process.api_key.get_secret_value() == "sk-mock"
    with mock.serve() as server:
        served = server.backend(name="loopback")
        assert (served.name, served.base_url, served.transport) == ("loopback", server.url, None)
    assert MockBackend().backend().api_key.get_secret_value() == "mock-key"


# Async, the server's own behaviour -----------------------------------------------------------


def test_async_client_through_the_same_transport() -> None:
    mock = MockBackend(chunk_delay=0.001)  # the delays take the async path under test

    async def main() -> tuple[str, str]:
        async with httpx.AsyncClient(transport=mock.transport, base_url=MOCK_URL) as client:
            whole = (await client.post("/chat/completions", json=HELLO)).json()
            pieces = []
            async with client.stream(
                "POST", "/chat/completions", json={**HELLO, "stream": True}
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        chunk = ChatCompletionChunk.model_validate_json(line[6:])
                        pieces.append(chunk.choices[0].delta.content or "")
            mock.push(Fault(disconnect_after_chunks=1, delay=0.01))
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("/chat/completions", json={**HELLO, "stream": True})
            return whole["choices"][0]["message"]["content"], "".join(pieces)

    whole, streamed = asyncio.run(main())
    assert whole == streamed == "Mock reply to: hello mock world"


def test_keep_alive_reuses_one_connection() -> None:
    mock = MockBackend()
    with mock.serve() as server, httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.post("/chat/completions", json={**HELLO, "stream": True}).is_success
            assert client.get("/models").is_success
        assert server.connections == 1


def test_a_client_leaving_a_slow_stream_counts_as_aborted() -> None:
    # chunk_delay: the stream is still being sent when the client leaves it
    mock = MockBackend(reply="word " * 400, chunk_delay=0.005)
    with mock.serve() as server, httpx.Client(base_url=server.url) as client:
        with client.stream("POST", "/chat/completions", json={**HELLO, "stream": True}) as r:
            for index, _line in enumerate(r.iter_lines()):
                if index == 3:
                    break
        wait_until(lambda: server.aborted_streams, 5, "the server to see the stream aborted")
        assert server.aborted_streams == 1


@pytest.mark.timeout(15)  # the fault below hangs for 30 s: waiting for it would time out
def test_leaving_serve_does_not_wait_for_hanging_clients() -> None:
    mock = MockBackend()
    mock.push(Fault(delay=30))
    errors: list[BaseException] = []
    with mock.serve() as server:
        idle = socket.create_connection(("127.0.0.1", urlsplit(server.url).port or 0))

        def hang() -> None:
            try:
                httpx.get(server.url + "/models", timeout=10)
            except httpx.HTTPError as exc:
                errors.append(exc)

        hanging = threading.Thread(target=hang)
        hanging.start()
        wait_until(lambda: mock.requests, 5, "the hanging request to reach the server")
    assert isinstance(server, MockServer)
    hanging.join(timeout=5)
    idle.close()
    assert len(errors) == 1 and isinstance(errors[0], httpx.TransportError)
