"""URL checks shared by backends and telemetry endpoints. Values are never echoed: a key
pasted into the wrong field must not end up in an error message."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["check_url"]


def check_url(value: str) -> None:
    """An http(s) URL with a host, and nothing a path could not be appended to."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            "is not an http(s) URL: it must start with 'http://' or 'https://', "
            "like 'https://api.openai.com/v1'"
        )
    if not parts.hostname or any(char.isspace() for char in text):
        raise ValueError("is not an http(s) URL with a host, like 'https://api.openai.com/v1'")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials; pass keys in their own settings")
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError(
            "must not have a query string or fragment: paths are appended to it "
            "(pass keys in their own settings, other parameters as headers)"
        )
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise ValueError("has an invalid port") from None
