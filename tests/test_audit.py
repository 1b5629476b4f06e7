"""The audit log: its line, its chain, its writers under concurrency and crashes, verify,
show, and the `pipeclient audit` commands."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeclient import ConfigError
from pipeclient._audit.log import (
    FIELD_KEYS,
    GENESIS,
    LINE_KEYS,
    AuditLog,
    _check_slowly,
    check_line,
    format_line,
)
from pipeclient._audit.secret import SECRET_NAME, fingerprint, installation_secret
from pipeclient._audit.verify import find_lines, parse_anchor, verify
from pipeclient._sinks.audit import AuditSink, audit_fields, build_audit_sink
from pipeclient._telemetry.dispatch import Dispatcher
from pipeclient._telemetry.fanout import Fanout, Route
from pipeclient._telemetry.pipeline import Pipeline
from pipeclient._telemetry.privacy import AUDIT, PrivacyStep
from pipeclient._telemetry.record import CallRecord, ErrorInfo, TraceRecord
from pipeclient.config import PrivacyConfig

from .conftest import RunCli, wait_until

PINNED = {
    "user_id",
    "timestamp",
    "endpoint",
    "method",
    "model",
    "http_status",
    "x_request_id",
    "error",
    "timings",
    "token_counts",
    "seq",
    "prev_hash",
    "hash",
}
CANARY = "CANARY-7f3a-do-not-log"


def call_record(**changes: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "operation": "chat",
        "model": "gpt-4o-mini",
        "stream": False,
        "backend": "main",
        "base_url": "https://llm.example/v1",
        "gateway": False,
        "no_log": False,
        "started_at": 1_750_000_000.25,
        "total_ms": 812.3456,
        "ttft_ms": None,
        "attempts": 1,
        "http_status": 200,
        "outcome": "ok",
        "error": None,
        "parameters": {"temperature": 0.2},
        "input_tokens": 12,
        "output_tokens": 57,
    }
    fields.update(changes)
    return CallRecord(**fields)


def fields(index: int = 0, **changes: Any) -> dict[str, Any]:
    return dict(audit_fields(call_record(request_id=f"req-{index}"), "user-1"), **changes)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_log(path: Path, count: int) -> list[bytes]:
    with AuditLog(path, user_id="user-1") as log:
        for index in range(count):
            log.append(fields(index))
    return path.read_bytes().splitlines(keepends=True)


def rehash(line: dict[str, Any]) -> bytes:
    """A line that is self-consistent again after an edit: what a careful forger writes."""
    body = {key: value for key, value in line.items() if key != "hash"}
    line = dict(body, hash=hashlib.sha256(rfc8785.dumps(body)).hexdigest())
    return rfc8785.dumps(line) + b"\n"


# -- the line --------------------------------------------------------------------------


def test_every_line_has_exactly_the_pinned_keys_and_a_canonical_hash(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    lines = lines_of(path)
    assert LINE_KEYS == PINNED
    assert FIELD_KEYS | {"seq", "prev_hash", "hash"} == PINNED
    assert [line["seq"] for line in lines] == [1, 2, 3]
    assert lines[0]["prev_hash"] == GENESIS == "0" * 64
    for raw, line in zip(path.read_bytes().splitlines(), lines, strict=True):
        assert set(line) == PINNED
        assert raw == rfc8785.dumps(line)  # each line is its own RFC 8785 form
        body = {key: value for key, value in line.items() if key != "hash"}
        assert line["hash"] == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert [b["prev_hash"] for b in lines[1:]] == [a["hash"] for a in lines[:-1]]


def test_line_fields_from_a_record() -> None:
    line = audit_fields(call_record(ttft_ms=120.5, stream=True), "user-1")
    assert line == {
        "user_id": "user-1",
        "timestamp": "2025-06-15T15:06:40.250Z",
        "endpoint": "/v1/chat/completions",
        "method": "POST",
        "model": "gpt-4o-mini",
        "http_status": 200,
        "x_request_id": "req-1",
        "error": None,
        "timings": {"ttft_ms": 120.5, "total_ms": 812.346},
        "token_counts": {"prompt": 12, "output": 57},
    }


@pytest.mark.parametrize(
    ("base_url", "operation", "endpoint"),
    [
        ("https://h/v1", "chat", "/v1/chat/completions"),
        ("https://h/v1/", "embeddings", "/v1/embeddings"),
        ("https://h/openai/v1", "images", "/openai/v1/images/generations"),
        ("https://h", "chat", "/chat/completions"),
        ("", "chat", "/chat/completions"),  # failed before any backend was tried
    ],
)
def test_endpoint_is_the_path_of_the_call(base_url: str, operation: str, endpoint: str) -> None:
    line = audit_fields(call_record(base_url=base_url, operation=operation), "u")
    assert line["endpoint"] == endpoint


def test_an_error_is_its_type_and_code_never_its_text() -> None:
    failed = call_record(
        outcome="error",
        http_status=429,
        error=ErrorInfo("RateLimitError", 429, f"quota exceeded for prompt {CANARY}"),
    )
    assert audit_fields(failed, "u")["error"] == {"type": "RateLimitError", "code": 429}
    coded = call_record(outcome="error", error=ErrorInfo("BadRequestError", "context_length"))
    assert audit_fields(coded, "u")["error"] == {
        "type": "BadRequestError",
        "code": "context_length",
    }
    # A provider "code" that is a sentence is text: dropped.
    chatty = call_record(outcome="error", error=ErrorInfo("APIStatusError", f"echo: {CANARY}"))
    assert audit_fields(chatty, "u")["error"] == {"type": "APIStatusError", "code": None}


def test_no_content_ever_reaches_the_file(tmp_path: Path) -> None:
    """Handed records that carry content, the sink still writes metadata only."""
    path = tmp_path / "audit.jsonl"
    sink = AuditSink(AuditLog(path, user_id="u"), user_id="u")
    body = {"model": "m", "messages": [{"role": "user", "content": CANARY}]}
    has_body = "request_body" in CallRecord.__dataclass_fields__  # the request bytes, if kept
    raw_request = {"request_body": json.dumps(body).encode()} if has_body else {}
    records = [
        call_record(
            request_id="ok",
            input={"messages": [{"role": "user", "content": CANARY}]},
            output={"choices": [{"message": {"content": CANARY}}]},
            **raw_request,
        ),
        call_record(
            request_id="failed",
            outcome="error",
            http_status=400,
            input=[CANARY],
            error=ErrorInfo("BadRequestError", f"{CANARY} is not allowed", CANARY),
        ),
        call_record(request_id="stream", stream=True, output=CANARY, closed_early=True),
    ]
    for record in records:
        sink.send(sink.encode(record), 1.0)
    sink.shutdown(1.0)
    text = path.read_text()
    assert CANARY not in text and "CANARY" not in text
    assert [line["x_request_id"] for line in lines_of(path)] == ["ok", "failed", "stream"]


def test_sink_contract_and_traces(tmp_path: Path) -> None:
    sink = AuditSink(AuditLog(tmp_path / "a.jsonl", user_id="u"), user_id="u")
    assert sink.name == "audit"
    trace = TraceRecord("t" * 32, "s" * 16, None, "block", 1.0, 2.0, "ok")
    assert sink.encode(trace) == []
    # The privacy step never hands it a trace block, nor content.
    step = PrivacyStep(PrivacyConfig())
    assert step.view(trace, AUDIT) is None
    view = step.view(call_record(output=[{"content": CANARY}]), AUDIT)
    assert view is not None and CANARY not in repr(view)
    sink.shutdown(1.0)


def test_no_log_calls_write_no_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = AuditSink(AuditLog(path, user_id="u"), user_id="u")
    privacy = PrivacyStep(PrivacyConfig())
    dispatcher = Dispatcher(Fanout([Route(sink, AUDIT)], privacy), max_queue=10, flush_timeout=5)
    dispatcher.submit(call_record(request_id="logged"))
    dispatcher.submit(call_record(request_id="secret", no_log=True))
    dispatcher.close()
    assert [line["x_request_id"] for line in lines_of(path)] == ["logged"]
    # The durable path (written at once, on the caller's thread) too.
    durable = AuditSink(AuditLog(path, user_id="u"), user_id="u")
    Pipeline(privacy, None, audit_now=durable).emit(
        call_record(request_id="durable-path", no_log=True)
    )
    Pipeline(privacy, None, audit_now=durable).emit(call_record(request_id="durable-logged"))
    assert [line["x_request_id"] for line in lines_of(path)] == ["logged", "durable-logged"]


def secret_of(directory: Path) -> bytes:
    return installation_secret(directory, create=False)


def test_user_id_is_configured_or_the_key_fingerprint_never_the_key(tmp_path: Path) -> None:
    keys = {"main": "sk-main-secret-key", "backup": "sk-backup-secret-key"}
    by_key = build_audit_sink(
        path=str(tmp_path / "a.jsonl"), user_id="", durable=False, api_keys=keys
    )
    configured = build_audit_sink(
        path=str(tmp_path / "b.jsonl"), user_id="employee-42", durable=False, api_keys=keys
    )
    for record in (call_record(backend="main"), call_record(backend="backup")):
        by_key.send(by_key.encode(record), 1.0)
        configured.send(configured.encode(record), 1.0)
    secret = secret_of(tmp_path)
    assert fingerprint("sk-main-secret-key", secret) == (
        "sha256:" + hmac.new(secret, b"sk-main-secret-key", hashlib.sha256).hexdigest()[:12]
    )
    users = [line["user_id"] for line in lines_of(tmp_path / "a.jsonl")]
    assert users == [fingerprint(keys["main"], secret), fingerprint(keys["backup"], secret)]
    assert {line["user_id"] for line in lines_of(tmp_path / "b.jsonl")} == {"employee-42"}
    assert "secret-key" not in (tmp_path / "a.jsonl").read_text()


def test_fingerprints_are_keyed_per_installation_and_stable_on_one(tmp_path: Path) -> None:
    key = {"main": "sk-same-key-everywhere"}
    users = {}
    for place in ("one", "two", "one"):
        path = tmp_path / place / "audit.jsonl"
        sink = build_audit_sink(path=str(path), user_id="", durable=False, api_keys=key)
        sink.send(sink.encode(call_record(backend="main")), 1.0)
        sink.shutdown(1.0)
        users.setdefault(place, set()).update(line["user_id"] for line in lines_of(path))
    assert len(users["one"]) == 1 and users["one"] != users["two"]  # unlinkable, yet stable
    unkeyed = "sha256:" + hashlib.sha256(b"sk-same-key-everywhere").hexdigest()[:12]
    assert unkeyed not in users["one"] | users["two"]
    secret_file = tmp_path / "one" / SECRET_NAME
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "one" / "audit.jsonl").stat().st_mode & 0o777 == 0o600


def test_lines_with_the_old_unkeyed_fingerprint_keep_verifying(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    unkeyed = "sha256:" + hashlib.sha256(b"sk-old").hexdigest()[:12]
    with AuditLog(path, user_id=unkeyed) as log:
        log.append(fields(0, user_id=unkeyed))
    sink = build_audit_sink(path=str(path), user_id="", durable=False, api_keys={"main": "sk-old"})
    sink.send(sink.encode(call_record(backend="main")), 1.0)
    sink.shutdown(1.0)
    old, new = (line["user_id"] for line in lines_of(path))
    assert old == unkeyed and new == fingerprint("sk-old", secret_of(tmp_path)) != unkeyed
    assert verify(path).ok and [n for n, _ in find_lines(path, user_id=unkeyed)] == [1]


def test_first_writers_racing_agree_on_one_secret(tmp_path: Path) -> None:
    found: list[bytes] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        found.append(installation_secret(tmp_path, create=True))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found[0]) == 32
    assert [path.name for path in tmp_path.iterdir()] == [SECRET_NAME]


def test_a_damaged_secret_or_a_preview_never_makes_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    encode_only = build_audit_sink(
        path=str(path), user_id="", durable=False, api_keys={"main": "k"}, open_log=False
    )
    assert encode_only.encode(call_record())[0]["user_id"].startswith("sha256:")
    assert not (tmp_path / "logs").exists()  # a preview creates nothing
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / SECRET_NAME).write_text("damaged\n")
    with pytest.raises(ConfigError, match=r"audit\.secret.*not a pipeclient audit secret") as err:
        build_audit_sink(path=str(path), user_id="", durable=False, api_keys={"main": "k"})
    assert err.value.key == "audit.path"


def test_append_refuses_other_keys(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl", user_id="u") as log:
        with pytest.raises(ValueError, match="prompt"):
            log.append(dict(fields(), prompt=CANARY))
        with pytest.raises(ValueError, match="timings"):
            log.append(fields(timings={"ttft_ms": "fast", "total_ms": 1}))
    assert (tmp_path / "a.jsonl").read_bytes() == b""


# -- durability and opening -------------------------------------------------------------


@pytest.mark.parametrize("durable", [True, False])
def test_durable_mode_fsyncs_every_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    with AuditLog(tmp_path / "new" / "a.jsonl", user_id="u", durable=durable) as log:
        synced.clear()  # opening a new file also syncs its directory in durable mode
        for index in range(5):
            log.append(fields(index))
    assert len(synced) == (5 if durable else 0)


def test_parent_directories_are_created(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a" / "b" / "audit.jsonl", user_id="u") as log:
        log.append(fields())
    assert verify(tmp_path / "a" / "b" / "audit.jsonl").head_seq == 1


def test_unwritable_paths_are_config_errors_naming_path_key_and_reason(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = {
        tmp_path / "a-directory": "directory",
        tmp_path / "a-file" / "audit.jsonl": "Not a directory",
        Path("/proc/pipeclient-audit.jsonl"): "",
    }
    for path, reason in cases.items():
        with pytest.raises(ConfigError) as caught:
            AuditLog(path, user_id="u", source="file .pipelex/telemetry.toml")
        message = str(caught.value)
        assert str(path) in message and "[audit] path" in message and "audit.path" in message
        assert reason in message and ".pipelex/telemetry.toml" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_a_config_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="Permission denied"):
            AuditLog(locked / "audit.jsonl", user_id="u")
    finally:
        locked.chmod(0o700)


def test_a_file_that_is_not_an_audit_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\neggs\n")
    with pytest.raises(ConfigError, match="not a pipeclient audit log"):
        AuditLog(path, user_id="u")
    assert path.read_text() == "shopping list\neggs\n"


# -- verify: every fault at its line -----------------------------------------------------


def mutate(lines: list[bytes], change: str) -> list[bytes]:
    parsed = [json.loads(line) for line in lines]
    if change == "edited":
        return [*lines[:3], lines[3].replace(b'"gpt-4o-mini"', b'"gpt-4o"'), *lines[4:]]
    if change == "edited and re-hashed":
        return [*lines[:3], rehash(dict(parsed[3], model="gpt-4o")), *lines[4:]]
    if change == "first line re-hashed":
        return [rehash(dict(parsed[0], prev_hash="1" * 64)), *lines[1:]]
    if change == "deleted":
        return lines[:3] + lines[4:]
    if change == "deleted at the start":
        return lines[2:]
    if change == "inserted":
        forged = rehash(dict(parsed[3], x_request_id="forged"))  # seq 4, after seq 3
        return [*lines[:3], forged, *lines[3:]]
    if change == "inserted with a new seq":
        return [*lines[:3], rehash(dict(parsed[3], seq=77, prev_hash="a" * 64)), *lines[3:]]
    if change == "inserted going back":
        return [*lines[:6], rehash(dict(parsed[1], x_request_id="forged")), *lines[6:]]
    if change == "reordered":
        return [*lines[:3], lines[4], lines[3], *lines[5:]]
    if change == "moved later":
        return [*lines[:3], *lines[4:8], lines[3], *lines[8:]]
    if change == "duplicate":
        return [*lines[:4], lines[3], *lines[4:]]
    if change == "duplicate of an earlier line":
        return [*lines[:6], lines[1], *lines[6:]]
    if change == "malformed":
        return [*lines[:3], b"hello\n", *lines[3:]]
    if change == "extra key":
        line = rehash(dict(parsed[3], prompt="x"))
        return [*lines[:3], line, *lines[4:]]
    if change == "cut in the middle":
        return [*lines[:3], lines[3][:100] + b"\n", *lines[4:]]
    raise AssertionError(change)


@pytest.mark.parametrize(
    ("change", "fault", "bad_line"),
    [
        ("edited", "edited", 4),
        ("edited and re-hashed", "edited", 4),
        ("first line re-hashed", "edited", 1),
        ("deleted", "deleted", 4),
        ("deleted at the start", "deleted", 1),
        ("inserted", "inserted", 4),
        ("inserted with a new seq", "inserted", 4),
        ("inserted going back", "inserted", 7),
        ("reordered", "reordered", 4),
        ("moved later", "reordered", 4),
        ("duplicate", "duplicate", 5),
        ("duplicate of an earlier line", "duplicate", 7),
        ("malformed", "malformed", 4),
        ("extra key", "malformed", 4),
        ("cut in the middle", "malformed", 4),
    ],
)
def test_verify_names_the_first_bad_line(
    tmp_path: Path, change: str, fault: str, bad_line: int
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 10)
    assert verify(path).ok
    path.write_bytes(b"".join(mutate(lines, change)))
    result = verify(path)
    assert (result.ok, result.fault, result.bad_line) == (False, fault, bad_line), result.message
    assert result.message


def test_anchor_detects_truncation_and_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 10)
    anchor = parse_anchor(verify(path).anchor)
    assert anchor[0] == 10 and verify(path, anchor).ok
    path.write_bytes(b"".join(lines[:8]))  # the last two lines cut away: the chain is intact
    assert verify(path).ok
    cut = verify(path, anchor)
    assert (cut.ok, cut.fault, cut.bad_line) == (False, "truncated", 9)
    assert verify(path, (0, GENESIS)).ok and verify(path, (8, verify(path).head_hash)).ok
    rewritten = verify(path, (5, "b" * 64))
    assert (rewritten.fault, rewritten.bad_line) == ("rewritten", 5)
    assert verify(path, (0, "c" * 64)).fault == "rewritten"


def test_parse_anchor() -> None:
    assert parse_anchor(f"12:{'AB' * 32}") == (12, "ab" * 32)
    for bad in ("12", "x:" + "a" * 64, "12:abc", "-1:" + "a" * 64):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            parse_anchor(bad)


def test_a_torn_last_line_is_explained_and_the_next_writer_continues(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 5)
    path.write_bytes(b"".join(lines[:4]) + lines[4][:57])  # a crash in the middle of line 5
    torn = verify(path)
    assert (torn.ok, torn.torn, torn.head_seq, torn.lines) == (True, (5,), 4, 5)
    with AuditLog(path, user_id="u") as log:
        assert log.head == (4, json.loads(lines[3])["hash"])
        log.append(fields(99))
    after = verify(path)
    assert (after.ok, after.torn, after.head_seq, after.lines) == (True, (5,), 5, 6)
    assert path.read_bytes().startswith(b"".join(lines[:4]) + lines[4][:57] + b"\n{")
    assert lines_of_valid(path)[-1]["x_request_id"] == "req-99"


def lines_of_valid(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(raw) for raw in path.read_bytes().splitlines() if check_line(raw).status == "ok"
    ]


def test_crash_debris_padded_with_nul_bytes_and_a_cut_first_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"endpoint":"/v1/chat/compl')  # the very first write was cut
    with AuditLog(path, user_id="u") as log:
        assert log.head == (0, GENESIS)
        log.append(fields())
    with path.open("ab") as file:
        file.write(b"\x00" * 300)  # a power loss can leave zeroes after the last write
    result = verify(path)
    assert (result.ok, result.torn, result.head_seq) == (True, (1, 3), 1)
    with AuditLog(path, user_id="u") as log:
        log.append(fields())
    assert verify(path).head_seq == 2


def test_a_line_written_by_hand_in_canonical_form_but_not_ours_still_verifies(
    tmp_path: Path,
) -> None:
    """The hash is over RFC 8785 JSON, whatever the bytes on disk look like."""
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 3)
    third = json.loads(lines[2])
    pretty = json.dumps(third, indent=None, separators=(", ", ": ")).encode() + b"\n"
    path.write_bytes(lines[0] + lines[1] + pretty)
    assert verify(path).ok and check_line(pretty.strip()).status == "ok"


def test_floats_outside_the_fast_format_are_canonicalised_by_rfc8785(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, user_id="u") as log:
        log.append(fields(timings={"ttft_ms": 1e-7, "total_ms": 3.0}))
        log.append(fields(timings={"ttft_ms": 1.5e22, "total_ms": 0.1 + 0.2}))
    raw = path.read_bytes().splitlines()
    assert b'"ttft_ms":1e-7' in raw[0] and b'"total_ms":3,' in raw[0]
    assert verify(path).ok


# -- fast path and reference implementation agree -----------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=12)
_int = st.none() | st.integers(0, 10**6)
_ms = st.none() | st.floats(0, 1e6, allow_nan=False) | st.integers(0, 10**6)


@st.composite
def any_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "user_id": draw(_text),
        "timestamp": draw(_text),
        "endpoint": draw(_text),
        "method": draw(st.sampled_from(["POST", "GET"])),
        "model": draw(_text),
        "http_status": draw(st.none() | st.integers(100, 599)),
        "x_request_id": draw(_text),
        "error": draw(
            st.none()
            | st.fixed_dictionaries(
                {"type": _text, "code": st.none() | st.integers(-5, 600) | _text}
            )
        ),
        "timings": {"ttft_ms": draw(_ms), "total_ms": draw(_ms)},
        "token_counts": {"prompt": draw(_int), "output": draw(_int)},
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_fields(), st.integers(1, 10**9), st.data())
def test_written_lines_are_rfc8785_and_fast_checks_agree_with_slow_ones(
    line_fields: dict[str, Any], seq: int, data: st.DataObject
) -> None:
    raw, digest = format_line(line_fields, seq, GENESIS)
    body = dict(line_fields, seq=seq, prev_hash=GENESIS)
    assert digest == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert raw == rfc8785.dumps(dict(body, hash=digest)) + b"\n"
    assert check_line(raw[:-1]) == _check_slowly(raw[:-1])
    # Any one-byte change is caught, and the fast path and the reference agree on it.
    at = data.draw(st.integers(0, len(raw) - 2))
    changed = raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1 : -1]
    fast, slow = check_line(changed), _check_slowly(changed)
    assert fast.status == slow.status and (fast.status != "ok" or changed == raw[:-1])


# -- concurrency and crashes -------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, threading
    from pipeclient._audit.log import AuditLog
    from pipeclient._sinks.audit import audit_fields
    from tests.test_audit import call_record

    path, name, threads, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    log = AuditLog(path, user_id=name)
    def work(thread):
        for i in range(count):
            log.append(audit_fields(call_record(request_id=f"{name}-{thread}-{i}"), name))
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    print("ready", flush=True)
    sys.stdin.read()  # the parent closes stdin when every writer is ready
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    """
)


def spawn_writer(path: Path, name: str, threads: int, count: int) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    command = [sys.executable, "-c", WRITER, str(path), name, str(threads), str(count)]
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def start_together(writers: list[subprocess.Popen[bytes]]) -> None:
    """Once every writer has imported and opened the log, let them all go at once."""
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n", "a writer exited before it was ready"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.close()


def reap(writer: subprocess.Popen[bytes], timeout: float) -> int:
    code = writer.wait(timeout=timeout)
    assert writer.stdout is not None
    writer.stdout.close()
    return code


def test_threads_in_several_processes_make_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    processes, threads, count = 4, 8, 500
    writers = [spawn_writer(path, f"p{n}", threads, count) for n in range(processes)]
    start_together(writers)
    assert [reap(writer, timeout=60) for writer in writers] == [0] * processes
    result = verify(path)
    total = processes * threads * count
    assert (result.ok, result.lines, result.head_seq, result.torn) == (True, total, total, ())
    ids = [line["x_request_id"] for line in lines_of(path)]
    expected = {
        f"p{p}-{t}-{i}" for p in range(processes) for t in range(threads) for i in range(count)
    }
    assert len(ids) == total and set(ids) == expected


def test_a_killed_writer_leaves_a_log_the_next_writer_continues(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = spawn_writer(path, "doomed", 4, 1_000_000)
    start_together([writer])
    wait_until(
        lambda: path.exists() and path.stat().st_size >= 200_000, 30, "200 kB of audit lines"
    )
    writer.send_signal(signal.SIGKILL)
    reap(writer, timeout=10)
    before = verify(path)
    assert before.ok and before.head_seq > 100, before.message
    with AuditLog(path, user_id="next") as log:
        log.append(fields())
    after = verify(path)
    assert after.ok and after.head_seq == before.head_seq + 1


def test_threads_sharing_one_log_and_a_forked_child(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, user_id="u")

    def work(thread: int) -> None:
        for index in range(200):
            log.append(fields(thread * 1000 + index))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    pid = os.fork()
    if pid == 0:  # the child inherits the log: it must not share the parent's lock
        try:
            for index in range(200):
                log.append(fields(9000 + index))
        finally:
            os._exit(0)
    for worker in workers:
        worker.join()
    os.waitpid(pid, 0)
    log.close()
    result = verify(path)
    assert (result.ok, result.head_seq) == (True, 1800)


def test_a_log_deleted_under_the_writer_is_created_again(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, user_id="u") as log:
        log.append(fields())
        path.unlink()
        log.append(fields())
    assert verify(path).head_seq == 1 and len(lines_of(path)) == 1


def test_lines_appended_by_another_writer_are_chained_after(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first, second = AuditLog(path, user_id="a"), AuditLog(path, user_id="b")
    for index in range(10):
        (first if index % 3 else second).append(fields(index))
    first.close()
    second.close()
    assert verify(path).head_seq == 10


# -- show ----------------------------------------------------------------------------------


def test_find_lines_by_request_and_by_user(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, user_id="u") as log:
        for index in range(6):
            log.append(dict(fields(index), user_id=f"user-{index % 2}"))
        log.append(dict(fields(0), x_request_id='quote"and\\slash', user_id="user-é"))
    found = [n for n, _ in find_lines(path, request_id="req-3")]
    assert found == [4]
    assert [n for n, _ in find_lines(path, user_id="user-1")] == [2, 4, 6]
    assert [n for n, _ in find_lines(path, user_id="user-1", request_id="req-2")] == []
    assert [n for n, _ in find_lines(path, request_id='quote"and\\slash')] == [7]
    assert [n for n, _ in find_lines(path, user_id="user-é")] == [7]


# -- the commands ---------------------------------------------------------------------------


def test_cli_verify(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = write_log(path, 5)
    ok = cli("audit", "verify", str(path))
    head = verify(path).anchor
    assert ok.returncode == 0, ok.stderr
    assert f"head {head}" in ok.stdout and "5 lines" in ok.stdout
    assert cli("audit", "verify", str(path), "--expect-head", head).returncode == 0

    path.write_bytes(lines[0] + lines[2] + lines[3] + lines[4])
    broken = cli("audit", "verify", str(path))
    assert broken.returncode == 1
    assert "line 2: deleted" in broken.stdout and "Traceback" not in broken.stderr

    path.write_bytes(b"".join(lines[:3]))
    assert cli("audit", "verify", str(path)).returncode == 0
    truncated = cli("audit", "verify", str(path), "--expect-head", head)
    assert truncated.returncode == 1 and "truncated" in truncated.stdout

    path.write_bytes(b"".join(lines[:3]) + lines[3][:40])
    torn = cli("audit", "verify", str(path))
    assert torn.returncode == 0 and "line 4" in torn.stdout and "crash" in torn.stdout


def test_cli_verify_usage_errors(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    missing = cli("audit", "verify", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "nope.jsonl" in missing.stderr
    bad_anchor = cli("audit", "verify", str(path), "--expect-head", "banana")
    assert bad_anchor.returncode == 2 and "SEQ:HASH" in bad_anchor.stderr
    assert cli("audit", "verify", str(tmp_path)).returncode == 2
    assert cli("audit", "verify", "--bogus").returncode == 2


def test_cli_verify_defaults_to_the_configured_path(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "configured.jsonl"
    write_log(path, 3)
    result = cli("audit", "verify", env={"PIPECLIENT_AUDIT__PATH": str(path)})
    assert result.returncode == 0 and "3 lines" in result.stdout
    unset = cli("audit", "verify", cwd=tmp_path)
    assert unset.returncode == 2 and ".pipelex/audit.jsonl" in unset.stderr


def test_cli_show(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    shown = cli("audit", "show", str(path), "--request-id", "req-2")
    assert shown.returncode == 0
    assert [json.loads(line)["x_request_id"] for line in shown.stdout.splitlines()] == ["req-2"]
    by_user = cli("audit", "show", str(path), "--user-id", "user-1")
    assert by_user.returncode == 0 and len(by_user.stdout.splitlines()) == 4
    nothing = cli("audit", "show", str(path), "--request-id", "absent")
    assert (nothing.returncode, nothing.stdout) == (0, "") and "no line" in nothing.stderr
    assert cli("audit", "show", str(path)).returncode == 2
    assert cli("audit", "show", str(tmp_path / "nope"), "--request-id", "x").returncode == 2


# -- through the client ---------------------------------------------------------------------


def _audited_client(tmp_path: Path, **audit: Any) -> Any:
    import pipeclient
    from pipeclient.testing import MockBackend

    mock = MockBackend()
    settings = {"enabled": True, "path": str(tmp_path / "audit.jsonl"), **audit}
    return pipeclient.Client(
        backends=[mock.backend(api_key="sk-audit-key-123")], telemetry={"audit": settings}
    ), mock


@pytest.mark.parametrize("durable", [False, True])
def test_client_writes_one_metadata_line_per_call(tmp_path: Path, durable: bool) -> None:
    import pipeclient
    from pipeclient.testing import Fault

    client, mock = _audited_client(tmp_path, durable=durable)
    canary = "CANARY-audit-41b7"
    client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": canary}], request_id="a-ok"
    )
    mock.push(Fault(status=400, body='{"error": {"message": "bad ' + canary + '"}}'))
    with pytest.raises(pipeclient.BadRequestError):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], request_id="a-err"
        )
    client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], request_id="a-quiet", no_log=True
    )
    path = tmp_path / "audit.jsonl"
    if durable:  # written before each call returned
        assert len(path.read_text().splitlines()) == 2
    client.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["x_request_id"] for line in lines] == ["a-ok", "a-err"]
    assert all(set(line) == LINE_KEYS for line in lines)
    assert lines[1]["error"] == {"type": "BadRequestError", "code": 400}
    assert lines[0]["user_id"] == fingerprint("sk-audit-key-123", secret_of(tmp_path))
    assert canary not in path.read_text() and "sk-audit-key-123" not in path.read_text()
    assert verify(path).ok


def test_audit_follows_its_own_setting_under_do_not_track(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    before = {thread.name for thread in threading.enumerate()}
    client, _ = _audited_client(tmp_path, user_id="u-7")
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert {thread.name for thread in threading.enumerate()} - before == set()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["user_id"] == "u-7"
    client.close()


def test_unwritable_audit_path_fails_client_construction(tmp_path: Path) -> None:
    import pipeclient
    from pipeclient.testing import MockBackend

    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(
            backends=[MockBackend().backend()],
            telemetry={"audit": {"enabled": True, "path": str(tmp_path / "dir.jsonl")}},
        )
    assert "dir.jsonl" in str(caught.value) and "audit.path" in str(caught.value)


def _audit_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "notes.txt").write_text("shopping list\n")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    cases = {
        "directory": (tmp_path / "dir.jsonl", "it is a directory"),
        "file as parent": (tmp_path / "a-file" / "audit.jsonl", "Not a directory"),
        "not an audit log": (tmp_path / "notes.txt", "not a pipeclient audit log"),
        "symlink loop": (loop, "symbolic links"),
    }
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases["read-only directory"] = (locked / "new" / "audit.jsonl", "Permission denied")
    return cases


@pytest.mark.parametrize(
    "case",
    ["directory", "file as parent", "not an audit log", "symlink loop", "read-only directory"],
)
def test_status_refuses_the_audit_paths_the_client_refuses(
    cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    import pipeclient
    from pipeclient.testing import MockBackend

    cases = _audit_paths(tmp_path)
    if case not in cases:
        pytest.skip("root writes into read-only directories")
    path, reason = cases[case]
    env = {"PIPECLIENT_AUDIT__ENABLED": "true", "PIPECLIENT_AUDIT__PATH": str(path)}
    with pytest.raises(pipeclient.ConfigError) as caught:
        build_audit_sink(
            path=str(path),
            user_id="u",
            durable=False,
            api_keys={},
            source="environment variable PIPECLIENT_AUDIT__PATH",
        )
    message = str(caught.value)
    assert reason in message and "PIPECLIENT_AUDIT__PATH" in message
    for arguments in ([], ["--json"]):
        result = cli("telemetry", "status", *arguments, env=env)
        assert result.returncode == 2, result.stdout
        assert message in result.stderr and "Traceback" not in result.stderr
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(pipeclient.ConfigError, match=re.escape(message)):
        pipeclient.Client(backends=[MockBackend().backend()])


def test_status_accepts_a_new_audit_path_without_creating_it(cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "deep" / "audit.jsonl"
    env = {"PIPECLIENT_AUDIT__ENABLED": "true", "PIPECLIENT_AUDIT__PATH": str(path)}
    result = cli("telemetry", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    audit = next(s for s in json.loads(result.stdout)["streams"] if s["stream"] == "audit")
    assert audit["on"] and not (tmp_path / "logs").exists()
    with AuditLog(path, user_id="u") as log:  # the client accepts it too
        log.append(fields())
    assert cli("telemetry", "status", env=env).returncode == 0


# -- AsyncClient: a durable line is written before the call returns, off the event loop ---


@pytest.mark.parametrize("mode", ["durable", "do-not-track"])
def test_async_client_writes_audit_lines_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    import asyncio

    import pipeclient
    from pipeclient.testing import MockBackend

    if mode == "do-not-track":
        monkeypatch.setenv("DO_NOT_TRACK", "1")
    path = tmp_path / "audit.jsonl"
    writers: list[int] = []
    real_append = AuditLog.append

    def append(self: AuditLog, line: Any) -> dict[str, Any]:
        writers.append(threading.get_ident())
        return real_append(self, line)

    monkeypatch.setattr(AuditLog, "append", append)
    telemetry = {"audit": {"enabled": True, "path": str(path), "durable": mode == "durable"}}
    messages = [{"role": "user", "content": "hi"}]

    async def main() -> list[int]:
        loop_thread = threading.get_ident()
        client = pipeclient.AsyncClient(backends=[MockBackend().backend()], telemetry=telemetry)
        await client.chat.completions.create(model="m", messages=messages, request_id="a-1")
        seen = [len(lines_of(path))]  # written before the call returned
        stream = await client.chat.completions.create(
            model="m", messages=messages, stream=True, request_id="a-2"
        )
        async for _ in stream:
            pass
        seen.append(len(lines_of(path)))
        stream = await client.chat.completions.create(
            model="m", messages=messages, stream=True, request_id="a-3"
        )
        async with stream:
            await stream.__anext__()  # closed early: the line is written at close
        seen.append(len(lines_of(path)))
        await client.close()
        assert loop_thread not in writers
        return seen

    assert asyncio.run(main()) == [1, 2, 3]
    assert [line["x_request_id"] for line in lines_of(path)] == ["a-1", "a-2", "a-3"]
    assert len(writers) == 3
