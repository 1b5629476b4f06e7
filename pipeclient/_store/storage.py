"""The storage under the content store: rows of bytes, no cryptography.

An interface small enough that a server database can sit behind it later: a few reads,
a few writes, each write inside one exclusive transaction (`writing()`), and `scrub()`,
which makes the bytes of deleted rows unrecoverable from what the storage keeps on disk.
SQLite (`sqlite.py`) is the embedded implementation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import NamedTuple

__all__ = ["Reader", "Storage", "StoredRecord", "Writer"]


class StoredRecord(NamedTuple):
    """One call's row: what finds it in clear, the rest sealed."""

    request_id: str
    user_id: str
    created_at: float  # seconds since the epoch
    expires_at: float | None  # ephemeral records: when they may be deleted
    sealed: bytes


class Reader(ABC):
    @abstractmethod
    def meta(self, name: str) -> str | None:
        """A value the store keeps about itself (the key-encryption key's id)."""

    @abstractmethod
    def data_key(self, user_id: str) -> bytes | None:
        """The user's wrapped data key, if the user has one."""

    @abstractmethod
    def data_keys(self) -> list[tuple[str, bytes]]:
        """Every (user id, wrapped data key)."""

    @abstractmethod
    def records(
        self, *, user_id: str | None = None, request_id: str | None = None, now: float
    ) -> Iterator[StoredRecord]:
        """The records of a user or a request, oldest first, those expired by `now` left out."""


class Writer(Reader):
    @abstractmethod
    def set_meta(self, name: str, value: str) -> None: ...

    @abstractmethod
    def put_data_key(self, user_id: str, wrapped: bytes) -> None:
        """Set (or replace, on rotation) the user's wrapped data key."""

    @abstractmethod
    def add_records(self, records: Sequence[StoredRecord]) -> None: ...

    @abstractmethod
    def delete_user(self, user_id: str) -> tuple[int, bool]:
        """Delete the user's records and data key: (records deleted, whether a key was)."""

    @abstractmethod
    def delete_expired(self, now: float, created_before: float | None) -> int:
        """Delete ephemeral records expired by `now`, and (when given) every record made
        before `created_before`. Returns how many went."""


class Storage(ABC):
    #: where the storage is, for messages ("/srv/app/.pipelex/store.db")
    location: str

    @abstractmethod
    def reading(self) -> AbstractContextManager[Reader]:
        """A consistent snapshot for reads."""

    @abstractmethod
    def writing(self) -> AbstractContextManager[Writer]:
        """One exclusive transaction, committed when the block ends, rolled back on error."""

    @abstractmethod
    def scrub(self) -> bool:
        """Make the bytes of deleted rows unrecoverable from the storage's files. False:
        not now (another process holds what must be rewritten); the caller may retry."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def after_fork(self) -> None:
        """In a forked child: abandon the parent's connection (never close it)."""
