"""The mock's other endpoints: models, moderations, legacy completions, the Responses API
and audio, answered as OpenAI answers them (deterministic, from the request)."""

from __future__ import annotations

import json
import struct
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from ._mock_base import (
    CREATED,
    MOCK_MODEL,
    Json,
    _digest,
    _int_param,
    _pieces,
    _RequestError,
    _words,
)

__all__ = [
    "completions",
    "model",
    "moderations",
    "responses",
    "speech",
    "transcriptions",
]

# A word that makes the mock's moderation flag its input.
FLAGGED_WORD = "forbidden"
_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def model(model_id: str) -> Json:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "pipeclient"}


def moderations(body: Json) -> Json:
    raw = body.get("input")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise _RequestError(400, "'input' must be a string or a non-empty list", param="input")
    results = []
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item)
        flagged = FLAGGED_WORD in text.lower()
        results.append(
            {
                "flagged": flagged,
                "categories": {name: flagged and name == "violence" for name in _CATEGORIES},
                "category_scores": {
                    name: 0.99 if flagged and name == "violence" else 0.001 for name in _CATEGORIES
                },
                "category_applied_input_types": {name: ["text"] for name in _CATEGORIES},
            }
        )
    return {
        "id": "modr-" + _digest(json.dumps(items)),
        "model": body.get("model") or "omni-moderation-latest",
        "results": results,
    }


# Legacy completions -----------------------------------------------------------------------


def completions(raw: bytes, body: Json) -> Json | tuple[bytes, ...]:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise _RequestError(400, "'prompt' must be a string or a list of strings", param="prompt")
    n = _int_param(body, "n", 1)
    text = f" completed: {prompts[-1][:60]}"
    base = {
        "id": "cmpl-" + _digest(raw),
        "object": "text_completion",
        "created": CREATED,
        "model": body.get("model") or MOCK_MODEL,
        "system_fingerprint": "fp_mock",
    }
    prompt_tokens = max(1, sum(_words(p) for p in prompts))
    completion_tokens = n * len(prompts) * _words(text)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    count = n * len(prompts)
    if not body.get("stream"):
        choices = [
            {"index": i, "text": text, "logprobs": None, "finish_reason": "stop"}
            for i in range(count)
        ]
        return {**base, "choices": choices, "usage": usage}
    chunks: list[Json] = []
    for i in range(count):
        for piece in _pieces(text):
            chunks.append({**base, "choices": [_piece(i, piece, None)]})
        chunks.append({**base, "choices": [_piece(i, "", "stop")]})
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        chunks.append({**base, "choices": [], "usage": usage})
    return (*_sse(chunks), b"data: [DONE]\n\n")


def _piece(index: int, text: str, finish: str | None) -> Json:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}


def _sse(payloads: list[Json], named: bool = False) -> list[bytes]:
    events = []
    for payload in payloads:
        head = f"event: {payload['type']}\n".encode() if named else b""
        events.append(head + b"data: " + json.dumps(payload).encode() + b"\n\n")
    return events


# The Responses API -------------------------------------------------------------------------


def responses(raw: bytes, body: Json) -> Json | tuple[bytes, ...]:
    given = body.get("input")
    if isinstance(given, str):
        last_user = given
        texts = [given]
    elif isinstance(given, list) and given:
        texts = [_item_text(item) for item in given]
        users = [item for item in given if isinstance(item, dict) and item.get("role") == "user"]
        last_user = _item_text(users[-1]) if users else texts[-1]
    else:
        raise _RequestError(400, "'input' must be a string or a non-empty list", param="input")
    if isinstance(body.get("instructions"), str):
        texts.append(body["instructions"])
    response_id = "resp_" + _digest(raw)
    tool = _function_tool(body)
    arguments = json.dumps({"echo": last_user})
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    structured = isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object")
    text = arguments if structured else f"Mock response to: {last_user[:60]}"
    if tool is not None:
        item: Json = {
            "type": "function_call",
            "id": "fc_" + _digest(raw, 16),
            "call_id": "call_" + _digest(raw, 8),
            "name": tool,
            "arguments": arguments,
            "status": "completed",
        }
        produced = arguments
    else:
        item = _message_item(response_id, text)
        produced = text
    input_tokens = max(1, sum(_words(t) for t in texts))
    output_tokens = _words(produced)
    response = {
        "id": response_id,
        "object": "response",
        "created_at": float(CREATED),
        "model": body.get("model") or MOCK_MODEL,
        "status": "completed",
        "output": [item],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
        "previous_response_id": body.get("previous_response_id"),
        "instructions": body.get("instructions"),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "metadata": body.get("metadata") or {},
        "error": None,
        "incomplete_details": None,
        "text": body.get("text") or {"format": {"type": "text"}},
    }
    if not body.get("stream"):
        return response
    return tuple(_sse(_response_events(response, item), named=True))


def _message_item(response_id: str, text: str) -> Json:
    return {
        "type": "message",
        "id": "msg_" + _digest(response_id, 16),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _response_events(response: Json, item: Json) -> list[Json]:
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[Json] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    if item["type"] == "message":
        text = item["content"][0]["text"]
        empty = {**item, "status": "in_progress", "content": []}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": empty})
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
        events.append({"type": "response.content_part.added", **where, "part": part})
        for piece in _pieces(text):
            events.append(
                {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
            )
        events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
        done_part = {**part, "text": text}
        events.append({"type": "response.content_part.done", **where, "part": done_part})
    else:
        empty = {**item, "arguments": "", "status": "in_progress"}
        events.append({"type": "response.output_item.added", "output_index": 0, "item": empty})
        where = {"item_id": item["id"], "output_index": 0}
        arguments = item["arguments"]
        for start in range(0, len(arguments), 8):
            delta = arguments[start : start + 8]
            events.append(
                {"type": "response.function_call_arguments.delta", **where, "delta": delta}
            )
        events.append(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "arguments": arguments,
                "name": item["name"],
            }
        )
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    events.append({"type": "response.completed", "response": response})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    content = item.get("content", item.get("output", ""))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _function_tool(body: Json) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or body.get("tool_choice") == "none":
        return None
    functions = [
        tool for tool in tools if isinstance(tool, dict) and tool.get("type") == "function"
    ]
    if not functions:
        return None
    name = functions[0].get("name")
    return name if isinstance(name, str) else "tool"


# Audio -------------------------------------------------------------------------------------


def transcriptions(content_type: str, raw: bytes) -> tuple[str, bytes]:
    """(content type, body): the transcript of the uploaded file, as JSON or as text."""
    fields, files = _multipart(content_type, raw)
    if "file" not in files:
        raise _RequestError(400, "'file' is required (multipart/form-data)", param="file")
    if not fields.get("model"):
        raise _RequestError(400, "'model' is required", param="model")
    name, audio = files["file"]
    text = f"Mock transcript of {name} ({len(audio)} bytes)"
    if fields.get("prompt"):
        text += f", prompted: {fields['prompt'][:40]}"
    kind = fields.get("response_format") or "json"
    if kind in ("text", "srt", "vtt"):
        return "text/plain; charset=utf-8", text.encode()
    payload: Json = {
        "text": text,
        "usage": {
            "type": "tokens",
            "input_tokens": max(1, len(audio) // 100),
            "output_tokens": _words(text),
            "total_tokens": max(1, len(audio) // 100) + _words(text),
        },
    }
    if kind == "verbose_json":
        payload.update({"language": "english", "duration": len(audio) / 16000, "segments": []})
    return "application/json", json.dumps(payload).encode()


def _multipart(
    content_type: str, raw: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    if not content_type.startswith("multipart/form-data"):
        raise _RequestError(400, "expected a multipart/form-data body")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (filename, payload)
        else:
            fields[str(name)] = payload.decode()
    return fields, files


def speech(body: Json) -> tuple[str, bytes]:
    """(content type, body): a short silent WAV whose length follows the input."""
    text = body.get("input")
    if not isinstance(text, str) or not text:
        raise _RequestError(400, "'input' must be a non-empty string", param="input")
    if not body.get("voice"):
        raise _RequestError(400, "'voice' is required", param="voice")
    samples = 160 * max(1, _words(text))
    data = b"\x00\x00" * samples
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data"
    header += struct.pack("<I", len(data))
    kind = body.get("response_format") or "mp3"
    media = {"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg"}.get(kind, f"audio/{kind}")
    return media, header + data
