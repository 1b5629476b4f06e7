"""Serving the mock's answers: in-process (an httpx transport) and over loopback HTTP/1.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from .._client.backends import Backend
from ._mock import Answer, Fault, RecordedRequest, Reply, answer

__all__ = ["MockBackend", "MockServer", "refused_url"]

logger = logging.getLogger("pipeclient")

MOCK_BASE_URL = "http://mock.pipeclient.invalid/v1"
_CUT = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class MockBackend:
    """A scripted OpenAI-compatible backend: `.transport` in-process, `.serve()` on loopback."""

    def __init__(
        self,
        reply: Reply | None = None,
        api_key: str | None = None,
        embedding_dim: int = 8,
        chunk_delay: float = 0.0,
    ) -> None:
        self.reply = reply
        self.api_key = api_key
        self.embedding_dim = embedding_dim
        self.chunk_delay = chunk_delay
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self.transport = MockTransport(self)

    def push(self, fault: Fault, times: int = 1) -> None:
        """Answer the next `times` requests (any endpoint, first come first served) with `fault`."""
        with self._lock:
            self._faults.extend([fault] * times)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    def backend(self, name: str = "mock", **kw: Any) -> Backend:
        """A `Backend` whose calls this mock answers in-process."""
        fields = {"base_url": MOCK_BASE_URL, "api_key": self.api_key or "mock-key"}
        return Backend(**{"name": name, **fields, "transport": self.transport, **kw})

    def serve(self) -> MockServer:
        """A real HTTP server on 127.0.0.1 answering like this mock; use it with `with`."""
        return MockServer(self)

    def _handle(self, request: RecordedRequest) -> Answer:
        """Take the next fault, record the request (unless refused) and compute the answer."""
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if not (fault and fault.refuse):
                self._requests.append(request)
        return answer(
            request,
            fault,
            reply=self.reply,
            api_key=self.api_key,
            embedding_dim=self.embedding_dim,
        )

    def _take_refusal(self) -> bool:
        """Consume the next fault if it refuses connections (the server asks on accept)."""
        with self._lock:
            if self._faults and self._faults[0].refuse:
                self._faults.popleft()
                return True
        return False


# In-process --------------------------------------------------------------------------------


class MockTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Both an httpx sync and async transport: requests never leave the process."""

    def __init__(self, mock: MockBackend) -> None:
        self._mock = mock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        result = self._mock._handle(_record(request, request.read()))
        if result.refuse:
            raise httpx.ConnectError("mock refused the connection (Fault.refuse)", request=request)
        _sleep(result.delay, request)
        return self._response(request, result)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        result = self._mock._handle(_record(request, await request.aread()))
        if result.refuse:
            raise httpx.ConnectError("mock refused the connection (Fault.refuse)", request=request)
        await _async_sleep(result.delay, request)
        return self._response(request, result)

    def _response(self, request: httpx.Request, result: Answer) -> httpx.Response:
        headers = list(result.headers)
        if result.events is None:
            headers.append(("content-length", str(len(result.body))))
        stream = _AnswerStream(request, result, self._mock.chunk_delay)
        return httpx.Response(result.status, headers=headers, stream=stream, request=request)


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout", {}).get("read")
    return float(timeout) if timeout is not None else None


def _sleep(seconds: float, request: httpx.Request) -> None:
    """Sleep like a silent server: past the client's read timeout, raise httpx.ReadTimeout."""
    timeout = _read_timeout(request)
    if seconds > 0:
        time.sleep(seconds if timeout is None else min(seconds, timeout))
    if timeout is not None and seconds > timeout:
        raise httpx.ReadTimeout("mock answered after the read timeout", request=request)


async def _async_sleep(seconds: float, request: httpx.Request) -> None:
    timeout = _read_timeout(request)
    if seconds > 0:
        await asyncio.sleep(seconds if timeout is None else min(seconds, timeout))
    if timeout is not None and seconds > timeout:
        raise httpx.ReadTimeout("mock answered after the read timeout", request=request)


def _record(request: httpx.Request, body: bytes) -> RecordedRequest:
    headers = MappingProxyType(dict(request.headers.items()))
    query = request.url.query.decode("ascii", "replace")
    return RecordedRequest(request.method, request.url.path, headers, body, query)


class _AnswerStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The answer's parts, `chunk_delay` apart when they are SSE events, then the scripted cut."""

    def __init__(self, request: httpx.Request, result: Answer, chunk_delay: float) -> None:
        self._request = request
        self._parts = result.parts if result.cut_after is None else result.parts[: result.cut_after]
        self._cut = result.cut_after is not None
        self._delay = chunk_delay if result.events is not None else 0.0

    def _cut_error(self) -> httpx.RemoteProtocolError:
        message = "mock cut the connection mid-response (Fault.disconnect_after_chunks)"
        return httpx.RemoteProtocolError(message, request=self._request)

    def __iter__(self) -> Iterator[bytes]:
        for index, part in enumerate(self._parts):
            if index:
                _sleep(self._delay, self._request)
            yield part
        if self._cut:
            raise self._cut_error()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for index, part in enumerate(self._parts):
            if index:
                await _async_sleep(self._delay, self._request)
            yield part
        if self._cut:
            raise self._cut_error()


# Over loopback -----------------------------------------------------------------------------


class MockServer:
    """A real HTTP/1.1 server on 127.0.0.1 (ephemeral port) in daemon threads.

    `close()`, or leaving the `with` block, stops it and drops open connections.
    """

    def __init__(self, mock: MockBackend) -> None:
        self.mock = mock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._connections = 0
        self._aborted_streams = 0
        self._httpd = _HTTPServer(self)
        self.url = f"http://127.0.0.1:{self._httpd.server_port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # bounds how long close() waits
            name=f"pipeclient-mock-server-{self._httpd.server_port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return self._connections

    @property
    def aborted_streams(self) -> int:
        """Streams whose client went away before the stream ended."""
        return self._aborted_streams

    def backend(self, name: str | None = None, **kw: Any) -> Backend:
        """A `Backend` pointing at this server (the mock's own defaults, over loopback)."""
        options: dict[str, Any] = {"base_url": self.url, "transport": None, **kw}
        return self.mock.backend(name, **options) if name else self.mock.backend(**options)

    def close(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:  # wakes handler threads blocked reading a kept-alive connection
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=2.0)

    def __enter__(self) -> MockServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(sock)

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _stream_aborted(self) -> None:
        with self._lock:
            self._aborted_streams += 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: MockServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # HTTPServer's version does a reverse DNS lookup
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._opened(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._closed(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("mock server: connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each SSE event leaves at once
    server: _HTTPServer

    def handle(self) -> None:
        if self.server.owner.mock._take_refusal():
            return  # Fault(refuse=True): close without reading or answering
        super().handle()

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def version_string(self) -> str:
        return "pipeclient-mock"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("mock server: " + format, *args)

    def _serve(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        target = urlsplit(self.path)
        request = RecordedRequest(
            self.command, target.path, MappingProxyType(headers), body, target.query
        )
        result = owner.mock._handle(request)
        if result.refuse or (result.delay and owner._stopping.wait(result.delay)):
            self.close_connection = True
            return
        try:
            complete = self._write(result)
        except _CUT:
            complete = False
            if result.events is not None and not owner._stopping.is_set():
                owner._stream_aborted()
        if not complete:
            self.close_connection = True

    def _write(self, result: Answer) -> bool:
        """Send the answer; False when it was cut short (by a fault or by shutdown)."""
        streaming = result.events is not None
        self.send_response(result.status)
        for name, value in result.headers:
            self.send_header(name, value)
        if streaming:
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        parts = result.parts if result.cut_after is None else result.parts[: result.cut_after]
        delay = self.server.owner.mock.chunk_delay
        for index, part in enumerate(parts):
            if streaming and index and delay and self.server.owner._stopping.wait(delay):
                return False
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if streaming else part)
        if result.cut_after is not None:
            return False  # no terminating chunk: the client sees the connection drop
        if streaming:
            self.wfile.write(b"0\r\n\r\n")
        return True


def refused_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connecting fails at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
