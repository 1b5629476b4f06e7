"""PostHog: one LLM-analytics event per record, in PostHog's own `$ai_*` vocabulary.

Events are built here, without the SDK, in the shape its `capture` gives them, and written
to the bytes of its `/batch/` request by pipeclient (`posthog_wire`: each event once, on
the worker); the lane joins them and POSTs them gzip-compressed over one httpx client
(`otlp.transport`, closed at shutdown). The posthog SDK is not imported: no `Client`, no
consumer thread, atexit hook or fork handler, no `requests` session.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._telemetry.record import ENDPOINTS, CallRecord, ErrorInfo, TraceRecord
from .._telemetry.sink import (
    ExportError,
    Payload,
    Sink,
    error_summary,
    public_url,
    with_message,
)
from .otlp.transport import Transport
from .posthog_wire import batch_body, batch_url, event_bytes

if TYPE_CHECKING:
    from .._config.models import PostHogConfig

__all__ = ["PostHogExportError", "PostHogSink"]

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
# What the SDK's consumer tries again: PostHog answering 429 or any 5xx.
_RETRY_STATUSES = frozenset({429, *range(500, 600)})


class PostHogExportError(ExportError):
    """PostHog did not take a batch. The message never quotes the key or the events."""


class PostHogSink(Sink):
    name = "posthog"

    def __init__(self, config: PostHogConfig) -> None:
        self._api_key = config.api_key
        self._host = config.host
        self._distinct_id = config.distinct_id.strip()
        self._redacted = frozenset(config.redact_properties)
        self._url = batch_url(config.host)
        self._transport = Transport(
            # the SDK's user agent, as the events carry its `$lib` and `$lib_version`
            {"user-agent": f"posthog-python/{_sdk_version()}"},
            content_type="application/json",
            retry_statuses=_RETRY_STATUSES,
        )
        self._lock = threading.Lock()
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

    # -- pack and send: pipeclient's own `/batch/` writer (`posthog_wire`) ------------------

    def pack(self, payloads: list[Payload]) -> list[bytes]:
        """Each event's JSON bytes, written once on the worker; a send joins them."""
        return [event_bytes(payload) for payload in payloads]

    def send(self, payloads: Sequence[Payload | bytes], timeout: float) -> None:
        if not payloads:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._closed:
                raise PostHogExportError("posthog: the sink is shut down")
        # Bytes from `pack`; events straight from `encode` (tests, previews) too.
        events = [item if isinstance(item, bytes) else event_bytes(item) for item in payloads]
        chunks = _chunks(events)
        for index, chunk in enumerate(chunks):
            failure = self._transport.post(self._url, batch_body(chunk, self._api_key), deadline)
            if failure is not None:
                unsent = sum(len(c) for c in chunks[index:])
                raise PostHogExportError(
                    f"posthog: {unsent} event(s) were not accepted by "
                    f"{public_url(self._url)} ({failure.reason})",
                    transient=failure.transient and not self._closed,
                    retry_after=failure.retry_after,
                )

    def prepare(self) -> None:
        self._transport.load()

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._transport.after_fork()  # the parent's pooled sockets stay the parent's

    def shutdown(self, timeout: float) -> None:
        with self._lock:
            self._closed = True
        self._transport.close()


def _chunks(events: Sequence[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for event in events:
        length = len(event) + 2
        if chunks[-1] and size + length > _MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(event)
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
