"""The OpenAI-shaped namespaces: `client.chat.completions`, `client.embeddings`, `client.images`.

Request keyword arguments are the OpenAI REST API's and go into the body as given; the
keyword-only extras (`request_id`, `no_log`, `trace`, `timeout`, `extra_headers`,
`extra_body`) are pipeclient's and never reach the body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from typing_extensions import TypeVar, Unpack

from ..types import (
    ChatCompletion,
    ChatCompletionChunk,
    CreateEmbeddingBase64Response,
    CreateEmbeddingResponse,
    ImagesResponse,
    ParsedChatCompletion,
)
from .call import check_messages
from .chat_stream import AsyncChatCompletionStreamManager, ChatCompletionStreamManager
from .params import ChatParams, EmbeddingParams, ImageParams, ParseParams, reject_unexpected
from .raw import then
from .structured import parsed_completion, response_format_of

if TYPE_CHECKING:
    from .._telemetry.record import Operation
    from .call import Call, Form
    from .streaming import AsyncStream, Stream, _ChunkReader

EncodingFormat = Literal["float", "base64"]
ResponseT = TypeVar("ResponseT")
ParsedT = TypeVar("ParsedT", default=None)  # without a response_format class: None


class _Starts(Protocol):
    """Both clients build a call the same way."""

    def _start(
        self,
        operation: Operation | None,
        path: str,
        body: dict[str, Any],
        *,
        request_id: str | None,
        no_log: bool | None,
        trace: Any,
        timeout: Any,
        extra_headers: Mapping[str, str] | None,
        extra_query: Mapping[str, object] | None,
        extra_body: Mapping[str, Any] | None,
        method: str = ...,
        form: Form | None = ...,
        user_id: str | None = None,
        session_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        ephemeral: bool | None = None,
        cache: bool | None = None,
    ) -> Call: ...


class Caller(_Starts, Protocol):
    """What a resource needs of `Client`: start a call, then send it."""

    def _call(self, call: Call, model: type[ResponseT]) -> ResponseT: ...
    def _stream(self, call: Call, reader: type[_ChunkReader] = ...) -> Stream[Any]: ...


class AsyncCaller(_Starts, Protocol):
    """What a resource needs of `AsyncClient`."""

    async def _call(self, call: Call, model: type[ResponseT]) -> ResponseT: ...
    async def _stream(self, call: Call, reader: type[_ChunkReader] = ...) -> AsyncStream[Any]: ...


__all__ = ["AsyncChat", "AsyncEmbeddings", "AsyncImages", "Chat", "Embeddings", "Images"]


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()  # "use the client's default", where None means something


class _Extras:
    """The keyword-only arguments every call takes besides the API's own."""

    __slots__ = ()

    @staticmethod
    def split(params: dict[str, Any]) -> dict[str, Any]:
        return {
            "request_id": params.pop("request_id", None),
            "no_log": params.pop("no_log", None),
            "trace": params.pop("trace", None),
            "timeout": params.pop("timeout", NOT_GIVEN),
            "extra_headers": params.pop("extra_headers", None),
            "extra_query": params.pop("extra_query", None),
            "extra_body": params.pop("extra_body", None),
            "user_id": params.pop("user_id", None),
            "session_id": params.pop("session_id", None),
            "properties": params.pop("properties", None),
            "ephemeral": params.pop("ephemeral", None),
            "cache": params.pop("cache", None),
        }


def body_and_extras(
    params: Mapping[str, Any],
    accepted: type[Any],
    where: str,
    fields: Mapping[str, Any],
    stream: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(body, extras) of a call: its own `fields` (None left out), the API parameters
    given, and `stream` when asked for; the extras split off. Unknown names are refused."""
    reject_unexpected(params, accepted, where)
    given: dict[str, Any] = dict(params)
    extras = _Extras.split(given)
    body = {name: value for name, value in fields.items() if value is not None}
    body.update(given)
    if stream:
        body["stream"] = True
    return body, extras


def _chat_body(
    model: str, messages: Iterable[Mapping[str, Any]], stream: bool, params: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": check_messages(messages), **params}
    if stream:
        body["stream"] = True
    return body


def _embeddings_call(
    client: _Starts,
    model: str,
    input: str | list[Any],
    encoding_format: str | None,
    params: Mapping[str, Any],
) -> Call:
    reject_unexpected(params, EmbeddingParams, "embeddings.create()")
    given: dict[str, Any] = dict(params)
    extras = _Extras.split(given)
    body: dict[str, Any] = {"model": model, "input": input, **given}
    if encoding_format is not None:
        if encoding_format not in ("float", "base64"):
            from .._exceptions import ConfigError

            raise ConfigError(
                f'must be "float" or "base64", not {encoding_format!r}',
                source="call argument",
                key="encoding_format",
            )
        body["encoding_format"] = encoding_format
    return client._start("embeddings", "/embeddings", body, **extras)


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


class Embeddings:
    def __init__(self, client: Caller) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        encoding_format: Literal["base64"],
        **params: Unpack[EmbeddingParams],
    ) -> CreateEmbeddingBase64Response: ...
    @overload
    def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        encoding_format: Literal["float"] | None = None,
        **params: Unpack[EmbeddingParams],
    ) -> CreateEmbeddingResponse: ...
    def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        encoding_format: EncodingFormat | None = None,
        **params: Unpack[EmbeddingParams],
    ) -> CreateEmbeddingResponse | CreateEmbeddingBase64Response:
        """POST /embeddings. Each embedding is a list of floats, or with
        `encoding_format="base64"` a base64 string (`CreateEmbeddingBase64Response`)."""
        call = _embeddings_call(self._client, model, input, encoding_format, params)
        if encoding_format == "base64":
            return self._client._call(call, CreateEmbeddingBase64Response)
        return self._client._call(call, CreateEmbeddingResponse)


class Images:
    def __init__(self, client: Caller) -> None:
        self._client = client

    def generate(
        self, *, prompt: str, model: str | None = None, **params: Unpack[ImageParams]
    ) -> ImagesResponse:
        """POST /images/generations."""
        reject_unexpected(params, ImageParams, "images.generate()")
        given: dict[str, Any] = dict(params)
        extras = _Extras.split(given)
        body: dict[str, Any] = {"prompt": prompt, **given}
        if model is not None:
            body["model"] = model
        call = self._client._start("images", "/images/generations", body, **extras)
        return self._client._call(call, ImagesResponse)


class AsyncCompletions:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

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


class AsyncEmbeddings:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        encoding_format: Literal["base64"],
        **params: Unpack[EmbeddingParams],
    ) -> CreateEmbeddingBase64Response: ...
    @overload
    async def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        encoding_format: Literal["float"] | None = None,
        **params: Unpack[EmbeddingParams],
    ) -> CreateEmbeddingResponse: ...
    async def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        encoding_format: EncodingFormat | None = None,
        **params: Unpack[EmbeddingParams],
    ) -> CreateEmbeddingResponse | CreateEmbeddingBase64Response:
        """POST /embeddings (see `Embeddings.create`)."""
        call = _embeddings_call(self._client, model, input, encoding_format, params)
        if encoding_format == "base64":
            return await self._client._call(call, CreateEmbeddingBase64Response)
        return await self._client._call(call, CreateEmbeddingResponse)


class AsyncImages:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def generate(
        self, *, prompt: str, model: str | None = None, **params: Unpack[ImageParams]
    ) -> ImagesResponse:
        """POST /images/generations."""
        reject_unexpected(params, ImageParams, "images.generate()")
        given: dict[str, Any] = dict(params)
        extras = _Extras.split(given)
        body: dict[str, Any] = {"prompt": prompt, **given}
        if model is not None:
            body["model"] = model
        call = self._client._start("images", "/images/generations", body, **extras)
        return await self._client._call(call, ImagesResponse)
