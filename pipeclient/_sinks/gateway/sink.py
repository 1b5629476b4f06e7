"""The gateway's mandatory, metadata-only telemetry stream (DESIGN 5.3).

Events go to `POST {base_url}/telemetry` as `{"events": [...]}` with the gateway key,
batched, retried briefly, and spooled to disk when the endpoint cannot take them, to be
sent with the next batch (by this process or the next).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..._telemetry.record import CallRecord, TraceRecord
from ..._telemetry.sink import Payload, Sink, json_text
from .event import gateway_event
from .spool import Spool

__all__ = ["GatewayDeliveryError", "GatewaySink", "GatewayTarget", "default_spool_root"]

logger = logging.getLogger("pipeclient")

_BATCH = 500
_RETRY_DELAYS = (0.1, 0.3)


class GatewayDeliveryError(RuntimeError):
    """Events could not be delivered now; they are in the spool."""


@dataclass(frozen=True)
class GatewayTarget:
    base_url: str
    api_key: str

    def __repr__(self) -> str:
        return f"GatewayTarget(base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/telemetry"

    def spool_name(self) -> str:
        digest = hashlib.sha256(f"{self.url}\n{self.api_key}".encode()).hexdigest()
        return digest[:24]


def default_spool_root() -> Path:
    configured = os.environ.get("PIPECLIENT_GATEWAY_SPOOL_DIR", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".pipelex" / "spool"


class GatewaySink(Sink):
    name = "gateway"

    def __init__(
        self,
        targets: Mapping[str, GatewayTarget],
        *,
        spool_root: Path | None = None,
        max_spool: int = 10_000,
    ) -> None:
        self.targets = dict(targets)
        root = spool_root or default_spool_root()
        self.spools = {
            name: Spool(root / target.spool_name(), max_events=max_spool)
            for name, target in self.targets.items()
        }
        self._http: httpx.Client | None = None
        self._pid = 0
        self._stopping = threading.Event()  # set at close: no more retries, spool instead
        self._sending = threading.Lock()  # held while a batch is out

    @property
    def dropped(self) -> int:
        """Events the full spools had to drop."""
        return sum(spool.dropped for spool in self.spools.values())

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if not isinstance(record, CallRecord) or not record.gateway or record.cache_hit:
            return []
        target = self.targets.get(record.backend)
        if target is None:
            return []
        return [{"backend": record.backend, "url": target.url, "event": gateway_event(record)}]

    def pack(self, payloads: list[Payload]) -> list[tuple[str, str]]:
        """(backend, the event as JSON text): text is what the request and the spool take,
        and a tuple of strings is not tracked by the garbage collector."""
        return [(payload["backend"], json_text(payload["event"])) for payload in payloads]

    def send(self, payloads: Sequence[Payload | tuple[str, str]], timeout: float) -> None:
        with self._sending:
            self._send(payloads, timeout)

    def keep(self, payloads: Sequence[Payload | tuple[str, str]]) -> bool:
        """Unsent at close: into the spool, for the next process to send."""
        for payload in payloads:
            backend, event = payload if isinstance(payload, tuple) else self.pack([payload])[0]
            spool = self.spools.get(backend)
            if spool is not None:
                spool.add([event])
        return True

    def _send(self, payloads: Sequence[Payload | tuple[str, str]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        by_backend: dict[str, list[str]] = {}
        for payload in payloads:
            backend, event = payload if isinstance(payload, tuple) else self.pack([payload])[0]
            by_backend.setdefault(backend, []).append(event)
        undelivered = 0
        for backend, events in by_backend.items():
            undelivered += self._deliver(backend, events, deadline)
        if undelivered:
            raise GatewayDeliveryError(
                f"{undelivered} gateway telemetry events could not be delivered now; "
                "they are spooled and will be sent with a later batch"
            )

    def _deliver(self, backend: str, events: list[str], deadline: float) -> int:
        """Send the spooled backlog, then these events; spool what could not go. Returns
        how many of these events were not delivered."""
        target, spool = self.targets[backend], self.spools[backend]
        pending = list(events)
        while True:
            backlog = spool.take(max(0, _BATCH - len(pending)))
            batch = backlog + pending
            if not batch:
                return 0
            if not self._post(target, batch, deadline):
                spool.add(backlog, front=True)
                spool.add(pending)
                return len(pending)
            pending = []
            if not backlog or time.monotonic() >= deadline:
                return 0

    def _post(self, target: GatewayTarget, events: list[str], deadline: float) -> bool:
        body = ('{"events":[' + ",".join(events) + "]}").encode()
        headers = {"Authorization": f"Bearer {target.api_key}", "Content-Type": "application/json"}
        for delay in (*_RETRY_DELAYS, None):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            status: int | None = None
            try:
                response = self._client().post(
                    target.url, content=body, headers=headers, timeout=remaining
                )
                status = response.status_code
            except httpx.HTTPError:
                status = None
            if status is not None and 200 <= status < 300:
                return True
            if status is not None and status < 500 and status not in (408, 429):
                logger.warning(
                    "pipeclient: the gateway's telemetry endpoint answered %d; events are spooled",
                    status,
                )
                return False
            if delay is None or deadline - time.monotonic() <= delay:
                return False
            if self._stopping.wait(delay):  # closing: spooled now, sent by a later process
                return False
        return False

    def _client(self) -> httpx.Client:
        if self._http is None or self._pid != os.getpid():
            self._http = httpx.Client(follow_redirects=False, trust_env=False)
            self._pid = os.getpid()
        return self._http

    def force_flush(self, timeout: float) -> bool:
        """Try to deliver the spooled backlog; True when nothing is left in it."""
        deadline = time.monotonic() + timeout
        for backend in self.targets:
            self._deliver(backend, [], deadline)
        return all(len(spool) == 0 for spool in self.spools.values())

    def after_fork(self) -> None:
        self._stopping = threading.Event()
        self._sending = threading.Lock()  # the parent's may have been held at the fork
        for spool in self.spools.values():
            spool.after_fork()

    def shutdown(self, timeout: float) -> None:
        self._stopping.set()
        # A batch still out stops retrying and is spooled before the process may end.
        if self._sending.acquire(timeout=max(0.0, timeout)):
            self._sending.release()
        if self._http is not None and self._pid == os.getpid():
            self._http.close()
        self._http = None
