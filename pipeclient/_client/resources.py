"""The OpenAI-shaped namespaces: `client.chat.completions`, `client.embeddings`, `client.images`.

Request keyword arguments are the OpenAI REST API's and go into the body as given; the
keyword-only extras (`request_id`, `no_log`, `trace`, `timeout`, `extra_headers`,
`extra_body`) are pipeclient's and never reach the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from typing_extensions import TypeVar, Unpack

from ..types import (
    CreateEmbeddingBase64Response,
    CreateEmbeddingResponse,
    ImagesResponse,
)
from .params import EmbeddingParams, ImageParams, reject_unexpected
from .raw import (
    async_to_raw_response_wrapper,
    async_to_streamed_response_wrapper,
    to_raw_response_wrapper,
    to_streamed_response_wrapper,
)

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


__all__ = ["AsyncEmbeddings", "AsyncImages", "Embeddings", "Images"]


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


class Embeddings:
    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> EmbeddingsWithRawResponse:
        return EmbeddingsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> EmbeddingsWithStreamingResponse:
        return EmbeddingsWithStreamingResponse(self)

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

    @cached_property
    def with_raw_response(self) -> ImagesWithRawResponse:
        return ImagesWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> ImagesWithStreamingResponse:
        return ImagesWithStreamingResponse(self)

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


class AsyncEmbeddings:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncEmbeddingsWithRawResponse:
        return AsyncEmbeddingsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncEmbeddingsWithStreamingResponse:
        return AsyncEmbeddingsWithStreamingResponse(self)

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

    @cached_property
    def with_raw_response(self) -> AsyncImagesWithRawResponse:
        return AsyncImagesWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncImagesWithStreamingResponse:
        return AsyncImagesWithStreamingResponse(self)

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


# -- with_raw_response / with_streaming_response ---------------------------------------


class EmbeddingsWithRawResponse:
    def __init__(self, embeddings: Embeddings) -> None:
        self.create = to_raw_response_wrapper(embeddings.create)


class EmbeddingsWithStreamingResponse:
    def __init__(self, embeddings: Embeddings) -> None:
        self.create = to_streamed_response_wrapper(embeddings.create)


class ImagesWithRawResponse:
    def __init__(self, images: Images) -> None:
        self.generate = to_raw_response_wrapper(images.generate)


class ImagesWithStreamingResponse:
    def __init__(self, images: Images) -> None:
        self.generate = to_streamed_response_wrapper(images.generate)


class AsyncEmbeddingsWithRawResponse:
    def __init__(self, embeddings: AsyncEmbeddings) -> None:
        self.create = async_to_raw_response_wrapper(embeddings.create)


class AsyncEmbeddingsWithStreamingResponse:
    def __init__(self, embeddings: AsyncEmbeddings) -> None:
        self.create = async_to_streamed_response_wrapper(embeddings.create)


class AsyncImagesWithRawResponse:
    def __init__(self, images: AsyncImages) -> None:
        self.generate = async_to_raw_response_wrapper(images.generate)


class AsyncImagesWithStreamingResponse:
    def __init__(self, images: AsyncImages) -> None:
        self.generate = async_to_streamed_response_wrapper(images.generate)
