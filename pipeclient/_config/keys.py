"""Keys written in the configuration: 32 random bytes as base64."""

from __future__ import annotations

import base64
import binascii

__all__ = ["KEY_BYTES", "NEW_KEY_COMMAND", "decode_key"]

KEY_BYTES = 32
NEW_KEY_COMMAND = 'python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'


def decode_key(text: str) -> bytes:
    """The 32 bytes; ValueError says what is wrong with the text, never quoting it."""
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"is empty; make a key with: {NEW_KEY_COMMAND}")
    altchars = b"-_" if ("-" in stripped or "_" in stripped) else None
    try:
        key = base64.b64decode(stripped, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"is not base64; make a key with: {NEW_KEY_COMMAND}") from None
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"is {len(key)} bytes once decoded, not {KEY_BYTES}; make a key with: {NEW_KEY_COMMAND}"
        )
    return key
