"""Per-call cost of `[routing]` (µs, on the caller's thread, before any I/O): the rules'
match, and `sensitive = "local"`: the `[privacy] pii` detectors over the body as sent.

Run: .venv/bin/python benchmarks/routing_costs.py
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from pipeclient import Backend
from pipeclient._client.call import start_call
from pipeclient._client.routing import Routing
from pipeclient._config.routing import RoutingConfig
from pipeclient._privacy.detectors import DETECTOR_ORDER, Redactor
from pipeclient._privacy.known_secrets import KnownSecrets

BACKENDS = [
    Backend(name="cloud", base_url="http://127.0.0.1:9/v1", api_key="sk-provider-key-0123"),
    Backend(name="own", base_url="http://127.0.0.1:8/v1", api_key="none", local=True),
]
RULES = RoutingConfig.model_validate(
    {
        "rules": [
            {"name": "vision", "images": True, "local": True},
            {"name": "long", "min_input_tokens": 20000, "backends": ["own"]},
            {"name": "alias", "model": "mine", "local": True},
        ]
    }
)
PROSE = (
    "The quarterly report shows revenue up 4.2% on 2025, with costs flat at 1,204,000 "
    "and 17 new customers in the northern region; version 3.1.4 shipped on 2026-03-02. "
)


def chat(turns: int, canary: str = "") -> dict[str, Any]:
    messages = [{"role": "system", "content": "You are a careful assistant."}]
    for turn in range(turns):
        messages.append({"role": "user", "content": PROSE * 2 + (canary if turn == 0 else "")})
        messages.append({"role": "assistant", "content": PROSE})
    return {"model": "m", "messages": messages}


def per_call_us(
    routing: Routing, body: dict[str, Any], n: int, rounds: int = 7
) -> tuple[float, float]:
    """(median, best) µs per decision over `rounds` runs of `n` (a fresh call each time)."""
    timings = []
    for _ in range(rounds):
        calls = [
            start_call(
                None,
                operation="chat",
                path="/chat/completions",
                body=dict(body),
                request_id="r",
                request_id_supplied=False,
                no_log=False,
                trace=None,
                headers={},
                timeout={},
                defers_audit=False,
            )
            for _ in range(n)
        ]
        start = time.perf_counter()
        for call in calls:
            routing.decide(call)
        timings.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(timings), min(timings)


def main() -> None:
    secrets = KnownSecrets([b.api_key.get_secret_value() for b in BACKENDS])
    rules_only = Routing(RULES, BACKENDS)
    sensitive = RoutingConfig(sensitive="local")
    variants = {
        "rules only": rules_only,
        "sensitive, pii = email+secret": Routing(
            sensitive, BACKENDS, redactor=Redactor(["email", "secret"], secrets)
        ),
        "sensitive, all five detectors": Routing(
            sensitive, BACKENDS, redactor=Redactor(DETECTOR_ORDER, secrets)
        ),
    }
    bodies = {
        "1 turn (~0.4 KB), clean": chat(1),
        "10 turns (~5 KB), clean": chat(10),
        "10 turns, email in turn 1": chat(10, " mail jane.doe@example.com"),
    }
    for name, routing in variants.items():
        for label, body in bodies.items():
            n = 2000 if "1 turn" in label else 500
            median, best = per_call_us(routing, body, n)
            print(f"{name:32} {label:28} {median:7.1f} us/call (best {best:.1f})")


if __name__ == "__main__":
    main()
