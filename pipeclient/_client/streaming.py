"""Streams of chat completion chunks, sync and async.

The caller sees the stream it would see without pipeclient: when the client asked for
usage on the caller's behalf, the usage-only chunk is recorded and not yielded. The
call's record is ended exactly once: at the end, on early close, on error, or when the
stream is dropped unread.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx
from pydantic import ValidationError
from typing_extensions import Self

from .._exceptions import (
    APIError,
    APIResponseValidationError,
    StreamInterruptedError,
)
from .._privacy.known_secrets import KnownSecrets
from .._telemetry.record import CallTracker, ErrorInfo
from ..types import ChatCompletionChunk, ChoiceDelta, Completion
from .answers import audio_tokens_of, cached_tokens_of, provider_request_id, validate_json

if TYPE_CHECKING:
    import asyncio  # loaded by the event loop itself: a sync client never imports it

    from .._telemetry.pipeline import DeferredAudit

__all__ = ["AsyncStream", "Stream"]

ItemT = TypeVar("ItemT")


class _SSEDecoder:
    """Turns lines of a text/event-stream into (event, data) pairs."""

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = (self._event, "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    def flush(self) -> tuple[str, str] | None:
        return self.feed("")


class _MessageParts:
    """A streamed choice put back together: the message a non-streamed call would give."""

    __slots__ = ("content", "tool_calls")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}

    def add(self, delta: ChoiceDelta) -> None:
        if delta.content:
            self.content.append(delta.content)
        for call in delta.tool_calls or ():
            entry = self.tool_calls.setdefault(
                call.index,
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if call.id:
                entry["id"] = call.id
            if call.function is not None:
                entry["function"]["name"] += call.function.name or ""
                entry["function"]["arguments"] += call.function.arguments or ""

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.content else None,
        }
        if self.tool_calls:
            message["tool_calls"] = [call for _, call in sorted(self.tool_calls.items())]
        return message


class _ChunkReader:
    """What a stream needs besides I/O: parsing, usage hiding, and the call's facts.

    This one reads chat completion chunks; other kinds of streams subclass it."""

    item_type: Any = ChatCompletionChunk

    def __init__(
        self,
        tracker: CallTracker,
        response: httpx.Response,
        lines: Any,
        *,
        hide_usage: bool,
        backend: str,
        secrets: KnownSecrets,
    ) -> None:
        self.tracker = tracker
        self.response = response
        self.lines = lines  # the response's lines, an iterator or an async iterator
        self.hide_usage = hide_usage
        self.backend = backend
        self.secrets = secrets
        self.decoder = _SSEDecoder()
        self.done = False
        self.events = 0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.audio_tokens: dict[str, int] = {}
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: dict[int, str] = {}
        self.provider_request_id = provider_request_id(response) or ""
        # Content, gathered only when some destination may receive it.
        self.messages: dict[int, _MessageParts] | None = {} if tracker.capture_content else None

    @property
    def request_id(self) -> str:
        return self.tracker.request_id

    def chunk_for(self, line: str) -> Any:
        """The chunk to yield for this line, if any; sets `done` at the end of the stream."""
        event = self.decoder.feed(line)
        return None if event is None else self._chunk(*event)

    def chunk_at_eof(self) -> Any:
        """The last chunk, if the stream ended on one; an error if it ended too early."""
        event = self.decoder.flush()
        chunk = None if event is None else self._chunk(*event)
        if not self.done:
            if self.events == 0:
                raise self._empty()
            if not self._ended_well():  # no [DONE] and no end of its own: cut short
                raise self.interrupted(None)
        self.done = True
        return chunk

    def _empty(self) -> APIResponseValidationError:
        return APIResponseValidationError(
            f"backend {self.backend!r} answered with an empty stream "
            f"(request id {self.request_id})",
            request_id=self.request_id,
            backend=self.backend,
        )

    def _chunk(self, event: str, data: str) -> Any:
        if data == "[DONE]":
            self.done = True
            return None
        self.events += 1
        item = self._parse(event, data)
        item._pipeclient_request_id = self.tracker.request_id
        item._request_id = self.provider_request_id
        shown = self._absorb(item)
        if shown is not None and self.tracker.ttft_ms is None:
            self.tracker.first_chunk()
        return shown

    # -- what a kind of stream says; a chat's here, other kinds override --------------------

    def _parse(self, event: str, data: str) -> Any:
        """The event's item, or the error to raise for it."""
        invalid = False
        try:
            chunk = validate_json(self.item_type, data)
        except ValidationError:
            invalid = True
        if invalid:  # raised here, outside the handler: no __context__ with the data
            raise self._bad_event(event, data)
        return chunk

    def _absorb(self, chunk: Any) -> Any:
        """Note what the item says (ids, usage, finish reasons, content); the item to
        yield, or None for one the caller would not have seen."""
        if self.response_id is None:
            self.response_id = chunk.id or None
            self.response_model = chunk.model or None
        if chunk.usage is not None:
            self.input_tokens = chunk.usage.prompt_tokens
            self.output_tokens = chunk.usage.completion_tokens
            self.cached_tokens = cached_tokens_of(chunk.usage.prompt_tokens_details)
            self.audio_tokens = audio_tokens_of(chunk.usage)
            if self.hide_usage:
                if not chunk.choices:
                    return None
                chunk.usage = None
        messages = self.messages
        for choice in chunk.choices:
            if choice.finish_reason:
                self.finish_reasons[choice.index] = choice.finish_reason
            if messages is not None:
                parts = messages.get(choice.index)
                if parts is None:
                    parts = messages[choice.index] = _MessageParts()
                self._add(parts, choice)
        return chunk

    def _add(self, parts: _MessageParts, choice: Any) -> None:
        parts.add(choice.delta)

    def _ended_well(self) -> bool:
        """Whether a stream that stopped without [DONE] still said all it had to."""
        return bool(self.finish_reasons)

    def _output(self) -> Any:
        if self.messages is None:
            return None
        return [parts.message() for _, parts in sorted(self.messages.items())]

    def _bad_event(self, event: str, data: str) -> APIError:
        try:
            payload: Any = json.loads(data)
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if error is not None or event == "error":
            message = error.get("message") if isinstance(error, dict) else error
            text = self.secrets.scrub(str(message or data))
            return APIError(
                f"backend {self.backend!r} sent an error event mid-stream: {text} "
                f"(request id {self.request_id})",
                request_id=self.request_id,
                backend=self.backend,
            )
        return APIResponseValidationError(
            f"backend {self.backend!r} sent a stream event that is not a chat completion "
            f"chunk (request id {self.request_id})",
            request_id=self.request_id,
            backend=self.backend,
        )

    def interrupted(self, exc: Exception | None) -> StreamInterruptedError:
        cause = type(exc).__name__ if exc is not None else "it ended before [DONE]"
        return StreamInterruptedError(
            f"the stream from backend {self.backend!r} broke after it had started "
            f"({cause}); a started stream is never replayed (request id {self.request_id})",
            request_id=self.request_id,
            backend=self.backend,
        )

    def broken(self, exc: httpx.HTTPError) -> APIError | None:
        """The error for a failure while reading; None once [DONE] has arrived."""
        if self.done:
            return None
        if isinstance(exc, httpx.TransportError):
            return self.interrupted(exc)
        return APIResponseValidationError(
            f"the stream from backend {self.backend!r} could not be read "
            f"({type(exc).__name__}) (request id {self.request_id})",
            request_id=self.request_id,
            backend=self.backend,
        )

    def finish(self, error: BaseException | None = None, *, closed_early: bool = False) -> None:
        if self.tracker.finished:
            return
        info = None
        if isinstance(error, APIError):
            info = ErrorInfo(type(error).__name__, getattr(error, "status_code", None), str(error))
        elif error is not None:
            info = ErrorInfo(type(error).__name__, None, None)
        output = self._output()
        self.tracker.finish(
            error=info,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
            response_id=self.response_id,
            **self.audio_tokens,
            response_model=self.response_model,
            finish_reasons=tuple(reason for _, reason in sorted(self.finish_reasons.items())),
            output=output,
            closed_early=closed_early,
        )


class _CompletionReader(_ChunkReader):
    """A legacy completions stream: `Completion` chunks whose choices carry `text`."""

    item_type = Completion

    def _add(self, parts: _MessageParts, choice: Any) -> None:
        if choice.text:
            parts.content.append(choice.text)


class Stream(Generic[ItemT]):
    """An iterator of the stream's items (`ChatCompletionChunk` for a chat); also a
    context manager. Close it to stop early."""

    def __init__(self, reader: _ChunkReader) -> None:
        # The generator must not refer back to the stream: without a cycle, a stream left
        # by `break` or an exception is closed at once, not whenever the GC runs.
        self._reader = reader
        self._iterator = _chunks(reader)

    @property
    def request_id(self) -> str:
        return self._reader.request_id

    @property
    def provider_request_id(self) -> str | None:
        """The provider's own id of this request (its `x-request-id`), if it gave one."""
        return self._reader.provider_request_id or None

    @property
    def response(self) -> httpx.Response:
        return self._reader.response

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ItemT:
        return next(self._iterator)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._iterator.close()
        self._reader.finish(closed_early=True)
        self._reader.response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None and not reader.tracker.finished:
            self.close()


def _chunks(reader: _ChunkReader) -> Generator[Any, None, None]:
    lines = reader.lines
    try:
        while True:
            problem: httpx.HTTPError | None = None
            try:
                line = next(lines)
            except StopIteration:
                break
            except httpx.HTTPError as exc:
                problem = exc
            if problem is not None:  # raised here, outside the handler: no __context__
                error = reader.broken(problem)
                if error is None:
                    break
                raise error
            # After [DONE] the rest is drained, so the connection can be reused.
            chunk = None if reader.done else reader.chunk_for(line)
            if chunk is not None:
                yield chunk
        chunk = None if reader.done else reader.chunk_at_eof()
        if chunk is not None:
            yield chunk
    except GeneratorExit:
        reader.finish(closed_early=True)
        raise
    except BaseException as exc:
        reader.finish(exc)
        raise
    else:
        reader.finish()
    finally:
        reader.response.close()


class AsyncStream(Generic[ItemT]):
    """An async iterator of the stream's items; also an async context manager."""

    def __init__(
        self,
        reader: _ChunkReader,
        settle: Callable[[], Awaitable[None]] | None = None,
        deferred: DeferredAudit | None = None,
    ) -> None:
        self._reader = reader
        self._iterator = _async_chunks(reader)  # no reference back: see Stream
        # Awaited once the stream has ended: the durable audit line, off the event loop.
        self._settle = settle
        self._deferred = deferred

    @property
    def request_id(self) -> str:
        return self._reader.request_id

    @property
    def provider_request_id(self) -> str | None:
        """The provider's own id of this request (its `x-request-id`), if it gave one."""
        return self._reader.provider_request_id or None

    @property
    def response(self) -> httpx.Response:
        return self._reader.response

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ItemT:
        if self._settle is None:
            return await self._iterator.__anext__()  # type: ignore[no-any-return]
        try:
            return await self._iterator.__anext__()  # type: ignore[no-any-return]
        except BaseException:
            await self._settled()
            raise

    async def close(self) -> None:
        await self._iterator.aclose()
        self._reader.finish(closed_early=True)
        await self._settled()
        await self._reader.response.aclose()

    async def _settled(self) -> None:
        settle, self._settle = self._settle, None
        if settle is not None:
            await settle()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __del__(self) -> None:
        # The record must end, and the connection must go back to the pool even if the
        # stream was never read; closing it needs the event loop.
        reader = getattr(self, "_reader", None)
        if reader is None or reader.tracker.finished:
            return
        deferred = getattr(self, "_deferred", None)
        if deferred is not None:  # nobody will await it now: the line is written at once
            deferred.open = False
        reader.finish(closed_early=True)
        if reader.response.is_closed:
            return
        if "asyncio" not in sys.modules:  # then no asyncio event loop is running
            return
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(reader.response.aclose())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)


async def _async_chunks(reader: _ChunkReader) -> AsyncGenerator[Any, None]:
    lines = reader.lines
    try:
        while True:
            problem: httpx.HTTPError | None = None
            try:
                line = await lines.__anext__()
            except StopAsyncIteration:
                break
            except httpx.HTTPError as exc:
                problem = exc
            if problem is not None:  # raised here, outside the handler: no __context__
                error = reader.broken(problem)
                if error is None:
                    break
                raise error
            chunk = None if reader.done else reader.chunk_for(line)
            if chunk is not None:
                yield chunk
        chunk = None if reader.done else reader.chunk_at_eof()
        if chunk is not None:
            yield chunk
    except GeneratorExit:
        reader.finish(closed_early=True)
        raise
    except BaseException as exc:
        reader.finish(exc)
        raise
    else:
        reader.finish()
    finally:
        await reader.response.aclose()


_CLOSING: set[asyncio.Task[None]] = set()
