"""`client.responses`: the Responses API, plain and streamed (typed events)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, overload

from typing_extensions import Unpack

from .._exceptions import APIError
from ..types import Response, ResponseStreamEvent
from .answers import cached_tokens_of, finish_reasons_of, output_message
from .params import ResponseParams
from .raw import (
    async_to_raw_response_wrapper,
    async_to_streamed_response_wrapper,
    to_raw_response_wrapper,
    to_streamed_response_wrapper,
)
from .resources import AsyncCaller, Caller, body_and_extras
from .streaming import _ChunkReader

if TYPE_CHECKING:
    from .streaming import AsyncStream, Stream

__all__ = ["AsyncResponses", "ResponseEventReader", "Responses"]

Input = str | Iterable[Mapping[str, Any] | Any]
# The events that end a streamed response, and carry the whole of it.
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponseEventReader(_ChunkReader):
    """A streamed response: typed events, ended by `response.completed` (or
    `.incomplete`, `.failed`); an `error` event is the call's error."""

    item_type = ResponseStreamEvent

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.final: Response | None = None

    def _parse(self, event: str, data: str) -> Any:
        parsed = super()._parse(event, data)
        if parsed.type == "error":
            raise self._error_event(parsed)
        return parsed

    def _error_event(self, event: ResponseStreamEvent) -> APIError:
        message = getattr(event, "message", None) or "error"
        text = self.secrets.scrub(str(message))
        return APIError(
            f"backend {self.backend!r} sent an error event mid-stream: {text} "
            f"(request id {self.request_id})",
            request_id=self.request_id,
            backend=self.backend,
        )

    def _absorb(self, event: Any) -> Any:
        response = event.response
        if response is not None:
            self.response_id = response.id or self.response_id
            self.response_model = response.model or self.response_model
        if event.type in _FINAL and response is not None:
            self.final = response
            self.done = True
            if response.usage is not None:
                self.input_tokens = response.usage.input_tokens
                self.output_tokens = response.usage.output_tokens
                self.cached_tokens = cached_tokens_of(response.usage.input_tokens_details)
            self.finish_reasons = dict(enumerate(finish_reasons_of(response)))
        return event

    def _ended_well(self) -> bool:
        return self.final is not None

    def _output(self) -> Any:
        if self.messages is None or self.final is None:
            return None
        return [output_message(self.final)]


def _body(
    model: str | None, input: Input | None, stream: bool, params: ResponseParams
) -> tuple[dict[str, Any], dict[str, Any]]:
    given = input if input is None or isinstance(input, str) else list(input)
    fields = {"model": model, "input": given}
    return body_and_extras(params, ResponseParams, "responses.create()", fields, stream)


class Responses:
    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> ResponsesWithRawResponse:
        return ResponsesWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> ResponsesWithStreamingResponse:
        return ResponsesWithStreamingResponse(self)

    @overload
    def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: Literal[False] = False,
        **params: Unpack[ResponseParams],
    ) -> Response: ...

    @overload
    def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: Literal[True],
        **params: Unpack[ResponseParams],
    ) -> Stream[ResponseStreamEvent]: ...

    @overload
    def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: bool,
        **params: Unpack[ResponseParams],
    ) -> Response | Stream[ResponseStreamEvent]: ...

    def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: bool = False,
        **params: Unpack[ResponseParams],
    ) -> Response | Stream[ResponseStreamEvent]:
        """POST /responses. With `stream=True`, a `Stream` of `ResponseStreamEvent`s."""
        body, extras = _body(model, input, stream, params)
        call = self._client._start("responses", "/responses", body, **extras)
        if stream:
            return self._client._stream(call, ResponseEventReader)
        return self._client._call(call, Response)


class AsyncResponses:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncResponsesWithRawResponse:
        return AsyncResponsesWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncResponsesWithStreamingResponse:
        return AsyncResponsesWithStreamingResponse(self)

    @overload
    async def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: Literal[False] = False,
        **params: Unpack[ResponseParams],
    ) -> Response: ...

    @overload
    async def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: Literal[True],
        **params: Unpack[ResponseParams],
    ) -> AsyncStream[ResponseStreamEvent]: ...

    @overload
    async def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: bool,
        **params: Unpack[ResponseParams],
    ) -> Response | AsyncStream[ResponseStreamEvent]: ...

    async def create(
        self,
        *,
        model: str | None = None,
        input: Input | None = None,
        stream: bool = False,
        **params: Unpack[ResponseParams],
    ) -> Response | AsyncStream[ResponseStreamEvent]:
        """POST /responses. With `stream=True`, an `AsyncStream` of `ResponseStreamEvent`s."""
        body, extras = _body(model, input, stream, params)
        call = self._client._start("responses", "/responses", body, **extras)
        if stream:
            return await self._client._stream(call, ResponseEventReader)
        return await self._client._call(call, Response)


# -- with_raw_response / with_streaming_response ---------------------------------------


class ResponsesWithRawResponse:
    def __init__(self, responses: Responses) -> None:
        self.create = to_raw_response_wrapper(responses.create)


class ResponsesWithStreamingResponse:
    def __init__(self, responses: Responses) -> None:
        self.create = to_streamed_response_wrapper(responses.create)


class AsyncResponsesWithRawResponse:
    def __init__(self, responses: AsyncResponses) -> None:
        self.create = async_to_raw_response_wrapper(responses.create)


class AsyncResponsesWithStreamingResponse:
    def __init__(self, responses: AsyncResponses) -> None:
        self.create = async_to_streamed_response_wrapper(responses.create)
