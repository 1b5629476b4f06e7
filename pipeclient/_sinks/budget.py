"""The spend ledger as a sink: each priced call's cost, added on the budget's own lane.

Its view comes from the privacy step's BUDGET audience: calls only, no content, the user
id as given (kept only under `scope = "user"`), no-log calls included (what a call cost
is not its content). A call that reported no token usage (a failed or refused call, an
image) has nothing to price and is not counted; one with usage and no known price is
counted as unpriced, never given a cost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from .._telemetry.budget import Budget
from .._telemetry.record import CallRecord, TraceRecord
from .._telemetry.sink import ExportError, Payload, Sink

__all__ = ["BudgetSink"]


class BudgetSink(Sink):
    name = "budget"
    linger_s = 0.0  # the next call's check should see this one's cost: no waiting
    prompt = True  # nor held back while calls burst

    def __init__(self, budget: Budget | None, *, by_user: bool) -> None:
        self.budget = budget  # None: encode only (`capture_telemetry()`, `telemetry preview`)
        self._by_user = by_user

    def __repr__(self) -> str:
        return f"BudgetSink({self.budget!r})"

    def encode(self, record: CallRecord | TraceRecord) -> list[Payload]:
        if not isinstance(record, CallRecord) or record.cache_hit:
            return []  # a cache hit spent nothing
        if record.input_tokens is None and record.output_tokens is None:
            return []
        return [
            {
                "started_at": record.started_at,
                "user_id": record.user_id if self._by_user else None,
                "cost_usd": record.total_cost_usd,
            }
        ]

    def pack(self, payloads: list[Payload]) -> list[Any]:
        return [(item["started_at"], item["user_id"], item["cost_usd"]) for item in payloads]

    def send(self, payloads: Sequence[Any], timeout: float) -> None:
        budget = self.budget
        if budget is None:
            raise RuntimeError("this budget sink only encodes; it has no ledger to write to")
        try:
            budget.record(payloads)
        except sqlite3.OperationalError as exc:  # busy beyond the timeout, disk full
            problem = f"the budget ledger could not write ({exc})"
            raise ExportError(problem, transient=True) from None

    def shutdown(self, timeout: float) -> None:
        if self.budget is not None:
            self.budget.ledger.close()
