"""Configuration from environment variables: `PIPECLIENT_<TABLE>__<KEY>` (parsed by
pydantic-settings) and the ecosystem's own variables (POSTHOG_*, LANGFUSE_*, OTEL_*)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .._exceptions import ConfigError
from .file import FILE_VARIABLE, GATEWAY_REFUSAL, KeyPath, check_keys, key_name, unknown

__all__ = ["ECOSYSTEM_VARIABLES", "EnvLayer", "configures_telemetry", "environment_layer"]


# The ecosystem's variables and the key each sets; a PIPECLIENT_ variable wins over them.
ECOSYSTEM_VARIABLES: dict[str, KeyPath] = {
    "POSTHOG_API_KEY": ("posthog", "api_key"),
    "POSTHOG_HOST": ("posthog", "host"),
    "LANGFUSE_PUBLIC_KEY": ("langfuse", "public_key"),
    "LANGFUSE_SECRET_KEY": ("langfuse", "secret_key"),
    "LANGFUSE_BASE_URL": ("langfuse", "host"),
    "LANGFUSE_HOST": ("langfuse", "host"),
}
# These fill the first [[otlp]] table, unless the configuration names its endpoint.
OTEL_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS")


# PIPECLIENT_ variables that are never telemetry keys (none has "__", none is a table's
# name): the backends' and the gateway's, and the file's path (read by the file lookup).
NOT_TELEMETRY_KEYS = frozenset(
    {
        "PIPECLIENT_API_KEY",
        "PIPECLIENT_BASE_URL",
        "PIPECLIENT_GATEWAY_URL",
        "PIPECLIENT_GATEWAY_API_KEY",
        "PIPECLIENT_GATEWAY_SPOOL_DIR",
        "PIPECLIENT_STORE_KEY",  # the default [store] key reads it through a placeholder
        "PIPECLIENT_CACHE_KEY",  # and the default [cache] key, this one
        FILE_VARIABLE,
    }
)


def configures_telemetry(env: Mapping[str, str]) -> bool:
    """False only when `environment_layer(env)` is certainly empty (and cannot fail):
    no ecosystem or OTEL_EXPORTER_OTLP_* value, no PIPECLIENT_ variable but those in
    NOT_TELEMETRY_KEYS. Cheap: it reads names, not values, and needs no model."""
    for name in (*ECOSYSTEM_VARIABLES, *OTEL_VARIABLES):
        if env.get(name, "").strip():
            return True
    for name in env:
        upper = name.upper()
        if upper.startswith("PIPECLIENT_") and upper not in NOT_TELEMETRY_KEYS:
            return True
    return False


@dataclass
class EnvLayer:
    """Entries (key path, value, source); a ("otlp",) entry replaces the whole list."""

    entries: list[tuple[KeyPath, Any, str]] = field(default_factory=list)
    otel: dict[str, tuple[Any, str]] = field(default_factory=dict)


def environment_layer(env: Mapping[str, str]) -> EnvLayer:
    layer = EnvLayer()
    seen: set[KeyPath] = set()
    for name, path in ECOSYSTEM_VARIABLES.items():
        value = env.get(name, "").strip()
        if value and path not in seen:
            seen.add(path)
            layer.entries.append((path, value, f"env {name}"))
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint:
        layer.otel["endpoint"] = (endpoint, "env OTEL_EXPORTER_OTLP_ENDPOINT")
    headers = env.get("OTEL_EXPORTER_OTLP_HEADERS", "").strip()
    if headers:
        parsed = _otel_headers(headers, "OTEL_EXPORTER_OTLP_HEADERS")
        layer.otel["headers"] = (parsed, "env OTEL_EXPORTER_OTLP_HEADERS")

    names = _telemetry_variables(env)
    if names:
        layer.entries += _pipeclient_entries(env, names)
    return layer


def _telemetry_variables(env: Mapping[str, str]) -> dict[str, str]:
    """PIPECLIENT_* variables meant as telemetry keys: name -> table; unknown tables refused."""
    from .models import section_models

    tables = section_models()
    found: dict[str, str] = {}
    for name in env:
        upper = name.upper()
        if not upper.startswith("PIPECLIENT_"):
            continue
        rest = upper[len("PIPECLIENT_") :]
        table = rest.split("__", 1)[0].lower()
        if "__" not in rest:  # PIPECLIENT_POSTHOG='{...}' is a table; PIPECLIENT_BASE_URL is not
            if rest == "GATEWAY":
                raise ConfigError(GATEWAY_REFUSAL, source=f"environment variable {name}")
            if table in tables:
                found[name] = table
            continue
        where = f"environment variable {name}"
        if table == "gateway":
            raise ConfigError(GATEWAY_REFUSAL, source=where)
        if table not in tables:
            raise ConfigError(unknown("table", table, list(tables)), source=where)
        found[name] = table
    return found


@functools.cache
def _environment_model() -> type[Any]:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from .budget import BudgetConfig
    from .cache import CacheConfig
    from .models import (
        AuditConfig,
        ExportConfig,
        LangfuseConfig,
        OtlpConfig,
        PostHogConfig,
        PricingConfig,
        PrivacyConfig,
        StoreConfig,
    )
    from .routing import RoutingConfig

    class FromEnvironment(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="PIPECLIENT_", env_nested_delimiter="__", case_sensitive=False
        )
        posthog: PostHogConfig | None = None
        langfuse: LangfuseConfig | None = None
        otlp: list[OtlpConfig] | None = None
        privacy: PrivacyConfig | None = None
        audit: AuditConfig | None = None
        store: StoreConfig | None = None
        export: ExportConfig | None = None
        pricing: PricingConfig | None = None
        budget: BudgetConfig | None = None
        routing: RoutingConfig | None = None
        cache: CacheConfig | None = None

    return FromEnvironment


def _raw_values(env: Mapping[str, str], names: Mapping[str, str]) -> dict[str, Any]:
    """The variables as a nested dict of raw values, as pydantic-settings reads them."""
    from pydantic_settings import EnvSettingsSource

    source = EnvSettingsSource(_environment_model(), case_sensitive=False)
    source.env_vars = {name.lower(): env[name] for name in names}
    failed = False
    try:
        return dict(source())
    except Exception:  # pydantic-settings' SettingsError: a value is not valid JSON
        failed = True
    assert failed
    raise ConfigError(
        "is not valid JSON; lists and tables take JSON, e.g. PIPECLIENT_PRIVACY__PII='[\"email\"]'",
        source=f"environment variable {_bad_json(env, names)}",
    )


def _bad_json(env: Mapping[str, str], names: Mapping[str, str]) -> str:
    for name in names:
        try:
            json.loads(env[name])
        except ValueError:
            if "__" not in name.upper()[len("PIPECLIENT_") :] or _is_list_key(name):
                return name
    return next(iter(names))


def _is_list_key(name: str) -> bool:
    key = name.upper().rsplit("__", 1)[-1].lower()
    return key in ("pii", "redact_properties", "headers", "rules")


def _variable(path: KeyPath, names: Mapping[str, str]) -> str:
    by_upper = {name.upper(): name for name in names}
    for length in range(len(path), 0, -1):
        candidate = "PIPECLIENT_" + "__".join(str(part).upper() for part in path[:length])
        if candidate in by_upper:
            return by_upper[candidate]
    return "PIPECLIENT_" + "__".join(str(part).upper() for part in path)


def _pipeclient_entries(
    env: Mapping[str, str], names: Mapping[str, str]
) -> list[tuple[KeyPath, Any, str]]:
    from .models import section_models

    raw = _raw_values(env, names)
    tables = section_models()
    entries: list[tuple[KeyPath, Any, str]] = []
    for table, value in raw.items():
        if table == "otlp":
            entries += _otlp_entries(value, names)
            continue
        where = f"environment variable {_variable((table,), names)}"
        if not isinstance(value, Mapping):
            raise ConfigError("must be a table (a JSON object)", source=where, key=table)
        for key in value:  # each key checked against the variable that set it
            check_keys(
                {key: None},
                tables[table],
                (table,),
                f"environment variable {_variable((table, key), names)}",
            )
        for key, item in value.items():
            variable = _variable((table, key), names)
            _check_depth(table, key, item, variable)
            entries.append(((table, key), item, f"env {variable}"))
    return entries


def _check_depth(table: str, key: str, value: Any, variable: str) -> None:
    if isinstance(value, Mapping) and key != "headers":
        raise ConfigError(
            f"'{key}' is not a table: set PIPECLIENT_{table.upper()}__{key.upper()} itself",
            source=f"environment variable {variable}",
            key=key_name((table, key)),
        )


def _otlp_entries(value: Any, names: Mapping[str, str]) -> list[tuple[KeyPath, Any, str]]:
    from .models import OtlpConfig

    whole = [name for name in names if name.upper() == "PIPECLIENT_OTLP"]
    parts = [name for name in names if name.upper().startswith("PIPECLIENT_OTLP__")]
    if whole and parts:
        raise ConfigError(
            f"use either {whole[0]} (a JSON list of tables) or PIPECLIENT_OTLP__<N>__<KEY> "
            f"variables ({', '.join(sorted(parts))}), not both",
            source="environment",
        )
    if whole:
        where = f"environment variable {whole[0]}"
        if not isinstance(value, list):
            raise ConfigError(
                'must be a JSON list of tables, e.g. [{"name": "c"}]', source=where, key="otlp"
            )
        for index, table in enumerate(value):
            check_keys(table, OtlpConfig, ("otlp", index), where)
        return [(("otlp",), value, f"env {whole[0]}")]
    entries: list[tuple[KeyPath, Any, str]] = []
    for index_text, table in dict(value).items():
        variable = _variable(("otlp", index_text), names)
        where = f"environment variable {variable}"
        if not str(index_text).isdigit():
            raise ConfigError(
                f"'{index_text}' is not a table number: use PIPECLIENT_OTLP__0__ENABLED "
                "for the first [[otlp]] table, __1__ for the second, ...",
                source=where,
            )
        index = int(index_text)
        check_keys(table, OtlpConfig, ("otlp", index), where)
        for key, item in table.items():
            variable = _variable(("otlp", index_text, key), names)
            if key == "headers" and isinstance(item, str):  # JSON, as for other tables
                item = _json_value(item, variable)
            _check_depth("otlp", key, item, variable)
            entries.append((("otlp", index, key), item, f"env {variable}"))
    return entries


def _json_value(text: str, variable: str) -> Any:
    failed = False
    try:
        return json.loads(text)
    except ValueError:
        failed = True
    assert failed
    raise ConfigError(
        'is not valid JSON; tables take JSON, e.g. \'{"authorization": "Bearer ..."}\'',
        source=f"environment variable {variable}",
    )


def _otel_headers(value: str, variable: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                "must be comma-separated key=value pairs, e.g. 'authorization=Bearer%20abc'",
                source=f"environment variable {variable}",
            )
        headers[unquote(key.strip())] = unquote(val.strip())
    return headers
