"""`client.with_raw_response` and `client.with_streaming_response`, typed as openai-python's.

Each view mirrors a namespace: its methods are the namespace's own, with the same
signatures (overloads included), answering with a `LegacyAPIResponse[T]` or a context
manager of an `APIResponse[T]`, where `T` is what the method itself returns.
`AsyncClient`'s views are in `async_views.py`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

from .audio import Audio, Speech, Transcriptions
from .endpoints import Models, Moderations, TextCompletions
from .raw import to_raw_response_wrapper, to_streamed_binary_wrapper, to_streamed_response_wrapper
from .resources import Chat, Completions, Embeddings, Images
from .responses import Responses

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


# -- with_raw_response (Client) -----------------------------------------------------


class CompletionsWithRawResponse:
    def __init__(self, completions: Completions) -> None:
        self.create = to_raw_response_wrapper(completions.create)
        self.parse = to_raw_response_wrapper(completions.parse)


class ChatWithRawResponse:
    def __init__(self, chat: Chat) -> None:
        self.completions = CompletionsWithRawResponse(chat.completions)


class ModelsWithRawResponse:
    def __init__(self, models: Models) -> None:
        self.list = to_raw_response_wrapper(models.list)
        self.retrieve = to_raw_response_wrapper(models.retrieve)


class AudioWithRawResponse:
    def __init__(self, audio: Audio) -> None:
        self.transcriptions = TranscriptionsWithRawResponse(audio.transcriptions)
        self.speech = SpeechWithRawResponse(audio.speech)


class TranscriptionsWithRawResponse:
    def __init__(self, transcriptions: Transcriptions) -> None:
        self.create = to_raw_response_wrapper(transcriptions.create)


class SpeechWithRawResponse:
    def __init__(self, speech: Speech) -> None:
        self.create = to_raw_response_wrapper(speech.create)


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


class EmbeddingsWithRawResponse:
    def __init__(self, embeddings: Embeddings) -> None:
        self.create = to_raw_response_wrapper(embeddings.create)


class ImagesWithRawResponse:
    def __init__(self, images: Images) -> None:
        self.generate = to_raw_response_wrapper(images.generate)


class ModerationsWithRawResponse:
    def __init__(self, moderations: Moderations) -> None:
        self.create = to_raw_response_wrapper(moderations.create)


class TextCompletionsWithRawResponse:
    def __init__(self, completions: TextCompletions) -> None:
        self.create = to_raw_response_wrapper(completions.create)


class ResponsesWithRawResponse:
    def __init__(self, responses: Responses) -> None:
        self.create = to_raw_response_wrapper(responses.create)


# -- with_streaming_response (Client) -------------------------------------------------


class CompletionsWithStreamingResponse:
    def __init__(self, completions: Completions) -> None:
        self.create = to_streamed_response_wrapper(completions.create)
        self.parse = to_streamed_response_wrapper(completions.parse)


class ChatWithStreamingResponse:
    def __init__(self, chat: Chat) -> None:
        self.completions = CompletionsWithStreamingResponse(chat.completions)


class EmbeddingsWithStreamingResponse:
    def __init__(self, embeddings: Embeddings) -> None:
        self.create = to_streamed_response_wrapper(embeddings.create)


class ImagesWithStreamingResponse:
    def __init__(self, images: Images) -> None:
        self.generate = to_streamed_response_wrapper(images.generate)


class ModelsWithStreamingResponse:
    def __init__(self, models: Models) -> None:
        self.list = to_streamed_response_wrapper(models.list)
        self.retrieve = to_streamed_response_wrapper(models.retrieve)


class ModerationsWithStreamingResponse:
    def __init__(self, moderations: Moderations) -> None:
        self.create = to_streamed_response_wrapper(moderations.create)


class TextCompletionsWithStreamingResponse:
    def __init__(self, completions: TextCompletions) -> None:
        self.create = to_streamed_response_wrapper(completions.create)


class ResponsesWithStreamingResponse:
    def __init__(self, responses: Responses) -> None:
        self.create = to_streamed_response_wrapper(responses.create)


class AudioWithStreamingResponse:
    def __init__(self, audio: Audio) -> None:
        self.transcriptions = TranscriptionsWithStreamingResponse(audio.transcriptions)
        self.speech = SpeechWithStreamingResponse(audio.speech)


class TranscriptionsWithStreamingResponse:
    def __init__(self, transcriptions: Transcriptions) -> None:
        self.create = to_streamed_response_wrapper(transcriptions.create)


class SpeechWithStreamingResponse:
    def __init__(self, speech: Speech) -> None:
        self.create = to_streamed_binary_wrapper(speech.create)


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
