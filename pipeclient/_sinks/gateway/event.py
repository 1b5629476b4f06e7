"""The gateway telemetry event, schema `pipeclient.gateway.v1` (DESIGN 5.3), built through
allowlisting models: only the pinned fields, only numbers, booleans, fixed enums and
identifiers. No free text from a request or a response can reach it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..._telemetry.record import CallRecord, Operation
from ..._telemetry.sink import rfc3339
from ..._version import __version__

__all__ = [
    "SCHEMA",
    "GatewayBillingEvent",
    "GatewayEvent",
    "gateway_event",
    "validated_event",
]

SCHEMA: Literal["pipeclient.gateway.v1"] = "pipeclient.gateway.v1"

# An exception class name, e.g. "RateLimitError": an identifier, never a message.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,200}$")]
ModelName = Annotated[str, StringConstraints(max_length=256)]
Count = Annotated[int, Field(ge=0)]
Milliseconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Number = Annotated[float, Field(allow_inf_nan=False)]


# Every operation pipeclient records: the pinned ones (chat, embeddings, images) and the
# endpoints added since, under the same names as every other destination sees them.
GatewayOperation = Operation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GatewayParameters(_Strict):
    temperature: Number | None = None
    top_p: Number | None = None
    max_tokens: Count | None = None
    max_completion_tokens: Count | None = None
    n: Count | None = None
    seed: int | None = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    width: Count | None = None
    height: Count | None = None
    structuring_method: Literal["json_schema", "json_object", "text"] | None = None


class GatewayUsage(_Strict):
    input_tokens: Count | None
    output_tokens: Count | None


class GatewayLatency(_Strict):
    ttft: Milliseconds | None
    total: Milliseconds


class GatewayError(_Strict):
    type: Identifier
    code: Annotated[int, Field(ge=100, le=599)] | None  # the HTTP status; never provider text


class GatewaySdk(_Strict):
    name: Literal["pipeclient"]
    version: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z.+-]{1,32}$")]


class GatewayEvent(_Strict):
    """One call to the gateway, as its telemetry endpoint receives it."""

    schema_: Literal["pipeclient.gateway.v1"] = Field(alias="schema")
    request_id: RequestId
    timestamp: str
    operation: GatewayOperation
    model: ModelName
    stream: bool
    parameters: GatewayParameters
    usage: GatewayUsage
    latency_ms: GatewayLatency
    outcome: Literal["ok", "error"]
    error: GatewayError | None
    attempts: Count
    sdk: GatewaySdk


class GatewayBillingEvent(_Strict):
    """A no-log call: only what billing needs (DESIGN 5.4)."""

    request_id: RequestId
    timestamp: str
    operation: GatewayOperation
    model: ModelName
    usage: GatewayUsage
    outcome: Literal["ok", "error"]


_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_COUNTS = ("max_tokens", "max_completion_tokens", "n", "seed")
# The Responses API's name for the allowlist's max_tokens.
_ALIASES = {"max_output_tokens": "max_tokens"}
_SIZE = re.compile(r"^([0-9]{1,5})x([0-9]{1,5})$")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _parameters(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """The allowlisted parameters, with the type each must have; anything else is left out."""
    out: dict[str, Any] = {}
    for alias, name in _ALIASES.items():
        if alias in recorded and name not in recorded:
            recorded = {**recorded, name: recorded[alias]}
    for name in _NUMBERS:
        value = recorded.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    for name in _COUNTS:
        value = recorded.get(name)
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (name == "seed" or value >= 0)
        ):
            out[name] = value
    size = recorded.get("size")
    if isinstance(size, str) and (match := _SIZE.match(size)):
        out["width"], out["height"] = int(match.group(1)), int(match.group(2))
    method = recorded.get("response_format")
    if method in ("json_schema", "json_object", "text"):
        out["structuring_method"] = method
    return out


def validated_event(record: CallRecord) -> dict[str, Any]:
    """The event for a call, validated by the allowlisting model; a no-log call's is the
    billing event. The reference `gateway_event` is held to (and falls back on)."""
    usage = GatewayUsage(input_tokens=record.input_tokens, output_tokens=record.output_tokens)
    common: dict[str, Any] = {
        "request_id": record.request_id,
        "timestamp": rfc3339(record.started_at),
        "operation": record.operation,
        "model": record.model[:256],
        "usage": usage,
        "outcome": record.outcome,
    }
    if record.no_log:
        return GatewayBillingEvent(**common).model_dump(mode="json")
    error = None
    if record.error is not None:
        status = record.http_status if record.http_status and record.http_status >= 400 else None
        kind = record.error.type
        error = GatewayError(type=kind if _IDENTIFIER.fullmatch(kind) else "Error", code=status)
    event = GatewayEvent(
        schema=SCHEMA,
        **common,
        stream=record.stream,
        parameters=GatewayParameters(**_parameters(dict(record.parameters))),
        latency_ms=GatewayLatency(ttft=record.ttft_ms, total=max(0.0, record.total_ms)),
        error=error,
        attempts=record.attempts,
        sdk=GatewaySdk(name="pipeclient", version=__version__),
    )
    dumped = event.model_dump(mode="json", by_alias=True)
    dumped["parameters"] = {k: v for k, v in dumped["parameters"].items() if v is not None}
    return dumped


# -- the same event without a model per record --------------------------------------------
#
# The worker builds one event per call, and validating six models per event was most of
# the gateway's CPU. `gateway_event` checks each value the way the strict models do (exact
# types, ranges, patterns) and builds the same dict, keys in the models' order; a value it
# does not take as plainly valid sends the record through the models instead, so that
# anything unusual is validated (or refused) exactly as before. A test holds the two to the
# same output for generated records.

_OPERATIONS = frozenset(get_args(Operation))
_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,200}")
_SDK = {"name": "pipeclient", "version": __version__}
_SDK_VALID = re.fullmatch(r"[0-9A-Za-z.+-]{1,32}", __version__) is not None
_COUNT_PARAMETERS = ("max_tokens", "max_completion_tokens", "n", "seed", "width", "height")
_PARAMETER_ORDER = tuple(GatewayParameters.model_fields)
_FLOAT_EXACT = 2**53  # an int below this is a float exactly, as the model makes it


class _Unusual(Exception):
    """A value the models must judge."""


def _count(value: Any) -> int | None:
    if value is None or (type(value) is int and value >= 0):
        return value
    raise _Unusual


def _milliseconds(value: Any) -> float:
    kind = type(value)
    if kind is float:
        if value >= 0 and math.isfinite(value):
            return value  # type: ignore[no-any-return]
    elif kind is int and 0 <= value < _FLOAT_EXACT:
        return float(value)
    raise _Unusual


def _fast(record: CallRecord) -> dict[str, Any]:
    request_id, model, operation = record.request_id, record.model, record.operation
    if (
        type(request_id) is not str
        or not _REQUEST_ID.fullmatch(request_id)
        or type(model) is not str
        or type(operation) is not str
        or operation not in _OPERATIONS
        or record.outcome not in ("ok", "error")
        or type(record.outcome) is not str
    ):
        raise _Unusual
    common = {
        "request_id": request_id,
        "timestamp": rfc3339(record.started_at),
        "operation": operation,
        "model": model[:256],
        "usage": {
            "input_tokens": _count(record.input_tokens),
            "output_tokens": _count(record.output_tokens),
        },
        "outcome": record.outcome,
    }
    if record.no_log:
        return common
    error = None
    if record.error is not None:
        status = record.http_status if record.http_status and record.http_status >= 400 else None
        kind = record.error.type
        if status is not None and (type(status) is not int or status > 599):
            raise _Unusual
        error = {"type": kind if _IDENTIFIER.fullmatch(kind) else "Error", "code": status}
    ttft = record.ttft_ms
    if type(record.stream) is not bool or not _SDK_VALID:
        raise _Unusual
    found = _parameters(record.parameters)
    if any(type(found[name]) is not int for name in _COUNT_PARAMETERS if name in found):
        raise _Unusual
    return {
        "schema": SCHEMA,
        "request_id": request_id,
        "timestamp": common["timestamp"],
        "operation": operation,
        "model": common["model"],
        "stream": record.stream,
        "parameters": {name: found[name] for name in _PARAMETER_ORDER if name in found},
        "usage": common["usage"],
        "latency_ms": {
            "ttft": None if ttft is None else _milliseconds(ttft),
            "total": _milliseconds(max(0.0, record.total_ms)),
        },
        "outcome": record.outcome,
        "error": error,
        "attempts": _count(record.attempts),
        "sdk": dict(_SDK),
    }


def gateway_event(record: CallRecord) -> dict[str, Any]:
    """The event for a call, the allowlisting models' output (`validated_event`) built
    without them; a no-log call's is the billing event."""
    try:
        return _fast(record)
    except _Unusual:
        return validated_event(record)
