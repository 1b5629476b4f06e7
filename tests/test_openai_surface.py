"""openai-python's surface: the constructor, `with_options`, `base_url`, status errors'
`.response`, the provider's request id, and returned objects sent back; checked against
the installed `openai` package's own signatures and types, over loopback."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import TypeAdapter

import pipeclient
from pipeclient.testing import Fault, MockBackend, MockServer, capture_telemetry

from .conftest import listen

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
OPENAI_CONSTRUCTOR = (
    "api_key",
    "base_url",
    "organization",
    "project",
    "timeout",
    "max_retries",
    "default_headers",
    "default_query",
    "http_client",
)

# Attributes of a client, openai-python's and pipeclient's alike.
SURFACE = (
    "with_options",
    "copy",
    "base_url",
    "timeout",
    "max_retries",
    "organization",
    "project",
    "chat",
    "embeddings",
    "images",
    "models",
    "moderations",
    "completions",
    "with_raw_response",
    "with_streaming_response",
)


@pytest.fixture
def mock() -> MockBackend:
    return MockBackend(api_key="sk-surface-key")


@pytest.fixture
def server(mock: MockBackend) -> Iterator[MockServer]:
    with mock.serve() as server:
        yield server


def test_the_constructor_takes_openai_pythons_arguments_under_their_names() -> None:
    from pipeclient._client.params import (
        AsyncClientOptions,
        AsyncCopyOptions,
        ClientOptions,
        CopyOptions,
    )

    theirs = inspect.signature(openai.OpenAI.__init__).parameters
    async_theirs = inspect.signature(openai.AsyncOpenAI.__init__).parameters
    for name in OPENAI_CONSTRUCTOR:
        assert name in theirs and name in async_theirs, name  # the names are openai's
        assert name in ClientOptions.__annotations__, name
        assert name in AsyncClientOptions.__annotations__, name
    copy_theirs = set(inspect.signature(openai.OpenAI.copy).parameters)
    for name in set(CopyOptions.__annotations__) - {"no_log", "cache"}:  # pipeclient's own
        assert name in copy_theirs, name
    assert set(CopyOptions.__annotations__) == set(AsyncCopyOptions.__annotations__)
    theirs_client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    ours = pipeclient.Client(backends=[MockBackend().backend()])
    for name in SURFACE:
        assert hasattr(theirs_client, name), name
        assert hasattr(ours, name), name


def test_constructor_arguments_reach_the_wire(server: MockServer, mock: MockBackend) -> None:
    seen: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [seen.append]})
    with pipeclient.Client(
        api_key="sk-surface-key",
        base_url=server.url,
        organization="org-123",
        project="proj_456",
        timeout=12.5,
        max_retries=0,
        default_headers={"X-App": "surface"},
        default_query={"api-version": "2024-10-21"},
        http_client=http,
    ) as client:
        assert str(client.base_url) == str(openai.OpenAI(api_key="k", base_url=server.url).base_url)
        assert isinstance(client.base_url, httpx.URL)
        assert client.max_retries == 0 and client.timeout.read == 12.5
        client.chat.completions.create(model="m", messages=MESSAGES, extra_query={"x": "1"})
    sent = mock.requests[0]
    assert sent.headers["openai-organization"] == "org-123"
    assert sent.headers["openai-project"] == "proj_456"
    assert sent.headers["x-app"] == "surface"
    assert sent.query == "api-version=2024-10-21&x=1"
    assert len(seen) == 1  # the caller's httpx client sent it
    assert seen[0].extensions["timeout"]["read"] == 12.5
    assert not http.is_closed  # the caller's client is the caller's to close
    http.close()


def test_organization_and_project_come_from_openais_variables(
    server: MockServer, mock: MockBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    with pipeclient.Client(api_key="sk-surface-key", base_url=server.url) as client:
        assert (client.organization, client.project) == ("org-env", "proj-env")
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert mock.requests[0].headers["openai-organization"] == "org-env"
    # Backends given explicitly may be other providers: the variables are not theirs.
    with pipeclient.Client(backends=[server.backend()]) as client:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert "openai-organization" not in mock.requests[1].headers


def test_a_wrong_http_client_is_a_clear_error() -> None:
    with pytest.raises(pipeclient.ConfigError, match=r"http_client.*httpx\.Client"):
        pipeclient.Client(backends=[MockBackend().backend()], http_client=httpx.AsyncClient())  # type: ignore[arg-type]
    with pytest.raises(pipeclient.ConfigError, match=r"http_client.*httpx\.AsyncClient"):
        pipeclient.AsyncClient(backends=[MockBackend().backend()], http_client=httpx.Client())  # type: ignore[arg-type]


def test_with_options_changes_only_what_is_given_and_shares_the_rest(
    server: MockServer, mock: MockBackend
) -> None:
    posthog = {"posthog": {"enabled": True, "api_key": "phc_x", "redact": True}}
    with capture_telemetry() as captured:
        client = pipeclient.Client(
            api_key="sk-surface-key",
            base_url=server.url,
            default_headers={"X-A": "1"},
            telemetry=posthog,
        )
        fast = client.with_options(timeout=3.0, max_retries=0, default_headers={"X-B": "2"})
        assert isinstance(fast, pipeclient.Client) and fast is not client
        assert fast.timeout.read == 3.0 and fast.max_retries == 0
        assert client.timeout.read == 600.0 and client.max_retries == 2
        fast.chat.completions.create(model="m", messages=MESSAGES)
        replaced = client.with_options(set_default_headers={"X-C": "3"})
        replaced.chat.completions.create(model="m", messages=MESSAGES)
        assert fast.close() is None  # a copy closes nothing: its owner holds the resources
        client.chat.completions.create(model="m", messages=MESSAGES)
        client.close()
    first, second, third = mock.requests
    assert (first.headers["x-a"], first.headers["x-b"]) == ("1", "2")
    assert "x-a" not in second.headers and second.headers["x-c"] == "3"
    assert "x-b" not in third.headers
    assert len(captured["posthog"]) == 3  # one telemetry pipeline for the client and copies


def test_with_options_with_another_key_is_a_new_client(server: MockServer) -> None:
    other = MockBackend(api_key="sk-other")
    with (
        other.serve() as elsewhere,
        pipeclient.Client(api_key="sk-surface-key", base_url=server.url) as client,
    ):
        moved = client.with_options(base_url=elsewhere.url, api_key="sk-other")
        assert str(moved.base_url) == elsewhere.url + "/"
        moved.chat.completions.create(model="m", messages=MESSAGES)
        moved.close()
    assert len(other.requests) == 1
    with (
        pipeclient.Client(backends=[server.backend()]) as client,
        pytest.raises(pipeclient.ConfigError, match=r"per pipeclient\.Backend"),
    ):
        client.with_options(api_key="sk-x")
    with pytest.raises(TypeError, match="did you mean 'max_retries'"):
        pipeclient.Client(backends=[server.backend()]).with_options(max_retry=1)  # type: ignore[call-arg]


def test_a_status_error_carries_the_response_without_the_key(mock: MockBackend) -> None:
    mock.push(Fault(status=404, body='{"error": {"message": "no such model sk-surface-key"}}'))
    with mock.serve() as server, pipeclient.Client(backends=[server.backend()]) as client:
        with pytest.raises(pipeclient.NotFoundError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES, request_id="rid-1")
    error = caught.value
    assert isinstance(error.response, httpx.Response)
    assert error.response.status_code == 404
    assert error.response.json()["error"]["message"].startswith("no such model")
    assert "sk-surface-key" not in error.response.text  # scrubbed, as the message is
    assert "authorization" not in error.response.request.headers
    assert error.response.request.headers["x-request-id"] == "rid-1"
    assert error.request_id == "rid-1"
    assert error.provider_request_id == error.response.headers["x-request-id"]
    assert error.provider_request_id.startswith("req_")


def test_the_providers_request_id_is_beside_pipeclients(server: MockServer) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        response = client.chat.completions.create(model="m", messages=MESSAGES, request_id="mine-1")
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        chunks = list(stream)
    assert response.request_id == "mine-1"
    assert response.provider_request_id is not None
    assert response.provider_request_id.startswith("req_")
    assert response._request_id == response.provider_request_id  # openai-python's name
    assert stream.provider_request_id == stream.response.headers["x-request-id"]
    assert chunks[0].provider_request_id == stream.provider_request_id
    assert chunks[0].request_id == stream.request_id != stream.provider_request_id


def test_returned_messages_are_accepted_back_in_the_tool_loop(
    server: MockServer, mock: MockBackend
) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
        first = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)
        call = first.choices[0].message.tool_calls
        assert call is not None
        messages.append(first.choices[0].message)
        messages.append({"role": "tool", "tool_call_id": call[0].id, "content": "sunny"})
        client.chat.completions.create(model="m", messages=messages)
    sent = mock.requests[1].json()["messages"]
    adapter: TypeAdapter[Any] = TypeAdapter(openai.types.chat.ChatCompletionMessageParam)
    for message in sent:
        adapter.validate_python(message)
    assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["id"] == call[0].id
    assert [record.outcome for record in records] == ["ok", "ok"]


def test_the_async_client_mirrors_the_surface(server: MockServer, mock: MockBackend) -> None:
    async def main() -> None:
        seen: list[httpx.Request] = []

        async def hook(request: httpx.Request) -> None:
            seen.append(request)

        http = httpx.AsyncClient(event_hooks={"request": [hook]})
        async with pipeclient.AsyncClient(
            api_key="sk-surface-key",
            base_url=server.url,
            organization="org-a",
            default_query={"q": "1"},
            http_client=http,
        ) as client:
            assert str(client.base_url) == server.url + "/"
            copy = client.with_options(max_retries=0, default_headers={"X-B": "2"})
            assert isinstance(copy, pipeclient.AsyncClient)
            answer = await copy.chat.completions.create(model="m", messages=MESSAGES)
            assert answer.provider_request_id is not None
            mock.push(Fault(status=400))
            with pytest.raises(pipeclient.BadRequestError) as caught:
                await client.chat.completions.create(model="m", messages=MESSAGES)
            assert caught.value.response is not None
            assert caught.value.response.status_code == 400
            assert caught.value.provider_request_id is not None
            await copy.close()
        assert len(seen) == 2
        await http.aclose()

    asyncio.run(main())
    first = mock.requests[0]
    assert first.headers["openai-organization"] == "org-a" and first.headers["x-b"] == "2"
    assert first.query == "q=1"


def _public(cls: type[Any]) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_raw_and_streaming_answers_have_openai_pythons_attributes() -> None:
    from openai._legacy_response import LegacyAPIResponse as TheirLegacy
    from openai._response import APIResponse as TheirResponse
    from openai._response import AsyncAPIResponse as TheirAsyncResponse
    from openai._response import AsyncStreamedBinaryAPIResponse as TheirAsyncBinary
    from openai._response import StreamedBinaryAPIResponse as TheirBinary

    from pipeclient._client.raw import (
        APIResponse,
        AsyncAPIResponse,
        AsyncStreamedBinaryAPIResponse,
        LegacyAPIResponse,
        StreamedBinaryAPIResponse,
    )

    for ours, theirs in (
        (LegacyAPIResponse, TheirLegacy),
        (APIResponse, TheirResponse),
        (AsyncAPIResponse, TheirAsyncResponse),
        (StreamedBinaryAPIResponse, TheirBinary),
        (AsyncStreamedBinaryAPIResponse, TheirAsyncBinary),
    ):
        assert _public(theirs) <= _public(ours), sorted(_public(theirs) - _public(ours))
        for name in ("parse", "text", "read", "json", "close", "stream_to_file"):  # sync, async
            if hasattr(theirs, name) and callable(getattr(theirs, name)):
                assert inspect.iscoroutinefunction(getattr(theirs, name)) == (
                    inspect.iscoroutinefunction(getattr(ours, name))
                ), (ours.__name__, name)


def test_with_raw_response_gives_status_headers_and_the_parsed_result(
    server: MockServer, mock: MockBackend
) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        raw = client.with_raw_response.chat.completions.create(
            model="m", messages=MESSAGES, request_id="raw-1"
        )
        embedded = client.with_raw_response.embeddings.create(model="e", input=["a"])
        listed = client.with_raw_response.models.list()
        streamed = client.with_raw_response.chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        )
        chunks = list(streamed.parse())
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    completion = raw.parse()
    openai.types.chat.ChatCompletion.model_validate(completion.model_dump())
    assert raw.request_id == completion.request_id == "raw-1"
    assert raw.provider_request_id == completion.provider_request_id
    assert raw.http_request.headers["x-request-id"] == "raw-1"
    assert "authorization" not in raw.http_request.headers
    assert raw.http_request.url == raw.url and raw.method == "POST"
    assert "Mock reply" in raw.text and raw.content.startswith(b"{")
    assert embedded.parse().data[0].embedding and listed.parse().data[0].id == "mock-model"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert records[0].request_id == "raw-1" and len(records) == 3  # recorded as usual


def test_with_streaming_response_makes_the_call_in_a_block(
    server: MockServer, mock: MockBackend
) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        with client.with_streaming_response.chat.completions.create(
            model="m", messages=MESSAGES
        ) as response:
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["content"].startswith("Mock")
            assert list(response.iter_lines()) == [response.text()]
            assert response.parse().choices[0].message.content == "Mock reply to: hi"
        with client.with_streaming_response.chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        ) as response:
            stream = response.parse()
            first = next(iter(stream))
            assert first.choices[0].delta.role == "assistant"
            with pytest.raises(TypeError, match=r"through \.parse"):
                response.read()
        assert stream.response.is_closed  # leaving the block closed the stream
    assert [record.closed_early for record in records] == [False, True]


def test_the_async_views_answer_as_openai_pythons(server: MockServer) -> None:
    async def main() -> None:
        async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
            raw = await client.with_raw_response.chat.completions.create(
                model="m", messages=MESSAGES
            )
            assert raw.parse().choices[0].message.content == "Mock reply to: hi"
            page = await client.with_raw_response.models.list()
            assert page.status_code == 200 and page.parse().data[0].id == "mock-model"
            async with client.with_streaming_response.chat.completions.create(
                model="m", messages=MESSAGES, stream=True
            ) as response:
                assert response.status_code == 200
                stream = await response.parse()
                texts = [chunk.choices[0].delta.content async for chunk in stream]
                assert "".join(t for t in texts if t) == "Mock reply to: hi"
            async with client.with_streaming_response.embeddings.create(
                model="e", input=["a"]
            ) as response:
                assert (await response.json())["data"][0]["index"] == 0

    asyncio.run(main())
