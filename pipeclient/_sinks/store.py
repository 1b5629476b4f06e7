"""The content store as a sink: each call's content view, sealed per user, in a local file.

The view it receives comes from the privacy step's STORE audience: content after the
`[privacy]` transforms, nothing of a no-log call, no trace blocks. `encode` makes the
record (what `store export` will show), `pack` its JSON bytes, on the dispatcher's worker;
`send` seals and writes a batch in one transaction on the store's own lane, never on the
caller's thread. The lane also deletes expired records: when it starts, then at most
every `PRUNE_EVERY_S` after a write.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._audit.secret import fingerprint, installation_secret
from .._config.keys import decode_key
from .._config.models import StoreConfig
from .._store.crypto import KeyEncryptionKey
from .._store.store import ContentStore, NewRecord, StoreKeyError
from .._telemetry.record import CallRecord, TraceRecord
from .._telemetry.sink import ExportError, Payload, Sink, rfc3339, strict_json

__all__ = ["ANONYMOUS", "PRUNE_EVERY_S", "StoreSink", "build_store_sink", "stored_content"]

logger = logging.getLogger("pipeclient")

PRUNE_EVERY_S = 600.0
#: the user id of calls with no user_id= when no backend key names them
ANONYMOUS = "anonymous"
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)


class StoreSink(Sink):
    name = "store"

    def __init__(
        self,
        store: ContentStore | None,
        *,
        ttl_hours: float,
        retention_days: float,
        user_id_for: Callable[[CallRecord], str],
    ) -> None:
        self.store = store  # None: encode only (`capture_telemetry()`, `telemetry preview`)
        self._ttl_s = ttl_hours * 3600.0
        self._retention_days = retention_days
        self._user_id_for = user_id_for
        self._pruned_at = 0.0
        self._warned = threading.Lock()  # held once a refused write was logged

    def __repr__(self) -> str:
        return f"StoreSink({self.store!r})"

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if not isinstance(record, CallRecord):
            return []  # a trace block holds no content of its own
        created = record.started_at
        return [
            {
                "user_id": self._user_id_for(record),
                "request_id": record.request_id,
                "created_at": created,
                "expires_at": created + self._ttl_s if record.ephemeral else None,
                "content": stored_content(record),
            }
        ]

    def pack(self, payloads: list[Payload]) -> list[Any]:
        return [
            NewRecord(
                item["user_id"],
                item["request_id"],
                item["created_at"],
                item["expires_at"],
                strict_json(_JSON, item["content"]).encode("utf-8", "replace"),
            )
            for item in payloads
        ]

    def prepare(self) -> None:
        self._prune()

    def send(self, payloads: Sequence[Any], timeout: float) -> None:
        store = self.store
        if store is None:
            raise RuntimeError("this store sink only encodes; it has no store to write to")
        try:
            store.put(payloads)
        except StoreKeyError as exc:
            if self._warned.acquire(blocking=False):
                logger.error("pipeclient: the content store refused a write: %s", exc)
            raise
        except sqlite3.OperationalError as exc:  # busy beyond the timeout, disk full
            raise ExportError(f"the store could not write ({exc})", transient=True) from None
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
            self._prune()

    def _prune(self) -> None:
        if self.store is None:
            return
        self._pruned_at = time.monotonic()
        try:
            self.store.prune(retention_days=self._retention_days)
        except sqlite3.Error as exc:  # tried again at the next interval
            logger.warning("pipeclient: the content store could not prune (%s)", exc)

    def after_fork(self) -> None:
        self._warned = threading.Lock()
        if self.store is not None:
            self.store.after_fork()

    def shutdown(self, timeout: float) -> None:
        if self.store is not None:
            self.store.close()


def stored_content(record: CallRecord) -> dict[str, Any]:
    """What the store keeps of a call, sealed: its content view and its metadata."""
    error = record.error
    return {
        "timestamp": rfc3339(record.started_at),
        "operation": record.operation,
        "model": record.model,
        "stream": record.stream,
        "backend": record.backend,
        "outcome": record.outcome,
        "http_status": record.http_status,
        "error": None
        if error is None
        else {"type": error.type, "code": error.code, "message": error.message},
        "input": record.input,
        "output": record.output,
        "usage": {"input_tokens": record.input_tokens, "output_tokens": record.output_tokens},
        "finish_reasons": list(record.finish_reasons),
        "response_id": record.response_id,
        "response_model": record.response_model,
        "parameters": dict(record.parameters),
        "latency_ms": {"ttft": record.ttft_ms, "total": record.total_ms},
        "session_id": record.session_id,
        "properties": dict(record.properties),
        "trace_id": record.trace_id,
        "trace_name": record.trace_name,
        "ephemeral": record.ephemeral,
        "redactions": dict(record.redactions),
    }


def build_store_sink(
    config: StoreConfig,
    *,
    api_keys: Mapping[str, str],
    key_source: str,
    path_source: str | None = None,
    open_store: bool = True,
) -> StoreSink:
    """The sink `[store]` asks for. Opens the store now, so that an unusable path or a
    key that is not the store's is a ConfigError when the client is made.

    A call's user is its `user_id=`, else (as on audit lines) the fingerprint of the key
    of the backend that served it (keyed by the installation's secret beside the store's
    file, as the audit log's), else "anonymous".
    """
    store = None
    if open_store:
        kek = KeyEncryptionKey(decode_key(config.key))
        store = ContentStore.open(config.path, kek, key_source=key_source, path_source=path_source)
    fingerprints: dict[str, str] = {}
    if any(api_keys.values()):  # keyed as the audit log's, by the secret beside the file
        directory = Path(config.path).expanduser().absolute().parent
        secret = installation_secret(directory, create=open_store, source=path_source)
        fingerprints = {name: fingerprint(key, secret) for name, key in api_keys.items() if key}

    def user_id_for(record: CallRecord) -> str:
        return record.user_id or fingerprints.get(record.backend) or ANONYMOUS

    return StoreSink(
        store,
        ttl_hours=config.ttl_hours,
        retention_days=config.retention_days,
        user_id_for=user_id_for,
    )
