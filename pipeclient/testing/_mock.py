"""What a deterministic OpenAI-compatible backend answers: one pure function, `answer()`.

It turns a request (and the fault scripted for it, if any) into an `Answer`; the in-process
transport and the loopback server in `_mock_server` only render that answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ._mock_base import (
    CREATED,
    MOCK_MODEL,
    Json,
    _digest,
    _error,
    _int_param,
    _json,
    _phrase,
    _pieces,
    _RequestError,
    _seconds,
    _text_of,
    _words,
)
from ._mock_endpoints import (
    completions,
    moderations,
    responses,
    speech,
    transcriptions,
)
from ._mock_endpoints import model as one_model

__all__ = ["Answer", "Fault", "RecordedRequest", "answer"]

logger = logging.getLogger("pipeclient")

# A valid 1x1 PNG.
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

Reply = str | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or on top of) the normal answer for one request."""

    status: int | None = None
    body: bytes | str | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    delay: float = 0.0
    disconnect_after_chunks: int | None = None
    refuse: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived; header names are lower-cased, `query` is the URL's
    query string as sent (without the `?`)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    query: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """How to answer one request, whoever renders it: a plain body, or SSE `events`.

    After `cut_after` parts (events, or the one body) the connection is cut; None: never.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    events: tuple[bytes, ...] | None = None
    delay: float = 0.0
    cut_after: int | None = None
    refuse: bool = False

    @property
    def parts(self) -> tuple[bytes, ...]:
        return self.events if self.events is not None else (self.body,)


def answer(
    request: RecordedRequest,
    fault: Fault | None = None,
    *,
    reply: Reply | None = None,
    api_key: str | None = None,
    embedding_dim: int = 8,
) -> Answer:
    """The response to `request`: the fault's, an auth error, or what OpenAI would say."""
    fault = fault or Fault()
    if fault.refuse:
        return Answer(status=0, headers=(), refuse=True)
    status, content_type, body, events = _respond(request, fault, reply, api_key, embedding_dim)
    headers = {"content-type": content_type, "x-request-id": "req_" + _digest(request.body)}
    if fault.retry_after is not None:
        headers["retry-after"] = _seconds(fault.retry_after)
    headers.update({name.lower(): value for name, value in fault.headers.items()})
    cut_after = fault.disconnect_after_chunks
    if cut_after is not None and events is None:
        cut_after = 0  # a plain body is cut right after the headers
    return Answer(
        status=status,
        headers=tuple(headers.items()),
        body=body,
        events=events,
        delay=fault.delay,
        cut_after=cut_after,
    )


def _respond(
    request: RecordedRequest, fault: Fault, reply: Reply | None, api_key: str | None, dim: int
) -> tuple[int, str, bytes, tuple[bytes, ...] | None]:
    if fault.status is not None or fault.body is not None:
        status = fault.status or 200
        if fault.body is not None:
            raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
            return status, fault.content_type, raw, None
        return _error(status, f"Mock fault: HTTP {status} {_phrase(status)}".rstrip())
    if api_key is not None:
        sent = request.headers.get("authorization", "")
        if not sent.startswith("Bearer "):
            return _error(401, "You didn't provide an API key (Authorization: Bearer ...).")
        if sent != f"Bearer {api_key}":
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
    path, post = request.path.rstrip("/"), request.method == "POST"
    try:
        if request.method == "GET" and path.endswith("/models"):
            return _json(_models())
        if request.method == "GET" and "/models/" in path:
            return _json(one_model(unquote(path.split("/models/", 1)[1])))
        if post and path.endswith("/moderations"):
            return _json(moderations(_request_json(request)))
        if post and path.endswith("/audio/transcriptions"):
            kind, body = transcriptions(request.headers.get("content-type", ""), request.body)
            return 200, kind, body, None
        if post and path.endswith("/audio/speech"):
            kind, body = speech(_request_json(request))
            return 200, kind, body, None
        answers: dict[str, Callable[[bytes, Json], Json | tuple[bytes, ...]]] = {
            "/completions": completions,
            "/responses": responses,
        }
        for suffix, endpoint in answers.items():
            if post and path.endswith(suffix) and not path.endswith("/chat/completions"):
                result = endpoint(request.body, _request_json(request))
                if isinstance(result, tuple):
                    return 200, "text/event-stream", b"", result
                return _json(result)
        if post and path.endswith("/chat/completions"):
            result = _chat(request, _request_json(request), reply)
            if isinstance(result, tuple):
                return 200, "text/event-stream", b"", result
            return _json(result)
        if post and path.endswith("/embeddings"):
            return _json(_embeddings(_request_json(request), dim))
        if post and path.endswith("/images/generations"):
            return _json(_images(_request_json(request)))
    except _RequestError as exc:
        return _error(exc.status, exc.message, param=exc.param)
    return _error(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url")


def _request_json(request: RecordedRequest) -> Json:
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise _RequestError(400, "We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise _RequestError(400, "The request body must be a JSON object.")
    return body


# Chat completions ------------------------------------------------------------------------


def _chat(request: RecordedRequest, body: Json, reply: Reply | None) -> Json | tuple[bytes, ...]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _RequestError(400, "'messages' must be a non-empty list", param="messages")
    texts = [_text_of(m.get("content")) for m in messages if isinstance(m, dict)]
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last_user = _text_of(users[-1].get("content")) if users else ""
    n = _int_param(body, "n", 1)
    tool = _tool_name(body)
    content: str | None = None
    arguments = json.dumps({"echo": last_user})
    if tool is None:
        content = _reply_text(body, reply, last_user, arguments)
    base = {
        "id": "chatcmpl-" + _digest(request.body),
        "object": "chat.completion.chunk" if body.get("stream") else "chat.completion",
        "created": CREATED,
        "model": body.get("model") or MOCK_MODEL,
        "system_fingerprint": "fp_mock",
    }
    completion_words = n * _words(content if content is not None else arguments)
    prompt_words = max(1, sum(_words(text) for text in texts))
    usage = {
        "prompt_tokens": prompt_words,
        "completion_tokens": completion_words,
        "total_tokens": prompt_words + completion_words,
    }
    calls = [
        {
            "id": "call_" + _digest(request.body + bytes([i % 256]), 8),
            "type": "function",
            "function": {"name": tool, "arguments": arguments},
        }
        for i in range(n)
    ]
    if body.get("stream"):
        options = body.get("stream_options")
        with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return _chat_events(base, n, content, calls, usage if with_usage else None)
    finish = "stop" if content is not None else "tool_calls"
    choices = []
    for i in range(n):
        message: Json = {"role": "assistant", "content": content, "refusal": None}
        if content is None:
            message["tool_calls"] = [calls[i]]
        choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": finish})
    return {**base, "choices": choices, "usage": usage}


def _tool_name(body: Json) -> str | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str):
            return name
    first = tools[0] if isinstance(tools[0], dict) else {}
    name = (first.get("function") or {}).get("name")
    return name if isinstance(name, str) else "tool"


def _reply_text(body: Json, reply: Reply | None, last_user: str, echo: str) -> str:
    if callable(reply):
        try:
            text = reply(body)
        except Exception as exc:
            logger.warning("MockBackend reply callable raised", exc_info=True)
            raise _RequestError(500, f"MockBackend reply callable raised {exc!r}") from None
        if not isinstance(text, str):
            raise _RequestError(500, f"MockBackend reply returned {type(text).__name__}, not str")
        return text
    if reply is not None:
        return reply
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        return echo
    return f"Mock reply to: {last_user[:60]}"


def _chat_events(
    base: Json, n: int, content: str | None, calls: list[Json], usage: Json | None
) -> tuple[bytes, ...]:
    chunks: list[Json] = []

    def add(index: int, delta: Json, finish: str | None = None) -> None:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunks.append({**base, "choices": [choice]})

    for i in range(n):
        if content is not None:
            add(i, {"role": "assistant", "content": ""})
            for piece in _pieces(content):
                add(i, {"content": piece})
            add(i, {}, "stop")
        else:
            call = calls[i]
            first = {"index": 0, **call, "function": {**call["function"], "arguments": ""}}
            add(i, {"role": "assistant", "content": None, "tool_calls": [first]})
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 8):
                fragment = {"index": 0, "function": {"arguments": arguments[start : start + 8]}}
                add(i, {"tool_calls": [fragment]})
            add(i, {}, "tool_calls")
    if usage is not None:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**base, "choices": [], "usage": usage})
    events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    return (*events, b"data: [DONE]\n\n")


# Embeddings, images, models ---------------------------------------------------------------


def _embeddings(body: Json, default_dim: int) -> Json:
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise _RequestError(400, "'input' must be a string or a non-empty list", param="input")
    dim = _int_param(body, "dimensions", default_dim)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise _RequestError(400, f"unknown encoding_format {encoding!r}", param="encoding_format")
    data, tokens = [], 0
    for index, item in enumerate(raw):
        if not isinstance(item, (str, list)):
            raise _RequestError(400, f"input[{index}] is neither text nor tokens", param="input")
        key = item if isinstance(item, str) else json.dumps(item)
        tokens += _words(item) if isinstance(item, str) else len(item)
        packed = _vector(key.encode(), dim)
        vector: Any = (
            base64.b64encode(packed).decode()
            if encoding == "base64"
            else list(struct.unpack(f"<{dim}f", packed))
        )
        data.append({"object": "embedding", "index": index, "embedding": vector})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {
        "object": "list",
        "data": data,
        "model": body.get("model") or MOCK_MODEL,
        "usage": usage,
    }


def _vector(seed: bytes, dim: int) -> bytes:
    """`dim` little-endian float32 values in [-1, 1], drawn from sha256(seed)."""
    stream = b"".join(
        hashlib.sha256(seed + block.to_bytes(4, "little")).digest()
        for block in range((dim * 4 + 31) // 32)
    )
    numbers = struct.unpack(f"<{dim}I", stream[: dim * 4])
    return struct.pack(f"<{dim}f", *(number / 0xFFFFFFFF * 2.0 - 1.0 for number in numbers))


def _images(body: Json) -> Json:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise _RequestError(400, "'prompt' must be a non-empty string", param="prompt")
    n = _int_param(body, "n", 1)
    encoding = body.get("response_format") or "url"
    if encoding not in ("url", "b64_json"):
        raise _RequestError(400, f"unknown response_format {encoding!r}", param="response_format")
    data = []
    for i in range(n):
        if encoding == "b64_json":
            data.append({"b64_json": PNG_1X1, "revised_prompt": None})
        else:
            url = f"https://mock.pipeclient.invalid/images/{_digest(f'{i}:{prompt}', 16)}.png"
            data.append({"url": url, "revised_prompt": None})
    return {"created": CREATED, "data": data}


def _models() -> Json:
    model = {"id": MOCK_MODEL, "object": "model", "created": CREATED, "owned_by": "pipeclient"}
    return {"object": "list", "data": [model]}
