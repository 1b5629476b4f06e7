"""Fan-out: a batch of records to each destination's payloads, through the privacy step.

Pure work, no I/O: the dispatcher's worker runs it before handing payloads to the lanes,
and the recorder (`capture_telemetry()`, `telemetry preview`) runs it in place of sending.
Views are computed once per audience and shared by every destination with that audience.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from .copies import replace
from .pricing import Pricer
from .privacy import Audience, PrivacyStep, Record
from .record import CallRecord
from .sink import Sink

__all__ = ["Batch", "Fanout", "Route"]


class Route(NamedTuple):
    """A destination and what it may see."""

    sink: Sink
    audience: Audience


class Batch(NamedTuple):
    """One destination's share of a batch of records."""

    route: Route
    payloads: list[Any]  # payloads, or what the destination's `pack` makes of them
    records: int  # records this destination accepted (its views that were not None)
    error: Exception | None = None  # encoding failed: the whole share is lost


class Fanout:
    def __init__(
        self, routes: Sequence[Route], privacy: PrivacyStep, pricer: Pricer | None = None
    ) -> None:
        # The gateway (billing) first: nothing else may delay it.
        self.routes = tuple(sorted(routes, key=lambda route: route.audience.custom))
        self.privacy = privacy
        self.pricer = pricer
        self.unpriced = 0  # calls with token usage and no known price

    def _priced(self, record: Record) -> Record:
        """The call with its cost, priced here (on the worker), never on the caller's path."""
        if not isinstance(record, CallRecord) or self.pricer is None or record.cache_hit:
            return record  # a cache hit cost nothing: its costs are 0 already
        if record.input_tokens is None and record.output_tokens is None:
            return record
        try:
            cost = self.pricer.cost(
                record.model,
                record.input_tokens,
                record.output_tokens,
                record.cached_tokens,
                record.backend,
                (record.input_audio_tokens or 0, record.output_audio_tokens or 0),
            )
        except Exception:  # a price table that fails prices nothing; never a wrong number
            cost = None
        if cost is None:
            self.unpriced += 1
            return record
        return replace(
            record,
            input_cost_usd=cost.input_usd,
            output_cost_usd=cost.output_usd,
            cached_cost_usd=cost.cached_usd,
            total_cost_usd=cost.total_usd,
        )

    @property
    def names(self) -> list[str]:
        return [route.sink.name for route in self.routes]

    def prepare(self, records: Sequence[Record], *, packed: bool = False) -> Iterator[Batch]:
        """Each destination's share; `packed`: as its lane holds it (`Sink.encode_packed`),
        else the payloads themselves (what a capture or a preview shows)."""
        if self.pricer is not None:
            records = [self._priced(record) for record in records]
        privacy = self.privacy
        views: dict[Audience, list[Any]] = {}
        metadata: list[Any] = []  # each record's metadata view, shared by those audiences
        for route in self.routes:
            audience = route.audience
            shown = views.get(audience)
            if shown is None:
                shown = views[audience] = privacy.views(records, audience, metadata)
            payloads: list[Any] = []
            count = 0
            encode = route.sink.encode_packed if packed else route.sink.encode
            try:
                for view in shown:
                    if view is not None:
                        payloads += encode(view)
                        count += 1
            except Exception as exc:
                yield Batch(route, [], len(records), exc)
                continue
            yield Batch(route, payloads, count)
