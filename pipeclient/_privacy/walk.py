"""Walking content: every string of a message structure, roles and part types excepted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["map_strings", "strings_of"]

# Values of "role" and "type" that are the message's structure, not its content: no
# transform (nor the hook) may change them.
_STRUCTURE_WORDS = frozenset(
    {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
        "text",
        "image_url",
        "input_audio",
        "file",
        "refusal",
        "json_object",
        "json_schema",
        "object",
        "array",
        "string",
        "number",
        "integer",
        "boolean",
        "null",
    }
)
_STRUCTURE_KEYS = ("role", "type")


def map_strings(value: Any, transform: Callable[[str], str]) -> Any:
    """`value` with `transform` applied to every string in it, keys excepted (and roles
    and part types, which are structure).

    Tool-call arguments are JSON inside a string: they are transformed inside, so they
    stay valid JSON (and unchanged, byte for byte, when nothing inside changed).
    """
    if isinstance(value, str):
        return transform(value)
    if isinstance(value, list | tuple):
        return [map_strings(item, transform) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "arguments" and isinstance(item, str):
                out[key] = _map_json_text(item, transform)
            elif key in _STRUCTURE_KEYS and item in _STRUCTURE_WORDS:
                out[key] = item
            else:
                out[key] = map_strings(item, transform)
        return out
    return value


def _map_json_text(text: str, transform: Callable[[str], str]) -> str:
    try:
        parsed = json.loads(text)
    except ValueError:
        return transform(text)
    mapped = map_strings(parsed, transform)
    if mapped == parsed:
        return text
    return json.dumps(mapped, ensure_ascii=False)


def strings_of(value: Any) -> Iterator[str]:
    """Every string in a structure, keys included, and tool-call arguments read from
    inside their JSON (where "\\u0040" is "@"): what a scan for sensitive data reads."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_of(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                yield key
            if key == "arguments" and isinstance(item, str):
                with contextlib.suppress(ValueError):
                    item = json.loads(item)
            yield from strings_of(item)
