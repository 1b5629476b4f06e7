"""The endpoints beyond chat, embeddings and images (models, moderations, legacy
completions, the Responses API, audio): their results validate against the installed
`openai` package's types, and each inference endpoint's telemetry goes through the one
privacy step like chat's: content only where content may go, over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from openai.pagination import SyncPage
from pydantic import TypeAdapter

import pipeclient
from pipeclient._sinks.gateway.event import GatewayEvent
from pipeclient.testing import MockBackend, MockServer, capture_telemetry
from pipeclient.testing._gateway import MockGateway

from .conftest import listen

CANARY = "CANARY-9d3e1c"
NOWHERE = "http://127.0.0.1:9"
CONTENT = ("langfuse", "otlp:collector")
METADATA = ("posthog", "otlp:quiet", "gateway", "audit")


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockBackend().serve() as server:
        yield server


def telemetry(audit_path: str) -> dict[str, Any]:
    return {
        "posthog": {"enabled": True, "host": NOWHERE, "api_key": "phc_x", "redact": True},
        "langfuse": {"enabled": True, "host": NOWHERE, "public_key": "pk", "secret_key": "sk"},
        "otlp": [
            {"name": "collector", "enabled": True, "endpoint": NOWHERE},
            {"name": "quiet", "enabled": True, "endpoint": NOWHERE, "capture_content": False},
        ],
        "audit": {"enabled": True, "path": audit_path},
    }


# -- models -------------------------------------------------------------------------------


def test_models_list_and_retrieve_match_openai_types(server: MockServer) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        page = client.models.list()
        models = list(page)
        model = client.models.retrieve("ft:gpt-4o-mini:org:custom:id1")
    SyncPage[openai.types.Model].model_validate(page.model_dump())
    openai.types.Model.model_validate(model.model_dump())
    assert [m.id for m in models] == ["mock-model"] and not page.has_next_page()
    assert model.id == "ft:gpt-4o-mini:org:custom:id1"
    assert records == []  # listing models is not inference: no telemetry record
    assert page.request_id and page.provider_request_id


# -- moderations and legacy completions -----------------------------------------------------


def test_moderations_match_openai_types(server: MockServer) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        result = client.moderations.create(input=["a calm text", "something forbidden"])
    openai.types.ModerationCreateResponse.model_validate(result.model_dump())
    assert [r.flagged for r in result.results] == [False, True]
    assert result.results[1].categories.violence is True
    assert result.results[1].category_scores.self_harm < 0.01
    assert result.results[1].model_dump()["categories"]["self-harm"] is False  # API names


def test_legacy_completions_match_openai_types(server: MockServer) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        completion = client.completions.create(model="m", prompt="Once upon", max_tokens=5)
        stream = client.completions.create(model="m", prompt="Once upon", stream=True)
        chunks = list(stream)
    openai.types.Completion.model_validate(completion.model_dump())
    assert completion.choices[0].text == " completed: Once upon"
    assert "".join(c.choices[0].text for c in chunks) == completion.choices[0].text
    for chunk in chunks:  # openai's type wants a finish reason: the last chunk has one
        dumped = chunk.model_dump()
        dumped["choices"][0]["finish_reason"] = chunk.choices[0].finish_reason or "stop"
        openai.types.Completion.model_validate(dumped)
    assert all(chunk.usage is None for chunk in chunks)  # the usage chunk asked for is hidden
    assert [(r.operation, r.input_tokens, r.output_tokens) for r in records] == [
        ("text_completion", 2, 3),
        ("text_completion", 2, 3),
    ]
    assert records[0].parameters["max_tokens"] == 5


# -- the Responses API ----------------------------------------------------------------------

WEATHER = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


def test_responses_match_openai_types_with_tools_and_previous_response_id(
    server: MockServer,
) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        first = client.responses.create(model="m", input="hello", instructions="be brief")
        second = client.responses.create(
            model="m", input="weather?", tools=WEATHER, previous_response_id=first.id
        )
    for response in (first, second):
        openai.types.responses.Response.model_validate(response.model_dump())
    assert first.output_text == "Mock response to: hello"
    assert second.previous_response_id == first.id
    call = second.output[0]
    assert (call.type, call.name, json.loads(call.arguments or "")) == (
        "function_call",
        "get_weather",
        {"echo": "weather?"},
    )
    assert [(r.operation, r.finish_reasons) for r in records] == [
        ("responses", ("stop",)),
        ("responses", ("tool_calls",)),
    ]
    assert first.usage is not None and records[0].input_tokens == first.usage.input_tokens


def test_a_streamed_response_yields_openai_pythons_events(server: MockServer) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(openai.types.responses.ResponseStreamEvent)
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        events = list(client.responses.create(model="m", input="hello", stream=True))
        whole = client.responses.create(model="m", input="hello")
    for event in events:
        adapter.validate_python(event.model_dump())
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed" and events[-1].response is not None
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(d or "" for d in deltas) == whole.output_text
    assert events[-1].response.output_text == whole.output_text
    record = records[0]
    assert (record.stream, record.outcome, record.ttft_ms is not None) == (True, "ok", True)
    assert (record.input_tokens, record.output_tokens) == (
        records[1].input_tokens,
        records[1].output_tokens,
    )
    assert "stream_options" not in server.mock.requests[0].json()  # not asked for here


def test_structured_output_records_its_method_for_the_gateway(tmp_path: Any) -> None:
    gateway = MockGateway()
    schema = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    with capture_telemetry() as captured:
        client = pipeclient.Client(backends=[gateway.backend()])
        client.responses.create(model="m", input="hi", text={"format": schema})
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_object"},
        )
        client.responses.create(model="m", input="hi", max_output_tokens=7)
        client.close()
    events = [sent["event"] for sent in captured["gateway"]]
    for event in events:
        GatewayEvent.model_validate(event)
    assert [e["parameters"].get("structuring_method") for e in events] == [
        "json_schema",
        "json_object",
        None,
    ]
    assert events[2]["parameters"]["max_tokens"] == 7  # max_output_tokens, allowlisted


# -- audio ---------------------------------------------------------------------------------

AUDIO_CANARY = b"AUDIO-BYTES-7f1e"  # inside the audio itself: never kept, by any destination


def test_transcriptions_and_speech_match_openai_types(server: MockServer, tmp_path: Any) -> None:
    from openai._legacy_response import HttpxBinaryResponseContent as TheirBinary
    from openai.types.audio import Transcription as TheirTranscription

    from pipeclient.types import HttpxBinaryResponseContent

    recording = tmp_path / "talk.wav"
    recording.write_bytes(b"RIFF" + AUDIO_CANARY * 10)
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        from_path = client.audio.transcriptions.create(
            file=recording, model="whisper-1", prompt="names", language="en"
        )
        with recording.open("rb") as handle:
            as_text = client.audio.transcriptions.create(
                file=handle, model="whisper-1", response_format="text"
            )
        speech = client.audio.speech.create(
            input="hello there", model="tts-1", voice="alloy", response_format="wav"
        )
    TheirTranscription.model_validate(from_path.model_dump())
    assert from_path.text == "Mock transcript of talk.wav (164 bytes), prompted: names"
    assert isinstance(as_text, str) and as_text.startswith("Mock transcript of talk.wav")
    sent = server.mock.requests[0]
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert AUDIO_CANARY in sent.body and b'name="language"' in sent.body
    public = {name for name in dir(TheirBinary) if not name.startswith("_")}
    assert public <= set(dir(HttpxBinaryResponseContent)), public - set(dir(speech))
    assert speech.content.startswith(b"RIFF") and speech.response.status_code == 200
    speech.write_to_file(tmp_path / "out.wav")
    assert (tmp_path / "out.wav").read_bytes() == speech.content
    assert [r.operation for r in records] == ["transcriptions", "transcriptions", "speech"]
    assert records[0].input_tokens is not None
    with pytest.raises(pipeclient.ConfigError, match="file"):
        pipeclient.Client(backends=[server.backend()]).audio.transcriptions.create(
            file=123, model="whisper-1"
        )


# -- telemetry of every inference endpoint ----------------------------------------------------

Call = Callable[[pipeclient.Client], Any]


def _moderation(client: pipeclient.Client) -> Any:
    return client.moderations.create(input=f"is {CANARY} fine?")


def _completion(client: pipeclient.Client) -> Any:
    return client.completions.create(model="m", prompt=f"Tell of {CANARY}", temperature=0.5)


def _completion_stream(client: pipeclient.Client) -> Any:
    return list(client.completions.create(model="m", prompt=f"Tell of {CANARY}", stream=True))


def _response(client: pipeclient.Client) -> Any:
    return client.responses.create(model="m", input=f"what is {CANARY}?", tools=WEATHER)


def _response_stream(client: pipeclient.Client) -> Any:
    return list(
        client.responses.create(model="m", input=f"what is {CANARY}?", stream=True, top_p=0.5)
    )


def _transcription(client: pipeclient.Client) -> Any:
    audio = b"RIFF" + AUDIO_CANARY * 4
    return client.audio.transcriptions.create(
        file=(f"{CANARY}.wav", audio), model="whisper-1", temperature=0.2
    )


def _speech(client: pipeclient.Client) -> Any:
    return client.audio.speech.create(input=f"say {CANARY}", model="tts-1", voice="alloy")


PATHS = {
    "moderations": "/moderations",
    "text_completion": "/completions",
    "responses": "/responses",
    "transcriptions": "/audio/transcriptions",
    "speech": "/audio/speech",
}
ENDPOINTS: dict[str, tuple[Call, str, str]] = {
    "transcriptions": (_transcription, "transcriptions", "transcription"),
    "speech": (_speech, "speech", "speech"),
    "responses": (_response, "responses", "chat"),
    "responses-stream": (_response_stream, "responses", "chat"),
    # name: (call, operation, the OpenTelemetry GenAI operation name)
    "moderations": (_moderation, "moderations", "moderation"),
    "completions": (_completion, "text_completion", "text_completion"),
    "completions-stream": (_completion_stream, "text_completion", "text_completion"),
}


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_each_endpoint_gets_telemetry_with_content_only_where_content_may_go(
    name: str, tmp_path: Any
) -> None:
    call, operation, genai_name = ENDPOINTS[name]
    gateway = MockGateway()
    with capture_telemetry() as captured:
        client = pipeclient.Client(
            backends=[gateway.backend()], telemetry=telemetry(str(tmp_path / "audit.jsonl"))
        )
        call(client)
        client.close()
    for destination in (*CONTENT, *METADATA):
        assert captured[destination], destination
    for destination in CONTENT:
        assert CANARY in captured.text(destination), destination
    for destination in METADATA:
        assert CANARY not in captured.text(destination), destination
    for destination in (*CONTENT, *METADATA):  # audio is described, never kept
        assert AUDIO_CANARY.decode() not in captured.text(destination), destination
    (sent,) = captured["gateway"]
    event = sent["event"]
    GatewayEvent.model_validate(event)  # the pinned schema, allowlisted parameters only
    assert event["operation"] == operation
    (line,) = captured["audit"]
    path = "/v1" + PATHS[operation]
    assert line["endpoint"] == path
    (span,) = captured["otlp:quiet"]
    assert span["attributes"]["gen_ai.operation.name"] == genai_name
    (posthog,) = captured["posthog"]
    assert posthog["event"] == "$ai_generation"
    assert posthog["properties"]["$ai_request_url"].endswith(path)


def test_the_async_client_mirrors_the_endpoints(server: MockServer) -> None:
    async def main() -> None:
        async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
            page = await client.models.list()
            listed = [model.id async for model in client.models.list()]
            assert [m.id for m in page] == listed == ["mock-model"]
            assert (await client.models.retrieve("m-1")).id == "m-1"
            moderation = await client.moderations.create(input="forbidden")
            assert moderation.results[0].flagged
            completion = await client.completions.create(model="m", prompt="hi")
            openai.types.Completion.model_validate(completion.model_dump())
            stream = await client.completions.create(model="m", prompt="hi", stream=True)
            texts = [chunk.choices[0].text async for chunk in stream]
            assert "".join(texts) == completion.choices[0].text
            response = await client.responses.create(model="m", input="hi")
            openai.types.responses.Response.model_validate(response.model_dump())
            events = await client.responses.create(model="m", input="hi", stream=True)
            kinds = [event.type async for event in events]
            assert kinds[-1] == "response.completed"
            transcript = await client.audio.transcriptions.create(
                file=b"RIFF0000", model="whisper-1"
            )
            assert transcript.text == "Mock transcript of upload (8 bytes)"
            speech = await client.audio.speech.create(input="hi", model="tts-1", voice="alloy")
            assert (await speech.aread()).startswith(b"RIFF")

    asyncio.run(main())
