"""`AsyncClient.with_raw_response` and `.with_streaming_response` (see `views.py`)."""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

from .audio import AsyncAudio, AsyncAudioWithRawResponse, AsyncAudioWithStreamingResponse
from .chat import AsyncChat, AsyncChatWithRawResponse, AsyncChatWithStreamingResponse
from .endpoints import (
    AsyncModels,
    AsyncModelsWithRawResponse,
    AsyncModelsWithStreamingResponse,
    AsyncModerations,
    AsyncModerationsWithRawResponse,
    AsyncModerationsWithStreamingResponse,
    AsyncTextCompletions,
    AsyncTextCompletionsWithRawResponse,
    AsyncTextCompletionsWithStreamingResponse,
)
from .resources import (
    AsyncEmbeddings,
    AsyncEmbeddingsWithRawResponse,
    AsyncEmbeddingsWithStreamingResponse,
    AsyncImages,
    AsyncImagesWithRawResponse,
    AsyncImagesWithStreamingResponse,
)
from .responses import (
    AsyncResponses,
    AsyncResponsesWithRawResponse,
    AsyncResponsesWithStreamingResponse,
)

__all__ = ["AsyncClientWithRawResponse", "AsyncClientWithStreamingResponse"]


class _AsyncNamespaces(Protocol):
    @property
    def chat(self) -> AsyncChat: ...
    @property
    def embeddings(self) -> AsyncEmbeddings: ...
    @property
    def images(self) -> AsyncImages: ...
    @property
    def models(self) -> AsyncModels: ...
    @property
    def moderations(self) -> AsyncModerations: ...
    @property
    def completions(self) -> AsyncTextCompletions: ...
    @property
    def responses(self) -> AsyncResponses: ...
    @property
    def audio(self) -> AsyncAudio: ...


class AsyncClientWithRawResponse:
    """`AsyncClient.with_raw_response`: each method, awaited, answers with a
    `LegacyAPIResponse` (whose `.parse()` is not awaited, as in openai-python)."""

    def __init__(self, client: _AsyncNamespaces) -> None:
        self._client = client

    @cached_property
    def chat(self) -> AsyncChatWithRawResponse:
        return AsyncChatWithRawResponse(self._client.chat)

    @cached_property
    def embeddings(self) -> AsyncEmbeddingsWithRawResponse:
        return AsyncEmbeddingsWithRawResponse(self._client.embeddings)

    @cached_property
    def images(self) -> AsyncImagesWithRawResponse:
        return AsyncImagesWithRawResponse(self._client.images)

    @cached_property
    def models(self) -> AsyncModelsWithRawResponse:
        return AsyncModelsWithRawResponse(self._client.models)

    @cached_property
    def moderations(self) -> AsyncModerationsWithRawResponse:
        return AsyncModerationsWithRawResponse(self._client.moderations)

    @cached_property
    def completions(self) -> AsyncTextCompletionsWithRawResponse:
        return AsyncTextCompletionsWithRawResponse(self._client.completions)

    @cached_property
    def responses(self) -> AsyncResponsesWithRawResponse:
        return AsyncResponsesWithRawResponse(self._client.responses)

    @cached_property
    def audio(self) -> AsyncAudioWithRawResponse:
        return AsyncAudioWithRawResponse(self._client.audio)


class AsyncClientWithStreamingResponse:
    """`AsyncClient.with_streaming_response`: `async with` blocks of `AsyncAPIResponse`s."""

    def __init__(self, client: _AsyncNamespaces) -> None:
        self._client = client

    @cached_property
    def chat(self) -> AsyncChatWithStreamingResponse:
        return AsyncChatWithStreamingResponse(self._client.chat)

    @cached_property
    def embeddings(self) -> AsyncEmbeddingsWithStreamingResponse:
        return AsyncEmbeddingsWithStreamingResponse(self._client.embeddings)

    @cached_property
    def images(self) -> AsyncImagesWithStreamingResponse:
        return AsyncImagesWithStreamingResponse(self._client.images)

    @cached_property
    def models(self) -> AsyncModelsWithStreamingResponse:
        return AsyncModelsWithStreamingResponse(self._client.models)

    @cached_property
    def moderations(self) -> AsyncModerationsWithStreamingResponse:
        return AsyncModerationsWithStreamingResponse(self._client.moderations)

    @cached_property
    def completions(self) -> AsyncTextCompletionsWithStreamingResponse:
        return AsyncTextCompletionsWithStreamingResponse(self._client.completions)

    @cached_property
    def responses(self) -> AsyncResponsesWithStreamingResponse:
        return AsyncResponsesWithStreamingResponse(self._client.responses)

    @cached_property
    def audio(self) -> AsyncAudioWithStreamingResponse:
        return AsyncAudioWithStreamingResponse(self._client.audio)
