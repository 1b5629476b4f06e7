"""`${VAR}` and `${VAR:-default}` in configuration values, from the environment.

`$${` writes a literal `${`. Resolved only in the tables that are on: an unresolved
placeholder in a table that is off is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["UnresolvedPlaceholder", "resolve"]

_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}$]*))?\}")
_ESCAPE = "\x00pipeclient-dollar-brace\x00"


class UnresolvedPlaceholder(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def resolve_text(text: str, env: Mapping[str, str]) -> str:
    """`text` with its placeholders replaced; UnresolvedPlaceholder says why not."""
    if "${" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return _ESCAPE
        variable, default = match.group(1), match.group(2)
        found = env.get(variable)
        if found:
            return found
        if default is not None:
            return default
        state = "is set but empty" if variable in env else "is not set in the environment"
        raise UnresolvedPlaceholder(
            f"${{{variable}}} {state}; set {variable}, give a default with "
            f"${{{variable}:-value}}, or write the value itself"
        )

    resolved = _PLACEHOLDER.sub(substitute, text)
    if "${" in resolved:
        raise UnresolvedPlaceholder(
            "has a placeholder that is malformed or nested; write ${VAR} or ${VAR:-default} "
            "(a variable name is letters, digits and _; $${ writes a literal ${)"
        )
    return resolved.replace(_ESCAPE, "${")


def resolve(
    value: Any,
    env: Mapping[str, str],
    on_error: Callable[[str, tuple[str, ...]], Any],
    path: tuple[str, ...] = (),
) -> Any:
    """`value` (a string, or lists and dicts of them, keys included) resolved."""
    if isinstance(value, str):
        try:
            return resolve_text(value, env)
        except UnresolvedPlaceholder as problem:
            reason = problem.reason
        return on_error(reason, path)
    if isinstance(value, list):
        return [resolve(item, env, on_error, path) for item in value]
    if isinstance(value, dict):
        return {
            resolve(key, env, on_error, path): resolve(item, env, on_error, (*path, str(key)))
            for key, item in value.items()
        }
    return value
