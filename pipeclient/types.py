"""Response objects, with the field names of the OpenAI REST API.

Lenient on input (unknown fields are kept, fields some compatible servers omit get the
API's defaults) so that `.model_dump()` always has the API's shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator

__all__ = [
    "Base64Embedding",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChunkChoice",
    "CompletionUsage",
    "CreateEmbeddingBase64Response",
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingUsage",
    "FunctionCall",
    "Image",
    "ImagesResponse",
    "ToolCall",
]


class _Model(BaseModel):
    # Validators are built on first use, not at import: a client that never makes a given
    # kind of call never pays for its response types.
    model_config = ConfigDict(extra="allow", protected_namespaces=(), defer_build=True)


class _Response(_Model):
    _request_id: str = PrivateAttr(default="")

    @property
    def request_id(self) -> str:
        """The call's X-Request-Id (the same on every retry and failover hop)."""
        return self._request_id


class CompletionUsage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class FunctionCall(_Model):
    name: str = ""
    arguments: str = ""


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatCompletionMessage(_Model):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_Model):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: str | None = "stop"
    logprobs: dict[str, Any] | None = None


class ChatCompletion(_Response):
    id: str = ""
    object: Literal["chat.completion"] = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


class ChoiceDeltaFunctionCall(_Model):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(_Model):
    index: int = 0
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaFunctionCall | None = None


class ChoiceDelta(_Model):
    role: Literal["developer", "system", "user", "assistant", "tool"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChunkChoice(_Model):
    index: int = 0
    delta: ChoiceDelta = ChoiceDelta()
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(_Response):
    id: str = ""
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


class Embedding(_Model):
    object: Literal["embedding"] = "embedding"
    index: int = 0
    embedding: list[float]


class Base64Embedding(_Model):
    """An embedding asked for with `encoding_format="base64"`: little-endian float32s,
    base64-encoded (`numpy.frombuffer(base64.b64decode(e.embedding), dtype="<f4")`)."""

    object: Literal["embedding"] = "embedding"
    index: int = 0
    embedding: str


class EmbeddingUsage(_Model):
    prompt_tokens: int = 0
    total_tokens: int = 0


class _EmbeddingsResponse(_Response):
    object: Literal["list"] = "list"
    model: str = ""
    usage: EmbeddingUsage = EmbeddingUsage()

    @field_validator("usage", mode="before")
    @classmethod
    def _usage_may_be_null(cls, value: Any) -> Any:
        return EmbeddingUsage() if value is None else value


class CreateEmbeddingResponse(_EmbeddingsResponse):
    data: list[Embedding]


class CreateEmbeddingBase64Response(_EmbeddingsResponse):
    """`embeddings.create(..., encoding_format="base64")`: each embedding a base64 string."""

    data: list[Base64Embedding]


class Image(_Model):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(_Response):
    created: int = 0
    data: list[Image] | None = None
    usage: dict[str, Any] | None = None
