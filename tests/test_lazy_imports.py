"""What the first Client() loads: without telemetry, none of its machinery (DESIGN 3), and
the same settings, errors and behaviour as when everything was loaded up front."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipeclient
from pipeclient import ConfigError
from pipeclient._builder import custom_routes
from pipeclient._config.env import NOT_TELEMETRY_KEYS, configures_telemetry, environment_layer
from pipeclient._config.models import section_models
from pipeclient._config.settings import DefaultSettings, load_settings, load_settings_or_defaults

URL = "http://127.0.0.1:9/v1"

# Loaded only when a stream, the gateway or the audit log is on (or, for the last two,
# by an async client's first call).
TELEMETRY_MODULES = (
    "pipeclient._telemetry.dispatch",
    "pipeclient._telemetry.privacy",
    "pipeclient._privacy.detectors",
    "pipeclient._sinks.gateway.event",
    "pipeclient._audit.log",
    "pipeclient._store.store",
    "cryptography",
    "sqlite3",
    "pipeclient._sinks.gateway.spool",
    "pipeclient._builder",
    "pipeclient._config.models",
    "pydantic_settings",
    "tomllib",
    "pipeclient._audit.canonical",
    "posthog",
    "langfuse",
    "opentelemetry",
)
ASYNC_MODULES = ("anyio", "asyncio")


def loaded_after(script: str, **env: str) -> list[str]:
    """The modules a fresh interpreter holds after `script` (in this test's clean cwd,
    HOME and environment, plus `env`)."""
    code = f"{script}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(out.stdout.splitlines()[-1])
    return modules


def among(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == name or m.startswith(name + ".") for name in names)]


@pytest.mark.parametrize("client", ["Client", "AsyncClient"])
def test_a_client_without_telemetry_loads_none_of_its_machinery(client: str) -> None:
    modules = loaded_after(
        f"import pipeclient; pipeclient.{client}(api_key='sk', base_url={URL!r})"
    )
    assert among(modules, TELEMETRY_MODULES + ASYNC_MODULES) == []


def test_nor_does_one_configured_by_its_own_variables() -> None:
    modules = loaded_after(
        "import pipeclient; pipeclient.Client()",
        PIPECLIENT_API_KEY="sk",
        PIPECLIENT_BASE_URL=URL,
        PIPECLIENT_GATEWAY_SPOOL_DIR="spool",
        PIPECLIENT_TELEMETRY_FILE="",
    )
    assert among(modules, TELEMETRY_MODULES + ASYNC_MODULES) == []


def test_nor_a_gateway_client_under_do_not_track() -> None:
    modules = loaded_after(
        "import pipeclient\n"
        f"pipeclient.Client(backends=[pipeclient.Backend(name='g', base_url={URL!r}, "
        "api_key='k', kind='gateway')])",
        DO_NOT_TRACK="1",
    )
    assert among(modules, TELEMETRY_MODULES + ASYNC_MODULES) == []


def test_the_machinery_loads_when_telemetry_is_on() -> None:
    audit = loaded_after(
        "import pipeclient\n"
        f"pipeclient.Client(api_key='sk', base_url={URL!r}, "
        "telemetry={'audit': {'enabled': True, 'path': 'audit.jsonl'}})"
    )
    assert {
        "pipeclient._config.models",
        "pipeclient._sinks.audit",
        "pipeclient._telemetry.dispatch",
    } <= set(audit)
    gateway = loaded_after(
        "import pipeclient\n"
        f"pipeclient.Client(backends=[pipeclient.Backend(name='g', base_url={URL!r}, "
        "api_key='k', kind='gateway')])",
        PIPECLIENT_GATEWAY_SPOOL_DIR="spool",
    )
    assert {"pipeclient._sinks.gateway.sink", "pipeclient._telemetry.dispatch"} <= set(gateway)
    assert among(audit + gateway, ASYNC_MODULES) == []


# -- the default settings, built later, are the ones load_settings builds -----------------


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"DO_NOT_TRACK": "1"},
        {"DO_NOT_TRACK": "off", "OTEL_SDK_DISABLED": "true", "OTEL_SERVICE_NAME": " svc "},
        {"PIPECLIENT_API_KEY": "k", "pipeclient_gateway_url": URL, "POSTHOG_API_KEY": " "},
    ],
)
def test_a_client_builds_the_default_settings_when_asked(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = pipeclient.Client(api_key="sk", base_url=URL)
    assert isinstance(client._settings, DefaultSettings)
    expected = load_settings()
    settings = client.telemetry_settings
    assert settings == expected
    assert settings.config.model_fields_set == expected.config.model_fields_set
    assert settings.config.model_dump() == expected.config.model_dump()
    assert client.telemetry_settings is settings
    assert custom_routes(settings) == [] and not settings.config.audit.enabled


def test_the_default_settings_are_those_in_force_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = pipeclient.Client(api_key="sk", base_url=URL)
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "later")
    monkeypatch.setenv("PIPECLIENT_AUDIT__ENABLED", "true")
    settings = client.telemetry_settings
    assert not settings.do_not_track
    assert settings.service_name == "pipeclient"
    assert not settings.config.audit.enabled


def test_anything_that_configures_telemetry_is_read_at_construction(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIPECLIENT_EXPORT__MAX_QUEUE", "7")
    assert isinstance(load_settings_or_defaults(), type(load_settings()))
    monkeypatch.delenv("PIPECLIENT_EXPORT__MAX_QUEUE")
    assert isinstance(load_settings_or_defaults(), DefaultSettings)
    assert not isinstance(load_settings_or_defaults({}), DefaultSettings)
    path = tmp_path / "t.toml"
    path.write_text("")
    assert not isinstance(load_settings_or_defaults(file=path), DefaultSettings)
    (Path.cwd() / ".pipelex").mkdir()
    (Path.cwd() / ".pipelex" / "telemetry.toml").write_text("[export]\nmax_queue = 5\n")
    assert (
        pipeclient.Client(api_key="sk", base_url=URL).telemetry_settings.config.export.max_queue
        == 5
    )


@pytest.mark.parametrize(
    "env",
    [
        {"PIPECLIENT_GATEWAY": "x"},
        {"PIPECLIENT_NOPE__ENABLED": "true"},
        {"PIPECLIENT_AUDIT__ENABLED": "maybe"},
        {"PIPECLIENT_TELEMETRY_FILE": "missing.toml"},
        {"OTEL_EXPORTER_OTLP_HEADERS": "no-equals-sign"},
        {"POSTHOG_HOST": "not a url", "PIPECLIENT_POSTHOG__ENABLED": "true"},
    ],
)
def test_configuration_errors_surface_at_construction_as_before(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as expected:
        load_settings()
    with pytest.raises(ConfigError) as caught:
        pipeclient.Client(api_key="sk", base_url=URL)
    assert str(caught.value) == str(expected.value)


def test_a_broken_file_in_the_working_directory_is_reported() -> None:
    (Path.cwd() / ".pipelex").mkdir()
    (Path.cwd() / ".pipelex" / "telemetry.toml").write_text("[audit\n")
    with pytest.raises(ConfigError) as caught:
        pipeclient.Client(api_key="sk", base_url=URL)
    assert "is not valid TOML" in str(caught.value)


# -- the cheap check agrees with the environment layer ------------------------------------


def test_variables_never_telemetry_keys_are_no_table() -> None:
    tables = set(section_models())
    for name in NOT_TELEMETRY_KEYS:
        rest = name.removeprefix("PIPECLIENT_")
        assert "__" not in rest and rest != "GATEWAY" and rest.lower() not in tables
    layer = environment_layer({name: "x" for name in NOT_TELEMETRY_KEYS})
    assert layer.entries == [] and layer.otel == {}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {name: "x" for name in NOT_TELEMETRY_KEYS},
        {name.lower(): "x" for name in NOT_TELEMETRY_KEYS},
        {"POSTHOG_API_KEY": "", "LANGFUSE_HOST": "  ", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        {"OTEL_SDK_DISABLED": "true", "DO_NOT_TRACK": "1", "OPENAI_API_KEY": "sk"},
    ],
)
def test_an_environment_that_configures_nothing(env: dict[str, str]) -> None:
    assert not configures_telemetry(env)
    layer = environment_layer(env)
    assert layer.entries == [] and layer.otel == {}


@pytest.mark.parametrize(
    "env",
    [
        {"POSTHOG_API_KEY": "k"},
        {"LANGFUSE_BASE_URL": "https://h.example"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c.example"},
        {"OTEL_EXPORTER_OTLP_HEADERS": "a=b"},
        {"PIPECLIENT_POSTHOG__ENABLED": "true"},
        {"pipeclient_otlp": "[]"},
        {"PIPECLIENT_GATEWAY": "x"},
        {"PIPECLIENT_MODEL": "m"},  # not telemetry, but not known not to be: the full read
    ],
)
def test_an_environment_that_may_configure_telemetry(env: dict[str, str]) -> None:
    assert configures_telemetry(env)


def test_public_annotations_resolve() -> None:
    import typing

    import pipeclient

    for method in (pipeclient.Client.close, pipeclient.Client.flush, pipeclient.AsyncClient.close):
        hints = typing.get_type_hints(method)
        assert "FlushReport" in str(hints["return"])
