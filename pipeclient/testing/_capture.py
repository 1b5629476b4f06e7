"""`capture_telemetry()`: what each destination would receive, recorded instead of sent."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .._telemetry.recorder import CAPTURE

__all__ = ["CapturedTelemetry", "capture_telemetry"]


class CapturedTelemetry(Mapping[str, list[dict[str, Any]]]):
    """Payloads per destination ("posthog", "langfuse", "otlp:<name>", ...), in order."""

    def __init__(self, store: dict[str, list[dict[str, Any]]]) -> None:
        self._store = store

    def __getitem__(self, destination: str) -> list[dict[str, Any]]:
        return self._store.get(destination, [])

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)

    def text(self, destination: str | None = None) -> str:
        """Every payload (of one destination, or all) as JSON text: for `in` checks."""
        names = [destination] if destination else sorted(self._store)
        return "\n".join(json.dumps(self[name], ensure_ascii=False, default=str) for name in names)


@contextmanager
def capture_telemetry() -> Iterator[CapturedTelemetry]:
    """Clients made inside the block record the exact payloads each enabled destination
    would receive (after the privacy step), synchronously, and send nothing.

        with capture_telemetry() as captured:
            client = pipeclient.Client(backends=[...], telemetry={"posthog": {...}})
            client.chat.completions.create(...)
        captured["posthog"][0]["properties"]["$ai_model"]
    """
    store: dict[str, list[dict[str, Any]]] = {}
    token = CAPTURE.set(store)
    try:
        yield CapturedTelemetry(store)
    finally:
        CAPTURE.reset(token)
