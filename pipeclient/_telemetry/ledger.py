"""The spend ledger: running totals per UTC period and scope, in one local SQLite file.

Several processes share one file: WAL mode (a read never waits for a writer), each write
one `BEGIN IMMEDIATE` transaction of additions (`spent = spent + ?`), so totals are exact
whatever the interleaving of writers. Amounts are whole nano-USD (1e-9 USD) integers, so
sums do not depend on the order of additions. Reads and writes have a connection each
(a caller's check never queues behind the export worker's write); a forked child opens
its own on first use.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from .._exceptions import ConfigError
from .._store.sqlite import open_wal

__all__ = [
    "CLIENT_SCOPE",
    "NANO",
    "Ledger",
    "Spend",
    "Totals",
    "period_start",
    "periods_of",
    "user_scope",
]

BUSY_TIMEOUT_S = 10.0  # how long a write (or a rare blocked read) waits for other writers
NANO = 1_000_000_000  # nano-USD per USD
CLIENT_SCOPE = "client"  # the row of every call; users' rows are "user:<id>", or "user"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    period TEXT NOT NULL,
    scope TEXT NOT NULL,
    nano_usd INTEGER NOT NULL DEFAULT 0,
    calls INTEGER NOT NULL DEFAULT 0,
    unpriced INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (period, scope)
) WITHOUT ROWID;
"""
_OURS = frozenset({"spend"})  # WITHOUT ROWID: no index of its own
_ADD = """
INSERT INTO spend (period, scope, nano_usd, calls, unpriced) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (period, scope) DO UPDATE SET
    nano_usd = nano_usd + excluded.nano_usd,
    calls = calls + excluded.calls,
    unpriced = unpriced + excluded.unpriced
"""


class Totals(NamedTuple):
    nano_usd: int = 0
    calls: int = 0  # calls with token usage, priced or not
    unpriced: int = 0  # of those, calls no price was known for

    @property
    def usd(self) -> float:
        return self.nano_usd / NANO


class Spend(NamedTuple):
    """One call's share: its period's rows ("2026-12-07" and "2026-12") and scopes."""

    periods: tuple[str, ...]
    scopes: tuple[str, ...]
    nano_usd: int | None  # None: no price known


def period_start(moment: float, period: str) -> str:
    """The UTC calendar period holding `moment`: "2026-12-07" (day) or "2026-12" (month)."""
    return periods_of(moment)[0 if period == "day" else 1]


def periods_of(moment: float) -> tuple[str, str]:
    """Both periods of a moment: every call is added to its day and to its month."""
    day = time.gmtime(moment)
    month = f"{day.tm_year:04d}-{day.tm_mon:02d}"
    return f"{month}-{day.tm_mday:02d}", month


def user_scope(user_id: str | None) -> str:
    return "user" if user_id is None else "user:" + user_id


class Ledger:
    def __init__(self, path: str | Path, *, source: str | None = None) -> None:
        self.path = Path(path).expanduser()
        self._source = source
        self._pid = os.getpid()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._abandoned: list[sqlite3.Connection] = []  # a fork's inherited connections
        self._reader = self._connect()  # an unusable path fails now, not at the first call

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def _fail(self, reason: str) -> ConfigError:
        return ConfigError(f"{self.path} {reason}", source=self._source, key="budget.path")

    def _connect(self) -> sqlite3.Connection:
        return open_wal(
            self.path,
            self._fail,
            table="budget",
            kind="ledger",
            ours=_OURS,
            schema=_SCHEMA,
            timeout=BUSY_TIMEOUT_S,
        )

    def _forked(self) -> None:
        """In a forked child: never use the parent's connections (nor close them)."""
        self._pid = os.getpid()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._abandoned += [db for db in (self._reader, self._writer) if db is not None]
        self._reader = self._writer = None

    def totals(self, period: str, scope: str) -> Totals:
        """One row, read without a transaction: what every process has recorded so far."""
        found = self._read(
            "SELECT nano_usd, calls, unpriced FROM spend WHERE period = ? AND scope = ?",
            (period, scope),
        )
        return Totals(*map(int, found[0])) if found else Totals()

    def rows(self, period: str) -> list[tuple[str, Totals]]:
        """Every scope's totals in a period, for `pipeclient budget status`."""
        found = self._read(
            "SELECT scope, nano_usd, calls, unpriced FROM spend WHERE period = ? ORDER BY scope",
            (period,),
        )
        return [(str(row[0]), Totals(*map(int, row[1:]))) for row in found]

    def _read(self, query: str, values: tuple[str, ...]) -> list[Any]:
        if self._pid != os.getpid():
            self._forked()
        with self._read_lock:
            db = self._reader
            if db is None:
                db = self._reader = self._connect()
            return db.execute(query, values).fetchall()

    def add(self, spends: Iterable[Spend]) -> None:
        """Add calls to the totals, in one transaction (summed per row first)."""
        sums: dict[tuple[str, str], list[int]] = {}
        for spend in spends:
            priced = spend.nano_usd is not None
            for period in spend.periods:
                for scope in spend.scopes:
                    row = sums.setdefault((period, scope), [0, 0, 0])
                    row[0] += spend.nano_usd or 0
                    row[1] += 1
                    row[2] += 0 if priced else 1
        if not sums:
            return
        values = [
            (period, scope, nano, calls, unpriced)
            for (period, scope), (nano, calls, unpriced) in sums.items()
        ]
        if self._pid != os.getpid():
            self._forked()
        with self._write_lock:
            db = self._writer
            if db is None:
                db = self._writer = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_ADD, values)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        for lock, name in ((self._read_lock, "_reader"), (self._write_lock, "_writer")):
            with lock:
                db = getattr(self, name)
                if db is not None and self._pid == os.getpid():
                    db.close()
                setattr(self, name, None)
