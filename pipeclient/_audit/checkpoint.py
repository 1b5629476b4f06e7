"""Checkpoints: a log's size and tree head, as a C2SP signed note (tlog-checkpoint).

The note's text is three lines: the origin (which log), the tree size in decimal, the
base64 tree head. After a blank line come signature lines `— <name> <base64(key id ||
Ed25519 signature)>`, the key id being the first 4 bytes of SHA-256(name || 0x0A || 0x01 ||
public key). A checkpoint without a signature line is unsigned: it says what the tree was,
not who vouches for it. Keys are raw 32-byte Ed25519 keys in base64; a public key may also
be given as a note verifier key, `<name>+<key id hex>+<base64(0x01 || public key)>`.

Reading, writing and comparing notes is the standard library's; only signing and
checking a signature need `cryptography` (the `crypto` extra), imported then.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._config.extras import require_crypto

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "PublicKey",
    "key_id",
    "parse_checkpoint",
    "parse_public_key",
    "parse_signing_key",
    "public_key_of",
    "sign_text",
]

_ED25519 = b"\x01"  # the signature type of Ed25519 in signed notes
_DASH = "\u2014 "  # an em dash and a space open every signature line
_NAME = re.compile(r"[^\s+]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
KEYGEN = "python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or whose signature does not hold."""


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_DASH}{self.name} {blob}\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    signatures: tuple[NoteSignature, ...] = ()

    @property
    def body(self) -> str:
        """The signed text: origin, size and tree head, each line ended by a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()

    def text(self) -> str:
        return self.body + "\n" + "".join(sig.line() for sig in self.signatures)

    def signed(self, key: Ed25519PrivateKey, name: str | None = None) -> Checkpoint:
        """This checkpoint with one more signature, under `name` (default: the origin)."""
        signature = sign_text(self.body, key, name or self.origin)
        return Checkpoint(self.origin, self.size, self.root, (*self.signatures, signature))

    def check(self, public: PublicKey) -> NoteSignature:
        """The signature made by `public`; CheckpointError saying why there is none."""
        require_crypto("checking a checkpoint's Ed25519 signature (--public-key)")
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if not self.signatures:
            raise CheckpointError("the checkpoint is unsigned")
        names = [public.name] if public.name else [sig.name for sig in self.signatures]
        ours = [
            sig
            for sig in self.signatures
            if sig.name in names and sig.key_id == key_id(sig.name, public.raw)
        ]
        if not ours:
            signers = ", ".join(f"{s.name} (key id {s.key_id.hex()})" for s in self.signatures)
            raise CheckpointError(
                f"the checkpoint is not signed by this public key (key id "
                f"{key_id(names[0], public.raw).hex()}): it is signed by {signers}"
            )
        verifier = Ed25519PublicKey.from_public_bytes(public.raw)
        for sig in ours:
            try:
                verifier.verify(sig.signature, self.body.encode())
            except InvalidSignature:
                continue
            return sig
        raise CheckpointError(
            "the signature does not match the checkpoint's text: the checkpoint was changed "
            "after it was signed, or signed by another key with the same key id"
        )


@dataclass(frozen=True)
class PublicKey:
    raw: bytes  # 32 bytes
    name: str | None = None  # from a verifier key: the signature name it must carry

    @property
    def text(self) -> str:
        return base64.b64encode(self.raw).decode()

    def verifier_key(self, name: str) -> str:
        """The note verifier key `<name>+<key id>+<base64(0x01 || key)>`."""
        blob = base64.b64encode(_ED25519 + self.raw).decode()
        return f"{name}+{key_id(name, self.raw).hex()}+{blob}"


def sign_text(text: str, key: Ed25519PrivateKey, name: str) -> NoteSignature:
    """The signature line of a signed note over `text` (which ends with a newline)."""
    return NoteSignature(name, key_id(name, public_key_of(key)), key.sign(text.encode()))


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def public_key_of(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """A base64 raw 32-byte Ed25519 private key; ValueError (never echoing it) if not."""
    raw = _b64(text.strip())
    if raw is None or len(raw) != 32:
        raise ValueError(
            "is not an Ed25519 private key: expected the base64 of 32 raw bytes; "
            f"make one with {KEYGEN}"
        )
    require_crypto(
        "signing audit checkpoints with Ed25519",
        fix="or leave signing_key unset (checkpoints are then unsigned)",
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_public_key(text: str) -> PublicKey:
    """A base64 raw 32-byte Ed25519 public key, or a note verifier key."""
    text = text.strip()
    parts = text.split("+", 2)
    if len(parts) == 3 and _NAME.fullmatch(parts[0]) and re.fullmatch(r"[0-9a-f]{8}", parts[1]):
        blob = _b64(parts[2])
        if blob is None or len(blob) != 33 or blob[:1] != _ED25519:
            raise ValueError("is a verifier key whose key is not an Ed25519 public key")
        if key_id(parts[0], blob[1:]).hex() != parts[1]:
            raise ValueError("is a verifier key whose key id does not match its name and key")
        return PublicKey(blob[1:], parts[0])
    raw = _b64(text)
    if raw is None or len(raw) != 32:
        raise ValueError(
            "is not an Ed25519 public key: expected the base64 of 32 raw bytes (as "
            "`pipeclient audit checkpoint` prints it) or a verifier key NAME+ID+KEY"
        )
    return PublicKey(raw)


def parse_checkpoint(text: str) -> Checkpoint:
    """Read a checkpoint note; CheckpointError naming the line that is wrong."""
    end = text.find("\n\n")
    if end < 0 or not text.endswith("\n"):
        raise CheckpointError(
            "not a checkpoint: expected origin, size and tree head lines, a blank line, "
            "then signature lines"
        )
    body, signature_text = text[: end + 1], text[end + 2 :]
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError(
            f"not a checkpoint: {len(lines)} line(s) before the blank line, expected the "
            "origin, the tree size and the tree head"
        )
    if len(lines) > 3:
        raise CheckpointError(f"line 4 ({lines[3][:40]!r}): no extension lines are expected")
    origin, size_text, root_text = lines
    if not origin or origin != origin.strip():
        raise CheckpointError("line 1: the origin is empty or has surrounding spaces")
    if not _SIZE.fullmatch(size_text):
        raise CheckpointError(f"line 2 ({size_text[:40]!r}): the tree size is not a number")
    root = _b64(root_text)
    if root is None or len(root) != 32:
        raise CheckpointError("line 3: the tree head is not the base64 of 32 bytes")
    signatures = []
    for number, line in enumerate(signature_text.split("\n")[:-1], len(lines) + 2):
        parts = line.removeprefix(_DASH).split(" ")
        blob = _b64(parts[-1]) if len(parts) == 2 else None
        if not line.startswith(_DASH) or blob is None or len(blob) < 5:
            raise CheckpointError(
                f"line {number}: not a signature line ('\u2014 NAME BASE64(KEY ID || SIGNATURE)')"
            )
        signatures.append(NoteSignature(parts[0], blob[:4], blob[4:]))
    return Checkpoint(origin, int(size_text), root, tuple(signatures))


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
