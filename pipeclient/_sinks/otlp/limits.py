"""The OpenTelemetry span limits (`OTEL_*_LIMIT`), read as the SDK reads them, and applied
as its spans apply them: at most so many attributes (the latest kept, the rest counted as
dropped), text values cut to a length, at most so many events.

Read when the sink is built: a limit that is not a non-negative integer (or `unset`) is a
ConfigError naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..._exceptions import ConfigError

__all__ = ["SpanLimits"]

_DEFAULT_COUNT = 128


def _limit(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    if name not in environ:
        return default
    text = environ[name].strip().lower()
    if text == "unset":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(
            f"{name}={environ[name]!r} is not a limit: set it to a non-negative integer "
            f"or 'unset', or remove it",
            source="environment",
        )
    return value


@dataclass(frozen=True)
class SpanLimits:
    max_span_attributes: int | None = _DEFAULT_COUNT
    max_span_attribute_length: int | None = None
    max_events: int | None = _DEFAULT_COUNT
    max_event_attributes: int | None = _DEFAULT_COUNT
    max_attribute_length: int | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SpanLimits:
        env = os.environ if environ is None else environ
        shared = _limit(env, "OTEL_ATTRIBUTE_COUNT_LIMIT", None)
        count = _DEFAULT_COUNT if shared is None else shared
        length = _limit(env, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", None)
        return cls(
            max_span_attributes=_limit(env, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", count),
            max_span_attribute_length=_limit(env, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", length),
            max_events=_limit(env, "OTEL_SPAN_EVENT_COUNT_LIMIT", _DEFAULT_COUNT),
            max_event_attributes=_limit(env, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", count),
            max_attribute_length=length,
        )

    def span_attributes(self, attributes: Mapping[str, Any]) -> tuple[Mapping[str, Any], int]:
        """The attributes kept, and how many were dropped."""
        return _bounded(attributes, self.max_span_attributes, self.max_span_attribute_length)

    def event_attributes(self, attributes: Mapping[str, Any]) -> tuple[Mapping[str, Any], int]:
        return _bounded(attributes, self.max_event_attributes, self.max_attribute_length)


def _bounded(
    attributes: Mapping[str, Any], count: int | None, length: int | None
) -> tuple[Mapping[str, Any], int]:
    dropped = 0
    if count is not None and len(attributes) > count:
        dropped = len(attributes) - count
        items = list(attributes.items())  # the latest set win, as the SDK's
        attributes = dict(items[dropped:]) if count else {}
    if length is not None:
        attributes = {key: _cut(value, length) for key, value in attributes.items()}
    return attributes, dropped


def _cut(value: Any, length: int) -> Any:
    if isinstance(value, str):
        return value[:length]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:length])
    if isinstance(value, (list, tuple)):
        return [_cut(item, length) for item in value]
    return value
