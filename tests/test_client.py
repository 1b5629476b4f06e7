"""The client against MockBackend, in-process and over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import openai.types as oai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion as OAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OAIChatCompletionChunk

import pipeclient
from pipeclient.testing import MockBackend, MockServer

from .conftest import listen

MESSAGES = [{"role": "user", "content": "tell me about lighthouses"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def mock() -> MockBackend:
    return MockBackend()


@pytest.fixture
def server(mock: MockBackend) -> Iterator[MockServer]:
    with mock.serve() as server:
        yield server


@pytest.fixture(params=["transport", "loopback"])
def client(request: pytest.FixtureRequest, mock: MockBackend) -> Iterator[pipeclient.Client]:
    if request.param == "transport":
        with pipeclient.Client(backends=[mock.backend()]) as client:
            yield client
    else:
        with mock.serve() as server, pipeclient.Client(backends=[server.backend()]) as client:
            yield client


def test_chat_completion_matches_openai_types(client: pipeclient.Client) -> None:
    response = client.chat.completions.create(model="gpt-x", messages=MESSAGES, temperature=0.2)
    assert response.choices[0].message.content == "Mock reply to: tell me about lighthouses"
    assert response.model == "gpt-x"
    assert response.usage is not None and response.usage.prompt_tokens == 4
    assert response.id.startswith("chatcmpl-")
    OAIChatCompletion.model_validate(response.model_dump())
    assert response.request_id  # a fresh UUID
    assert "request_id" not in response.model_dump()


def test_request_body_is_the_api_body(client: pipeclient.Client, mock: MockBackend) -> None:
    client.chat.completions.create(
        model="gpt-x",
        messages=MESSAGES,
        temperature=0.5,
        max_tokens=7,
        request_id="rid-1",
        extra_body={"top_k": 3},
        extra_headers={"X-Custom": "yes"},
    )
    seen = mock.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.json() == {
        "model": "gpt-x",
        "messages": MESSAGES,
        "temperature": 0.5,
        "max_tokens": 7,
        "top_k": 3,
    }
    assert seen.headers["x-request-id"] == "rid-1"
    assert seen.headers["x-custom"] == "yes"
    assert seen.headers["authorization"] == "Bearer mock-key"


def test_tool_calls_and_response_format(client: pipeclient.Client) -> None:
    response = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    call = response.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "get_weather"
    assert json.loads(call[0].function.arguments) == {"echo": "tell me about lighthouses"}
    assert response.choices[0].finish_reason == "tool_calls"
    OAIChatCompletion.model_validate(response.model_dump())

    response = client.chat.completions.create(
        model="m", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert json.loads(response.choices[0].message.content or "") == {
        "echo": "tell me about lighthouses"
    }


def test_stream_has_the_shape_of_a_plain_stream(
    client: pipeclient.Client, mock: MockBackend
) -> None:
    records = listen(client)
    plain = client.chat.completions.create(model="m", messages=MESSAGES)
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    for chunk in chunks:
        OAIChatCompletionChunk.model_validate(chunk.model_dump())
        assert chunk.choices, "the usage-only chunk pipeclient asked for must not be yielded"
        assert chunk.usage is None
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The client asked for usage on the caller's behalf, and recorded it.
    assert mock.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert records[-1].input_tokens == 4
    assert records[-1].output_tokens == len(text.split())
    assert records[-1].ttft_ms is not None


def test_stream_with_caller_usage_keeps_the_usage_chunk(client: pipeclient.Client) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 4


def test_backend_without_stream_usage_support(mock: MockBackend) -> None:
    with pipeclient.Client(backends=[mock.backend(stream_usage=False)]) as client:
        records = listen(client)
        chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert "stream_options" not in mock.requests[-1].json()
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert records[-1].input_tokens is None


def test_streamed_tool_calls(client: pipeclient.Client) -> None:
    chunks = list(
        client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS, stream=True)
    )
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        for call in (chunk.choices[0].delta.tool_calls or [])
        if call.function
    )
    assert json.loads(arguments) == {"echo": "tell me about lighthouses"}
    for chunk in chunks:
        OAIChatCompletionChunk.model_validate(chunk.model_dump())


def test_embeddings_and_images_match_openai_types(client: pipeclient.Client) -> None:
    embeddings = client.embeddings.create(model="e", input=["a", "b"])
    assert [item.index for item in embeddings.data] == [0, 1]
    oai.CreateEmbeddingResponse.model_validate(embeddings.model_dump())
    again = client.embeddings.create(model="e", input=["a", "b"])
    assert again.data[0].embedding == embeddings.data[0].embedding  # deterministic

    encoded = client.embeddings.create(model="e", input="a", encoding_format="base64")
    assert isinstance(encoded.data[0].embedding, str)
    assert len(base64.b64decode(encoded.data[0].embedding)) == 4 * 8

    image = client.images.generate(model="i", prompt="a lighthouse", size="1024x1024")
    oai.ImagesResponse.model_validate(image.model_dump())
    assert image.data and image.data[0].url
    b64 = client.images.generate(model="i", prompt="x", response_format="b64_json")
    assert b64.data and base64.b64decode(b64.data[0].b64_json or "").startswith(b"\x89PNG")


def test_connections_are_reused(mock: MockBackend, server: MockServer) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        for _ in range(5):
            client.chat.completions.create(model="m", messages=MESSAGES)
        for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            pass
        client.embeddings.create(model="e", input="x")
    assert server.connections == 1


def test_async_client(mock: MockBackend, server: MockServer) -> None:
    async def run() -> tuple[Any, ...]:
        async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
            records = listen(client)
            response = await client.chat.completions.create(model="m", messages=MESSAGES)
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            embeddings = await client.embeddings.create(model="e", input="x")
            image = await client.images.generate(prompt="x")
            return response, text, embeddings, image, records

    response, text, embeddings, image, records = asyncio.run(run())
    OAIChatCompletion.model_validate(response.model_dump())
    assert text == response.choices[0].message.content
    oai.CreateEmbeddingResponse.model_validate(embeddings.model_dump())
    oai.ImagesResponse.model_validate(image.model_dump())
    assert [record.operation for record in records] == ["chat", "chat", "embeddings", "images"]
    assert all(record.outcome == "ok" for record in records)


def test_async_client_in_process(mock: MockBackend) -> None:
    async def run() -> str:
        async with pipeclient.AsyncClient(backends=[mock.backend()]) as client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            async with stream:
                return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(run()) == "Mock reply to: tell me about lighthouses"


def test_close_is_idempotent_and_client_is_reusable_after(mock: MockBackend) -> None:
    client = pipeclient.Client(backends=[mock.backend()])
    client.chat.completions.create(model="m", messages=MESSAGES)
    client.close()
    client.close()
    # A closed client opens new connections on the next call rather than failing.
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices


def test_client_from_environment(monkeypatch: pytest.MonkeyPatch, server: MockServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "mock-key")
    with pipeclient.Client() as client:
        assert client.backends[0].base_url == server.url
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    monkeypatch.setenv("PIPECLIENT_BASE_URL", server.url + "/")
    monkeypatch.setenv("PIPECLIENT_API_KEY", "other")
    assert pipeclient.Client().backends[0].api_key.get_secret_value() == "other"


def test_explicit_arguments_beat_environment(
    monkeypatch: pytest.MonkeyPatch, server: MockServer
) -> None:
    monkeypatch.setenv("PIPECLIENT_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("PIPECLIENT_API_KEY", "env-key")
    with pipeclient.Client(base_url=server.url, api_key="arg-key") as client:
        assert client.backends[0].base_url == server.url
        assert client.backends[0].api_key.get_secret_value() == "arg-key"


# -- the httpx clients pipeclient makes ---------------------------------------------------


def test_a_set_cookie_answer_is_neither_kept_nor_sent_back(
    mock: MockBackend, server: MockServer
) -> None:
    # pipeclient's own httpx clients send requests it builds, which carry no jar's cookies:
    # keeping what a backend sets (a load balancer's) would cost every call for nothing.
    mock.push(pipeclient.testing.Fault(headers={"set-cookie": "lb=node-7; Path=/"}))
    with pipeclient.Client(backends=[server.backend()]) as client:
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        (http,) = client._http.values()
        assert len(http.cookies.jar) == 0
    assert [request.headers.get("cookie") for request in mock.requests] == [None, None]


def test_a_callers_http_client_keeps_its_cookie_jar(mock: MockBackend, server: MockServer) -> None:
    import httpx

    mock.push(pipeclient.testing.Fault(headers={"set-cookie": "lb=node-7; Path=/"}))
    with httpx.Client() as http:
        with pipeclient.Client(base_url=server.url, api_key="sk-test", http_client=http) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert http.cookies.get("lb") == "node-7"  # httpx's behaviour, untouched


def test_each_endpoint_url_is_parsed_once_and_queries_still_merge(
    mock: MockBackend, server: MockServer
) -> None:
    with pipeclient.Client(
        base_url=server.url, api_key="sk-test", default_query={"api-version": "2024-10-21"}
    ) as client:
        for index in range(3):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_query={"n": str(index)}
            )
        client.embeddings.create(model="text-embedding-3-small", input="hi")
        assert sorted(str(url) for url in client._urls.values()) == [
            server.url + "/chat/completions",
            server.url + "/embeddings",
        ]
    assert [(request.path, request.query) for request in mock.requests] == [
        ("/v1/chat/completions", "api-version=2024-10-21&n=0"),
        ("/v1/chat/completions", "api-version=2024-10-21&n=1"),
        ("/v1/chat/completions", "api-version=2024-10-21&n=2"),
        ("/v1/embeddings", "api-version=2024-10-21"),
    ]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(st.text(), _JSON, min_size=1, max_size=5),
    options=st.none() | st.dictionaries(st.text(max_size=5), _JSON, max_size=2),
)
def test_asking_for_stream_usage_gives_the_bytes_a_whole_encoding_would(
    body: dict[str, Any], options: dict[str, Any] | None
) -> None:
    from pipeclient._client.call import encode_body, with_usage

    if options is not None:
        body = {**body, "stream_options": options}
    expected = encode_body({**body, "stream_options": {**(options or {}), "include_usage": True}})
    assert with_usage(body, encode_body(body)) == expected
    assert json.loads(expected)["stream_options"]["include_usage"] is True


def test_response_types_start_with_the_private_state_pydantic_would_give() -> None:
    from pydantic import BaseModel
    from pydantic._internal._model_construction import init_private_attributes

    import pipeclient.types as types

    responses = [
        value
        for value in vars(types).values()
        if isinstance(value, type) and issubclass(value, types._Response)
    ]
    assert len(responses) >= 10
    for model in responses:
        quick = model.model_construct()
        reference = model.model_construct()
        object.__setattr__(reference, "__pydantic_private__", None)
        init_private_attributes(reference, None)
        assert quick.__pydantic_private__ == reference.__pydantic_private__, model
        assert getattr(model.model_post_init, "_pipeclient_quick", False), model
        # each instance its own state
        assert quick.__pydantic_private__ is not model.model_construct().__pydantic_private__

    class Annotated(types.ChatCompletion):  # a subclass with a post-init of its own keeps it
        def model_post_init(self, context: Any, /) -> None:
            object.__setattr__(self, "seen", True)

    annotated = Annotated.model_validate({"id": "x", "choices": []})
    assert annotated.__dict__.get("seen") is True and annotated.request_id == ""
    assert isinstance(annotated, BaseModel)
