"""`client.with_raw_response` and `client.with_streaming_response`: the same calls,
answering with the HTTP response (status, headers) beside the parsed result.

Both are views of the client's namespaces: a method reached through them runs the same
call (telemetry, retries, privacy), with the client asked, through a context variable,
for an `APIResponse` instead of the parsed result.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx

from .answers import detached_response, provider_request_id, safe_request

__all__ = [
    "APIResponse",
    "AsyncAPIResponse",
    "AsyncResponseContextManager",
    "LegacyAPIResponse",
    "ResponseContextManager",
    "WithRawResponse",
    "WithStreamingResponse",
    "raw_answer",
    "wants_raw",
]

R = TypeVar("R")

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


def raw_answer(
    response: httpx.Response, parsed: Any, request_id: str, *, live: bool = False, sync: bool
) -> _Answered[Any]:
    """The call's answer, as the view it was reached through gives it."""
    shown = response if live else detached_response(response)
    kind: type[_Answered[Any]] = LegacyAPIResponse
    if _RAW.get() == "streaming":
        kind = APIResponse if sync else AsyncAPIResponse
    return kind(shown, parsed, request_id, live=live)


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
    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._response: Any = None

    async def __aenter__(self) -> R:
        self._response = await self._make()
        return self._response  # type: ignore[no-any-return]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            await self._response.close()


def _raw_call(method: Callable[..., Any], mode: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            token = _RAW.set(mode)
            try:
                return await method(*args, **kwargs)
            finally:
                _RAW.reset(token)

        return call_async

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        token = _RAW.set(mode)
        try:
            result = method(*args, **kwargs)
        finally:
            _RAW.reset(token)
        if inspect.isawaitable(result):  # AsyncClient's models.list(): awaited later
            return _awaited_raw(result, mode)
        return result

    return call


async def _awaited_raw(awaitable: Any, mode: str) -> Any:
    token = _RAW.set(mode)
    try:
        return await awaitable
    finally:
        _RAW.reset(token)


class WithRawResponse:
    """A view of a client's namespaces whose methods answer with an `APIResponse`."""

    _streaming = False

    def __init__(self, target: Any, *, is_async: bool = False) -> None:
        self._target = target
        self._is_async = is_async

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        found = getattr(self._target, name)
        if inspect.ismethod(found):
            call = _raw_call(found, "streaming" if self._streaming else "raw")
            if not self._streaming:
                return call
            if self._is_async:
                return lambda *a, **k: AsyncResponseContextManager(lambda: call(*a, **k))
            return lambda *a, **k: ResponseContextManager(lambda: call(*a, **k))
        return type(self)(found, is_async=self._is_async)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {type(self._target).__name__}>"


class WithStreamingResponse(WithRawResponse):
    """A view whose methods answer with a context manager around an `APIResponse`."""

    _streaming = True
