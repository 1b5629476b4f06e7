"""Per-call attribution: whom a call was made for (`user_id=`, `session_id=`,
`properties=`).

Set on the client, on a `client.trace(...)` block and on a call; the narrower one wins,
and properties merge (the call's over the block's over the client's). Attribution is never
sent to the provider nor to the gateway: it is personal data, and the privacy step decides
what each destination sees of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Union

__all__ = ["Attribution", "PropertyValue", "check_attribution"]

PropertyValue = Union[str, int, float, bool]  # noqa: UP007 - a runtime alias on 3.10

_EMPTY: Mapping[str, PropertyValue] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Attribution:
    user_id: str | None = None
    session_id: str | None = None
    properties: Mapping[str, PropertyValue] = field(default_factory=lambda: _EMPTY)

    def over(self, base: Attribution | None) -> Attribution:
        """This attribution, with what it leaves unset taken from `base`."""
        if base is None or base is NO_ATTRIBUTION:
            return self
        if self is NO_ATTRIBUTION:
            return base
        properties = self.properties
        if base.properties:
            properties = MappingProxyType({**base.properties, **self.properties})
        return Attribution(
            self.user_id if self.user_id is not None else base.user_id,
            self.session_id if self.session_id is not None else base.session_id,
            properties,
        )


NO_ATTRIBUTION = Attribution()


def check_attribution(
    user_id: Any = None, session_id: Any = None, properties: Any = None, *, where: str
) -> Attribution:
    """The attribution given to `where` (e.g. "Client()"), or a `TypeError` saying what is
    wrong with it. An empty string is the same as not given."""
    user = _identifier(user_id, "user_id", where)
    session = _identifier(session_id, "session_id", where)
    checked = _properties(properties, where)
    if user is None and session is None and not checked:
        return NO_ATTRIBUTION
    return Attribution(user, session, checked)


def _identifier(value: Any, name: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name}= must be a string, not {type(value).__name__}")
    return value


def _properties(value: Any, where: str) -> Mapping[str, PropertyValue]:
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{where}: properties= must be a mapping of names to strings, numbers or "
            f"booleans, not {type(value).__name__}"
        )
    checked: dict[str, PropertyValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"{where}: properties= names must be non-empty strings, got {key!r} "
                f"({type(key).__name__})"
            )
        if not isinstance(item, (str, int, float)):  # bool is an int
            raise TypeError(
                f"{where}: properties[{key!r}] must be a string, a number or a boolean, not "
                f"{type(item).__name__} (flatten nested values into their own names)"
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise TypeError(f"{where}: properties[{key!r}] must be a finite number, not {item}")
        checked[key] = item
    return MappingProxyType(checked) if checked else _EMPTY
