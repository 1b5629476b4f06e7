"""The response cache (`[cache]`): a repeated non-streamed request is answered from a local
file without reaching the backend (counted on a real loopback server), within its TTL,
sealed at rest when a key is configured, shared by processes, and marked in telemetry
(real capture servers, `capture_telemetry()`) at cost 0."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
import pipeclient._store.cache as cache_file
from pipeclient.testing import CaptureServer, MockBackend, MockGateway, capture_telemetry

from .conftest import RunCli, listen

CANARY = "canary-answer-7f3a91"
HI = [{"role": "user", "content": "hello there"}]
PRICES = {"table": "none", "models": {"m": {"input_per_mtok": 1.0, "output_per_mtok": 1000.0}}}


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def server() -> Iterator[Any]:
    mock = MockBackend(reply=lambda body: f"{CANARY}: {body['messages'][-1]['content']}")
    with mock.serve() as served:
        served.mock = mock
        yield served


def cached(path: Path, **cache: Any) -> dict[str, Any]:
    return {"cache": {"enabled": True, "path": str(path), **cache}}


def file_bytes(path: Path) -> bytes:
    """Every byte the cache left on disk: the database, its write-ahead log and index."""
    return b"".join(
        Path(f"{path}{suffix}").read_bytes()
        for suffix in ("", "-wal", "-shm")
        if Path(f"{path}{suffix}").exists()
    )


def rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM answers").fetchone()[0])
    finally:
        db.close()


# -- hits and misses ---------------------------------------------------------------------


def test_a_repeated_call_is_answered_from_the_cache_without_reaching_the_backend(
    server: Any, tmp_path: Path
) -> None:
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(tmp_path / "c.db")) as c:
        first = c.chat.completions.create(model="m", messages=HI, temperature=0.2)
        again = c.chat.completions.create(model="m", messages=HI, temperature=0.2)
        vectors = [c.embeddings.create(model="e", input=["a", "b"]) for _ in range(2)]
        raw = c.with_raw_response.chat.completions.create(model="m", messages=HI, temperature=0.2)
    paths = [request.path for request in server.mock.requests]
    assert paths == ["/v1/chat/completions", "/v1/embeddings"]  # one each: the rest were hits
    assert again.model_dump() == first.model_dump()
    assert CANARY in (again.choices[0].message.content or "")
    assert vectors[1].model_dump() == vectors[0].model_dump()
    assert raw.headers["x-pipeclient-cache"] == "hit"
    assert raw.status_code == 200 and raw.parse().model_dump() == first.model_dump()
    assert raw.http_request.url == server.backend().base_url + "/chat/completions"


def test_a_hit_names_the_backend_and_route_that_gave_the_answer(
    server: Any, tmp_path: Path
) -> None:
    """A sensitive request answered by your own server: its hit must not read as if the
    provider (the first backend) had served it."""
    own = MockBackend()
    with own.serve() as local:
        telemetry = {
            **cached(tmp_path / "c.db"),
            "privacy": {"pii": ["email"]},
            "routing": {"sensitive": "local"},
        }
        backends = [server.backend("cloud"), local.backend("own", local=True, weight=0)]
        flagged = [{"role": "user", "content": "write to kim.7@example.com"}]
        with pipeclient.Client(backends=backends, telemetry=telemetry) as client:
            records = listen(client)
            for _ in range(2):
                client.chat.completions.create(model="m", messages=flagged)
            client.chat.completions.create(model="m", messages=HI)  # ordinary: the provider
            client.chat.completions.create(model="m", messages=HI)
    assert len(own.requests) == 1 and len(server.mock.requests) == 1
    miss, hit, _other_miss, other_hit = records
    assert hit.cache_hit and not miss.cache_hit
    assert (hit.backend, hit.base_url, hit.route) == (miss.backend, miss.base_url, "sensitive")
    assert hit.backend == "own" and hit.base_url == local.backend().base_url
    assert other_hit.cache_hit and other_hit.backend == "cloud" and other_hit.route is None


def test_a_miss_answer_has_no_cache_header(server: Any, tmp_path: Path) -> None:
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(tmp_path / "c.db")) as c:
        raw = c.with_raw_response.chat.completions.create(model="m", messages=HI)
    assert "x-pipeclient-cache" not in raw.headers


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(min_size=1, max_size=30),
    other=st.text(min_size=1, max_size=30),
    temperature=st.sampled_from([None, 0.0, 0.5, 1.0]),
    user=st.sampled_from([None, "alice", "bob"]),
)
def test_only_the_same_request_for_the_same_user_hits(
    tmp_path: Path, text: str, other: str, temperature: float | None, user: str | None
) -> None:
    mock = MockBackend()
    path = tmp_path / f"{os.urandom(6).hex()}.db"
    params: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    with pipeclient.Client(backends=[mock.backend()], telemetry=cached(path)) as client:

        def ask(content: str, **more: Any) -> None:
            messages = [{"content": content, "role": "user"}]  # key order: not significant
            client.chat.completions.create(model="m", messages=messages, **params, **more)

        ask(text, user_id=user)
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": text}], **params, user_id=user
        )
        assert len(mock.requests) == 1  # the same request, keys in another order: a hit
        ask(other, user_id=user)
        assert len(mock.requests) == (1 if other == text else 2)
        before = len(mock.requests)
        ask(text, user_id="someone-else")  # another user's answer is never served
        ask(text, user_id=user, max_tokens=7)  # another parameter: another request
        client.chat.completions.create(model="m2", messages=[{"role": "user", "content": text}])
        assert len(mock.requests) == before + 3


def test_answers_expire_after_ttl_seconds(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPECLIENT_CACHE_KEY", new_key())
    now = [1_900_000_000.0]
    monkeypatch.setattr(cache_file, "_clock", lambda: now[0])
    config = cached(tmp_path / "c.db", ttl_seconds=60)
    with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
        client.chat.completions.create(model="m", messages=HI)
        now[0] += 59
        client.chat.completions.create(model="m", messages=HI)
        assert len(server.mock.requests) == 1
        now[0] += 2  # 61 s after the answer was kept
        client.chat.completions.create(model="m", messages=HI)
        assert len(server.mock.requests) == 2
        client.chat.completions.create(model="m", messages=HI)  # the new answer is served
    assert len(server.mock.requests) == 2


def test_pruning_keeps_the_answers_in_use(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_900_000_000.0]
    monkeypatch.setattr(cache_file, "_clock", lambda: now[0])

    def ask(client: pipeclient.Client, text: str) -> None:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])

    config = cached(tmp_path / "c.db", max_entries=2)
    with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
        for text in ("old but used", "old and unused"):
            ask(client, text)
            now[0] += 1
        now[0] += 100
        ask(client, "old but used")  # a hit, its use recorded (the last was over a minute ago)
        ask(client, "new")
        assert len(server.mock.requests) == 3
        assert client._cache is not None and client._cache.store.prune() == 1
        ask(client, "old but used")
        ask(client, "new")
        assert len(server.mock.requests) == 3
        ask(client, "old and unused")  # the least recently used was pruned
    assert len(server.mock.requests) == 4


def test_streams_responses_and_cache_false_calls_are_never_cached(
    server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.db"
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        for _ in range(2):
            chunks = list(client.chat.completions.create(model="m", messages=HI, stream=True))
            assert chunks
            client.responses.create(model="m", input="hello there")
            client.chat.completions.create(model="m", messages=HI, cache=False)
        assert not path.exists() or rows(path) == 0
        client.chat.completions.create(model="m", messages=HI)  # now kept
        client.chat.completions.create(model="m", messages=HI, cache=False)  # skips it
    assert len(server.mock.requests) == 8
    with pipeclient.Client(
        backends=[server.backend()], telemetry=cached(path), cache=False
    ) as client:
        client.chat.completions.create(model="m", messages=HI)
    assert len(server.mock.requests) == 9  # Client(cache=False): the kept answer not used
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        quiet = client.with_options(cache=False)
        quiet.chat.completions.create(model="m", messages=HI)
        assert len(server.mock.requests) == 10
        quiet.with_options(cache=True).chat.completions.create(model="m", messages=HI)
        client.chat.completions.create(model="m", messages=HI)
    assert len(server.mock.requests) == 10


def test_a_no_log_or_ephemeral_call_is_answered_from_the_cache_but_never_written(
    server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.db"
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        client.chat.completions.create(model="m", messages=HI, no_log=True)
        client.chat.completions.create(model="m", messages=HI, ephemeral=True)
        assert rows(path) == 0 and len(server.mock.requests) == 2
        client.chat.completions.create(model="m", messages=HI)
        client.chat.completions.create(model="m", messages=HI, no_log=True)
    assert len(server.mock.requests) == 3


def test_a_client_with_a_gateway_backend_never_uses_the_cache(tmp_path: Path) -> None:
    gateway = MockGateway()
    path = tmp_path / "c.db"
    with gateway.serve() as served:
        with pipeclient.Client(
            backends=[served.backend(kind="gateway", api_key="gw-test-key")],
            telemetry=cached(path),
        ) as client:
            for _ in range(2):
                client.chat.completions.create(model="m", messages=HI)
    assert len(gateway.requests) == 2 and not path.exists()


def test_an_error_answer_is_not_kept(server: Any, tmp_path: Path) -> None:
    from pipeclient.testing import Fault

    server.mock.push(Fault(status=400))
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(tmp_path / "c.db")) as c:
        with pytest.raises(pipeclient.APIStatusError):
            c.chat.completions.create(model="m", messages=HI)
        c.chat.completions.create(model="m", messages=HI)
    assert len(server.mock.requests) == 2


# -- at rest -------------------------------------------------------------------------------


def test_answers_are_sealed_at_rest_with_a_cache_key(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.db"
    monkeypatch.setenv("PIPECLIENT_CACHE_KEY", new_key())
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        client.chat.completions.create(model="m", messages=HI, user_id="user-canary-42")
        client.chat.completions.create(model="m", messages=HI, user_id="user-canary-42")
        on_disk = file_bytes(path)
    assert len(server.mock.requests) == 1 and rows(path) == 1
    for secret in (CANARY, "hello there", "user-canary-42"):
        assert secret.encode() not in on_disk
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_with_the_content_store_on_answers_are_sealed_under_a_key_derived_from_its_key(
    server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "c.db"
    config = {
        **cached(path),
        "store": {"enabled": True, "path": str(tmp_path / "store.db"), "key": new_key()},
    }
    with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
        client.chat.completions.create(model="m", messages=HI)
        client.chat.completions.create(model="m", messages=HI)
    assert len(server.mock.requests) == 1
    assert CANARY.encode() not in file_bytes(path)


def test_without_any_key_answers_are_kept_as_they_came(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        client.chat.completions.create(model="m", messages=HI)
    assert CANARY.encode() in file_bytes(path)  # the check above can fail
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_an_altered_or_foreign_sealed_answer_is_never_served(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.db"
    monkeypatch.setenv("PIPECLIENT_CACHE_KEY", new_key())
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        client.chat.completions.create(model="m", messages=HI)
    db = sqlite3.connect(path)
    db.execute("UPDATE answers SET body = substr(body, 1, 20) || x'00' || substr(body, 22)")
    db.commit()
    db.close()
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        client.chat.completions.create(model="m", messages=HI)  # altered: a miss
        assert len(server.mock.requests) == 2
    monkeypatch.setenv("PIPECLIENT_CACHE_KEY", new_key())  # another key: nothing readable
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        client.chat.completions.create(model="m", messages=HI)
    assert len(server.mock.requests) == 3


# -- telemetry -----------------------------------------------------------------------------


def test_a_hit_is_marked_in_every_destination_costs_nothing_and_sends_no_gateway_event(
    server: Any, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    config = {
        **cached(tmp_path / "c.db"),
        "pricing": PRICES,
        "posthog": {"enabled": True, "api_key": "phc_test"},
        "langfuse": {"enabled": True, "public_key": "pk-lf", "secret_key": "sk-lf"},
        "otlp": [{"name": "o", "enabled": True}],
        "audit": {"enabled": True, "path": str(audit)},
    }
    with capture_telemetry() as captured:
        client = pipeclient.Client(backends=[server.backend()], telemetry=config)
        records = listen(client)
        for _ in range(2):
            client.chat.completions.create(model="m", messages=HI)
        client.close()
    miss, hit = records
    assert (miss.cache_hit, hit.cache_hit) == (False, True)
    assert (hit.attempts, hit.backend, hit.gateway, hit.http_status) == (
        0,
        miss.backend,
        False,
        200,
    )
    assert hit.input_tokens == miss.input_tokens  # the usage the answer reports, at no cost
    first, second = captured["posthog"]
    assert "pipeclient_cache_hit" not in first["properties"]
    assert second["properties"]["pipeclient_cache_hit"] is True
    assert first["properties"]["$ai_total_cost_usd"] > 0
    for name in ("$ai_input_cost_usd", "$ai_output_cost_usd", "$ai_total_cost_usd"):
        assert second["properties"][name] == 0.0
    spans = [span["attributes"] for span in captured["otlp:o"]]
    assert [attributes.get("pipeclient.cache_hit") for attributes in spans] == [None, True]
    langfuse = captured.text("langfuse")
    assert langfuse.count("langfuse.observation.metadata.cache_hit") == 1
    lines = captured["audit"]  # the audit line is written for a hit as for any call
    assert [line["x_request_id"] for line in lines] == [miss.request_id, hit.request_id]
    assert lines[0]["endpoint"] == lines[1]["endpoint"] == "/v1/chat/completions"
    # Not even a record marked as the gateway's would make an event: no provider call.
    from pipeclient._sinks.gateway.sink import GatewaySink, GatewayTarget

    sink = GatewaySink({"gw": GatewayTarget("http://gw.invalid/v1", "k")}, spool_root=tmp_path)
    as_gateway = dataclasses.replace(miss, gateway=True, backend="gw")
    assert len(sink.encode(as_gateway)) == 1
    assert sink.encode(dataclasses.replace(as_gateway, cache_hit=True)) == []


def test_posthog_receives_the_hit_mark_over_the_wire(server: Any, tmp_path: Path) -> None:
    with CaptureServer() as posthog:
        config = {
            **cached(tmp_path / "c.db"),
            "posthog": {"enabled": True, "host": posthog.url, "api_key": "phc_test"},
        }
        with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
            for _ in range(2):
                client.chat.completions.create(model="m", messages=HI)
            client.flush()
        events = [event for request in posthog.requests for event in request.json()["batch"]]
    marks = [event["properties"].get("pipeclient_cache_hit") for event in events]
    assert marks == [None, True]


def test_a_hit_is_not_spend_and_is_served_over_an_exhausted_budget(
    server: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "budget.db"
    config = {
        **cached(tmp_path / "c.db"),
        "pricing": PRICES,
        "budget": {"limit_usd": 0.001, "path": str(ledger)},
    }
    with pipeclient.Client(backends=[server.backend()], telemetry=config) as client:
        client.chat.completions.create(model="m", messages=HI)  # over the limit once priced
        client.flush()
        assert client._budget is not None
        spent = client._budget.spent()
        for _ in range(3):
            client.chat.completions.create(model="m", messages=HI)  # hits: never refused
        client.flush()
        assert client._budget.spent() == spent  # and never counted
        with pytest.raises(pipeclient.BudgetExceededError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert len(server.mock.requests) == 1


# -- processes and async -----------------------------------------------------------------


def test_processes_share_the_cache_file(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.db"
    key = new_key()
    monkeypatch.setenv("PIPECLIENT_CACHE_KEY", key)
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        mine = client.chat.completions.create(model="m", messages=HI)
    script = textwrap.dedent(
        f"""
        import json, pipeclient
        backend = pipeclient.Backend(name="mock", base_url={server.backend().base_url!r},
                                     api_key="mock-key")
        telemetry = {{"cache": {{"enabled": True, "path": {str(path)!r}}}}}
        with pipeclient.Client(backends=[backend], telemetry=telemetry) as client:
            answer = client.chat.completions.create(model="m", messages={HI!r})
            client.chat.completions.create(model="m", messages=[{{"role": "user", "content": "x"}}])
        print(json.dumps(answer.model_dump()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PIPECLIENT_CACHE_KEY": key},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == mine.model_dump()
    assert len(server.mock.requests) == 2  # the child's first call was a hit
    with pipeclient.Client(backends=[server.backend()], telemetry=cached(path)) as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert len(server.mock.requests) == 2  # and what the child kept serves this process


def test_the_async_client_is_answered_from_the_cache(server: Any, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    config = {**cached(tmp_path / "c.db"), "audit": {"enabled": True, "path": str(audit)}}
    config["audit"]["durable"] = True

    async def main() -> tuple[Any, Any, Any]:
        async with pipeclient.AsyncClient(backends=[server.backend()], telemetry=config) as c:
            first = await c.chat.completions.create(model="m", messages=HI)
            again = await c.chat.completions.create(model="m", messages=HI)
            raw = await c.with_raw_response.chat.completions.create(model="m", messages=HI)
            assert len(audit.read_text().splitlines()) == 3  # durable: written before return
            return first, again, raw

    first, again, raw = asyncio.run(main())
    assert len(server.mock.requests) == 1
    assert again.model_dump() == first.model_dump()
    assert raw.headers["x-pipeclient-cache"] == "hit"


# -- configuration and the command -------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key", "words"),
    [
        ("ttl_seconds = 0", "cache.ttl_seconds", "greater than 0"),
        ("max_entries = -1", "cache.max_entries", "greater than 0"),
        ('ttl_seconds = "soon"', "cache.ttl_seconds", "integer"),
        ('key = "not-a-key"', "cache.key", "base64"),
        ("size = 3", "cache.size", "size"),
    ],
)
def test_bad_cache_settings_are_config_errors_naming_file_and_key(
    tmp_path: Path, line: str, key: str, words: str
) -> None:
    file = tmp_path / "telemetry.toml"
    file.write_text(f"[cache]\nenabled = true\npath = '{tmp_path / 'c.db'}'\n{line}\n")
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[MockBackend().backend()], telemetry_file=file)
    message = str(caught.value)
    assert str(file) in message and key in message and words in message
    assert "not-a-key" not in message  # a key is never echoed


def test_a_cache_key_from_the_environment_is_checked_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPECLIENT_CACHE_KEY", "c2hvcnQ=")
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[MockBackend().backend()], telemetry=cached(tmp_path / "c.db"))
    assert "PIPECLIENT_CACHE_KEY" in str(caught.value) and "32" in str(caught.value)
    monkeypatch.setenv("PIPECLIENT_CACHE__TTL_SECONDS", "-5")
    monkeypatch.delenv("PIPECLIENT_CACHE_KEY")
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[MockBackend().backend()], telemetry=cached(tmp_path / "c"))
    assert "PIPECLIENT_CACHE__TTL_SECONDS" in str(caught.value)


def test_a_path_that_is_not_a_cache_file_is_refused_when_the_client_is_made(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE something (x)")
    db.commit()
    db.close()
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[MockBackend().backend()], telemetry=cached(other))
    assert "cache.path" in str(caught.value) and "something" in str(caught.value)


def test_cache_status_prune_and_clear(server: Any, tmp_path: Path, cli: RunCli) -> None:
    path = tmp_path / "c.db"
    file = tmp_path / "telemetry.toml"
    file.write_text(f"[cache]\nenabled = true\npath = '{path}'\nmax_entries = 2\n")
    env = {"PIPECLIENT_TELEMETRY_FILE": str(file)}
    empty = cli("cache", "status", "--json", env=env)
    assert empty.returncode == 0 and json.loads(empty.stdout)["exists"] is False
    assert not path.exists()  # looking makes no file
    with pipeclient.Client(backends=[server.backend()], telemetry_file=file) as client:
        for index in range(4):
            who = "alice" if index % 2 else "bob"
            messages = [{"role": "user", "content": f"q{index}"}]
            client.chat.completions.create(model="m", messages=messages, user_id=who)
    status = json.loads(cli("cache", "status", "--json", env=env).stdout)
    assert (status["entries"], status["live"], status["encrypted"]) == (4, 4, False)
    text = cli("cache", "status", env=env).stdout
    assert "4 (4 servable" in text and "set [cache] key" in text
    pruned = cli("cache", "prune", env=env)
    assert pruned.returncode == 0 and "deleted 2 answer(s)" in pruned.stdout
    assert rows(path) == 2  # the two most recently used are kept: q2 (bob) and q3 (alice)
    cleared = cli("cache", "clear", "--user-id", "alice", env=env)
    assert cleared.returncode == 0 and "deleted 1 answer(s) of user 'alice'" in cleared.stdout
    with pipeclient.Client(backends=[server.backend()], telemetry_file=file) as client:
        before = len(server.mock.requests)
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "q2"}], user_id="bob"
        )
        assert len(server.mock.requests) == before  # bob's answer survived
    everything = cli("cache", "clear", env=env)
    assert everything.returncode == 0 and rows(path) == 0


def test_cache_clear_by_user_works_on_sealed_files(
    server: Any, tmp_path: Path, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.db"
    file = tmp_path / "telemetry.toml"
    file.write_text(f"[cache]\nenabled = true\npath = '{path}'\n")
    key = new_key()
    monkeypatch.setenv("PIPECLIENT_CACHE_KEY", key)
    with pipeclient.Client(backends=[server.backend()], telemetry_file=file) as client:
        client.chat.completions.create(model="m", messages=HI, user_id="alice")
        client.chat.completions.create(model="m", messages=HI, user_id="bob")
    env = {"PIPECLIENT_TELEMETRY_FILE": str(file), "PIPECLIENT_CACHE_KEY": key}
    status = json.loads(cli("cache", "status", "--json", env=env).stdout)
    assert status["encrypted"] is True and status["entries"] == 2
    done = cli("cache", "clear", "--user-id", "alice", env=env)
    assert "deleted 1 answer(s)" in done.stdout and rows(path) == 1
    wrong = cli(
        "cache", "clear", "--user-id", "bob", env={**env, "PIPECLIENT_CACHE_KEY": new_key()}
    )
    assert "deleted 0 answer(s)" in wrong.stdout and "another key" in wrong.stderr
    assert rows(path) == 1
