"""`client.models`, `client.moderations` and the legacy `client.completions`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote

from typing_extensions import Unpack

from .._exceptions import ConfigError
from ..types import Completion, Model, ModerationCreateResponse, SyncPage
from .params import CallExtras, CompletionParams, reject_unexpected
from .raw import (
    async_to_raw_response_wrapper,
    async_to_streamed_response_wrapper,
    to_raw_response_wrapper,
    to_streamed_response_wrapper,
)
from .resources import AsyncCaller, Caller, _Extras, body_and_extras
from .streaming import _CompletionReader

if TYPE_CHECKING:
    from .streaming import AsyncStream, Stream

__all__ = [
    "AsyncModels",
    "AsyncModerations",
    "AsyncPaginator",
    "AsyncTextCompletions",
    "Models",
    "Moderations",
    "TextCompletions",
]


def _extras(params: CallExtras, where: str) -> dict[str, Any]:
    reject_unexpected(params, CallExtras, where)
    return _Extras.split(dict(params))


def _model_path(model: str) -> str:
    """The model's path; an id with a "/" (a fine-tune's or a router's) is kept as one."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(
            "must be a model id, like 'gpt-4o-mini'", source="call argument", key="model"
        )
    return "/models/" + quote(model, safe=":@-._~")


class Models:
    """GET /models and /models/{id}. Not inference: no telemetry records them."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> ModelsWithRawResponse:
        return ModelsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> ModelsWithStreamingResponse:
        return ModelsWithStreamingResponse(self)

    def list(self, **extras: Unpack[CallExtras]) -> SyncPage[Model]:
        call = self._client._start(
            None, "/models", {}, method="GET", **_extras(extras, "models.list()")
        )
        return self._client._call(call, SyncPage[Model])

    def retrieve(self, model: str, **extras: Unpack[CallExtras]) -> Model:
        path = _model_path(model)
        call = self._client._start(
            None, path, {}, method="GET", **_extras(extras, "models.retrieve()")
        )
        return self._client._call(call, Model)


class Moderations:
    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> ModerationsWithRawResponse:
        return ModerationsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> ModerationsWithStreamingResponse:
        return ModerationsWithStreamingResponse(self)

    def create(
        self,
        *,
        input: str | list[str] | Iterable[Any],
        model: str | None = None,
        **extras: Unpack[CallExtras],
    ) -> ModerationCreateResponse:
        """POST /moderations."""
        call = self._client._start(
            "moderations",
            "/moderations",
            _moderation_body(input, model),
            **_extras(extras, "moderations.create()"),
        )
        return self._client._call(call, ModerationCreateResponse)


def _moderation_body(input: Any, model: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": input if isinstance(input, str) else list(input)}
    if model is not None:
        body["model"] = model
    return body


def _completion_body(
    model: str, prompt: Any, stream: bool, params: CompletionParams, where: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    fields = {"model": model, "prompt": prompt}
    body, extras = body_and_extras(params, CompletionParams, where, fields, stream)
    body.setdefault("prompt", None)  # sent as given, as openai-python does
    return body, extras


class TextCompletions:
    """The legacy POST /completions (`client.completions`)."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> TextCompletionsWithRawResponse:
        return TextCompletionsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> TextCompletionsWithStreamingResponse:
        return TextCompletionsWithStreamingResponse(self)

    @overload
    def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: Literal[False] = False,
        **params: Unpack[CompletionParams],
    ) -> Completion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: Literal[True],
        **params: Unpack[CompletionParams],
    ) -> Stream[Completion]: ...

    @overload
    def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: bool,
        **params: Unpack[CompletionParams],
    ) -> Completion | Stream[Completion]: ...

    def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: bool = False,
        **params: Unpack[CompletionParams],
    ) -> Completion | Stream[Completion]:
        """POST /completions. With `stream=True`, a `Stream` of `Completion` chunks."""
        body, extras = _completion_body(model, prompt, stream, params, "completions.create()")
        call = self._client._start("text_completion", "/completions", body, **extras)
        if stream:
            return self._client._stream(call, _CompletionReader)
        return self._client._call(call, Completion)


class AsyncPaginator:
    """`await client.models.list()` for the page, or `async for model in ...`."""

    def __init__(self, fetch: Any) -> None:
        self._fetch = fetch

    def __await__(self) -> Generator[Any, None, SyncPage[Model]]:
        return self._fetch().__await__()  # type: ignore[no-any-return]

    async def __aiter__(self) -> AsyncIterator[Model]:
        page = await self
        for model in page.data:
            yield model


class AsyncModels:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncModelsWithRawResponse:
        return AsyncModelsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncModelsWithStreamingResponse:
        return AsyncModelsWithStreamingResponse(self)

    def list(self, **extras: Unpack[CallExtras]) -> AsyncPaginator:
        options = _extras(extras, "models.list()")

        async def fetch() -> SyncPage[Model]:
            call = self._client._start(None, "/models", {}, method="GET", **options)
            return await self._client._call(call, SyncPage[Model])

        return AsyncPaginator(fetch)

    async def retrieve(self, model: str, **extras: Unpack[CallExtras]) -> Model:
        path = _model_path(model)
        call = self._client._start(
            None, path, {}, method="GET", **_extras(extras, "models.retrieve()")
        )
        return await self._client._call(call, Model)


class AsyncModerations:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncModerationsWithRawResponse:
        return AsyncModerationsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncModerationsWithStreamingResponse:
        return AsyncModerationsWithStreamingResponse(self)

    async def create(
        self,
        *,
        input: str | list[str] | Iterable[Any],
        model: str | None = None,
        **extras: Unpack[CallExtras],
    ) -> ModerationCreateResponse:
        """POST /moderations."""
        call = self._client._start(
            "moderations",
            "/moderations",
            _moderation_body(input, model),
            **_extras(extras, "moderations.create()"),
        )
        return await self._client._call(call, ModerationCreateResponse)


class AsyncTextCompletions:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncTextCompletionsWithRawResponse:
        return AsyncTextCompletionsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncTextCompletionsWithStreamingResponse:
        return AsyncTextCompletionsWithStreamingResponse(self)

    @overload
    async def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: Literal[False] = False,
        **params: Unpack[CompletionParams],
    ) -> Completion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: Literal[True],
        **params: Unpack[CompletionParams],
    ) -> AsyncStream[Completion]: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: bool,
        **params: Unpack[CompletionParams],
    ) -> Completion | AsyncStream[Completion]: ...

    async def create(
        self,
        *,
        model: str,
        prompt: str | list[str] | list[int] | list[list[int]] | None,
        stream: bool = False,
        **params: Unpack[CompletionParams],
    ) -> Completion | AsyncStream[Completion]:
        """POST /completions. With `stream=True`, an `AsyncStream` of `Completion` chunks."""
        body, extras = _completion_body(model, prompt, stream, params, "completions.create()")
        call = self._client._start("text_completion", "/completions", body, **extras)
        if stream:
            return await self._client._stream(call, _CompletionReader)
        return await self._client._call(call, Completion)


# -- with_raw_response / with_streaming_response ---------------------------------------


class ModelsWithRawResponse:
    def __init__(self, models: Models) -> None:
        self.list = to_raw_response_wrapper(models.list)
        self.retrieve = to_raw_response_wrapper(models.retrieve)


class ModelsWithStreamingResponse:
    def __init__(self, models: Models) -> None:
        self.list = to_streamed_response_wrapper(models.list)
        self.retrieve = to_streamed_response_wrapper(models.retrieve)


class ModerationsWithRawResponse:
    def __init__(self, moderations: Moderations) -> None:
        self.create = to_raw_response_wrapper(moderations.create)


class ModerationsWithStreamingResponse:
    def __init__(self, moderations: Moderations) -> None:
        self.create = to_streamed_response_wrapper(moderations.create)


class TextCompletionsWithRawResponse:
    def __init__(self, completions: TextCompletions) -> None:
        self.create = to_raw_response_wrapper(completions.create)


class TextCompletionsWithStreamingResponse:
    def __init__(self, completions: TextCompletions) -> None:
        self.create = to_streamed_response_wrapper(completions.create)


class AsyncModelsWithRawResponse:
    def __init__(self, models: AsyncModels) -> None:
        self.list = async_to_raw_response_wrapper(models.list)
        self.retrieve = async_to_raw_response_wrapper(models.retrieve)


class AsyncModelsWithStreamingResponse:
    def __init__(self, models: AsyncModels) -> None:
        self.list = async_to_streamed_response_wrapper(models.list)
        self.retrieve = async_to_streamed_response_wrapper(models.retrieve)


class AsyncModerationsWithRawResponse:
    def __init__(self, moderations: AsyncModerations) -> None:
        self.create = async_to_raw_response_wrapper(moderations.create)


class AsyncModerationsWithStreamingResponse:
    def __init__(self, moderations: AsyncModerations) -> None:
        self.create = async_to_streamed_response_wrapper(moderations.create)


class AsyncTextCompletionsWithRawResponse:
    def __init__(self, completions: AsyncTextCompletions) -> None:
        self.create = async_to_raw_response_wrapper(completions.create)


class AsyncTextCompletionsWithStreamingResponse:
    def __init__(self, completions: AsyncTextCompletions) -> None:
        self.create = async_to_streamed_response_wrapper(completions.create)
