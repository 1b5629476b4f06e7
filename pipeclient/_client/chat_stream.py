"""`chat.completions.stream(...)`: a chat stream as openai-python's helper gives it.

`with client.chat.completions.stream(...) as stream:` iterates events (`chunk`,
`content.delta`, `content.done`, `refusal.*`, `tool_calls.function.arguments.*`) over the
ordinary chat stream (so telemetry records it like any stream), keeps a snapshot of the
completion so far, and `stream.get_final_completion()` gives the `ParsedChatCompletion`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..types import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion
from .streaming import AsyncStream, Stream
from .structured import parsed_completion

__all__ = [
    "AsyncChatCompletionStream",
    "AsyncChatCompletionStreamManager",
    "ChatCompletionStream",
    "ChatCompletionStreamManager",
    "ChunkEvent",
    "ContentDeltaEvent",
    "ContentDoneEvent",
    "FunctionToolCallArgumentsDeltaEvent",
    "FunctionToolCallArgumentsDoneEvent",
    "RefusalDeltaEvent",
    "RefusalDoneEvent",
]

ParsedT = TypeVar("ParsedT")


class _Event(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)


class ChunkEvent(_Event):
    type: Literal["chunk"] = "chunk"
    chunk: ChatCompletionChunk
    snapshot: ParsedChatCompletion[Any]


class ContentDeltaEvent(_Event):
    type: Literal["content.delta"] = "content.delta"
    delta: str
    snapshot: str
    parsed: Any = None  # the snapshot as JSON, once it is complete JSON


class ContentDoneEvent(_Event, Generic[ParsedT]):
    type: Literal["content.done"] = "content.done"
    content: str
    parsed: ParsedT | None = None


class RefusalDeltaEvent(_Event):
    type: Literal["refusal.delta"] = "refusal.delta"
    delta: str
    snapshot: str


class RefusalDoneEvent(_Event):
    type: Literal["refusal.done"] = "refusal.done"
    refusal: str


class FunctionToolCallArgumentsDeltaEvent(_Event):
    type: Literal["tool_calls.function.arguments.delta"] = "tool_calls.function.arguments.delta"
    name: str
    index: int
    arguments: str
    parsed_arguments: Any = None
    arguments_delta: str


class FunctionToolCallArgumentsDoneEvent(_Event):
    type: Literal["tool_calls.function.arguments.done"] = "tool_calls.function.arguments.done"
    name: str
    index: int
    arguments: str
    parsed_arguments: Any = None


Event = (
    ChunkEvent
    | ContentDeltaEvent
    | ContentDoneEvent[Any]
    | RefusalDeltaEvent
    | RefusalDoneEvent
    | FunctionToolCallArgumentsDeltaEvent
    | FunctionToolCallArgumentsDoneEvent
)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class _Snapshot:
    """The completion so far, from the chunks seen, and the events each chunk makes."""

    def __init__(self, adapter: TypeAdapter[Any] | None, name: str) -> None:
        self.adapter = adapter
        self.name = name
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.chunk: ChatCompletionChunk | None = None

    def events(self, chunk: ChatCompletionChunk) -> list[Event]:
        self.chunk = chunk
        if not self.head:
            self.head = {
                "id": chunk.id,
                "created": chunk.created,
                "model": chunk.model,
                "system_fingerprint": chunk.system_fingerprint,
                "service_tier": chunk.service_tier,
            }
        if chunk.usage is not None:
            self.usage = chunk.usage.model_dump()
        found: list[Event] = []
        for choice in chunk.choices:
            entry = self.choices.setdefault(
                choice.index,
                {
                    "index": choice.index,
                    "message": {"role": "assistant", "content": None, "refusal": None},
                    "finish_reason": None,
                    "calls": {},
                },
            )
            message, delta = entry["message"], choice.delta
            if delta.content:
                message["content"] = (message["content"] or "") + delta.content
                found.append(
                    ContentDeltaEvent(
                        delta=delta.content,
                        snapshot=message["content"],
                        parsed=_json_or_none(message["content"]) if self.adapter else None,
                    )
                )
            if delta.refusal:
                message["refusal"] = (message["refusal"] or "") + delta.refusal
                found.append(RefusalDeltaEvent(delta=delta.refusal, snapshot=message["refusal"]))
            for call in delta.tool_calls or ():
                known = entry["calls"].setdefault(
                    call.index, {"id": None, "type": "function", "name": "", "arguments": ""}
                )
                known["id"] = call.id or known["id"]
                if call.function is not None:
                    known["name"] += call.function.name or ""
                    piece = call.function.arguments or ""
                    known["arguments"] += piece
                    found.append(
                        FunctionToolCallArgumentsDeltaEvent(
                            name=known["name"],
                            index=call.index,
                            arguments=known["arguments"],
                            parsed_arguments=_json_or_none(known["arguments"]),
                            arguments_delta=piece,
                        )
                    )
            if choice.finish_reason:
                entry["finish_reason"] = choice.finish_reason
                found += self._done(entry)
        return [ChunkEvent(chunk=chunk, snapshot=self.completion()), *found]

    def _done(self, entry: dict[str, Any]) -> list[Event]:
        message = entry["message"]
        done: list[Event] = []
        if message["content"] is not None:
            parsed = None
            if self.adapter is not None and not message["refusal"]:
                parsed = self.adapter.validate_json(message["content"])
            done.append(ContentDoneEvent[Any](content=message["content"], parsed=parsed))
        if message["refusal"] is not None:
            done.append(RefusalDoneEvent(refusal=message["refusal"]))
        for index, call in sorted(entry["calls"].items()):
            done.append(
                FunctionToolCallArgumentsDoneEvent(
                    name=call["name"],
                    index=index,
                    arguments=call["arguments"],
                    parsed_arguments=_json_or_none(call["arguments"]),
                )
            )
        return done

    def completion(self) -> ParsedChatCompletion[Any]:
        choices = []
        for index, entry in sorted(self.choices.items()):
            message = dict(entry["message"])
            if entry["calls"]:
                message["tool_calls"] = [
                    {
                        "id": call["id"] or "",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                    for _, call in sorted(entry["calls"].items())
                ]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": entry["finish_reason"],
                    "logprobs": None,
                }
            )
        plain = ChatCompletion.model_validate(
            {**self.head, "choices": choices, "usage": self.usage}
        )
        if self.chunk is not None:
            plain._request_id = self.chunk._request_id
            plain._pipeclient_request_id = self.chunk._pipeclient_request_id
        finished = all(entry["finish_reason"] for entry in self.choices.values())
        return parsed_completion(plain, self.adapter if finished else None, self.name)


class ChatCompletionStream(Generic[ParsedT]):
    """The events of a chat stream; `get_final_completion()` once it has ended."""

    def __init__(
        self, stream: Stream[ChatCompletionChunk], adapter: TypeAdapter[Any] | None, name: str
    ) -> None:
        self._stream = stream
        self._snapshot = _Snapshot(adapter, name)
        self._events = self._iterate()

    def _iterate(self) -> Iterator[Event]:
        for chunk in self._stream:
            yield from self._snapshot.events(chunk)

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def __next__(self) -> Event:
        return next(self._events)

    @property
    def response(self) -> Any:
        return self._stream.response

    @property
    def request_id(self) -> str:
        return self._stream.request_id

    @property
    def current_completion_snapshot(self) -> ParsedChatCompletion[ParsedT]:
        return self._snapshot.completion()

    def until_done(self) -> ChatCompletionStream[ParsedT]:
        for _ in self._events:
            pass
        return self

    def get_final_completion(self) -> ParsedChatCompletion[ParsedT]:
        self.until_done()
        return self._snapshot.completion()

    def close(self) -> None:
        self._stream.close()


class ChatCompletionStreamManager(Generic[ParsedT]):
    """`with client.chat.completions.stream(...) as stream:`; the call starts on entry."""

    def __init__(
        self,
        start: Callable[[], Stream[ChatCompletionChunk]],
        adapter: TypeAdapter[Any] | None,
        name: str,
    ) -> None:
        self._start = start
        self._adapter = adapter
        self._name = name
        self._stream: ChatCompletionStream[ParsedT] | None = None

    def __enter__(self) -> ChatCompletionStream[ParsedT]:
        self._stream = ChatCompletionStream(self._start(), self._adapter, self._name)
        return self._stream

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            self._stream.close()


class AsyncChatCompletionStream(Generic[ParsedT]):
    def __init__(
        self, stream: AsyncStream[ChatCompletionChunk], adapter: TypeAdapter[Any] | None, name: str
    ) -> None:
        self._stream = stream
        self._snapshot = _Snapshot(adapter, name)
        self._events = self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        async for chunk in self._stream:
            for event in self._snapshot.events(chunk):
                yield event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    @property
    def response(self) -> Any:
        return self._stream.response

    @property
    def current_completion_snapshot(self) -> ParsedChatCompletion[ParsedT]:
        return self._snapshot.completion()

    async def until_done(self) -> AsyncChatCompletionStream[ParsedT]:
        async for _ in self._events:
            pass
        return self

    async def get_final_completion(self) -> ParsedChatCompletion[ParsedT]:
        await self.until_done()
        return self._snapshot.completion()

    async def close(self) -> None:
        await self._stream.close()


class AsyncChatCompletionStreamManager(Generic[ParsedT]):
    def __init__(
        self,
        start: Callable[[], Awaitable[AsyncStream[ChatCompletionChunk]]],
        adapter: TypeAdapter[Any] | None,
        name: str,
    ) -> None:
        self._start = start
        self._adapter = adapter
        self._name = name
        self._stream: AsyncChatCompletionStream[ParsedT] | None = None

    async def __aenter__(self) -> AsyncChatCompletionStream[ParsedT]:
        self._stream = AsyncChatCompletionStream(await self._start(), self._adapter, self._name)
        return self._stream

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stream is not None:
            await self._stream.close()
