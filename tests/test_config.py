"""Telemetry configuration: the file, the environment, precedence, DO_NOT_TRACK, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from hypothesis import given
from hypothesis import strategies as st

import pipeclient
from pipeclient import ConfigError, TelemetryConfig, do_not_track
from pipeclient._settings import find_telemetry_file, load_settings
from pipeclient.config import default_file_text
from pipeclient.testing import MockBackend


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeclient", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- init and round trip ---------------------------------------------------------------


def test_init_writes_a_file_that_loads_back_into_the_defaults(tmp_path: Path) -> None:
    target = tmp_path / "conf" / "telemetry.toml"
    result = run_cli("init", "telemetry", "--path", str(target))
    assert result.returncode == 0, result.stderr
    assert TelemetryConfig.model_validate(tomllib.loads(target.read_text())) == TelemetryConfig()
    assert load_settings(file=target).config == TelemetryConfig()
    text = target.read_text()
    # Every key of the model is in the file, with a comment.
    for table in ("posthog", "langfuse", "privacy", "audit", "export"):
        assert f"[{table}]" in text
    assert "[[otlp]]" in text
    for line in text.splitlines():
        if " = " in line and not line.startswith("#"):
            assert "#" in line, f"no comment on: {line}"


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = write(tmp_path / "telemetry.toml", "# mine\n")
    refused = run_cli("init", "telemetry", "--path", str(target))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert target.read_text() == "# mine\n"
    forced = run_cli("init", "telemetry", "--path", str(target), "--force")
    assert forced.returncode == 0 and target.read_text() == default_file_text()


def test_init_default_path_is_pipelex_in_the_current_directory() -> None:
    assert run_cli("init", "telemetry").returncode == 0
    assert Path(".pipelex/telemetry.toml").read_text() == default_file_text()


def test_init_into_an_unwritable_place_fails_cleanly(tmp_path: Path) -> None:
    blocker = write(tmp_path / "file", "x")
    result = run_cli("init", "telemetry", "--path", str(blocker / "telemetry.toml"))
    assert result.returncode != 0 and "cannot write" in result.stderr
    assert "Traceback" not in result.stderr


def test_committed_file_is_the_generated_one() -> None:
    committed = Path(__file__).resolve().parent.parent / ".pipelex" / "telemetry.toml"
    assert committed.read_text() == default_file_text()


# -- DO_NOT_TRACK ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("No", False),
        ("off", False),
        ("OFF", False),
        ("1", True),
        ("true", True),
        ("yes", True),
        ("on", True),
        ("2", True),
        ("anything", True),
        (" 0", True),
        ("disabled", True),
    ],
)
def test_do_not_track_values(value: str | None, expected: bool) -> None:
    environ = {} if value is None else {"DO_NOT_TRACK": value}
    assert do_not_track(environ) is expected


@given(st.text(max_size=12))
def test_do_not_track_is_set_unless_an_off_word(value: str) -> None:
    expected = value.lower() not in {"", "0", "false", "no", "off"}
    assert do_not_track({"DO_NOT_TRACK": value}) is expected


def test_do_not_track_turns_every_custom_stream_off_but_not_audit(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.toml",
        '[posthog]\nenabled = true\napi_key = "k"\n[langfuse]\nenabled = true\n'
        'public_key = "p"\nsecret_key = "s"\n[[otlp]]\nenabled = true\n[audit]\nenabled = true\n',
    )
    on = load_settings(file=path, environ={})
    assert on.any_custom_stream
    off = load_settings(file=path, environ={"DO_NOT_TRACK": "1"})
    assert off.do_not_track and not off.any_custom_stream
    assert off.config.audit.enabled


def test_do_not_track_ignores_unresolved_placeholders_of_enabled_streams(tmp_path: Path) -> None:
    path = write(tmp_path / "t.toml", "[posthog]\nenabled = true\n")
    with pytest.raises(ConfigError):
        load_settings(file=path, environ={})
    assert load_settings(file=path, environ={"DO_NOT_TRACK": "true"}).do_not_track


# -- lookup and precedence ------------------------------------------------------------


def test_lookup_order(tmp_path: Path) -> None:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    assert find_telemetry_file({}, cwd, home) is None
    home_file = write(home / ".pipelex" / "telemetry.toml", "")
    assert find_telemetry_file({}, cwd, home) == home_file
    cwd_file = write(cwd / ".pipelex" / "telemetry.toml", "")
    assert find_telemetry_file({}, cwd, home) == cwd_file
    explicit = write(tmp_path / "elsewhere.toml", "")
    environ = {"PIPECLIENT_TELEMETRY_FILE": str(explicit)}
    assert find_telemetry_file(environ, cwd, home) == explicit


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PIPECLIENT_TELEMETRY_FILE"):
        find_telemetry_file({"PIPECLIENT_TELEMETRY_FILE": str(tmp_path / "nope.toml")})


def test_no_file_means_every_stream_off(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path, home=tmp_path)
    assert settings.file is None and settings.config == TelemetryConfig()
    assert not settings.any_custom_stream and not settings.config.audit.enabled


def test_precedence_argument_over_environment_over_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.toml",
        '[audit]\npath = "from-file.jsonl"\nuser_id = "file-user"\ndurable = true\n'
        "[export]\nmax_queue = 5\nflush_timeout_s = 1.0\n",
    )
    environ = {"PIPECLIENT_AUDIT__PATH": "from-env.jsonl", "PIPECLIENT_AUDIT__USER_ID": "env-user"}
    settings = load_settings({"audit": {"path": "from-arg.jsonl"}}, file=path, environ=environ)
    audit = settings.config.audit
    assert (audit.path, audit.user_id, audit.durable) == ("from-arg.jsonl", "env-user", True)
    assert settings.config.export.max_queue == 5
    assert settings.source_of("audit.path") == "argument"
    assert settings.source_of("audit.user_id") == "env PIPECLIENT_AUDIT__USER_ID"
    assert settings.source_of("audit.durable") == f"file {path}"
    assert settings.source_of("audit.enabled") == "default"


def test_client_reads_the_configuration_with_argument_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "t.toml", "[export]\nmax_queue = 7\nflush_timeout_s = 3.0\n")
    monkeypatch.setenv("PIPECLIENT_TELEMETRY_FILE", str(path))
    monkeypatch.setenv("PIPECLIENT_EXPORT__FLUSH_TIMEOUT_S", "4.5")
    client = pipeclient.Client(
        backends=[MockBackend().backend()], telemetry={"export": {"max_queue": 9}}
    )
    export = client.telemetry_settings.config.export
    assert (export.max_queue, export.flush_timeout_s) == (9, 4.5)


def test_telemetry_config_object_as_argument_overrides_only_what_it_sets() -> None:
    override = TelemetryConfig(audit={"user_id": "u-1"})  # type: ignore[arg-type]
    settings = load_settings(override, environ={"PIPECLIENT_AUDIT__PATH": "env.jsonl"})
    assert settings.config.audit.user_id == "u-1"
    assert settings.config.audit.path == "env.jsonl"


def test_ecosystem_variables(tmp_path: Path) -> None:
    environ = {
        "POSTHOG_API_KEY": "phc_123",
        "POSTHOG_HOST": "https://eu.i.posthog.com",
        "LANGFUSE_PUBLIC_KEY": "pk-1",
        "LANGFUSE_SECRET_KEY": "sk-1",
        "LANGFUSE_BASE_URL": "https://lf.example",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20tok,x-team=ml",
        "OTEL_SERVICE_NAME": "my-app",
        "PIPECLIENT_POSTHOG__ENABLED": "true",
        "PIPECLIENT_LANGFUSE__ENABLED": "true",
    }
    settings = load_settings(environ=environ, cwd=tmp_path, home=tmp_path)
    config = settings.config
    assert (config.posthog.api_key, config.posthog.host) == ("phc_123", "https://eu.i.posthog.com")
    assert (config.langfuse.public_key, config.langfuse.secret_key) == ("pk-1", "sk-1")
    assert config.langfuse.host == "https://lf.example"
    assert config.otlp[0].endpoint == "http://collector.example:4318"
    assert config.otlp[0].headers == {"authorization": "Bearer tok", "x-team": "ml"}
    assert settings.service_name == "my-app"
    assert settings.source_of("posthog.api_key") == "env POSTHOG_API_KEY"
    # The PIPECLIENT_ variable wins over the ecosystem's.
    environ["PIPECLIENT_POSTHOG__HOST"] = "https://ph.internal"
    assert load_settings(environ=environ).config.posthog.host == "https://ph.internal"


def test_otel_sdk_disabled_turns_off_otlp_only(tmp_path: Path) -> None:
    environ = {
        "PIPECLIENT_OTLP__0__ENABLED": "true",
        "PIPECLIENT_AUDIT__ENABLED": "true",
        "OTEL_SDK_DISABLED": "true",
    }
    settings = load_settings(environ=environ, cwd=tmp_path, home=tmp_path)
    assert not settings.otlp_enabled(settings.config.otlp[0])
    assert settings.config.audit.enabled


def test_several_otlp_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.toml",
        '[[otlp]]\nname = "a"\nenabled = true\nendpoint = "http://127.0.0.1:1"\n'
        '[[otlp]]\nname = "b"\nendpoint = "http://127.0.0.1:2"\n'
        'headers = { authorization = "Bearer ${OTLP_TOKEN:-none}" }\n',
    )
    config = load_settings(file=path, environ={}).config
    assert [table.name for table in config.otlp] == ["a", "b"]
    assert config.otlp[1].capture_content is True
    # The disabled table keeps its placeholder unresolved.
    assert config.otlp[1].headers == {"authorization": "Bearer ${OTLP_TOKEN:-none}"}


def test_placeholders(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.toml",
        '[posthog]\nenabled = true\napi_key = "${PH_KEY}"\n'
        'distinct_id = "${PH_USER:-anonymous}"\nhost = "https://${PH_HOST:-us.i.posthog.com}"\n',
    )
    config = load_settings(file=path, environ={"PH_KEY": "phc_9"}).config
    assert config.posthog.api_key == "phc_9"
    assert config.posthog.distinct_id == "anonymous"
    assert config.posthog.host == "https://us.i.posthog.com"


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[posthog]\nenabled = \n", None, "line 2"),
        ("[posthog]\nenabeld = true\n", "posthog.enabeld", "did you mean 'enabled'"),
        ("[posthg]\nenabled = true\n", "posthg", "did you mean 'posthog'"),
        ('[posthog]\nenabled = "yes"\n', "posthog.enabled", "valid boolean"),
        ("[export]\nmax_queue = 1.5\n", "export.max_queue", "valid integer"),
        ("[export]\nmax_queue = -1\n", "export.max_queue", "greater than 0"),
        ('[posthog]\nhost = "us.i.posthog.com"\n', "posthog.host", "http(s) URL"),
        ('[[otlp]]\nendpoint = "localhost:4318"\n', "otlp[0].endpoint", "http(s) URL"),
        ('[privacy]\npii = ["emails"]\n', "privacy.pii", "'email'"),
        ("[otlp]\nenabled = true\n", "otlp", "[[otlp]]"),
        ("[posthog]\nenabled = true\n", "posthog.api_key", "${POSTHOG_API_KEY} is not set"),
        (
            '[langfuse]\nenabled = true\npublic_key = "p"\n',
            "langfuse.secret_key",
            "LANGFUSE_SECRET",
        ),
        ('[posthog]\nenabled = true\napi_key = ""\n', "posthog.api_key", "is empty"),
        ("[gateway]\nenabled = false\n", "gateway", "cannot be configured or turned off"),
        ('[[otlp]]\nname = "a"\n[[otlp]]\nname = "a"\n', "otlp", "unique"),
    ],
)
def test_bad_files_name_file_key_and_reason(
    tmp_path: Path, text: str, key: str | None, reason: str
) -> None:
    path = write(tmp_path / "telemetry.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(file=path, environ={})
    message = str(caught.value)
    assert str(path) in message
    if key is not None:
        assert f"key {key!r}" in message or f"key '{key}" in message
    assert reason in message

    result = run_cli("telemetry", "status", env={"PIPECLIENT_TELEMETRY_FILE": str(path)})
    assert result.returncode == 2
    assert str(path) in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr


def test_unresolved_placeholder_in_a_disabled_table_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "t.toml", '[langfuse]\nenabled = false\nsecret_key = "${NOPE}"\n')
    assert load_settings(file=path, environ={}).config.langfuse.secret_key == "${NOPE}"


def test_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "telemetry.toml"
    directory.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(file=directory, environ={})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"binary.toml: cannot be read"):
        load_settings(file=binary, environ={})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission(tmp_path: Path) -> None:
    path = write(tmp_path / "t.toml", "")
    path.chmod(0)
    with pytest.raises(ConfigError, match="Permission denied"):
        load_settings(file=path, environ={})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PIPECLIENT_POSTHOG__ENABLD", "true", "did you mean 'enabled'"),
        ("PIPECLIENT_POSTHG__ENABLED", "true", "did you mean 'posthog'"),
        ("PIPECLIENT_AUDIT__DURABLE", "perhaps", "valid boolean"),
        ("PIPECLIENT_PRIVACY__PII", '["email", "nope"]', "'email'"),
        ("PIPECLIENT_PRIVACY__PII", "[email", "not valid JSON"),
        ("PIPECLIENT_GATEWAY__ENABLED", "false", "cannot be configured or turned off"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign", "key=value"),
    ],
)
def test_bad_environment_names_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={name: value})
    assert name in str(caught.value) and expected in str(caught.value)


def test_bad_configuration_fails_client_construction(tmp_path: Path) -> None:
    path = write(tmp_path / "t.toml", "[audit]\nenabld = true\n")
    with pytest.raises(ConfigError, match="did you mean 'enabled'"):
        pipeclient.Client(backends=[MockBackend().backend()], telemetry_file=path)
    with pytest.raises(ConfigError, match=r"Client\(telemetry=...\), key 'audit.enabld'"):
        pipeclient.Client(backends=[MockBackend().backend()], telemetry={"audit": {"enabld": 1}})


# -- status ----------------------------------------------------------------------------


def test_status_reports_each_stream_with_reasons_and_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.toml",
        '[posthog]\nenabled = true\napi_key = "phc_secret_value"\nredact = false\n'
        '[privacy]\npii = ["email"]\n[[otlp]]\nname = "c1"\nenabled = true\n',
    )
    env = {
        "PIPECLIENT_TELEMETRY_FILE": str(path),
        "PIPECLIENT_LANGFUSE__ENABLED": "true",
        "LANGFUSE_PUBLIC_KEY": "pk",
        "LANGFUSE_SECRET_KEY": "sk-lf-secret",
        "OTEL_SDK_DISABLED": "true",
        "PIPECLIENT_GATEWAY_URL": "https://gateway.example/v1",
    }
    result = run_cli("telemetry", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    streams = {stream["stream"]: stream for stream in status["streams"]}
    assert set(streams) == {"posthog", "langfuse", "otlp:c1", "gateway", "audit"}
    assert streams["posthog"]["on"] and str(path) in streams["posthog"]["why"]
    assert streams["posthog"]["content"].startswith("yes, after [privacy] detectors (email)")
    assert (
        streams["langfuse"]["on"] and "PIPECLIENT_LANGFUSE__ENABLED" in streams["langfuse"]["why"]
    )
    assert not streams["otlp:c1"]["on"] and "OTEL_SDK_DISABLED" in streams["otlp:c1"]["why"]
    assert streams["gateway"]["on"]
    assert streams["gateway"]["sends_to"] == "https://gateway.example/v1/telemetry"
    assert not streams["audit"]["on"]
    sources = {row["key"]: row["source"] for row in streams["langfuse"]["settings"]}
    assert sources["langfuse.secret_key"] == "env LANGFUSE_SECRET_KEY"
    assert "phc_secret_value" not in result.stdout and "sk-lf-secret" not in result.stdout

    text = run_cli("telemetry", "status", env=env)
    assert text.returncode == 0 and "ON  posthog" in text.stdout
    assert "phc_secret_value" not in text.stdout

    dnt = json.loads(
        run_cli("telemetry", "status", "--json", env={**env, "DO_NOT_TRACK": "1"}).stdout
    )
    assert dnt["do_not_track"] is True
    assert not any(s["on"] for s in dnt["streams"] if s["stream"] != "audit")
    gateway = next(s for s in dnt["streams"] if s["stream"] == "gateway")
    assert "GatewayTelemetryRequiredError" in gateway["why"]
