"""`pipeclient telemetry preview`: the exact payloads a sample call would produce."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .._builder import build_pipeline
from .._client.backends import Backend, backends_from_arguments, gateway_url_from_env
from .._config.settings import TelemetrySettings
from .._exceptions import PipeclientError
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
    """What each destination would receive for `sample_call()`: the client's own pipeline
    (builder, privacy step and encoders, with the keys of the backends the environment
    configures), recording instead of sending."""
    captured: dict[str, list[dict[str, Any]]] = {}
    record = sample_call()
    backends = _environment_backends()
    gateway_url = gateway_url_from_env()
    gateways: dict[str, tuple[str, str]] = {}
    if gateway_url and not settings.do_not_track:
        # The same sample call, had its backend been the gateway.
        gateways[record.backend] = (gateway_url, "-")
        record = dataclasses.replace(record, gateway=True, base_url=gateway_url)
    routing = _routing(settings, record, backends)
    if routing is not None:
        record = dataclasses.replace(record, route=routing["sample_call_route"])
    pipeline = build_pipeline(
        settings,
        gateways=gateways,
        api_keys={b.name: b.api_key.get_secret_value() for b in backends},
        secrets=[b.api_key.get_secret_value() for b in backends]
        + [value for b in backends for value in b.headers.values()],
        capture=captured,
    )
    if pipeline is not None:
        pipeline.emit(record)
    shown: dict[str, Any] = {
        "do_not_track": settings.do_not_track,
        "sample_call": {
            "input": record.input,
            "output": record.output,
            "note": "a sample chat call; each destination below shows exactly what it "
            "would receive for it, after the privacy step",
        },
    }
    if routing is not None:
        shown["routing"] = routing
    shown["destinations"] = captured
    return shown


def _routing(
    settings: TelemetrySettings, record: CallRecord, backends: list[Backend]
) -> dict[str, Any] | None:
    """`[routing]`'s decision for the sample call: the route its record carries."""
    from .._client.routing import RouteRequest, flagged, matches, rule_name
    from .._privacy.detectors import Redactor

    config = settings.config.routing
    if not config.enabled:
        return None
    body = {"model": record.model, "stream": record.stream, **record.input}
    route = next(
        (
            rule_name(rule, index)
            for index, rule in enumerate(config.rules)
            if matches(rule, RouteRequest("chat", body))
        ),
        None,
    )
    found = None
    pii = settings.config.privacy.pii
    if config.sensitive == "local" and pii:
        secrets = [b.api_key.get_secret_value() for b in backends]
        found = flagged(Redactor(pii, secrets), body)
    note = "the sample call's route, as its record carries it (null: no rule applied)"
    if found:
        note = (
            f"the [privacy] detectors flag the sample ({found}): it would go to local=True "
            "backends only (refused when there is none)"
        )
    elif config.sensitive == "local" and not pii:
        note = 'sensitive = "local" needs [privacy] pii detectors: a client refuses this setting'
    return {
        "sensitive": config.sensitive,
        "rules": [rule_name(rule, index) for index, rule in enumerate(config.rules)],
        "sample_call_route": "sensitive" if found else route,
        "note": note,
    }


def _environment_backends() -> list[Backend]:
    """The backends a `Client()` would build from the environment; none when it would
    fail (the preview then knows no backend key to scrub)."""
    try:
        return backends_from_arguments(None, None)
    except PipeclientError:
        return []
