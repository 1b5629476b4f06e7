"""The benchmark's loopback servers: a fast OpenAI-compatible backend and a telemetry capture.

One asyncio process per role, plain HTTP/1.1 with keep-alive and pre-built answers, so the
server costs a few tens of microseconds per request (measured by `run.py`, and reported
from this process's own CPU clock at `GET /__stats`).

    python benchmarks/_server.py llm      # prints the port, then serves
    python benchmarks/_server.py capture  # prints two ports: healthy, hanging

`llm` answers `POST .../chat/completions` with a fixed completion, or with a fixed
34-chunk SSE stream when the body asks for `"stream":true` (plus the usage-only chunk
when it asks for `include_usage`, as OpenAI does). `POST .../telemetry` is the gateway's
telemetry endpoint: counted, answered 200; under the `/hang/` prefix it accepts the
request and never answers.

`capture` stands in for PostHog, Langfuse and OTLP collectors. Bodies are kept as they
arrive and decoded only when `/__stats` is asked (between measurements, never during),
then counted per path: PostHog events, spans (OTLP protobuf or JSON), metric requests,
gateway events. The second port accepts every request and never answers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
import zlib
from collections import Counter
from typing import Any

CHUNKS = 34
MODEL = "gpt-4o-mini"


def _completion() -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! This is a fixed answer from the benchmark server.",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 14, "total_tokens": 26},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _chunk(
    delta: dict[str, Any], finish: str | None, usage: Any = None, empty: bool = False
) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_bench",
        "choices": []
        if empty
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _stream(with_usage: bool) -> bytes:
    """The whole chunked SSE answer: 34 chunks (role, 32 words, finish), usage, [DONE]."""
    events = [_chunk({"role": "assistant", "content": ""}, None)]
    events += [_chunk({"content": f"word{i} "}, None) for i in range(CHUNKS - 2)]
    events.append(_chunk({}, "stop"))
    if with_usage:
        usage = {"prompt_tokens": 12, "completion_tokens": CHUNKS - 2, "total_tokens": 44}
        events.append(_chunk({}, None, usage=usage, empty=True))
    events.append(b"data: [DONE]\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
    )
    return head + b"".join(_http_chunk(e) for e in events) + b"0\r\n\r\n"


def _response(status: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


COMPLETION = _response(b"200 OK", _completion())
STREAM = _stream(with_usage=False)
STREAM_WITH_USAGE = _stream(with_usage=True)
OK_EMPTY = _response(b"200 OK", b"{}")
GATEWAY_OK = _response(b"200 OK", b'{"accepted":true}')


class State:
    def __init__(self, role: str) -> None:
        self.role = role
        self.requests = 0
        self.by_kind: Counter[str] = Counter()
        self.bodies: list[tuple[str, str, str, bytes]] = []  # path, type, encoding, body
        self.delivered: dict[str, Counter[str]] = {}
        self.hung: Counter[str] = Counter()  # requests accepted and never answered, by path
        self.connections = 0

    def stats(self) -> bytes:
        for path, ctype, encoding, body in self.bodies:
            _count(self.delivered, path, ctype, encoding, body)
        self.bodies.clear()
        times = os.times()
        out = {
            "role": self.role,
            "requests": self.requests,
            "by_kind": dict(self.by_kind),
            "delivered": {k: dict(v) for k, v in self.delivered.items()},
            "hung": dict(self.hung),
            "connections": self.connections,
            "cpu_s": times.user + times.system,
        }
        return json.dumps(out).encode()


def _count(into: dict[str, Counter[str]], path: str, ctype: str, enc: str, body: bytes) -> None:
    counter = into.setdefault(path, Counter())
    counter["requests"] += 1
    try:
        if enc == "gzip" or body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        elif enc == "deflate":
            body = zlib.decompress(body)
        if path.endswith("/batch/") or path.endswith("/batch"):
            events = json.loads(body)["batch"]
            counter["events"] += len(events)
        elif path.endswith("/telemetry"):
            counter["events"] += len(json.loads(body)["events"])
        elif path.endswith("/traces"):
            counter["spans"] += _spans(body, ctype)
        elif path.endswith("/metrics"):
            counter["metric_requests"] += 1
        elif path.endswith("/logs"):
            counter["log_requests"] += 1
    except Exception as exc:  # a body we cannot read is counted, not fatal
        counter[f"undecodable:{type(exc).__name__}"] += 1


def _spans(body: bytes, ctype: str) -> int:
    if "json" in ctype:
        data = json.loads(body)
        return sum(
            len(scope.get("spans", []))
            for resource in data.get("resourceSpans", [])
            for scope in resource.get("scopeSpans", [])
        )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    return sum(len(s.spans) for r in message.resource_spans for s in r.scope_spans)


class Http(asyncio.Protocol):
    """Keep-alive HTTP/1.1; answers in order; `hang_all` never answers anything."""

    __slots__ = ("buf", "hang_all", "hanging", "state", "transport")

    def __init__(self, state: State, hang_all: bool = False) -> None:
        self.state = state
        self.hang_all = hang_all
        self.hanging = False
        self.buf = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        if self.hanging:
            return  # accepted, read and dropped: the answer never comes
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            lower = head.lower()
            start = end + 4
            i = lower.find(b"\r\ncontent-length:")
            if i >= 0:
                j = lower.find(b"\r\n", i + 2)
                length = int(lower[i + 17 : j if j >= 0 else len(lower)])
                if len(buf) < start + length:
                    return
                body = bytes(buf[start : start + length])
                del buf[: start + length]
            elif b"\r\ntransfer-encoding: chunked" in lower:
                parsed = _dechunk(buf, start)
                if parsed is None:
                    return
                body, consumed = parsed
                del buf[:consumed]
            else:
                body = b""
                del buf[:start]
            self.handle(head, lower, body)
            if self.hanging:
                return

    def handle(self, head: bytes, lower: bytes, body: bytes) -> None:
        state = self.state
        state.requests += 1
        line_end = head.find(b"\r\n")
        _method, _, rest = head[: line_end if line_end >= 0 else len(head)].partition(b" ")
        path = rest.rpartition(b" ")[0].split(b"?")[0].decode()
        if self.hang_all:
            state.hung[path] += 1
            self.hanging = True
            return
        if path == "/__stats":
            self.transport.write(_response(b"200 OK", state.stats()))
            return
        if path.endswith("/chat/completions"):
            if b'"stream":true' in body or b'"stream": true' in body:
                state.by_kind["stream"] += 1
                usage = b'"include_usage":true' in body or b'"include_usage": true' in body
                self.transport.write(STREAM_WITH_USAGE if usage else STREAM)
            else:
                state.by_kind["chat"] += 1
                self.transport.write(COMPLETION)
            return
        if path.startswith("/hang/") and state.role == "llm":
            state.hung[path] += 1
            self.hanging = True
            return
        state.by_kind["other"] += 1
        ctype = _header(lower, b"content-type")
        encoding = _header(lower, b"content-encoding")
        state.bodies.append((path, ctype, encoding, body))
        self.transport.write(GATEWAY_OK if path.endswith("/telemetry") else OK_EMPTY)


def _header(lower: bytes, name: bytes) -> str:
    i = lower.find(b"\r\n" + name + b":")
    if i < 0:
        return ""
    j = lower.find(b"\r\n", i + 2)
    return lower[i + len(name) + 3 : j if j >= 0 else len(lower)].strip().decode()


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    parts = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0] or b"0", 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n", pos)  # no trailers expected
            if end < 0:
                return None
            return b"".join(parts), end + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


async def main(role: str) -> None:
    loop = asyncio.get_running_loop()
    state = State(role)
    server = await loop.create_server(lambda: Http(state), "127.0.0.1", 0, backlog=1024)
    ports = [server.sockets[0].getsockname()[1]]
    if role == "capture":
        hang = await loop.create_server(lambda: Http(state, True), "127.0.0.1", 0, backlog=1024)
        ports.append(hang.sockets[0].getsockname()[1])
    print(" ".join(map(str, ports)), flush=True)
    # Stop with the parent: stdin closes when run.py exits, however it exits.
    await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    if sys.argv[1:] not in (["llm"], ["capture"]):
        raise SystemExit("usage: _server.py llm|capture")
    asyncio.run(main(sys.argv[1]))
