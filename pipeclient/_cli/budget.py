"""`pipeclient budget status`: the period's spend, limit and remaining budget, from the
local ledger `[budget]` configures; per user under `scope = "user"`.

User ids are shown as given: the ledger is the operator's own local file, as the audit
log is. Exit codes as for every command: 0 ok, 2 usage or configuration error (no
`[budget] limit_usd`, a bad value, a ledger file that is not one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import ConfigError

if TYPE_CHECKING:
    from .._telemetry.ledger import Totals

__all__ = ["add_budget_commands"]

EXIT_OK = 0

_Parser = TypeVar("_Parser", bound=argparse.ArgumentParser)


def add_budget_commands(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    budget = subparsers.add_parser("budget", help="the spend limit and what was spent")
    what = budget.add_subparsers(dest="what", metavar="WHAT", parser_class=type(budget))
    what.required = True
    status = what.add_parser(
        "status", help="this period's limit, spend, remaining budget and calls (per user)"
    )
    status.add_argument("--file", help="read this telemetry.toml instead of the usual lookup")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=_status)


def _status(args: argparse.Namespace) -> int:
    import time

    from .._config.settings import load_settings, where_value
    from .._telemetry.ledger import CLIENT_SCOPE, Ledger, period_start

    settings = load_settings(file=args.file)
    config = settings.config.budget
    limit_source = where_value(("budget", "limit_usd"), settings.sources)
    if config.limit_usd is None:
        raise ConfigError(
            "is not set, so there is no budget; set [budget] limit_usd (USD per period) in "
            "the telemetry file, or PIPECLIENT_BUDGET__LIMIT_USD",
            source=str(settings.file) if settings.file is not None else "no telemetry file",
            key="budget.limit_usd",
        )
    start = period_start(time.time(), config.period)
    path = Path(config.path).expanduser()
    rows: dict[str, Totals] = {}
    if path.exists():  # no ledger yet: nothing spent (and no file made by looking)
        source = where_value(("budget", "path"), settings.sources)
        ledger = Ledger(path, source=source if "budget.path" in settings.sources else None)
        try:
            rows = dict(ledger.rows(start))
        finally:
            ledger.close()
    status: dict[str, Any] = {
        "limit_usd": config.limit_usd,
        "limit_source": limit_source,
        "period": config.period,
        "period_start": start,
        "scope": config.scope,
        "action": config.action,
        "ledger": str(path.absolute()),
        **_line(rows.get(CLIENT_SCOPE), config.limit_usd),
    }
    if config.scope == "user":
        status["users"] = [
            {"user_id": scope.partition(":")[2] or None, **_line(totals, config.limit_usd)}
            for scope, totals in sorted(rows.items())
            if scope != CLIENT_SCOPE
        ]
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(_text(status))
    return EXIT_OK


def _line(totals: Totals | None, limit: float) -> dict[str, Any]:
    from .._telemetry.ledger import Totals

    found = totals or Totals()
    return {
        "spent_usd": found.usd,
        "remaining_usd": max(0.0, limit - found.usd),
        "calls": found.calls,
        "unpriced_calls": found.unpriced,
    }


def _text(status: dict[str, Any]) -> str:
    from .._telemetry.budget import usd

    def amounts(line: dict[str, Any]) -> str:
        return (
            f"spent {usd(line['spent_usd'])} USD, remaining {usd(line['remaining_usd'])} USD, "
            f"{line['calls']} calls, {line['unpriced_calls']} unpriced"
        )

    limit = usd(status["limit_usd"])
    lines = [
        f"budget: {limit} USD per {status['period']} (UTC), scope {status['scope']}, "
        f"action {status['action']} (limit set in {status['limit_source']})",
        f"ledger: {status['ledger']}",
        f"period: {status['period_start']} (UTC)",
        f"all calls: {amounts(status)}",
    ]
    if status["scope"] == "user":
        lines.append(f"per user (each has the {limit} USD limit):")
        for user in status["users"]:
            name = user["user_id"] if user["user_id"] is not None else "(no user_id)"
            lines.append(f"  {name}: {amounts(user)}")
        if not status["users"]:
            lines.append("  (no calls this period)")
    if status["unpriced_calls"]:
        lines.append(
            "unpriced calls have no known price and count nothing against the limit: "
            "add the model to [pricing.models] (see docs/costs.md)"
        )
    return "\n".join(lines) + "\n"
