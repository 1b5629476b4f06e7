"""`[routing]`: which backends a request may go to, by what it is (and what it holds)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["RULE_NAME", "RoutingConfig", "RoutingRule"]

# A rule's name is sent to telemetry as the route taken: an identifier, never free text.
RULE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class RoutingRule(BaseModel):
    """One `[[routing.rules]]` entry: conditions, all of which must hold, and the
    backends a matching request may go to (the first matching rule wins)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    name: str = Field("", description="the route telemetry shows; empty: rules[N]")
    min_input_tokens: int | None = Field(
        None, ge=0, description="estimated input tokens at least this"
    )
    max_input_tokens: int | None = Field(
        None, ge=0, description="estimated input tokens at most this"
    )
    tools: bool | None = Field(None, description="true: the request offers tools; false: none")
    images: bool | None = Field(None, description="true: the input holds images; false: none")
    model: str | list[str] | None = Field(None, description="the model name sent (one or a list)")
    backends: list[str] = Field(default_factory=list, description="backend names to use")
    local: bool = Field(False, description="true: the local=True backends")

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if value and not RULE_NAME.fullmatch(value):
            raise ValueError(
                "must be 1 to 64 letters, digits, '_', '.' or '-' (it is sent to telemetry "
                "as the route taken)"
            )
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RoutingRule:
        if bool(self.backends) == self.local:
            raise ValueError(
                'a rule needs one target: backends = ["name", ...] or local = true '
                "(not both, not neither)"
            )
        low, high = self.min_input_tokens, self.max_input_tokens
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_input_tokens ({low}) is above max_input_tokens ({high})")
        return self


class RoutingConfig(BaseModel):
    """Which backends each request may go to; the retries and failover stay among them."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    sensitive: Literal["off", "local"] = Field(
        "off",
        description='"local": requests the [privacy] pii detectors flag go to local=True '
        "backends only",
    )
    rules: list[RoutingRule] = Field(
        default_factory=list,
        description="the first rule a request matches narrows its backends",
        json_schema_extra={
            "example": '[[routing.rules]]\nname = "long"\nmin_input_tokens = 20000\n'
            'backends = ["big-context"]'
        },
    )

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[RoutingRule]) -> list[RoutingRule]:
        names = [rule.name for rule in value if rule.name]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(repeated)}")
        return value

    @property
    def enabled(self) -> bool:
        return self.sensitive != "off" or bool(self.rules)
