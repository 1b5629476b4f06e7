"""The OpenTelemetry GenAI semantic conventions, applied to pipeclient's records: pure.

Operation and provider names, request parameters, the client metrics, and content as the
conventions' message parts, all from OpenAI-shaped records. No SDK: `encode` uses these.

The version emitted is pinned here, in one place: `CONVENTIONS_VERSION`, the last release
of the GenAI conventions published with the OpenTelemetry semantic conventions (they have
since moved to a repository of their own, semantic-conventions-genai, and the Python
`opentelemetry-semantic-conventions` package marks its `gen_ai.*` constants deprecated).
Spans and metrics carry its schema URL. The newer per-direction token histograms
(`gen_ai.client.inference.usage.*`, still in development there) are an opt-in:
`[[otlp]] token_metrics = "inference"` (or `"both"`, while dashboards move).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from ..._telemetry.record import CallRecord
from ..._telemetry.sink import Payload, strict_json

__all__ = [
    "CONVENTIONS_VERSION",
    "INSTRUMENTS",
    "OPERATIONS",
    "SCHEMA_URL",
    "content_attributes",
    "measurements",
    "provider_name",
    "request_attributes",
    "server",
]

CONVENTIONS_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{CONVENTIONS_VERSION}"

# `images.generate` has no operation of its own in the conventions: `generate_content`
# ("multimodal content generation") is the well-known value that applies, and
# `gen_ai.output.type = "image"` tells it apart from text generation.
# The Responses API is a chat (`openai.api.type` tells it apart, as the OpenAI conventions
# do); the legacy completions endpoint is `text_completion`. Moderations and audio have no
# well-known value: their own names are used.
OPERATIONS = {
    "chat": "chat",
    "responses": "chat",
    "embeddings": "embeddings",
    "images": "generate_content",
    "text_completion": "text_completion",
    "moderations": "moderation",
    "transcriptions": "transcription",
    "speech": "speech",
}
_API_TYPES = {"chat": "chat_completions", "responses": "responses"}

# gen_ai.provider.name from the backend's host. The convention asks for the
# instrumentation's best knowledge; an OpenAI-compatible endpoint we do not recognise
# speaks OpenAI's API, so it is "openai" (server.address says which host it really was).
_PROVIDER_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
}
_PROVIDER_SUFFIXES = (
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".inference.ai.azure.com", "azure.ai.inference"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    (".amazonaws.com", "aws.bedrock"),
    (".ml.cloud.ibm.com", "ibm.watsonx.ai"),
)

# Request parameters with a convention attribute of their own: (attribute, type).
_PARAMETER_ATTRIBUTES: dict[str, tuple[str, type[int] | type[float]]] = {
    "temperature": ("gen_ai.request.temperature", float),
    "top_p": ("gen_ai.request.top_p", float),
    "frequency_penalty": ("gen_ai.request.frequency_penalty", float),
    "presence_penalty": ("gen_ai.request.presence_penalty", float),
    "seed": ("gen_ai.request.seed", int),
    "max_tokens": ("gen_ai.request.max_tokens", int),
    "max_completion_tokens": ("gen_ai.request.max_tokens", int),
    "dimensions": ("gen_ai.embeddings.dimension.count", int),
}
_OUTPUT_TYPES = {"text": "text", "json_object": "json", "json_schema": "json"}
_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}

# Bucket boundaries the conventions ask for.
_SECONDS_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
_TOKEN_BUCKETS = tuple(float(4**power) for power in range(14))  # 1, 4, 16, ... 67108864
_DURATION = "gen_ai.client.operation.duration"
_TOKEN_USAGE = "gen_ai.client.token.usage"
_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
# The development conventions' per-direction token histograms (opt-in).
_INFERENCE_INPUT = "gen_ai.client.inference.usage.input_tokens"
_INFERENCE_OUTPUT = "gen_ai.client.inference.usage.output_tokens"
INSTRUMENTS = {  # name: (unit, description, bucket boundaries)
    _DURATION: ("s", "GenAI operation duration.", _SECONDS_BUCKETS),
    _TOKEN_USAGE: ("{token}", "Number of input and output tokens used.", _TOKEN_BUCKETS),
    _INFERENCE_INPUT: (
        "{token}",
        "The number of input (prompt) tokens used per inference operation.",
        _TOKEN_BUCKETS,
    ),
    _INFERENCE_OUTPUT: (
        "{token}",
        "The number of output (completion) tokens used per inference operation.",
        _TOKEN_BUCKETS,
    ),
    _TIME_TO_FIRST_CHUNK: (
        "s",
        "Time to receive the first chunk, measured from when the client issues the "
        "generation request to when the first chunk is received in the response stream.",
        _SECONDS_BUCKETS,
    ),
}
_METRIC_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
)


@functools.lru_cache(maxsize=64)  # a client has a few base URLs; parsing one is ~3 us
def server(base_url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None, None
    if not parts.hostname:
        return None, None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


@functools.lru_cache(maxsize=64)
def provider_name(host: str | None) -> str:
    if not host:
        return "openai"
    host = host.lower()
    if host in _PROVIDER_HOSTS:
        return _PROVIDER_HOSTS[host]
    for suffix, provider in _PROVIDER_SUFFIXES:
        if host.endswith(suffix) and (suffix != ".amazonaws.com" or "bedrock" in host):
            return provider
    return "openai"


def request_attributes(record: CallRecord, provider: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if record.stream:  # the convention sets it on streamed calls only
        found["gen_ai.request.stream"] = True
    if record.operation in _API_TYPES and provider == "openai":
        found["openai.api.type"] = _API_TYPES[record.operation]
    for name, value in record.parameters.items():
        if name in _PARAMETER_ATTRIBUTES and not isinstance(value, bool):
            key, kind = _PARAMETER_ATTRIBUTES[name]
            if kind is int and isinstance(value, float) and not value.is_integer():
                found[f"pipeclient.request.{name}"] = value
            else:
                found[key] = kind(value)
        elif name == "n" and isinstance(value, int) and not isinstance(value, bool):
            if value != 1:
                found["gen_ai.request.choice.count"] = value
        elif name == "encoding_format" and isinstance(value, str):
            found["gen_ai.request.encoding_formats"] = [value]
        elif name == "response_format" and value in _OUTPUT_TYPES:
            found["gen_ai.output.type"] = _OUTPUT_TYPES[value]
        elif name == "service_tier" and provider == "openai":
            if value != "auto":  # the convention's condition
                found["openai.request.service_tier"] = value
        elif isinstance(value, (bool, int, float, str)):
            found[f"pipeclient.request.{name}"] = value
    return found


TokenMetrics = Literal["v1.41", "inference", "both"]


def measurements(
    record: CallRecord, span_attributes: Mapping[str, Any], tokens: TokenMetrics = "v1.41"
) -> list[Payload]:
    """The metric measurements of one call. `tokens`: which token-usage instruments,
    `gen_ai.client.token.usage` by `gen_ai.token.type` (v1.41), the development
    conventions' `gen_ai.client.inference.usage.{input,output}_tokens`, or both."""
    common = {key: span_attributes[key] for key in _METRIC_ATTRIBUTES if key in span_attributes}
    timed = dict(common)
    if record.error is not None:
        timed["error.type"] = record.error.type
    found: list[Payload] = [_measure(_DURATION, max(record.total_ms, 0.0) / 1000.0, timed)]
    for token_type, count, inference in (
        ("input", record.input_tokens, _INFERENCE_INPUT),
        ("output", record.output_tokens, _INFERENCE_OUTPUT),
    ):
        if count is None:
            continue
        if tokens != "inference":
            found.append(_measure(_TOKEN_USAGE, count, {**common, "gen_ai.token.type": token_type}))
        if tokens != "v1.41":
            found.append(_measure(inference, count, common))
    if record.stream and record.ttft_ms is not None:
        found.append(_measure(_TIME_TO_FIRST_CHUNK, record.ttft_ms / 1000.0, timed))
    return found


def _measure(name: str, value: float, attributes: dict[str, Any]) -> Payload:
    return {"name": name, "unit": INSTRUMENTS[name][0], "value": value, "attributes": attributes}


# -- content, in the conventions' message-parts format ------------------------------------


def content_attributes(record: CallRecord) -> dict[str, str]:
    found: dict[str, str] = {}
    if record.input is not None:
        if isinstance(record.input, Mapping) and "messages" in record.input:  # chat, responses
            messages = record.input.get("messages")
            if messages:
                found["gen_ai.input.messages"] = _json(_input_messages(messages))
            tools = record.input.get("tools")
            if tools:
                found["gen_ai.tool.definitions"] = _json(_tool_definitions(tools))
        else:  # an embeddings input or an image prompt
            texts = [record.input] if isinstance(record.input, str) else record.input
            if isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts):
                parts = [{"type": "text", "content": text} for text in texts]
                found["gen_ai.input.messages"] = _json([{"role": "user", "parts": parts}])
    if record.output is not None and isinstance(record.output, list):
        found["gen_ai.output.messages"] = _json(
            _output_messages(record.output, record.finish_reasons)
        )
    return found


_CONTENT_JSON = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False)


def _json(value: Any) -> str:
    """Content as JSON text that protobuf and every JSON parser take: NaN as null, and a
    lone surrogate (a provider's broken escape, not UTF-8) as "?", not a dropped attribute."""
    text = strict_json(_CONTENT_JSON, value)
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _input_messages(messages: Iterable[Any]) -> list[Payload]:
    converted = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role") or "user"
        parts: list[Payload]
        if role in ("tool", "function"):
            parts = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": _text_of(message.get("content")),
                }
            ]
        else:
            parts = _content_parts(message.get("content"))
            parts += _tool_call_parts(message.get("tool_calls"))
        entry: Payload = {"role": role, "parts": parts}
        if isinstance(message.get("name"), str) and role != "function":
            entry["name"] = message["name"]
        converted.append(entry)
    return converted


def _output_messages(choices: Sequence[Any], finish_reasons: Sequence[str]) -> list[Payload]:
    converted = []
    for index, choice in enumerate(choices):
        if not isinstance(choice, Mapping):
            continue
        parts = _content_parts(choice.get("content"))
        if isinstance(choice.get("refusal"), str):
            parts.append({"type": "refusal", "content": choice["refusal"]})
        parts += _tool_call_parts(choice.get("tool_calls"))
        entry: Payload = {"role": choice.get("role") or "assistant", "parts": parts}
        if index < len(finish_reasons):
            reason = finish_reasons[index]
            entry["finish_reason"] = _FINISH_REASONS.get(reason, reason)
        converted.append(entry)
    return converted


def _content_parts(content: Any) -> list[Payload]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list):
        return [{"type": "text", "content": str(content)}]
    parts: list[Payload] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "content": part})
        elif isinstance(part, Mapping):
            parts.append(_content_part(part))
    return parts


def _content_part(part: Mapping[str, Any]) -> Payload:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "content": str(part.get("text", ""))}
    if kind == "refusal":
        return {"type": "refusal", "content": str(part.get("refusal", ""))}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        return _media_part(str(url or ""), "image")
    if kind == "input_audio" and isinstance(part.get("input_audio"), Mapping):
        audio = part["input_audio"]
        return {
            "type": "blob",
            "modality": "audio",
            "mime_type": f"audio/{audio.get('format', 'wav')}",
            "content": audio.get("data", ""),
        }
    if kind == "file" and isinstance(part.get("file"), Mapping):
        file = part["file"]
        if file.get("file_id"):
            return {"type": "file", "modality": "document", "file_id": file["file_id"]}
        return _media_part(str(file.get("file_data", "")), "document")
    return {"type": str(kind or "unknown"), **{k: v for k, v in part.items() if k != "type"}}


def _media_part(url: str, modality: str) -> Payload:
    if url.startswith("data:") and ";base64," in url:
        header, _, data = url.partition(";base64,")
        return {"type": "blob", "modality": modality, "mime_type": header[5:], "content": data}
    return {"type": "uri", "modality": modality, "uri": url}


def _tool_call_parts(tool_calls: Any) -> list[Payload]:
    if not isinstance(tool_calls, list):
        return []
    parts: list[Payload] = []
    for call in tool_calls:
        if not isinstance(call, Mapping):
            continue
        function, custom = _mapping(call.get("function")), _mapping(call.get("custom"))
        arguments = function.get("arguments", custom.get("input"))
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name") or custom.get("name") or "",
                "arguments": arguments,
            }
        )
    return parts


def _tool_definitions(tools: Iterable[Any]) -> list[Payload]:
    definitions = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = str(tool.get("type") or "function")
        body = _mapping(tool.get(kind))
        definition: Payload = {"type": kind, "name": str(body.get("name", kind))}
        for key in ("description", "parameters"):
            if body.get(key) is not None:
                definition[key] = body[key]
        definitions.append(definition)
    return definitions


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text_of(content: Any) -> Any:
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "".join(t for t in texts if isinstance(t, str))
    return content
