"""The response cache's file: answers by request digest, in one SQLite file in WAL mode.

Several processes share one file (a read never waits for a writer; each write is one
short transaction). With a key, every answer is sealed with AES-256-GCM bound to its
digest, its user scope and its time (`crypto.py`), digests and user scopes are HMACs
under the key (the file never says which prompt or user an answer is for), and rows
sealed under another key are never served. Without one, answers are kept as they came,
in a file readable by its owner only. It knows bytes, digests and users, not calls.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .._exceptions import ConfigError
from .sqlite import open_wal

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CacheKey", "CacheStatus", "ResponseCache", "key_from_store"]

BUSY_TIMEOUT_S = 5.0  # how long a write waits for other writers (a miss costs no more)
PRUNE_EVERY = 32  # writes of one process between two prunes (max_entries is approximate)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    digest TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    used_at REAL NOT NULL,
    body BLOB NOT NULL,
    backend TEXT NOT NULL DEFAULT '',
    route TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS answers_by_use ON answers (used_at);
CREATE INDEX IF NOT EXISTS answers_by_user ON answers (user);
"""
_OURS = frozenset({"answers", "answers_by_use", "answers_by_user", "sqlite_autoindex_answers_1"})
_PLAIN = ""  # the key_id of answers kept unencrypted


def _clock() -> float:
    return time.time()


def _derive(key: bytes, purpose: str) -> bytes:
    return hmac.new(key, f"pipeclient.cache.{purpose}.v1".encode(), hashlib.sha256).digest()


def key_from_store(store_key: bytes) -> bytes:
    """The cache's key when it has none of its own and the content store is on."""
    return _derive(store_key, "from-store")


class CacheKey:
    """A cache key's three uses, each its own derived key: sealing, digests, its id."""

    __slots__ = ("_aead", "_mac", "key_id")

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead: AESGCM = AESGCM(_derive(key, "seal"))
        self._mac = _derive(key, "digest")
        self.key_id = _derive(key, "key-id").hex()[:32]

    def __repr__(self) -> str:
        return f"CacheKey(id={self.key_id})"

    def digest(self, text: bytes) -> str:
        return hmac.new(self._mac, text, hashlib.sha256).hexdigest()

    def seal(self, body: bytes, *, digest: str, user: str, created_at: float) -> bytes:
        from .crypto import seal_record

        return seal_record(self._aead, body, user_id=user, request_id=digest, created_at=created_at)

    def open(self, sealed: bytes, *, digest: str, user: str, created_at: float) -> bytes | None:
        from .crypto import InvalidTag, open_record

        try:
            return open_record(
                self._aead, sealed, user_id=user, request_id=digest, created_at=created_at
            )
        except InvalidTag:
            return None


class CacheStatus(NamedTuple):
    entries: int
    live: int  # within the TTL and readable with the current key
    other_key: int  # sealed under another key (or unencrypted while a key is set): never served
    file_bytes: int


class ResponseCache:
    """`source` says where `[cache] path` came from, for the error an unusable file gets."""

    def __init__(
        self,
        path: str | Path,
        *,
        ttl_seconds: float,
        max_entries: int,
        key: CacheKey | None = None,
        source: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.ttl_seconds = float(ttl_seconds)
        self.max_entries = max_entries
        self.key = key
        self._source = source
        self._key_id = key.key_id if key is not None else _PLAIN
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._writes = 0
        self._db: sqlite3.Connection | None = None
        self._connection()  # an unusable path is a ConfigError now, not at the first call

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, sealed={self.key is not None})"

    @property
    def sealed(self) -> bool:
        return self.key is not None

    def _fail(self, reason: str) -> ConfigError:
        return ConfigError(f"{self.path} {reason}", source=self._source, key="cache.path")

    def _locked(self) -> threading.Lock:
        """The lock guarding the connection; a forked child gets its own, and a new
        connection (the parent's is left to the parent)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._db = None
        return self._lock

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_wal(
                self.path,
                self._fail,
                table="cache",
                kind="cache file",
                ours=_OURS,
                schema=_SCHEMA,
                pragmas=("PRAGMA secure_delete = ON",),
                timeout=BUSY_TIMEOUT_S,
            )
        return self._db

    def digest(self, text: bytes) -> str:
        """The row key of a request's canonical form: an HMAC under the key, if any."""
        if self.key is not None:
            return self.key.digest(text)
        return hashlib.sha256(text).hexdigest()

    def user_tag(self, user: str) -> str:
        """A user scope as the file keeps it: an HMAC under the key, if any."""
        return self.digest(b"user\x00" + user.encode("utf-8")) if self.key is not None else user

    def get(self, digest: str, user: str) -> tuple[bytes, bool, str, str] | None:
        """The answer kept for this digest within the TTL, whether its last use is old
        enough to be recorded (`touch`), and the backend and route that answered it (names,
        metadata); None: a miss."""
        now = _clock()
        with self._locked():
            row = (
                self._connection()
                .execute(
                    "SELECT created_at, used_at, body, backend, route FROM answers "
                    "WHERE digest = ? AND key_id = ? AND created_at > ?",
                    (digest, self._key_id, now - self.ttl_seconds),
                )
                .fetchone()
            )
        if row is None:
            return None
        created_at, used_at, body = float(row[0]), float(row[1]), bytes(row[2])
        if self.key is not None:
            opened = self.key.open(body, digest=digest, user=user, created_at=created_at)
            if opened is None:  # altered, or moved from another row: never served
                return None
            body = opened
        stale = now - used_at > min(60.0, self.ttl_seconds / 10)
        return body, stale, str(row[3]), str(row[4])

    def touch(self, digest: str) -> None:
        """Record a use, so that pruning keeps the answers in use (least recently used go)."""
        self._write("UPDATE answers SET used_at = ? WHERE digest = ?", (_clock(), digest))

    def put(self, digest: str, user: str, body: bytes, backend: str = "", route: str = "") -> None:
        now = _clock()
        kept = body
        if self.key is not None:
            kept = self.key.seal(body, digest=digest, user=user, created_at=now)
        self._write(
            "INSERT OR REPLACE INTO answers "
            "(digest, user, key_id, created_at, used_at, body, backend, route) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (digest, self.user_tag(user), self._key_id, now, now, kept, backend, route),
        )
        self._writes += 1
        if self._writes % PRUNE_EVERY == 1:
            self.prune()

    def _write(self, statement: str, values: tuple[Any, ...]) -> int:
        with self._locked():
            return self._connection().execute(statement, values).rowcount

    def prune(self) -> int:
        """Delete answers past the TTL (whatever their key), then the least recently used
        beyond `max_entries`; the number deleted."""
        cutoff = _clock() - self.ttl_seconds
        with self._locked():
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                gone = db.execute("DELETE FROM answers WHERE created_at <= ?", (cutoff,)).rowcount
                (count,) = db.execute("SELECT count(*) FROM answers").fetchone()
                if count > self.max_entries:
                    gone += db.execute(
                        "DELETE FROM answers WHERE digest IN "
                        "(SELECT digest FROM answers ORDER BY used_at LIMIT ?)",
                        (count - self.max_entries,),
                    ).rowcount
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return int(gone)

    def clear(self, user: str | None = None) -> tuple[int, bool]:
        """Delete every answer (or one user scope's), then empty the write-ahead log so
        that their bytes remain in no file: (deleted, whether the log could be emptied)."""
        with self._locked():
            db = self._connection()
            if user is None:
                gone = db.execute("DELETE FROM answers").rowcount
            else:
                tag = self.user_tag(user)
                gone = db.execute("DELETE FROM answers WHERE user = ?", (tag,)).rowcount
            busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return int(gone), int(busy) == 0

    def status(self) -> CacheStatus:
        cutoff = _clock() - self.ttl_seconds
        with self._locked():
            db = self._connection()
            (entries,) = db.execute("SELECT count(*) FROM answers").fetchone()
            (live,) = db.execute(
                "SELECT count(*) FROM answers WHERE key_id = ? AND created_at > ?",
                (self._key_id, cutoff),
            ).fetchone()
            (other,) = db.execute(
                "SELECT count(*) FROM answers WHERE key_id != ?", (self._key_id,)
            ).fetchone()
        size = sum(
            Path(f"{self.path}{suffix}").stat().st_size
            for suffix in ("", "-wal", "-shm")
            if Path(f"{self.path}{suffix}").exists()
        )
        return CacheStatus(int(entries), int(live), int(other), size)

    def close(self) -> None:
        with self._locked():
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None
