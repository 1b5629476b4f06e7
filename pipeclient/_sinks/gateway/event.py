"""The gateway telemetry event, schema `pipeclient.gateway.v1` (DESIGN 5.3), built through
allowlisting models: only the pinned fields, only numbers, booleans, fixed enums and
identifiers. No free text from a request or a response can reach it.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..._telemetry.record import CallRecord, Operation
from ..._telemetry.sink import rfc3339
from ..._version import __version__

__all__ = ["SCHEMA", "GatewayBillingEvent", "GatewayEvent", "gateway_event"]

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


def _parameters(recorded: dict[str, Any]) -> dict[str, Any]:
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


def gateway_event(record: CallRecord) -> dict[str, Any]:
    """The event for a call, validated by the allowlisting model; a no-log call's is the
    billing event."""
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
