"""RFC 8785 (JCS) canonical JSON, for exactly the values an audit line holds.

An audit line is an object of strings, integers, floats, null and objects of those; this
writes them as RFC 8785 does: keys sorted by their UTF-16 code units, strings with only
the escapes JSON requires, integers within IEEE 754 double precision, floats as ECMAScript
prints them (`Number.prototype.toString`). Any other value (a bool, a list, bytes...) is
a `CanonicalJSONError` naming where it was: no line holds one, so one reaching here is a
bug, not a value to guess a form for. A property test holds the output byte-identical to
the `rfc8785` package's over this domain.
"""

from __future__ import annotations

import json
import math

__all__ = ["CanonicalJSONError", "canonical_json"]

# JSON numbers are doubles: larger integers would not survive a round trip.
_INT_LIMIT = 2**53 - 1
_escaped = json.JSONEncoder(ensure_ascii=False).encode  # the escapes JCS uses, no others


class CanonicalJSONError(ValueError):
    """A value that has no RFC 8785 form here (unsupported type, out of range, not UTF-8)."""


def canonical_json(value: object) -> bytes:
    """The RFC 8785 canonical JSON of `value`, as UTF-8 bytes."""
    parts: list[str] = []
    _write(value, parts, "the line")
    return "".join(parts).encode("utf-8")


def _write(value: object, parts: list[str], where: str) -> None:
    if value is None:
        parts.append("null")
    elif isinstance(value, str):
        parts.append(_string(value, where))
    elif isinstance(value, bool):  # before int: a bool is an int to Python
        raise _unsupported(value, where)
    elif isinstance(value, int):
        if not -_INT_LIMIT <= value <= _INT_LIMIT:
            raise CanonicalJSONError(
                f"{where}: the integer {value} is beyond 2**53 - 1, which JSON cannot carry"
            )
        parts.append(str(int(value)))
    elif isinstance(value, float):
        parts.append(_number(value, where))
    elif isinstance(value, dict):
        _object(value, parts, where)
    else:
        raise _unsupported(value, where)


def _object(value: dict[object, object], parts: list[str], where: str) -> None:
    keys = list(value)
    for key in keys:
        if not isinstance(key, str):
            raise CanonicalJSONError(f"{where}: the key {key!r} is not a string")
        _string(key, where)  # refuses a key that is not UTF-8 before sorting on it
    parts.append("{")
    for index, key in enumerate(sorted(keys, key=_utf16)):  # type: ignore[arg-type]
        if index:
            parts.append(",")
        parts.append(_escaped(key))
        parts.append(":")
        _write(value[key], parts, f"{where}[{key!r}]")
    parts.append("}")


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be")


def _string(value: str, where: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJSONError(
            f"{where}: a string holds a lone surrogate, which UTF-8 cannot carry"
        ) from None
    return _escaped(value)


def _number(value: float, where: str) -> str:
    """`value` as ECMAScript's Number::toString prints it (the shortest digits that read
    back as the same double, which Python's repr also gives)."""
    if not math.isfinite(value):
        raise CanonicalJSONError(f"{where}: {value} is not a JSON number")
    if value == 0:
        return "0"  # -0 too
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    # value = 0.<digits> * 10**point, once the digits' zeros on both sides are gone
    point = int(exponent or 0) + len(whole)
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    digits = significant.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    power = point - 1
    head = digits[0] + ("." + digits[1:] if count > 1 else "")
    return f"{sign}{head}e{'+' if power >= 0 else '-'}{abs(power)}"


def _unsupported(value: object, where: str) -> CanonicalJSONError:
    return CanonicalJSONError(
        f"{where}: a {type(value).__name__} has no place in an audit line, which holds "
        "strings, integers, floats, null and objects of them"
    )
