"""`client.models`, `client.moderations` and the legacy `client.completions`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterable
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote

from typing_extensions import Unpack

from .._exceptions import ConfigError
from ..types import Completion, Model, ModerationCreateResponse, SyncPage
from .params import CallExtras, CompletionParams, reject_unexpected
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
