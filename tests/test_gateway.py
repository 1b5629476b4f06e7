"""The managed gateway: its mandatory metadata-only stream, the spool, DO_NOT_TRACK."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
from pipeclient import ConfigError
from pipeclient._sinks.gateway.event import GatewayBillingEvent, GatewayEvent
from pipeclient._sinks.gateway.sink import GatewaySink, GatewayTarget
from pipeclient._telemetry.record import CallRecord
from pipeclient.testing import CaptureServer, Fault, MockBackend, MockGateway, MockServer

EVENT_KEYS = {
    "schema",
    "request_id",
    "timestamp",
    "operation",
    "model",
    "stream",
    "parameters",
    "usage",
    "latency_ms",
    "outcome",
    "error",
    "attempts",
    "sdk",
}
HI = [{"role": "user", "content": "hi"}]
BILLING_KEYS = {"request_id", "timestamp", "operation", "model", "usage", "outcome"}


@pytest.fixture
def gateway() -> Iterator[tuple[MockGateway, MockServer]]:
    mock = MockGateway()
    with mock.serve() as server:
        yield mock, server


def events_by_id(mock: MockGateway) -> dict[str, dict[str, Any]]:
    return {event["request_id"]: event for event in mock.events}


def test_every_gateway_call_sends_one_schema_event(
    gateway: tuple[MockGateway, MockServer],
) -> None:
    mock, server = gateway
    with pipeclient.Client(backends=[server.backend()], max_retries=0) as client:
        client.chat.completions.create(
            model="gpt-x",
            messages=[{"role": "user", "content": "a"}],
            temperature=0.5,
            seed=7,
            request_id="ok-1",
            response_format={"type": "json_schema", "json_schema": {}},
        )
        mock.push(Fault(status=429))
        with pytest.raises(pipeclient.RateLimitError):
            client.chat.completions.create(model="gpt-x", messages=HI, request_id="err-1")
        list(
            client.chat.completions.create(
                model="gpt-x",
                messages=[{"role": "user", "content": "b"}],
                stream=True,
                request_id="stream-1",
            )
        )
        client.images.generate(prompt="p", size="512x256", request_id="img-1")
        client.embeddings.create(model="e", input="x", request_id="emb-1")
    events = events_by_id(mock)
    assert set(events) == {"ok-1", "err-1", "stream-1", "img-1", "emb-1"}
    for event in events.values():
        assert set(event) == EVENT_KEYS
        GatewayEvent.model_validate(event)
        assert event["schema"] == "pipeclient.gateway.v1" and event["sdk"]["name"] == "pipeclient"
        assert event["timestamp"].endswith("Z")
    ok = events["ok-1"]
    assert ok["parameters"] == {"temperature": 0.5, "seed": 7, "structuring_method": "json_schema"}
    assert ok["outcome"] == "ok" and ok["error"] is None and ok["attempts"] == 1
    assert ok["usage"]["input_tokens"] == 1 and ok["latency_ms"]["total"] > 0
    assert events["err-1"]["error"] == {"type": "RateLimitError", "code": 429}
    assert events["stream-1"]["stream"] is True and events["stream-1"]["latency_ms"]["ttft"]
    assert events["img-1"]["parameters"] == {"width": 512, "height": 256}
    assert events["emb-1"]["operation"] == "embeddings"
    request = mock.telemetry_requests[0]
    assert request.path == "/v1/telemetry"
    assert request.headers["authorization"] == "Bearer gw-test-key"
    assert set(request.json()) == {"events"}


def test_a_plain_backend_at_the_gateway_host_still_emits_the_stream(
    gateway: tuple[MockGateway, MockServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    mock, server = gateway
    monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", server.url)
    plain = server.backend("plain", kind="openai")
    with pipeclient.Client(backends=[plain]) as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], request_id="bypass-1"
        )
    assert "bypass-1" in events_by_id(mock)


@pytest.mark.parametrize(
    "attempt",
    [
        {"file": "[gateway]\nenabled = false\n"},
        {"env": {"PIPECLIENT_GATEWAY__ENABLED": "false"}},
        {"env": {"PIPECLIENT_GATEWAY": '{"enabled": false}'}},
        {"argument": {"gateway": {"enabled": False}}},
    ],
)
def test_turning_the_gateway_stream_off_is_refused(
    attempt: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: dict[str, Any] = {}
    if "file" in attempt:
        path = tmp_path / "t.toml"
        path.write_text(attempt["file"])
        options["telemetry_file"] = path
    for name, value in attempt.get("env", {}).items():
        monkeypatch.setenv(name, value)
    if "argument" in attempt:
        options["telemetry"] = attempt["argument"]
    with pytest.raises(ConfigError, match="cannot be configured or turned off"):
        pipeclient.Client(backends=[MockGateway().backend()], **options)


def test_no_log_keeps_only_billing_fields(gateway: tuple[MockGateway, MockServer]) -> None:
    mock, server = gateway
    backends = [server.backend(), server.backend("quiet-key", no_log=True, weight=0)]
    with pipeclient.Client(backends=backends) as client:
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            no_log=True,
            request_id="call-level",
        )
    with pipeclient.Client(backends=[server.backend(no_log=True)]) as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], request_id="backend-level"
        )
    with pipeclient.Client(backends=[server.backend()], no_log=True) as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], request_id="client-level"
        )
    events = events_by_id(mock)
    for request_id in ("call-level", "backend-level", "client-level"):
        assert set(events[request_id]) == BILLING_KEYS, request_id
        GatewayBillingEvent.model_validate(events[request_id])


def test_under_do_not_track_nothing_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "yes")
    gateway, plain = MockGateway(), MockBackend()
    capture = [CaptureServer(), CaptureServer(), CaptureServer()]
    try:
        with gateway.serve() as gateway_server, plain.serve() as plain_server:
            telemetry = {
                "posthog": {"enabled": True, "host": capture[0].url, "api_key": "k"},
                "langfuse": {
                    "enabled": True,
                    "host": capture[1].url,
                    "public_key": "p",
                    "secret_key": "s",
                },
                "otlp": [{"name": "c", "enabled": True, "endpoint": capture[2].url}],
            }
            with pipeclient.Client(
                backends=[gateway_server.backend()], telemetry=telemetry
            ) as client:
                with pytest.raises(pipeclient.GatewayTelemetryRequiredError, match="DO_NOT_TRACK"):
                    client.chat.completions.create(model="m", messages=HI)
            with pipeclient.Client(
                backends=[plain_server.backend()], telemetry=telemetry
            ) as client:
                assert client.chat.completions.create(model="m", messages=HI).choices
            assert gateway_server.connections == 0 and plain_server.connections == 1
        assert [server.connections for server in capture] == [0, 0, 0]
    finally:
        for server in capture:
            server.close()


def test_spool_keeps_events_while_the_endpoint_is_down(
    gateway: tuple[MockGateway, MockServer],
) -> None:
    mock, server = gateway
    mock.telemetry_status = 503
    with pipeclient.Client(
        backends=[server.backend()], telemetry={"export": {"flush_timeout_s": 1.0}}
    ) as client:
        for index in range(7):
            client.chat.completions.create(model="m", messages=HI, request_id=f"down-{index}")
        report = client.flush()
        assert report is not None and report.failed["gateway"] == 7
    assert mock.events == []
    mock.telemetry_status = None
    with pipeclient.Client(backends=[server.backend()]) as client:
        client.chat.completions.create(model="m", messages=HI, request_id="up-0")
    ids = [event["request_id"] for event in mock.events]
    assert sorted(ids) == sorted([f"down-{i}" for i in range(7)] + ["up-0"])  # exactly once


def test_the_next_process_sends_the_spooled_events(
    gateway: tuple[MockGateway, MockServer],
) -> None:
    mock, server = gateway
    mock.telemetry_status = 500
    with pipeclient.Client(
        backends=[server.backend()], telemetry={"export": {"flush_timeout_s": 0.5}}
    ) as client:
        for index in range(3):
            client.chat.completions.create(model="m", messages=HI, request_id=f"old-{index}")
    mock.telemetry_status = None
    script = (
        "import pipeclient; from pipeclient import Backend\n"
        f"b = Backend(name='gateway', base_url={server.url!r}, api_key='gw-test-key', "
        "kind='gateway')\n"
        "with pipeclient.Client(backends=[b]) as c:\n"
        "    c.chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'x'}],"
        " request_id='new-0')\n"
    )
    env = {**os.environ}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)
    ids = sorted(event["request_id"] for event in mock.events)
    assert ids == ["new-0", "old-0", "old-1", "old-2"]


def test_a_full_spool_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    from pipeclient.testing import refused_url

    target = GatewayTarget(refused_url(), "k")
    sink = GatewaySink({"gateway": target}, spool_root=tmp_path, max_spool=5)
    record = _record()
    payloads = [sink.encode(dataclasses.replace(record, request_id=f"r-{i}"))[0] for i in range(8)]
    with pytest.raises(RuntimeError, match="spooled"):
        sink.send(payloads, timeout=0.5)
    spool = sink.spools["gateway"]
    files = [path for path in spool.directory.iterdir()]
    assert files and all(path.stat().st_mode & 0o777 == 0o600 for path in files), files
    assert spool.directory.stat().st_mode & 0o077 == 0  # nobody else may list it
    kept = [json.loads(event)["request_id"] for event in spool.take(100)]
    assert kept == [f"r-{i}" for i in range(3, 8)] and sink.dropped == 3


def test_at_close_a_batch_out_stops_retrying_and_unsent_ones_are_spooled(
    tmp_path: Path,
) -> None:
    """Billing events are never just dropped at close: the batch being retried stops and is
    spooled, and batches its lane had no time to send are kept for the next process."""
    import threading
    import time

    with CaptureServer(behaviour="error") as server:  # 500: retried with pauses
        sink = GatewaySink({"gateway": GatewayTarget(server.url, "k")}, spool_root=tmp_path)
        record = _record()
        out = sink.encode(dataclasses.replace(record, request_id="out"))
        failed: list[BaseException] = []

        def send() -> None:
            try:
                sink.send(out, timeout=60.0)  # would retry for a minute
            except Exception as exc:
                failed.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        while not server.requests:
            time.sleep(0.01)
        waiting = sink.pack(sink.encode(dataclasses.replace(record, request_id="waiting")))
        assert sink.keep(waiting) is True
        sink.shutdown(5.0)
        sender.join(30.0)  # its own deadline is 60 s: only the shutdown ends it sooner
        assert not sender.is_alive()
    assert failed and "spooled" in str(failed[0])
    spooled = sorted(json.loads(e)["request_id"] for e in sink.spools["gateway"].take(10))
    assert spooled == ["out", "waiting"]


def _record() -> CallRecord:
    from pipeclient._cli.preview import sample_call

    return dataclasses.replace(sample_call(), gateway=True, backend="gateway")


# -- the leak test -------------------------------------------------------------------------

_canary = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=12).map(
    lambda tail: "CANARY" + tail
)
_scenario = st.sampled_from(["ok", "stream", "tools", "error_echo", "exception", "embeddings"])


@pytest.fixture(scope="module")
def leak_gateway() -> Iterator[tuple[MockGateway, MockServer]]:
    mock = MockGateway(reply=lambda body: "echo " + json.dumps(body))
    with mock.serve() as server:
        yield mock, server


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(canary=_canary, scenario=_scenario)
def test_no_free_text_reaches_the_gateway_stream(
    leak_gateway: tuple[MockGateway, MockServer], canary: str, scenario: str
) -> None:
    mock, server = leak_gateway
    before = len(mock.events)
    messages = [
        {"role": "system", "content": f"system {canary}"},
        {"role": "user", "content": f"user {canary}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"q": canary})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": f"tool said {canary}"},
    ]
    common: dict[str, Any] = {
        "user": canary,
        "metadata": {"note": canary},
        "extra_body": {"custom": canary},
        "extra_headers": {"x-note": canary},
    }
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": canary,
                "parameters": {"type": "object", "properties": {canary: {"type": "string"}}},
            },
        }
    ]
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "out",
            "schema": {"type": "object", "properties": {canary: {"type": "string"}}},
        },
    }
    with pipeclient.Client(backends=[server.backend()], max_retries=0) as client:
        try:
            if scenario == "ok":
                client.chat.completions.create(
                    model="m", messages=messages, response_format=schema, **common
                )
            elif scenario == "stream":
                list(
                    client.chat.completions.create(
                        model="m", messages=messages, stream=True, **common
                    )
                )
            elif scenario == "tools":
                client.chat.completions.create(model="m", messages=messages, tools=tools, **common)
            elif scenario == "error_echo":
                mock.push(
                    Fault(
                        status=400,
                        body=json.dumps(
                            {"error": {"message": f"bad prompt: user {canary}", "code": canary}}
                        ),
                    )
                )
                client.chat.completions.create(model="m", messages=messages, **common)
            elif scenario == "exception":
                for _chunk in client.chat.completions.create(
                    model="m", messages=messages, stream=True, **common
                ):
                    raise ValueError(f"app failed on {canary}")
            else:
                # `metadata` is not an embeddings parameter: it goes as a provider field.
                extra = {**common["extra_body"], "metadata": common["metadata"]}
                options = {**common, "extra_body": extra}
                del options["metadata"]
                client.embeddings.create(model="e", input=[canary], **options)
        except (pipeclient.APIError, ValueError):
            pass
    arrived = mock.events[before:]
    assert len(arrived) == 1, scenario  # the event did arrive
    GatewayEvent.model_validate(arrived[0])
    everything = b"".join(r.body for r in mock.telemetry_requests)
    assert canary.encode() not in everything
    assert canary.lower().encode() not in everything.lower()


def test_packed_events_go_out_as_the_same_bytes_and_are_not_gc_tracked(tmp_path: Path) -> None:
    import gc

    with CaptureServer() as server:
        sink = GatewaySink({"gateway": GatewayTarget(server.url, "k")}, spool_root=tmp_path)
        record = _record()
        payloads = [
            sink.encode(dataclasses.replace(record, request_id=f"r-{i}"))[0] for i in range(3)
        ]
        packed = sink.pack(payloads)
        gc.collect()  # a tuple of strings is untracked by the first collection it meets
        assert not any(gc.is_tracked(item) for item in packed)
        sink.send(payloads, timeout=5.0)
        sink.send(packed, timeout=5.0)
        plain, from_packed = (request.body for request in server.requests)
    assert plain == from_packed
    assert json.loads(from_packed) == {"events": [p["event"] for p in payloads]}


def test_a_damaged_spool_line_is_dropped_and_never_blocks_the_stream(tmp_path: Path) -> None:
    """Lines go into the request as they are: one that is not strict JSON (NaN, a cut-off
    line, an array) would make every batch invalid, so it is dropped, and counted."""
    with CaptureServer() as server:
        sink = GatewaySink({"gateway": GatewayTarget(server.url, "k")}, spool_root=tmp_path)
        spool = sink.spools["gateway"]
        good = json.dumps({"request_id": "spooled"})
        spool.add(['{"request_id":"x","latency_ms":{"total":NaN}}', '{"cut', "[1, 2]", good])
        sink.send(sink.encode(_record()), timeout=5.0)
        (request,) = server.requests
    events = json.loads(request.body)["events"]  # strict JSON
    assert events[0]["request_id"] == "spooled"
    assert len(events) == 2 and sink.dropped == 3 and len(spool) == 0
