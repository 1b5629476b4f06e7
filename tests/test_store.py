"""The encrypted content store, over real SQLite files: what a client keeps, what the
`pipeclient store` commands show, delete and re-key, and what the files hold afterwards."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeclient import Client
from pipeclient._builder import build_pipeline
from pipeclient._config.settings import load_settings
from pipeclient._exceptions import ConfigError
from pipeclient._store.crypto import KeyEncryptionKey
from pipeclient._store.sqlite import SqliteStorage
from pipeclient._store.store import ContentStore, NewRecord, StoreKeyError
from pipeclient._telemetry.record import CallRecord
from pipeclient.testing import MockBackend

from .conftest import RunCli, wait_until
from .test_audit import call_record as audit_record

CANARY = "CANARY-5be1-stored-content"
KEY_VARIABLE = "PIPECLIENT_STORE_KEY"


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_key()
    monkeypatch.setenv(KEY_VARIABLE, value)
    return value


def configure(*lines: str) -> Path:
    """A telemetry.toml in the current directory with the store on, at ./store.db."""
    path = Path(".pipelex/telemetry.toml")
    path.parent.mkdir(exist_ok=True)
    body = "\n".join(lines)
    path.write_text(f'[store]\nenabled = true\npath = "store.db"\n{body}\n')
    return Path("store.db")


def open_store(path: Path, key_text: str) -> ContentStore:
    kek = KeyEncryptionKey(base64.b64decode(key_text))
    return ContentStore(SqliteStorage(path), kek, key_source="the test's key")


def call_record(**changes: Any) -> CallRecord:
    """A finished call, now, with a canary in its content."""
    fields: dict[str, Any] = {
        "started_at": time.time(),
        "input": {"messages": [{"role": "user", "content": f"question {CANARY}"}]},
        "output": [{"role": "assistant", "content": f"answer {CANARY}"}],
    }
    return audit_record(**{**fields, **changes})


def emit(*records: CallRecord) -> None:
    """The records through the pipeline a client with this configuration builds: the
    privacy step, the dispatcher and the store's lane, into the real file."""
    pipeline = build_pipeline(load_settings())
    assert pipeline is not None
    for record in records:
        pipeline.emit(record)
    report = pipeline.close()
    assert report is not None and report.complete, report


def exported(cli: RunCli, user_id: str) -> dict[str, Any]:
    result = cli("store", "export", "--user-id", user_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def file_bytes(db: Path) -> bytes:
    """Everything SQLite keeps on disk for the store: the database, its WAL and index."""
    found = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = Path(str(db) + suffix)
        if part.exists():
            found += part.read_bytes()
    return found


def mock_client(**options: Any) -> Client:
    return Client(backends=[MockBackend().backend()], **options)


# -- what a client keeps ----------------------------------------------------------------


def test_a_call_is_kept_sealed_and_exported_decrypted(key: str, cli: RunCli) -> None:
    db = configure()
    with mock_client() as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": CANARY}], request_id="req-a"
        )
    raw = file_bytes(db)
    assert CANARY.encode() not in raw  # sealed: never in clear on disk
    bundle = exported(cli, _only_user(db))
    assert bundle["damaged"] == []
    [entry] = bundle["records"]
    assert entry["request_id"] == "req-a" and entry["user_id"].startswith("sha256:")
    assert entry["content"]["input"]["messages"][0]["content"] == CANARY
    assert CANARY in entry["content"]["output"][0]["content"]
    assert entry["expires_at"] is None and entry["content"]["model"] == "m"


def _only_user(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        [(user,)] = connection.execute("SELECT DISTINCT user_id FROM records").fetchall()
    return str(user)


def test_clear_columns_are_only_what_finds_a_record(key: str) -> None:
    db = configure()
    emit(call_record(user_id="alice", request_id="req-clear"))
    with sqlite3.connect(db) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(records)")]
        [row] = connection.execute("SELECT * FROM records").fetchall()
    assert columns == ["request_id", "user_id", "created_at", "expires_at", "sealed"]
    assert row[:2] == ("req-clear", "alice") and b"gpt-4o-mini" not in row[4]


def test_each_record_has_its_own_nonce(key: str, tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db", key)
    same = NewRecord("alice", "req", 1.0, None, b"the same plaintext")
    store.put([same, same])
    with sqlite3.connect(tmp_path / "s.db") as connection:
        sealed = [row[0] for row in connection.execute("SELECT sealed FROM records")]
    assert len(sealed) == 2 and sealed[0] != sealed[1] and sealed[0][:12] != sealed[1][:12]
    assert [r.plaintext for r in store.records(user_id="alice")] == [same.plaintext] * 2


def test_the_store_gets_content_after_the_privacy_detectors(key: str, cli: RunCli) -> None:
    configure("", "[privacy]", 'pii = ["email"]')
    emit(
        call_record(
            user_id="bob",
            request_id="ticket jane@example.com",  # the caller's own id: its lookup key
            request_id_supplied=True,
            input={"messages": [{"role": "user", "content": "mail jane@example.com"}]},
        )
    )
    [entry] = exported(cli, "bob")["records"]
    assert entry["request_id"] == "ticket jane@example.com"
    text = json.dumps(entry["content"])
    assert "jane@example.com" not in text and "[REDACTED" in text.upper()
    shown = cli("store", "show", "--request-id", "ticket jane@example.com")
    assert shown.returncode == 0 and json.loads(shown.stdout)["user_id"] == "bob"


def test_no_log_calls_are_never_stored(key: str, cli: RunCli) -> None:
    db = configure()
    with mock_client() as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": CANARY}], no_log=True
        )
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "kept"}])
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM records").fetchone() == (1,)
    [entry] = exported(cli, _only_user(db))["records"]
    assert entry["content"]["input"]["messages"][0]["content"] == "kept"


def test_do_not_track_does_not_turn_the_local_store_off(
    key: str, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    db = configure()
    with mock_client() as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": CANARY}])
    [entry] = exported(cli, _only_user(db))["records"]
    assert entry["content"]["input"]["messages"][0]["content"] == CANARY


def test_writes_run_on_the_store_lane_not_the_callers_thread(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure()
    writers: list[str] = []
    put = ContentStore.put

    def spy(self: ContentStore, records: Any) -> None:
        writers.append(threading.current_thread().name)
        put(self, records)

    monkeypatch.setattr(ContentStore, "put", spy)
    with mock_client() as client:
        for _ in range(3):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert writers and set(writers) == {"pipeclient-store"}


def test_a_call_without_a_user_id_is_stored_under_its_keys_fingerprint(
    key: str, cli: RunCli
) -> None:
    from pipeclient._audit.secret import fingerprint, installation_secret

    db = configure()
    backend = MockBackend().backend()
    with Client(backends=[backend]) as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    secret = installation_secret(db.absolute().parent, create=False)
    assert _only_user(db) == fingerprint(backend.api_key.get_secret_value(), secret)


def test_trace_blocks_are_not_stored(key: str) -> None:
    db = configure()
    with mock_client() as client, client.trace(f"block {CANARY}"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM records").fetchone() == (1,)


# -- configuration and keys ------------------------------------------------------------


def test_a_missing_key_is_a_config_error_naming_the_variable() -> None:
    configure()
    with pytest.raises(ConfigError) as caught:
        mock_client()
    assert KEY_VARIABLE in str(caught.value) and "store.key" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [("not base64!", "not base64"), (base64.b64encode(b"short").decode(), "5 bytes")],
)
def test_a_malformed_key_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    configure()
    monkeypatch.setenv(KEY_VARIABLE, value)
    with pytest.raises(ConfigError) as caught:
        mock_client()
    message = str(caught.value)
    assert reason in message and f"environment variable {KEY_VARIABLE}" in message
    assert value not in message


def test_a_wrong_key_is_refused_naming_its_source(
    key: str, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure()
    emit(call_record(user_id="alice"))
    monkeypatch.setenv(KEY_VARIABLE, new_key())
    with pytest.raises(StoreKeyError) as caught:
        mock_client()
    assert f"environment variable {KEY_VARIABLE}" in str(caught.value)
    assert "is not the key" in str(caught.value)
    result = cli("store", "export", "--user-id", "alice")
    assert result.returncode == 2 and KEY_VARIABLE in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_store_commands_need_an_existing_store(key: str, cli: RunCli) -> None:
    configure()
    result = cli("store", "show", "--request-id", "x")
    assert result.returncode == 2 and "no content store at" in result.stderr
    assert not Path("store.db").exists()


def test_a_store_that_is_off_is_still_exported_and_deleted(
    key: str, cli: RunCli, tmp_path: Path
) -> None:
    configure()
    emit(call_record(user_id="carol"))
    Path(".pipelex/telemetry.toml").write_text('[store]\nenabled = false\npath = "store.db"\n')
    assert len(exported(cli, "carol")["records"]) == 1
    assert cli("store", "delete", "--user-id", "carol").returncode == 0
    assert exported(cli, "carol")["records"] == []


# -- damage ----------------------------------------------------------------------------


def test_tampered_ciphertext_is_reported_as_damaged(key: str, cli: RunCli) -> None:
    db = configure()
    emit(
        call_record(user_id="dave", request_id="good"),
        call_record(user_id="dave", request_id="bad"),
    )
    with sqlite3.connect(db) as connection:
        (sealed,) = connection.execute(
            "SELECT sealed FROM records WHERE request_id='bad'"
        ).fetchone()
        flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
        connection.execute("UPDATE records SET sealed = ? WHERE request_id = 'bad'", (flipped,))
    result = cli("store", "export", "--user-id", "dave")
    assert result.returncode == 1
    bundle = json.loads(result.stdout)
    assert [entry["request_id"] for entry in bundle["records"]] == ["good"]
    [damaged] = bundle["damaged"]
    assert damaged["request_id"] == "bad" and "does not authenticate" in damaged["damaged"]
    assert "damaged" in result.stderr and "'bad'" in result.stderr
    shown = cli("store", "show", "--request-id", "bad")
    assert shown.returncode == 1 and "damaged" in json.loads(shown.stdout)


def test_a_row_moved_to_another_user_does_not_open(key: str, cli: RunCli) -> None:
    db = configure()
    emit(call_record(user_id="erin", request_id="r-erin"), call_record(user_id="finn"))
    with sqlite3.connect(db) as connection:  # erin's ciphertext relabelled as finn's
        connection.execute("UPDATE records SET user_id = 'finn' WHERE user_id = 'erin'")
    result = cli("store", "export", "--user-id", "finn")
    assert result.returncode == 1
    bundle = json.loads(result.stdout)
    assert [entry["request_id"] for entry in bundle["damaged"]] == ["r-erin"]
    assert len(bundle["records"]) == 1


# -- deletion --------------------------------------------------------------------------


def test_delete_leaves_nothing_of_the_user_in_the_files(key: str, cli: RunCli) -> None:
    db = configure()
    victim, other = "user-canary-9d2f", "user-kept-41aa"
    emit(
        *[call_record(user_id=victim, request_id=f"req-canary-{i:03}") for i in range(40)],
        *[call_record(user_id=other, request_id=f"req-kept-{i:03}") for i in range(5)],
    )
    with sqlite3.connect(db) as connection:
        (wrapped,) = connection.execute(
            "SELECT wrapped FROM data_keys WHERE user_id = ?", (victim,)
        ).fetchone()
        sealed = [
            row[0]
            for row in connection.execute("SELECT sealed FROM records WHERE user_id = ?", (victim,))
        ]
    traces = [victim.encode(), b"req-canary-", bytes(wrapped)] + [bytes(s[12:40]) for s in sealed]
    before = file_bytes(db)
    assert all(trace in before for trace in traces)  # the search finds them while they exist
    assert CANARY.encode() not in before

    result = cli("store", "delete", "--user-id", victim)
    assert result.returncode == 0, result.stderr
    assert "deleted 40 record(s)" in result.stdout and "data key" in result.stdout

    after = file_bytes(db)
    found = [trace for trace in traces if trace in after]
    assert found == []
    assert exported(cli, victim)["records"] == []
    assert len(exported(cli, other)["records"]) == 5


def test_delete_waits_for_no_one_holding_the_store(key: str, cli: RunCli) -> None:
    """A client that keeps the store open does not stop the scrub (it holds no snapshot)."""
    db = configure()
    with mock_client() as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": CANARY}])
        client.flush()
        user = _only_user(db)
        (wrapped,) = sqlite3.connect(db).execute("SELECT wrapped FROM data_keys").fetchone()
        result = cli("store", "delete", "--user-id", user)
        assert result.returncode == 0, result.stderr
        assert bytes(wrapped) not in file_bytes(db)


def test_deleting_content_leaves_the_audit_log_verifiable(key: str, cli: RunCli) -> None:
    db = configure("", "[audit]", "enabled = true", 'path = "audit.jsonl"')
    with mock_client() as client:
        for _ in range(3):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    audit_before = Path("audit.jsonl").read_bytes()
    assert cli("store", "delete", "--user-id", _only_user(db)).returncode == 0
    assert Path("audit.jsonl").read_bytes() == audit_before
    verified = cli("audit", "verify", "audit.jsonl")
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_export_to_a_file_is_private_and_never_overwrites(key: str, cli: RunCli) -> None:
    configure()
    emit(call_record(user_id="gail"))
    result = cli("store", "export", "--user-id", "gail", "--out", "gail.json")
    assert result.returncode == 0 and "wrote 1 record(s)" in result.stdout
    assert json.loads(Path("gail.json").read_text())["records"][0]["user_id"] == "gail"
    assert Path("gail.json").stat().st_mode & 0o077 == 0
    again = cli("store", "export", "--user-id", "gail", "--out", "gail.json")
    assert again.returncode == 2 and "already exists" in again.stderr


# -- rotation --------------------------------------------------------------------------


def test_rotate_key_rewraps_data_keys_only(
    key: str, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = configure()
    emit(call_record(user_id="hana"), call_record(user_id="ivan"))

    def snapshot() -> tuple[list[Any], list[Any]]:
        with sqlite3.connect(db) as connection:
            keys = connection.execute("SELECT * FROM data_keys ORDER BY user_id").fetchall()
            rows = connection.execute("SELECT * FROM records ORDER BY rowid").fetchall()
        return keys, rows

    keys_before, rows_before = snapshot()
    fresh = new_key()
    result = cli(
        "store", "rotate-key", "--new-key-env", "NEW_STORE_KEY", env={"NEW_STORE_KEY": fresh}
    )
    assert result.returncode == 0, result.stderr
    assert "re-wrapped 2 data key(s)" in result.stdout
    keys_after, rows_after = snapshot()
    assert rows_after == rows_before  # no record re-encrypted
    assert [k[0] for k in keys_after] == ["hana", "ivan"]
    assert all(a[1] != b[1] for a, b in zip(keys_after, keys_before, strict=True))

    old = cli("store", "export", "--user-id", "hana")
    assert old.returncode == 2 and "is not the key" in old.stderr
    monkeypatch.setenv(KEY_VARIABLE, fresh)
    assert exported(cli, "hana")["records"][0]["content"]["output"][0]["content"].endswith(CANARY)


def test_a_process_holding_the_old_key_stops_writing_after_a_rotation(
    key: str, cli: RunCli, caplog: pytest.LogCaptureFixture
) -> None:
    configure()
    with mock_client() as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        client.flush()
        fresh = new_key()
        assert cli("store", "rotate-key", "--new-key-env", "K", env={"K": fresh}).returncode == 0
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "y"}])
        report = client.flush()
    assert report is not None and report.failed == {"store": 1}
    assert "rotate-key" in caplog.text and "refused a write" in caplog.text


def test_rotate_key_with_a_bad_new_key_changes_nothing(key: str, cli: RunCli) -> None:
    db = configure()
    emit(call_record(user_id="jo"))
    before = db.read_bytes()
    result = cli("store", "rotate-key", "--new-key-env", "UNSET_KEY_VARIABLE")
    assert result.returncode == 2 and "UNSET_KEY_VARIABLE" in result.stderr
    assert db.read_bytes() == before and len(exported(cli, "jo")["records"]) == 1


# -- expiry ----------------------------------------------------------------------------


def test_ephemeral_records_expire_after_ttl_and_are_pruned(key: str, cli: RunCli) -> None:
    db = configure("ttl_hours = 2")
    with mock_client() as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "keep"}])
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "brief"}], ephemeral=True
        )
    user = _only_user(db)
    entries = exported(cli, user)["records"]
    assert [e["content"]["ephemeral"] for e in entries] == [False, True]
    with sqlite3.connect(db) as connection:
        (created, expires) = connection.execute(
            "SELECT created_at, expires_at FROM records WHERE expires_at IS NOT NULL"
        ).fetchone()
    assert expires - created == 2 * 3600
    store = open_store(db, key)
    assert store.prune(now=expires - 1) == 0
    assert store.prune(now=expires + 1) == 1
    store.close()
    [left] = exported(cli, user)["records"]
    assert left["content"]["input"]["messages"][0]["content"] == "keep"


def test_an_ephemeral_client_makes_every_call_ephemeral(key: str) -> None:
    db = configure()
    with mock_client(ephemeral=True) as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "b"}], ephemeral=False
        )
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT expires_at IS NOT NULL FROM records ORDER BY rowid")
        assert [row[0] for row in rows] == [1, 0]


def test_expired_records_are_never_shown_and_pruned_in_the_background(
    key: str, cli: RunCli
) -> None:
    db = configure()
    store = open_store(db, key)
    past = time.time() - 10
    store.put([NewRecord("kim", "gone", past - 100, past, b"{}")])
    store.close()
    assert exported(cli, "kim")["records"] == []  # expired: hidden before any prune
    with mock_client() as client:  # the store's lane prunes as it starts
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with sqlite3.connect(db) as connection:
        assert connection.execute(
            "SELECT count(*) FROM records WHERE user_id='kim'"
        ).fetchone() == (0,)


def test_prune_applies_retention_days(key: str, cli: RunCli) -> None:
    db = configure("retention_days = 30")
    store = open_store(db, key)
    now = time.time()
    store.put(
        [
            NewRecord("lee", "old", now - 31 * 86400, None, b"{}"),
            NewRecord("lee", "recent", now - 29 * 86400, None, b"{}"),
        ]
    )
    store.close()
    result = cli("store", "prune")
    assert result.returncode == 0 and "deleted 1 record(s)" in result.stdout
    assert "older than 30 days" in result.stdout
    assert [e["request_id"] for e in exported(cli, "lee")["records"]] == ["recent"]


# -- crashes and concurrency -----------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import base64, sys
    from pipeclient._store.crypto import KeyEncryptionKey
    from pipeclient._store.sqlite import SqliteStorage
    from pipeclient._store.store import ContentStore, NewRecord

    path, key, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = ContentStore(
        SqliteStorage(path), KeyEncryptionKey(base64.b64decode(key)), key_source="argv"
    )
    body = (b'{"blob": "' + b"x" * 3000 + b'"}')
    for i in range(count):
        users = (f"{name}-{i % 3}", "shared")
        store.put([NewRecord(users[j], f"{name}-{i}-{j}", float(i), None, body) for j in (0, 1)])
    print("done", flush=True)
    """
)


def _writer(db: Path, key: str, name: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db), key, name, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_intact(db: Path, key: str) -> list[Any]:
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        users = [row[0] for row in connection.execute("SELECT DISTINCT user_id FROM records")]
    store = open_store(db, key)
    opened = [record for user in users for record in store.records(user_id=user)]
    store.close()
    assert all(record.damage is None for record in opened)
    return opened


def test_several_processes_write_at_once(key: str, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    open_store(db, key).close()
    writers = [_writer(db, key, f"p{n}", 60) for n in range(3)]
    for process in writers:
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0 and out.strip() == "done", err
    opened = _check_intact(db, key)
    assert len(opened) == 3 * 60 * 2
    assert len({record.request_id for record in opened}) == len(opened)
    with sqlite3.connect(db) as connection:  # one data key per user, the shared one too
        keys = connection.execute("SELECT user_id FROM data_keys").fetchall()
    assert sorted(k[0] for k in keys) == sorted(
        ["shared"] + [f"p{n}-{i}" for n in range(3) for i in range(3)]
    )


def test_the_store_survives_kill_9_mid_write(key: str, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    open_store(db, key).close()
    process = _writer(db, key, "victim", 100_000)

    def written() -> int:
        with sqlite3.connect(db, timeout=30) as connection:
            return int(connection.execute("SELECT count(*) FROM records").fetchone()[0])

    wait_until(lambda: written() >= 200, 60, "the writer to commit 200 records")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    opened = _check_intact(db, key)
    assert len(opened) >= 200 and len(opened) % 2 == 0  # whole transactions only
    after = _writer(db, key, "next", 5)  # the store is writable again at once
    assert after.communicate(timeout=60)[0].strip() == "done"
    assert len(_check_intact(db, key)) == len(opened) + 10


def test_a_forked_child_writes_on_its_own_connection(key: str, tmp_path: Path) -> None:
    from .conftest import wait_child

    db = configure()
    with mock_client() as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "parent"}])
        client.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "child"}]
                )
                report = client.flush()
                code = 0 if report is not None and report.complete else 3
            finally:
                os._exit(code)
        assert wait_child(pid, 60) == 0
    texts = sorted(
        json.loads(r.plaintext or b"{}")["input"]["messages"][0]["content"]
        for r in _check_intact(db, key)
    )
    assert texts == ["child", "parent"]


def test_the_files_are_readable_by_their_owner_only(key: str) -> None:
    db = configure()
    with mock_client() as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        client.flush()
        parts = [Path(str(db) + suffix) for suffix in ("", "-wal", "-shm")]
        assert all(part.exists() and part.stat().st_mode & 0o077 == 0 for part in parts)


def test_status_shows_the_store_on_under_do_not_track_and_hides_its_key(
    key: str, cli: RunCli
) -> None:
    configure()
    result = cli("telemetry", "status", "--json", env={"DO_NOT_TRACK": "1"})
    assert result.returncode == 0, result.stderr
    [store] = [s for s in json.loads(result.stdout)["streams"] if s["stream"] == "store"]
    assert store["on"] and "DO_NOT_TRACK does not apply" in store["why"]
    assert key not in result.stdout and "<set, 44 characters>" in result.stdout


def test_calls_are_kept_under_their_user_id_as_given(key: str, cli: RunCli) -> None:
    configure("", "[privacy]", 'pii = ["email"]')
    with mock_client(user_id="ann@example.com") as client:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "b"}],
            user_id="ben@example.com",
            session_id="s-1",
            properties={"note": "call cy@example.com", "tier": 2},
        )
        with client.trace("block", user_id="dee@example.com"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "c"}])
    [ann] = exported(cli, "ann@example.com")["records"]
    assert ann["content"]["input"]["messages"][0]["content"] == "a"
    [ben] = exported(cli, "ben@example.com")["records"]
    assert ben["content"]["session_id"] == "s-1" and ben["content"]["properties"]["tier"] == 2
    assert "cy@example.com" not in ben["content"]["properties"]["note"]  # after the detectors
    [dee] = exported(cli, "dee@example.com")["records"]
    assert dee["content"]["trace_name"] == "block"


def test_a_users_calls_are_deleted_with_their_user_id(key: str, cli: RunCli) -> None:
    db = configure()
    with mock_client() as client:
        for user in ("keep-me", "erase-me", "erase-me"):
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": CANARY}], user_id=user
            )
    result = cli("store", "delete", "--user-id", "erase-me")
    assert result.returncode == 0 and "deleted 2 record(s)" in result.stdout
    assert b"erase-me" not in file_bytes(db)
    assert len(exported(cli, "keep-me")["records"]) == 1


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a database at all, just text" * 40, "not a usable store database"),
        (None, "something else"),
    ],
)
def test_a_path_that_is_not_a_store_is_refused(
    key: str, content: bytes | None, reason: str
) -> None:
    db = configure()
    if content is None:
        with sqlite3.connect(db) as connection:
            connection.execute("CREATE TABLE invoices (id INTEGER)")
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    with pytest.raises(ConfigError) as caught:
        mock_client()
    assert reason in str(caught.value) and "store.path" in str(caught.value)
    assert db.read_bytes() == before


def test_the_async_client_stores_its_calls_off_the_event_loop(key: str, cli: RunCli) -> None:
    import asyncio

    from pipeclient import AsyncClient

    db = configure()

    async def run() -> None:
        async with AsyncClient(backends=[MockBackend().backend()], ephemeral=True) as client:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": CANARY}], user_id="async-user"
            )

    asyncio.run(run())
    [entry] = exported(cli, "async-user")["records"]
    assert entry["content"]["input"]["messages"][0]["content"] == CANARY
    assert entry["expires_at"] is not None
    assert CANARY.encode() not in file_bytes(db)
