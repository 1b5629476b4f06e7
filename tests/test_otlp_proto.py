"""pipeclient's own OTLP protobuf writer, read back with the official opentelemetry-proto
classes: every attribute value arrives as the value it was (property-based)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValueList

from pipeclient._sinks.otlp import proto

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(st.characters(exclude_categories=("Cs",)))  # encodable text (no surrogates)
SCALARS = st.one_of(TEXT, st.booleans(), INT64, st.floats(allow_nan=True))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def _read(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_read(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: _read(pair.value) for pair in value.kvlist_value.values}
    return getattr(value, kind)


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(want, list):
        return len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(TEXT, VALUES, max_size=8))
def test_attributes_read_back_as_written(values: dict[str, Any]) -> None:
    parsed = KeyValueList.FromString(proto.key_values(b"\x0a", values.items()))
    got = {pair.key: _read(pair.value) for pair in parsed.values}
    assert _same(got, values)


@given(
    st.one_of(
        st.integers(min_value=2**63, max_value=2**200),
        st.integers(min_value=-(2**200), max_value=-(2**63) - 1),
    )
)
def test_an_int_beyond_int64_goes_as_its_text(number: int) -> None:
    assert AnyValue.FromString(proto.any_value(number)).string_value == str(number)


def test_text_that_is_not_utf8_is_replaced_not_dropped() -> None:
    parsed = KeyValueList.FromString(proto.key_values(b"\x0a", [("k", "a\ud800b")]))
    assert parsed.values[0].value.string_value == "a?b"


def _afresh(tag: bytes, item: tuple[str, Any]) -> bytes:
    for table in proto._PAIRS.values():
        table.clear()
    return proto.key_values(tag, [item])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "gen_ai.x"]), SCALARS), max_size=10))
def test_cached_attributes_are_the_bytes_written_afresh(items: list[tuple[str, Any]]) -> None:
    for tag in (b"\x4a", b"\x1a"):
        cold = b"".join(_afresh(tag, item) for item in items)
        assert proto.key_values(tag, items) == cold  # the same bytes, from the cache
    parsed = KeyValueList.FromString(proto.key_values(b"\x0a", items))
    assert all(_same(_read(p.value), v) for p, (_, v) in zip(parsed.values, items, strict=True))


def test_one_true_and_one_point_zero_stay_apart_in_the_cache() -> None:
    for value in (1, True, 1.0, True, 1):
        parsed = KeyValueList.FromString(proto.key_values(b"\x0a", [("k", value)]))
        assert _same(_read(parsed.values[0].value), value)


def test_a_histogram_point_per_attribute_set_whatever_the_order_and_1_true_apart() -> None:
    from pipeclient._sinks.otlp.metrics import Histograms

    histograms = Histograms()
    name = "gen_ai.client.operation.duration"
    for attributes in (
        {"a": 1, "b": "x"},
        {"b": "x", "a": 1},  # the same set in another order: the same point
        {"a": True, "b": "x"},
        {"a": 1.0, "b": "x"},
        {"a": 1, "b": "x"},
    ):
        histograms.record(name, 0.5, attributes)
    ((_, points),) = histograms.snapshot()
    counts = sorted((repr(p.attributes["a"]), p.count) for p in points)
    assert counts == [("1", 3), ("1.0", 1), ("True", 1)]
