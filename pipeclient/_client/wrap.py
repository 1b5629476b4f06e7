"""`pipeclient.wrap(openai_client)`: pipeclient's telemetry on a user's own `OpenAI` or
`AsyncOpenAI`, which keeps working exactly as before.

Two hooks, both on that one client, none process-wide. Its `request` method (through
which every call passes, once per call whatever its retries) opens the call: request id,
record, the gateway rule; a call refused under DO_NOT_TRACK never reaches the network.
Its HTTP client's transport sees every attempt: it adds the call's `X-Request-Id`, counts
the attempt, and watches the answer's bytes as the caller reads them (nothing is
buffered ahead of the caller) to end the record. A request that no wrapped call opened
passes the transport untouched, so an HTTP client shared with other code is unaffected.

`openai` is never imported: the client is used through the attributes every openai 1.x
and later release has, and its HTTP client may be an `httpx` or an `httpx2` one.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import sys
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .._config.settings import DefaultSettings, load_settings_or_defaults
from .._exceptions import ConfigError, RoutingError
from .._privacy.known_secrets import KnownSecrets
from .._telemetry.attribution import NO_ATTRIBUTION, Attribution, check_attribution
from .._telemetry.record import ErrorInfo, Operation
from .._telemetry.trace import current_parent
from ..types import (
    ChatCompletion,
    Completion,
    CreateEmbeddingBase64Response,
    CreateEmbeddingResponse,
    HttpxBinaryResponseContent,
    ImagesResponse,
    ModerationCreateResponse,
    Response,
    Transcription,
)
from . import answers as _answers
from .audio import TranscriptText
from .backends import Backend, gateway_url_from_env
from .call import Call, check_request_id, start_call
from .responses import ResponseEventReader
from .retry import RetryPolicy
from .router import Router
from .routing import build_routing
from .streaming import _ChunkReader, _CompletionReader
from .telemetry import build_client_pipeline, check_budget, settle, telemetry_due

if TYPE_CHECKING:
    from .._config.models import TelemetryConfig
    from .._telemetry.pipeline import Pipeline

__all__ = ["wrap"]

logger = logging.getLogger("pipeclient")

OpenAIClient = TypeVar("OpenAIClient")

_WHERE = "pipeclient.wrap()"

# The endpoints whose calls are recorded: path suffix -> (operation, response model, the
# reader of its event stream), the first suffix that matches winning.
_OPERATIONS: dict[str, tuple[Operation, type[Any], type[_ChunkReader] | None]] = {
    "/chat/completions": ("chat", ChatCompletion, _ChunkReader),
    "/completions": ("text_completion", Completion, _CompletionReader),
    "/embeddings": ("embeddings", CreateEmbeddingResponse, _ChunkReader),
    "/images/generations": ("images", ImagesResponse, _ChunkReader),
    "/responses": ("responses", Response, ResponseEventReader),
    "/moderations": ("moderations", ModerationCreateResponse, None),
    # audio and files are content: the upload is described (name, size), never kept
    "/audio/transcriptions": ("transcriptions", Transcription, None),
    "/audio/speech": ("speech", HttpxBinaryResponseContent, None),
}

# The call in flight in this thread or task, opened by a wrapped client's `request`.
_CURRENT: contextvars.ContextVar[_WrappedCall | None] = contextvars.ContextVar(
    "pipeclient_wrapped_call", default=None
)


class _Wrapping:
    """What a wrapped client (and its copies to the same endpoint) share: the backend it
    calls, the gateway rule, and the telemetry pipeline."""

    def __init__(
        self,
        client: Any,
        *,
        is_async: bool,
        no_log: bool,
        telemetry: TelemetryConfig | Mapping[str, Any] | None,
        telemetry_file: str | Path | None,
        redact: Callable[[str], str] | None,
        attribution: Attribution,
        local: bool = False,
    ) -> None:
        if redact is not None and not callable(redact):
            raise ConfigError(
                "must be a function taking and returning a str", source=_WHERE, key="redact"
            )
        self.is_async = is_async
        self.no_log = bool(no_log)
        self.options: dict[str, Any] = {
            "no_log": no_log,
            "telemetry": telemetry,
            "telemetry_file": telemetry_file,
            "redact": redact,
            "user_id": attribution.user_id,
            "session_id": attribution.session_id,
            "properties": attribution.properties,
        }
        self.attribution = attribution
        self.backend = _backend_of(client, local)
        key = self.backend.api_key.get_secret_value()
        self.secrets = KnownSecrets([key])
        settings = load_settings_or_defaults(telemetry, file=telemetry_file)
        # [routing] sensitive = "local" holds for a wrapped client too: its one backend is
        # the client's, so a flagged request to a non-local one is refused before any I/O.
        self.routing = build_routing(settings, None, [self.backend], self.secrets, rules=False)
        self.router = Router(
            [self.backend],
            RetryPolicy(max_retries=0),  # openai retries; the router only keeps the rule
            gateway_url=gateway_url_from_env(),
            do_not_track=settings.do_not_track,
        )
        self.gateway = self.router.is_gateway(self.backend)
        self.telemetry: Pipeline | None = None
        if telemetry_due(settings, self.router):
            if isinstance(settings, DefaultSettings):
                settings = settings.settings()
            self.telemetry = build_client_pipeline(
                settings,
                self.router,
                [self.backend],
                self.secrets,
                redact,
            )

    def serves(self, client: Any) -> bool:
        """Whether a copy of the client still calls the same endpoint with the same key."""
        try:
            backend = _backend_of(client)
        except ConfigError:
            return False
        return (backend.base_url, backend.api_key) == (self.backend.base_url, self.backend.api_key)

    def open(self, options: Any) -> _WrappedCall:
        """A call begins: its request id, its record, and the gateway rule, before any I/O."""
        headers = getattr(options, "headers", None)
        given = None
        if isinstance(headers, Mapping):
            given = next(
                (str(v) for k, v in headers.items() if str(k).lower() == "x-request-id"), None
            )
        request_id = check_request_id(given)
        call = self._record(options, request_id, supplied=given is not None)
        if call is not None and self.routing is not None:
            try:
                self.routing.decide(call)
            except RoutingError:
                call.tracker.finish(error=ErrorInfo(RoutingError.__name__, None))
                raise
        _, refusal = self.router.route(request_id)
        if refusal is not None:
            if call is not None:
                call.tracker.finish(error=ErrorInfo(type(refusal).__name__, None))
            raise refusal
        if call is not None and self.telemetry is not None:
            check_budget(call, self.telemetry.budget)
        return _WrappedCall(self, request_id, call)

    def _record(self, options: Any, request_id: str, *, supplied: bool) -> Call | None:
        found = _operation_of(options)
        if found is None:
            return None
        path, operation = found
        body = getattr(options, "json_data", None)
        files = getattr(options, "files", None)
        if files and isinstance(body, Mapping):  # multipart: the fields, the file described
            body = {**body, **_described(files)}
        trace = current_parent()
        block = getattr(trace, "attribution", NO_ATTRIBUTION)  # a trace block's wins
        try:
            return start_call(
                self.telemetry,
                operation=operation,
                path=path,
                body=dict(body) if isinstance(body, Mapping) else {},
                request_id=request_id,
                request_id_supplied=supplied,
                no_log=self.no_log or bool(getattr(trace, "no_log", False)),
                trace=trace,
                headers={},
                timeout={},
                defers_audit=self.is_async,
                attribution=block if block is not NO_ATTRIBUTION else self.attribution,
            )
        except ConfigError:  # a body pipeclient cannot encode: sent as openai sends it
            logger.debug("request %s: its body is not JSON, not recorded", request_id)
            return None

    def failed(self, call: _WrappedCall, exc: BaseException) -> None:
        """The openai call raised: its last attempt's error ends the record."""
        if call.call is None:
            return
        code = getattr(exc, "status_code", None)
        call.call.tracker.finish(error=ErrorInfo(type(exc).__name__, code, str(exc)))

    def close(self) -> None:
        if self.telemetry is not None:
            self.telemetry.close()


class _WrappedCall:
    """One openai call in flight: every attempt of it carries its request id."""

    __slots__ = ("call", "request_id", "wrapping")

    def __init__(self, wrapping: _Wrapping, request_id: str, call: Call | None) -> None:
        self.wrapping = wrapping
        self.request_id = request_id
        self.call = call

    def attempt(self, request: Any) -> None:
        request.headers["X-Request-Id"] = self.request_id
        call = self.call
        if call is None:
            return
        backend = self.wrapping.backend
        tracker = call.tracker
        tracker.attempt(backend.name, backend.base_url, self.wrapping.gateway)
        json_sent = str(request.headers.get("content-type", "")).startswith("application/json")
        if tracker.capture_content and tracker.attempts == 1 and json_sent:
            # The bytes sent, rather than pipeclient's encoding of the same body (a
            # streamed upload has none to read: the encoded body stays).
            with contextlib.suppress(Exception):
                tracker.request_body = bytes(request.content)

    def answered(self, response: Any) -> _Watcher | None:
        """The watcher of a 2xx answer's bytes; None when nothing is to be recorded."""
        call = self.call
        if call is None:
            return None
        status = int(response.status_code)
        call.tracker.http_status = status
        if not 200 <= status < 300:
            return None  # openai retries or raises; `failed` ends the record then
        try:
            return _Watcher(self.wrapping, call, response)
        except Exception as exc:  # telemetry never fails a call
            call.tracker.finish(error=ErrorInfo(type(exc).__name__, None))
            return None


class _Watcher:
    """Reads a 2xx answer's bytes as they pass to the caller and ends the call's record.
    Never raises: what the caller reads is openai's business."""

    __slots__ = (
        "_body",
        "_content_type",
        "_inflate",
        "_pending",
        "_reader",
        "call",
        "model",
        "status",
        "wrapping",
    )

    def __init__(self, wrapping: _Wrapping, call: Call, response: Any) -> None:
        self.wrapping = wrapping
        self.call = call
        self.status = int(response.status_code)
        content_type = str(response.headers.get("content-type", ""))
        self._content_type = content_type
        found = _operation_of_path(call.path) or ("chat", ChatCompletion, _ChunkReader)
        self.model: type[Any] = found[1]
        reader = found[2]
        if self.model is CreateEmbeddingResponse and call.body.get("encoding_format") == "base64":
            self.model = CreateEmbeddingBase64Response  # what openai asks for by default
        is_stream = content_type.split(";")[0].strip() == "text/event-stream"
        if self.model is Transcription and not content_type.startswith("application/json"):
            self.model = TranscriptText  # response_format text, srt or vtt
        self._reader: _ChunkReader | None = None
        self._body: bytearray | None = None
        self._pending = bytearray()
        # The transport's bytes are as sent: a compressed answer is inflated here (httpx
        # inflates the caller's copy above the transport). An encoding pipeclient cannot
        # read leaves reader and body None: the call is recorded without what its body says.
        self._inflate = _inflater(str(response.headers.get("content-encoding", "")))
        if is_stream and reader is None:  # e.g. a streamed transcription: not read
            self._inflate = None
        if self._inflate is not None:
            if is_stream and reader is not None:
                self._reader = reader(
                    call.tracker,
                    httpx.Response(self.status),
                    None,
                    hide_usage=False,
                    backend=wrapping.backend.name,
                    secrets=wrapping.secrets,
                )
            else:
                self._body = bytearray()

    @property
    def done(self) -> bool:
        return self.call.tracker.finished

    def feed(self, chunk: bytes) -> None:
        if self.done or self._inflate is None:
            return
        try:
            chunk = self._inflate(chunk)
            if self._body is not None:
                self._body += chunk
                return
            reader = self._reader
            assert reader is not None
            pending = self._pending
            pending += chunk
            while not reader.done:
                end = pending.find(b"\n")
                if end < 0:
                    break
                line = bytes(pending[:end]).rstrip(b"\r").decode("utf-8", "replace")
                del pending[: end + 1]
                reader.chunk_for(line)
        except Exception as exc:  # a bad event: the record says so, the caller reads on
            self.broken(exc)

    def ended(self) -> None:
        """The caller read the whole answer."""
        if self.done:
            return
        try:
            if self._body is not None:
                self._parse(bytes(self._body))
                return
            reader = self._reader
            if reader is None:  # unreadable: what is known (status, timings) ends it
                self.call.tracker.finish()
                return
            if self._pending and not reader.done:
                reader.chunk_for(bytes(self._pending).decode("utf-8", "replace"))
            if not reader.done:
                reader.chunk_at_eof()
            reader.finish()
        except Exception as exc:
            self.broken(exc)

    def _parse(self, content: bytes) -> None:
        kind = self._content_type or "application/json"
        carrier = httpx.Response(self.status, content=content, headers={"content-type": kind})
        _, error = _answers.parse(self.model, carrier, self.call, self.wrapping.backend)
        if error is not None:
            self.broken(error)

    def broken(self, exc: BaseException) -> None:
        if self.done:
            return
        if self._reader is not None:
            self._reader.finish(exc)
            return
        self.call.tracker.finish(error=ErrorInfo(type(exc).__name__, None, str(exc)))

    def stopped(self, exc: BaseException) -> None:
        """Reading stopped on `exc`: the caller left the loop (GeneratorExit), or it broke."""
        if isinstance(exc, GeneratorExit):
            self.closed()
        else:
            self.broken(exc)

    def closed(self) -> None:
        """The answer was closed: before its end, the caller stopped reading."""
        if self.done:
            return
        if self._reader is not None:
            self._reader.finish(closed_early=True)
        else:
            self.call.tracker.finish(closed_early=True)


def _inflater(content_encoding: str) -> Callable[[bytes], bytes] | None:
    """Inflates an answer's bytes as they come; None for an encoding other than gzip or
    deflate (brotli, zstd), which pipeclient does not read."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return lambda data: data
    if codings in (["gzip"], ["deflate"]):
        return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress  # gzip or zlib header
    return None


# -- the transport layer, built on the HTTP library the client uses ------------------------


class _TransportHook:
    """Wraps the client's transport: a wrapped call's attempts are counted, marked and
    watched; any other request passes untouched."""

    _pipeclient_hook = True

    def __init__(self, inner: Any, library: Any) -> None:
        self._inner = inner
        self._library = library

    def _watch(self, response: Any, watcher: _Watcher | None, tee: type[Any]) -> Any:
        if watcher is not None:
            response.stream = tee(response.stream, watcher)
        return response

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:  # the inner transport's own API
        return getattr(self._inner, name)


class _SyncHook(_TransportHook):
    def handle_request(self, request: Any) -> Any:
        current = _CURRENT.get()
        if current is None:
            return self._inner.handle_request(request)
        current.attempt(request)
        response = self._inner.handle_request(request)
        return self._watch(response, current.answered(response), _classes(self._library)[2])

    def __enter__(self) -> _SyncHook:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._inner.__exit__(*exc_info)


class _AsyncHook(_TransportHook):
    async def handle_async_request(self, request: Any) -> Any:
        current = _CURRENT.get()
        if current is None:
            return await self._inner.handle_async_request(request)
        current.attempt(request)
        response = await self._inner.handle_async_request(request)
        return self._watch(response, current.answered(response), _classes(self._library)[3])

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _AsyncHook:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._inner.__aexit__(*exc_info)


class _Tee:
    """The answer's byte stream, passed through chunk by chunk while the watcher reads.
    The loops are written twice, sync and async, as the client's are."""

    def __init__(self, inner: Any, watcher: _Watcher) -> None:
        self._inner = inner
        self._watcher = watcher


class _SyncTee(_Tee):
    def __iter__(self) -> Iterator[bytes]:
        watcher = self._watcher
        try:
            for chunk in self._inner:
                watcher.feed(chunk)
                yield chunk
        except BaseException as exc:
            watcher.stopped(exc)
            raise
        watcher.ended()

    def close(self) -> None:
        self._watcher.closed()
        self._inner.close()


class _AsyncTee(_Tee):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        watcher = self._watcher
        try:
            async for chunk in self._inner:
                watcher.feed(chunk)
                yield chunk
        except BaseException as exc:
            watcher.stopped(exc)
            raise
        watcher.ended()

    async def aclose(self) -> None:
        self._watcher.closed()
        await self._inner.aclose()


@functools.lru_cache(maxsize=4)
def _classes(library: Any) -> tuple[type[Any], type[Any], type[Any], type[Any]]:
    """The hooks and tees as subclasses of the library's own transport and stream bases,
    which its client checks with isinstance."""
    return (
        type("PipeclientTransport", (_SyncHook, library.BaseTransport), {}),
        type("PipeclientAsyncTransport", (_AsyncHook, library.AsyncBaseTransport), {}),
        type("PipeclientStream", (_SyncTee, library.SyncByteStream), {}),
        type("PipeclientAsyncStream", (_AsyncTee, library.AsyncByteStream), {}),
    )


def _library_of(http: Any) -> Any:
    """`httpx` or `httpx2`: whichever the HTTP client is built on."""
    for cls in type(http).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("httpx", "httpx2"):
            return sys.modules[root]
    raise ConfigError(
        f"the client's http_client is a {type(http).__name__}, not an httpx or httpx2 client; "
        "pass http_client=httpx.Client(...) (or httpx.AsyncClient) to the openai client",
        source=_WHERE,
    )


def _instrument(http: Any, is_async: bool) -> None:
    """Put the hook in front of every transport of the HTTP client (once)."""
    library = _library_of(http)
    hook = _classes(library)[1 if is_async else 0]
    transport = getattr(http, "_transport", None)
    if transport is None:
        raise ConfigError(
            f"the client's http_client ({type(http).__name__}) has no transport to instrument",
            source=_WHERE,
        )
    if not getattr(transport, "_pipeclient_hook", False):
        http._transport = hook(transport, library)
    mounts = getattr(http, "_mounts", None)
    if isinstance(mounts, dict):  # proxies: a transport per URL pattern
        for pattern, mounted in list(mounts.items()):
            if mounted is not None and not getattr(mounted, "_pipeclient_hook", False):
                mounts[pattern] = hook(mounted, library)


# -- the client's own hooks ------------------------------------------------------------------


def _described(files: Any) -> dict[str, Any]:
    """An upload's fields as the record keeps them: each file's name and size, not its bytes."""
    described: dict[str, Any] = {}
    items = files.items() if isinstance(files, Mapping) else files
    for field, value in items:
        name, content = None, value
        if isinstance(value, tuple):
            name, content = value[0], value[1] if len(value) > 1 else None
        size = len(content) if isinstance(content, (bytes, bytearray)) else None
        name = name or getattr(content, "name", None)
        described[str(field)] = {
            "filename": None if name is None else Path(str(name)).name,
            "bytes": size,
        }
    return described


def _operation_of_path(
    path: str,
) -> tuple[Operation, type[Any], type[_ChunkReader] | None] | None:
    path = path.split("?")[0].rstrip("/")
    for suffix, found in _OPERATIONS.items():
        if path.endswith(suffix):
            return found
    return None


def _operation_of(options: Any) -> tuple[str, Operation] | None:
    if str(getattr(options, "method", "")).lower() != "post":
        return None
    path = str(getattr(options, "url", ""))
    found = _operation_of_path(path)
    return None if found is None else (path, found[0])


def _backend_of(client: Any, local: bool = False) -> Backend:
    base_url = str(getattr(client, "base_url", "") or "").rstrip("/")
    api_key = getattr(client, "api_key", None)
    if not isinstance(api_key, str) or not api_key.strip():
        api_key = "none"  # a key the client fetches per request: pipeclient never sees it
    host = httpx.URL(base_url).host if base_url else ""
    return Backend(_WHERE, name=host or "openai", base_url=base_url, api_key=api_key, local=local)


def _install(client: Any, wrapping: _Wrapping) -> None:
    """The per-instance hooks: `request` opens each call; copies are wrapped too."""
    original = client.request
    copy = client.copy
    if wrapping.is_async:

        async def request_async(cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            current = wrapping.open(options)
            token = _CURRENT.set(current)
            try:
                result = await original(cast_to, options, *args, **kwargs)
            except BaseException as exc:
                wrapping.failed(current, exc)
                if current.call is not None:
                    await settle(current.call, wrapping.telemetry)
                raise
            finally:
                _CURRENT.reset(token)
            if current.call is not None:
                await settle(current.call, wrapping.telemetry)
            return result

        client.request = request_async
    else:

        def request(cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
            current = wrapping.open(options)
            token = _CURRENT.set(current)
            try:
                return original(cast_to, options, *args, **kwargs)
            except BaseException as exc:
                wrapping.failed(current, exc)
                raise
            finally:
                _CURRENT.reset(token)

        client.request = request

    def copy_wrapped(*args: Any, **kwargs: Any) -> Any:
        duplicate = copy(*args, **kwargs)
        if wrapping.serves(duplicate):
            _instrument(duplicate._client, wrapping.is_async)
            _install(duplicate, wrapping)
            return duplicate
        return wrap(duplicate, **wrapping.options)  # another endpoint: its own gateway rule

    client.copy = copy_wrapped
    client.with_options = copy_wrapped
    client._pipeclient_wrapping = wrapping


def _install_close(client: Any, wrapping: _Wrapping) -> None:
    """`client.close()` also flushes the telemetry (within `[export] flush_timeout_s`)."""
    close = client.close
    if wrapping.is_async:

        async def close_async() -> None:
            await close()
            import anyio.to_thread

            await anyio.to_thread.run_sync(wrapping.close)

        client.close = close_async
    else:

        def close_sync() -> None:
            close()
            wrapping.close()

        client.close = close_sync
    if wrapping.telemetry is not None:
        # Flushed at close() or at exit; a collected client only stops taking records.
        weakref.finalize(client, wrapping.telemetry.release).atexit = False


def wrap(
    client: OpenAIClient,
    *,
    no_log: bool = False,
    telemetry: TelemetryConfig | Mapping[str, Any] | None = None,
    telemetry_file: str | Path | None = None,
    redact: Callable[[str], str] | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    properties: Mapping[str, str | int | float | bool] | None = None,
    local: bool = False,
) -> OpenAIClient:
    """Instrument an `openai.OpenAI` or `openai.AsyncOpenAI` client; return it.

    The client works as before; its chat, embeddings, images and responses calls get pipeclient's
    telemetry (configured as for `pipeclient.Client`, from `telemetry=`, the environment
    and `.pipelex/telemetry.toml`), its privacy step, the audit log, the gateway rule and
    one `X-Request-Id` per call, the same on every retry. Other clients are untouched.
    `user_id=`, `session_id=` and `properties=` attribute every call (never sent to the
    provider); inside a `client.trace(...)` block with its own, the block's apply.
    `local=True`: the client's `base_url` is your own server, so `[routing] sensitive =
    "local"` lets flagged requests through (a copy to another endpoint is not local).
    """
    if getattr(client, "_pipeclient_wrapping", None) is not None:
        return client  # already wrapped
    request = getattr(client, "request", None)
    http = getattr(client, "_client", None)
    if request is None or http is None or not callable(getattr(client, "copy", None)):
        raise ConfigError(
            f"expected an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}",
            source=_WHERE,
        )
    is_async = inspect.iscoroutinefunction(request)
    attribution = check_attribution(user_id, session_id, properties, where=_WHERE)
    wrapping = _Wrapping(
        client,
        is_async=is_async,
        no_log=no_log,
        telemetry=telemetry,
        telemetry_file=telemetry_file,
        redact=redact,
        attribution=attribution,
        local=bool(local),
    )
    _instrument(http, is_async)
    _install(client, wrapping)
    _install_close(client, wrapping)
    return client
