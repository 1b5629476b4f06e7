"""`chat.completions.parse(response_format=Model)` and `chat.completions.stream(...)`,
checked against the installed openai package's own helpers and types, over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.lib._parsing._completions import type_to_response_format_param
from openai.lib.streaming.chat import ChunkEvent as TheirChunkEvent
from openai.lib.streaming.chat import ContentDeltaEvent as TheirContentDeltaEvent
from openai.lib.streaming.chat import ContentDoneEvent as TheirContentDoneEvent
from openai.lib.streaming.chat import (
    FunctionToolCallArgumentsDoneEvent as TheirArgumentsDoneEvent,
)
from pydantic import BaseModel

import pipeclient
from pipeclient._client.structured import response_format_of
from pipeclient._sinks.gateway.event import GatewayEvent
from pipeclient.testing import MockBackend, MockServer, capture_telemetry
from pipeclient.testing._gateway import MockGateway

from .conftest import listen

MESSAGES = [{"role": "user", "content": "lighthouses"}]
TOOLS = [{"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}]


class Step(BaseModel):
    explanation: str
    output: str | None = None


class Echo(BaseModel):
    """What the mock answers to a json_schema request: the last user message."""

    echo: str
    steps: list[Step] = []
    first: Step | None = None


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockBackend().serve() as server:
        yield server


def test_a_model_class_is_sent_as_openai_python_sends_it() -> None:
    sent, adapter = response_format_of(Echo)
    assert sent == type_to_response_format_param(Echo)
    assert adapter is not None
    mapping = {"type": "json_object"}
    assert response_format_of(mapping) == (mapping, None)
    with pytest.raises(pipeclient.ConfigError, match="response_format"):
        response_format_of(int)


def test_parse_gives_message_parsed(server: MockServer) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        completion = client.chat.completions.parse(
            model="m", messages=MESSAGES, response_format=Echo, temperature=0
        )
        message = completion.choices[0].message
        assert isinstance(message.parsed, Echo) and message.parsed.echo == "lighthouses"
        openai.types.chat.ParsedChatCompletion[Echo].model_validate(completion.model_dump())
        assert completion.request_id == records[0].request_id
        # the parsed message goes back as a message, without the client's reading of it
        client.chat.completions.create(
            model="m", messages=[*MESSAGES, message, {"role": "user", "content": "again"}]
        )
    sent = server.mock.requests[0].json()
    assert sent["response_format"] == type_to_response_format_param(Echo)
    assert "parsed" not in server.mock.requests[1].json()["messages"][1]
    assert records[0].parameters["response_format"] == "json_schema"


def test_content_that_is_not_the_model_is_a_validation_error() -> None:
    mock = MockBackend(reply="not json at all")
    with (
        pipeclient.Client(backends=[mock.backend()]) as client,
        pytest.raises(pipeclient.APIResponseValidationError, match="not a valid Echo"),
    ):
        client.chat.completions.parse(model="m", messages=MESSAGES, response_format=Echo)


def test_parse_records_json_schema_as_the_gateways_structuring_method() -> None:
    gateway = MockGateway()
    with capture_telemetry() as captured:
        client = pipeclient.Client(backends=[gateway.backend()])
        client.chat.completions.parse(model="m", messages=MESSAGES, response_format=Echo)
        with client.chat.completions.stream(
            model="m", messages=MESSAGES, response_format=Echo
        ) as stream:
            stream.until_done()
        client.close()
    events = [sent["event"] for sent in captured["gateway"]]
    for event in events:
        GatewayEvent.model_validate(event)
    assert [e["parameters"]["structuring_method"] for e in events] == ["json_schema"] * 2
    assert [e["stream"] for e in events] == [False, True]
    assert "lighthouses" not in captured.text("gateway")  # the schema and content stay out


def test_stream_gives_openai_pythons_events_and_the_final_completion(
    server: MockServer,
) -> None:
    with pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        with client.chat.completions.stream(
            model="m", messages=MESSAGES, response_format=Echo
        ) as stream:
            events = list(stream)
            final = stream.get_final_completion()
        with client.chat.completions.stream(model="m", messages=MESSAGES, tools=TOOLS) as tools:
            tool_events = list(tools)
    kinds = [event.type for event in events]
    assert kinds[0] == "chunk" and kinds[-1] == "content.done" and "content.delta" in kinds
    deltas = [e for e in events if e.type == "content.delta"]
    TheirContentDeltaEvent.model_validate(deltas[0].model_dump())
    (done,) = [e for e in events if e.type == "content.done"]
    TheirContentDoneEvent[Echo].model_validate(done.model_dump())
    last_chunk = [e for e in events if e.type == "chunk"][-1]
    TheirChunkEvent.model_validate(last_chunk.model_dump())
    assert isinstance(final.choices[0].message.parsed, Echo)
    assert final.choices[0].message.parsed.echo == "lighthouses"
    openai.types.chat.ParsedChatCompletion[Echo].model_validate(final.model_dump())
    (arguments,) = [e for e in tool_events if e.type == "tool_calls.function.arguments.done"]
    TheirArgumentsDoneEvent.model_validate(arguments.model_dump())
    assert arguments.parsed_arguments == {"echo": "lighthouses"}
    assert [(r.stream, r.outcome, r.closed_early) for r in records] == [(True, "ok", False)] * 2


def test_the_async_client_parses_and_streams(server: MockServer) -> None:
    async def main() -> None:
        async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
            completion = await client.chat.completions.parse(
                model="m", messages=MESSAGES, response_format=Echo
            )
            assert completion.choices[0].message.parsed == Echo(echo="lighthouses")
            async with client.chat.completions.stream(
                model="m", messages=MESSAGES, response_format=Echo
            ) as stream:
                kinds = [event.type async for event in stream]
                final: Any = await stream.get_final_completion()
            assert kinds[-1] == "content.done"
            assert final.choices[0].message.parsed == Echo(echo="lighthouses")

    asyncio.run(main())
