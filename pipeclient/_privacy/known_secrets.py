"""The client's own secrets (API keys, header values): one list, one way to remove them.

Used for content before any telemetry destination (whatever `[privacy] pii` says) and for
provider text before it is shown in an exception message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

__all__ = ["KNOWN_SECRET", "MIN_KNOWN_SECRET_LENGTH", "KnownSecrets", "placeholder"]

KNOWN_SECRET = "api_key"  # the counter (and placeholder) of the client's own secrets
# Shorter values ("none", "test") are not real keys, and replacing them would mangle text.
MIN_KNOWN_SECRET_LENGTH = 8
# Provider text quoted in an exception message stays short.
MAX_PROVIDER_TEXT = 300


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


class KnownSecrets:
    """Values never to be shown or sent: each value, and the token of a "Bearer <token>"."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        known: set[str] = set()
        for value in values:
            if isinstance(value, str):
                known.update((value.strip(), *value.split()[1:2]))
        kept = {value for value in known if len(value) >= MIN_KNOWN_SECRET_LENGTH}
        self._values = tuple(sorted(kept, key=len, reverse=True))  # longest first

    def __bool__(self) -> bool:
        return bool(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __add__(self, other: Iterable[str]) -> KnownSecrets:
        return KnownSecrets((*self._values, *other))

    def __repr__(self) -> str:  # never the values
        return f"KnownSecrets({len(self._values)} values)"

    def replace(self, text: str, counts: MutableMapping[str, int] | None = None) -> str:
        """`text` with every known secret replaced by a placeholder (counted in `counts`)."""
        for secret in self._values:
            if secret in text:
                if counts is not None:
                    counts[KNOWN_SECRET] = counts.get(KNOWN_SECRET, 0) + text.count(secret)
                text = text.replace(secret, placeholder(KNOWN_SECRET))
        return text

    def scrub(self, text: str) -> str:
        """Provider text fit for an exception message: secrets removed, length capped."""
        text = self.replace(text)
        if len(text) > MAX_PROVIDER_TEXT:
            text = text[:MAX_PROVIDER_TEXT] + "…"
        return text
