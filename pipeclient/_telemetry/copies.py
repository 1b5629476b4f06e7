"""`replace` for the records' frozen, slotted dataclasses, several times faster than
`dataclasses.replace`.

The privacy step and the pricing make a changed copy of every record for every audience
(four or five per call, on the export worker), and `dataclasses.replace` costs about 17 us
a copy of a 40-field `CallRecord`: its generic loop over the fields and then the frozen
`__init__`, one `object.__setattr__` per field. Here each class gets, on first use, a
function written for its fields that sets the slots directly (as `dataclasses` itself
writes `__init__`), about 5 us a copy. The records have no `__post_init__` and no
`init=False` field (a test checks): a copy is exactly what `dataclasses.replace` makes.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["replace"]

T = TypeVar("T")

_COPIERS: dict[type, Callable[[Any, dict[str, Any]], Any]] = {}
_lock = threading.Lock()


def replace(record: T, /, **changes: Any) -> T:
    """A copy of `record` with `changes`, as `dataclasses.replace(record, **changes)`."""
    copier = _COPIERS.get(type(record)) or _copier(type(record))
    result: T = copier(record, changes)
    return result


def _copier(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    names = [f.name for f in dataclasses.fields(cls)]
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        copier: Callable[[Any, dict[str, Any]], Any] = _generic
    else:
        known = frozenset(names)
        setters = {f"_set_{i}": cls.__dict__[name].__set__ for i, name in enumerate(names)}
        lines = [
            "def copy(record, changes):",
            "    if changes and not known.issuperset(changes):",
            "        return generic(record, changes)",  # raises dataclasses' TypeError
            "    out = new(cls)",
            "    get = changes.get",
        ]
        lines += [
            f"    _set_{i}(out, get({name!r}, record.{name}))" for i, name in enumerate(names)
        ]
        lines.append("    return out")
        scope: dict[str, Any] = {
            "new": object.__new__,
            "cls": cls,
            "known": known,
            "generic": _generic,
            **setters,
        }
        exec("\n".join(lines), scope)
        copier = scope["copy"]
    with _lock:
        _COPIERS[cls] = copier
    return copier


def _generic(record: Any, changes: dict[str, Any]) -> Any:
    return dataclasses.replace(record, **changes)
