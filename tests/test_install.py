"""The light install: the base install carries no telemetry SDK; a stream enabled without
its SDK is a ConfigError naming the stream and the pip line, at construction and in
`pipeclient telemetry status`.

A missing SDK is made for real in a fresh interpreter: a finder placed first on
`sys.meta_path` answers "no module named ..." for the SDK's packages, which is what the
import system answers when the package is not installed (every lookup, `find_spec` and
`import` alike, asks `sys.meta_path` first); the rest of the interpreter is the real one.
Where the SDK is genuinely absent (CI's second environment installs no langfuse or
OpenTelemetry), no finder is needed and the same assertions hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
URL = "http://127.0.0.1:9/v1"

# stream -> (the telemetry= mapping that enables it, the packages its SDK is, the extra)
STREAMS = {
    "posthog": ({"posthog": {"enabled": True, "api_key": "phc_test"}}, ("posthog",), "posthog"),
    "langfuse": (
        {"langfuse": {"enabled": True, "public_key": "pk-lf", "secret_key": "sk-lf"}},
        ("langfuse",),
        "langfuse",
    ),
    "otlp": (
        {"otlp": [{"name": "collector", "enabled": True, "endpoint": "http://127.0.0.1:9"}]},
        ("opentelemetry",),
        "otlp",
    ),
}

BLOCKER = """
import importlib.abc, sys
class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in {blocked!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def run(script: str, blocked: tuple[str, ...], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIPECLIENT_", "POSTHOG_", "LANGFUSE_", "OTEL_"))
        and k != "DO_NOT_TRACK"
    }
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=blocked) + script],
        capture_output=True,
        text=True,
        env={**env, "HOME": str(tmp_path)},
        cwd=tmp_path,
        timeout=60,
    )


BUILD = """
import json, pipeclient
try:
    pipeclient.{client}(api_key="sk", base_url={url!r}, telemetry={telemetry!r})
except pipeclient.ConfigError as exc:
    print(json.dumps({{"error": str(exc), "key": exc.key}}))
else:
    print(json.dumps({{"error": None}}))
"""


@pytest.mark.parametrize("client", ["Client", "AsyncClient"])
@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_a_stream_enabled_without_its_sdk_is_a_config_error_at_construction(
    stream: str, client: str, tmp_path: Path
) -> None:
    telemetry, blocked, extra = STREAMS[stream]
    script = BUILD.format(client=client, url=URL, telemetry=telemetry)
    out = run(script, blocked, tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["error"] is not None
    assert f"pip install 'pipeclient[{extra}]'" in result["error"]
    assert f"the {stream}" in result["error"] and "not installed" in result["error"]
    assert result["key"].endswith("enabled")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_with_the_sdk_the_same_configuration_builds(stream: str, tmp_path: Path) -> None:
    telemetry, blocked, _ = STREAMS[stream]
    pytest.importorskip(blocked[0])
    script = BUILD.format(client="Client", url=URL, telemetry=telemetry)
    out = run(script, (), tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {"error": None}


def test_a_missing_sdk_is_no_error_while_its_stream_is_off(tmp_path: Path) -> None:
    script = BUILD.format(
        client="Client", url=URL, telemetry={"posthog": {"enabled": False}, "audit": {}}
    )
    out = run(script, ("posthog", "langfuse", "opentelemetry"), tmp_path)
    assert json.loads(out.stdout.splitlines()[-1]) == {"error": None}


STATUS = """
import sys
from pipeclient._cli.main import main
sys.exit(main(["telemetry", "status", "--file", {file!r}]))
"""


def test_telemetry_status_shows_the_missing_sdk_and_the_pip_line(tmp_path: Path) -> None:
    file = tmp_path / "telemetry.toml"
    file.write_text(
        '[posthog]\nenabled = true\napi_key = "phc_test"\n\n'
        '[langfuse]\nenabled = true\npublic_key = "pk"\nsecret_key = "sk"\n'
    )
    out = run(STATUS.format(file=str(file)), ("posthog",), tmp_path)
    assert out.returncode == 2, out.stderr
    posthog = out.stdout.split("\noff posthog:")[1].split("\n")[0]
    assert "not installed: pip install 'pipeclient[posthog]'" in posthog
    assert "enabled without the package it needs: posthog" in out.stderr
    if _installed("langfuse"):
        assert "\nON  langfuse:" in out.stdout  # its SDK is there: unaffected


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_the_base_install_names_no_telemetry_sdk_and_each_extra_brings_its_own() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    sdks = ("posthog", "langfuse", "opentelemetry")
    base = [dep for dep in project["dependencies"] if dep.lower().startswith(sdks)]
    assert base == []
    extras = project["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["posthog"]] == ["posthog"]
    assert [d.split(">")[0] for d in extras["langfuse"]] == ["langfuse"]
    assert {d.split(">")[0] for d in extras["otlp"]} == {
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    }
    assert [d.split(">")[0] for d in extras["crypto"]] == ["cryptography"]
    assert not [dep for dep in project["dependencies"] if dep.startswith("cryptography")]
    together = extras["posthog"] + extras["langfuse"] + extras["otlp"] + extras["crypto"]
    assert sorted(extras["all"]) == sorted(together)
    assert set(together) <= set(extras["test"])  # the tests run every sink for real


# -- cryptography is the `crypto` extra ----------------------------------------------------

SIGNING_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # 32 bytes, base64


@pytest.mark.parametrize(
    ("telemetry", "key"),
    [
        ({"store": {"enabled": True, "key": SIGNING_KEY}}, "store.enabled"),
        ({"audit": {"enabled": True, "signing_key": SIGNING_KEY}}, "audit.signing_key"),
    ],
)
def test_the_store_or_a_signing_key_without_cryptography_is_a_config_error(
    telemetry: dict[str, object], key: str, tmp_path: Path
) -> None:
    out = run(
        BUILD.format(client="Client", url=URL, telemetry=telemetry), ("cryptography",), tmp_path
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["key"] == key
    assert "pip install 'pipeclient[crypto]'" in result["error"]
    assert "cryptography package, which is not installed" in result["error"]


def test_a_budget_without_its_price_table_is_a_config_error(tmp_path: Path) -> None:
    """Without genai-prices every call would be unpriced: the limit never reached."""
    budget = {"limit_usd": 1.0, "path": str(tmp_path / "budget.db")}
    out = run(
        BUILD.format(client="Client", url=URL, telemetry={"budget": budget}),
        ("genai_prices",),
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["key"] == "budget.limit_usd"
    assert "pip install 'pipeclient[prices]'" in result["error"]
    assert 'table = "none"' in result["error"]
    priced_by_you = {**budget, "limit_usd": 2.0}
    telemetry = {
        "budget": priced_by_you,
        "pricing": {
            "table": "none",
            "models": {"m": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}},
        },
    }
    out = run(
        BUILD.format(client="AsyncClient", url=URL, telemetry=telemetry),
        ("genai_prices",),
        tmp_path,
    )
    assert json.loads(out.stdout.splitlines()[-1]) == {"error": None}, out.stderr


AUDIT_WITHOUT_CRYPTO = """
import sys, pipeclient
from pipeclient.testing import MockBackend
from pipeclient._cli.main import main
client = pipeclient.Client(backends=[MockBackend().backend()],
    telemetry={"audit": {"enabled": True, "path": "audit.jsonl", "durable": True}})
client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
client.close()
assert "cryptography" not in sys.modules
codes = [main(["audit", "verify", "audit.jsonl"]), main(["audit", "checkpoint", "audit.jsonl"])]
codes.append(main(["audit", "verify", "audit.jsonl", "--checkpoint", "audit.jsonl.checkpoint",
                   "--public-key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]))
print(codes)
"""


def test_the_unsigned_audit_log_works_without_cryptography(tmp_path: Path) -> None:
    out = run(AUDIT_WITHOUT_CRYPTO, ("cryptography",), tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[0, 0, 2]"
    assert "pip install 'pipeclient[crypto]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_store_commands_without_cryptography_give_the_pip_line(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom pipeclient._cli.main import main\nsys.exit(main(['store', 'prune']))\n"
    )
    out = run(script, ("cryptography",), tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "pip install 'pipeclient[crypto]'" in out.stderr


def test_telemetry_status_shows_the_store_without_cryptography(tmp_path: Path) -> None:
    file = tmp_path / "telemetry.toml"
    file.write_text(f'[store]\nenabled = true\nkey = "{SIGNING_KEY}"\n')
    out = run(STATUS.format(file=str(file)), ("cryptography",), tmp_path)
    assert out.returncode == 2, out.stderr
    store = out.stdout.split("\noff store:")[1].split("\n")[0]
    assert "pip install 'pipeclient[crypto]'" in store
    assert "enabled without the package it needs: store" in out.stderr
