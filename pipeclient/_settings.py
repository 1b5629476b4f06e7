"""The effective telemetry configuration: defaults < file < environment < arguments.

Each layer is a nested dict; merging them keeps, for every key, the layer it came from,
so `telemetry status` can say why each value is what it is. Validation errors name the
file or variable, the key and the reason.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError

from ._dnt import do_not_track
from ._exceptions import ConfigError
from .config import OtlpConfig, TelemetryConfig, section_models

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["TelemetrySettings", "find_telemetry_file", "load_settings"]

FILE_VARIABLE = "PIPECLIENT_TELEMETRY_FILE"
DEFAULT = "default"
ARGUMENT = "argument"

# The ecosystem's own variables, and the key each one sets (PIPECLIENT_* ones win).
ECOSYSTEM_VARIABLES: dict[str, tuple[str | int, ...]] = {
    "POSTHOG_API_KEY": ("posthog", "api_key"),
    "POSTHOG_HOST": ("posthog", "host"),
    "LANGFUSE_PUBLIC_KEY": ("langfuse", "public_key"),
    "LANGFUSE_SECRET_KEY": ("langfuse", "secret_key"),
    "LANGFUSE_BASE_URL": ("langfuse", "host"),
    "LANGFUSE_HOST": ("langfuse", "host"),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otlp", 0, "endpoint"),
    "OTEL_EXPORTER_OTLP_HEADERS": ("otlp", 0, "headers"),
}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SWITCHABLE = ("posthog", "langfuse", "audit")

Path_ = tuple[str | int, ...]


def key_name(path: Path_) -> str:
    """`("otlp", 0, "endpoint")` -> `otlp[0].endpoint`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True)
class TelemetrySettings:
    """The configuration in force, with where each value came from."""

    config: TelemetryConfig
    sources: Mapping[str, str]  # key name -> "default", "argument", "file PATH", "env VAR"
    file: Path | None
    do_not_track: bool
    otel_sdk_disabled: bool
    service_name: str

    def source_of(self, key: str) -> str:
        return self.sources.get(key, DEFAULT)

    def otlp_enabled(self, table: OtlpConfig) -> bool:
        return table.enabled and not self.do_not_track and not self.otel_sdk_disabled

    @property
    def any_custom_stream(self) -> bool:
        config = self.config
        if self.do_not_track:
            return False
        return (
            config.posthog.enabled
            or config.langfuse.enabled
            or any(self.otlp_enabled(table) for table in config.otlp)
        )


def find_telemetry_file(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None
) -> Path | None:
    """PIPECLIENT_TELEMETRY_FILE, else ./.pipelex/telemetry.toml, else ~/.pipelex/telemetry.toml."""
    env = os.environ if environ is None else environ
    explicit = env.get(FILE_VARIABLE)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise ConfigError(
                "the file does not exist; create it with 'pipeclient init telemetry --path "
                f"{explicit}' or unset the variable",
                source=f"environment variable {FILE_VARIABLE}={explicit}",
            )
        return path
    for base in (cwd or Path.cwd(), home or Path.home()):
        candidate = base / ".pipelex" / "telemetry.toml"
        if candidate.is_file():
            return candidate
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot be read: {reason}", source=str(path)) from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML: {exc}", source=str(path)) from None


def load_settings(
    overrides: TelemetryConfig | Mapping[str, Any] | None = None,
    *,
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> TelemetrySettings:
    env = os.environ if environ is None else environ
    path = Path(file) if file is not None else find_telemetry_file(env, cwd, home)
    merged: dict[str, Any] = TelemetryConfig().model_dump()
    sources: dict[str, str] = {}

    if path is not None:
        raw = read_toml(path)
        _check_layer(raw, f"file {path}", str(path), strict=True)
        _merge(merged, raw, (), f"file {path}", sources)

    for key_path, (value, name) in _environment_layer(env).items():
        _set(merged, key_path, value, f"env {name}", sources)

    if overrides is not None:
        if isinstance(overrides, TelemetryConfig):
            overrides = overrides.model_dump(exclude_unset=True)
        _check_layer(dict(overrides), ARGUMENT, "Client(telemetry=...)", strict=False)
        _merge(merged, dict(overrides), (), ARGUMENT, sources)

    dnt = do_not_track(env)
    otel_disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    # Types first (placeholders are strings), then placeholders, then their values.
    config = _validate(merged, sources)
    resolved = config.model_dump()
    _resolve_placeholders(resolved, env, sources, dnt=dnt, otel_disabled=otel_disabled)
    config = _validate(resolved, sources)
    _check_required(config, sources, dnt=dnt)
    return TelemetrySettings(
        config=config,
        sources=sources,
        file=path,
        do_not_track=dnt,
        otel_sdk_disabled=otel_disabled,
        service_name=env.get("OTEL_SERVICE_NAME", "").strip() or "pipeclient",
    )


def _validate(merged: Mapping[str, Any], sources: Mapping[str, str]) -> TelemetryConfig:
    try:
        return TelemetryConfig.model_validate(merged)
    except ValidationError as exc:
        raise _error_from_validation(exc, sources) from None


# -- layers --------------------------------------------------------------------------


def _where(source: str) -> str:
    if source.startswith("env "):
        return f"environment variable {source[4:]}"
    if source.startswith("file "):
        return source[5:]
    return "Client(telemetry=...)" if source == ARGUMENT else "defaults"


def _check_layer(raw: Mapping[str, Any], source: str, where: str, *, strict: bool) -> None:
    """Unknown tables and keys, and (for TOML, which has types) wrong types."""
    tables = section_models()
    for name, value in raw.items():
        if name == "gateway":
            raise ConfigError(
                "the gateway telemetry stream cannot be configured or turned off: it is "
                "on whenever the managed gateway is a call's backend. Use another backend, "
                "or set DO_NOT_TRACK (gateway calls then fail).",
                source=where,
                key="gateway",
            )
        if name not in tables:
            raise ConfigError(_unknown("table", name, list(tables)), source=where, key=name)
        model = tables[name]
        items = value if isinstance(value, list) else [value]
        if name == "otlp" and not isinstance(value, list):
            raise ConfigError(
                "must be an array of tables: write [[otlp]], not [otlp]", source=where, key=name
            )
        for index, item in enumerate(items):
            path: Path_ = (name, index) if name == "otlp" else (name,)
            if not isinstance(item, Mapping):
                raise ConfigError("must be a table", source=where, key=key_name(path))
            for key in item:
                if key not in model.model_fields:
                    raise ConfigError(
                        _unknown("key", key, list(model.model_fields)),
                        source=where,
                        key=key_name((*path, key)),
                    )
            if strict:
                try:
                    model.model_validate(dict(item), strict=True)
                except ValidationError as exc:
                    raise _error_from_validation(exc, {}, prefix=path, where=where) from None


def _unknown(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind}{hint} (known: {', '.join(known)})"


def _merge(
    target: dict[str, Any],
    layer: Mapping[str, Any],
    prefix: Path_,
    source: str,
    sources: dict[str, str],
) -> None:
    for key, value in layer.items():
        path = (*prefix, key)
        if key == "otlp" and not prefix and isinstance(value, list):
            # [[otlp]] replaces the whole list; keys a table omits keep their defaults.
            target["otlp"] = []
            sources["otlp"] = source
            for index, table in enumerate(value):
                target["otlp"].append(OtlpConfig().model_dump())
                _merge(target["otlp"][index], table, ("otlp", index), source, sources)
            for name in [k for k in sources if k.startswith("otlp[")]:
                if sources[name] != source:
                    del sources[name]
        elif (
            isinstance(value, Mapping)
            and isinstance(target.get(key), dict)
            and path[-1] != "headers"
        ):
            _merge(target[key], value, path, source, sources)
        else:
            target[key] = copy.deepcopy(value)
            sources[key_name(path)] = source


def _set(
    target: dict[str, Any], path: Path_, value: Any, source: str, sources: dict[str, str]
) -> None:
    node: Any = target
    for index, part in enumerate(path[:-1]):
        if isinstance(part, int):
            while len(node) <= part:
                node.append(OtlpConfig(name=f"otlp{len(node)}").model_dump())
            node = node[part]
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = [] if isinstance(path[index + 1], int) else {}
            node = node[part]
    node[path[-1]] = value
    sources[key_name(path)] = source


def _environment_layer(env: Mapping[str, str]) -> dict[Path_, tuple[Any, str]]:
    """Values from the environment, keyed by path, with the variable each came from."""
    found: dict[Path_, tuple[Any, str]] = {}
    for name, path in ECOSYSTEM_VARIABLES.items():
        value = env.get(name, "").strip()
        if value and path not in found:
            if name == "OTEL_EXPORTER_OTLP_HEADERS":
                found[path] = (_otel_headers(value, name), name)
            else:
                found[path] = (value, name)
    nested = [name for name in env if name.upper().startswith("PIPECLIENT_") and "__" in name]
    if not nested:
        return found
    tables = section_models()
    for name in nested:
        section = name[len("PIPECLIENT_") :].split("__", 1)[0].lower()
        if section == "gateway":
            raise ConfigError(
                "the gateway telemetry stream cannot be configured or turned off: it is on "
                "whenever the managed gateway is a call's backend",
                source=f"environment variable {name}",
            )
        if section not in tables:
            raise ConfigError(
                _unknown("table", section, list(tables)), source=f"environment variable {name}"
            )
    layer = _pipeclient_variables(env)
    for path, value in _leaves(layer, ()):
        variable = _variable_for(path, env)
        found[path] = (value, variable)
        _check_env_key(path, variable)
    return found


@functools.cache
def _environment_model() -> type[Any]:
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from .config import AuditConfig, ExportConfig, LangfuseConfig, PostHogConfig, PrivacyConfig

    class FromEnvironment(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="PIPECLIENT_", env_nested_delimiter="__", case_sensitive=False
        )
        posthog: PostHogConfig | None = None
        langfuse: LangfuseConfig | None = None
        otlp: list[OtlpConfig] | None = None
        privacy: PrivacyConfig | None = None
        audit: AuditConfig | None = None
        export: ExportConfig | None = None

    return FromEnvironment


def _pipeclient_variables(env: Mapping[str, str]) -> dict[str, Any]:
    """PIPECLIENT_TABLE__KEY variables as a nested dict of raw values (pydantic-settings)."""
    from pydantic_settings import EnvSettingsSource

    source = EnvSettingsSource(_environment_model(), case_sensitive=False)
    source.env_vars = {name.lower(): value for name, value in env.items()}
    try:
        return dict(source())
    except Exception:  # pydantic-settings' SettingsError: a value is not valid JSON
        raise ConfigError(
            "is not valid JSON; lists and tables take JSON, e.g. "
            "PIPECLIENT_PRIVACY__PII='[\"email\"]'",
            source=f"environment variable {_bad_json_variable(env)}",
        ) from None


def _bad_json_variable(env: Mapping[str, str]) -> str:
    for name, value in env.items():
        if name.upper().startswith("PIPECLIENT_") and value.strip()[:1] in ("[", "{"):
            try:
                json.loads(value)
            except ValueError:
                return name
    return "PIPECLIENT_*"


def _leaves(value: Any, prefix: Path_) -> list[tuple[Path_, Any]]:
    if isinstance(value, Mapping) and not (prefix and prefix[-1] == "headers"):
        out: list[tuple[Path_, Any]] = []
        for key, item in value.items():
            part: str | int = int(key) if prefix == ("otlp",) and str(key).isdigit() else key
            out += _leaves(item, (*prefix, part))
        return out
    if prefix == ("otlp",) and isinstance(value, list):
        return [(("otlp",), value)]
    return [(prefix, value)]


def _variable_for(path: Path_, env: Mapping[str, str]) -> str:
    upper = {name.upper(): name for name in env}
    for length in range(len(path), 0, -1):
        candidate = "PIPECLIENT_" + "__".join(str(part).upper() for part in path[:length])
        if candidate in upper:
            return upper[candidate]
    return "PIPECLIENT_" + "__".join(str(part).upper() for part in path)


def _check_env_key(path: Path_, variable: str) -> None:
    tables = section_models()
    model = tables.get(str(path[0]))
    if model is None or len(path) < 2:
        return
    key = path[2] if path[0] == "otlp" and len(path) > 2 else path[1]
    if isinstance(key, str) and key not in model.model_fields:
        raise ConfigError(
            _unknown("key", key, list(model.model_fields)),
            source=f"environment variable {variable}",
            key=key_name(path),
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


# -- placeholders and checks ----------------------------------------------------------


def _active_sections(
    merged: Mapping[str, Any], *, dnt: bool, otel_disabled: bool
) -> list[tuple[Path_, bool]]:
    sections: list[tuple[Path_, bool]] = []
    for name in ("posthog", "langfuse"):
        sections.append(((name,), bool(merged[name].get("enabled")) and not dnt))
    for index, table in enumerate(merged["otlp"]):
        on = isinstance(table, Mapping) and bool(table.get("enabled"))
        sections.append((("otlp", index), on and not dnt and not otel_disabled))
    sections.append((("audit",), bool(merged["audit"].get("enabled"))))
    sections += [(("privacy",), True), (("export",), True)]
    return sections


def _resolve_placeholders(
    merged: dict[str, Any],
    env: Mapping[str, str],
    sources: Mapping[str, str],
    *,
    dnt: bool,
    otel_disabled: bool,
) -> None:
    for path, active in _active_sections(merged, dnt=dnt, otel_disabled=otel_disabled):
        node: Any = merged
        for part in path:
            node = node[part]
        if not isinstance(node, dict):
            continue
        for key, value in list(node.items()):
            node[key] = _resolve(value, (*path, key), env, sources, active)


def _resolve(
    value: Any, path: Path_, env: Mapping[str, str], sources: Mapping[str, str], active: bool
) -> Any:
    if isinstance(value, list):
        return [_resolve(item, path, env, sources, active) for item in value]
    if isinstance(value, dict):
        return {k: _resolve(v, (*path, k), env, sources, active) for k, v in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        variable, default = match.group(1), match.group(2)
        found = env.get(variable)
        if found:
            return found
        if default is not None:
            return default
        raise ConfigError(
            f"${{{variable}}} is not set in the environment; set {variable}, give a default "
            f"with ${{{variable}:-value}}, or write the value itself",
            source=_where_value(path, sources),
            key=key_name(path),
        )

    if not active:
        return value
    return _PLACEHOLDER.sub(substitute, value)


def _where_value(path: Path_, sources: Mapping[str, str]) -> str:
    """Where a value came from; for a default, where its table was switched on."""
    source = _source_for(path, sources)
    if source != DEFAULT:
        return _where(source)
    switch = _source_for((*path[:-1], "enabled"), sources)
    return f"default value, in a table enabled by {_where(switch)}"


def _source_for(path: Path_, sources: Mapping[str, str]) -> str:
    for length in range(len(path), 0, -1):
        found = sources.get(key_name(path[:length]))
        if found:
            return found
    return DEFAULT


def _check_required(config: TelemetryConfig, sources: Mapping[str, str], *, dnt: bool) -> None:
    def require(path: Path_, value: str, hint: str) -> None:
        if not value.strip():
            raise ConfigError(
                f"is empty, and the stream is enabled; {hint}",
                source=_where_value(path, sources),
                key=key_name(path),
            )

    if config.posthog.enabled and not dnt:
        require(("posthog", "api_key"), config.posthog.api_key, "set POSTHOG_API_KEY")
    if config.langfuse.enabled and not dnt:
        require(("langfuse", "public_key"), config.langfuse.public_key, "set LANGFUSE_PUBLIC_KEY")
        require(("langfuse", "secret_key"), config.langfuse.secret_key, "set LANGFUSE_SECRET_KEY")


def _error_from_validation(
    exc: ValidationError,
    sources: Mapping[str, str],
    *,
    prefix: Path_ = (),
    where: str | None = None,
) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    path: Path_ = (*prefix, *error["loc"])
    reason = str(error["msg"]).removeprefix("Value error, ")
    if "input" in error and error["type"] not in ("missing",) and not _secret_key(path):
        shown = repr(error["input"])
        reason += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
    return ConfigError(
        reason, source=where or _where(_source_for(path, sources)), key=key_name(path)
    )


def _secret_key(path: Path_) -> bool:
    return (bool(path) and str(path[-1]) in ("api_key", "secret_key", "public_key")) or (
        "headers" in path
    )
