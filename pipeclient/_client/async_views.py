"""`AsyncClient.with_raw_response` and `.with_streaming_response` (see `views.py`)."""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

from .audio import AsyncAudio, AsyncSpeech, AsyncTranscriptions
from .endpoints import AsyncModels, AsyncModerations, AsyncTextCompletions
from .raw import (
    async_to_raw_response_wrapper,
    async_to_streamed_binary_wrapper,
    async_to_streamed_response_wrapper,
)
from .resources import AsyncChat, AsyncCompletions, AsyncEmbeddings, AsyncImages
from .responses import AsyncResponses

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


# -- with_raw_response (AsyncClient) --------------------------------------------------


class AsyncCompletionsWithRawResponse:
    def __init__(self, completions: AsyncCompletions) -> None:
        self.create = async_to_raw_response_wrapper(completions.create)
        self.parse = async_to_raw_response_wrapper(completions.parse)


class AsyncChatWithRawResponse:
    def __init__(self, chat: AsyncChat) -> None:
        self.completions = AsyncCompletionsWithRawResponse(chat.completions)


class AsyncEmbeddingsWithRawResponse:
    def __init__(self, embeddings: AsyncEmbeddings) -> None:
        self.create = async_to_raw_response_wrapper(embeddings.create)


class AsyncImagesWithRawResponse:
    def __init__(self, images: AsyncImages) -> None:
        self.generate = async_to_raw_response_wrapper(images.generate)


class AsyncModelsWithRawResponse:
    def __init__(self, models: AsyncModels) -> None:
        self.list = async_to_raw_response_wrapper(models.list)
        self.retrieve = async_to_raw_response_wrapper(models.retrieve)


class AsyncModerationsWithRawResponse:
    def __init__(self, moderations: AsyncModerations) -> None:
        self.create = async_to_raw_response_wrapper(moderations.create)


class AsyncTextCompletionsWithRawResponse:
    def __init__(self, completions: AsyncTextCompletions) -> None:
        self.create = async_to_raw_response_wrapper(completions.create)


class AsyncResponsesWithRawResponse:
    def __init__(self, responses: AsyncResponses) -> None:
        self.create = async_to_raw_response_wrapper(responses.create)


class AsyncAudioWithRawResponse:
    def __init__(self, audio: AsyncAudio) -> None:
        self.transcriptions = AsyncTranscriptionsWithRawResponse(audio.transcriptions)
        self.speech = AsyncSpeechWithRawResponse(audio.speech)


class AsyncTranscriptionsWithRawResponse:
    def __init__(self, transcriptions: AsyncTranscriptions) -> None:
        self.create = async_to_raw_response_wrapper(transcriptions.create)


class AsyncSpeechWithRawResponse:
    def __init__(self, speech: AsyncSpeech) -> None:
        self.create = async_to_raw_response_wrapper(speech.create)


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


# -- with_streaming_response (AsyncClient) --------------------------------------------


class AsyncCompletionsWithStreamingResponse:
    def __init__(self, completions: AsyncCompletions) -> None:
        self.create = async_to_streamed_response_wrapper(completions.create)
        self.parse = async_to_streamed_response_wrapper(completions.parse)


class AsyncChatWithStreamingResponse:
    def __init__(self, chat: AsyncChat) -> None:
        self.completions = AsyncCompletionsWithStreamingResponse(chat.completions)


class AsyncEmbeddingsWithStreamingResponse:
    def __init__(self, embeddings: AsyncEmbeddings) -> None:
        self.create = async_to_streamed_response_wrapper(embeddings.create)


class AsyncImagesWithStreamingResponse:
    def __init__(self, images: AsyncImages) -> None:
        self.generate = async_to_streamed_response_wrapper(images.generate)


class AsyncModelsWithStreamingResponse:
    def __init__(self, models: AsyncModels) -> None:
        self.list = async_to_streamed_response_wrapper(models.list)
        self.retrieve = async_to_streamed_response_wrapper(models.retrieve)


class AsyncModerationsWithStreamingResponse:
    def __init__(self, moderations: AsyncModerations) -> None:
        self.create = async_to_streamed_response_wrapper(moderations.create)


class AsyncTextCompletionsWithStreamingResponse:
    def __init__(self, completions: AsyncTextCompletions) -> None:
        self.create = async_to_streamed_response_wrapper(completions.create)


class AsyncResponsesWithStreamingResponse:
    def __init__(self, responses: AsyncResponses) -> None:
        self.create = async_to_streamed_response_wrapper(responses.create)


class AsyncAudioWithStreamingResponse:
    def __init__(self, audio: AsyncAudio) -> None:
        self.transcriptions = AsyncTranscriptionsWithStreamingResponse(audio.transcriptions)
        self.speech = AsyncSpeechWithStreamingResponse(audio.speech)


class AsyncTranscriptionsWithStreamingResponse:
    def __init__(self, transcriptions: AsyncTranscriptions) -> None:
        self.create = async_to_streamed_response_wrapper(transcriptions.create)


class AsyncSpeechWithStreamingResponse:
    def __init__(self, speech: AsyncSpeech) -> None:
        self.create = async_to_streamed_binary_wrapper(speech.create)


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
