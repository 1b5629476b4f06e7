"""`client.audio`: transcriptions (a multipart upload) and speech (audio bytes back).

Audio and files are content: the privacy step gives content destinations the file's
name and size and the text around it, never the audio; metadata destinations none of it.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal, overload

import httpx
from typing_extensions import Unpack

from .._exceptions import ConfigError
from ..types import HttpxBinaryResponseContent, Transcription
from .call import Form
from .params import SpeechParams, TranscriptionParams
from .raw import (
    async_to_raw_response_wrapper,
    async_to_streamed_binary_wrapper,
    async_to_streamed_response_wrapper,
    to_raw_response_wrapper,
    to_streamed_binary_wrapper,
    to_streamed_response_wrapper,
)
from .resources import AsyncCaller, Caller, body_and_extras

__all__ = [
    "AsyncAudio",
    "AsyncSpeech",
    "AsyncTranscriptions",
    "Audio",
    "Speech",
    "Transcriptions",
]

_TEXT_FORMATS = ("text", "srt", "vtt")


class TranscriptText(str):
    """A transcript asked for as text (`text`, `srt`, `vtt`): a plain `str`."""

    @classmethod
    def decode_response(cls, response: httpx.Response) -> str:
        return response.text


def _transcription(
    file: Any, model: str, response_format: str | None, stream: bool, params: TranscriptionParams
) -> tuple[dict[str, Any], dict[str, Any], Form, type[Any]]:
    if stream:
        raise ConfigError(
            "streamed transcriptions are not supported; leave stream out",
            source="call argument",
            key="stream",
        )
    fields = {"model": model, "response_format": response_format}
    where = "audio.transcriptions.create()"
    body, extras = body_and_extras(params, TranscriptionParams, where, fields)
    decoded = TranscriptText if response_format in _TEXT_FORMATS else Transcription
    return body, extras, Form(file), decoded


def _speech(
    input: str, model: str, voice: Any, params: SpeechParams
) -> tuple[dict[str, Any], dict[str, Any]]:
    fields = {"input": input, "model": model, "voice": voice}
    return body_and_extras(params, SpeechParams, "audio.speech.create()", fields)


class Transcriptions:
    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> TranscriptionsWithRawResponse:
        return TranscriptionsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> TranscriptionsWithStreamingResponse:
        return TranscriptionsWithStreamingResponse(self)

    @overload
    def create(
        self,
        *,
        file: Any,
        model: str,
        response_format: Literal["json", "verbose_json", "diarized_json"] | None = None,
        stream: Literal[False] = False,
        **params: Unpack[TranscriptionParams],
    ) -> Transcription: ...

    @overload
    def create(
        self,
        *,
        file: Any,
        model: str,
        response_format: Literal["text", "srt", "vtt"],
        stream: Literal[False] = False,
        **params: Unpack[TranscriptionParams],
    ) -> str: ...

    def create(
        self,
        *,
        file: Any,
        model: str,
        response_format: str | None = None,
        stream: bool = False,
        **params: Unpack[TranscriptionParams],
    ) -> Transcription | str:
        """POST /audio/transcriptions (multipart). `file`: bytes, a path, an open binary
        file or a `(name, content)` tuple, as openai-python takes it."""
        body, extras, form, decoded = _transcription(file, model, response_format, stream, params)
        call = self._client._start(
            "transcriptions", "/audio/transcriptions", body, form=form, **extras
        )
        return self._client._call(call, decoded)  # type: ignore[no-any-return]


class Speech:
    def __init__(self, client: Caller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> SpeechWithRawResponse:
        return SpeechWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> SpeechWithStreamingResponse:
        return SpeechWithStreamingResponse(self)

    def create(
        self, *, input: str, model: str, voice: str | dict[str, Any], **params: Unpack[SpeechParams]
    ) -> HttpxBinaryResponseContent:
        """POST /audio/speech: the audio, in `response_format` (mp3 by default)."""
        body, extras = _speech(input, model, voice, params)
        call = self._client._start("speech", "/audio/speech", body, **extras)
        return self._client._call(call, HttpxBinaryResponseContent)


class Audio:
    def __init__(self, client: Caller) -> None:
        self.transcriptions = Transcriptions(client)
        self.speech = Speech(client)

    @cached_property
    def with_raw_response(self) -> AudioWithRawResponse:
        return AudioWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AudioWithStreamingResponse:
        return AudioWithStreamingResponse(self)


class AsyncTranscriptions:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncTranscriptionsWithRawResponse:
        return AsyncTranscriptionsWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncTranscriptionsWithStreamingResponse:
        return AsyncTranscriptionsWithStreamingResponse(self)

    @overload
    async def create(
        self,
        *,
        file: Any,
        model: str,
        response_format: Literal["json", "verbose_json", "diarized_json"] | None = None,
        stream: Literal[False] = False,
        **params: Unpack[TranscriptionParams],
    ) -> Transcription: ...

    @overload
    async def create(
        self,
        *,
        file: Any,
        model: str,
        response_format: Literal["text", "srt", "vtt"],
        stream: Literal[False] = False,
        **params: Unpack[TranscriptionParams],
    ) -> str: ...

    async def create(
        self,
        *,
        file: Any,
        model: str,
        response_format: str | None = None,
        stream: bool = False,
        **params: Unpack[TranscriptionParams],
    ) -> Transcription | str:
        """POST /audio/transcriptions (multipart)."""
        body, extras, form, decoded = _transcription(file, model, response_format, stream, params)
        call = self._client._start(
            "transcriptions", "/audio/transcriptions", body, form=form, **extras
        )
        return await self._client._call(call, decoded)


class AsyncSpeech:
    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    @cached_property
    def with_raw_response(self) -> AsyncSpeechWithRawResponse:
        return AsyncSpeechWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncSpeechWithStreamingResponse:
        return AsyncSpeechWithStreamingResponse(self)

    async def create(
        self, *, input: str, model: str, voice: str | dict[str, Any], **params: Unpack[SpeechParams]
    ) -> HttpxBinaryResponseContent:
        """POST /audio/speech."""
        body, extras = _speech(input, model, voice, params)
        call = self._client._start("speech", "/audio/speech", body, **extras)
        return await self._client._call(call, HttpxBinaryResponseContent)


class AsyncAudio:
    def __init__(self, client: AsyncCaller) -> None:
        self.transcriptions = AsyncTranscriptions(client)
        self.speech = AsyncSpeech(client)

    @cached_property
    def with_raw_response(self) -> AsyncAudioWithRawResponse:
        return AsyncAudioWithRawResponse(self)

    @cached_property
    def with_streaming_response(self) -> AsyncAudioWithStreamingResponse:
        return AsyncAudioWithStreamingResponse(self)


# -- with_raw_response / with_streaming_response ---------------------------------------


class AudioWithRawResponse:
    def __init__(self, audio: Audio) -> None:
        self.transcriptions = TranscriptionsWithRawResponse(audio.transcriptions)
        self.speech = SpeechWithRawResponse(audio.speech)


class AudioWithStreamingResponse:
    def __init__(self, audio: Audio) -> None:
        self.transcriptions = TranscriptionsWithStreamingResponse(audio.transcriptions)
        self.speech = SpeechWithStreamingResponse(audio.speech)


class TranscriptionsWithRawResponse:
    def __init__(self, transcriptions: Transcriptions) -> None:
        self.create = to_raw_response_wrapper(transcriptions.create)


class TranscriptionsWithStreamingResponse:
    def __init__(self, transcriptions: Transcriptions) -> None:
        self.create = to_streamed_response_wrapper(transcriptions.create)


class SpeechWithRawResponse:
    def __init__(self, speech: Speech) -> None:
        self.create = to_raw_response_wrapper(speech.create)


class SpeechWithStreamingResponse:
    def __init__(self, speech: Speech) -> None:
        self.create = to_streamed_binary_wrapper(speech.create)


class AsyncAudioWithRawResponse:
    def __init__(self, audio: AsyncAudio) -> None:
        self.transcriptions = AsyncTranscriptionsWithRawResponse(audio.transcriptions)
        self.speech = AsyncSpeechWithRawResponse(audio.speech)


class AsyncAudioWithStreamingResponse:
    def __init__(self, audio: AsyncAudio) -> None:
        self.transcriptions = AsyncTranscriptionsWithStreamingResponse(audio.transcriptions)
        self.speech = AsyncSpeechWithStreamingResponse(audio.speech)


class AsyncTranscriptionsWithRawResponse:
    def __init__(self, transcriptions: AsyncTranscriptions) -> None:
        self.create = async_to_raw_response_wrapper(transcriptions.create)


class AsyncTranscriptionsWithStreamingResponse:
    def __init__(self, transcriptions: AsyncTranscriptions) -> None:
        self.create = async_to_streamed_response_wrapper(transcriptions.create)


class AsyncSpeechWithRawResponse:
    def __init__(self, speech: AsyncSpeech) -> None:
        self.create = async_to_raw_response_wrapper(speech.create)


class AsyncSpeechWithStreamingResponse:
    def __init__(self, speech: AsyncSpeech) -> None:
        self.create = async_to_streamed_binary_wrapper(speech.create)
