"""Langfuse: one generation observation per call, one span observation per trace block.
The spans are built in `langfuse_spans`; this module delivers them.

Observations travel as OTLP/JSON spans carrying Langfuse's `langfuse.*` attributes to
`POST {host}/api/public/otel/v1/traces`, through the SDK's own REST client (its
`SyncClientWrapper`: base URL, basic auth and SDK headers, the `HttpClient` that sends):
one synchronous request per batch, no retries, bounded by the dispatcher's timeout. The
body is the batch's JSON, encoded once with `json.dumps`: the generated endpoint method
(`opentelemetry.export_traces`) would first walk it through the SDK's `jsonable_encoder`
and type-hint machinery, several hundred microseconds per span for a body that is
already plain JSON. Why not the other routes:

* The legacy batch ingestion API (`/api/public/ingestion`) is gone from SDK 5 and
  Langfuse v4 servers reject trace and generation events on it.
* `Langfuse()` and its span processor are a `BatchSpanProcessor` (a thread per client), a
  process-wide resource manager with atexit hooks, and, when the app has no provider yet,
  a global TracerProvider (langfuse/langfuse#7212). Our records are already finished, so
  nothing of that machinery is needed: no TracerProvider exists here at all.

Importing the SDK sets the level of, and adds a handler to, the `httpx` logger
(langfuse-python#1532); `_sdk()` puts that logger back as it found it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from .._telemetry.record import CallRecord, TraceRecord
from .._telemetry.sink import (
    ExportError,
    Payload,
    Sink,
    json_text,
)
from .._version import __version__
from .langfuse_spans import (  # noqa: F401 - the attribute names, re-exported (a test checks them)
    OBSERVATION_COMPLETION_START_TIME,
    OBSERVATION_COST_DETAILS,
    OBSERVATION_INPUT,
    OBSERVATION_LEVEL,
    OBSERVATION_METADATA,
    OBSERVATION_MODEL,
    OBSERVATION_MODEL_PARAMETERS,
    OBSERVATION_OUTPUT,
    OBSERVATION_STATUS_MESSAGE,
    OBSERVATION_TYPE,
    OBSERVATION_USAGE_DETAILS,
    TRACE_METADATA,
    TRACE_NAME,
    TRACE_SESSION_ID,
    TRACE_USER_ID,
    attribute,
    record_span,
    span_json,
    span_payload,
    wire,
)

if TYPE_CHECKING:
    from .._config.models import LangfuseConfig

__all__ = ["LangfuseExportError", "LangfuseSink"]

_TRACES_PATH = "api/public/otel/v1/traces"
SCOPE_NAME = "langfuse-sdk.pipeclient"


class LangfuseExportError(ExportError):
    """Langfuse did not take a batch. The message never quotes keys, headers or content."""


class LangfuseSink(Sink):
    name = "langfuse"

    def __init__(self, config: LangfuseConfig, *, service_name: str = "pipeclient") -> None:
        self._host = config.host.rstrip("/")
        self._public_key = config.public_key
        self._secret_key = config.secret_key
        self._resource: Payload = {"attributes": [attribute("service.name", service_name)]}
        # Langfuse reads spans whose scope name starts with "langfuse-sdk" as written in its
        # own attribute format (these are): it does not then repeat every raw attribute in
        # the observation's metadata. The SDK's own spans carry the public key likewise.
        self._scope: Payload = {
            "name": SCOPE_NAME,
            "version": __version__,
            "attributes": [attribute("public_key", config.public_key)],
        }
        self._packed_head = (
            f'{{"resource":{json_text(self._resource, ascii_only=False)},'
            f'"scopeSpans":[{{"scope":{json_text(self._scope, ascii_only=False)},"spans":['
        )
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._wrapper: Any = None
        self._pid = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"LangfuseSink(host={self._host!r})"

    # -- records to OTLP/JSON ---------------------------------------------------------------

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        """One `resourceSpans` element per record; `send` posts `{"resourceSpans": payloads}`."""
        span = span_payload(record_span(record))
        return [
            {"resource": self._resource, "scopeSpans": [{"scope": self._scope, "spans": [span]}]}
        ]

    def encode_packed(self, record: CallRecord | TraceRecord) -> list[bytes]:
        """`pack(encode(record))`, the same bytes, written without building the payload."""
        text = self._packed_head + span_json(record_span(record)) + "]}]}"
        return [text.encode("utf-8", "replace")]

    # -- delivery -----------------------------------------------------------------------------

    def pack(self, payloads: list[Payload]) -> list[bytes]:
        """Each `resourceSpans` element as its JSON bytes: what the lane holds and joins."""
        return [wire(payload) for payload in payloads]

    def send(self, payloads: Sequence[Payload | bytes], timeout: float) -> None:
        if not payloads:
            return
        sdk = self._client()
        # Encoded span by span (in `pack`, on the worker): one dumps of a large batch would
        # hold the GIL throughout.
        body = b'{"resourceSpans":[%s]}' % b",".join(
            part if isinstance(part, bytes) else wire(part) for part in payloads
        )
        problem: LangfuseExportError | None = None
        try:
            answer = sdk.httpx_client.request(
                _TRACES_PATH,
                method="POST",
                content=body,
                headers={"content-type": "application/json"},
                request_options={"timeout_in_seconds": max(timeout, 0.001), "max_retries": 0},
            )
        except httpx.TimeoutException:
            problem = LangfuseExportError(
                f"Langfuse did not answer within {timeout:.1f} s", transient=True
            )
        except httpx.HTTPError as exc:
            problem = LangfuseExportError(
                f"the connection to Langfuse failed ({type(exc).__name__})", transient=True
            )
        if problem is not None:
            # Raised here, outside the handler: no __context__ keeps the httpx request and
            # its Authorization header.
            raise problem
        if not 200 <= answer.status_code < 300:
            status = answer.status_code
            raise LangfuseExportError(
                f"Langfuse answered HTTP {status}", transient=status >= 500 or status in (408, 429)
            )
        rejected = _rejected_spans(answer.content)
        if rejected:
            raise LangfuseExportError(f"Langfuse rejected {rejected} of the spans sent")

    def prepare(self) -> None:
        _sdk()

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # the client is rebuilt on first use (pid check)

    def shutdown(self, timeout: float) -> None:
        self._closed = True
        # Bounded: a send (or the SDK import) may hold the lock past the deadline.
        if not self._lock.acquire(timeout=max(0.01, timeout)):
            return
        try:
            http, self._http, self._wrapper = self._http, None, None
        finally:
            self._lock.release()
        if http is not None and self._pid == os.getpid():
            http.close()

    def _client(self) -> Any:
        """The SDK's client wrapper, built on first use and again in a forked child."""
        with self._lock:
            if self._closed:
                raise LangfuseExportError("the Langfuse sink is shut down")
            if self._wrapper is None or self._pid != os.getpid():
                # A child process leaves its parent's pooled sockets alone: a new client.
                self._http = httpx.Client(follow_redirects=False)
                self._wrapper = _sdk().SyncClientWrapper(
                    base_url=self._host,
                    username=self._public_key,
                    password=self._secret_key,
                    x_langfuse_public_key=self._public_key,
                    x_langfuse_sdk_name="pipeclient",
                    x_langfuse_sdk_version=__version__,
                    # without it, Langfuse v4 does not process spans in real time
                    headers={"x-langfuse-ingestion-version": "4"},
                    httpx_client=self._http,
                )
                self._pid = os.getpid()
            return self._wrapper


class _Sdk:
    def __init__(self) -> None:
        quiet = logging.getLogger("httpx")
        level, handlers = quiet.level, list(quiet.handlers)
        first_import = "langfuse.logger" not in sys.modules
        try:
            from langfuse.api.core.client_wrapper import SyncClientWrapper
        finally:
            if first_import:  # undo what `langfuse.logger` does to a library's logger
                quiet.setLevel(level)
                for handler in list(quiet.handlers):
                    if handler not in handlers:
                        quiet.removeHandler(handler)
        self.SyncClientWrapper = SyncClientWrapper


_loaded: list[_Sdk] = []
_load_lock = threading.Lock()


def _sdk() -> _Sdk:
    with _load_lock:
        if not _loaded:
            _loaded.append(_Sdk())
        return _loaded[0]


def _rejected_spans(answer: bytes) -> int:
    """OTLP partial success: how many spans the endpoint refused (0 when it took them all)."""
    try:
        partial = json.loads(answer).get("partialSuccess") if answer.strip() else None
        return int(partial.get("rejectedSpans") or 0) if isinstance(partial, dict) else 0
    except (AttributeError, TypeError, ValueError):
        return 0  # an answer that is not OTLP JSON: accepted, as its status says
