"""The OTLP protobuf messages pipeclient sends, written straight to the wire format.

Protobuf's wire format is a sequence of fields, each a tag (field number and wire type, a
varint) and a value: a varint, eight or four little-endian bytes, or a length and that many
bytes (strings, bytes, nested messages, packed numbers). Only the messages of
`ExportTraceServiceRequest` and `ExportMetricsServiceRequest` that pipeclient fills are
here, with the field numbers of opentelemetry-proto's `.proto` files; the tests parse every
request with the official generated classes. A span is encoded once, on the worker, into
the bytes of its `ScopeSpans.spans` field, so that a batch is those bytes joined between a
resource and a scope encoded once per sink.

Attribute values are OTLP's `AnyValue`: text, bool, int (an int outside int64 goes as its
decimal text rather than being dropped), float, bytes, sequences (nested too) and mappings.
Text that cannot be UTF-8 (a lone surrogate from a provider's broken escape) has "?" in its
place; None is an empty value; any other type goes as its `str()`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "SPAN_KINDS",
    "STATUS_CODES",
    "any_value",
    "attributes",
    "histogram_metric",
    "key_values",
    "metrics_request",
    "resource",
    "scope",
    "span_field",
    "trace_request",
]

_DOUBLE = struct.Struct("<d").pack
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_ONE_BYTE = tuple(bytes((n,)) for n in range(128))
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

SPAN_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
STATUS_CODES = {"UNSET": 0, "OK": 1, "ERROR": 2}
# Span.flags: the context's is_remote is known (bit 8) and false (bit 9 clear), as the
# SDK's exporter sets for a span whose parent is local or absent.
_SPAN_FLAGS = _FIXED32(0x100)
_AGGREGATION_CUMULATIVE = 2


def varint(value: int) -> bytes:
    """An unsigned varint; a negative int64 as its two's complement (ten bytes)."""
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    size = len(payload)
    return tag + (_ONE_BYTE[size] if size < 128 else varint(size)) + payload


def _text(value: str) -> bytes:
    return value.encode("utf-8", "replace")


# -- common.proto -----------------------------------------------------------------------------

# AnyValue: 1 string_value, 2 bool_value, 3 int_value, 4 double_value, 5 array_value,
# 6 kvlist_value, 7 bytes_value. ArrayValue and KeyValueList: 1 values.
# KeyValue: 1 key, 2 value.
_TRUE, _FALSE = b"\x10\x01", b"\x10\x00"


def any_value(value: Any) -> bytes:
    """The `AnyValue` message of one attribute value."""
    kind = type(value)
    if kind is str:
        return _field(b"\x0a", _text(value))
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return b"\x18" + varint(value)
        return _field(b"\x0a", str(value).encode())
    if kind is float:
        return b"\x21" + _DOUBLE(value)
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _field(b"\x3a", bytes(value))
    if isinstance(value, str):  # a subclass: its text
        return _field(b"\x0a", _text(str(value)))
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, int):
        return any_value(int(value))
    if isinstance(value, float):
        return any_value(float(value))
    if isinstance(value, Mapping):
        return _field(b"\x32", key_values(b"\x0a", value.items()))
    if isinstance(value, (Sequence, set, frozenset)):
        return _field(b"\x2a", b"".join([_field(b"\x0a", any_value(item)) for item in value]))
    return _field(b"\x0a", _text(str(value)))


# Encoded keys: the same few dozen keys come in every span.
_KEYS: dict[str, bytes] = {}
_MAX_CACHED_KEYS = 4096


def _key_field(key: Any) -> bytes:
    """A KeyValue's key field (1), encoded; cached, as keys repeat."""
    if type(key) is not str:
        return _field(b"\x0a", _text(str(key)))
    encoded = _field(b"\x0a", _text(key))
    if len(_KEYS) < _MAX_CACHED_KEYS:
        _KEYS[key] = encoded
    return encoded


# Whole encoded attributes (key and value) for the scalar values that repeat from span to
# span (the operation, provider, model, server, flags, small counts): most of a span's
# attributes are one dict lookup. Cleared when full, so that values that do not repeat
# (ids, token counts) cannot keep new repeating ones out. One table per value type (1 and
# True are equal keys), so that each key is a tuple of atomic values, which the garbage
# collector stops tracking.
_PAIRS: dict[type, dict[tuple[bytes, str, Any], bytes]] = {str: {}, int: {}, bool: {}}
_MAX_CACHED_PAIRS = 4096
_MAX_CACHED_TEXT = 64


def key_values(tag: bytes, items: Iterable[tuple[Any, Any]]) -> bytes:
    """`KeyValue` messages, each framed as the repeated field `tag` of the message they are
    in (attributes, or a KeyValueList's values)."""
    parts = []
    keys, pairs = _KEYS, _PAIRS
    for key, value in items:
        kind = type(value)  # the common scalars inline: most of a span's encoding time
        table = pairs.get(kind) if kind is not str or len(value) <= _MAX_CACHED_TEXT else None
        if table is not None:
            found = table.get((tag, key, value))
            if found is not None:
                parts.append(found)
                continue
        if kind is str:
            raw = value.encode("utf-8", "replace")
            size = len(raw)
            typed = (b"\x0a" + _ONE_BYTE[size] if size < 128 else b"\x0a" + varint(size)) + raw
        elif kind is int and 0 <= value < 128:
            typed = b"\x18" + _ONE_BYTE[value]
        else:
            typed = any_value(value)
        size = len(typed)
        pair = (keys.get(key) or _key_field(key)) + (
            b"\x12" + _ONE_BYTE[size] if size < 128 else b"\x12" + varint(size)
        )
        size += len(pair)
        encoded = tag + (_ONE_BYTE[size] if size < 128 else varint(size)) + pair + typed
        if table is not None and type(key) is str:
            if len(table) >= _MAX_CACHED_PAIRS:
                table.clear()
            table[(tag, key, value)] = encoded
        parts.append(encoded)
    return b"".join(parts)


def attributes(tag: bytes, values: Mapping[str, Any]) -> bytes:
    return key_values(tag, values.items())


# -- resource.proto and InstrumentationScope --------------------------------------------------


def resource(values: Mapping[str, Any]) -> bytes:
    """Resource: 1 attributes."""
    return attributes(b"\x0a", values)


def scope(name: str, version: str, values: Mapping[str, Any] | None = None) -> bytes:
    """InstrumentationScope: 1 name, 2 version, 3 attributes."""
    out = _field(b"\x0a", _text(name)) + _field(b"\x12", _text(version))
    return out + attributes(b"\x1a", values) if values else out


# -- trace.proto ------------------------------------------------------------------------------


def span_field(
    *,
    trace_id: bytes,
    span_id: bytes,
    parent_span_id: bytes | None,
    name: str,
    kind: int,
    start_time_unix_nano: int,
    end_time_unix_nano: int,
    attributes_bytes: bytes,
    dropped_attributes: int = 0,
    events: Sequence[bytes] = (),
    dropped_events: int = 0,
    status_code: int = 0,
    status_message: str | None = None,
) -> bytes:
    """One Span, framed as `ScopeSpans.spans` (field 2): a batch is these joined.

    Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7 start_time_unix_nano,
    8 end_time_unix_nano, 9 attributes, 10 dropped_attributes_count, 11 events,
    12 dropped_events_count, 15 status, 16 flags. Status: 2 message, 3 code."""
    parts = [
        b"\x0a\x10",
        trace_id,
        b"\x12\x08",
        span_id,
        b"\x22\x08" + parent_span_id if parent_span_id else b"",
        _field(b"\x2a", _text(name)),
        b"\x30",
        _ONE_BYTE[kind],
        b"\x39",
        _FIXED64(start_time_unix_nano),
        b"\x41",
        _FIXED64(end_time_unix_nano),
        attributes_bytes,
    ]
    if dropped_attributes:
        parts.append(b"\x50" + varint(dropped_attributes))
    parts += [_field(b"\x5a", event) for event in events]
    if dropped_events:
        parts.append(b"\x60" + varint(dropped_events))
    status = b"\x18" + _ONE_BYTE[status_code] if status_code else b""
    if status_message:
        status = _field(b"\x12", _text(status_message)) + status
    parts += [_field(b"\x7a", status), b"\x85\x01", _SPAN_FLAGS]
    return _field(b"\x12", b"".join(parts))


def event(time_unix_nano: int, name: str, attributes_bytes: bytes, dropped: int = 0) -> bytes:
    """Span.Event: 1 time_unix_nano, 2 name, 3 attributes, 4 dropped_attributes_count."""
    out = b"\x09" + _FIXED64(time_unix_nano) + _field(b"\x12", _text(name)) + attributes_bytes
    return out + b"\x20" + varint(dropped) if dropped else out


def trace_request(
    resource_bytes: bytes, scope_bytes: bytes, schema_url: str, spans: Iterable[bytes]
) -> bytes:
    """ExportTraceServiceRequest: 1 resource_spans. ResourceSpans: 1 resource,
    2 scope_spans. ScopeSpans: 1 scope, 2 spans (`span_field`'s), 3 schema_url."""
    scope_spans = (
        _field(b"\x0a", scope_bytes) + b"".join(spans) + _field(b"\x1a", _text(schema_url))
    )
    resource_spans = _field(b"\x0a", resource_bytes) + _field(b"\x12", scope_spans)
    return _field(b"\x0a", resource_spans)


# -- metrics.proto ----------------------------------------------------------------------------


def histogram_point(
    *,
    values: Mapping[str, Any],
    start_time_unix_nano: int,
    time_unix_nano: int,
    count: int,
    total: float,
    bucket_counts: Sequence[int],
    explicit_bounds: Sequence[float],
    minimum: float,
    maximum: float,
) -> bytes:
    """HistogramDataPoint: 2 start_time_unix_nano, 3 time_unix_nano, 4 count, 5 sum,
    6 bucket_counts (packed fixed64), 7 explicit_bounds (packed double), 9 attributes,
    11 min, 12 max."""
    return b"".join(
        [
            b"\x11",
            _FIXED64(start_time_unix_nano),
            b"\x19",
            _FIXED64(time_unix_nano),
            b"\x21",
            _FIXED64(count),
            b"\x29",
            _DOUBLE(total),
            _field(b"\x32", struct.pack(f"<{len(bucket_counts)}Q", *bucket_counts)),
            _field(b"\x3a", struct.pack(f"<{len(explicit_bounds)}d", *explicit_bounds)),
            attributes(b"\x4a", values),
            b"\x59",
            _DOUBLE(minimum),
            b"\x61",
            _DOUBLE(maximum),
        ]
    )


def histogram_metric(name: str, description: str, unit: str, points: Iterable[bytes]) -> bytes:
    """Metric: 1 name, 2 description, 3 unit, 9 histogram. Histogram: 1 data_points,
    2 aggregation_temporality (cumulative)."""
    histogram = b"".join([_field(b"\x0a", point) for point in points])
    histogram += b"\x10" + _ONE_BYTE[_AGGREGATION_CUMULATIVE]
    return (
        _field(b"\x0a", _text(name))
        + _field(b"\x12", _text(description))
        + _field(b"\x1a", _text(unit))
        + _field(b"\x4a", histogram)
    )


def metrics_request(
    resource_bytes: bytes, scope_bytes: bytes, schema_url: str, metrics: Iterable[bytes]
) -> bytes:
    """ExportMetricsServiceRequest: 1 resource_metrics. ResourceMetrics: 1 resource,
    2 scope_metrics. ScopeMetrics: 1 scope, 2 metrics, 3 schema_url."""
    scope_metrics = (
        _field(b"\x0a", scope_bytes)
        + b"".join([_field(b"\x12", metric) for metric in metrics])
        + _field(b"\x1a", _text(schema_url))
    )
    resource_metrics = _field(b"\x0a", resource_bytes) + _field(b"\x12", scope_metrics)
    return _field(b"\x0a", resource_metrics)
