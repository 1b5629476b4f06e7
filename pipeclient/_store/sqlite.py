"""The store on SQLite: one database file in WAL mode, safe across threads and processes.

Every write is one `BEGIN IMMEDIATE` transaction (writers from several processes take
turns; a busy database is waited for), so a process killed mid-write leaves the last
committed state and nothing half-written. `synchronous = NORMAL`: a commit survives the
process being killed; only a power cut may lose the last commits, never corrupt the file.
`secure_delete` overwrites deleted rows with zeros, and `scrub()` checkpoints the WAL
and truncates it, so that a deleted row's bytes remain in none of the three files.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from .._exceptions import ConfigError
from .storage import Reader, Storage, StoredRecord, Writer

__all__ = ["SqliteStorage", "open_wal"]

BUSY_TIMEOUT_S = 30.0  # how long a write waits for other writers
SCRUB_WAIT_S = 5.0  # how long a deletion waits to empty the write-ahead log
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS data_keys (user_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_user ON records (user_id);
CREATE INDEX IF NOT EXISTS records_by_request ON records (request_id);
CREATE INDEX IF NOT EXISTS records_by_time ON records (created_at);
CREATE INDEX IF NOT EXISTS records_by_expiry ON records (expires_at)
    WHERE expires_at IS NOT NULL;
"""
_OURS = frozenset(
    {"meta", "data_keys", "records", "records_by_user", "records_by_request", "records_by_time"}
    | {"records_by_expiry", "sqlite_autoindex_meta_1", "sqlite_autoindex_data_keys_1"}
)
_COLUMNS = "request_id, user_id, created_at, expires_at, sealed"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class _Rows(Writer):
    """Reads and writes on one connection, inside the transaction the storage opened."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def meta(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def data_key(self, user_id: str) -> bytes | None:
        row = self._db.execute(
            "SELECT wrapped FROM data_keys WHERE user_id = ?", (user_id,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def data_keys(self) -> list[tuple[str, bytes]]:
        rows = self._db.execute("SELECT user_id, wrapped FROM data_keys ORDER BY user_id")
        return [(str(user), bytes(wrapped)) for user, wrapped in rows]

    def records(
        self, *, user_id: str | None = None, request_id: str | None = None, now: float
    ) -> Iterator[StoredRecord]:
        where: list[str] = [_LIVE]
        values: list[Any] = [now]
        if user_id is not None:
            where.append("user_id = ?")
            values.append(user_id)
        if request_id is not None:
            where.append("request_id = ?")
            values.append(request_id)
        query = (
            f"SELECT {_COLUMNS} FROM records WHERE {' AND '.join(where)} ORDER BY created_at, rowid"
        )
        for row in self._db.execute(query, values).fetchall():
            yield StoredRecord(str(row[0]), str(row[1]), float(row[2]), row[3], bytes(row[4]))

    def set_meta(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def put_data_key(self, user_id: str, wrapped: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO data_keys (user_id, wrapped) VALUES (?, ?)", (user_id, wrapped)
        )

    def add_records(self, records: Sequence[StoredRecord]) -> None:
        self._db.executemany(f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", records)

    def delete_user(self, user_id: str) -> tuple[int, bool]:
        gone = self._db.execute("DELETE FROM records WHERE user_id = ?", (user_id,)).rowcount
        key = self._db.execute("DELETE FROM data_keys WHERE user_id = ?", (user_id,)).rowcount
        return gone, key > 0

    def delete_expired(self, now: float, created_before: float | None) -> int:
        gone = self._db.execute(
            "DELETE FROM records WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        ).rowcount
        if created_before is not None:
            gone += self._db.execute(
                "DELETE FROM records WHERE created_at < ?", (created_before,)
            ).rowcount
        return gone


class SqliteStorage(Storage):
    def __init__(self, path: str | Path, *, source: str | None = None) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self._source = source
        self._lock = threading.Lock()
        self._abandoned: list[sqlite3.Connection] = []  # a fork's inherited connections
        self._db: sqlite3.Connection | None = None
        self._connect()

    def __repr__(self) -> str:
        return f"SqliteStorage({self.location!r})"

    def _fail(self, reason: str) -> ConfigError:
        return ConfigError(f"{self.location} {reason}", source=self._source, key="store.path")

    def _connect(self) -> sqlite3.Connection:
        db = open_wal(
            self.path,
            self._fail,
            table="store",
            kind="store database",
            ours=_OURS,
            schema=_SCHEMA,
            pragmas=("PRAGMA secure_delete = ON",),
            timeout=BUSY_TIMEOUT_S,
        )
        self._db = db
        return db

    def _connection(self) -> sqlite3.Connection:
        return self._db if self._db is not None else self._connect()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[_Rows]:
        with self._lock:
            db = self._connection()
            db.execute(begin)
            try:
                yield _Rows(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def reading(self) -> AbstractContextManager[Reader]:
        return self._transaction("BEGIN")

    def writing(self) -> AbstractContextManager[Writer]:
        return self._transaction("BEGIN IMMEDIATE")

    def scrub(self) -> bool:
        with self._lock:
            db = self._connection()
            # Waits for other connections' transactions up to SCRUB_WAIT_S, not the
            # writers' longer timeout: the caller reports a scrub that could not be done.
            db.execute(f"PRAGMA busy_timeout = {int(SCRUB_WAIT_S * 1000)}")
            try:
                busy, _log, _done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return int(busy) == 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._db is not None:
            self._abandoned.append(self._db)
            self._db = None


def open_wal(
    path: Path,
    fail: Callable[[str], ConfigError],
    *,
    table: str,
    kind: str,
    ours: frozenset[str],
    schema: str,
    pragmas: Sequence[str] = (),
    timeout: float,
) -> sqlite3.Connection:
    """A connection to a database of ours (`ours`: its tables and indexes) in WAL mode,
    its schema made if new; the file is created readable by its owner only. `fail` makes
    the ConfigError naming `[table] path`, saying what is wrong with this `kind` of file."""
    if path.is_dir():
        raise fail(f"is a directory; set [{table}] path to a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # keys, user ids: readable by the owner only
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise fail(f"cannot be opened ({_reason(exc)})") from None
    # Processes opening a new file at once can meet SQLite's deadlock guard (switching to
    # WAL, making the schema), which answers "locked" without waiting: try again, within
    # the same timeout a busy write gets.
    deadline = time.monotonic() + timeout
    pause = 0.01
    try:
        while True:
            try:
                _set_up(db, fail, table=table, ours=ours, schema=schema, pragmas=pragmas)
                return db
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() + pause > deadline:
                    raise
                if db.in_transaction:
                    db.rollback()
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise fail(f"is not a usable {kind} ({_reason(exc)})") from None
    except BaseException:
        db.close()
        raise


def _set_up(
    db: sqlite3.Connection,
    fail: Callable[[str], ConfigError],
    *,
    table: str,
    ours: frozenset[str],
    schema: str,
    pragmas: Sequence[str],
) -> None:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    others = sorted(tables - ours)
    if others:
        raise fail(
            f"is a database of something else (it has {', '.join(others[:3])}); "
            f"set [{table}] path to a new file"
        )
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise fail(f"cannot use write-ahead logging (journal mode {mode})")
    db.execute("PRAGMA synchronous = NORMAL")
    for pragma in pragmas:
        db.execute(pragma)
    db.executescript("BEGIN IMMEDIATE;" + schema + "COMMIT;")


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__
