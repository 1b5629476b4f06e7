"""What `pipeclient telemetry status` shows: each stream, on or off and why, where it
sends, whether it receives content, and where each setting came from."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from .._audit.log import check_audit_path
from .._client.backends import gateway_url_from_env
from .._config.extras import CRYPTO, install_line, missing_module
from .._config.models import secret_fields
from .._config.settings import DEFAULT, TelemetrySettings, key_name, where_value

__all__ = ["describe", "render_text"]


def _shown(value: Any, *, secret: bool) -> Any:
    """Secrets (the fields the model marks so) are shown as set or not, never their value."""
    if not secret:
        return value
    if isinstance(value, Mapping):
        return {name: "<set>" for name in value}
    if isinstance(value, str) and value.startswith("${"):
        return f"{value} (not resolved: its table is off, or the variable is unset)"
    return f"<set, {len(value)} characters>" if value else "<empty>"


def _source_label(source: str) -> str:
    if source.startswith("env "):
        return f"env {source[4:]}"
    return source


def _settings_of(
    table: BaseModel, prefix: tuple[str | int, ...], settings: TelemetrySettings
) -> list[dict[str, Any]]:
    rows = []
    secrets = secret_fields(type(table))
    for key in type(table).model_fields:
        name = key_name((*prefix, key))
        row = {
            "key": name,
            "value": _shown(getattr(table, key), secret=key in secrets),
            "source": _source_label(settings.source_of(name)),
        }
        if name in settings.overridden:  # which layer won, and over which
            row["overrides"] = _source_label(settings.overridden[name])
        rows.append(row)
    return rows


def _row_text(row: Mapping[str, Any]) -> str:
    source = row["source"]
    if row.get("overrides"):
        source += f", over {row['overrides']}"
    return f"    {row['key']:<28} = {row['value']!r:<40} [{source}]"


def _switch(
    settings: TelemetrySettings,
    key: str,
    enabled: bool,
    *,
    telemetry: bool = True,
    otlp: bool = False,
) -> tuple[bool, str]:
    source = settings.source_of(key)
    origin = "default" if source == DEFAULT else _source_label(source)
    if not enabled:
        return False, f"disabled ({origin})"
    if telemetry and settings.do_not_track:
        return False, f"DO_NOT_TRACK is set (enabled by {origin}, overridden)"
    if otlp and settings.otel_sdk_disabled:
        return False, f"OTEL_SDK_DISABLED=true (enabled by {origin}, overridden)"
    return True, f"enabled ({origin})"


def _with_sdk(
    entry: dict[str, Any], extra: str, *, needs: bool = True, what: str = "its SDK is"
) -> dict[str, Any]:
    """An enabled stream whose SDK (or the package its settings `needs`) is missing: off,
    with the line that installs it (a client with this configuration raises ConfigError)."""
    if entry["on"] and needs and missing_module(extra) is not None:
        line = install_line(extra)
        entry.update(
            on=False,
            why=f"{entry['why']}, but {what} not installed: {line} "
            f"(until then a client with this configuration raises ConfigError)",
            missing_sdk=line,
        )
    return entry


def _content(detectors: Sequence[str], allowed: bool, reason: str) -> str:
    if not allowed:
        return f"no: metadata only ({reason})"
    applied = ", ".join(detectors) if detectors else "none configured"
    return f"yes, after [privacy] detectors ({applied}) ({reason})"


def describe(
    settings: TelemetrySettings, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    config = settings.config
    pii: list[str] = list(config.privacy.pii)
    streams: list[dict[str, Any]] = []

    on, why = _switch(settings, "posthog.enabled", config.posthog.enabled)
    streams.append(
        _with_sdk(
            {
                "stream": "posthog",
                "on": on,
                "why": why,
                "sends_to": config.posthog.host,
                "content": _content(
                    pii, not config.posthog.redact, f"redact = {str(config.posthog.redact).lower()}"
                ),
                "settings": _settings_of(config.posthog, ("posthog",), settings),
            },
            "posthog",
        )
    )
    on, why = _switch(settings, "langfuse.enabled", config.langfuse.enabled)
    streams.append(
        _with_sdk(
            {
                "stream": "langfuse",
                "on": on,
                "why": why,
                "sends_to": config.langfuse.host,
                "content": _content(
                    pii,
                    config.langfuse.capture_content,
                    f"capture_content = {str(config.langfuse.capture_content).lower()}",
                ),
                "settings": _settings_of(config.langfuse, ("langfuse",), settings),
            },
            "langfuse",
        )
    )
    for index, table in enumerate(config.otlp):
        on, why = _switch(settings, f"otlp[{index}].enabled", table.enabled, otlp=True)
        base = table.endpoint.rstrip("/")
        streams.append(
            _with_sdk(
                {
                    "stream": f"otlp:{table.name}",
                    "on": on,
                    "why": why,
                    "sends_to": f"{base}/v1/traces, {base}/v1/metrics",
                    "content": _content(
                        pii,
                        table.capture_content,
                        f"capture_content = {str(table.capture_content).lower()}",
                    ),
                    "settings": _settings_of(table, ("otlp", index), settings),
                },
                "otlp",
            )
        )
    streams.append(_gateway(settings, env))
    audit = config.audit
    on, why = _switch(settings, "audit.enabled", audit.enabled, telemetry=False)
    if on:  # the client's own checks: a path it would refuse is an error here too
        check_audit_path(audit.path, source=where_value(("audit", "path"), settings.sources))
    if on and settings.do_not_track:
        why += "; DO_NOT_TRACK does not apply: the audit log is local"
    streams.append(
        _with_sdk(
            {
                "stream": "audit",
                "on": on,
                "why": why,
                "sends_to": os.path.abspath(os.path.expanduser(audit.path)) + " (local file)",
                "content": "no: metadata only, always",
                "settings": _settings_of(audit, ("audit",), settings),
            },
            CRYPTO,
            needs=audit.has_signing_key,
            what="signing_key is set and cryptography (Ed25519) is",
        )
    )
    store = config.store
    on, why = _switch(settings, "store.enabled", store.enabled, telemetry=False)
    if on and settings.do_not_track:
        why += "; DO_NOT_TRACK does not apply: the content store is local"
    streams.append(
        _with_sdk(
            {
                "stream": "store",
                "on": on,
                "why": why,
                "sends_to": os.path.abspath(os.path.expanduser(store.path))
                + " (local file, encrypted)",
                "content": _content(pii, True, "sealed per user; never for no_log calls"),
                "settings": _settings_of(store, ("store",), settings),
            },
            CRYPTO,
            what="cryptography (AES-256-GCM) is",
        )
    )
    return {
        "file": str(settings.file) if settings.file else None,
        "do_not_track": settings.do_not_track,
        "streams": streams,
        "privacy": _settings_of(config.privacy, ("privacy",), settings),
        "export": _settings_of(config.export, ("export",), settings),
        "budget": _settings_of(config.budget, ("budget",), settings),
        "routing": _routing_rows(config.routing, settings),
        "cache": _settings_of(config.cache, ("cache",), settings),
    }


def _routing_rows(table: Any, settings: TelemetrySettings) -> list[dict[str, Any]]:
    """`[routing]`'s rows; each rule as the keys it sets."""
    rows = _settings_of(table, ("routing",), settings)
    for row in rows:
        if row["key"] == "routing.rules":
            row["value"] = [rule.model_dump(exclude_defaults=True) for rule in row["value"]]
    return rows


def _gateway(settings: TelemetrySettings, env: Mapping[str, str]) -> dict[str, Any]:
    url = gateway_url_from_env(env)  # checked as the client checks it
    entry: dict[str, Any] = {
        "stream": "gateway",
        "content": "no: never (allowlisted metadata schema pipeclient.gateway.v1)",
        "settings": [
            {
                "key": "PIPECLIENT_GATEWAY_URL",
                "value": url,
                "source": "env PIPECLIENT_GATEWAY_URL" if url else "default",
            }
        ],
    }
    if settings.do_not_track:
        entry.update(
            on=False,
            why="DO_NOT_TRACK is set: calls to the gateway fail with "
            "GatewayTelemetryRequiredError before any network I/O",
            sends_to=None,
        )
    elif not url:
        entry.update(
            on=False,
            why="no gateway configured (PIPECLIENT_GATEWAY_URL is unset); "
            'on for any backend with kind = "gateway"',
            sends_to=None,
        )
    else:
        host = urlsplit(url).hostname
        entry.update(
            on=True,
            why=f"mandatory for calls whose backend is the gateway ({host})",
            sends_to=url + "/telemetry",
        )
    return entry


def render_text(status: Mapping[str, Any]) -> str:
    lines = [f"configuration file: {status['file'] or 'none found (every stream off)'}"]
    if status["do_not_track"]:
        lines.append("DO_NOT_TRACK is set: all telemetry is off")
    for stream in status["streams"]:
        state = "ON " if stream["on"] else "off"
        lines.append(f"\n{state} {stream['stream']}: {stream['why']}")
        if stream.get("sends_to"):
            lines.append(f"    sends to: {stream['sends_to']}")
        lines.append(f"    content:  {stream['content']}")
        for row in stream["settings"]:
            lines.append(_row_text(row))
    for title in ("privacy", "export", "budget", "routing", "cache"):
        lines.append(f"\n[{title}]")
        for row in status[title]:
            lines.append(_row_text(row))
    return "\n".join(lines) + "\n"
