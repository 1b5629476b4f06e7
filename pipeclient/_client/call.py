"""One call in flight, and the checks on a call's arguments before anything is sent."""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

from .._exceptions import ConfigError
from .._telemetry.attribution import NO_ATTRIBUTION, Attribution
from .._telemetry.record import CallTracker, Operation

if TYPE_CHECKING:
    from .._telemetry.pipeline import DeferredAudit, Pipeline
from .backends import Backend, check_header_value

__all__ = ["Call", "check_messages", "check_request_id", "check_timeout", "start_call"]

_ARGUMENT = "call argument"
Timeout = float | httpx.Timeout | None


def check_request_id(request_id: str | None) -> str:
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
            source=_ARGUMENT,
            key="request_id",
        )
    return request_id


def check_timeout(timeout: Any) -> dict[str, float | None]:
    """The per-attempt timeout, as httpx's request extension wants it."""
    if isinstance(timeout, httpx.Timeout):
        return timeout.as_dict()
    if timeout is None:
        return httpx.Timeout(None).as_dict()
    if (
        isinstance(timeout, (int, float))
        and not isinstance(timeout, bool)
        and timeout > 0
        and math.isfinite(timeout)
    ):
        return httpx.Timeout(float(timeout)).as_dict()
    raise ConfigError(
        f"must be a number of seconds > 0, an httpx.Timeout, or None for no limit "
        f"(got {type(timeout).__name__})",
        source=_ARGUMENT,
        key="timeout",
    )


def check_messages(messages: Any) -> list[Any]:
    if isinstance(messages, (str, bytes, Mapping)) or messages is None:
        raise ConfigError(
            'must be a list of messages, like [{"role": "user", "content": "hi"}]',
            source=_ARGUMENT,
            key="messages",
        )
    try:
        return list(messages)
    except TypeError:
        raise ConfigError(
            f"must be a list of messages, not {type(messages).__name__}",
            source=_ARGUMENT,
            key="messages",
        ) from None


def check_headers(headers: Mapping[str, str] | None, key: str) -> dict[str, str]:
    if not headers:
        return {}
    for name, value in headers.items():
        check_header_value(name, value, source=_ARGUMENT, key=f"{key}[{name!r}]")
    return dict(headers)


def check_query(query: Mapping[str, object] | None, key: str = "extra_query") -> dict[str, str]:
    """`extra_query=` (or `default_query=`): names and values for the URL's query string."""
    if not query:
        return {}
    if not isinstance(query, Mapping):
        raise ConfigError(
            f"must be a mapping of names to values, not {type(query).__name__}",
            source=_ARGUMENT,
            key=key,
        )
    found: dict[str, str] = {}
    for name, value in query.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("names must be non-empty strings", source=_ARGUMENT, key=key)
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise ConfigError(
                f"must be a string or a number, not {type(value).__name__}",
                source=_ARGUMENT,
                key=f"{key}[{name!r}]",
            )
        found[name] = str(value)
    return found


def _jsonable(value: Any) -> Any:
    """Objects the client returned, sent back as they came (the tool loop appends
    `response.choices[0].message` to `messages=`); any pydantic model likewise."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        # `parsed` is the client's reading of the content, not part of the message
        return value.model_dump(mode="json", exclude_none=True, by_alias=True, exclude={"parsed"})
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_WITH_USAGE = b',"stream_options":{"include_usage":true}}'


def with_usage(body: Mapping[str, Any], encoded: bytes | None) -> bytes:
    """The body asking for stream usage: `encode_body({**body, "stream_options": {...,
    "include_usage": True}})`. Without stream options of its own the key comes last, so
    it is appended to the body's encoding (`encoded`) rather than the whole body encoded
    again (a long conversation is most of a request)."""
    if "stream_options" not in body and body and encoded is not None:
        return encoded[:-1] + _WITH_USAGE
    options = body.get("stream_options")
    extra = dict(options) if isinstance(options, Mapping) else {}
    return encode_body({**body, "stream_options": {**extra, "include_usage": True}})


def encode_body(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(
            body, separators=(",", ":"), ensure_ascii=False, default=_jsonable
        ).encode()
    except (TypeError, ValueError) as exc:
        reason = str(exc)
    raise ConfigError(
        f"the request cannot be sent as JSON: {reason}; pass lists, dicts, strings and numbers",
        source=_ARGUMENT,
    )


class Form:
    """A multipart request's file (an audio file to transcribe), sent with the fields."""

    __slots__ = ("content", "content_type", "filename")

    def __init__(self, file: Any) -> None:
        self.filename, self.content, self.content_type = _read_file(file)

    @property
    def described(self) -> dict[str, Any]:
        return {"filename": self.filename, "bytes": len(self.content), "type": self.content_type}

    def encoded(self, fields: Mapping[str, Any]) -> tuple[str, bytes]:
        data: dict[str, Any] = {}
        for name, value in fields.items():
            if isinstance(value, (list, tuple)):
                data[f"{name}[]"] = [str(item) for item in value]
            elif isinstance(value, bool):
                data[name] = "true" if value else "false"
            elif value is not None:
                data[name] = value if isinstance(value, str) else str(value)
        request = httpx.Request(
            "POST",
            "http://form.invalid/",
            data=data,
            files={"file": (self.filename, self.content, self.content_type)},
        )
        return request.headers["content-type"], request.read()


def _read_file(file: Any) -> tuple[str, bytes, str]:
    """openai-python's `FileTypes`: bytes, a path, an open file, or a (name, content[,
    type]) tuple."""
    import mimetypes
    import os

    name: str | None = None
    kind: str | None = None
    if isinstance(file, tuple) and 2 <= len(file) <= 4:
        name, file, *rest = file
        kind = rest[0] if rest else None
    if isinstance(file, os.PathLike):
        path = os.fspath(file)
        name = name or os.path.basename(str(path))
        with open(path, "rb") as handle:
            content = handle.read()
    elif isinstance(file, (bytes, bytearray, memoryview)):
        content = bytes(file)
    elif hasattr(file, "read"):
        content = file.read()
        name = name or os.path.basename(str(getattr(file, "name", "") or "")) or None
        if isinstance(content, str):
            content = content.encode()
    else:
        raise ConfigError(
            f"must be bytes, a path, an open binary file or a (name, content) tuple, not "
            f"{type(file).__name__}",
            source=_ARGUMENT,
            key="file",
        )
    name = str(name or "upload")
    kind = kind or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return name, bytes(content), kind


class CacheEntry(NamedTuple):
    """A call's place in the response cache, set by its lookup (`cache.py`)."""

    digest: str
    user: str
    hit: bool = False
    touch: bool = False  # a hit whose last recorded use is old: record this one


class Call:
    """A call's request id, body, headers and timeout, and the tracker of its record."""

    __slots__ = (
        "_encoded",
        "body",
        "cache_entry",
        "content_type",
        "deferred",
        "headers",
        "method",
        "path",
        "query",
        "stream",
        "timeout",
        "tracker",
        "upload_name",
        "use_cache",
    )

    def __init__(
        self,
        *,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        timeout: dict[str, float | None],
        tracker: CallTracker,
        method: str = "POST",
        form: Form | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.headers = headers
        self.timeout = timeout
        self.tracker = tracker
        self.deferred: DeferredAudit | None = None  # AsyncClient's durable audit lines
        self.query: dict[str, str] = {}  # extra_query=, in the URL
        self.use_cache = True  # cache=False: neither answered from nor kept in [cache]
        self.cache_entry: CacheEntry | None = None  # set by the cache's lookup
        self.stream = bool(body.get("stream"))
        self.content_type: str | None = "application/json"
        self.upload_name = form.filename if form is not None else None  # sent: scanned too
        if form is not None:  # multipart: the fields and the file, encoded once
            self.content_type, encoded = form.encoded(body)
            self._encoded: dict[bool, bytes | None] = {False: encoded}
            if tracker.capture_content:  # the fields and the file's name and size, not its bytes
                tracker.request_body = encode_body({**body, "file": form.described})
        elif method == "GET":
            self.content_type = None
            self._encoded = {False: None}
        else:
            self._encoded = {False: encode_body(body)}
            if tracker.capture_content:
                tracker.request_body = self._encoded[False]

    @property
    def request_id(self) -> str:
        return self.tracker.request_id

    @property
    def sent_body(self) -> bytes | None:
        """The JSON body as sent (without injected stream options); None for a form or GET."""
        return self._encoded[False] if self.content_type == "application/json" else None

    @property
    def input_bytes(self) -> int:
        """The size of the JSON body sent (0 for a form or a GET): a budget's estimate."""
        if self.content_type != "application/json":
            return 0
        return len(self._encoded[False] or b"")

    def sent_json(self) -> Any:
        """The body as JSON values, as sent (a form's fields; None for a GET)."""
        if self.content_type == "application/json":
            return json.loads(self._encoded[False] or b"null")
        if self.method == "GET":
            return None
        if self.upload_name is not None:  # the file's name is sent; its bytes are not text
            return {**self.body, "file": {"filename": self.upload_name}}
        return self.body

    def injects_usage(self, backend: Backend) -> bool:
        """Whether the client asks this backend for stream usage on the caller's behalf
        (chat and legacy completions; the Responses API always sends it)."""
        if not self.stream or not backend.stream_usage:
            return False
        if self.tracker.operation not in ("chat", "text_completion"):
            return False
        options = self.body.get("stream_options")
        return not (isinstance(options, Mapping) and options.get("include_usage"))

    def content(self, backend: Backend) -> bytes | None:
        inject = self.injects_usage(backend)
        if inject not in self._encoded:
            self._encoded[inject] = with_usage(self.body, self._encoded[False])
        return self._encoded[inject]


def start_call(
    telemetry: Pipeline | None,
    *,
    operation: Operation,
    path: str,
    body: dict[str, Any],
    request_id: str,
    request_id_supplied: bool,
    no_log: bool,
    trace: Any,
    headers: dict[str, str],
    timeout: dict[str, float | None],
    defers_audit: bool,
    method: str = "POST",
    form: Form | None = None,
    attribution: Attribution = NO_ATTRIBUTION,
    ephemeral: bool = False,
) -> Call:
    """A call and the tracker of its record, emitting into `telemetry` (if any).

    `defers_audit`: an async caller's durable audit lines wait for it to write them in a
    worker thread (an fsync must not block the event loop)."""
    emit: Callable[[Any], None] | None = None
    deferred = None
    if telemetry is not None:
        emit = telemetry.emit
        if defers_audit and telemetry.audit_now is not None:
            from .._telemetry.pipeline import DeferredAudit

            deferred = DeferredAudit()
            emit = functools.partial(telemetry.emit, deferred=deferred)
    tracker = CallTracker(
        request_id=request_id,
        operation=operation,
        body=body,
        stream=bool(body.get("stream")),
        no_log=no_log,
        trace=trace,
        capture_content=telemetry is not None and telemetry.wants_content and not no_log,
        request_id_supplied=request_id_supplied,
        emit=emit,
        attribution=attribution,
        ephemeral=ephemeral,
    )
    call = Call(
        path=path,
        body=body,
        headers=headers,
        timeout=timeout,
        tracker=tracker,
        method=method,
        form=form,
    )
    call.deferred = deferred
    return call
