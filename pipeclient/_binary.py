"""`HttpxBinaryResponseContent`: what `audio.speech.create()` answers, the audio bytes
with openai-python's methods for reading and saving them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

__all__ = ["HttpxBinaryResponseContent"]


class HttpxBinaryResponseContent:
    """What `audio.speech.create()` answers (openai-python's type of the same name)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    @classmethod
    def decode_response(cls, response: httpx.Response) -> HttpxBinaryResponseContent:
        return cls(response)

    @property
    def content(self) -> bytes:
        return self.response.content

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def encoding(self) -> str | None:
        return self.response.encoding

    @property
    def charset_encoding(self) -> str | None:
        return self.response.charset_encoding

    def json(self, **kwargs: Any) -> Any:
        return self.response.json(**kwargs)

    def read(self) -> bytes:
        return self.content

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return self.response.iter_bytes(chunk_size)

    def iter_text(self, chunk_size: int | None = None) -> Iterator[str]:
        return self.response.iter_text(chunk_size)

    def iter_lines(self) -> Iterator[str]:
        return self.response.iter_lines()

    def iter_raw(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return self.response.iter_bytes(chunk_size)

    def write_to_file(self, file: str | os.PathLike[str]) -> None:
        with open(file, mode="wb") as out:
            out.write(self.content)

    def stream_to_file(
        self, file: str | os.PathLike[str], *, chunk_size: int | None = None
    ) -> None:
        self.write_to_file(file)  # the body has been read: the call's record is complete

    def close(self) -> None:
        self.response.close()

    async def aread(self) -> bytes:
        return self.content

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        for part in self.response.iter_bytes(chunk_size):
            yield part

    async def aiter_text(self, chunk_size: int | None = None) -> AsyncIterator[str]:
        for part in self.response.iter_text(chunk_size):
            yield part

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self.response.iter_lines():
            yield line

    async def aiter_raw(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        for part in self.response.iter_bytes(chunk_size):
            yield part

    async def astream_to_file(
        self, file: str | os.PathLike[str], *, chunk_size: int | None = None
    ) -> None:
        self.write_to_file(file)

    async def aclose(self) -> None:
        self.response.close()
