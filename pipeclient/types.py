"""Response objects, with the field names of the OpenAI REST API.

Lenient on input (unknown fields are kept, fields some compatible servers omit get the
API's defaults) so that `.model_dump()` always has the API's shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from ._binary import HttpxBinaryResponseContent

__all__ = [
    "Base64Embedding",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "CompletionUsage",
    "CreateEmbeddingBase64Response",
    "CreateEmbeddingResponse",
    "Embedding",
    "EmbeddingUsage",
    "FunctionCall",
    "HttpxBinaryResponseContent",
    "Image",
    "ImagesResponse",
    "Model",
    "Moderation",
    "ModerationCategories",
    "ModerationCategoryScores",
    "ModerationCreateResponse",
    "ParsedChatCompletion",
    "ParsedChatCompletionMessage",
    "ParsedChoice",
    "Response",
    "ResponseOutputContent",
    "ResponseOutputItem",
    "ResponseStreamEvent",
    "ResponseUsage",
    "SyncPage",
    "ToolCall",
    "Transcription",
]


class _Model(BaseModel):
    # Validators are built on first use, not at import: a client that never makes a given
    # kind of call never pays for its response types.
    model_config = ConfigDict(extra="allow", protected_namespaces=(), defer_build=True)


class _Response(_Model):
    # As openai-python: `_request_id` is the provider's own id of the request.
    _request_id: str = PrivateAttr(default="")
    _pipeclient_request_id: str = PrivateAttr(default="")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _quick_private_init(cls)

    @property
    def request_id(self) -> str:
        """The call's X-Request-Id (the same on every retry and failover hop)."""
        return self._pipeclient_request_id

    @property
    def provider_request_id(self) -> str | None:
        """The provider's own id of the request (its `x-request-id`), if it gave one."""
        return self._request_id or None


def _quick_private_init(cls: type[BaseModel]) -> None:
    """Give each validated response its two request ids' defaults with one dict.

    pydantic initialises private attributes in Python after every validation, through
    its generic default machinery, and twice over for a subclass (a wrapper calling the
    inherited initialiser): about 1.5 us, paid by every chunk of a stream. The ids are plain
    string defaults, so a copy of one dict is the same state. A class with any other kind
    of private attribute, or a `model_post_init` of its own, keeps pydantic's."""
    try:
        from pydantic._internal._model_construction import init_private_attributes
    except ImportError:  # another pydantic: its own way, untouched
        return
    current = cls.model_post_init
    own = getattr(current, "__wrapped__", current)
    if own is not init_private_attributes and not getattr(own, "_pipeclient_quick", False):
        return
    privates = cls.__private_attributes__
    if any(not isinstance(attr.default, str) or attr.default_factory for attr in privates.values()):
        return
    defaults = {name: attr.default for name, attr in privates.items()}
    set_private = object.__setattr__

    def model_post_init(self: BaseModel, context: Any, /) -> None:
        set_private(self, "__pydantic_private__", defaults.copy())

    model_post_init._pipeclient_quick = True  # type: ignore[attr-defined]
    cls.model_post_init = model_post_init  # type: ignore[method-assign]


_quick_private_init(_Response)


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


ParsedT = TypeVar("ParsedT")


class ParsedChatCompletionMessage(ChatCompletionMessage, Generic[ParsedT]):
    #: the content validated into the `response_format` class (None on a refusal)
    parsed: ParsedT | None = None


class ParsedChoice(Choice, Generic[ParsedT]):
    message: ParsedChatCompletionMessage[ParsedT]


class ParsedChatCompletion(ChatCompletion, Generic[ParsedT]):
    choices: list[ParsedChoice[ParsedT]]  # type: ignore[assignment]


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


# Models ----------------------------------------------------------------------------------

PageItemT = TypeVar("PageItemT", bound=BaseModel)


class Model(_Model):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = ""


class SyncPage(_Response, Generic[PageItemT]):
    """One page of a list (`client.models.list()`): iterate it for its items."""

    object: str = "list"
    data: list[PageItemT]

    def __iter__(self) -> Iterator[PageItemT]:  # type: ignore[override]
        return iter(self.data)

    def has_next_page(self) -> bool:
        return False  # the list endpoints pipeclient serves answer in one page


# Moderations -----------------------------------------------------------------------------


class _ByAlias(_Model):
    model_config = ConfigDict(
        extra="allow",
        protected_namespaces=(),
        defer_build=True,
        populate_by_name=True,
        serialize_by_alias=True,
    )


class ModerationCategories(_ByAlias):
    harassment: bool = False
    harassment_threatening: bool = Field(default=False, alias="harassment/threatening")
    hate: bool = False
    hate_threatening: bool = Field(default=False, alias="hate/threatening")
    illicit: bool | None = None
    illicit_violent: bool | None = Field(default=None, alias="illicit/violent")
    self_harm: bool = Field(default=False, alias="self-harm")
    self_harm_instructions: bool = Field(default=False, alias="self-harm/instructions")
    self_harm_intent: bool = Field(default=False, alias="self-harm/intent")
    sexual: bool = False
    sexual_minors: bool = Field(default=False, alias="sexual/minors")
    violence: bool = False
    violence_graphic: bool = Field(default=False, alias="violence/graphic")


class ModerationCategoryScores(_ByAlias):
    harassment: float = 0.0
    harassment_threatening: float = Field(default=0.0, alias="harassment/threatening")
    hate: float = 0.0
    hate_threatening: float = Field(default=0.0, alias="hate/threatening")
    illicit: float = 0.0
    illicit_violent: float = Field(default=0.0, alias="illicit/violent")
    self_harm: float = Field(default=0.0, alias="self-harm")
    self_harm_instructions: float = Field(default=0.0, alias="self-harm/instructions")
    self_harm_intent: float = Field(default=0.0, alias="self-harm/intent")
    sexual: float = 0.0
    sexual_minors: float = Field(default=0.0, alias="sexual/minors")
    violence: float = 0.0
    violence_graphic: float = Field(default=0.0, alias="violence/graphic")


class Moderation(_Model):
    flagged: bool
    categories: ModerationCategories
    category_scores: ModerationCategoryScores
    category_applied_input_types: dict[str, list[str]] | None = None


class ModerationCreateResponse(_Response):
    id: str = ""
    model: str = ""
    results: list[Moderation]


# Legacy completions ----------------------------------------------------------------------


class CompletionChoice(_Model):
    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class Completion(_Response):
    """A legacy `completions.create()` answer, and each chunk of its stream."""

    id: str = ""
    object: Literal["text_completion"] = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: str | None = None


# The Responses API -----------------------------------------------------------------------


class ResponseOutputContent(_Model):
    """A part of an output message: `output_text` (with `text`) or `refusal`."""

    type: str = "output_text"
    text: str | None = None
    refusal: str | None = None
    annotations: list[Any] | None = None


class ResponseOutputItem(_Model):
    """One output item: a `message` (its `content`), a `function_call` (`name`,
    `arguments`, `call_id`), a `reasoning` item, a tool's call; other fields are kept."""

    type: str
    id: str | None = None
    status: str | None = None
    role: str | None = None
    content: list[ResponseOutputContent] | None = None
    name: str | None = None
    arguments: str | None = None
    call_id: str | None = None


class ResponseUsage(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, Any] = Field(
        default_factory=lambda: {"cached_tokens": 0, "cache_write_tokens": 0}
    )
    output_tokens_details: dict[str, Any] = Field(default_factory=lambda: {"reasoning_tokens": 0})


class Response(_Response):
    id: str = ""
    object: Literal["response"] = "response"
    created_at: float = 0.0
    model: str = ""
    status: str | None = None
    output: list[ResponseOutputItem] = Field(default_factory=list)
    usage: ResponseUsage | None = None
    previous_response_id: str | None = None
    instructions: Any = None
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    tool_choice: Any = "auto"
    tools: list[Any] = Field(default_factory=list)
    text: dict[str, Any] | None = None

    @property
    def output_text(self) -> str:
        """The text of every `output_text` part of every output message, joined."""
        return "".join(
            part.text or ""
            for item in self.output
            if item.type == "message"
            for part in item.content or ()
            if part.type == "output_text"
        )


class ResponseStreamEvent(_Response):
    """One event of a streamed response: `type` says which (`response.created`,
    `response.output_text.delta`, `response.completed`, ...); its other fields are those of
    that event (`delta`, `response`, `item`, ...)."""

    type: str
    sequence_number: int = 0
    delta: str | None = None
    response: Response | None = None
    item: ResponseOutputItem | None = None
    item_id: str | None = None
    output_index: int | None = None
    content_index: int | None = None


# Audio -------------------------------------------------------------------------------------


class Transcription(_Response):
    """`audio.transcriptions.create()` (JSON formats; `verbose_json` fields are kept)."""

    text: str
    usage: dict[str, Any] | None = None
    logprobs: list[Any] | None = None
    languages: list[Any] | None = None
