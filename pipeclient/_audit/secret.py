"""The per-installation secret that keys the audit log's user-id fingerprints.

A fingerprint is HMAC-SHA-256(secret, API key): stable on one installation (the same key
gives the same user id in every line), unlinkable across installations (the same key gives
another id elsewhere), and not testable against a guessed key without the secret. The
secret is 32 random bytes in `audit.secret` beside the log (base64, one line, mode 0600),
created by the first writer; concurrent first writers agree on one file (a hard link
that fails if the name exists), so no two ids are ever made for one key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from pathlib import Path

from .._exceptions import ConfigError

__all__ = ["SECRET_NAME", "fingerprint", "installation_secret"]

SECRET_NAME = "audit.secret"
_SIZE = 32


def fingerprint(api_key: str, secret: bytes) -> str:
    """A stable, non-reversible user id for an API key: never the key itself."""
    digest = hmac.new(secret, api_key.encode("utf-8"), hashlib.sha256).hexdigest()
    return "sha256:" + digest[:12]


def installation_secret(directory: Path, *, create: bool, source: str | None = None) -> bytes:
    """The secret beside the log in `directory`, created (with the directory) if `create`;
    without `create` and without the file, a secret of this process only."""
    path = directory / SECRET_NAME
    found = _read(path, source)
    if found is not None:
        return found
    if not create:
        return os.urandom(_SIZE)
    temporary = directory / f".{SECRET_NAME}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, base64.b64encode(os.urandom(_SIZE)) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another writer made it first: use theirs
            os.link(temporary, path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the audit log's secret {str(path)!r} "
            f"({exc.strerror or type(exc).__name__}); set [audit] path to a writable directory",
            source=source,
            key="audit.path",
        ) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    found = _read(path, source)
    if found is None:  # pragma: no cover - deleted between link and read
        raise ConfigError(f"the audit secret {str(path)!r} vanished", source=source)
    return found


def _read(path: Path, source: str | None) -> bytes | None:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the audit log's secret {str(path)!r} ({exc.strerror or exc})",
            source=source,
            key="audit.path",
        ) from None
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) != _SIZE:
        raise ConfigError(
            f"{str(path)!r} is not a pipeclient audit secret (the base64 of 32 bytes); restore "
            "it, or delete it to make a new one (user ids written from then on will differ)",
            source=source,
            key="audit.path",
        )
    return secret
