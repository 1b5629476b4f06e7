"""The effective telemetry configuration: defaults < file < environment < arguments.

Each layer is a list of (key path, value, source) entries; merging them keeps, for every
key, the layer it came from, so `telemetry status` can say why each value is what it is.
Errors name the file or variable, the key and the reason, and never echo a secret.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from .._exceptions import ConfigError
from .dnt import DO_NOT_TRACK_VARIABLE, do_not_track
from .env import EnvLayer, configures_telemetry, environment_layer
from .file import KeyPath, check_tables, find_telemetry_file, key_name, read_toml
from .keys import decode_key
from .placeholders import resolve

if TYPE_CHECKING:
    # Imported where settings are built: a client that nothing configures gets
    # `DefaultSettings` and never loads the model unless its settings are read.
    from .models import OtlpConfig, TelemetryConfig

__all__ = [
    "DefaultSettings",
    "TelemetrySettings",
    "find_telemetry_file",
    "key_name",
    "load_settings",
    "load_settings_or_defaults",
    "read_toml",
    "value_source",
]

DEFAULT = "default"
ARGUMENT = "argument"
Entry = tuple[KeyPath, Any, str]

_URL_KEYS = frozenset({"host", "endpoint"})


def _is_secret(path: KeyPath) -> bool:
    from .models import secret_fields, section_models

    keys = [part for part in path if isinstance(part, str)]
    if len(keys) < 2:
        return False
    model = section_models().get(keys[0])
    return model is not None and keys[1] in secret_fields(model)


@dataclass(frozen=True)
class TelemetrySettings:
    """The configuration in force, with where each value came from."""

    config: TelemetryConfig
    sources: Mapping[str, str]  # key name -> "default", "argument", "file PATH", "env VAR"
    file: Path | None
    do_not_track: bool
    otel_sdk_disabled: bool
    service_name: str
    # key name -> the source it replaced: the value in force won over that one
    overridden: Mapping[str, str] = field(default_factory=dict)
    # key name -> the value as written, for values that read the environment ("${VAR}")
    placeholders: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the config's repr hides secrets; the sources hold none
        return f"TelemetrySettings(file={self.file}, do_not_track={self.do_not_track})"

    def source_of(self, key: str) -> str:
        return self.sources.get(key, DEFAULT)

    def otlp_enabled(self, table: OtlpConfig) -> bool:
        return table.enabled and not self.do_not_track and not self.otel_sdk_disabled


# What the default settings still read from the environment (besides the variables
# `configures_telemetry` has found unset).
_DEFAULTS_READ = (DO_NOT_TRACK_VARIABLE, "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME")


class DefaultSettings:
    """Nothing configures telemetry: no argument, no file, no variable, so every stream
    and the audit log are off. `settings()` builds the TelemetrySettings `load_settings`
    would have built when this was found, from the variables that still mattered then."""

    __slots__ = ("do_not_track", "environ")

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.do_not_track = do_not_track(environ)

    def __repr__(self) -> str:
        return f"DefaultSettings(do_not_track={self.do_not_track})"

    def settings(self) -> TelemetrySettings:
        return _load(None, self.environ, None)


def load_settings(
    overrides: TelemetryConfig | Mapping[str, Any] | None = None,
    *,
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> TelemetrySettings:
    env = os.environ if environ is None else environ
    path = Path(file).expanduser() if file is not None else find_telemetry_file(env, cwd, home)
    return _load(overrides, env, path)


def load_settings_or_defaults(
    overrides: TelemetryConfig | Mapping[str, Any] | None = None,
    *,
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> TelemetrySettings | DefaultSettings:
    """`load_settings`, with the same errors in the same order, except that when nothing
    configures telemetry it returns `DefaultSettings` without building the configuration."""
    env = os.environ if environ is None else environ
    path = Path(file).expanduser() if file is not None else find_telemetry_file(env, cwd, home)
    if path is None and overrides is None and not configures_telemetry(env):
        return DefaultSettings({name: env[name] for name in _DEFAULTS_READ if name in env})
    return _load(overrides, env, path)


def _load(
    overrides: TelemetryConfig | Mapping[str, Any] | None,
    env: Mapping[str, str],
    path: Path | None,
) -> TelemetrySettings:
    merged = _Merged()
    if path is not None:
        raw = read_toml(path)
        check_tables(raw, str(path))
        _check_types(raw, str(path))
        merged.apply(_entries_of(raw, f"file {path}"))
    layer: EnvLayer = environment_layer(env)
    merged.apply(layer.entries)
    merged.fill_otel(layer.otel)
    if overrides is not None:
        explicit = _explicit_values(overrides)
        check_tables(explicit, "Client(telemetry=...)")
        merged.apply(_entries_of(explicit, ARGUMENT))

    dnt = do_not_track(env)
    otel_disabled = env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    # Types first (placeholders are strings), then placeholders, then their values.
    config = merged.validate(resolved=False)
    merged.values = config.model_dump()
    merged.resolve_placeholders(env, dnt=dnt, otel_disabled=otel_disabled)
    config = merged.validate(resolved=True)
    settings = TelemetrySettings(
        config=config,
        sources=dict(merged.sources),
        file=path,
        do_not_track=dnt,
        otel_sdk_disabled=otel_disabled,
        service_name=env.get("OTEL_SERVICE_NAME", "").strip() or "pipeclient",
        overridden=dict(merged.overridden),
        placeholders=dict(merged.placeholders),
    )
    _check_required(settings)
    return settings


# -- layers --------------------------------------------------------------------------


def _explicit_values(value: Any) -> Any:
    """What an argument sets: the fields given to (or assigned on) models, at any depth,
    and every value of plain dicts and lists."""
    if isinstance(value, BaseModel):
        out = {}
        for name in type(value).model_fields:
            item = getattr(value, name)
            given = name in value.model_fields_set
            if given or (isinstance(item, BaseModel) and item.model_fields_set):
                out[name] = _explicit_values(item)
        return out
    if isinstance(value, list):
        return [_explicit_values(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _explicit_values(item) for key, item in value.items()}
    return value


def _entries_of(raw: Mapping[str, Any], source: str) -> list[Entry]:
    entries: list[Entry] = []
    for table, value in raw.items():
        if table == "otlp":
            entries.append((("otlp",), value, source))
        else:
            entries += [((table, key), item, source) for key, item in value.items()]
    return entries


def _check_types(raw: Mapping[str, Any], where: str) -> None:
    """TOML has types: a string where a boolean is expected is an error, not a guess."""
    from .models import section_models

    tables = section_models()
    for table, value in raw.items():
        items = list(enumerate(value)) if table == "otlp" else [(None, value)]
        for index, item in items:
            prefix: KeyPath = (table,) if index is None else (table, index)
            problem: ConfigError | None = None
            try:
                tables[table].model_validate(dict(item), strict=True, context={"resolved": False})
            except ValidationError as exc:
                problem = _config_error(exc, {}, prefix=prefix, where=where)
            if problem is not None:
                raise problem


class _Merged:
    """The merged values and, per key, the layer each came from."""

    def __init__(self) -> None:
        from .models import TelemetryConfig

        self.values: dict[str, Any] = TelemetryConfig().model_dump()
        self.sources: dict[str, str] = {}
        self.overridden: dict[str, str] = {}
        self.placeholders: dict[str, str] = {}

    def _record(self, name: str, source: str) -> None:
        previous = self.sources.get(name, DEFAULT)
        if previous not in (DEFAULT, source):
            self.overridden[name] = previous
        self.sources[name] = source

    def apply(self, entries: list[Entry]) -> None:
        for path, value, source in entries:
            if path == ("otlp",):
                self._replace_tables(value, source)
            elif path[0] == "otlp":
                self._set_in_table(path, value, source)
            else:
                self.values[str(path[0])][str(path[1])] = copy.deepcopy(value)
                self._record(key_name(path), source)

    def _replace_tables(self, tables: list[Any], source: str) -> None:
        """[[otlp]] (or PIPECLIENT_OTLP) replaces the list; omitted keys take defaults."""
        from .models import OtlpConfig

        for names in (self.sources, self.overridden):
            for name in [name for name in names if name.startswith("otlp")]:
                del names[name]
        self.values["otlp"] = []
        self.sources["otlp"] = source
        for index, table in enumerate(tables):
            self.values["otlp"].append(OtlpConfig().model_dump())
            for key, item in table.items():
                self._set_in_table(("otlp", index, key), item, source)

    def _set_in_table(self, path: KeyPath, value: Any, source: str) -> None:
        from .models import OtlpConfig

        tables = self.values["otlp"]
        index = int(path[1])
        if index == len(tables):  # one past the end: a new table
            tables.append(OtlpConfig(name=f"otlp{index}").model_dump())
        elif index > len(tables):
            raise ConfigError(
                f"there is no [[otlp]] table {index}: the configuration has {len(tables)}, "
                f"so the next one is {len(tables)}",
                source=_where(source),
                key=key_name(path),
            )
        tables[index][str(path[2])] = copy.deepcopy(value)
        self._record(key_name(path), source)

    def fill_otel(self, otel: Mapping[str, tuple[Any, str]]) -> None:
        """OTEL_EXPORTER_OTLP_* set the first table's endpoint and headers over the file
        and the defaults (a PIPECLIENT_ variable or an argument wins over them). Headers
        only ever go to the collector they were written for: OTEL_EXPORTER_OTLP_HEADERS
        to the one OTEL_EXPORTER_OTLP_ENDPOINT names (http://localhost:4318 when unset),
        and the file's headers not to a collector the environment substituted."""
        if not otel or not self.values["otlp"]:
            return
        table = self.values["otlp"][0]
        if "endpoint" in otel and not _above_otel(self.sources.get("otlp[0].endpoint", DEFAULT)):
            value, source = otel["endpoint"]
            replaced = table["endpoint"]
            self._set_in_table(("otlp", 0, "endpoint"), value, source)
            written_for_replaced = table["headers"] and not same_collector(replaced, value)
            if written_for_replaced and not _above_otel(self.sources.get("otlp[0].headers", "")):
                self._set_in_table(("otlp", 0, "headers"), {}, source)
        named = otel["endpoint"][0] if "endpoint" in otel else OTEL_DEFAULT_ENDPOINT
        if (
            "headers" in otel
            and not _above_otel(self.sources.get("otlp[0].headers", DEFAULT))
            and same_collector(table["endpoint"], named)
        ):
            value, source = otel["headers"]
            self._set_in_table(("otlp", 0, "headers"), value, source)

    def validate(self, *, resolved: bool) -> TelemetryConfig:
        from .models import TelemetryConfig

        problem: ConfigError | None = None
        try:
            return TelemetryConfig.model_validate(self.values, context={"resolved": resolved})
        except ValidationError as exc:
            problem = _config_error(exc, self.sources)
        raise problem

    def resolve_placeholders(
        self, env: Mapping[str, str], *, dnt: bool, otel_disabled: bool
    ) -> None:
        def fail(prefix: KeyPath) -> Any:
            def on_error(reason: str, path: tuple[str, ...]) -> Any:
                full = (*prefix, *path)
                raise ConfigError(
                    reason, source=where_value(full, self.sources), key=key_name(full)
                )

            return on_error

        values = self.values
        sections: list[tuple[KeyPath, dict[str, Any], bool]] = [
            (("posthog",), values["posthog"], values["posthog"]["enabled"] and not dnt),
            (("langfuse",), values["langfuse"], values["langfuse"]["enabled"] and not dnt),
            (("audit",), values["audit"], values["audit"]["enabled"]),
            (("store",), values["store"], values["store"]["enabled"]),  # local: no DNT
            (("budget",), values["budget"], values["budget"]["limit_usd"] is not None),
            (("cache",), values["cache"], values["cache"]["enabled"]),  # local: no DNT
            (("privacy",), values["privacy"], True),
            (("export",), values["export"], True),
        ]
        for index, table in enumerate(values["otlp"]):
            active = table["enabled"] and not dnt and not otel_disabled
            sections.append((("otlp", index), table, active))
        for prefix, table, active in sections:
            for key in list(table):
                if isinstance(table[key], str) and "${" in table[key]:
                    self.placeholders[key_name((*prefix, key))] = table[key]
                if active:
                    on_error = fail((*prefix, key))
                    if (*prefix, key) in OPTIONAL_PLACEHOLDERS:
                        on_error = _keep_unresolved(table[key])
                    table[key] = resolve(table[key], env, on_error)


# Keys whose placeholder may stay unresolved: the feature they enable is then off (an
# audit checkpoint without a signing key is unsigned, and says so; a cache without a key
# of its own uses the store's, or keeps answers unencrypted when the store is off).
OPTIONAL_PLACEHOLDERS: frozenset[KeyPath] = frozenset({("audit", "signing_key"), ("cache", "key")})


def _keep_unresolved(value: Any) -> Callable[[str, tuple[str, ...]], Any]:
    return lambda _reason, _path: value


OTEL_DEFAULT_ENDPOINT = "http://localhost:4318"  # the OpenTelemetry default for OTLP/HTTP


def _above_otel(source: str) -> bool:
    """Set by a layer that wins over OTEL_EXPORTER_OTLP_*: an argument, a PIPECLIENT_ variable."""
    return source == ARGUMENT or source.startswith("env PIPECLIENT_")


def same_collector(first: str, second: str) -> bool:
    """The same scheme, host, port and path (the default port counts as given)."""

    def key(url: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        try:
            port = parts.port or {"http": 80, "https": 443}.get(scheme)
        except ValueError:
            port = None
        return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")

    return key(first) == key(second)


# -- errors ----------------------------------------------------------------------------


def _where(source: str) -> str:
    if source.startswith("env "):
        return f"environment variable {source[4:]}"
    if source.startswith("file "):
        return source[5:]
    return "Client(telemetry=...)" if source == ARGUMENT else "defaults"


def _source_for(path: KeyPath, sources: Mapping[str, str]) -> str:
    for length in range(len(path), 0, -1):
        found = sources.get(key_name(path[:length]))
        if found:
            return found
    return DEFAULT


def where_value(path: KeyPath, sources: Mapping[str, str]) -> str:
    """Where a value came from; for a default, where its table was switched on."""
    source = _source_for(path, sources)
    if source != DEFAULT:
        return _where(source)
    table = path[:2] if path[0] == "otlp" else path[:1]
    switch = _source_for((*table, "enabled"), sources)
    return f"default value, in a table enabled by {_where(switch)}"


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def value_source(path: KeyPath, settings: TelemetrySettings) -> str:
    """Where a value came from, naming the variable a placeholder read: "environment
    variable PIPECLIENT_STORE_KEY (read by [store] key, default value, ...)"."""
    where = where_value(path, settings.sources)
    written = settings.placeholders.get(key_name(path), "")
    names = _VARIABLE.findall(written)
    if not names:
        return where
    table, key = path[0], path[-1]
    return f"environment variable {names[0]} (read by [{table}] {key}: {where})"


def _check_required(settings: TelemetrySettings) -> None:
    config, sources, dnt = settings.config, settings.sources, settings.do_not_track

    def require(path: KeyPath, value: str, hint: str) -> None:
        if not value.strip():
            raise ConfigError(
                f"is empty, and the stream is enabled; {hint}",
                source=where_value(path, sources),
                key=key_name(path),
            )

    if config.posthog.enabled and not dnt:
        require(("posthog", "api_key"), config.posthog.api_key, "set POSTHOG_API_KEY")
    if config.langfuse.enabled and not dnt:
        require(("langfuse", "public_key"), config.langfuse.public_key, "set LANGFUSE_PUBLIC_KEY")
        require(("langfuse", "secret_key"), config.langfuse.secret_key, "set LANGFUSE_SECRET_KEY")
    # Local, as the audit log: DO_NOT_TRACK does not apply. A cache key, when set.
    if config.store.enabled:
        _check_key(("store", "key"), config.store.key, settings)
    if config.cache.enabled and config.cache.has_key:
        _check_key(("cache", "key"), config.cache.key, settings)


def _check_key(path: KeyPath, value: str, settings: TelemetrySettings) -> None:
    """A ConfigError naming the key and where it came from, unless it is 32 bytes."""
    problem = None
    try:
        decode_key(value)
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        raise ConfigError(problem, source=value_source(path, settings), key=key_name(path))


def _config_error(
    exc: ValidationError,
    sources: Mapping[str, str],
    *,
    prefix: KeyPath = (),
    where: str | None = None,
) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    path: KeyPath = (*prefix, *error["loc"])
    reason = str(error["msg"]).removeprefix("Value error, ")
    shown = _shown_input(path, error.get("input"), error["type"])
    if shown:
        reason += f" (got {shown})"
    return ConfigError(reason, source=where or where_value(path, sources), key=key_name(path))


def _shown_input(path: KeyPath, value: Any, kind: str) -> str | None:
    """A rejected value, when it is safe to show: a short scalar that is no secret or URL."""
    if kind == "missing" or _is_secret(path) or any(part in _URL_KEYS for part in path):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 40):
        return repr(value)
    return type(value).__name__ if value is not None else None
