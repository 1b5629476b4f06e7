"""`[budget]`: the check before a call is sent, and the recording of what calls cost.

The check runs on the caller's thread, before any network I/O: one read of the ledger
row of this period and scope (every process's spend so far), plus an estimate of this
call's input cost when the model's input price is known without a table lookup. A call
is over budget when the period's spend has reached the limit, or when spend plus the
estimate would pass it. Costs are recorded by the budget's own lane on the export
worker, once priced (`BudgetSink`); a call without a known price is counted, never given
a guessed cost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .._exceptions import BudgetExceededError
from .ledger import CLIENT_SCOPE, NANO, Ledger, Spend, Totals, period_start, periods_of, user_scope

if TYPE_CHECKING:
    from .._config.budget import BudgetConfig
    from .pricing import Pricer

__all__ = ["BYTES_PER_TOKEN", "Budget", "usd"]

logger = logging.getLogger("pipeclient")

#: the estimate of a request's input tokens: its JSON body's bytes / 4
BYTES_PER_TOKEN = 4


def usd(amount: float) -> str:
    """An amount as the messages show it: 12.34, 0.00042."""
    return f"{amount:.2f}" if amount >= 1 or amount == 0 else f"{amount:.2g}"


class Budget:
    """One client's `[budget]`. `limit_source`: where the limit was set, for the message."""

    def __init__(
        self,
        config: BudgetConfig,
        ledger: Ledger,
        *,
        pricer: Pricer | None = None,
        limit_source: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert config.limit_usd is not None
        self.config = config
        self.ledger = ledger
        self.pricer = pricer
        self.limit_source = limit_source
        self.clock = clock
        self._limit_nano = round(config.limit_usd * NANO)
        self._by_user = config.scope == "user"
        self._warn = config.action == "warn"
        self._warned: set[tuple[str, str]] = set()  # (period, scope) crossings logged
        self._warned_lock = threading.Lock()

    def __repr__(self) -> str:
        config = self.config
        return f"Budget({config.limit_usd} USD per {config.period}, scope={config.scope})"

    def scope_of(self, user_id: str | None) -> str:
        return user_scope(user_id) if self._by_user else CLIENT_SCOPE

    def spent(self, user_id: str | None = None) -> Totals:
        """The totals of the current period in the scope of `user_id`."""
        start = period_start(self.clock(), self.config.period)
        return self.ledger.totals(start, self.scope_of(user_id))

    def check(
        self, *, request_id: str, model: str, user_id: str | None, input_bytes: int
    ) -> BudgetExceededError | None:
        """The refusal of a call that would exceed the limit; None: it may go (under
        `action = "warn"` a crossing is logged once per period and scope)."""
        start = period_start(self.clock(), self.config.period)
        scope = self.scope_of(user_id)
        spent = self.ledger.totals(start, scope).nano_usd
        estimate = 0
        if self.pricer is not None and input_bytes > 0:
            rate = self.pricer.input_rate(model)
            if rate is not None:
                estimate = round(input_bytes // BYTES_PER_TOKEN * rate * NANO)
        limit = self._limit_nano
        if spent < limit and spent + estimate <= limit:
            return None
        message = self._message(start, spent, estimate, scope)
        if self._warn:
            self._warn_once(start, scope, message)
            return None
        assert self.config.limit_usd is not None
        return BudgetExceededError(
            f"{message}; the call was not sent (request id {request_id})",
            request_id=request_id,
            limit_usd=self.config.limit_usd,
            spent_usd=spent / NANO,
            estimate_usd=estimate / NANO,
            period=self.config.period,
            period_start=start,
            scope=self.config.scope,
        )

    def _message(self, start: str, spent: int, estimate: int, scope: str) -> str:
        config = self.config
        assert config.limit_usd is not None
        whose = "this client"
        if self._by_user:  # never the id itself: personal data, and messages get logged
            whose = "calls without a user_id" if scope == user_scope(None) else "this user_id"
        spend = f"{usd(spent / NANO)} USD spent"
        if estimate and spent < self._limit_nano:
            spend += f" and this call's input estimated at {usd(estimate / NANO)} USD"
        where = f" (set in {self.limit_source})" if self.limit_source else ""
        state = "reached" if spent >= self._limit_nano else "would be passed"
        return (
            f"spend limit of {usd(config.limit_usd)} USD per {config.period} {state} for "
            f"{whose}: {spend} in {start} (UTC); raise [budget] limit_usd{where} or set "
            f"PIPECLIENT_BUDGET__LIMIT_USD, or wait for the next {config.period}"
        )

    def _warn_once(self, start: str, scope: str, message: str) -> None:
        with self._warned_lock:
            if (start, scope) in self._warned:
                return
            # Only this period's crossings are kept: the set does not grow across periods.
            self._warned = {key for key in self._warned if key[0] == start}
            self._warned.add((start, scope))
        logger.warning('pipeclient: %s ([budget] action = "warn": calls go on)', message)

    def spends(self, calls: Iterable[tuple[float, str | None, float | None]]) -> list[Spend]:
        """The ledger's additions for calls given as (start time, user id, cost or None)."""
        by_user = self._by_user
        found = []
        for started_at, user_id, cost in calls:
            scopes = (CLIENT_SCOPE, user_scope(user_id)) if by_user else (CLIENT_SCOPE,)
            nano = None if cost is None else round(cost * NANO)
            found.append(Spend(periods_of(started_at), scopes, nano))
        return found

    def record(self, calls: Iterable[tuple[float, str | None, float | None]]) -> None:
        """Add finished calls to the ledger (on the budget's lane, never a caller's thread)."""
        self.ledger.add(self.spends(calls))
