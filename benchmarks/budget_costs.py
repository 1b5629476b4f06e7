"""Per-call cost of `[budget]` (µs, one process): the check on the caller's thread (one
ledger read, plus the input estimate) and the recording on the budget's lane (one
transaction per batch), against a real SQLite file in WAL mode.

Run: .venv/bin/python benchmarks/budget_costs.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _timing import median_and_best_us

from pipeclient._config.budget import BudgetConfig
from pipeclient._telemetry.budget import Budget
from pipeclient._telemetry.ledger import Ledger
from pipeclient._telemetry.pricing import ModelPrice, Pricer


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "budget.db"
        pricer = Pricer({"m": ModelPrice(2.5, 10.0)})
        for scope in ("client", "user"):
            config = BudgetConfig(limit_usd=1e9, scope=scope)  # type: ignore[arg-type]
            budget = Budget(config, Ledger(path), pricer=pricer)
            now = time.time()
            budget.record([(now, f"user-{i % 50}", 0.001) for i in range(500)])

            def check(n: int, budget: Budget = budget) -> None:
                for i in range(n):
                    user = f"user-{i % 50}"
                    budget.check(request_id="r", model="m", user_id=user, input_bytes=4000)

            def record_one(n: int, budget: Budget = budget) -> None:
                for i in range(n):
                    budget.record([(time.time(), f"user-{i % 50}", 0.001)])

            def record_batched(n: int, budget: Budget = budget) -> None:
                calls = [(time.time(), f"user-{i % 50}", 0.001) for i in range(n)]
                for start in range(0, n, 100):
                    budget.record(calls[start : start + 100])

            for name, run, n in (
                ("check", check, 5000),
                ("record, one per batch", record_one, 500),
                ("record, 100 per batch", record_batched, 5000),
            ):
                median, best = median_and_best_us(run, n)
                print(f"scope={scope:6} {name:22} {median:7.1f} us/call (best {best:.1f})")
            budget.ledger.close()


if __name__ == "__main__":
    main()
