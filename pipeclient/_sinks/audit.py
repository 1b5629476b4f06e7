"""The audit log as a sink: one metadata-only line per call record, appended locally.

`encode` is an allowlist: it reads only metadata fields of the record (never `input`,
`output` or the error's message), and the error's type and code only when they are
single words, so no prompt, completion or provider text can reach the file even if a
record carrying content is handed to it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._audit.log import AuditLog, Rotation, check_audit_path
from .._audit.secret import fingerprint, installation_secret
from .._telemetry.record import ENDPOINTS, CallRecord, TraceRecord
from .._telemetry.sink import Payload, Sink, rfc3339

__all__ = ["AuditSink", "audit_fields", "build_audit_sink"]

_WORD = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_MAX_COUNT = 10**15  # larger is not a token count; it would also leave the fast format


class AuditSink(Sink):
    name = "audit"

    def __init__(
        self,
        log: AuditLog | None,
        *,
        user_id: str,
        user_id_for: Callable[[CallRecord], str | None] | None = None,
    ) -> None:
        self.log = log  # None: encode only (`capture_telemetry()`, `telemetry preview`)
        self.user_id = user_id
        self._user_id_for = user_id_for

    def __repr__(self) -> str:
        return f"AuditSink({self.log!r})"

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if not isinstance(record, CallRecord):
            return []  # a trace block is not a request
        user_id = self._user_id_for(record) if self._user_id_for else None
        return [audit_fields(record, user_id or self.user_id)]

    def send(self, payloads: Sequence[Payload], timeout: float) -> None:
        if self.log is None:
            raise RuntimeError("this audit sink only encodes; it has no log to write to")
        for fields in payloads:
            self.log.append(fields)

    def shutdown(self, timeout: float) -> None:
        if self.log is not None:
            self.log.close()


def build_audit_sink(
    *,
    path: str,
    user_id: str,
    durable: bool,
    api_keys: Mapping[str, str],
    source: str | None = None,
    open_log: bool = True,
    rotate_mb: float = 0,
    retention_days: float = 0,
    signing_key: str = "",
) -> AuditSink:
    """The sink `[audit]` asks for; raises ConfigError now if the path is unusable.

    `api_keys` maps backend names to their keys. With no `[audit] user_id`, a line's user
    is the call's `user_id=` (per call, block or client), else the keyed fingerprint of the
    key of the backend that served the call (keyed by the installation's secret beside the
    log; without `open_log`, an existing secret is read and none is created).
    """
    fingerprints: dict[str, str] = {}
    if not user_id and any(api_keys.values()):
        directory = Path(path).expanduser().absolute().parent
        if open_log:
            check_audit_path(path, source=source)  # a clear error before creating anything
        secret = installation_secret(directory, create=open_log, source=source)
        fingerprints = {name: fingerprint(key, secret) for name, key in api_keys.items() if key}
    fallback = user_id or next(iter(fingerprints.values()), "anonymous")
    log = None
    if open_log:
        rotation = _rotation(path, rotate_mb, retention_days, signing_key) if rotate_mb else None
        log = AuditLog(path, user_id=fallback, durable=durable, source=source, rotation=rotation)
    if user_id:
        return AuditSink(log, user_id=fallback)
    return AuditSink(
        log,
        user_id=fallback,
        user_id_for=lambda record: record.user_id or fingerprints.get(record.backend),
    )


def _rotation(path: str, rotate_mb: float, retention_days: float, signing_key: str) -> Rotation:
    """Segments of `rotate_mb`, sealed by a checkpoint signed with the key if there is one;
    segments past their retention are deleted now and at each roll."""
    from .._audit.checkpoint import parse_signing_key
    from .._audit.rotate import SegmentRotation, expire_segments

    key = parse_signing_key(signing_key) if signing_key else None
    expire_segments(Path(path).expanduser().absolute(), retention_days)
    return SegmentRotation(int(rotate_mb * 2**20), retention_days, key)


def audit_fields(record: CallRecord, user_id: str) -> dict[str, Any]:
    """The line for one call, without its chain fields: metadata only, by construction."""
    error: dict[str, Any] | None = None
    if record.error is not None or record.outcome == "error":
        kind = record.error.type if record.error else "Error"
        code = record.error.code if record.error else record.http_status
        error = {"type": kind if _WORD.fullmatch(kind) else "Error", "code": _code(code)}
    return {
        "user_id": _text(user_id),
        "timestamp": rfc3339(record.started_at),
        "endpoint": _endpoint(record.base_url, record.operation),
        "method": "POST",
        "model": _text(record.model),
        "http_status": _count(record.http_status),
        "x_request_id": _text(record.request_id),
        "error": error,
        "timings": {"ttft_ms": _ms(record.ttft_ms), "total_ms": _ms(record.total_ms) or 0},
        "token_counts": {
            "prompt": _count(record.input_tokens),
            "output": _count(record.output_tokens),
        },
    }


def _endpoint(base_url: str, operation: str) -> str:
    """The request's path, the base URL's prefix included: "/v1" + "/chat/completions"."""
    try:
        prefix = urlsplit(base_url).path.rstrip("/")
    except ValueError:
        prefix = ""
    return _text(prefix + ENDPOINTS.get(operation, "/" + operation))


def _ms(value: float | None) -> int | float | None:
    """Milliseconds to 3 decimals, whole numbers as integers: printed the same by JCS."""
    if value is None or not math.isfinite(value):
        return None
    rounded = round(value, 3)
    return int(rounded) if rounded.is_integer() or abs(rounded) >= 1e11 else rounded


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNT:
        return value
    return None


def _code(value: Any) -> int | str | None:
    """An HTTP status or a provider's error code: a number or one word, never a sentence."""
    if isinstance(value, str):
        return value if _WORD.fullmatch(value) else None
    return _count(value)


def _text(value: str) -> str:
    """The string as valid UTF-8 (a lone surrogate would make the line unwritable)."""
    if value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")
