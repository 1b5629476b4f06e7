"""A loopback HTTP server that records every request a telemetry destination receives.

It stands in for PostHog, Langfuse, an OTLP collector or the gateway's telemetry endpoint,
so tests (and the examples) can assert on the bytes that really arrived.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = ["CaptureServer", "CapturedRequest"]

Behaviour = Literal["ok", "error", "hang"]


@dataclass(frozen=True)
class CapturedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-cased names
    body: bytes  # as received (possibly compressed)

    @property
    def content(self) -> bytes:
        """The body, decompressed when it was sent gzip- or deflate-encoded."""
        encoding = self.headers.get("content-encoding", "")
        if encoding == "gzip" or self.body[:2] == b"\x1f\x8b":
            return gzip.decompress(self.body)
        if encoding == "deflate":
            return zlib.decompress(self.body)
        return self.body

    def json(self) -> Any:
        return json.loads(self.content)


@dataclass
class _State:
    requests: list[CapturedRequest] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)


class CaptureServer:
    """`with CaptureServer() as server:` ... `server.url`, `server.requests`.

    `behaviour="ok"` answers 200 (with `answer(request)`'s JSON, default `{}`),
    `"error"` answers 500, `"hang"` accepts the request and never answers until the
    server stops. `behaviour` may be changed while the server runs.
    """

    def __init__(
        self,
        behaviour: Behaviour = "ok",
        answer: Callable[[CapturedRequest], tuple[int, Any]] | None = None,
    ) -> None:
        self.behaviour: Behaviour = behaviour
        self.answer = answer
        self._state = _State()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="pipeclient-capture-server",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[CapturedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def connections(self) -> int:
        return self._state.connections

    def requests_to(self, path_prefix: str) -> list[CapturedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def all_bytes(self) -> bytes:
        """Every byte that arrived: request lines, headers and decoded bodies."""
        parts = []
        for request in self.requests:
            parts.append(f"{request.method} {request.path}\n".encode())
            parts += [f"{k}: {v}\n".encode() for k, v in request.headers.items()]
            parts += [request.body, request.content]
        return b"\n".join(parts)

    def close(self) -> None:
        self._state.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> CaptureServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: CaptureServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:  # no reverse DNS lookup of 127.0.0.1
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def process_request(self, request: Any, client_address: Any) -> None:
        state = self.owner._state
        with state.lock:
            state.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is not the server's problem


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        request = CapturedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        with owner._state.lock:
            owner._state.requests.append(request)
        if owner.behaviour == "hang":
            owner._state.released.wait()
            self.close_connection = True
            return
        status, payload = (500, {"error": "capture server set to fail"})
        if owner.behaviour == "ok":
            status, payload = owner.answer(request) if owner.answer else (200, {})
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()
