"""Public signatures spell out their parameters: a typo is caught, by mypy and at run time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import pipeclient
from pipeclient.testing import MockBackend

from .conftest import listen, mypy_strict

MESSAGES = [{"role": "user", "content": "hi"}]
ROOT = Path(__file__).resolve().parent.parent


def test_a_typo_in_a_request_parameter_is_a_type_error_that_suggests_the_name() -> None:
    mock = MockBackend()
    client = pipeclient.Client(backends=[mock.backend()])
    calls: dict[str, Any] = {
        "temperature": lambda: client.chat.completions.create(
            model="m", messages=MESSAGES, temprature=0.2
        ),
        "dimensions": lambda: client.embeddings.create(model="e", input=["a"], dimension=8),
        "size": lambda: client.images.generate(prompt="a cat", sise="1024x1024"),
    }
    for meant, call in calls.items():
        with pytest.raises(TypeError, match=rf"did you mean '{meant}'.*extra_body="):
            call()
    assert mock.requests == []  # refused before anything was sent


def test_the_async_client_refuses_typos_too() -> None:
    async def main() -> None:
        client = pipeclient.AsyncClient(backends=[MockBackend().backend()])
        with pytest.raises(TypeError, match="did you mean 'max_tokens'"):
            await client.chat.completions.create(model="m", messages=MESSAGES, max_token=5)
        await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("client_class", [pipeclient.Client, pipeclient.AsyncClient])
def test_a_typo_in_a_client_option_is_a_type_error(client_class: Any) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'max_retry'.*'max_retries'"):
        client_class(backends=[MockBackend().backend()], max_retry=3)


def test_only_the_parameters_given_are_sent_and_extras_never_are() -> None:
    mock = MockBackend()
    client = pipeclient.Client(backends=[mock.backend()])
    client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        temperature=0.2,
        stop=None,
        request_id="0c5d3b1a-7e2f-4a6b-8c9d-000000000001",
        extra_body={"provider_field": 1},
    )
    body = mock.requests[0].json()
    assert body == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.2,
        "stop": None,  # given as None: sent as null, as openai-python does
        "provider_field": 1,
    }


@pytest.mark.timeout(180)
def test_mypy_catches_typos_in_calls_and_client_options(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import pipeclient\n"
        "client = pipeclient.Client(max_retry=3)\n"
        "client.chat.completions.create(model='m', messages=[], temprature=0.2)\n"
        "client.chat.completions.create(model='m', messages=[], temperature='hot')\n"
        "floats = client.embeddings.create(model='e', input='x')\n"
        "reveal_type(floats.data[0].embedding)\n"
        "packed = client.embeddings.create(model='e', input='x', encoding_format='base64')\n"
        "reveal_type(packed.data[0].embedding)\n"
    )
    result = mypy_strict(snippet)
    assert result.returncode == 1, result.stdout
    assert '"max_retry"' in result.stdout, result.stdout
    assert '"temprature"' in result.stdout, result.stdout
    assert '"temperature"' in result.stdout and "str" in result.stdout, result.stdout
    # An embedding is typed by the encoding asked for: floats, or base64 text.
    assert ':6: note: Revealed type is "list[float]"' in result.stdout, result.stdout
    assert ':8: note: Revealed type is "str"' in result.stdout, result.stdout


@pytest.mark.parametrize("client_class", [pipeclient.Client, pipeclient.AsyncClient])
def test_an_embedding_is_floats_unless_base64_was_asked_for(client_class: Any) -> None:
    import base64
    import struct

    from pipeclient.types import CreateEmbeddingBase64Response, CreateEmbeddingResponse

    mock = MockBackend()
    client = client_class(backends=[mock.backend()])
    records = listen(client)

    async def calls() -> tuple[Any, Any]:
        floats = client.embeddings.create(model="e", input="x", dimensions=4)
        packed = client.embeddings.create(
            model="e", input="x", dimensions=4, encoding_format="base64"
        )
        if client_class is pipeclient.AsyncClient:
            return await floats, await packed
        return floats, packed

    floats, packed = asyncio.run(calls())
    assert type(floats) is CreateEmbeddingResponse
    assert type(packed) is CreateEmbeddingBase64Response
    vector = floats.data[0].embedding
    assert isinstance(vector, list) and len(vector) == 4
    decoded = struct.unpack("<4f", base64.b64decode(packed.data[0].embedding))
    assert list(decoded) == vector  # the same embedding, as the encoding asked for it
    assert "encoding_format" not in mock.requests[0].json()
    assert mock.requests[1].json()["encoding_format"] == "base64"
    assert [r.input_tokens for r in records] == [1, 1]  # usage read from either answer
    with pytest.raises(pipeclient.ConfigError, match="encoding_format"):
        bad = client.embeddings.create(model="e", input="x", encoding_format="int8")
        if client_class is pipeclient.AsyncClient:
            asyncio.run(bad)
    assert len(mock.requests) == 2


def test_every_parameter_of_the_installed_openai_sdk_is_accepted_under_its_name() -> None:
    """A newer openai with a new parameter fails here: the signal to mirror it."""
    import inspect

    from openai.resources.chat.completions.completions import Completions
    from openai.resources.embeddings import Embeddings
    from openai.resources.images import Images

    from pipeclient._client.params import ChatParams, EmbeddingParams, ImageParams

    explicit = {"model", "messages", "stream", "input", "prompt", "self", "encoding_format"}
    for method, params in (
        (Completions.create, ChatParams),
        (Embeddings.create, EmbeddingParams),
        (Images.generate, ImageParams),
    ):
        theirs = set(inspect.signature(method).parameters) - explicit
        missing = theirs - set(params.__annotations__)
        if method is Images.generate:
            missing -= {"stream"}  # image streams are not supported by pipeclient
        assert not missing, (method.__qualname__, sorted(missing))


def test_extra_query_goes_in_the_url_with_the_backends_default_query() -> None:
    mock = MockBackend()
    with mock.serve() as server:
        backend = server.backend(default_query={"api-version": "2024-10-21"})
        with pipeclient.Client(backends=[backend]) as client:
            client.chat.completions.create(
                model="m", messages=MESSAGES, extra_query={"x": 1, "flag": True}
            )
            client.embeddings.create(
                model="e", input=["a"], extra_query={"api-version": "2025-01-01"}
            )
    first, second = mock.requests
    assert first.query == "api-version=2024-10-21&x=1&flag=true"
    assert "x" not in first.json() and "extra_query" not in first.json()
    assert second.query == "api-version=2025-01-01"  # the call's own value wins
    with pytest.raises(pipeclient.ConfigError, match=r"extra_query\['bad'\]"):
        pipeclient.Client(backends=[mock.backend()]).chat.completions.create(
            model="m", messages=MESSAGES, extra_query={"bad": [1]}
        )


def _accepted(method: Any, params: Any) -> set[str]:
    import inspect

    explicit = set(inspect.signature(method).parameters) - {"self", "params", "extras"}
    return explicit | set(params.__annotations__)


def test_the_newer_endpoints_take_every_parameter_of_openais_under_its_name() -> None:
    """Each method's parameters, compared with the installed openai SDK's method."""
    import inspect

    from openai.resources.audio.speech import Speech as TheirSpeech
    from openai.resources.audio.transcriptions import Transcriptions as TheirTranscriptions
    from openai.resources.chat.completions.completions import Completions as TheirChat
    from openai.resources.completions import Completions as TheirCompletions
    from openai.resources.models import Models as TheirModels
    from openai.resources.moderations import Moderations as TheirModerations
    from openai.resources.responses import Responses as TheirResponses

    from pipeclient._client.audio import Speech, Transcriptions
    from pipeclient._client.chat import Completions
    from pipeclient._client.endpoints import Models, Moderations, TextCompletions
    from pipeclient._client.params import (
        CallExtras,
        CompletionParams,
        ParseParams,
        ResponseParams,
        SpeechParams,
        TranscriptionParams,
    )
    from pipeclient._client.responses import Responses

    pairs = [
        (TheirCompletions.create, TextCompletions.create, CompletionParams),
        (TheirResponses.create, Responses.create, ResponseParams),
        (TheirModerations.create, Moderations.create, CallExtras),
        (TheirModels.list, Models.list, CallExtras),
        (TheirModels.retrieve, Models.retrieve, CallExtras),
        (TheirTranscriptions.create, Transcriptions.create, TranscriptionParams),
        (TheirSpeech.create, Speech.create, SpeechParams),
        (TheirChat.parse, Completions.parse, ParseParams),
        (TheirChat.stream, Completions.stream, ParseParams),
    ]
    for theirs, ours, params in pairs:
        wanted = set(inspect.signature(theirs).parameters) - {"self"}
        missing = wanted - _accepted(ours, params)
        assert not missing, (ours.__qualname__, sorted(missing))


@pytest.mark.timeout(180)
def test_mypy_accepts_openai_style_code_and_catches_its_typos(tmp_path: Path) -> None:
    """Code written for openai-python, with pipeclient's client, type-checks as such."""
    snippet = tmp_path / "surface.py"
    snippet.write_text(
        """import httpx
import pydantic
import pipeclient
from pipeclient.types import (
    ChatCompletion, Completion, Model, ModerationCreateResponse, Response,
    ResponseStreamEvent, Transcription,
)


class Answer(pydantic.BaseModel):
    city: str


def use(client: pipeclient.Client) -> None:
    url: httpx.URL = client.base_url
    fast: pipeclient.Client = client.with_options(timeout=5.0, max_retries=0)
    chat: ChatCompletion = fast.chat.completions.create(model="m", messages=[])
    messages: list[object] = [chat.choices[0].message]
    parsed = client.chat.completions.parse(model="m", messages=[], response_format=Answer)
    reading = parsed.choices[0].message.parsed
    city: str | None = reading.city if reading is not None else None
    with client.chat.completions.stream(model="m", messages=[], response_format=Answer) as stream:
        final = stream.get_final_completion()
    answer: Answer | None = final.choices[0].message.parsed
    response: Response = client.responses.create(model="m", input="hi", previous_response_id="r")
    text: str = response.output_text
    for event in client.responses.create(model="m", input="hi", stream=True):
        kind: str = event.type
    page = client.models.list()
    first: Model = next(iter(page))
    moderation: ModerationCreateResponse = client.moderations.create(input="x")
    flagged: bool = moderation.results[0].categories.violence
    legacy: Completion = client.completions.create(model="m", prompt="p")
    for chunk in client.completions.create(model="m", prompt="p", stream=True):
        piece: str = chunk.choices[0].text
    transcript: Transcription = client.audio.transcriptions.create(file=b"x", model="w")
    as_text: str = client.audio.transcriptions.create(file=b"x", model="w", response_format="text")
    audio: bytes = client.audio.speech.create(input="x", model="t", voice="alloy").content
    provider: str | None = chat.provider_request_id
    try:
        pass
    except pipeclient.APIStatusError as error:
        status: int = error.response.status_code if error.response else 0


async def use_async(client: pipeclient.AsyncClient) -> None:
    response: Response = await client.responses.create(model="m", input="hi")
    stream = await client.responses.create(model="m", input="hi", stream=True)
    async for event in stream:
        kind: str = event.type
    async with client.chat.completions.stream(model="m", messages=[]) as chat_stream:
        async for chat_event in chat_stream:
            pass


def typos(client: pipeclient.Client) -> None:
    client.responses.create(model="m", input="hi", max_output_token=5)
    client.completions.create(model="m", prompt="p", temperature="hot")
"""
    )
    result = mypy_strict(snippet)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = snippet.read_text().splitlines()
    typo_start = next(i for i, line in enumerate(lines, 1) if line.startswith("def typos"))
    early = [line for line in errors if int(line.split(":")[1]) < typo_start]
    assert early == [], result.stdout  # the openai-style code type-checks
    assert '"max_output_token"' in result.stdout, result.stdout
    flagged = {int(line.split(":")[1]) for line in errors}
    assert flagged == {typo_start + 1, typo_start + 2}, result.stdout  # each typo, alone
