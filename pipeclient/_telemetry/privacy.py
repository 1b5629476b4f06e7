"""The privacy step: the one place that decides what each destination may see.

It runs on the dispatcher's worker, before fan-out. A destination that may not receive
content (DESIGN 5.2) gets the record with its content and its error text removed; one
that may gets the content after the `[privacy]` transforms, computed once per record and
shared by every such destination. Sinks never see more than their view.

The transforms, in order, on every content string: the client's own secrets (always),
the `[privacy] pii` detectors, the `redact=` hook, then `content_max_length`. A hook that
raises (or a transform that fails) drops the record's content: metadata only, counted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .._config.models import PrivacyConfig, TelemetryConfig
from .._privacy.detectors import Redactor
from .record import CallRecord, TraceRecord, input_of

__all__ = ["HOOK", "HOOK_FAILED", "PrivacyStep", "map_strings", "telemetry_secrets"]

logger = logging.getLogger("pipeclient")

TRUNCATION_MARK = "…[truncated]"
HOOK = "hook"  # counter: strings the redact= hook changed
HOOK_FAILED = "hook_failed"  # counter: records whose content was dropped: the hook raised
FAILED = "redaction_failed"  # counter: records whose content was dropped: a detector failed

# Values of "role" and "type" that are the message's structure, not its content: no
# transform (nor the hook) may change them.
_STRUCTURE_WORDS = frozenset(
    {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
        "text",
        "image_url",
        "input_audio",
        "file",
        "refusal",
        "json_object",
        "json_schema",
        "object",
        "array",
        "string",
        "number",
        "integer",
        "boolean",
        "null",
    }
)
_STRUCTURE_KEYS = ("role", "type")


def map_strings(value: Any, transform: Callable[[str], str]) -> Any:
    """`value` with `transform` applied to every string in it, keys excepted (and roles
    and part types, which are structure).

    Tool-call arguments are JSON inside a string: they are transformed inside, so they
    stay valid JSON (and unchanged, byte for byte, when nothing inside changed).
    """
    if isinstance(value, str):
        return transform(value)
    if isinstance(value, list | tuple):
        return [map_strings(item, transform) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "arguments" and isinstance(item, str):
                out[key] = _map_json_text(item, transform)
            elif key in _STRUCTURE_KEYS and item in _STRUCTURE_WORDS:
                out[key] = item
            else:
                out[key] = map_strings(item, transform)
        return out
    return value


def _map_json_text(text: str, transform: Callable[[str], str]) -> str:
    try:
        parsed = json.loads(text)
    except ValueError:
        return transform(text)
    mapped = map_strings(parsed, transform)
    if mapped == parsed:
        return text
    return json.dumps(mapped, ensure_ascii=False)


def telemetry_secrets(config: TelemetryConfig) -> tuple[str, ...]:
    """The keys of the telemetry destinations themselves, never to be sent as content."""
    found = [config.posthog.api_key, config.langfuse.public_key, config.langfuse.secret_key]
    for table in config.otlp:
        found += table.headers.values()
    return tuple(value for value in found if value and "${" not in value)


class _HookFailed(Exception):
    pass


class PrivacyStep:
    """Views of records, per destination: metadata only, or content after transforms.

    `secrets`: values (API keys, header values) scrubbed from content whatever `pii` says.
    `redact`: the application's own `Callable[[str], str]`, after the detectors.
    `counts()`: redactions per detector so far (numbers only, never what was found).
    """

    def __init__(
        self,
        config: PrivacyConfig,
        *,
        secrets: Iterable[str] = (),
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.config = config
        self._redactor = Redactor(config.pii, secrets)
        self._hook = redact
        self._limit = config.content_max_length
        self._active = self._redactor.active or redact is not None or bool(self._limit)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._warned = threading.Lock()  # held once the failure was logged

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def _count(self, found: Mapping[str, int]) -> None:
        if found:
            with self._lock:
                for name, number in found.items():
                    self._counts[name] = self._counts.get(name, 0) + number

    def metadata_only(self, record: CallRecord | TraceRecord) -> CallRecord | TraceRecord:
        if isinstance(record, TraceRecord):
            return record
        return _without_content(record)

    def with_content(self, record: CallRecord | TraceRecord) -> CallRecord | TraceRecord:
        if isinstance(record, TraceRecord):
            return record
        found: dict[str, int] = {}
        try:
            content = record.input
            if record.request_body is not None:
                content = input_of(record.operation, json.loads(record.request_body))
            error = record.error
            view = dataclasses.replace(
                record,
                request_body=None,
                input=self._clean(content, found),
                output=self._clean(record.output, found),
                error=(
                    dataclasses.replace(error, message=self._clean(error.message, found))
                    if error is not None and error.message
                    else error
                ),
            )
        except Exception as exc:
            # Fail closed: no content rather than content that was not cleaned.
            hook_failed = isinstance(exc, _HookFailed)
            failed = {HOOK_FAILED if hook_failed else FAILED: 1}
            self._count(failed)
            self._warn_once(exc.__cause__ if hook_failed and exc.__cause__ else exc, hook_failed)
            return dataclasses.replace(
                _without_content(record), redactions=MappingProxyType(failed)
            )
        self._count(found)
        return dataclasses.replace(view, redactions=MappingProxyType(found)) if found else view

    def _warn_once(self, cause: BaseException, hook_failed: bool) -> None:
        if self._warned.acquire(blocking=False):
            # The class name only: an exception's message may quote the content.
            logger.warning(
                "pipeclient: %s failed (%s); records it fails on are sent without their "
                "content (counted in client.privacy_counts())",
                "the redact= hook" if hook_failed else "the [privacy] step",
                type(cause).__name__,
            )

    def _clean(self, content: Any, found: dict[str, int]) -> Any:
        if content is None or not self._active:
            return content
        redactor, hook, limit = self._redactor, self._hook, self._limit

        def apply(text: str) -> str:
            if redactor.active:
                text = redactor.redact(text, found)
            if hook is not None:
                try:
                    changed = hook(text)
                except Exception as exc:
                    raise _HookFailed from exc
                if not isinstance(changed, str):
                    raise _HookFailed from TypeError(f"returned {type(changed).__name__}")
                if changed != text:
                    found[HOOK] = found.get(HOOK, 0) + 1
                    text = changed
            if limit and len(text) > limit:
                text = text[:limit] + TRUNCATION_MARK
            return text

        return map_strings(content, apply)


def _without_content(record: CallRecord) -> CallRecord:
    error = record.error
    if (
        record.input is None
        and record.output is None
        and record.request_body is None
        and (error is None or not error.message)
    ):
        return record
    return dataclasses.replace(
        record,
        request_body=None,
        input=None,
        output=None,
        error=dataclasses.replace(error, message=None) if error is not None else None,
    )
