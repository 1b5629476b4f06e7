"""`client.with_raw_response` and `client.with_streaming_response`, typed as openai-python's.

Each view mirrors a namespace: its methods are the namespace's own, with the same
signatures (overloads included), answering with a `LegacyAPIResponse[T]` or a context
manager of an `APIResponse[T]`, where `T` is what the method itself returns.
`AsyncClient`'s views are in `async_views.py`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

from .audio import Audio, AudioWithRawResponse, AudioWithStreamingResponse
from .chat import Chat, ChatWithRawResponse, ChatWithStreamingResponse
from .endpoints import (
    Models,
    ModelsWithRawResponse,
    ModelsWithStreamingResponse,
    Moderations,
    ModerationsWithRawResponse,
    ModerationsWithStreamingResponse,
    TextCompletions,
    TextCompletionsWithRawResponse,
    TextCompletionsWithStreamingResponse,
)
from .resources import (
    Embeddings,
    EmbeddingsWithRawResponse,
    EmbeddingsWithStreamingResponse,
    Images,
    ImagesWithRawResponse,
    ImagesWithStreamingResponse,
)
from .responses import Responses, ResponsesWithRawResponse, ResponsesWithStreamingResponse

__all__ = ["ClientWithRawResponse", "ClientWithStreamingResponse"]


class _Namespaces(Protocol):
    @property
    def chat(self) -> Chat: ...
    @property
    def embeddings(self) -> Embeddings: ...
    @property
    def images(self) -> Images: ...
    @property
    def models(self) -> Models: ...
    @property
    def moderations(self) -> Moderations: ...
    @property
    def completions(self) -> TextCompletions: ...
    @property
    def responses(self) -> Responses: ...
    @property
    def audio(self) -> Audio: ...


class ClientWithRawResponse:
    """`client.with_raw_response`: each method answers with a `LegacyAPIResponse`."""

    def __init__(self, client: _Namespaces) -> None:
        self._client = client

    @cached_property
    def chat(self) -> ChatWithRawResponse:
        return ChatWithRawResponse(self._client.chat)

    @cached_property
    def embeddings(self) -> EmbeddingsWithRawResponse:
        return EmbeddingsWithRawResponse(self._client.embeddings)

    @cached_property
    def images(self) -> ImagesWithRawResponse:
        return ImagesWithRawResponse(self._client.images)

    @cached_property
    def models(self) -> ModelsWithRawResponse:
        return ModelsWithRawResponse(self._client.models)

    @cached_property
    def moderations(self) -> ModerationsWithRawResponse:
        return ModerationsWithRawResponse(self._client.moderations)

    @cached_property
    def completions(self) -> TextCompletionsWithRawResponse:
        return TextCompletionsWithRawResponse(self._client.completions)

    @cached_property
    def responses(self) -> ResponsesWithRawResponse:
        return ResponsesWithRawResponse(self._client.responses)

    @cached_property
    def audio(self) -> AudioWithRawResponse:
        return AudioWithRawResponse(self._client.audio)


class ClientWithStreamingResponse:
    """`client.with_streaming_response`: each method answers with a context manager of an
    `APIResponse`; the call is made on entering the block, its answer closed on leaving."""

    def __init__(self, client: _Namespaces) -> None:
        self._client = client

    @cached_property
    def chat(self) -> ChatWithStreamingResponse:
        return ChatWithStreamingResponse(self._client.chat)

    @cached_property
    def embeddings(self) -> EmbeddingsWithStreamingResponse:
        return EmbeddingsWithStreamingResponse(self._client.embeddings)

    @cached_property
    def images(self) -> ImagesWithStreamingResponse:
        return ImagesWithStreamingResponse(self._client.images)

    @cached_property
    def models(self) -> ModelsWithStreamingResponse:
        return ModelsWithStreamingResponse(self._client.models)

    @cached_property
    def moderations(self) -> ModerationsWithStreamingResponse:
        return ModerationsWithStreamingResponse(self._client.moderations)

    @cached_property
    def completions(self) -> TextCompletionsWithStreamingResponse:
        return TextCompletionsWithStreamingResponse(self._client.completions)

    @cached_property
    def responses(self) -> ResponsesWithStreamingResponse:
        return ResponsesWithStreamingResponse(self._client.responses)

    @cached_property
    def audio(self) -> AudioWithStreamingResponse:
        return AudioWithStreamingResponse(self._client.audio)
