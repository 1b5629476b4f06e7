"""`client.trace("name")`: group calls under one trace id, shared by every sink.

The current trace lives in a ContextVar, so it follows threads' and tasks' own contexts.
Without a pipeclient trace, a call made inside an application's OpenTelemetry span joins
that span's trace as its child (read only if the application already imported
OpenTelemetry: pipeclient never imports it for this).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from .attribution import NO_ATTRIBUTION, Attribution
from .record import ErrorInfo, TraceRecord, new_span_id, new_trace_id

__all__ = ["Trace", "TraceParent", "current_parent"]


class TraceParent:
    """What a call needs of its parent: the trace and parent span ids, the outermost
    block's name, whether the block is no-log (then so is every call inside it), and the
    attribution its calls inherit."""

    __slots__ = ("attribution", "name", "no_log", "span_id", "trace_id", "trace_name")

    def __init__(
        self,
        trace_id: str,
        span_id: str | None,
        name: str | None = None,
        *,
        trace_name: str | None = None,
        no_log: bool = False,
        attribution: Attribution = NO_ATTRIBUTION,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.name = name
        self.trace_name = trace_name if trace_name is not None else name
        self.no_log = no_log
        self.attribution = attribution


class Trace(TraceParent):
    """A block of calls. Use as `with client.trace("name") as t:` (or `async with`)."""

    __slots__ = ("_emit", "_start", "_started_at", "_token", "parent_id")

    def __init__(
        self,
        name: str,
        emit: Callable[[TraceRecord], None] | None,
        parent: TraceParent | None = None,
        *,
        no_log: bool = False,
        attribution: Attribution = NO_ATTRIBUTION,
        base: Attribution = NO_ATTRIBUTION,
    ) -> None:
        """`attribution`: the block's own; it inherits the enclosing block's, else `base`
        (the client's)."""
        if not isinstance(name, str) or not name:
            from .._exceptions import ConfigError

            raise ConfigError("must be a non-empty string", source="client.trace()", key="name")
        super().__init__(
            parent.trace_id if parent else new_trace_id(),
            new_span_id(),
            name,
            # Langfuse names a trace after its outermost block, whatever arrives last.
            trace_name=parent.trace_name if parent and parent.trace_name else name,
            no_log=no_log or bool(parent and parent.no_log),
            attribution=attribution.over(
                parent.attribution
                if parent is not None and parent.attribution is not NO_ATTRIBUTION
                else base
            ),
        )
        self.parent_id = parent.span_id if parent else None
        self._emit = emit
        self._token: Token[TraceParent | None] | None = None
        self._start = 0.0
        self._started_at = 0.0

    def __repr__(self) -> str:
        return f"Trace(name={self.name!r}, trace_id={self.trace_id!r})"

    def __enter__(self) -> Trace:
        self._token = _current.set(self)
        self._started_at = time.time()
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if self._emit is None:
            return
        self._emit(
            TraceRecord(
                trace_id=self.trace_id,
                span_id=self.span_id or "",
                parent_id=self.parent_id,
                name=self.name or "",
                started_at=self._started_at,
                total_ms=(time.perf_counter() - self._start) * 1000.0,
                outcome="error" if exc_type else "ok",
                error=ErrorInfo(exc_type.__name__, None) if exc_type else None,
                trace_name=self.trace_name or "",
                no_log=self.no_log,
                user_id=self.attribution.user_id,
                session_id=self.attribution.session_id,
                properties=self.attribution.properties,
            )
        )

    async def __aenter__(self) -> Trace:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)


_current: ContextVar[TraceParent | None] = ContextVar("pipeclient_trace", default=None)


def current_parent() -> TraceParent | None:
    """The enclosing pipeclient trace, else the application's active OpenTelemetry span."""
    parent = _current.get()
    if parent is not None:
        return parent
    otel = sys.modules.get("opentelemetry.trace")
    # The module may be half-imported right now (by a telemetry thread): never fail a call.
    get_current_span = getattr(otel, "get_current_span", None)
    if get_current_span is None:
        return None
    try:
        context = get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return TraceParent(f"{context.trace_id:032x}", f"{context.span_id:016x}")
    except Exception:
        return None
