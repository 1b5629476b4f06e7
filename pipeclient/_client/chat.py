"""`client.chat.completions`: create, parse (structured outputs) and stream, sync and async."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, overload

from typing_extensions import TypeVar, Unpack

from ..types import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion
from .call import check_messages
from .chat_stream import AsyncChatCompletionStreamManager, ChatCompletionStreamManager
from .params import ChatParams, ParseParams, reject_unexpected
from .raw import (
    async_to_raw_response_wrapper,
    async_to_streamed_response_wrapper,
    then,
    to_raw_response_wrapper,
    to_streamed_response_wrapper,
)
from .resources import AsyncCaller, Caller, _Extras
from .structured import parsed_completion, response_format_of

if TYPE_CHECKING:
    from .streaming import AsyncStream, Stream

__all__ = ["AsyncChat", "AsyncCompletions", "Chat", "Completions"]

ParsedT = TypeVar("ParsedT", default=None)  # without a response_format class: None


def _chat_body(
    model: str, messages: Iterable[Mapping[str, Any]], stream: bool, params: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": check_messages(messages), **params}
    if stream:
        body["stream"] = True
    return body


def _parse_body(
    model: str, messages: Any, response_format: Any, params: ParseParams
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    reject_unexpected(params, ParseParams, "chat.completions.parse()")
    given: dict[str, Any] = dict(params)
    extras = _Extras.split(given)
    sent, adapter = response_format_of(response_format)
    if sent is not None:
        given["response_format"] = sent
    return _chat_body(model, messages, False, given), extras, adapter


def _name(response_format: Any) -> str:
    return getattr(response_format, "__name__", "value")


class Completions:
    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> CompletionsWithRawResponse:
        return CompletionsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> CompletionsWithStreamingResponse:
        return CompletionsWithStreamingResponse(self)

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: Literal[False] = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: Literal[True],
        **params: Unpack[ChatParams],
    ) -> Stream[ChatCompletionChunk]: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: bool,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]: ...

    def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: bool = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        """POST /chat/completions. With `stream=True`, returns an iterable `Stream`."""
        reject_unexpected(params, ChatParams, "chat.completions.create()")
        given: dict[str, Any] = dict(params)
        extras = _Extras.split(given)
        body = _chat_body(model, messages, stream, given)
        call = self._client._start("chat", "/chat/completions", body, **extras)
        if stream:
            return self._client._stream(call)
        return self._client._call(call, ChatCompletion)

    def parse(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        response_format: type[ParsedT] | Mapping[str, Any] | None = None,
        **params: Unpack[ParseParams],
    ) -> ParsedChatCompletion[ParsedT]:
        """POST /chat/completions with `response_format` a pydantic model class (sent as
        its strict JSON schema): each `choices[i].message.parsed` is an instance of it."""
        body, extras, adapter = _parse_body(model, messages, response_format, params)
        call = self._client._start("chat", "/chat/completions", body, **extras)
        name = _name(response_format)
        completion = self._client._call(call, ChatCompletion)
        return then(completion, lambda done: parsed_completion(done, adapter, name))  # type: ignore[no-any-return]

    def stream(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        response_format: type[ParsedT] | Mapping[str, Any] | None = None,
        **params: Unpack[ParseParams],
    ) -> ChatCompletionStreamManager[ParsedT]:
        """`with client.chat.completions.stream(...) as stream:` a chat stream as events
        (`content.delta`, ...); `stream.get_final_completion()` once it has ended."""
        body, extras, adapter = _parse_body(model, messages, response_format, params)
        body["stream"] = True

        def start() -> Stream[ChatCompletionChunk]:
            call = self._client._start("chat", "/chat/completions", body, **extras)
            return self._client._stream(call)

        return ChatCompletionStreamManager(start, adapter, _name(response_format))


class Chat:
    def __init__(self, client: Caller) -> None:
        self.completions = Completions(client)

    @cached_property
    def with_raw_response(self) -> ChatWithRawResponse:
        return ChatWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> ChatWithStreamingResponse:
        return ChatWithStreamingResponse(self)


class AsyncCompletions:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncCompletionsWithRawResponse:
        return AsyncCompletionsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncCompletionsWithStreamingResponse:
        return AsyncCompletionsWithStreamingResponse(self)

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: Literal[False] = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: Literal[True],
        **params: Unpack[ChatParams],
    ) -> AsyncStream[ChatCompletionChunk]: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: bool,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]: ...

    async def create(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        stream: bool = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | AsyncStream[ChatCompletionChunk]:
        """POST /chat/completions. With `stream=True`, returns an async-iterable `AsyncStream`."""
        reject_unexpected(params, ChatParams, "chat.completions.create()")
        given: dict[str, Any] = dict(params)
        extras = _Extras.split(given)
        body = _chat_body(model, messages, stream, given)
        call = self._client._start("chat", "/chat/completions", body, **extras)
        if stream:
            return await self._client._stream(call)
        return await self._client._call(call, ChatCompletion)

    async def parse(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        response_format: type[ParsedT] | Mapping[str, Any] | None = None,
        **params: Unpack[ParseParams],
    ) -> ParsedChatCompletion[ParsedT]:
        """POST /chat/completions with `response_format` a pydantic model class: each
        `choices[i].message.parsed` is an instance of it."""
        body, extras, adapter = _parse_body(model, messages, response_format, params)
        call = self._client._start("chat", "/chat/completions", body, **extras)
        name = _name(response_format)
        completion = await self._client._call(call, ChatCompletion)
        return then(completion, lambda done: parsed_completion(done, adapter, name))  # type: ignore[no-any-return]

    def stream(
        self,
        *,
        model: str,
        messages: Iterable[Mapping[str, Any]],
        response_format: type[ParsedT] | Mapping[str, Any] | None = None,
        **params: Unpack[ParseParams],
    ) -> AsyncChatCompletionStreamManager[ParsedT]:
        """`async with client.chat.completions.stream(...) as stream:` the events of a chat
        stream; `await stream.get_final_completion()` once it has ended."""
        body, extras, adapter = _parse_body(model, messages, response_format, params)
        body["stream"] = True

        async def start() -> AsyncStream[ChatCompletionChunk]:
            call = self._client._start("chat", "/chat/completions", body, **extras)
            return await self._client._stream(call)

        return AsyncChatCompletionStreamManager(start, adapter, _name(response_format))


class AsyncChat:
    def __init__(self, client: AsyncCaller) -> None:
        self.completions = AsyncCompletions(client)

    @cached_property
    def with_raw_response(self) -> AsyncChatWithRawResponse:
        return AsyncChatWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncChatWithStreamingResponse:
        return AsyncChatWithStreamingResponse(self)


# -- with_raw_response / with_streaming_response ---------------------------------------


class CompletionsWithRawResponse:
    def __init__(self, completions: Completions) -> None:
        self.create = to_raw_response_wrapper(completions.create)
        self.parse = to_raw_response_wrapper(completions.parse)


class CompletionsWithStreamingResponse:
    def __init__(self, completions: Completions) -> None:
        self.create = to_streamed_response_wrapper(completions.create)
        self.parse = to_streamed_response_wrapper(completions.parse)


class ChatWithRawResponse:
    def __init__(self, chat: Chat) -> None:
        self.completions = CompletionsWithRawResponse(chat.completions)


class ChatWithStreamingResponse:
    def __init__(self, chat: Chat) -> None:
        self.completions = CompletionsWithStreamingResponse(chat.completions)


class AsyncCompletionsWithRawResponse:
    def __init__(self, completions: AsyncCompletions) -> None:
        self.create = async_to_raw_response_wrapper(completions.create)
        self.parse = async_to_raw_response_wrapper(completions.parse)


class AsyncCompletionsWithStreamingResponse:
    def __init__(self, completions: AsyncCompletions) -> None:
        self.create = async_to_streamed_response_wrapper(completions.create)
        self.parse = async_to_streamed_response_wrapper(completions.parse)


class AsyncChatWithRawResponse:
    def __init__(self, chat: AsyncChat) -> None:
        self.completions = AsyncCompletionsWithRawResponse(chat.completions)


class AsyncChatWithStreamingResponse:
    def __init__(self, chat: AsyncChat) -> None:
        self.completions = AsyncCompletionsWithStreamingResponse(chat.completions)
