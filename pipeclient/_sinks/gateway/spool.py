"""A bounded on-disk queue of gateway events, so billing metadata outlives an outage.

One JSON line per event (the sink hands them over as JSON text) in `events.jsonl`, guarded
by an exclusive lock on `lock` so that several threads and processes can share a spool.
Full: the oldest events are dropped and counted. Events are metadata only (the gateway
schema), never a key.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: threads of one process only
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool"]


class Spool:
    def __init__(self, directory: Path, *, max_events: int = 10_000) -> None:
        self.directory = directory
        self.max_events = max_events
        self.dropped = 0
        self._file = directory / "events.jsonl"
        self._lock_file = directory / "lock"
        self._thread_lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: the parent's lock may have been held by a thread that does
        not exist here."""
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                yield
            finally:
                os.close(handle)  # closing releases the lock

    def _read(self) -> list[str]:
        try:
            text = self._file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def _write(self, lines: list[str]) -> None:
        temporary = self._file.with_name(f".events.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w", encoding="utf-8") as handle:  # the owner's only, as the audit log
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._file)

    def add(self, events: Sequence[str], *, front: bool = False) -> None:
        """Keep these events (JSON text, one line each) for later (`front`: before the
        others, as events taken and not delivered); beyond `max_events`, the oldest go,
        counted."""
        if not events:
            return
        with self._locked():
            new = list(events)
            lines = new + self._read() if front else self._read() + new
            overflow = len(lines) - self.max_events
            if overflow > 0:
                self.dropped += overflow
                lines = lines[overflow:]
            self._write(lines)

    def take(self, limit: int) -> list[str]:
        """Remove and return up to `limit` of the oldest events, as JSON text (put them
        back with `add` if they cannot be delivered); a damaged line is left out."""
        if limit <= 0 or not self._maybe_filled():
            return []
        with self._locked():
            lines = self._read()
            if not lines:
                return []
            taken, rest = lines[:limit], lines[limit:]
            self._write(rest)
        events = [line for line in taken if _is_event(line)]
        self.dropped += len(taken) - len(events)  # damaged lines: counted, never sent
        return events

    def _maybe_filled(self) -> bool:
        """A cheap look without the lock: the common case is an empty spool."""
        try:
            return self._file.stat().st_size > 0
        except FileNotFoundError:
            return False

    def __len__(self) -> int:
        with self._locked():
            return len(self._read())


def _is_event(line: str) -> bool:
    """A JSON object, in JSON every parser takes (no NaN or Infinity: the line goes into
    the request as it is)."""
    try:
        return isinstance(json.loads(line, parse_constant=_refuse), dict)
    except ValueError:
        return False


def _refuse(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")
