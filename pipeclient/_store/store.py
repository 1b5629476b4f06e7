"""The content store: sealed records per user, on a `Storage`, under one key-encryption key.

Each user has a random data key, kept only wrapped by the KEK; each record is sealed
under its user's data key (`crypto.py`). Deleting a user destroys the data key and the
rows, then scrubs the files (crypto-shredding). Rotating the KEK re-wraps the data keys
in one transaction; records are not touched. The store knows bytes and keys, not calls:
what a record holds is the caller's (the store sink's) business.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._exceptions import ConfigError, PipeclientError
from .crypto import InvalidTag, KeyEncryptionKey, new_data_key, open_record, seal_record
from .sqlite import SqliteStorage
from .storage import Storage, StoredRecord, Writer

__all__ = [
    "ContentStore",
    "DamagedStoreError",
    "Deletion",
    "NewRecord",
    "OpenedRecord",
    "StoreKeyError",
]

_KEK_ID = "kek_id"


class StoreKeyError(ConfigError):
    """The key given is not the store's key-encryption key."""


class DamagedStoreError(PipeclientError):
    """Something in the store was altered, so an operation on the whole store stopped."""


class NewRecord(NamedTuple):
    user_id: str
    request_id: str
    created_at: float
    expires_at: float | None
    plaintext: bytes


class OpenedRecord(NamedTuple):
    request_id: str
    user_id: str
    created_at: float
    expires_at: float | None
    plaintext: bytes | None  # None: damaged
    damage: str | None = None  # why it cannot be opened


class Deletion(NamedTuple):
    records: int
    key: bool  # the user had a data key, now destroyed
    scrubbed: bool  # the deleted bytes are gone from every file


class ContentStore:
    """`key_source` says where the KEK came from ("environment variable
    PIPECLIENT_STORE_KEY"), for the error a wrong key gets."""

    def __init__(
        self,
        storage: Storage,
        kek: KeyEncryptionKey,
        *,
        key_source: str,
        create: bool = True,
    ) -> None:
        self.storage = storage
        self._kek = kek
        self._key_source = key_source
        # data keys in use: user id -> (wrapped key it came from, its cipher)
        self._ciphers: dict[str, tuple[bytes, AESGCM]] = {}
        with storage.writing() as rows:
            found = rows.meta(_KEK_ID)
            if found is None and create:
                rows.set_meta(_KEK_ID, kek.key_id)
            elif found != kek.key_id:
                raise self._wrong_key(found)

    @classmethod
    def open(
        cls, path: str, kek: KeyEncryptionKey, *, key_source: str, path_source: str | None = None
    ) -> ContentStore:
        return cls(SqliteStorage(path, source=path_source), kek, key_source=key_source)

    def __repr__(self) -> str:
        return f"ContentStore({self.storage!r})"

    def _wrong_key(self, found: str | None) -> StoreKeyError:
        where = self.storage.location
        if found is None:
            reason = f"{where} holds no key id: it is not a content store made by pipeclient"
        else:
            reason = (
                f"is not the key {where} was written with (the store's key id is "
                f"{found[:8]}…, this key's is {self._kek.key_id[:8]}…); set the key the store "
                "uses, or, after `pipeclient store rotate-key`, the new one"
            )
        return StoreKeyError(reason, source=self._key_source, key="store.key")

    # -- writing -------------------------------------------------------------------------

    def put(self, records: Sequence[NewRecord]) -> None:
        """Seal and add the records in one transaction; data keys are made as needed."""
        if not records:
            return
        with self.storage.writing() as rows:
            found = rows.meta(_KEK_ID)
            if found != self._kek.key_id:  # rotated by another process since we opened
                raise self._wrong_key(found)
            sealed = []
            for record in records:
                cipher = self._cipher(rows, record.user_id)
                sealed.append(
                    StoredRecord(
                        record.request_id,
                        record.user_id,
                        record.created_at,
                        record.expires_at,
                        seal_record(
                            cipher,
                            record.plaintext,
                            user_id=record.user_id,
                            request_id=record.request_id,
                            created_at=record.created_at,
                        ),
                    )
                )
            rows.add_records(sealed)

    def _cipher(self, rows: Writer, user_id: str) -> AESGCM:
        wrapped = rows.data_key(user_id)
        if wrapped is None:
            data_key = new_data_key()
            wrapped = self._kek.wrap(data_key, user_id)
            rows.put_data_key(user_id, wrapped)
            cipher = AESGCM(data_key)
        else:
            cached = self._ciphers.get(user_id)
            if cached is not None and cached[0] == wrapped:
                return cached[1]
            cipher = AESGCM(self._kek.unwrap(wrapped, user_id))
        self._ciphers[user_id] = (wrapped, cipher)
        return cipher

    # -- reading -------------------------------------------------------------------------

    def records(
        self, *, user_id: str | None = None, request_id: str | None = None
    ) -> list[OpenedRecord]:
        """The live records of a user or a request, opened; damaged ones say why."""
        now = time.time()
        opened: list[OpenedRecord] = []
        with self.storage.reading() as rows:
            stored = list(rows.records(user_id=user_id, request_id=request_id, now=now))
            wrapped = {user: rows.data_key(user) for user in {row.user_id for row in stored}}
        ciphers: dict[str, AESGCM | str] = {}
        for user, key in wrapped.items():
            if key is None:
                ciphers[user] = "its user's data key is missing"
                continue
            try:
                ciphers[user] = AESGCM(self._kek.unwrap(key, user))
            except InvalidTag:
                ciphers[user] = "its user's data key is damaged (altered in the database)"
        for row in stored:
            cipher = ciphers[row.user_id]
            if isinstance(cipher, str):
                opened.append(OpenedRecord(*row[:4], None, cipher))
                continue
            try:
                plaintext = open_record(
                    cipher,
                    row.sealed,
                    user_id=row.user_id,
                    request_id=row.request_id,
                    created_at=row.created_at,
                )
            except InvalidTag:
                damage = "its ciphertext or its clear fields were altered: it does not authenticate"
                opened.append(OpenedRecord(*row[:4], None, damage))
                continue
            opened.append(OpenedRecord(*row[:4], plaintext))
        return opened

    # -- deleting and rotating -----------------------------------------------------------

    def delete_user(self, user_id: str) -> Deletion:
        """Destroy the user's data key and records (crypto-shredding), then scrub."""
        with self.storage.writing() as rows:
            count, had_key = rows.delete_user(user_id)
        self._ciphers.pop(user_id, None)
        return Deletion(count, had_key, self.storage.scrub())

    def prune(self, *, now: float | None = None, retention_days: float = 0) -> int:
        """Delete expired ephemeral records and, with `retention_days`, older records."""
        now = time.time() if now is None else now
        before = now - retention_days * 86400.0 if retention_days > 0 else None
        with self.storage.writing() as rows:
            gone = rows.delete_expired(now, before)
        return gone

    def rotate(self, new: KeyEncryptionKey) -> int:
        """Re-wrap every data key under `new`, in one transaction; returns how many. A
        damaged data key stops the rotation before anything changes."""
        with self.storage.writing() as rows:
            found = rows.meta(_KEK_ID)
            if found != self._kek.key_id:
                raise self._wrong_key(found)
            rewrapped = []
            for user, wrapped in rows.data_keys():
                try:
                    data_key = self._kek.unwrap(wrapped, user)
                except InvalidTag:
                    raise DamagedStoreError(
                        f"{self.storage.location}: the data key of one user is damaged "
                        "(altered in the database), so no key was re-wrapped; nothing changed"
                    ) from None
                rewrapped.append((user, new.wrap(data_key, user)))
            for user, wrapped in rewrapped:
                rows.put_data_key(user, wrapped)
            rows.set_meta(_KEK_ID, new.key_id)
        self._kek = new
        self._ciphers.clear()
        return len(rewrapped)

    def close(self) -> None:
        self.storage.close()

    def after_fork(self) -> None:
        self._ciphers = {}
        self.storage.after_fork()
