"""PostHog: one LLM-analytics event per record, in PostHog's own `$ai_*` vocabulary.

Events are built here, without the SDK, and posted with the posthog SDK's own batch
request code (`posthog.request.batch_post`: its headers, gzip and JSON encoding) from the
dispatcher's worker. No posthog `Client` is ever built, so no consumer thread, atexit hook
or fork handler exists; the only resource is one `requests` session, closed at shutdown.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._telemetry.record import ENDPOINTS, CallRecord, ErrorInfo, TraceRecord
from .._telemetry.sink import Payload, Sink, error_summary, public_url, with_message

if TYPE_CHECKING:
    import requests

    from .._config.models import PostHogConfig

__all__ = ["PostHogSink"]

# Deterministic event uuids (PostHog dedupes on them), in a namespace of our own.
_UUID_NAMESPACE = uuid.UUID("6d3b1f0e-52a4-5c8e-9b1f-7c2d4e6a8b90")

# PostHog's capture rejects events over about 1 MB; the SDK drops those over 900 KiB, and
# keeps request bodies under 5 MiB (posthog.consumer.MAX_MSG_SIZE, BATCH_SIZE_LIMIT).
_MAX_EVENT_BYTES = 900 * 1024
_MAX_BATCH_BYTES = 5 * 1024 * 1024
_CONTENT_KEYS = ("$ai_input", "$ai_output_choices", "$ai_tools")
_TOO_LARGE = "[pipeclient: content over 900 KiB, not sent]"

_PROVIDERS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gemini",
    "api.mistral.ai": "mistral",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "xai",
    "api.together.xyz": "together",
    "api.fireworks.ai": "fireworks",
    "openrouter.ai": "openrouter",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
}
# The grammar of the privacy-safe `$ai_error` summary (as the SDK's own privacy mode).
_ERROR_WORD = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


class PostHogSink(Sink):
    name = "posthog"

    def __init__(self, config: PostHogConfig) -> None:
        self._api_key = config.api_key
        self._host = config.host
        self._distinct_id = config.distinct_id.strip()
        self._redacted = frozenset(config.redact_properties)
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._post: Callable[..., Any] | None = None
        self._closed = False

    def __repr__(self) -> str:  # never the API key
        return f"PostHogSink(host={self._host!r})"

    # -- encode: records to PostHog events, pure -------------------------------------------

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if isinstance(record, TraceRecord):
            return self._trace_events(record)
        return [self._call_event(record)]

    def _call_event(self, record: CallRecord) -> Payload:
        base_url = public_url(record.base_url)
        props: dict[str, Any] = {
            "$ai_trace_id": record.trace_id,
            "$ai_span_id": record.span_id,
            "$ai_model": record.response_model or record.model,
            "$ai_provider": _provider(record.base_url),
            "$ai_framework": "pipeclient",
            "$ai_latency": record.total_ms / 1000.0,
            "$ai_stream": record.stream,
            "$ai_base_url": base_url,
            "$ai_request_url": base_url + ENDPOINTS.get(record.operation, ""),
            "request_id": record.request_id,  # no PostHog property of its own: a plain one
            "$ai_model_parameters": dict(record.parameters),
            "$ai_is_error": record.error is not None or record.outcome == "error",
        }
        if record.parent_id:
            props["$ai_parent_id"] = record.parent_id
        if record.ttft_ms is not None:
            props["$ai_time_to_first_token"] = record.ttft_ms / 1000.0
        if record.input_tokens is not None:
            props["$ai_input_tokens"] = record.input_tokens
        if record.output_tokens is not None:
            props["$ai_output_tokens"] = record.output_tokens
        if record.cached_tokens is not None:
            props["$ai_cache_read_input_tokens"] = record.cached_tokens
        if record.total_cost_usd is not None:
            props["$ai_input_cost_usd"] = (record.input_cost_usd or 0.0) + (
                record.cached_cost_usd or 0.0
            )
            props["$ai_output_cost_usd"] = record.output_cost_usd
            props["$ai_total_cost_usd"] = record.total_cost_usd
        if record.http_status is not None:
            props["$ai_http_status"] = record.http_status
        if record.response_id:
            props["$ai_response_id"] = record.response_id
        if record.finish_reasons:
            props["$ai_stop_reason"] = record.finish_reasons[0]
        if record.route is not None:  # the [routing] rule taken, never what it read
            props["pipeclient_route"] = record.route
        if record.error is not None:
            props["$ai_error"] = self._error_text(record.error, record.http_status)
        if record.cache_hit:  # answered by pipeclient's [cache]: no provider call
            props["pipeclient_cache_hit"] = True
        self._add_content(props, record)
        event = "$ai_embedding" if record.operation == "embeddings" else "$ai_generation"
        return self._event(
            event,
            record,
            f"call:{record.request_id}:{record.span_id}",
            props,
        )

    def _add_content(self, props: dict[str, Any], record: CallRecord) -> None:
        """The view's content, when it has any (the privacy step decides)."""
        if record.input is None and record.output is None:
            return
        content = record.input
        if content is not None:
            if record.operation in ("chat", "responses") and isinstance(content, dict):
                props["$ai_input"] = content.get("messages")
                if content.get("tools"):
                    props["$ai_tools"] = content["tools"]
            elif record.operation in ("images", "text_completion") and isinstance(content, str):
                # the prompt, shown as the user's message
                props["$ai_input"] = [{"role": "user", "content": content}]
            else:
                props["$ai_input"] = content
        if record.output is not None:
            props["$ai_output_choices"] = record.output
        if _json_size(props) > _MAX_EVENT_BYTES:  # PostHog would reject the whole event
            for key in _CONTENT_KEYS:
                if key in props:
                    props[key] = _TOO_LARGE
            if record.error is not None:
                props["$ai_error"] = error_summary(record.error, record.http_status)

    def _trace_events(self, record: TraceRecord) -> list[Payload]:
        props: dict[str, Any] = {
            "$ai_trace_id": record.trace_id,
            "$ai_span_id": record.span_id,
            "$ai_span_name": record.name,
            "$ai_framework": "pipeclient",
            "$ai_latency": record.total_ms / 1000.0,
            "$ai_is_error": record.error is not None or record.outcome == "error",
        }
        if record.error is not None:
            props["$ai_error"] = self._error_text(record.error, None)
        key = f"{record.trace_id}:{record.span_id}"
        if record.parent_id:
            props["$ai_parent_id"] = record.parent_id
            return [self._event("$ai_span", record, f"span:{key}", props)]
        # A root block is the trace itself. PostHog's trace view leaves `$ai_trace` out of
        # the tree and roots the tree at the trace id, so the calls made in this block
        # (whose `$ai_parent_id` is the block's span id) hang from a span node for it.
        # The node carries no latency or error of its own: PostHog's trace totals would
        # count them twice (the `$ai_trace` event carries them).
        node = {
            k: props[k] for k in ("$ai_trace_id", "$ai_span_id", "$ai_span_name", "$ai_framework")
        }
        trace = {**props, "$ai_trace_name": record.name}
        del trace["$ai_span_id"]
        return [
            self._event("$ai_trace", record, f"trace:{key}", trace),
            self._event("$ai_span", record, f"span:{key}", node),
        ]

    def _event(
        self, event: str, record: CallRecord | TraceRecord, key: str, props: dict[str, Any]
    ) -> Payload:
        if record.properties:  # the application's own; pipeclient's `$ai_*` ones win
            props = {**record.properties, **props}
        if record.session_id:
            props["$ai_session_id"] = record.session_id
        distinct_id = record.user_id or self._distinct_id
        if not distinct_id:  # anonymous, as the SDK's own AI wrappers do it
            distinct_id = record.trace_id
            props["$process_person_profile"] = False
        # What the SDK's message building adds to every event (Client._enrich_event_properties).
        props["$lib"] = "posthog-python"
        props["$lib_version"] = _sdk_version()
        props["$geoip_disable"] = True
        props["$is_server"] = True
        for name in self._redacted:
            props.pop(name, None)
        return {
            "event": event,
            "distinct_id": distinct_id,
            "properties": props,
            "timestamp": datetime.fromtimestamp(record.started_at, tz=timezone.utc).isoformat(),
            "uuid": str(uuid.uuid5(_UUID_NAMESPACE, key)),
        }

    def _error_text(self, error: ErrorInfo, http_status: int | None) -> str:
        # error text: only in a view that may carry content
        return with_message(error_summary(error, http_status), error)

    # -- send: the SDK's own batch request --------------------------------------------------

    def send(self, payloads: Sequence[Payload], timeout: float) -> None:
        if not payloads:
            return
        deadline = time.monotonic() + timeout
        post, session, host = self._client()
        chunks = _chunks(payloads)
        for index, chunk in enumerate(chunks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                unsent = sum(len(c) for c in chunks[index:])
                raise TimeoutError(f"posthog: {unsent} events not sent within {timeout:.1f} s")
            post(
                self._api_key,
                host,
                gzip=True,
                timeout=remaining,
                batch=chunk,
                historical_migration=False,
                session=session,
            )

    def prepare(self) -> None:
        from posthog.request import batch_post  # noqa: F401 - the SDK, imported now

    def retryable(self, error: Exception) -> bool:
        """A refused connection, a timeout, or PostHog answering 429 or 5xx."""
        status = getattr(error, "status", None)
        if isinstance(status, int):
            return status >= 500 or status == 429
        import requests

        return isinstance(error, (requests.ConnectionError, requests.Timeout, TimeoutError))

    def _client(self) -> tuple[Callable[..., Any], requests.Session, str]:
        with self._lock:
            if self._closed:
                raise RuntimeError("posthog: the sink is shut down")
            if self._post is None:
                from posthog.request import batch_post

                self._post = batch_post
            if self._session is None:
                import requests
                from requests.adapters import HTTPAdapter

                # Our own session, not the SDK's shared one: no retries (it retries
                # HTTPS reads twice, tripling the deadline), and closed at shutdown.
                session = requests.Session()
                for prefix in ("https://", "http://"):
                    session.mount(prefix, HTTPAdapter(max_retries=0))
                self._session = session
            from posthog.request import determine_server_host

            return self._post, self._session, determine_server_host(self._host)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._session = None  # the parent's pooled sockets stay the parent's

    def shutdown(self, timeout: float) -> None:
        self._closed = True
        # Bounded: a send (or the SDK import) may hold the lock past the deadline.
        if not self._lock.acquire(timeout=max(0.01, timeout)):
            return
        try:
            session, self._session = self._session, None
        finally:
            self._lock.release()
        if session is not None:
            session.close()


def _chunks(payloads: Sequence[Payload]) -> list[list[Payload]]:
    chunks: list[list[Payload]] = [[]]
    size = 0
    for payload in payloads:
        length = _json_size(payload)
        if chunks[-1] and size + length > _MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(payload)
        size += length
    return chunks


def _json_size(value: Any) -> int:
    return len(json.dumps(value, default=str))


def _provider(base_url: str) -> str:
    host = (urlsplit(base_url).hostname or "").lower()
    if host in _PROVIDERS:
        return _PROVIDERS[host]
    if host.endswith(".openai.azure.com"):
        return "azure"
    return host


@cache
def _sdk_version() -> str:
    """The installed posthog SDK's version, read from its metadata (no SDK import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("posthog")
    except PackageNotFoundError:
        return "unknown"
