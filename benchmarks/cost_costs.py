"""Per-call cost of pricing a finished call (µs), overrides and the genai-prices table.

Run: .venv/bin/python benchmarks/cost_costs.py
"""

from __future__ import annotations

import time

from pipeclient._telemetry.pricing import ModelPrice, Pricer


def _per_call_us(pricer: Pricer, model: str, n: int = 5000) -> float:
    pricer.cost(model, 1000, 200, 400)  # first lookup: imports and indexes the table
    start = time.perf_counter()
    for i in range(n):
        pricer.cost(model, 1000 + i, 200, 400)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    override = _per_call_us(Pricer({"m": ModelPrice(2.5, 10.0, 1.25)}), "m")
    print(f"override:            {override:8.2f} us/call")
    print(f"genai-prices, known: {_per_call_us(Pricer(), 'gpt-4o-mini'):8.2f} us/call")
    print(f"genai-prices, miss:  {_per_call_us(Pricer(), 'no-such-model'):8.2f} us/call")


if __name__ == "__main__":
    main()
