"""Client and AsyncClient: the call path from arguments to a response.

Shared, I/O-free work lives in `_BaseClient` and `_answers`; the sending loops are
written twice, once sync and once async, and read the same. Errors are raised outside
`except` blocks, so that no `__context__` keeps an httpx request (with its headers).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import httpx
from typing_extensions import Self, Unpack

from .._config.settings import DefaultSettings, load_settings_or_defaults
from .._exceptions import APIError, ConfigError
from .._privacy.known_secrets import KnownSecrets
from .._telemetry.attribution import NO_ATTRIBUTION, check_attribution
from .._telemetry.record import ErrorInfo, Operation
from .._telemetry.report import FlushReport
from .._telemetry.trace import Trace, TraceParent, current_parent
from .._version import __version__
from . import answers as _answers
from .async_views import AsyncClientWithRawResponse, AsyncClientWithStreamingResponse
from .audio import AsyncAudio, Audio
from .backends import Backend, backends_from_arguments, gateway_url_from_env
from .cache import CallCache, open_cache
from .call import (
    Call,
    Form,
    check_headers,
    check_query,
    check_request_id,
    check_timeout,
    start_call,
)
from .chat import AsyncChat, Chat
from .endpoints import (
    AsyncModels,
    AsyncModerations,
    AsyncTextCompletions,
    Models,
    Moderations,
    TextCompletions,
)
from .params import (
    AsyncClientOptions,
    AsyncCopyOptions,
    ClientOptions,
    CopyOptions,
    reject_unexpected,
)
from .raw import raw_answer, wants_raw
from .resources import NOT_GIVEN, AsyncEmbeddings, AsyncImages, Embeddings, Images
from .responses import AsyncResponses, Responses
from .retry import RetryPolicy
from .router import CallRoute, Router
from .routing import build_routing
from .streaming import AsyncStream, Stream, _ChunkReader
from .telemetry import build_client_pipeline, check_budget, settle, telemetry_due
from .views import ClientWithRawResponse, ClientWithStreamingResponse

if TYPE_CHECKING:
    # Telemetry machinery (and anyio, for AsyncClient) is imported where it is used, only
    # when a stream, the gateway or the audit log is on: a client without telemetry
    # never loads it (DESIGN 3).
    from .._config.models import TelemetryConfig
    from .._config.settings import TelemetrySettings
    from .._telemetry.budget import Budget
    from .._telemetry.pipeline import Pipeline

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client"]

logger = logging.getLogger("pipeclient")

DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
# openai-python's pool limits: a program moved from the openai SDK keeps its pool.
LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=5.0)
_USER_AGENT = f"pipeclient/{__version__}"


_HttpT = TypeVar("_HttpT", httpx.Client, httpx.AsyncClient)


class _NoCookies(httpx.Cookies):
    """The cookie jar of the clients pipeclient makes: it keeps nothing. Requests are built
    here and sent with `send`, which never adds a jar's cookies to them (and redirects are
    not followed), so what httpx would extract from every answer (about 40 us per call of
    `http.cookiejar`) would never be used."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def _new_http(kind: type[_HttpT], transport: Any) -> _HttpT:
    """An httpx client for one backend, without the cookie jar it would never use (should
    httpx keep its jar elsewhere one day, the client keeps it)."""
    http = kind(
        transport=transport,
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        trust_env=transport is None,
        limits=LIMITS,
    )
    if isinstance(getattr(http, "_cookies", None), httpx.Cookies):
        http._cookies = _NoCookies()
    return http


_ARGUMENTS = "Client arguments"

ResponseT = TypeVar("ResponseT")


class _Answer(NamedTuple):
    """A 2xx answer. For a stream, `first` is its first line, read before committing."""

    backend: Backend
    response: httpx.Response
    first: str | None = None
    lines: Any = None


def _check_backends(backends: Sequence[Backend]) -> tuple[Backend, ...]:
    if not backends:
        raise ConfigError(
            "backends=[] is empty; pass at least one pipeclient.Backend",
            source=_ARGUMENTS,
            key="backends",
        )
    for backend in backends:
        if not isinstance(backend, Backend):
            raise ConfigError(
                f"expected pipeclient.Backend, got {type(backend).__name__}",
                source=_ARGUMENTS,
                key="backends",
            )
    names = [backend.name for backend in backends]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(
            f"backend names must be unique; repeated: {', '.join(duplicates)}",
            source=_ARGUMENTS,
            key="backends",
        )
    return tuple(backends)


def _account_headers(organization: str | None, project: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value, key in (
        ("OpenAI-Organization", organization, "organization"),
        ("OpenAI-Project", project, "project"),
    ):
        if value is not None:
            check_headers({name: value}, key)
            headers[name] = value
    return headers


def _check_http_client(http_client: Any, expected: type[Any]) -> Any:
    if http_client is None or isinstance(http_client, expected):
        return http_client
    raise ConfigError(
        f"must be an {expected.__module__}.{expected.__qualname__}, "
        f"got {type(http_client).__name__}",
        source=_ARGUMENTS,
        key="http_client",
    )


class _BaseClient:
    # AsyncClient: a durable audit line is written in a worker thread, awaited.
    _defers_audit = False
    _is_async = False
    _http_client_type: type[Any] = httpx.Client

    def __init__(
        self,
        backends: Sequence[Backend] | None = None,
        *,
        api_key: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, object] | None = None,
        http_client: httpx.Client | httpx.AsyncClient | None = None,
        retry_policy: RetryPolicy | None = None,
        no_log: bool = False,
        telemetry: TelemetryConfig | Mapping[str, Any] | None = None,
        telemetry_file: str | Path | None = None,
        redact: Callable[[str], str] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        properties: Mapping[str, str | int | float | bool] | None = None,
        ephemeral: bool = False,
        routing: Any = None,
        cache: bool = True,
    ) -> None:
        # What with_options() needs to build a client with other backends.
        self._arguments: dict[str, Any] = {
            "api_key": api_key,
            "organization": organization,
            "project": project,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "default_headers": default_headers,
            "default_query": default_query,
            "http_client": http_client,
            "retry_policy": retry_policy,
            "no_log": no_log,
            "telemetry": telemetry,
            "telemetry_file": telemetry_file,
            "redact": redact,
            "user_id": user_id,
            "session_id": session_id,
            "properties": properties,
            "routing": routing,
            "cache": cache,
        }
        self._from_backends = backends is not None
        if backends is not None and (api_key is not None or base_url is not None):
            raise ConfigError(
                "pass either backends=[...] or api_key=/base_url=, not both", source=_ARGUMENTS
            )
        if max_retries is not None and retry_policy is not None:
            raise ConfigError(
                "pass either max_retries= or retry_policy=RetryPolicy(max_retries=...), not both",
                source=_ARGUMENTS,
            )
        if max_retries is not None and (
            not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0
        ):
            raise ConfigError("must be an integer >= 0", source=_ARGUMENTS, key="max_retries")
        if redact is not None and not callable(redact):
            raise ConfigError(
                "must be a function taking and returning a str", source=_ARGUMENTS, key="redact"
            )
        self.backends = _check_backends(
            list(backends) if backends is not None else backends_from_arguments(api_key, base_url)
        )
        self._timeout = check_timeout(timeout)
        self.no_log = bool(no_log)
        if backends is None:  # as openai-python: the environment's, for OpenAI's own API
            organization = organization or os.environ.get("OPENAI_ORG_ID") or None
            project = project or os.environ.get("OPENAI_PROJECT_ID") or None
        self.organization = organization
        self.project = project
        # Who the calls are for, unless a block or a call says otherwise.
        self._attribution = check_attribution(
            user_id, session_id, properties, where=type(self).__name__ + "()"
        )
        self._default_headers = _account_headers(organization, project)
        self._default_headers.update(check_headers(default_headers, "default_headers"))
        self._default_query = check_query(default_query, "default_query")
        self._user_http = _check_http_client(http_client, self._http_client_type)
        self._owner = True  # False for a with_options() copy: its parent owns the resources
        self._parent: _BaseClient | None = None
        self.ephemeral = bool(ephemeral)  # the content store keeps calls for ttl_hours only
        # Read (and validated) before anything telemetry-related exists. When nothing
        # configures telemetry, the settings are the defaults, built only if asked for.
        settings = load_settings_or_defaults(telemetry, file=telemetry_file)
        self._policy = retry_policy or RetryPolicy(
            max_retries=2 if max_retries is None else max_retries
        )
        # Every secret the client knows, scrubbed from provider text before it is shown.
        self._secrets = KnownSecrets(
            [b.api_key.get_secret_value() for b in self.backends]
            + [value for b in self.backends for value in b.headers.values()]
        )
        self._http_lock = threading.Lock()
        self._urls: dict[str, httpx.URL] = {}  # each endpoint's URL, parsed once
        # Where finished calls go, when a stream, the gateway or the audit log is on.
        self._telemetry: Pipeline | None = None
        self._budget: Budget | None = None  # `[budget]`, checked before each call is sent
        self._settings: TelemetrySettings | DefaultSettings = settings
        self._router = Router(
            self.backends,
            self._policy,
            gateway_url=gateway_url_from_env(),
            do_not_track=settings.do_not_track,
        )
        # [routing] and Client(routing=...): read whatever DO_NOT_TRACK says.
        self._routing = build_routing(settings, routing, self.backends, self._secrets)
        # `[cache]`: answers looked up before a call's route, its budget or any I/O.
        self._cache: CallCache | None = open_cache(settings, self._router, wanted=bool(cache))
        if telemetry_due(settings, self._router):
            self._start_telemetry(self.telemetry_settings, redact)

    @property
    def telemetry_settings(self) -> TelemetrySettings:
        """The telemetry configuration in force, and where each value came from."""
        settings = self._settings
        if isinstance(settings, DefaultSettings):
            settings = self._settings = settings.settings()
        return settings

    def _start_telemetry(
        self, settings: TelemetrySettings, redact: Callable[[str], str] | None
    ) -> None:
        pipeline = build_client_pipeline(
            settings, self._router, self.backends, self._secrets, redact
        )
        if pipeline is None:
            return
        self._telemetry = pipeline
        self._budget = pipeline.budget
        # Flushed at close() or at exit (one hook for all clients, one deadline); a
        # collected client only stops taking records, never blocking the collecting thread.
        weakref.finalize(self, pipeline.release).atexit = False

    @property
    def base_url(self) -> httpx.URL:
        """The first backend's base URL, with a trailing slash (as openai-python's)."""
        return httpx.URL(self.backends[0].base_url + "/")

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(**self._timeout)

    @property
    def max_retries(self) -> int:
        return self._policy.max_retries

    def _copy(self, options: Mapping[str, Any]) -> Any:
        """`with_options()`: a client with these options changed, sharing this one's
        connections, telemetry and backend health; with another `api_key`/`base_url`, a
        new client (its own connections and telemetry: close it)."""
        changes = dict(options)
        for replace, merge in (
            ("set_default_headers", "default_headers"),
            ("set_default_query", "default_query"),
        ):
            if changes.get(replace) is not None and changes.get(merge) is not None:
                raise ConfigError(
                    f"pass either {merge}= (merged) or {replace}= (replacing), not both",
                    source="with_options()",
                )
        if "api_key" in changes or "base_url" in changes:
            return self._rebuilt(changes)
        new = copy.copy(self)
        new._owner = False
        new._parent = self._parent or self  # keeps the owner (and its telemetry) alive
        if "timeout" in changes:
            new._timeout = check_timeout(changes["timeout"])
        if changes.get("max_retries") is not None:
            if self._arguments.get("retry_policy") is None and not (
                isinstance(changes["max_retries"], int) and changes["max_retries"] >= 0
            ):
                raise ConfigError(
                    "must be an integer >= 0", source="with_options()", key="max_retries"
                )
            new._policy = dataclasses.replace(self._policy, max_retries=changes["max_retries"])
            new._router = self._router.with_policy(new._policy)
        headers = dict(self._default_headers)
        if changes.get("set_default_headers") is not None:
            headers = check_headers(changes["set_default_headers"], "set_default_headers")
        for name in ("organization", "project"):
            if changes.get(name) is not None:
                setattr(new, name, changes[name])
        headers.update(_account_headers(changes.get("organization"), changes.get("project")))
        headers.update(check_headers(changes.get("default_headers"), "default_headers"))
        new._default_headers = headers
        query = dict(self._default_query)
        if changes.get("set_default_query") is not None:
            query = check_query(changes["set_default_query"], "set_default_query")
        query.update(check_query(changes.get("default_query"), "default_query"))
        new._default_query = query
        if changes.get("http_client") is not None:
            new._user_http = _check_http_client(changes["http_client"], self._http_client_type)
        if "no_log" in changes:
            new.no_log = bool(changes["no_log"])
        if "cache" in changes:  # False: this copy skips the cache; True: the owner's, if any
            new._cache = (self._parent or self)._cache if changes["cache"] else None
        new._bind()
        return new

    def _rebuilt(self, changes: dict[str, Any]) -> Any:
        if self._from_backends:
            raise ConfigError(
                "this client was made with backends=[...]: api_key= and base_url= are set "
                "per pipeclient.Backend; make a client with the backends you want",
                source="with_options()",
            )
        arguments = dict(self._arguments)
        for name, value in changes.items():
            if name == "set_default_headers":
                arguments["default_headers"] = value
            elif name == "set_default_query":
                arguments["default_query"] = value
            elif name in ("default_headers", "default_query") and value is not None:
                arguments[name] = {**(arguments[name] or {}), **value}
            elif name == "max_retries" and arguments.get("retry_policy") is not None:
                arguments["retry_policy"] = dataclasses.replace(
                    arguments["retry_policy"], max_retries=value
                )
            else:
                arguments[name] = value
        return type(self)(**arguments)

    def _bind(self) -> None:
        """Attach the OpenAI-shaped namespaces (each client and copy has its own)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        names = ", ".join(f"{b.name}={b.base_url}" for b in self.backends)
        return f"{type(self).__name__}(backends=[{names}])"

    def is_gateway(self, backend: Backend) -> bool:
        """Whether calls to this backend go to the managed gateway."""
        return self._router.is_gateway(backend)

    def privacy_counts(self) -> dict[str, int]:
        """Redactions so far, per detector ("email", "secret", "api_key", "hook", ...) and
        records whose content was dropped ("hook_failed"): numbers, never what was found."""
        return self._telemetry.counts() if self._telemetry is not None else {}

    # -- building a call -------------------------------------------------------------

    def _close_telemetry(self) -> FlushReport | None:
        if self._cache is not None:  # reopened by a later call
            self._cache.close()
        return self._telemetry.close() if self._telemetry is not None else None

    def trace(
        self,
        name: str,
        *,
        no_log: bool | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        properties: Mapping[str, str | int | float | bool] | None = None,
    ) -> Trace:
        """`with client.trace("name"):` groups the calls inside under one trace id.

        A no-log block (`no_log=True`, or a no-log client) sends nothing of itself and
        makes every call inside it no-log. `user_id=`, `session_id=` and `properties=`
        apply to the block and to every call inside it (a call's own win)."""
        if no_log is None:
            no_log = self.no_log or all(backend.no_log for backend in self.backends)
        emit = self._telemetry.emit if self._telemetry is not None else None
        own = check_attribution(user_id, session_id, properties, where="client.trace()")
        return Trace(
            name,
            emit,
            current_parent(),
            no_log=bool(no_log),
            attribution=own,
            base=self._attribution,
        )

    def _start(
        self,
        operation: Operation | None,
        path: str,
        body: dict[str, Any],
        *,
        request_id: str | None,
        no_log: bool | None,
        trace: Any,
        timeout: Any,
        extra_headers: Mapping[str, str] | None,
        extra_body: Mapping[str, Any] | None,
        extra_query: Mapping[str, object] | None = None,
        method: str = "POST",
        form: Form | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        ephemeral: bool | None = None,
        cache: bool | None = None,
    ) -> Call:
        """A call ready to send. `operation=None`: not an inference call (listing models),
        which no telemetry records."""
        attribution = check_attribution(user_id, session_id, properties, where="call argument")
        if trace is None:
            trace = current_parent()
        elif not isinstance(trace, TraceParent):
            raise ConfigError(
                "must be a trace from client.trace(name)", source="call argument", key="trace"
            )
        headers = check_headers(extra_headers, "extra_headers")
        for name in [name for name in headers if name.lower() == "x-request-id"]:
            # The header is the request id; one call has one.
            given = headers.pop(name)
            if request_id is not None and request_id != given:
                raise ConfigError(
                    "conflicts with request_id=; pass the id once",
                    source="call argument",
                    key="extra_headers['X-Request-Id']",
                )
            request_id = given
        supplied = request_id is not None
        rid = check_request_id(request_id)
        if extra_body:
            if "stream" in extra_body:
                raise ConfigError(
                    "cannot set 'stream'; pass stream=True to create()",
                    source="call argument",
                    key="extra_body",
                )
            body.update(extra_body)
        quiet = self.no_log if no_log is None else bool(no_log)
        if trace is not None and trace.no_log:  # nothing of a no-log block leaves
            quiet = True
        call = start_call(
            self._telemetry if operation is not None else None,
            operation=operation or "chat",
            path=path,
            body=body,
            request_id=rid,
            request_id_supplied=supplied,
            no_log=quiet,
            trace=trace,
            headers={**self._default_headers, **headers},
            timeout=self._timeout if timeout is NOT_GIVEN else check_timeout(timeout),
            defers_audit=self._defers_audit,
            method=method,
            form=form,
            attribution=attribution.over(
                trace.attribution
                if trace is not None and trace.attribution is not NO_ATTRIBUTION
                else self._attribution
            ),
            ephemeral=self.ephemeral if ephemeral is None else bool(ephemeral),
        )
        call.query = check_query(extra_query)
        call.use_cache = cache is not False
        return call

    def _request_for(self, call: Call, backend: Backend) -> httpx.Request:
        call.tracker.attempt(
            backend.name, backend.base_url, self.is_gateway(backend), no_log=backend.no_log
        )
        accept = "application/json"
        if call.stream:
            accept = "text/event-stream"
        elif call.tracker.operation == "speech":
            accept = "*/*"  # audio, in the format asked for
        headers = httpx.Headers(
            {
                "Authorization": f"Bearer {backend.api_key.get_secret_value()}",
                "Accept": accept,
                "User-Agent": _USER_AGENT,
            }
        )
        if call.content_type is not None:
            headers["Content-Type"] = call.content_type
        # Case-insensitive: a caller's "x-request-id" or "authorization" replaces ours.
        headers.update(backend.headers)
        headers.update(call.headers)
        headers["X-Request-Id"] = call.request_id
        query = {**backend.default_query, **self._default_query, **call.query}
        return httpx.Request(
            call.method,
            self._url(backend.base_url + call.path),
            params=query or None,
            headers=headers,
            content=call.content(backend),
            extensions={"timeout": call.timeout},
        )

    def _url(self, text: str) -> httpx.URL:
        """The URL, parsed once per endpoint (httpx parses a string at every request)."""
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) >= 256:  # paths with ids in them (files, batches): bounded
                self._urls.clear()
            url = self._urls[text] = httpx.URL(text)
        return url

    def _route(self, call: Call) -> CallRoute:
        """The call's route; under DO_NOT_TRACK with only the gateway, the refusal, raised
        before any network I/O."""
        allowed = None if self._routing is None else self._routing.decide(call).allowed
        route, refusal = self._router.route(call.request_id, allowed)
        if refusal is not None:
            call.tracker.finish(error=ErrorInfo(type(refusal).__name__, None))
            raise refusal
        assert route is not None
        check_budget(call, self._budget)
        return route

    def _fail(self, call: Call, error: APIError) -> APIError:
        code = getattr(error, "status_code", None)
        call.tracker.finish(error=ErrorInfo(type(error).__name__, code, str(error)))
        return error

    def _exhausted(self, call: Call, last: APIError, tried: int) -> APIError:
        attempts = call.tracker.attempts
        if attempts > 1:
            note = f" after {attempts} attempts" + (f" on {tried} backends" if tried > 1 else "")
            last.args = (f"{last.args[0]}{note}",)
        return self._fail(call, last)

    def _reader(
        self, call: Call, answer: _Answer, lines: Any, kind: type[_ChunkReader]
    ) -> _ChunkReader:
        call.tracker.http_status = answer.response.status_code
        return kind(
            call.tracker,
            answer.response,
            lines,
            hide_usage=call.injects_usage(answer.backend),
            backend=answer.backend.name,
            secrets=self._secrets,
        )


def _abandon(call: Call, exc: BaseException) -> None:
    """End the record of a call that stopped on something other than an APIError."""
    call.tracker.finish(error=ErrorInfo(type(exc).__name__, None))


class Client(_BaseClient):
    """The synchronous client. Thread-safe; reuse one per process."""

    def __init__(
        self, backends: Sequence[Backend] | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        reject_unexpected(options, ClientOptions, "Client()", body_hint=False)
        self._http: dict[str, httpx.Client] = {}
        super().__init__(backends, **options)
        self._bind()

    def _bind(self) -> None:
        self.chat = Chat(self)
        self.embeddings = Embeddings(self)
        self.images = Images(self)
        self.models = Models(self)
        self.moderations = Moderations(self)
        self.completions = TextCompletions(self)
        self.responses = Responses(self)
        self.audio = Audio(self)

    def with_options(self, **options: Unpack[CopyOptions]) -> Self:
        """A client with these options changed (openai-python's `with_options`/`copy`).

        It shares this client's connections, telemetry and backend health, and needs no
        closing; with another `api_key` or `base_url` it is a new client: close it."""
        reject_unexpected(options, CopyOptions, "with_options()", body_hint=False)
        return self._copy(options)  # type: ignore[no-any-return]

    copy = with_options

    @property
    def with_raw_response(self) -> ClientWithRawResponse:
        """`client.with_raw_response.chat.completions.create(...)`: the same call, answering
        with a `LegacyAPIResponse` (`.headers`, `.status_code`, `.parse()` for the result)."""
        return ClientWithRawResponse(self)

    @property
    def with_streaming_response(self) -> ClientWithStreamingResponse:
        """`with client.with_streaming_response.chat.completions.create(...) as response:`
        the same call, its `APIResponse` closed when the block ends."""
        return ClientWithStreamingResponse(self)

    def _http_for(self, backend: Backend) -> httpx.Client:
        http = self._http.get(backend.name)
        if http is not None:
            return http
        transport = backend.transport
        if transport is None and self._user_http is not None:
            return self._user_http  # type: ignore[no-any-return]
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise ConfigError(
                "is an async-only transport; Client needs a sync one",
                source=f"Backend(name={backend.name!r})",
                key="transport",
            )
        with self._http_lock:
            http = self._http.get(backend.name)
            if http is None:
                http = _new_http(httpx.Client, transport)
                self._http[backend.name] = http
        return http

    def _attempt(
        self, call: Call, backend: Backend
    ) -> tuple[_Answer | None, APIError | None, bool, float | None]:
        """One attempt: (answer, or error, whether to try again, the server's wait hint)."""
        request = self._request_for(call, backend)
        problem: httpx.HTTPError | None = None
        try:
            response = self._http_for(backend).send(request, stream=call.stream)
        except httpx.HTTPError as exc:
            problem = exc
        if problem is not None:
            return (None, *_answers.transport_error(problem, call, backend), None)
        if response.status_code >= 300:
            try:
                response.read()
            except httpx.HTTPError as exc:
                problem = exc
            finally:
                response.close()
            if problem is not None:
                return (None, *_answers.transport_error(problem, call, backend), None)
            return (None, *_answers.status_error(response, call, backend, self._secrets))
        if not call.stream:
            return _Answer(backend, response), None, False, None
        refusal = _answers.not_an_event_stream(response, call, backend)
        if refusal is not None:
            response.read()
            response.close()
            return None, refusal, False, None
        lines = response.iter_lines()
        try:
            first = next(lines, None)
        except httpx.HTTPError as exc:
            problem = exc
        if problem is not None:  # broke before the first byte: another backend may serve it
            response.close()
            return (None, *_answers.transport_error(problem, call, backend), None)
        return _Answer(backend, response, first, lines), None, False, None

    def _send(self, call: Call) -> _Answer:
        """Send with retries and failover; return the first 2xx answer."""
        route = self._route(call)
        last: APIError | None = None
        for _ in range(route.rounds):
            for backend in route.order():
                wait = route.wait_for(backend)
                if wait > 0:
                    time.sleep(wait)
                answer, error, retry, hint = self._attempt(call, backend)
                if answer is not None:
                    route.succeeded(backend)
                    return answer
                assert error is not None
                if not retry:
                    raise self._fail(call, error)
                logger.debug(
                    "attempt %d of request %s failed: %s",
                    call.tracker.attempts,
                    call.request_id,
                    type(error).__name__,
                )
                route.failed(backend, hint)
                last = error
        assert last is not None
        raise self._exhausted(call, last, len(route.plan))

    def _call(self, call: Call, model: type[ResponseT]) -> ResponseT:
        cache = self._cache
        if cache is not None:
            cached = cache.lookup(call, model, self.backends, sync=True)
            if cached is not None:
                cache.remember(call)
                return cached  # type: ignore[no-any-return]
        try:
            answer = self._send(call)
            try:
                result, error = _answers.parse(model, answer.response, call, answer.backend)
            finally:
                answer.response.close()
        except BaseException as exc:
            _abandon(call, exc)
            raise
        if error is not None:
            raise self._fail(call, error)
        if cache is not None:
            cache.remember(call, answer.response)
        if wants_raw():
            return raw_answer(answer.response, result, call.request_id, sync=True)  # type: ignore[return-value]
        return result  # type: ignore[return-value]

    def _stream(self, call: Call, reader: type[_ChunkReader] = _ChunkReader) -> Stream[Any]:
        try:
            answer = self._send(call)
        except BaseException as exc:
            _abandon(call, exc)
            raise
        stream: Stream[Any] = Stream(
            self._reader(call, answer, _prepend(answer.first, answer.lines), reader)
        )
        if wants_raw():
            return raw_answer(answer.response, stream, call.request_id, live=True, sync=True)  # type: ignore[return-value]
        return stream

    def flush(self, timeout: float | None = None) -> FlushReport | None:
        """Wait (at most `timeout`, default `[export] flush_timeout_s`) for telemetry to be
        handed to every destination; report what was sent, dropped or failed."""
        return self._telemetry.flush(timeout) if self._telemetry is not None else None

    def close(self) -> FlushReport | None:
        """Flush telemetry (within `[export] flush_timeout_s`) and close connections;
        return what telemetry sent, dropped or failed (None without telemetry). Safe to
        call more than once; calls still work after it, without telemetry. A
        `with_options()` copy closes nothing: its owner holds the resources."""
        if not self._owner:
            return None
        report = self._close_telemetry()
        with self._http_lock:
            clients, self._http = list(self._http.values()), {}
        for http in clients:
            http.close()
        return report

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _prepend(first: str | None, lines: Iterator[str]) -> Iterator[str]:
    if first is not None:
        yield first
    yield from lines


async def _aprepend(first: str | None, lines: AsyncIterator[str]) -> AsyncIterator[str]:
    if first is not None:
        yield first
    async for line in lines:
        yield line


class AsyncClient(_BaseClient):
    """The asyncio (and trio) client: `await` calls, `async for` streams."""

    _defers_audit = True
    _is_async = True
    _http_client_type = httpx.AsyncClient

    def __init__(
        self, backends: Sequence[Backend] | None = None, **options: Unpack[AsyncClientOptions]
    ) -> None:
        reject_unexpected(options, AsyncClientOptions, "AsyncClient()", body_hint=False)
        self._http: dict[str, httpx.AsyncClient] = {}
        super().__init__(backends, **options)
        self._bind()

    def _bind(self) -> None:
        self.chat = AsyncChat(self)
        self.embeddings = AsyncEmbeddings(self)
        self.images = AsyncImages(self)
        self.models = AsyncModels(self)
        self.moderations = AsyncModerations(self)
        self.completions = AsyncTextCompletions(self)
        self.responses = AsyncResponses(self)
        self.audio = AsyncAudio(self)

    def with_options(self, **options: Unpack[AsyncCopyOptions]) -> Self:
        """A client with these options changed (openai-python's `with_options`/`copy`).

        It shares this client's connections, telemetry and backend health, and needs no
        closing; with another `api_key` or `base_url` it is a new client: close it."""
        reject_unexpected(options, AsyncCopyOptions, "with_options()", body_hint=False)
        return self._copy(options)  # type: ignore[no-any-return]

    copy = with_options

    @property
    def with_raw_response(self) -> AsyncClientWithRawResponse:
        """`client.with_raw_response.chat.completions.create(...)`: the same call, answering
        with a `LegacyAPIResponse` (`.headers`, `.status_code`, `.parse()` for the result)."""
        return AsyncClientWithRawResponse(self)

    @property
    def with_streaming_response(self) -> AsyncClientWithStreamingResponse:
        """`async with client.with_streaming_response.chat.completions.create(...) as response:`
        the same call, its `APIResponse` closed when the block ends."""
        return AsyncClientWithStreamingResponse(self)

    def _http_for(self, backend: Backend) -> httpx.AsyncClient:
        http = self._http.get(backend.name)
        if http is not None:
            return http
        transport = backend.transport
        if transport is None and self._user_http is not None:
            return self._user_http  # type: ignore[no-any-return]
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigError(
                "is a sync-only transport; AsyncClient needs an async one",
                source=f"Backend(name={backend.name!r})",
                key="transport",
            )
        with self._http_lock:
            http = self._http.get(backend.name)
            if http is None:
                from .pool import speed_up  # imports httpcore (and anyio): async only

                http = speed_up(_new_http(httpx.AsyncClient, transport))
                self._http[backend.name] = http
        return http

    async def _attempt(
        self, call: Call, backend: Backend
    ) -> tuple[_Answer | None, APIError | None, bool, float | None]:
        """One attempt: (answer, or error, whether to try again, the server's wait hint)."""
        request = self._request_for(call, backend)
        problem: httpx.HTTPError | None = None
        try:
            response = await self._http_for(backend).send(request, stream=call.stream)
        except httpx.HTTPError as exc:
            problem = exc
        if problem is not None:
            return (None, *_answers.transport_error(problem, call, backend), None)
        if response.status_code >= 300:
            try:
                await response.aread()
            except httpx.HTTPError as exc:
                problem = exc
            finally:
                await response.aclose()
            if problem is not None:
                return (None, *_answers.transport_error(problem, call, backend), None)
            return (None, *_answers.status_error(response, call, backend, self._secrets))
        if not call.stream:
            return _Answer(backend, response), None, False, None
        refusal = _answers.not_an_event_stream(response, call, backend)
        if refusal is not None:
            await response.aread()
            await response.aclose()
            return None, refusal, False, None
        lines = response.aiter_lines()
        try:
            first = await anext(lines, None)
        except httpx.HTTPError as exc:
            problem = exc
        if problem is not None:  # broke before the first byte: another backend may serve it
            await response.aclose()
            return (None, *_answers.transport_error(problem, call, backend), None)
        return _Answer(backend, response, first, lines), None, False, None

    async def _send(self, call: Call) -> _Answer:
        """Send with retries and failover; return the first 2xx answer."""
        route = self._route(call)
        last: APIError | None = None
        for _ in range(route.rounds):
            for backend in route.order():
                wait = route.wait_for(backend)
                if wait > 0:
                    import anyio

                    await anyio.sleep(wait)
                answer, error, retry, hint = await self._attempt(call, backend)
                if answer is not None:
                    route.succeeded(backend)
                    return answer
                assert error is not None
                if not retry:
                    raise self._fail(call, error)
                logger.debug(
                    "attempt %d of request %s failed: %s",
                    call.tracker.attempts,
                    call.request_id,
                    type(error).__name__,
                )
                route.failed(backend, hint)
                last = error
        assert last is not None
        raise self._exhausted(call, last, len(route.plan))

    async def _call(self, call: Call, model: type[ResponseT]) -> ResponseT:
        cache = self._cache
        if cache is not None:
            cached = cache.lookup(call, model, self.backends, sync=False)
            if cached is not None:
                await self._settle(call)
                await cache.aremember(call)
                return cached  # type: ignore[no-any-return]
        try:
            answer = await self._send(call)
            try:
                result, error = _answers.parse(model, answer.response, call, answer.backend)
            finally:
                await answer.response.aclose()
        except BaseException as exc:
            _abandon(call, exc)
            await self._settle(call)
            raise
        if error is not None:
            failure = self._fail(call, error)
            await self._settle(call)
            raise failure
        await self._settle(call)
        if cache is not None:
            await cache.aremember(call, answer.response)
        if wants_raw():
            return raw_answer(answer.response, result, call.request_id, sync=False)  # type: ignore[return-value]
        return result  # type: ignore[return-value]

    async def _stream(
        self, call: Call, reader_type: type[_ChunkReader] = _ChunkReader
    ) -> AsyncStream[Any]:
        try:
            answer = await self._send(call)
        except BaseException as exc:
            _abandon(call, exc)
            await self._settle(call)
            raise
        reader = self._reader(call, answer, _aprepend(answer.first, answer.lines), reader_type)
        if call.deferred is None:
            stream: AsyncStream[Any] = AsyncStream(reader)
        else:
            stream = AsyncStream(
                reader, settle=functools.partial(self._settle, call), deferred=call.deferred
            )
        if wants_raw():
            return raw_answer(answer.response, stream, call.request_id, live=True, sync=False)  # type: ignore[return-value]
        return stream

    async def _settle(self, call: Call) -> None:
        """Write the call's durable audit line in a worker thread, before it returns."""
        await settle(call, self._telemetry)

    async def flush(self, timeout: float | None = None) -> FlushReport | None:
        """Wait (at most `timeout`, default `[export] flush_timeout_s`) for telemetry to be
        handed to every destination, without blocking the event loop."""
        telemetry = self._telemetry
        if telemetry is None:
            return None
        import anyio.to_thread

        return await anyio.to_thread.run_sync(telemetry.flush, timeout)

    async def close(self) -> FlushReport | None:
        """Flush telemetry (within `[export] flush_timeout_s`) and close connections;
        return what telemetry sent, dropped or failed (None without telemetry). A
        `with_options()` copy closes nothing: its owner holds the resources."""
        if not self._owner:
            return None
        # The flush waits on the worker thread: do not block the event loop meanwhile.
        import anyio.to_thread

        report = await anyio.to_thread.run_sync(self._close_telemetry)
        with self._http_lock:
            clients, self._http = list(self._http.values()), {}
        for http in clients:
            await http.aclose()
        return report

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
