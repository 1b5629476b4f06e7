"""The gateway event built without a model per record is the allowlisting models' output."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeclient._cli.preview import sample_call
from pipeclient._sinks.gateway import event as gateway
from pipeclient._telemetry.record import CallRecord, ErrorInfo
from pipeclient._telemetry.sink import json_text

from .test_gateway import EVENT_KEYS

BILLING_KEYS = {"request_id", "timestamp", "operation", "model", "usage", "outcome"}
PARAMETER_KEYS = set(gateway.GatewayParameters.model_fields)
NAMES = [
    "temperature",
    "top_p",
    "max_tokens",
    "max_output_tokens",
    "max_completion_tokens",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "size",
    "response_format",
    "user",
    "stop",
    "reasoning_effort",
]
OPERATIONS = ["chat", "embeddings", "images", "responses", "text_completion", "speech"]

_floats = st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e9)
_counts = st.none() | st.integers(min_value=0, max_value=10**6)
_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["json_schema", "json_object", "text", "512x256", "99999x1", "1x"])
)
_parameters = st.dictionaries(st.sampled_from(NAMES), _values, max_size=8)
_error = st.none() | st.builds(
    ErrorInfo,
    type=st.sampled_from(["RateLimitError", "APIError", "bad type", "", "x" * 70]),
    code=st.none() | st.integers(0, 700) | st.text(max_size=8),
    message=st.none() | st.text(max_size=20),
)


BASE = dataclasses.replace(sample_call(), gateway=True, backend="gateway")


def _record(**fields: Any) -> CallRecord:
    return dataclasses.replace(BASE, **fields)


# Values as pipeclient records them: the builder must take these itself.
plain_records = st.builds(
    _record,
    request_id=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1),
    operation=st.sampled_from(OPERATIONS),
    model=st.text(max_size=300),
    stream=st.booleans(),
    no_log=st.booleans(),
    started_at=st.floats(min_value=0, max_value=4e9),
    total_ms=st.floats(min_value=-5, max_value=1e7) | st.integers(0, 10**6),
    ttft_ms=st.none() | _floats,
    attempts=st.integers(min_value=0, max_value=20),
    http_status=st.none() | st.integers(100, 599),
    outcome=st.sampled_from(["ok", "error"]),
    error=_error,
    parameters=_parameters,
    input_tokens=_counts,
    output_tokens=_counts,
)

# Anything at all in the fields the event reads: the models judge what is unusual.
wild_records = st.builds(
    _record,
    request_id=st.text(max_size=220),
    operation=st.sampled_from([*OPERATIONS, "other", ""]),
    model=st.text(max_size=300),
    stream=st.booleans() | st.integers(0, 1),
    no_log=st.booleans(),
    total_ms=st.floats() | st.integers(-5, 2**60),
    ttft_ms=st.none() | st.floats() | st.integers(-5, 2**60) | st.booleans(),
    attempts=st.integers(-3, 5) | st.booleans(),
    http_status=st.none() | st.integers(0, 1000) | st.booleans(),
    outcome=st.sampled_from(["ok", "error", "unknown"]),
    error=_error,
    parameters=_parameters,
    input_tokens=st.none() | st.integers(-3, 10**6) | st.booleans(),
    output_tokens=st.none() | st.integers(-3, 10**6) | st.floats(),
)


def _outcome(build: Any, record: CallRecord) -> tuple[str, str]:
    try:
        return "event", json_text(build(record))
    except Exception as exc:  # the models refuse a value: the builder must refuse it too
        return "refused", type(exc).__name__


def _allowlisted(event: dict[str, Any]) -> None:
    assert set(event) in (EVENT_KEYS, BILLING_KEYS)
    assert set(event["usage"]) == {"input_tokens", "output_tokens"}
    if "parameters" in event:
        assert set(event["parameters"]) <= PARAMETER_KEYS
        for value in event["parameters"].values():
            assert type(value) in (int, float) or value in ("json_schema", "json_object", "text")
            assert not isinstance(value, float) or math.isfinite(value)
        assert set(event["latency_ms"]) == {"ttft", "total"}
        assert event["error"] is None or set(event["error"]) == {"type", "code"}
        assert event["sdk"] == {"name": "pipeclient", "version": event["sdk"]["version"]}


@settings(max_examples=400, deadline=None)
@given(record=plain_records)
def test_the_builder_makes_the_models_event_for_recorded_values(record: CallRecord) -> None:
    built = gateway._fast(record)  # never handed to the models for values like these
    assert json_text(built) == json_text(gateway.validated_event(record))
    assert list(built) == list(gateway.validated_event(record))
    _allowlisted(built)


@settings(max_examples=400, deadline=None)
@given(record=wild_records)
def test_any_value_gives_the_models_event_or_their_refusal(record: CallRecord) -> None:
    assert _outcome(gateway.gateway_event, record) == _outcome(gateway.validated_event, record)
    kind, _ = _outcome(gateway.gateway_event, record)
    if kind == "event":
        _allowlisted(gateway.gateway_event(record))


def test_no_key_outside_the_allowlist_can_appear() -> None:
    extra = {name: 1 for name in ("user", "stop", "logit_bias", "prompt", "metadata")}
    record = _record(
        parameters={**extra, "temperature": 0.5, "response_format": "free text"},
        error=ErrorInfo("Some Error: with text", "code with spaces", "the provider's words"),
        http_status=429,
        outcome="error",
    )
    event = gateway.gateway_event(record)
    _allowlisted(event)
    assert event["parameters"] == {"temperature": 0.5}
    assert event["error"] == {"type": "Error", "code": 429}
    assert "provider" not in json_text(event)
