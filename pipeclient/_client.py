"""Client and AsyncClient: the call path from arguments to a response.

Shared, I/O-free work lives in `_BaseClient`; the sending loops are written twice, once
sync and once async, and read the same.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
from pydantic import ValidationError

from ._backends import Backend, backends_from_env, gateway_url_from_env, is_gateway
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    scrub_secrets,
    status_error_class,
)
from ._record import CallRecord, CallTracker, ErrorInfo, Operation
from ._resources import NOT_GIVEN, AsyncChat, AsyncEmbeddings, AsyncImages, Chat, Embeddings, Images
from ._retry import BackendPool, RetryPolicy, retry_after_seconds, should_retry_status
from ._settings import TelemetrySettings, load_settings
from ._streaming import AsyncStream, Stream, _ChunkReader
from ._version import __version__
from .config import TelemetryConfig
from .types import ChatCompletion, CreateEmbeddingResponse, ImagesResponse

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client"]

logger = logging.getLogger("pipeclient")

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
_USER_AGENT = f"pipeclient/{__version__}"

Timeout = float | httpx.Timeout | None
ResponseT = TypeVar("ResponseT", ChatCompletion, CreateEmbeddingResponse, ImagesResponse)


class _Call:
    """One call in flight: its request id, body, and the tracker that will become its record."""

    __slots__ = ("_encoded", "body", "headers", "path", "stream", "timeout", "tracker")

    def __init__(
        self,
        *,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        timeout: Timeout,
        tracker: CallTracker,
    ) -> None:
        self.path = path
        self.body = body
        self.headers = headers
        self.timeout = timeout
        self.tracker = tracker
        self.stream = bool(body.get("stream"))
        self._encoded: dict[bool, bytes] = {}

    @property
    def request_id(self) -> str:
        return self.tracker.request_id

    def injects_usage(self, backend: Backend) -> bool:
        """Whether the client asks this backend for stream usage on the caller's behalf."""
        if not self.stream or not backend.stream_usage:
            return False
        options = self.body.get("stream_options")
        return not (isinstance(options, Mapping) and options.get("include_usage"))

    def content(self, backend: Backend) -> bytes:
        inject = self.injects_usage(backend)
        encoded = self._encoded.get(inject)
        if encoded is None:
            body = self.body
            if inject:
                body = {
                    **body,
                    "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
                }
            encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            self._encoded[inject] = encoded
        return encoded


def _check_request_id(request_id: str | None) -> str:
    if request_id is None:
        return str(uuid.uuid4())
    if (
        not isinstance(request_id, str)
        or not 0 < len(request_id) <= 200
        or not request_id.isascii()
        or not request_id.isprintable()
    ):
        raise ConfigError(
            "must be 1 to 200 printable ASCII characters (it is sent as the X-Request-Id "
            "header); omit it to get a new UUID",
            source="call argument",
            key="request_id",
        )
    return request_id


class _BaseClient:
    def __init__(
        self,
        backends: Sequence[Backend] | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        retry_policy: RetryPolicy | None = None,
        no_log: bool = False,
        default_headers: Mapping[str, str] | None = None,
        telemetry: TelemetryConfig | Mapping[str, Any] | None = None,
        telemetry_file: str | Path | None = None,
    ) -> None:
        if backends is not None and (api_key is not None or base_url is not None):
            raise ConfigError(
                "pass either backends=[...] or api_key=/base_url=, not both",
                source="Client arguments",
            )
        if backends is None:
            backends = self._backends_from_arguments(api_key, base_url)
        backends = list(backends)
        if not backends:
            raise ConfigError(
                "backends=[] is empty; pass at least one pipeclient.Backend",
                source="Client arguments",
                key="backends",
            )
        for backend in backends:
            if not isinstance(backend, Backend):
                raise ConfigError(
                    f"expected pipeclient.Backend, got {type(backend).__name__}",
                    source="Client arguments",
                    key="backends",
                )
        names = [backend.name for backend in backends]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(
                f"backend names must be unique; repeated: {', '.join(duplicates)}",
                source="Client arguments",
                key="backends",
            )
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(
                "must be an integer >= 0", source="Client arguments", key="max_retries"
            )
        # Read (and validated) before anything telemetry-related exists.
        self.telemetry_settings: TelemetrySettings = load_settings(telemetry, file=telemetry_file)
        self.backends: tuple[Backend, ...] = tuple(backends)
        self.timeout = timeout
        self.no_log = no_log
        self._policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self._pool = BackendPool(self.backends, self._policy)
        self._gateway_url = gateway_url_from_env()
        self._gateway = {b.name: is_gateway(b, self._gateway_url) for b in self.backends}
        self._secrets = tuple(b.api_key.get_secret_value() for b in self.backends)
        self._default_headers = dict(default_headers or {})
        # Where finished calls go; telemetry attaches here.
        self._record_listeners: list[Callable[[CallRecord], None]] = []
        self._capture_content = False

    @staticmethod
    def _backends_from_arguments(api_key: str | None, base_url: str | None) -> list[Backend]:
        if api_key is None and base_url is None:
            return backends_from_env()
        if api_key is None:
            found = backends_from_env()
            api_key = found[0].api_key.get_secret_value()
        return [
            Backend(
                "Client(api_key=..., base_url=...)",
                name="default",
                base_url=base_url or "https://api.openai.com/v1",
                api_key=api_key,
            )
        ]

    def __repr__(self) -> str:
        names = ", ".join(f"{b.name}={b.base_url}" for b in self.backends)
        return f"{type(self).__name__}(backends=[{names}])"

    def is_gateway(self, backend: Backend) -> bool:
        """Whether calls to this backend go to the managed gateway."""
        return self._gateway.get(backend.name, False) or is_gateway(backend, self._gateway_url)

    # -- building a call -------------------------------------------------------------

    def _emit(self, record: CallRecord) -> None:
        for listener in self._record_listeners:
            try:
                listener(record)
            except Exception:
                logger.exception("a call record listener failed")

    def _start(
        self,
        operation: Operation,
        path: str,
        body: dict[str, Any],
        *,
        request_id: str | None,
        no_log: bool | None,
        trace: Any,
        timeout: Any,
        extra_headers: Mapping[str, str] | None,
        extra_body: Mapping[str, Any] | None,
    ) -> _Call:
        rid = _check_request_id(request_id)
        if extra_body:
            body.update(extra_body)
        headers = {**self._default_headers, **(extra_headers or {})}
        tracker = CallTracker(
            request_id=rid,
            operation=operation,
            body=body,
            stream=bool(body.get("stream")),
            no_log=self.no_log if no_log is None else no_log,
            trace=trace,
            capture_content=self._capture_content,
            emit=self._emit if self._record_listeners else None,
        )
        return _Call(
            path=path,
            body=body,
            headers=headers,
            timeout=self.timeout if timeout is NOT_GIVEN else timeout,
            tracker=tracker,
        )

    def _request_for(self, call: _Call, backend: Backend) -> httpx.Request:
        call.tracker.attempt(backend.name, backend.base_url, self.is_gateway(backend))
        headers = {
            "Authorization": f"Bearer {backend.api_key.get_secret_value()}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if call.stream else "application/json",
            "User-Agent": _USER_AGENT,
            **backend.headers,
            **call.headers,
            "X-Request-Id": call.request_id,
        }
        return httpx.Request(
            "POST",
            backend.base_url + call.path,
            headers=headers,
            content=call.content(backend),
            extensions={"timeout": httpx.Timeout(call.timeout).as_dict()},
        )

    # -- turning answers into results or errors ---------------------------------------

    def _transport_error(
        self, exc: httpx.TransportError, call: _Call, backend: Backend
    ) -> APIError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(
                f"backend {backend.name!r} did not answer in time ({type(exc).__name__}) "
                f"(request id {call.request_id})",
                request_id=call.request_id,
                backend=backend.name,
            )
        return APIConnectionError(
            f"could not reach backend {backend.name!r} at {backend.base_url} "
            f"({type(exc).__name__}) (request id {call.request_id})",
            request_id=call.request_id,
            backend=backend.name,
        )

    def _status_error(
        self, response: httpx.Response, call: _Call, backend: Backend
    ) -> APIStatusError:
        status = response.status_code
        body: Any
        detail: str
        code: str | None = None
        try:
            body = response.json()
        except ValueError:
            body = response.text
            kind = response.headers.get("content-type", "unknown type").split(";")[0]
            detail = f"a non-JSON body ({kind}, {len(response.content)} bytes)"
        else:
            error = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(error, dict):
                message = error.get("message") or error.get("detail") or json.dumps(error)
                raw_code = error.get("code") or error.get("type")
                code = str(raw_code) if raw_code is not None else None
            else:
                message = str(error)
            detail = scrub_secrets(str(message), self._secrets)
        call.tracker.http_status = status
        return status_error_class(status)(
            f"backend {backend.name!r} answered {status}: {detail} (request id {call.request_id})",
            request_id=call.request_id,
            status_code=status,
            body=body,
            backend=backend.name,
            code=code,
        )

    def _fail(self, call: _Call, error: APIError) -> APIError:
        code = getattr(error, "status_code", None)
        call.tracker.finish(error=ErrorInfo(type(error).__name__, code, str(error)))
        return error

    def _exhausted(self, call: _Call, last: APIError) -> APIError:
        attempts = call.tracker.attempts
        if attempts > 1:
            tried = len(self.backends)
            note = f" after {attempts} attempts" + (f" on {tried} backends" if tried > 1 else "")
            last.args = (f"{last.args[0]}{note}",)
        return self._fail(call, last)

    def _parse(
        self, model: type[ResponseT], response: httpx.Response, call: _Call, backend: Backend
    ) -> ResponseT:
        call.tracker.http_status = response.status_code
        try:
            result = model.model_validate_json(response.content)
        except ValidationError:
            kind = response.headers.get("content-type", "unknown type").split(";")[0]
            raise self._fail(
                call,
                APIResponseValidationError(
                    f"backend {backend.name!r} answered {response.status_code} with a body that "
                    f"is not a {model.__name__} ({kind}, {len(response.content)} bytes) "
                    f"(request id {call.request_id})",
                    request_id=call.request_id,
                    backend=backend.name,
                ),
            ) from None
        result._request_id = call.request_id
        tracker = call.tracker
        tracker.first_chunk()
        if tracker.finished:
            return result
        usage = getattr(result, "usage", None)
        input_tokens = output_tokens = None
        finish_reasons: tuple[str, ...] = ()
        output: Any = None
        if isinstance(result, ChatCompletion):
            if usage is not None:
                input_tokens, output_tokens = usage.prompt_tokens, usage.completion_tokens
            finish_reasons = tuple(choice.finish_reason for choice in result.choices)
            if tracker.capture_content:
                output = [choice.message.model_dump(exclude_none=True) for choice in result.choices]
        elif isinstance(result, CreateEmbeddingResponse):
            input_tokens = result.usage.prompt_tokens
        elif isinstance(result, ImagesResponse) and isinstance(usage, dict):
            input_tokens, output_tokens = usage.get("input_tokens"), usage.get("output_tokens")
        tracker.finish(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            response_id=getattr(result, "id", None),
            response_model=getattr(result, "model", None),
            finish_reasons=finish_reasons,
            output=output,
        )
        return result

    def _retry_wait(self, backend: Backend, failures: int, hint: float | None) -> float:
        if hint is not None:
            return min(hint, self._policy.max_retry_after)
        return self._policy.backoff(failures, self._pool.rng)

    def _reader(self, call: _Call, backend: Backend, response: httpx.Response) -> _ChunkReader:
        call.tracker.http_status = response.status_code
        return _ChunkReader(
            call.tracker,
            response,
            hide_usage=call.injects_usage(backend),
            backend=backend.name,
            secrets=self._secrets,
        )


def _abandon(call: _Call, exc: BaseException) -> None:
    """End the record of a call that stopped on something other than an APIError."""
    call.tracker.finish(error=ErrorInfo(type(exc).__name__, None))


class _Attempts:
    """Bookkeeping of one call's attempts: who failed how often, and who waits until when."""

    __slots__ = ("failures", "not_before")

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.not_before: dict[str, float] = {}

    def wait_for(self, backend: Backend) -> float:
        return self.not_before.get(backend.name, 0.0) - time.monotonic()

    def failed(self, client: _BaseClient, backend: Backend, hint: float | None) -> None:
        count = self.failures.get(backend.name, 0) + 1
        self.failures[backend.name] = count
        self.not_before[backend.name] = time.monotonic() + client._retry_wait(backend, count, hint)
        client._pool.failed(backend)


class Client(_BaseClient):
    """The synchronous client. Thread-safe; reuse one per process."""

    def __init__(self, backends: Sequence[Backend] | None = None, **options: Any) -> None:
        super().__init__(backends, **options)
        self._http: dict[str, httpx.Client] = {}
        self.chat = Chat(self)
        self.embeddings = Embeddings(self)
        self.images = Images(self)

    def _http_for(self, backend: Backend) -> httpx.Client:
        http = self._http.get(backend.name)
        if http is None:
            transport = backend.transport
            if transport is not None and not isinstance(transport, httpx.BaseTransport):
                raise ConfigError(
                    "is an async-only transport; Client needs a sync one",
                    source=f"Backend(name={backend.name!r})",
                    key="transport",
                )
            http = httpx.Client(
                transport=transport,
                timeout=DEFAULT_TIMEOUT,
                follow_redirects=False,
                trust_env=transport is None,
            )
            self._http[backend.name] = http
        return http

    def _send(self, call: _Call) -> tuple[Backend, httpx.Response]:
        """Send with retries and failover; return the first 2xx answer (open if streaming)."""
        attempts = _Attempts()
        last: APIError | None = None
        plan = self._pool.plan()
        for _ in range(self._policy.max_retries + 1):
            for backend in plan:
                wait = attempts.wait_for(backend)
                if wait > 0:
                    time.sleep(wait)
                request = self._request_for(call, backend)
                hint: float | None = None
                try:
                    response = self._http_for(backend).send(request, stream=call.stream)
                except httpx.TransportError as exc:
                    error: APIError = self._transport_error(exc, call, backend)
                else:
                    if response.status_code < 300:
                        self._pool.succeeded(backend)
                        return backend, response
                    try:
                        response.read()
                    except httpx.TransportError as exc:
                        error = self._transport_error(exc, call, backend)
                    else:
                        error = self._status_error(response, call, backend)
                        if not should_retry_status(response.status_code, response.headers):
                            raise self._fail(call, error)
                        hint = retry_after_seconds(response.headers)
                    finally:
                        response.close()
                logger.debug(
                    "attempt %d of request %s failed: %s",
                    call.tracker.attempts,
                    call.request_id,
                    type(error).__name__,
                )
                attempts.failed(self, backend, hint)
                last = error
        assert last is not None
        raise self._exhausted(call, last)

    def _call(self, call: _Call, model: type[ResponseT]) -> ResponseT:
        try:
            backend, response = self._send(call)
            try:
                return self._parse(model, response, call, backend)
            finally:
                response.close()
        except BaseException as exc:
            _abandon(call, exc)
            raise

    def _stream(self, call: _Call) -> Stream:
        try:
            backend, response = self._send(call)
        except BaseException as exc:
            _abandon(call, exc)
            raise
        return Stream(self._reader(call, backend, response))

    def close(self) -> None:
        """Close connections. Safe to call more than once."""
        for http in self._http.values():
            http.close()
        self._http.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asyncio (and trio) client: `await` calls, `async for` streams."""

    def __init__(self, backends: Sequence[Backend] | None = None, **options: Any) -> None:
        super().__init__(backends, **options)
        self._http: dict[str, httpx.AsyncClient] = {}
        self.chat = AsyncChat(self)
        self.embeddings = AsyncEmbeddings(self)
        self.images = AsyncImages(self)

    def _http_for(self, backend: Backend) -> httpx.AsyncClient:
        http = self._http.get(backend.name)
        if http is None:
            transport = backend.transport
            if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
                raise ConfigError(
                    "is a sync-only transport; AsyncClient needs an async one",
                    source=f"Backend(name={backend.name!r})",
                    key="transport",
                )
            http = httpx.AsyncClient(
                transport=transport,
                timeout=DEFAULT_TIMEOUT,
                follow_redirects=False,
                trust_env=transport is None,
            )
            self._http[backend.name] = http
        return http

    async def _send(self, call: _Call) -> tuple[Backend, httpx.Response]:
        """Send with retries and failover; return the first 2xx answer (open if streaming)."""
        attempts = _Attempts()
        last: APIError | None = None
        plan = self._pool.plan()
        for _ in range(self._policy.max_retries + 1):
            for backend in plan:
                wait = attempts.wait_for(backend)
                if wait > 0:
                    await anyio.sleep(wait)
                request = self._request_for(call, backend)
                hint: float | None = None
                try:
                    response = await self._http_for(backend).send(request, stream=call.stream)
                except httpx.TransportError as exc:
                    error: APIError = self._transport_error(exc, call, backend)
                else:
                    if response.status_code < 300:
                        self._pool.succeeded(backend)
                        return backend, response
                    try:
                        await response.aread()
                    except httpx.TransportError as exc:
                        error = self._transport_error(exc, call, backend)
                    else:
                        error = self._status_error(response, call, backend)
                        if not should_retry_status(response.status_code, response.headers):
                            raise self._fail(call, error)
                        hint = retry_after_seconds(response.headers)
                    finally:
                        await response.aclose()
                logger.debug(
                    "attempt %d of request %s failed: %s",
                    call.tracker.attempts,
                    call.request_id,
                    type(error).__name__,
                )
                attempts.failed(self, backend, hint)
                last = error
        assert last is not None
        raise self._exhausted(call, last)

    async def _call(self, call: _Call, model: type[ResponseT]) -> ResponseT:
        try:
            backend, response = await self._send(call)
            try:
                return self._parse(model, response, call, backend)
            finally:
                await response.aclose()
        except BaseException as exc:
            _abandon(call, exc)
            raise

    async def _stream(self, call: _Call) -> AsyncStream:
        try:
            backend, response = await self._send(call)
        except BaseException as exc:
            _abandon(call, exc)
            raise
        return AsyncStream(self._reader(call, backend, response))

    async def close(self) -> None:
        """Close connections. Safe to call more than once."""
        for http in self._http.values():
            await http.aclose()
        self._http.clear()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
