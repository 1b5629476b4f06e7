"""The privacy step: the one place that decides what each destination may see.

Every record kind (a call, a trace block) goes through `PrivacyStep.view(record,
audience)` before fan-out, on the dispatcher's worker (or on the caller's thread for a
durable audit line). The audience says what a destination may receive (DESIGN 5.2); the
view is the record cut down to exactly that. Sinks render the view and hold no privacy
rule of their own.

Free text is content: prompts, completions, tool arguments, error text, and also trace
block names, request ids the caller chose and attribution (`user_id=`, `session_id=`,
`properties=`). A destination that may receive content gets it after the `[privacy]`
transforms, in order: the client's own secrets (always), the `pii` detectors, the
`redact=` hook, then `content_max_length`. One that may not gets none of it: no content,
no error text, trace blocks under a fixed name, and keyed pseudonyms for a caller's
request id, user id, session id and text property values (numbers and booleans are kept).
The gateway gets no attribution at all; the local audit log gets the user id as given,
and so does the local spend ledger, which alone also sees no-log calls (their cost only).
Nothing of a no-log call or block reaches a custom destination; the gateway keeps a no-log
call's billing fields only. A hook that raises (or a transform that fails) leaves the
record without content: metadata only, counted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from secrets import token_bytes
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .._privacy.detectors import Redactor
from .._privacy.walk import map_strings
from .copies import replace
from .record import CallRecord, ErrorInfo, TraceRecord

if TYPE_CHECKING:
    from .._config.models import (
        LangfuseConfig,
        OtlpConfig,
        PostHogConfig,
        PrivacyConfig,
        TelemetryConfig,
    )

__all__ = [
    "AUDIT",
    "BUDGET",
    "CONTENT",
    "GATEWAY",
    "HOOK",
    "HOOK_FAILED",
    "METADATA",
    "STORE",
    "TRACE_PLACEHOLDER",
    "Audience",
    "PrivacyStep",
    "Record",
    "audience_of",
    "input_of",
    "telemetry_secrets",
]

logger = logging.getLogger("pipeclient")

Record = CallRecord | TraceRecord
R = TypeVar("R", bound=Record)
_NONE: Mapping[str, Any] = MappingProxyType({})

TRUNCATION_MARK = "…[truncated]"
HOOK = "hook"  # counter: strings the redact= hook changed
HOOK_FAILED = "hook_failed"  # counter: records whose content was dropped: the hook raised
FAILED = "redaction_failed"  # counter: records whose content was dropped: a detector failed
# What a destination that may not receive content sees of a trace block's name.
TRACE_PLACEHOLDER = "pipeclient.trace"
# An error type or code that is one word (a class name, "rate_limit_exceeded") is
# metadata; anything longer or with spaces is the provider's text.
_WORD = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# A caller's request id in this form carries no text: it is treated as a generated one.
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class Audience(NamedTuple):
    """What one destination may see."""

    #: content and free text, after the `[privacy]` transforms (else none of it)
    content: bool = False
    #: a custom stream: nothing of no-log calls and blocks. False: the gateway's billing
    #: stream, which keeps a no-log call's billing fields
    custom: bool = True
    #: receives trace blocks (the gateway and the audit log file calls only)
    traces: bool = True
    #: request ids as the caller chose them: the gateway's billing key (it has received
    #: it already, as the call's X-Request-Id) and the local audit log's lookup key
    own_ids: bool = False
    #: property names (of `properties=`) this destination never receives
    drop: frozenset[str] = frozenset()
    #: the local spend ledger: no-log calls too (a cost is not content)
    spend: bool = False


CONTENT = Audience(content=True)
METADATA = Audience()
GATEWAY = Audience(custom=False, traces=False, own_ids=True)
AUDIT = Audience(traces=False, own_ids=True)
# The local content store: content after the `[privacy]` transforms, found again by the
# request id the caller chose; calls only.
STORE = Audience(content=True, traces=False, own_ids=True)
# The local spend ledger ([budget]): each call's metadata and user id, no-log calls too.
BUDGET = Audience(traces=False, own_ids=True, spend=True)


def audience_of(table: PostHogConfig | LangfuseConfig | OtlpConfig) -> Audience:
    """DESIGN 5.2 for the custom streams: PostHog gets content only with `redact =
    false`, Langfuse and OTLP with `capture_content = true`."""
    redact = getattr(table, "redact", None)
    if redact is not None:
        audience = METADATA if redact else CONTENT
        dropped = frozenset(getattr(table, "redact_properties", ()))
        return audience._replace(drop=dropped) if dropped else audience
    return CONTENT if getattr(table, "capture_content", False) else METADATA


def telemetry_secrets(config: TelemetryConfig) -> tuple[str, ...]:
    """The keys of the telemetry destinations themselves, never to be sent as content."""
    found = [config.posthog.api_key, config.langfuse.public_key, config.langfuse.secret_key]
    for table in config.otlp:
        found += table.headers.values()
    return tuple(value for value in found if value and "${" not in value)


def input_of(operation: str, body: Mapping[str, Any]) -> Any:
    """The content of a request, as content destinations receive it. Everything here is
    content: prompts, messages, tool definitions, instructions, texts to classify or speak,
    and audio or files (described by name and size; their bytes are never kept)."""
    if operation == "chat":
        return {"messages": body.get("messages"), "tools": body.get("tools")}
    if operation == "responses":  # shown as a chat: the instructions are its system message
        given = body.get("input")
        messages: list[Any] = (
            [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
        )
        if body.get("instructions"):
            messages.insert(0, {"role": "system", "content": body["instructions"]})
        return {"messages": messages, "tools": body.get("tools")}
    if operation in ("embeddings", "moderations", "speech"):
        if operation == "speech" and body.get("instructions"):
            return {"input": body.get("input"), "instructions": body["instructions"]}
        return body.get("input")
    if operation == "transcriptions":
        found = {name: body.get(name) for name in ("file", "prompt")}
        return {name: value for name, value in found.items() if value is not None}
    return body.get("prompt")  # images, text_completion


class _HookFailed(Exception):
    pass


class PrivacyStep:
    """Views of records, per audience.

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
        # Pseudonyms of caller-chosen ids: the same within this client (or, with
        # `pseudonym_key`, wherever that key is), so destinations agree, and not reversible
        # by hashing guesses (the key never leaves the process).
        key = config.pseudonym_key
        self._pseudonym_key = key.encode() if key else _new_key()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._warned = threading.Lock()

    def view(self, record: Record, audience: Audience) -> Record | None:
        """What this audience may see of the record; None: nothing at all."""
        return self._view(record, audience, None)

    def views(self, records: Sequence[Record], audience: Audience, cache: list[Any]) -> list[Any]:
        """`view` for each record. `cache` (one list per batch, shared by the batch's
        audiences) keeps each record's metadata view, made once for all the audiences
        that see metadata only."""
        if audience.content:
            return [self._view(record, audience, None) for record in records]
        if not cache:
            cache.extend(_metadata(record) for record in records)
        return [self._view(r, audience, base) for r, base in zip(records, cache, strict=True)]

    def _view(self, record: Record, audience: Audience, base: Record | None) -> Record | None:
        if record.no_log and audience.custom and not audience.spend:
            return None
        if isinstance(record, TraceRecord):
            if not audience.traces:
                return None
            if audience.content:
                return self._trace_content(record, audience)
            trace = base if base is not None else _trace_metadata(record)
            return self._people(trace, audience)
        if audience.content:
            return self._call_content(record, audience)
        view = base if base is not None else _call_metadata(record)
        if _free_text_id(record) and not audience.own_ids:
            assert isinstance(view, CallRecord)
            view = replace(view, request_id=self._pseudonym(record.request_id))
        return self._people(view, audience)

    # -- attribution -----------------------------------------------------------------------

    def _people(self, view: R, audience: Audience, found: dict[str, int] | None = None) -> R:
        """The view with the attribution this audience may see: after the `[privacy]`
        transforms where content may go (`found` counts what they change), else keyed
        pseudonyms; the user id as given for the audit log and the content store (their
        lookup key); nothing for the gateway."""
        if view.user_id is None and view.session_id is None and not view.properties:
            return view
        if not audience.custom:  # the gateway's billing stream
            return replace(view, user_id=None, session_id=None, properties=_NONE)
        if audience.own_ids and not audience.content:  # the audit log: its lookup key
            return replace(view, session_id=None, properties=_NONE)
        kept = {k: v for k, v in view.properties.items() if k not in audience.drop}
        if found is not None:
            # The content store's lookup key stays as given, as the audit log's does.
            user = view.user_id if audience.own_ids else self._clean(view.user_id, found)
            session = self._clean(view.session_id, found)
            for key, value in kept.items():
                if isinstance(value, str):
                    kept[key] = self._clean(value, found)
        else:
            user = self._pseudonym(view.user_id, "u-") if view.user_id else None
            session = self._pseudonym(view.session_id, "s-") if view.session_id else None
            for key, value in kept.items():
                if isinstance(value, str):
                    kept[key] = self._pseudonym(value, "p-")
        return replace(
            view,
            user_id=user,
            session_id=session,
            properties=MappingProxyType(kept) if kept else _NONE,
        )

    # -- content views -------------------------------------------------------------------

    def _call_content(self, record: CallRecord, audience: Audience) -> CallRecord:
        found: dict[str, int] = {}
        try:
            content = record.input
            if record.request_body is not None:
                content = input_of(record.operation, json.loads(record.request_body))
            error = record.error
            changes: dict[str, Any] = {
                "request_body": None,
                "input": self._clean(content, found),
                "output": self._clean(record.output, found),
                "trace_name": self._clean(record.trace_name, found),
            }
            if error is not None and error.message:
                changes["error"] = replace(error, message=self._clean(error.message, found))
            if _free_text_id(record) and not audience.own_ids:
                changes["request_id"] = self._clean(record.request_id, found)
            view = self._people(replace(record, **changes), audience, found)
        except Exception as exc:
            failed = self._failed(exc)
            metadata = _call_metadata(record)
            if _free_text_id(record) and not audience.own_ids:
                metadata = replace(metadata, request_id=self._pseudonym(record.request_id))
            metadata = self._people(metadata, audience._replace(content=False))
            return replace(metadata, redactions=MappingProxyType(failed))
        self._count(found)
        return replace(view, redactions=MappingProxyType(found)) if found else view

    def _trace_content(self, record: TraceRecord, audience: Audience) -> TraceRecord:
        found: dict[str, int] = {}
        try:
            name = self._clean(record.name, found)
            outer = self._clean(record.trace_name, found) if record.trace_name else ""
            view = self._people(record, audience, found)
        except Exception as exc:
            self._failed(exc)
            return self._people(_trace_metadata(record), audience._replace(content=False))
        self._count(found)
        if name == record.name and outer == record.trace_name:
            return view
        return replace(view, name=name or TRACE_PLACEHOLDER, trace_name=outer)

    def _failed(self, exc: Exception) -> dict[str, int]:
        # Fail closed: no content rather than content that was not cleaned.
        hook_failed = isinstance(exc, _HookFailed)
        failed = {HOOK_FAILED if hook_failed else FAILED: 1}
        self._count(failed)
        self._warn_once(exc.__cause__ if hook_failed and exc.__cause__ else exc, hook_failed)
        return failed

    def _count(self, found: Mapping[str, int]) -> None:
        if found:
            with self._lock:
                for name, number in found.items():
                    self._counts[name] = self._counts.get(name, 0) + number

    def _warn_once(self, cause: BaseException, hook_failed: bool) -> None:
        if self._warned.acquire(blocking=False):
            # The class name only: an exception's message may quote the content.
            logger.warning(
                "pipeclient: %s failed (%s); records it fails on are sent without their "
                "content (counted in client.privacy_counts())",
                "the redact= hook" if hook_failed else "the [privacy] step",
                type(cause).__name__,
            )

    def _pseudonym(self, value: str, kind: str = "rid-") -> str:
        # The kind is hashed too: a user id and a session id alike get unrelated pseudonyms.
        message = (kind + value).encode("utf-8", "replace")
        digest = hmac.new(self._pseudonym_key, message, hashlib.sha256)
        return kind + digest.hexdigest()[:32]

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


# -- metadata views ---------------------------------------------------------------------


def _metadata(record: Record) -> Record:
    return _trace_metadata(record) if isinstance(record, TraceRecord) else _call_metadata(record)


def _call_metadata(record: CallRecord) -> CallRecord:
    error = _error_metadata(record.error)
    if (
        record.input is None
        and record.output is None
        and record.request_body is None
        and record.trace_name is None
        and error == record.error
    ):
        return record
    return replace(record, request_body=None, input=None, output=None, error=error, trace_name=None)


def _trace_metadata(record: TraceRecord) -> TraceRecord:
    return replace(
        record,
        name=TRACE_PLACEHOLDER,
        trace_name=TRACE_PLACEHOLDER,
        error=_error_metadata(record.error),
    )


def _error_metadata(error: ErrorInfo | None) -> ErrorInfo | None:
    """The error's type and code when each is one word; never its message."""
    if error is None:
        return None
    kind = error.type if _IDENTIFIER.fullmatch(error.type) else "Error"
    code = error.code
    if (
        isinstance(code, bool)
        or not isinstance(code, (int, str))
        or (isinstance(code, str) and not _WORD.fullmatch(code))
    ):
        code = None
    if kind == error.type and code == error.code and error.message is None:
        return error
    return ErrorInfo(kind, code)


def _free_text_id(record: CallRecord) -> bool:
    """A request id the caller chose, other than a UUID, is free text."""
    return record.request_id_supplied and not _UUID.fullmatch(record.request_id)


def _new_key() -> bytes:
    return token_bytes(32)
