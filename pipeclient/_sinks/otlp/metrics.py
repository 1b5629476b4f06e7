"""The GenAI client metrics as cumulative explicit-bucket histograms, one point per
attribute set, encoded as an `ExportMetricsServiceRequest`: what a MeterProvider with a
cumulative reader would hold and export, without the provider (no thread, no fork handler).
"""

from __future__ import annotations

import json
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import proto
from .genai import INSTRUMENTS, SCHEMA_URL

__all__ = ["Histograms"]

# As the SDK's metrics: at most this many attribute sets per instrument; measurements with
# any further set are summed under the overflow attribute, so memory stays bounded.
_CARDINALITY_LIMIT = 2000
_OVERFLOW_ATTRIBUTES: dict[str, Any] = {"otel.metric.overflow": True}
_MAX_ALIASES = 4096


@dataclass
class _Point:
    """One attribute set's cumulative histogram, as the SDK's explicit-bucket aggregation."""

    attributes: dict[str, Any]
    bounds: tuple[float, ...]
    start_time_unix_nano: int = field(default_factory=time.time_ns)
    bucket_counts: list[int] = field(default_factory=list)
    count: int = 0
    sum: float = 0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> None:
        if not self.bucket_counts:
            self.bucket_counts = [0] * (len(self.bounds) + 1)
        self.bucket_counts[bisect_left(self.bounds, value)] += 1  # upper bounds inclusive
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def encoded(self, now: int) -> bytes:
        return proto.histogram_point(
            values=self.attributes,
            start_time_unix_nano=self.start_time_unix_nano,
            time_unix_nano=now,
            count=self.count,
            total=self.sum,
            bucket_counts=self.bucket_counts,
            explicit_bounds=self.bounds,
            minimum=self.min,
            maximum=self.max,
        )


def _point_key(attributes: Mapping[str, Any]) -> Hashable:
    """One key per attribute set, whatever the order; 1, 1.0 and True stay apart."""
    try:
        # ((key, value), type) pairs, built in C (no generator): 1 and True differ by type.
        return frozenset(zip(attributes.items(), map(type, attributes.values()), strict=True))
    except TypeError:  # an unhashable value (a list)
        return json.dumps(attributes, sort_keys=True, default=str)


class Histograms:
    """The `INSTRUMENTS`' running totals. Thread-safe: measurements are recorded where
    spans are encoded, and exported where they are sent."""

    def __init__(self) -> None:
        self._points: dict[str, dict[Hashable, _Point]] = {name: {} for name in INSTRUMENTS}
        self._lock = threading.Lock()
        self._aliases: dict[tuple[Any, ...], Hashable] = {}
        #: measurements recorded since the last `take` (or a `take` whose export failed)
        self.pending = False

    def record(self, name: str, value: float, attributes: Mapping[str, Any]) -> bool:
        """False for a metric that is not one of ours (it is ignored)."""
        points = self._points.get(name)
        if points is None:
            return False
        if not math.isfinite(value) or value < 0:  # as the SDK's histograms: dropped
            self.pending = True
            return True
        key = self._key(attributes)
        with self._lock:
            self.pending = True
            point = points.get(key)
            if point is None:
                if len(points) >= _CARDINALITY_LIMIT:
                    key, attributes = "overflow", _OVERFLOW_ATTRIBUTES
                bounds = tuple(INSTRUMENTS[name][2])
                point = points.setdefault(key, _Point(dict(attributes), bounds))
            point.add(value)
        return True

    def _key(self, attributes: Mapping[str, Any]) -> Hashable:
        """`_point_key`, looked up by the attributes in their order: the spans' measurements
        come with the same few attribute sets in the same order, and a tuple is much
        cheaper to hash and compare than a new frozenset."""
        try:
            ordered = tuple(zip(attributes.items(), map(type, attributes.values()), strict=True))
            key = self._aliases.get(ordered)
        except TypeError:  # an unhashable value (a list)
            return _point_key(attributes)
        if key is None:
            key = _point_key(attributes)
            if len(self._aliases) >= _MAX_ALIASES:
                self._aliases.clear()
            self._aliases[ordered] = key
        return key

    def snapshot(self) -> list[tuple[str, list[_Point]]]:
        """Copies of the points, per instrument that has any."""
        with self._lock:
            return self._copies()

    def _copies(self) -> list[tuple[str, list[_Point]]]:
        return [
            (name, [_copy(point) for point in points.values()])
            for name, points in self._points.items()
            if points
        ]

    def take(self, resource: bytes, scope: bytes) -> bytes | None:
        """The running totals as one request's body (None before any measurement); what
        is recorded from now on is pending again."""
        with self._lock:
            self.pending = False
            copies = self._copies()
        now = time.time_ns()
        metrics = [
            proto.histogram_metric(
                name,
                INSTRUMENTS[name][1],
                INSTRUMENTS[name][0],
                [point.encoded(now) for point in points],
            )
            for name, points in copies
        ]
        if not metrics:
            return None
        return proto.metrics_request(resource, scope, SCHEMA_URL, metrics)

    def owe(self) -> None:
        """The last `take` was not delivered: it is pending again."""
        self.pending = True


def _copy(point: _Point) -> _Point:
    return _Point(
        attributes=point.attributes,
        bounds=point.bounds,
        start_time_unix_nano=point.start_time_unix_nano,
        bucket_counts=list(point.bucket_counts),
        count=point.count,
        sum=point.sum,
        min=point.min,
        max=point.max,
    )
