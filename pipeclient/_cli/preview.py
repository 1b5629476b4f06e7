"""`pipeclient telemetry preview`: the exact payloads a sample call would produce."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .._client.backends import gateway_url_from_env
from .._config.settings import TelemetrySettings
from .._pipeline import build_sinks
from .._sinks.gateway.sink import GatewaySink, GatewayTarget
from .._telemetry.dispatch import Dispatcher
from .._telemetry.privacy import PrivacyStep
from .._telemetry.record import CallRecord, new_span_id, new_trace_id

__all__ = ["preview", "sample_call"]


def sample_call() -> CallRecord:
    """A chat call with content a privacy setting should care about."""
    return CallRecord(
        request_id="00000000-0000-4000-8000-000000000000",
        operation="chat",
        model="gpt-4o-mini",
        stream=True,
        backend="default",
        base_url="https://api.openai.com/v1",
        gateway=False,
        no_log=False,
        started_at=time.time(),
        total_ms=812.5,
        ttft_ms=231.0,
        attempts=1,
        http_status=200,
        outcome="ok",
        error=None,
        parameters={"temperature": 0.2, "max_tokens": 256},
        input_tokens=42,
        output_tokens=17,
        response_id="chatcmpl-sample",
        response_model="gpt-4o-mini-2024-07-18",
        finish_reasons=("stop",),
        trace_id=new_trace_id(),
        span_id=new_span_id(),
        input={
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {
                    "role": "user",
                    "content": "My email is jane.doe@example.com, call me at "
                    "+1 415 555 0100. Summarise my last invoice.",
                },
            ],
            "tools": None,
        },
        output=[{"role": "assistant", "content": "Your last invoice totals $120.00."}],
    )


def preview(settings: TelemetrySettings) -> dict[str, Any]:
    sinks = build_sinks(settings)
    captured: dict[str, list[dict[str, Any]]] = {}
    record = sample_call()
    gateway_url = gateway_url_from_env()
    if gateway_url and not settings.do_not_track:
        # The same sample call, had its backend been the gateway.
        sinks.append(GatewaySink({record.backend: GatewayTarget(gateway_url, "-")}))
        record = dataclasses.replace(record, gateway=True, base_url=gateway_url)
    if sinks:
        dispatcher = Dispatcher(
            sinks,
            PrivacyStep(settings.config.privacy),
            max_queue=1,
            flush_timeout=settings.config.export.flush_timeout_s,
            capture=captured,
        )
        dispatcher.submit(record)
    return {
        "do_not_track": settings.do_not_track,
        "sample_call": {
            "input": record.input,
            "output": record.output,
            "note": "a sample chat call; each destination below shows exactly what it "
            "would receive for it, after the privacy step",
        },
        "destinations": captured,
    }
