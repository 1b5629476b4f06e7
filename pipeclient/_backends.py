"""Backends: where calls go, read from arguments or the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ._exceptions import ConfigError

__all__ = ["Backend", "backends_from_env", "is_gateway"]

BackendKind = Literal["openai", "gateway"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"

_HELP_NO_BACKEND = (
    "no backend configured. Set PIPECLIENT_BASE_URL and PIPECLIENT_API_KEY (or "
    "OPENAI_BASE_URL and OPENAI_API_KEY; OPENAI_API_KEY alone targets api.openai.com), "
    "or PIPECLIENT_GATEWAY_URL and PIPECLIENT_GATEWAY_API_KEY for the managed gateway, "
    "or pass Client(backends=[pipeclient.Backend(name=..., base_url=..., api_key=...)])"
)


class Backend(BaseModel):
    """One OpenAI-compatible endpoint.

    `weight` shares traffic between healthy backends (0: used only when the others fail).
    `stream_usage=False` is for providers that reject `stream_options`. `no_log=True` is a
    no-log key: custom telemetry and the audit log get nothing for its calls.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    base_url: str
    api_key: SecretStr
    kind: BackendKind = "openai"
    weight: float = Field(default=1.0, ge=0)
    stream_usage: bool = True
    no_log: bool = False
    headers: Mapping[str, str] = Field(default_factory=dict, repr=False)
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = Field(
        default=None, repr=False, exclude=True
    )

    def __init__(self, _source: str | None = None, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            name = data.get("name")
            where = _source or (f"Backend(name={name!r})" if isinstance(name, str) else "Backend")
            raise _config_error(exc, where) from None

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        # The value is not echoed: a key pasted into the wrong field must not be printed.
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                "is not an http(s) URL: it must start with 'http://' or 'https://', "
                "like 'https://api.openai.com/v1'"
            )
        if not parts.hostname:
            raise ValueError("is not an http(s) URL with a host, like 'https://api.openai.com/v1'")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are not allowed; pass api_key instead")
        return value.strip().rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError(
                "is empty; pass the provider's key (for a server without authentication, "
                "any placeholder such as 'none')"
            )
        return value

    @property
    def host(self) -> str:
        return (urlsplit(self.base_url).hostname or "").lower().rstrip(".")


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    # A misspelt field is the likeliest root cause of the other errors: report it first.
    errors = sorted(
        exc.errors(include_input=False, include_url=False),
        key=lambda error: error["type"] != "extra_forbidden",
    )
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or None
    reason = first["msg"]
    if first["type"] == "literal_error" and key == "kind":
        reason = "unknown backend kind; expected 'openai' or 'gateway'"
    elif first["type"] == "missing":
        reason = "is required"
    elif first["type"] == "extra_forbidden":
        reason = "is not a Backend field (known: " + ", ".join(Backend.model_fields) + ")"
    reason = reason.removeprefix("Value error, ")
    return ConfigError(reason, source=source, key=key)


def is_gateway(backend: Backend, gateway_url: str | None) -> bool:
    """True when calls to `backend` go to the managed gateway, whatever its kind says."""
    if backend.kind == "gateway":
        return True
    if not gateway_url:
        return False
    gateway_host = (urlsplit(gateway_url).hostname or "").lower().rstrip(".")
    return bool(gateway_host) and backend.host == gateway_host


def _env(environ: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def gateway_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    found = _env(os.environ if environ is None else environ, "PIPECLIENT_GATEWAY_URL")
    return found[1] if found else None


def backends_from_env(environ: Mapping[str, str] | None = None) -> list[Backend]:
    """The backend the environment describes, or a ConfigError saying what to set."""
    env = os.environ if environ is None else environ
    base = _env(env, "PIPECLIENT_BASE_URL", "OPENAI_BASE_URL")
    key = _env(env, "PIPECLIENT_API_KEY", "OPENAI_API_KEY")
    if base or key:
        if key is None:
            assert base is not None
            raise ConfigError(
                f"{base[0]} is set but no API key is: set PIPECLIENT_API_KEY (or "
                "OPENAI_API_KEY); for a server without authentication any placeholder works",
                source="environment",
                key="PIPECLIENT_API_KEY",
            )
        base_url = base[1] if base else DEFAULT_OPENAI_BASE_URL
        source = f"environment variable {base[0]}" if base else f"environment variable {key[0]}"
        return [Backend(source, name="default", base_url=base_url, api_key=key[1])]
    gateway_url = _env(env, "PIPECLIENT_GATEWAY_URL")
    gateway_key = _env(env, "PIPECLIENT_GATEWAY_API_KEY")
    if gateway_url and gateway_key:
        return [
            Backend(
                "environment variable PIPECLIENT_GATEWAY_URL",
                name="gateway",
                base_url=gateway_url[1],
                api_key=gateway_key[1],
                kind="gateway",
            )
        ]
    if gateway_url or gateway_key:
        missing = "PIPECLIENT_GATEWAY_API_KEY" if gateway_url else "PIPECLIENT_GATEWAY_URL"
        raise ConfigError(
            f"the gateway is half configured: {missing} is not set",
            source="environment",
            key=missing,
        )
    raise ConfigError(_HELP_NO_BACKEND)
