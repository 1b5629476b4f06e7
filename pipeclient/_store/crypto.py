"""The store's cryptography: the key-encryption key, per-user data keys, sealed records.

AES-256-GCM from `cryptography` throughout, with a fresh random 96-bit nonce for every
seal (nonce and tag are stored with the ciphertext). A record is sealed under its user's
data key with the format version, user id, request id and time bound as associated
data, so a ciphertext moved to another row (another user, another request) fails to
open. A data key is stored only wrapped (sealed) under the key-encryption key, bound to
its user id; rotating the KEK re-wraps data keys and never touches records.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._config.keys import KEY_BYTES, decode_key

__all__ = [
    "KEY_BYTES",
    "InvalidTag",
    "KeyEncryptionKey",
    "decode_key",
    "new_data_key",
    "new_key_text",
    "open_record",
    "seal_record",
]

_NONCE_BYTES = 12
_VERSION = 1
_WRAP_CONTEXT = b"pipeclient.store.data-key.v1\x00"
_ID_CONTEXT = b"pipeclient.store.kek-id.v1"


def new_key_text() -> str:
    """A fresh key as base64, for a new store or a rotation."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


class KeyEncryptionKey:
    """The KEK: wraps and unwraps data keys. `key_id` names it without revealing it (an
    HMAC of a constant): the store records it, and a different key is refused at once."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a key-encryption key is {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self.key_id = hmac.new(key, _ID_CONTEXT, hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(id={self.key_id})"

    def wrap(self, data_key: bytes, user_id: str) -> bytes:
        return _seal(self._aead, data_key, _WRAP_CONTEXT + user_id.encode("utf-8"))

    def unwrap(self, wrapped: bytes, user_id: str) -> bytes:
        """The data key; InvalidTag if the wrapped key was altered or belongs to another user."""
        return _open(self._aead, wrapped, _WRAP_CONTEXT + user_id.encode("utf-8"))


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _bound(user_id: str, request_id: str, created_at: float) -> bytes:
    """The associated data of a record: unambiguous (JSON), so no two rows share it."""
    return json.dumps([_VERSION, user_id, request_id, created_at]).encode("utf-8")


def seal_record(
    aead: AESGCM, plaintext: bytes, *, user_id: str, request_id: str, created_at: float
) -> bytes:
    return _seal(aead, plaintext, _bound(user_id, request_id, created_at))


def open_record(
    aead: AESGCM, sealed: bytes, *, user_id: str, request_id: str, created_at: float
) -> bytes:
    """The plaintext; InvalidTag if anything in the row was altered."""
    return _open(aead, sealed, _bound(user_id, request_id, created_at))


def _seal(aead: AESGCM, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + aead.encrypt(nonce, plaintext, associated)


def _open(aead: AESGCM, sealed: bytes, associated: bytes) -> bytes:
    if len(sealed) < _NONCE_BYTES + 16:
        raise InvalidTag
    return aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated)
