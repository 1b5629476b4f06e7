"""The audit line's canonical JSON is RFC 8785's, byte for byte: the `rfc8785` package
(installed with the test extra only) is the oracle over every value an audit line can hold."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeclient._audit.canonical import CanonicalJSONError, canonical_json

# Strings of any code point, lone surrogates included (neither form takes them).
_strings = st.text(st.characters(exclude_categories=())) | st.text(
    st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010, exclude_categories=())
)
_scalars = (
    st.none()
    | _strings
    | st.integers()  # beyond 2**53 too: both refuse those
    | st.integers(-(2**53) - 2, 2**53 + 2)
    | st.floats()  # nan and infinities too: both refuse those
    | st.floats(allow_nan=False, allow_infinity=False, width=64)
)
_values = st.recursive(
    _scalars, lambda children: st.dictionaries(_strings, children, max_size=6), max_leaves=24
)


def _oracle(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except ValueError:  # CanonicalizationError, or a key's UnicodeEncodeError
        return None


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_the_same_bytes_as_rfc8785_or_both_refuse(value: Any) -> None:
    expected = _oracle(value)
    if expected is None:
        with pytest.raises(CanonicalJSONError):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


@settings(max_examples=1500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_is_printed_as_rfc8785_prints_it(number: float) -> None:
    assert canonical_json(number) == rfc8785.dumps(number)


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.0, b"0"),
        (-0.0, b"0"),
        (1e-6, b"0.000001"),
        (1e-7, b"1e-7"),
        (1.5e-7, b"1.5e-7"),
        (1e20, b"100000000000000000000"),
        (1e21, b"1e+21"),
        (1.5e22, b"1.5e+22"),
        (0.1 + 0.2, b"0.30000000000000004"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e+308"),
        (-123.0, b"-123"),
        (333.333, b"333.333"),
    ],
)
def test_floats_at_the_edges_of_each_form(number: float, text: bytes) -> None:
    assert canonical_json(number) == text == rfc8785.dumps(number)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"timings": {"ttft_ms": True}}, "the line['timings']['ttft_ms']: a bool"),
        ({"error": [1]}, "the line['error']: a list"),
        ({"model": b"m"}, "the line['model']: a bytes"),
        ({"total_ms": decimal.Decimal("1.5")}, "the line['total_ms']: a Decimal"),
        ({1: "x"}, "the line: the key 1 is not a string"),
        ({"seq": 2**53}, "the line['seq']: the integer 9007199254740992 is beyond"),
        ({"total_ms": float("nan")}, "the line['total_ms']: nan is not a JSON number"),
        ({"model": "\ud800"}, "the line['model']: a string holds a lone surrogate"),
    ],
)
def test_a_value_no_audit_line_holds_is_a_clear_error(value: Any, where: str) -> None:
    with pytest.raises(CanonicalJSONError) as raised:
        canonical_json(value)
    assert str(raised.value).startswith(where), raised.value
