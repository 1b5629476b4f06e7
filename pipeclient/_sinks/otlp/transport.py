"""One gzip-compressed POST per request, over one httpx client per sink: OTLP/HTTP protobuf
(and, with its own content type and retry statuses, PostHog's `/batch/` JSON).

Only the configured headers leave besides the protocol's own (the OpenTelemetry exporters
would add `OTEL_EXPORTER_OTLP_*HEADERS` to every endpoint, and a token meant for one
collector must not reach another). Every request ends by the send's deadline. A failure
says whether trying again may help, as the OTLP/HTTP specification has it: a connection
that could not be made or was lost, a timeout, 429, 502, 503 and 504 (with the collector's
Retry-After); never another 4xx, nor another 5xx.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Container
from dataclasses import dataclass

import httpx

from ..._telemetry.sink import retry_after_seconds
from ..._version import __version__

__all__ = ["Failure", "Transport", "gzip_bytes"]

_RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# zlib releases the interpreter while it compresses; level 1 keeps a large batch's
# compression short for the sender (a protobuf of repeated keys compresses well anyway).
_GZIP_LEVEL = 1


@dataclass(frozen=True)
class Failure:
    """Why a request was not accepted; never the headers or the body."""

    reason: str
    transient: bool
    retry_after: float | None = None


def gzip_bytes(body: bytes) -> bytes:
    compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: the gzip container
    return compressor.compress(body) + compressor.flush()


class Transport:
    """One sink's HTTP client (made again in a forked child: never the parent's sockets)."""

    def __init__(
        self,
        headers: dict[str, str],
        *,
        content_type: str = "application/x-protobuf",
        retry_statuses: Container[int] = _RETRYABLE_STATUSES,
    ) -> None:
        self._retry_statuses = retry_statuses
        self._headers = {
            "content-type": content_type,
            "content-encoding": "gzip",
            "user-agent": f"pipeclient/{__version__}",
            **headers,
        }
        self._client: httpx.Client | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the client now (its SSL context costs milliseconds), not in a send."""
        self._session()

    def post(self, url: str, body: bytes, deadline: float) -> Failure | None:
        """POST the body (gzip-compressed here); None when the destination accepted it."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Failure("the send's deadline passed before the request", transient=True)
        client = self._session()
        try:
            answer = client.post(url, content=gzip_bytes(body), timeout=httpx.Timeout(remaining))
        except httpx.TimeoutException:
            failure = Failure(f"no answer within {remaining:.1f} s", transient=True)
        except httpx.TransportError as error:  # refused, reset, closed early
            failure = Failure(f"the connection failed ({type(error).__name__})", transient=True)
        else:
            status = answer.status_code
            if 200 <= status < 300:
                return None
            retryable = status in self._retry_statuses
            failure = Failure(
                f"HTTP {status}",
                transient=retryable,
                retry_after=retry_after_seconds(answer.headers) if retryable else None,
            )
        return failure

    def _session(self) -> httpx.Client:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = httpx.Client(headers=self._headers, follow_redirects=False)
                self._pid = os.getpid()
            return self._client

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._client = None  # the parent's: left alone, never closed here

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()
