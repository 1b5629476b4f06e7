"""Backends: where calls go, read from arguments or the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .._config.urls import check_url
from .._exceptions import ConfigError

__all__ = [
    "Backend",
    "backends_from_arguments",
    "backends_from_env",
    "check_header_value",
    "gateway_url_from_env",
    "is_gateway",
]

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
    `local=True`: the backend runs on the user's own infrastructure (never the gateway).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(min_length=1)
    base_url: str
    api_key: SecretStr
    kind: BackendKind = "openai"
    weight: float = Field(default=1.0, ge=0)
    stream_usage: bool = True
    no_log: bool = False
    headers: Mapping[str, str] = Field(default_factory=dict, repr=False, exclude=True)
    #: query parameters sent with every call to this backend (Azure's `api-version`)
    default_query: Mapping[str, str] = Field(default_factory=dict)
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = Field(
        default=None, repr=False, exclude=True
    )
    local: bool = False

    @model_validator(mode="after")
    def _check_local(self) -> Backend:
        if self.local and self.kind == "gateway":
            raise ValueError(
                "local=True cannot be set on a gateway backend: the managed gateway is a "
                "third party; remove local=True or use kind='openai' for your own server"
            )
        return self

    def __init__(self, _source: str | None = None, **data: Any) -> None:
        try:
            super().__init__(**data)
            return
        except ValidationError as exc:
            name = data.get("name")
            where = _source or (f"Backend(name={name!r})" if isinstance(name, str) else "Backend")
            error = _config_error(exc, where)
        # Raised outside the handler so that no __context__ keeps the rejected input.
        raise error

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        check_url(value)
        return value.strip().rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if not key:
            raise ValueError(
                "is empty; pass the provider's key (for a server without authentication, "
                "any placeholder such as 'none')"
            )
        if not all("!" <= char <= "~" for char in key):
            raise ValueError(
                "contains a space, a control character or a non-ASCII character (often "
                "pasted by accident); an API key is printable ASCII only"
            )
        return SecretStr(key)

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for name, header in value.items():
            if not header_is_valid(name, header):
                raise ValueError(f"{_HEADER_RULE} (header {name!r})")
        return dict(value)

    def __hash__(self) -> int:
        return hash((self.name, self.base_url, self.kind))

    @property
    def host(self) -> str:
        return (urlsplit(self.base_url).hostname or "").lower().rstrip(".")


_HEADER_RULE = (
    "is not a valid HTTP header: names and values must be printable ASCII strings "
    "without line breaks"
)


def header_is_valid(name: object, value: object) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and all("!" <= char <= "~" and char != ":" for char in name)
        and isinstance(value, str)
        and all(" " <= char <= "~" or char == "\t" for char in value)
    )


def check_header_value(name: str, value: str, *, source: str, key: str) -> None:
    """Header names and values must be sendable; the value is never echoed."""
    if not header_is_valid(name, value):
        raise ConfigError(_HEADER_RULE, source=source, key=key)


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
    """PIPECLIENT_GATEWAY_URL, checked: a malformed one would silently defeat detection."""
    found = _env(os.environ if environ is None else environ, "PIPECLIENT_GATEWAY_URL")
    if found is None:
        return None
    try:
        check_url(found[1])
    except ValueError as exc:
        reason = str(exc)
    else:
        return found[1].rstrip("/")
    raise ConfigError(reason, source="environment variable PIPECLIENT_GATEWAY_URL")


def backends_from_arguments(
    api_key: str | None, base_url: str | None, environ: Mapping[str, str] | None = None
) -> list[Backend]:
    """`Client(api_key=, base_url=)`: each missing one from its own variables, never from
    the gateway's (its key must not go to another host)."""
    env = os.environ if environ is None else environ
    if api_key is None and base_url is None:
        return backends_from_env(env)
    key_source = "Client(api_key=...)"
    if api_key is None:
        found_key = _env(env, "PIPECLIENT_API_KEY", "OPENAI_API_KEY")
        if found_key is None:
            raise ConfigError(
                "base_url is given but no API key: pass api_key=, or set PIPECLIENT_API_KEY "
                "(or OPENAI_API_KEY); for a server without authentication any placeholder works",
                source="Client arguments",
                key="api_key",
            )
        key_source, api_key = f"environment variable {found_key[0]}", found_key[1]
    url_source = "Client(base_url=...)"
    if base_url is None:
        found_url = _env(env, "PIPECLIENT_BASE_URL", "OPENAI_BASE_URL")
        url_source, base_url = (
            (f"environment variable {found_url[0]}", found_url[1])
            if found_url
            else ("default", DEFAULT_OPENAI_BASE_URL)
        )
    source = f"{url_source} with the key from {key_source}"
    return [Backend(source, name="default", base_url=base_url, api_key=api_key)]


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
