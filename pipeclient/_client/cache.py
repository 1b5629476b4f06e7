"""The response cache in front of the network (`[cache]`, docs/cache.md).

A non-streamed JSON call is looked up before its route, its budget check or any I/O; a
hit is answered from the local file, its record marked `cache_hit` at no cost and no
provider call (so no gateway event), and the call's audit line written as for any call.
A miss goes to the network, and its 2xx answer is kept. The key is the SHA-256 (an HMAC
under the cache's key, when it has one) of the request's canonical form: method,
endpoint, model, JSON body and query, and the caller's user id: never a backend, an API
key or a header, so every backend of a client (and every client on the same file)
shares the answers. Not cached: streams, `responses.create` (a conversation's state
lives at the provider), forms and audio, listings, calls with `cache=False`, clients
made with `cache=False` or with a gateway backend. A no-log or ephemeral call may be
answered from the cache but is never written to it.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .._config.settings import DefaultSettings, value_source, where_value
from .._exceptions import ConfigError
from .answers import parse
from .call import CacheEntry
from .raw import raw_answer, wants_raw

if TYPE_CHECKING:
    from .._config.settings import TelemetrySettings
    from .._store.cache import CacheKey, ResponseCache
    from .backends import Backend
    from .call import Call
    from .router import Router

__all__ = [
    "HIT_HEADER",
    "CallCache",
    "cache_key_of",
    "open_cache",
    "open_response_cache",
    "request_text",
]

logger = logging.getLogger("pipeclient")

#: the raw response header of an answer served from the cache
HIT_HEADER = "x-pipeclient-cache"
# Operations whose answer is a pure function of the request (as far as a cache can tell).
CACHED_OPERATIONS = frozenset({"chat", "embeddings", "images", "text_completion", "moderations"})
_ZERO = datetime.timedelta(0)
_HIT_HEADERS = (("content-type", "application/json"), (HIT_HEADER, "hit"))

ResponseT = TypeVar("ResponseT")


def open_cache(
    settings: TelemetrySettings | DefaultSettings, router: Router, *, wanted: bool
) -> CallCache | None:
    """The client's cache, when `[cache]` turns it on; opened now, so that an unusable
    path or key is a ConfigError when the client is made. None for a client with a
    gateway backend: the gateway meters every call it serves."""
    if not wanted or isinstance(settings, DefaultSettings) or not settings.config.cache.enabled:
        return None
    if router.gateways:
        return None
    return CallCache(open_response_cache(settings))


def open_response_cache(
    settings: TelemetrySettings, environ: Mapping[str, str] | None = None
) -> ResponseCache:
    """The file `[cache]` names, with the key it configures (`cache_key_of`)."""
    from .._store.cache import ResponseCache

    config = settings.config.cache
    return ResponseCache(
        config.path,
        ttl_seconds=config.ttl_seconds,
        max_entries=config.max_entries,
        key=cache_key_of(settings, os.environ if environ is None else environ),
        source=where_value(("cache", "path"), settings.sources),
    )


def cache_key_of(settings: TelemetrySettings, environ: Mapping[str, str]) -> CacheKey | None:
    """`[cache] key` when set; else, when the content store is on, a key derived from
    `[store] key` (answers are content: never kept in plaintext beside the store); else
    None: answers kept unencrypted. A placeholder left in a table that is off is read now."""
    from .._config.extras import require_crypto
    from .._config.keys import decode_key
    from .._config.placeholders import UnresolvedPlaceholder, resolve_text
    from .._store.cache import CacheKey, key_from_store

    text = settings.config.cache.key
    try:
        text = resolve_text(text, environ) if "${" in text else text
    except UnresolvedPlaceholder:
        text = ""  # an optional placeholder: no key of its own
    source = value_source(("cache", "key"), settings)
    if text.strip():
        require_crypto(
            "the response cache's key ([cache] key; AES-256-GCM)",
            source=source,
            key="cache.key",
            fix="or unset [cache] key (answers are then kept unencrypted)",
        )
        problem = None
        try:
            return CacheKey(decode_key(text))
        except ValueError as exc:
            problem = str(exc)
        raise ConfigError(problem, source=source, key="cache.key")
    store = settings.config.store
    if store.enabled:  # its key was checked with the settings
        return CacheKey(key_from_store(decode_key(store.key)))
    return None


def request_text(call: Call) -> bytes | None:
    """The canonical form of a cacheable call's request; None: the call is not cached."""
    body = call.sent_body
    if (
        not call.use_cache
        or call.stream
        or call.method != "POST"
        or body is None
        or call.tracker.operation not in CACHED_OPERATIONS
    ):
        return None
    request = {
        "v": 1,
        "method": call.method,
        "endpoint": call.path,
        "model": call.tracker.model,
        "body": json.loads(body),
        "query": call.query,
        "user": call.tracker.attribution.user_id,
    }
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class CallCache:
    """A client's view of its `ResponseCache`: lookups, hits and writes of calls."""

    def __init__(self, store: ResponseCache) -> None:
        self.store = store
        self._warned = threading.Lock()  # held once a failure was logged

    def __repr__(self) -> str:
        return f"CallCache({self.store!r})"

    def _failed(self, what: str, exc: Exception) -> None:
        if self._warned.acquire(blocking=False):
            logger.warning("pipeclient: the response cache could not %s (%s)", what, exc)

    def lookup(
        self, call: Call, model: type[ResponseT], backends: Sequence[Backend], *, sync: bool
    ) -> Any:
        """The call's answer from the cache, as `_call` returns it (its record ended, a
        raw answer under `with_raw_response`); None: a miss, to be sent."""
        text = request_text(call)
        if text is None:
            return None
        import sqlite3  # loaded already by the cache's file (only a client with a cache)

        store = self.store
        user = call.tracker.attribution.user_id or ""
        digest = store.digest(text)
        call.cache_entry = CacheEntry(digest, user)
        try:
            found = store.get(digest, user)
        except sqlite3.Error as exc:
            self._failed("be read", exc)
            return None
        if found is None:
            return None
        body, stale_use, answered_by, route = found
        response = httpx.Response(200, headers=_HIT_HEADERS, content=body)
        tracker = call.tracker
        tracker.cache_hit = True
        # No backend was asked now: the record names the one that gave the kept answer
        # (and the route that chose it), when it is one of this client's; else none.
        origin = next((b for b in backends if b.name == answered_by), None)
        if origin is not None:
            tracker.backend, tracker.base_url = origin.name, origin.base_url
        tracker.route = route or None
        backend = origin or backends[0]
        result, error = parse(model, response, call, backend)
        if error is not None:  # kept by another version of the client: sent instead
            tracker.cache_hit, tracker.backend, tracker.base_url = False, "", ""
            tracker.route = None
            return None
        call.cache_entry = CacheEntry(digest, user, hit=True, touch=stale_use)
        if wants_raw():  # the request it answers, as a miss's raw answer shows it
            response.request = httpx.Request(
                "POST", backend.base_url + call.path, headers={"X-Request-Id": call.request_id}
            )
            response.elapsed = _ZERO
            return raw_answer(response, result, call.request_id, sync=sync)
        return result

    def remember(self, call: Call, response: httpx.Response | None = None) -> None:
        """Keep a miss's 2xx JSON answer, or record a hit's use; never a no-log or
        ephemeral call's answer. A failure to write is logged once, never fails the call."""
        entry = call.cache_entry
        if entry is None or (entry.hit and not entry.touch):
            return
        import sqlite3

        digest, user = entry.digest, entry.user
        try:
            if entry.hit or response is None:
                self.store.touch(digest)
                return
            tracker = call.tracker
            if tracker.no_log or tracker.ephemeral or not 200 <= response.status_code < 300:
                return
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            if kind == "application/json":
                self.store.put(digest, user, response.content, tracker.backend, tracker.route or "")
        except sqlite3.Error as exc:
            self._failed("write", exc)

    async def aremember(self, call: Call, response: httpx.Response | None = None) -> None:
        """`remember` in a worker thread: a write may wait for another process's."""
        entry = call.cache_entry
        if entry is None or (entry.hit and not entry.touch):
            return
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.remember, call, response)

    def close(self) -> None:
        self.store.close()
