"""The answers of `client.with_raw_response` and `client.with_streaming_response`: the
HTTP response (status, headers) beside the parsed result.

A method reached through either view (`views.py`) runs the same call (telemetry,
retries, privacy), with the client asked, through a context variable, for an
`APIResponse` instead of the parsed result.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from typing_extensions import ParamSpec

from ..types import HttpxBinaryResponseContent
from .answers import detached_response, provider_request_id, safe_request

__all__ = [
    "APIResponse",
    "AsyncAPIResponse",
    "AsyncResponseContextManager",
    "AsyncStreamedBinaryAPIResponse",
    "LegacyAPIResponse",
    "ResponseContextManager",
    "StreamedBinaryAPIResponse",
    "async_to_raw_response_wrapper",
    "async_to_streamed_binary_wrapper",
    "async_to_streamed_response_wrapper",
    "raw_answer",
    "then",
    "to_raw_response_wrapper",
    "to_streamed_binary_wrapper",
    "to_streamed_response_wrapper",
    "wants_raw",
]

R = TypeVar("R")
P = ParamSpec("P")

# "raw" or "streaming" while a call reached through either view is made; else None.
_RAW: contextvars.ContextVar[str | None] = contextvars.ContextVar("pipeclient_raw", default=None)


def wants_raw() -> bool:
    """Whether the call being made was reached through `with_raw_response` or
    `with_streaming_response`."""
    return _RAW.get() is not None


class _Answered(Generic[R]):
    """What every view's answer has: the HTTP status and headers, and the parsed result.
    `.request_id` is the call's X-Request-Id, `.provider_request_id` the provider's own.
    `http_request` carries no header but the X-Request-Id (the others hold the API key)."""

    def __init__(
        self, http_response: httpx.Response, parsed: R, request_id: str, *, live: bool = False
    ) -> None:
        self.http_response = http_response
        self._request = safe_request(http_response.request)
        self._parsed = parsed
        self._request_id = request_id
        self._live = live  # a stream: its body is read through the parsed Stream

    @property
    def request_id(self) -> str:
        return self._request_id

    @property
    def headers(self) -> httpx.Headers:
        return self.http_response.headers

    @property
    def status_code(self) -> int:
        return self.http_response.status_code

    @property
    def http_request(self) -> httpx.Request:
        return self._request

    @property
    def url(self) -> httpx.URL:
        return self._request.url

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def http_version(self) -> str:
        return self.http_response.http_version

    @property
    def elapsed(self) -> Any:
        return self.http_response.elapsed

    @property
    def is_closed(self) -> bool:
        return self.http_response.is_closed

    @property
    def provider_request_id(self) -> str | None:
        return provider_request_id(self.http_response)

    def _body(self) -> bytes:
        if self._live:
            raise TypeError(
                "this answer is a stream: read it through .parse(), which gives the Stream"
            )
        return self.http_response.content

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self.status_code}] type={type(self._parsed).__name__}>"


class LegacyAPIResponse(_Answered[R]):
    """`client.with_raw_response....`: openai-python's `LegacyAPIResponse`."""

    def parse(self) -> R:
        """The result the call would have returned (for a stream, the `Stream`)."""
        return self._parsed

    @property
    def content(self) -> bytes:
        return self._body()

    @property
    def text(self) -> str:
        return self._body().decode(self.http_response.encoding or "utf-8", "replace")


class APIResponse(_Answered[R]):
    """`client.with_streaming_response....`: openai-python's `APIResponse`."""

    def parse(self) -> R:
        return self._parsed

    def read(self) -> bytes:
        return self._body()

    def text(self) -> str:
        return self.read().decode(self.http_response.encoding or "utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.read())

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        content = self.read()
        size = chunk_size or len(content) or 1
        for start in range(0, len(content), size):
            yield content[start : start + size]

    def iter_text(self, chunk_size: int | None = None) -> Iterator[str]:
        text = self.text()
        size = chunk_size or len(text) or 1
        for start in range(0, len(text), size):
            yield text[start : start + size]

    def iter_lines(self) -> Iterator[str]:
        yield from self.text().splitlines()

    def close(self) -> None:
        """Close the answer (a stream's close ends its telemetry record)."""
        if self._live:
            self._parsed.close()  # type: ignore[attr-defined]


class AsyncAPIResponse(_Answered[R]):
    """`AsyncClient.with_streaming_response....`: openai-python's `AsyncAPIResponse`."""

    async def parse(self) -> R:
        return self._parsed

    async def read(self) -> bytes:
        return self._body()

    async def text(self) -> str:
        return self._body().decode(self.http_response.encoding or "utf-8", "replace")

    async def json(self) -> Any:
        return json.loads(self._body())

    async def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        content = self._body()
        size = chunk_size or len(content) or 1
        for start in range(0, len(content), size):
            yield content[start : start + size]

    async def iter_text(self, chunk_size: int | None = None) -> AsyncIterator[str]:
        text = await self.text()
        size = chunk_size or len(text) or 1
        for start in range(0, len(text), size):
            yield text[start : start + size]

    async def iter_lines(self) -> AsyncIterator[str]:
        for line in (await self.text()).splitlines():
            yield line

    async def close(self) -> None:
        if self._live:
            await self._parsed.close()  # type: ignore[attr-defined]


class StreamedBinaryAPIResponse(APIResponse[bytes]):
    """`client.with_streaming_response.audio.speech.create(...)`: the audio, `.parse()`
    its bytes (openai-python's type of the same name)."""

    def stream_to_file(
        self, file: str | os.PathLike[str], *, chunk_size: int | None = None
    ) -> None:
        with open(file, mode="wb") as out:
            for part in self.iter_bytes(chunk_size):
                out.write(part)


class AsyncStreamedBinaryAPIResponse(AsyncAPIResponse[bytes]):
    async def stream_to_file(
        self, file: str | os.PathLike[str], *, chunk_size: int | None = None
    ) -> None:
        import anyio

        async with await anyio.Path(file).open(mode="wb") as out:
            async for part in self.iter_bytes(chunk_size):
                await out.write(part)


def raw_answer(
    response: httpx.Response, parsed: Any, request_id: str, *, live: bool = False, sync: bool
) -> _Answered[Any]:
    """The call's answer, as the view it was reached through gives it."""
    shown = response if live else detached_response(response)
    kind: type[_Answered[Any]] = LegacyAPIResponse
    if _RAW.get() == "streaming":
        if isinstance(parsed, HttpxBinaryResponseContent):  # audio: `.parse()` is its bytes
            kind = StreamedBinaryAPIResponse if sync else AsyncStreamedBinaryAPIResponse
            parsed = parsed.content
        else:
            kind = APIResponse if sync else AsyncAPIResponse
    return kind(shown, parsed, request_id, live=live)


def then(result: Any, convert: Callable[[Any], Any]) -> Any:
    """`convert` applied to what a call answered: inside a raw answer, to its result."""
    if isinstance(result, _Answered):
        result._parsed = convert(result._parsed)
        return result
    return convert(result)


class ResponseContextManager(Generic[R]):
    """`with client.with_streaming_response....create(...) as response:` makes the call on
    entry and closes its answer on exit."""

    def __init__(self, make: Callable[[], R]) -> None:
        self._make = make
        self._response: R | None = None

    def __enter__(self) -> R:
        self._response = self._make()
        return self._response

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.close()  # type: ignore[attr-defined]


class AsyncResponseContextManager(Generic[R]):
    def __init__(self, make: Callable[[], Awaitable[R]]) -> None:
        self._make = make
        self._response: R | None = None

    async def __aenter__(self) -> R:
        self._response = await self._make()
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.close()  # type: ignore[attr-defined]


# -- the views' methods: the resource's own method, made under a mode ----------------


def _made(mode: str, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> Any:
    token = _RAW.set(mode)
    try:
        return func(*args, **kwargs)
    finally:
        _RAW.reset(token)


async def _awaited(
    mode: str, func: Callable[P, Awaitable[Any]], *args: P.args, **kwargs: P.kwargs
) -> Any:
    token = _RAW.set(mode)
    try:
        return await func(*args, **kwargs)
    finally:
        _RAW.reset(token)


def to_raw_response_wrapper(func: Callable[P, R]) -> Callable[P, LegacyAPIResponse[R]]:
    """The method, answering with a `LegacyAPIResponse` around its result."""

    @functools.wraps(func)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> LegacyAPIResponse[R]:
        return _made("raw", func, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapped


def async_to_raw_response_wrapper(
    func: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[LegacyAPIResponse[R]]]:
    @functools.wraps(func)
    async def wrapped(*args: P.args, **kwargs: P.kwargs) -> LegacyAPIResponse[R]:
        return await _awaited("raw", func, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapped


def to_streamed_response_wrapper(
    func: Callable[P, R],
) -> Callable[P, ResponseContextManager[APIResponse[R]]]:
    """The method, answering with a context manager that makes the call on entry."""

    @functools.wraps(func)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> ResponseContextManager[APIResponse[R]]:
        return ResponseContextManager(lambda: _made("streaming", func, *args, **kwargs))

    return wrapped


def async_to_streamed_response_wrapper(
    func: Callable[P, Awaitable[R]],
) -> Callable[P, AsyncResponseContextManager[AsyncAPIResponse[R]]]:
    @functools.wraps(func)
    def wrapped(
        *args: P.args, **kwargs: P.kwargs
    ) -> AsyncResponseContextManager[AsyncAPIResponse[R]]:
        return AsyncResponseContextManager(lambda: _awaited("streaming", func, *args, **kwargs))

    return wrapped


def to_streamed_binary_wrapper(
    func: Callable[P, HttpxBinaryResponseContent],
) -> Callable[P, ResponseContextManager[StreamedBinaryAPIResponse]]:
    """`audio.speech.create`'s: the answer is a `StreamedBinaryAPIResponse`."""

    @functools.wraps(func)
    def wrapped(
        *args: P.args, **kwargs: P.kwargs
    ) -> ResponseContextManager[StreamedBinaryAPIResponse]:
        return ResponseContextManager(lambda: _made("streaming", func, *args, **kwargs))

    return wrapped


def async_to_streamed_binary_wrapper(
    func: Callable[P, Awaitable[HttpxBinaryResponseContent]],
) -> Callable[P, AsyncResponseContextManager[AsyncStreamedBinaryAPIResponse]]:
    @functools.wraps(func)
    def wrapped(
        *args: P.args, **kwargs: P.kwargs
    ) -> AsyncResponseContextManager[AsyncStreamedBinaryAPIResponse]:
        return AsyncResponseContextManager(lambda: _awaited("streaming", func, *args, **kwargs))

    return wrapped
