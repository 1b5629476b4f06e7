"""Telemetry configuration: the file, the environment, precedence, DO_NOT_TRACK, errors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pipeclient
from pipeclient import ConfigError, TelemetryConfig, do_not_track
from pipeclient._builder import custom_routes
from pipeclient._config.models import default_file_text
from pipeclient._config.settings import find_telemetry_file, load_settings
from pipeclient.testing import MockBackend

from .conftest import RunCli


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- init and round trip ---------------------------------------------------------------


def test_init_writes_a_file_that_loads_back_into_the_defaults(cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "conf" / "telemetry.toml"
    result = cli("init", "telemetry", "--path", str(target))
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


def test_init_refuses_to_overwrite_without_force(cli: RunCli, tmp_path: Path) -> None:
    target = write(tmp_path / "telemetry.toml", "# mine\n")
    refused = cli("init", "telemetry", "--path", str(target))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert target.read_text() == "# mine\n"
    forced = cli("init", "telemetry", "--path", str(target), "--force")
    assert forced.returncode == 0 and target.read_text() == default_file_text()


def test_init_default_path_is_pipelex_in_the_current_directory(cli: RunCli) -> None:
    assert cli("init", "telemetry").returncode == 0
    assert Path(".pipelex/telemetry.toml").read_text() == default_file_text()


def test_init_into_an_unwritable_place_fails_cleanly(cli: RunCli, tmp_path: Path) -> None:
    blocker = write(tmp_path / "file", "x")
    result = cli("init", "telemetry", "--path", str(blocker / "telemetry.toml"))
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
    assert custom_routes(on)
    off = load_settings(file=path, environ={"DO_NOT_TRACK": "1"})
    assert off.do_not_track and not custom_routes(off)
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
    assert not custom_routes(settings) and not settings.config.audit.enabled


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
    cli: RunCli, tmp_path: Path, text: str, key: str | None, reason: str
) -> None:
    path = write(tmp_path / "telemetry.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(file=path, environ={})
    message = str(caught.value)
    assert str(path) in message
    if key is not None:
        assert f"key {key!r}" in message or f"key '{key}" in message
    assert reason in message

    result = cli("telemetry", "status", env={"PIPECLIENT_TELEMETRY_FILE": str(path)})
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


def test_status_reports_each_stream_with_reasons_and_sources(cli: RunCli, tmp_path: Path) -> None:
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
    result = cli("telemetry", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    streams = {stream["stream"]: stream for stream in status["streams"]}
    assert set(streams) == {"posthog", "langfuse", "otlp:c1", "gateway", "audit", "store"}
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

    text = cli("telemetry", "status", env=env)
    assert text.returncode == 0 and "ON  posthog" in text.stdout
    assert "phc_secret_value" not in text.stdout

    dnt = json.loads(cli("telemetry", "status", "--json", env={**env, "DO_NOT_TRACK": "1"}).stdout)
    assert dnt["do_not_track"] is True
    assert not any(s["on"] for s in dnt["streams"] if s["stream"] != "audit")
    gateway = next(s for s in dnt["streams"] if s["stream"] == "gateway")
    assert "GatewayTelemetryRequiredError" in gateway["why"]


# -- environment edge cases, provenance, secrets ------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PIPECLIENT_OTLP__X__ENABLED": "true"}, "is not a table number"),
        ({"PIPECLIENT_OTLP__5__ENABLED": "true"}, "there is no [[otlp]] table 5"),
        ({"PIPECLIENT_POSTHOG__ENABLED__X": "true"}, "'enabled' is not a table"),
        ({"PIPECLIENT_OTLP": '{"name": "x"}'}, "must be a JSON list"),
        ({"PIPECLIENT_POSTHOG": '["phc_in_a_list"]'}, "must be a table"),
        ({"PIPECLIENT_PRIVACY__PII": "email"}, "not valid JSON"),
        (
            {"PIPECLIENT_OTLP": '[{"name": "a"}]', "PIPECLIENT_OTLP__0__ENABLED": "true"},
            "not both",
        ),
    ],
)
def test_bad_environment_shapes(cli: RunCli, environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert expected in str(caught.value)
    assert "phc_in_a_list" not in str(caught.value)
    result = cli("telemetry", "status", env=environ)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_whole_tables_as_json_variables() -> None:
    environ = {
        "PIPECLIENT_OTLP": '[{"name": "j", "enabled": true, "endpoint": "http://127.0.0.1:1"}]',
        "PIPECLIENT_AUDIT": '{"enabled": true, "user_id": "u"}',
    }
    settings = load_settings(environ=environ)
    assert [(t.name, t.enabled) for t in settings.config.otlp] == [("j", True)]
    assert settings.config.audit.user_id == "u"
    assert settings.source_of("otlp[0].enabled") == "env PIPECLIENT_OTLP"
    assert settings.source_of("audit.user_id") == "env PIPECLIENT_AUDIT"


def test_next_otlp_table_from_an_index_variable() -> None:
    settings = load_settings(environ={"PIPECLIENT_OTLP__1__ENABLED": "true"})
    assert [t.name for t in settings.config.otlp] == ["collector", "otlp1"]


def test_replacing_the_otlp_list_drops_the_old_provenance(tmp_path: Path) -> None:
    path = write(tmp_path / "t.toml", '[[otlp]]\nname = "a"\nenabled = true\n')
    environ = {"PIPECLIENT_OTLP": '[{"name": "j"}]'}
    settings = load_settings(file=path, environ=environ)
    assert settings.config.otlp[0].enabled is False
    assert settings.source_of("otlp[0].enabled") == "default"
    assert settings.source_of("otlp[0].name") == "env PIPECLIENT_OTLP"


def test_otel_variables_override_the_file_and_headers_follow_their_collector(
    tmp_path: Path,
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env-collector:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-team-key=HONEYKEY",
    }
    path = write(
        tmp_path / "t.toml",
        '[[otlp]]\nname = "local"\nendpoint = "http://internal:4318"\n'
        'headers = { x-file-key = "FILEKEY" }\n',
    )
    # Environment over file; the file's credential is not sent to the substituted collector.
    table = load_settings(file=path, environ=environ).config.otlp[0]
    assert table.endpoint == "http://env-collector:4318"
    assert table.headers == {"x-team-key": "HONEYKEY"}
    only_endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env-collector:4318"}
    assert load_settings(file=path, environ=only_endpoint).config.otlp[0].headers == {}
    # Headers alone go only to the collector OTEL_EXPORTER_OTLP_ENDPOINT names by default.
    only_headers = {"OTEL_EXPORTER_OTLP_HEADERS": "x-team-key=HONEYKEY"}
    table = load_settings(file=path, environ=only_headers).config.otlp[0]
    assert table.endpoint == "http://internal:4318" and table.headers == {"x-file-key": "FILEKEY"}
    local = write(tmp_path / "l.toml", '[[otlp]]\nendpoint = "http://localhost:4318/"\n')
    assert load_settings(file=local, environ=only_headers).config.otlp[0].headers == {
        "x-team-key": "HONEYKEY"
    }
    # A PIPECLIENT_ variable wins over OTEL_*, and OTEL headers never follow it elsewhere.
    pinned = {**environ, "PIPECLIENT_OTLP__0__ENDPOINT": "http://pinned:4318"}
    table = load_settings(environ=pinned).config.otlp[0]
    assert table.endpoint == "http://pinned:4318" and table.headers == {}
    table = load_settings(environ=environ).config.otlp[0]
    assert table.endpoint == "http://env-collector:4318"
    assert table.headers == {"x-team-key": "HONEYKEY"}
    empty = write(tmp_path / "e.toml", "otlp = []\n")
    assert load_settings(file=empty, environ=environ).config.otlp == []


def test_ecosystem_hosts_override_the_generated_file_and_status_says_so(
    cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "telemetry.toml"
    assert cli("init", "telemetry", "--path", str(path)).returncode == 0
    env = {
        "PIPECLIENT_TELEMETRY_FILE": str(path),
        "POSTHOG_HOST": "https://eu.i.posthog.com",
        "LANGFUSE_HOST": "https://lf.example",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318",
    }
    settings = load_settings(environ=env)
    assert settings.config.posthog.host == "https://eu.i.posthog.com"
    assert settings.config.langfuse.host == "https://lf.example"
    assert settings.config.otlp[0].endpoint == "http://collector.example:4318"
    result = cli("telemetry", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {
        row["key"]: row
        for stream in json.loads(result.stdout)["streams"]
        for row in stream["settings"]
    }
    for key, variable in [
        ("posthog.host", "POSTHOG_HOST"),
        ("langfuse.host", "LANGFUSE_HOST"),
        ("otlp[0].endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ]:
        assert rows[key]["source"] == f"env {variable}"
        assert rows[key]["overrides"] == f"file {path}"
    text = cli("telemetry", "status", env=env).stdout
    assert f"[env OTEL_EXPORTER_OTLP_ENDPOINT, over file {path}]" in text


SECRET = "phc_SECRET_9f8e7d"


@pytest.mark.parametrize(
    "text",
    [
        f'[[posthog]]\napi_key = "{SECRET}"\n',
        f'[posthog]\nhost = "{SECRET}"\n',
        f'[[otlp]]\nname = "a"\nheaders = {{ k = "{SECRET}" }}\n[[otlp]]\nname = "a"\n',
        f'[posthog]\nenabled = true\napi_key = "{SECRET}"\nhost = "https://u:{SECRET}@h"\n',
        f'[langfuse]\nsecret_key = {{ nested = "{SECRET}" }}\n',
    ],
)
def test_errors_never_echo_secrets(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "t.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(file=path, environ={})
    error: BaseException | None = caught.value
    while error is not None:
        assert SECRET not in str(error) and SECRET not in repr(error)
        error = error.__context__ or error.__cause__


def test_settings_repr_hides_secrets() -> None:
    environ = {
        "PIPECLIENT_POSTHOG__ENABLED": "true",
        "POSTHOG_API_KEY": SECRET,
        "PIPECLIENT_OTLP__0__HEADERS": f'{{"authorization": "{SECRET}"}}',
    }
    settings = load_settings(environ=environ)
    assert SECRET not in repr(settings) and SECRET not in repr(settings.config)
    assert SECRET not in str(settings.config.model_dump(exclude={"posthog", "otlp"}))


@pytest.mark.parametrize(
    "url", ["http://u:pw@h:4318", "http://h:4318?a=b", "http://h:99999", "http://h 4318"]
)
def test_telemetry_urls_are_checked_like_backend_urls(url: str) -> None:
    with pytest.raises(ConfigError, match=r"otlp\[0\]\.endpoint"):
        load_settings(environ={"PIPECLIENT_OTLP__0__ENDPOINT": url})


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        ("${H:-${HDEF}}", {}, None),
        ("${1X}", {}, None),
        ("${H}", {"H": "${NOT}"}, None),
        ("${H}", {"H": ""}, None),
        ("https://${H:-}example.com", {}, "https://example.com"),
        ("https://${H}", {"H": "ph.example"}, "https://ph.example"),
    ],
)
def test_placeholder_edge_cases(
    tmp_path: Path, value: str, environ: dict[str, str], expected: str | None
) -> None:
    path = write(
        tmp_path / "t.toml", f'[posthog]\nenabled = true\napi_key = "k"\nhost = "{value}"\n'
    )
    if expected is None:
        with pytest.raises(ConfigError, match=r"posthog\.host"):
            load_settings(file=path, environ=environ)
    else:
        assert load_settings(file=path, environ=environ).config.posthog.host == expected


def test_escaped_placeholder_is_literal(tmp_path: Path) -> None:
    path = write(tmp_path / "t.toml", '[audit]\nenabled = true\nuser_id = "$${USER}"\n')
    assert load_settings(file=path, environ={"USER": "x"}).config.audit.user_id == "${USER}"


def test_placeholders_in_header_keys_and_lists(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.toml",
        '[[otlp]]\nenabled = true\nheaders = { "${HK}" = "Bearer ${TOKEN}" }\n'
        '[posthog]\nredact_properties = ["${P:-$ai_input}"]\n',
    )
    config = load_settings(file=path, environ={"HK": "authorization", "TOKEN": "t"}).config
    assert config.otlp[0].headers == {"authorization": "Bearer t"}


def test_a_broken_project_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    write(home / ".pipelex" / "telemetry.toml", "[posthog]\n")
    (cwd / ".pipelex" / "telemetry.toml").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a regular file"):
        find_telemetry_file({}, cwd, home)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="not a regular file"):
        find_telemetry_file({"PIPECLIENT_TELEMETRY_FILE": str(loop)})


@pytest.mark.parametrize(
    "text",
    [
        "[posthog]\nredact_properties = " + "[" * 600 + "]" * 600 + "\n",
        "[posthog]\nredact_properties = [1979-05-27T07:32:00Z]\n",
        '[posthog]\nredact_properties = [["a"]]\n',
    ],
)
def test_odd_toml_values_are_clean_errors(cli: RunCli, tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "t.toml", text)
    result = cli("telemetry", "status", "--file", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(path) in result.stderr


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(b"\xef\xbb\xbf[audit]\nuser_id = 'u'\n")
    assert load_settings(file=path, environ={}).config.audit.user_id == "u"


def test_model_instances_as_arguments() -> None:
    from pipeclient.config import OtlpConfig, PostHogConfig

    settings = load_settings(
        {"otlp": [OtlpConfig(name="x")], "posthog": PostHogConfig(distinct_id="d")}, environ={}
    )
    assert [t.name for t in settings.config.otlp] == ["x"]
    assert settings.config.posthog.distinct_id == "d"
    config = TelemetryConfig()
    config.audit.user_id = "assigned"
    assert load_settings(config, environ={}).config.audit.user_id == "assigned"


def test_status_gateway_agrees_with_the_client(cli: RunCli) -> None:
    result = cli("telemetry", "status", env={"PIPECLIENT_GATEWAY_URL": "notaurl"})
    assert result.returncode == 2 and "PIPECLIENT_GATEWAY_URL" in result.stderr


def test_status_survives_a_looping_audit_path(cli: RunCli, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = cli("telemetry", "status", env={"PIPECLIENT_AUDIT__PATH": str(loop)})
    assert result.returncode == 0 and "Traceback" not in result.stderr


def test_generated_comments_match_the_pinned_ones() -> None:
    text = default_file_text()
    for line in [
        'distinct_id = ""',
        "# empty: anonymous events ($process_person_profile = false)",
        "# strip prompts/completions and error text before sending",
        "# more property names to strip",
        "[[otlp]]",
        "# any number of these tables",
        "# 0: no limit",
        "# the internal user identifier written on each line",
        "# true: each line is written and fsynced before the call returns",
    ]:
        assert line in text, line


def test_init_refuses_symlinks_and_directories(cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "real.toml"
    link = tmp_path / "link.toml"
    link.symlink_to(target)  # dangling
    result = cli("init", "telemetry", "--path", str(link), "--force")
    assert result.returncode == 2 and "symbolic link" in result.stderr
    assert not target.exists()
    folder = tmp_path / "folder"
    folder.mkdir()
    result = cli("init", "telemetry", "--path", str(folder))
    assert result.returncode == 2 and "is a directory" in result.stderr
