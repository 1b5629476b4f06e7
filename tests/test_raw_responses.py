"""`with_raw_response` / `with_streaming_response`: typed as openai-python's (checked by
mypy on a file of `assert_type`s) and answering so over loopback, for every namespace."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pydantic
import pytest

import pipeclient
from pipeclient.testing import MockBackend, MockServer
from pipeclient.types import HttpxBinaryResponseContent, ParsedChatCompletion

from .conftest import listen, mypy_strict

MESSAGES = [{"role": "user", "content": "hi"}]
ROOT = Path(__file__).resolve().parent.parent

TYPED = """from typing_extensions import assert_type

import pydantic

import pipeclient
from pipeclient import APIResponse, AsyncAPIResponse, AsyncStream, LegacyAPIResponse, Stream
from pipeclient._client.raw import AsyncStreamedBinaryAPIResponse, StreamedBinaryAPIResponse
from pipeclient.types import (
    ChatCompletion, ChatCompletionChunk, Completion, CreateEmbeddingBase64Response,
    CreateEmbeddingResponse, HttpxBinaryResponseContent, ImagesResponse, Model,
    ModerationCreateResponse, ParsedChatCompletion, Response, ResponseStreamEvent, SyncPage,
    Transcription,
)

M = [{"role": "user", "content": "hi"}]


class Answer(pydantic.BaseModel):
    city: str


def sync(client: pipeclient.Client) -> None:
    raw = client.with_raw_response
    created = raw.chat.completions.create(model="m", messages=M)
    assert_type(created, LegacyAPIResponse[ChatCompletion])
    assert_type(created.parse(), ChatCompletion)
    assert_type(created.status_code, int)
    assert_type(created.request_id, str)
    assert_type(created.provider_request_id, str | None)
    streamed = raw.chat.completions.create(model="m", messages=M, stream=True)
    assert_type(streamed.parse(), Stream[ChatCompletionChunk])
    parsed = raw.chat.completions.parse(model="m", messages=M, response_format=Answer)
    assert_type(parsed.parse(), ParsedChatCompletion[Answer])
    assert_type(raw.embeddings.create(model="e", input="x").parse(), CreateEmbeddingResponse)
    packed = raw.embeddings.create(model="e", input="x", encoding_format="base64")
    assert_type(packed.parse(), CreateEmbeddingBase64Response)
    assert_type(raw.images.generate(prompt="p").parse(), ImagesResponse)
    assert_type(raw.models.list().parse(), SyncPage[Model])
    assert_type(raw.models.retrieve("m").parse(), Model)
    assert_type(raw.moderations.create(input="x").parse(), ModerationCreateResponse)
    assert_type(raw.completions.create(model="m", prompt="p").parse(), Completion)
    legacy = raw.completions.create(model="m", prompt="p", stream=True)
    assert_type(legacy.parse(), Stream[Completion])
    assert_type(raw.responses.create(model="m", input="hi").parse(), Response)
    events = raw.responses.create(model="m", input="hi", stream=True)
    assert_type(events.parse(), Stream[ResponseStreamEvent])
    heard = raw.audio.transcriptions.create(file=b"x", model="w")
    assert_type(heard.parse(), Transcription)
    said = raw.audio.speech.create(input="x", model="t", voice="alloy")
    assert_type(said.parse(), HttpxBinaryResponseContent)
    view = client.with_streaming_response
    with view.chat.completions.create(model="m", messages=M) as response:
        assert_type(response, APIResponse[ChatCompletion])
        assert_type(response.parse(), ChatCompletion)
        assert_type(response.read(), bytes)
    with view.chat.completions.create(model="m", messages=M, stream=True) as response_stream:
        assert_type(response_stream.parse(), Stream[ChatCompletionChunk])
    with view.responses.create(model="m", input="hi") as answered:
        assert_type(answered.parse(), Response)
    with view.audio.speech.create(input="x", model="t", voice="alloy") as audio:
        assert_type(audio, StreamedBinaryAPIResponse)
        assert_type(audio.parse(), bytes)
        audio.stream_to_file("out.wav")
    # openai-python's other spelling: the view hangs off each namespace too
    own = client.chat.completions.with_raw_response.create(model="m", messages=M)
    assert_type(own, LegacyAPIResponse[ChatCompletion])
    chat_view = client.chat.with_raw_response.completions.parse(
        model="m", messages=M, response_format=Answer
    )
    assert_type(chat_view.parse(), ParsedChatCompletion[Answer])
    with client.responses.with_streaming_response.create(model="m", input="hi") as own_stream:
        assert_type(own_stream, APIResponse[Response])
    spoken = client.audio.speech.with_raw_response.create(input="x", model="t", voice="alloy")
    assert_type(spoken.parse(), HttpxBinaryResponseContent)
    with client.audio.with_streaming_response.speech.create(
        input="x", model="t", voice="alloy"
    ) as own_audio:
        assert_type(own_audio, StreamedBinaryAPIResponse)
    assert_type(client.models.with_raw_response.list().parse(), SyncPage[Model])


async def asynchronous(client: pipeclient.AsyncClient) -> None:
    raw = client.with_raw_response
    created = await raw.chat.completions.create(model="m", messages=M)
    assert_type(created, LegacyAPIResponse[ChatCompletion])
    assert_type(created.parse(), ChatCompletion)
    streamed = await raw.chat.completions.create(model="m", messages=M, stream=True)
    assert_type(streamed.parse(), AsyncStream[ChatCompletionChunk])
    parsed = await raw.chat.completions.parse(model="m", messages=M, response_format=Answer)
    assert_type(parsed.parse(), ParsedChatCompletion[Answer])
    assert_type((await raw.models.list()).parse(), SyncPage[Model])
    assert_type((await raw.responses.create(model="m", input="hi")).parse(), Response)
    events = await raw.responses.create(model="m", input="hi", stream=True)
    assert_type(events.parse(), AsyncStream[ResponseStreamEvent])
    said = await raw.audio.speech.create(input="x", model="t", voice="alloy")
    assert_type(said.parse(), HttpxBinaryResponseContent)
    view = client.with_streaming_response
    async with view.chat.completions.create(model="m", messages=M) as response:
        assert_type(response, AsyncAPIResponse[ChatCompletion])
        assert_type(await response.parse(), ChatCompletion)
    async with view.completions.create(model="m", prompt="p", stream=True) as legacy:
        assert_type(await legacy.parse(), AsyncStream[Completion])
    async with view.audio.speech.create(input="x", model="t", voice="alloy") as audio:
        assert_type(audio, AsyncStreamedBinaryAPIResponse)
        await audio.stream_to_file("out.wav")
    own = await client.chat.completions.with_raw_response.create(model="m", messages=M)
    assert_type(own, LegacyAPIResponse[ChatCompletion])
    async with client.embeddings.with_streaming_response.create(model="e", input="x") as emb:
        assert_type(await emb.parse(), CreateEmbeddingResponse)


def typos(client: pipeclient.Client) -> None:
    client.with_raw_response.chat.completions.create(model="m", messages=M, temprature=1)
    client.with_streaming_response.responses.create(model="m", input="hi", max_output_token=5)
"""


@pytest.mark.timeout(180)
def test_mypy_types_the_views_as_openai_python_does(tmp_path: Path) -> None:
    snippet = tmp_path / "views.py"
    snippet.write_text(TYPED)
    result = mypy_strict(snippet)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = TYPED.splitlines()
    typo_start = next(i for i, line in enumerate(lines, 1) if line.startswith("def typos"))
    assert [e for e in errors if int(e.split(":")[1]) < typo_start] == [], result.stdout
    flagged = {int(line.split(":")[1]) for line in errors}
    assert flagged == {typo_start + 1, typo_start + 2}, result.stdout  # each typo caught
    assert '"temprature"' in result.stdout and '"max_output_token"' in result.stdout


class Answer(pydantic.BaseModel):
    echo: str


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockBackend().serve() as served:
        yield served


def _check(answer: Any, operation_path: str) -> Any:
    """The HTTP facts every raw answer has; its parsed result."""
    assert answer.status_code == 200
    assert answer.http_request.url.path.endswith(operation_path)
    assert answer.http_request.headers["x-request-id"] == answer.request_id
    assert "authorization" not in answer.http_request.headers
    return answer.parse()


def test_every_namespace_answers_raw(server: MockServer, tmp_path: Path) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        raw = client.with_raw_response
        parsed = _check(
            raw.chat.completions.parse(model="m", messages=MESSAGES, response_format=Answer),
            "/chat/completions",
        )
        assert isinstance(parsed, ParsedChatCompletion)
        assert parsed.choices[0].message.content is not None
        openai.types.chat.ParsedChatCompletion[Any].model_validate(parsed.model_dump())
        assert _check(raw.images.generate(prompt="a cat"), "/images/generations").data
        assert _check(raw.models.retrieve("mock-x"), "/models/mock-x").id == "mock-x"
        moderation = _check(raw.moderations.create(input="x"), "/moderations")
        assert moderation.results[0].flagged is False
        legacy = _check(raw.completions.create(model="m", prompt="p"), "/completions")
        assert legacy.choices[0].text.endswith("completed: p")
        legacy_chunks = list(_check(raw.completions.create(model="m", prompt="p", stream=True), ""))
        assert legacy_chunks and legacy_chunks[0].choices
        response = _check(raw.responses.create(model="m", input="hi"), "/responses")
        assert response.output_text == "Mock response to: hi"
        events = raw.responses.create(model="m", input="hi", stream=True)
        assert events.headers["content-type"].startswith("text/event-stream")
        kinds = [event.type for event in events.parse()]
        assert kinds[-1] == "response.completed"
        heard = _check(
            raw.audio.transcriptions.create(file=("a.wav", b"RIFF"), model="w"),
            "/audio/transcriptions",
        )
        assert isinstance(heard.text, str)
        said = raw.audio.speech.create(input="two words", model="t", voice="alloy")
        audio = _check(said, "/audio/speech")
        assert isinstance(audio, HttpxBinaryResponseContent)
        assert said.headers["content-type"] == "audio/mpeg" and audio.content.startswith(b"RIFF")
    # Each inference call is recorded once, as without the view.
    assert [r.operation for r in records] == [
        "chat",
        "images",
        "moderations",
        "text_completion",
        "text_completion",
        "responses",
        "responses",
        "transcriptions",
        "speech",
    ]
    assert all(r.error is None for r in records)


def test_each_namespace_has_its_own_views_answering_as_the_clients(server: MockServer) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        created = client.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, request_id="req-own-view"
        )
        completion = _check(created, "/chat/completions")
        assert created.request_id == "req-own-view"
        assert completion.choices[0].message.content
        nested = client.chat.with_raw_response.completions.create(model="m", messages=MESSAGES)
        assert _check(nested, "/chat/completions").object == "chat.completion"
        with client.responses.with_streaming_response.create(model="m", input="hi") as answer:
            assert answer.parse().output_text == "Mock response to: hi"
        said = client.audio.speech.with_raw_response.create(input="x", model="t", voice="alloy")
        assert _check(said, "/audio/speech").content.startswith(b"RIFF")
        assert client.models.with_raw_response.list().parse().data[0].id == "mock-model"
    assert [r.operation for r in records] == ["chat", "chat", "responses", "speech"]
    assert records[0].request_id == "req-own-view"

    async def main() -> None:
        async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=MESSAGES
            )
            assert _check(raw, "/chat/completions").choices
            view = client.embeddings.with_streaming_response
            async with view.create(model="e", input="x") as embedded:
                assert (await embedded.parse()).data[0].embedding

    asyncio.run(main())


def test_streaming_views_answer_in_a_block(server: MockServer, tmp_path: Path) -> None:
    target = tmp_path / "speech.wav"
    with pipeclient.Client(backends=[server.backend()]) as client:
        view = client.with_streaming_response
        with view.responses.create(model="m", input="hi", stream=True) as response:
            stream = response.parse()
            assert next(iter(stream)).type == "response.created"
        assert stream.response.is_closed  # leaving the block closed the stream
        with view.chat.completions.parse(
            model="m", messages=MESSAGES, response_format=Answer
        ) as answer:
            assert isinstance(answer.parse(), ParsedChatCompletion)
            assert answer.json()["object"] == "chat.completion"
        with view.audio.speech.create(input="two words", model="t", voice="alloy") as audio:
            assert audio.parse() == audio.read() and audio.read().startswith(b"RIFF")
            audio.stream_to_file(target, chunk_size=7)
        with view.models.list() as listed:
            assert listed.parse().data[0].id == "mock-model"
    assert target.read_bytes() == audio.read()


def test_the_async_views_answer_for_every_namespace(server: MockServer, tmp_path: Path) -> None:
    target = tmp_path / "speech.wav"

    async def main() -> None:
        async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
            raw = client.with_raw_response
            parsed = await raw.chat.completions.parse(
                model="m", messages=MESSAGES, response_format=Answer
            )
            assert isinstance(_check(parsed, "/chat/completions"), ParsedChatCompletion)
            answered = await raw.responses.create(model="m", input="hi")
            assert _check(answered, "/responses").output_text == "Mock response to: hi"
            events = await raw.responses.create(model="m", input="hi", stream=True)
            kinds = [event.type async for event in events.parse()]
            assert kinds[-1] == "response.completed"
            model = await raw.models.retrieve("mock-x")
            assert model.parse().id == "mock-x"
            said = await raw.audio.speech.create(input="x", model="t", voice="alloy")
            assert said.parse().content.startswith(b"RIFF")
            view = client.with_streaming_response
            async with view.images.generate(prompt="a cat") as images:
                assert (await images.parse()).data and images.status_code == 200
            async with view.audio.speech.create(input="x", model="t", voice="alloy") as audio:
                assert (await audio.parse()).startswith(b"RIFF")
                await audio.stream_to_file(target)
            async with view.completions.create(model="m", prompt="p", stream=True) as legacy:
                chunks = [chunk async for chunk in await legacy.parse()]
                assert chunks

    asyncio.run(main())
    assert target.read_bytes().startswith(b"RIFF")


NAMESPACES = (
    "chat.completions",
    "embeddings",
    "images",
    "models",
    "moderations",
    "completions",
    "responses",
    "audio.transcriptions",
    "audio.speech",
)


def _at(root: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


def _methods(namespace: Any) -> set[str]:
    return {
        name
        for name in dir(namespace)
        if not name.startswith("_") and callable(getattr(namespace, name))
    }


@pytest.mark.parametrize("client_class", [pipeclient.Client, pipeclient.AsyncClient])
@pytest.mark.parametrize("view", ["with_raw_response", "with_streaming_response"])
def test_every_method_of_every_namespace_has_both_views_as_openai_python_has(
    client_class: Any, view: str
) -> None:
    ours = client_class(backends=[MockBackend().backend()])
    theirs = (openai.OpenAI if client_class is pipeclient.Client else openai.AsyncOpenAI)(
        api_key="k", base_url="http://127.0.0.1:9/v1"
    )
    for dotted in NAMESPACES:
        wanted = _methods(_at(ours, dotted)) - {"stream"}  # openai has no view of .stream
        viewed = _methods(_at(getattr(ours, view), dotted))
        assert viewed == wanted, (dotted, sorted(wanted ^ viewed))
        assert viewed <= _methods(_at(getattr(theirs, view), dotted)), dotted
        # and each namespace's own view (`client.chat.completions.with_raw_response`)
        own = _methods(getattr(_at(ours, dotted), view))
        assert own == wanted, (dotted, sorted(wanted ^ own))
        assert own <= _methods(getattr(_at(theirs, dotted), view)), dotted
    for parent, child in (("chat", "completions"), ("audio", "speech")):
        nested = getattr(getattr(getattr(ours, parent), view), child)
        assert _methods(nested) == _methods(getattr(_at(ours, f"{parent}.{child}"), view))
