"""The client with every custom stream on: the real PostHog, Langfuse and OpenTelemetry
SDKs send real bytes to loopback capture servers, and the tests read what arrived."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import pipeclient
from pipeclient.testing import CaptureServer, Fault, MockBackend, capture_telemetry

from .conftest import RunCli


def rid(name: str) -> str:
    """A request id of the test's own, as a UUID: a caller's UUID carries no text, so
    every destination receives it as it is (other caller ids are pseudonymised)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pipeclient-test:{name}"))


CANARY = "CANARY-5e1f2a7b"
MESSAGES = [{"role": "user", "content": f"tell me about {CANARY}"}]


class Destinations:
    def __init__(self) -> None:
        self.posthog = CaptureServer()
        self.langfuse = CaptureServer()
        self.otlp = CaptureServer()

    def telemetry(self, **posthog: Any) -> dict[str, Any]:
        return {
            "posthog": {
                "enabled": True,
                "host": self.posthog.url,
                "api_key": "phc_test",
                **posthog,
            },
            "langfuse": {
                "enabled": True,
                "host": self.langfuse.url,
                "public_key": "pk-lf",
                "secret_key": "sk-lf",
            },
            "otlp": [{"name": "collector", "enabled": True, "endpoint": self.otlp.url}],
        }

    def posthog_events(self) -> list[dict[str, Any]]:
        return [event for r in self.posthog.requests for event in r.json()["batch"]]

    def langfuse_spans(self) -> list[dict[str, Any]]:
        return [
            span
            for r in self.langfuse.requests
            for resource in r.json()["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]

    def otlp_spans(self) -> list[Any]:
        spans = []
        for request in self.otlp.requests_to("/v1/traces"):
            message = ExportTraceServiceRequest()
            message.ParseFromString(request.content)
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    spans += list(scope.spans)
        return spans

    def close(self) -> None:
        for server in (self.posthog, self.langfuse, self.otlp):
            server.close()


@pytest.fixture
def destinations() -> Iterator[Destinations]:
    found = Destinations()
    yield found
    found.close()


def _attributes(span: Any) -> dict[str, Any]:
    out = {}
    for item in span.attributes:
        value = item.value
        out[item.key] = getattr(value, value.WhichOneof("value"))
    return out


def _lf_attributes(span: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for item in span.get("attributes", []):
        value = item["value"]
        out[item["key"]] = next(iter(value.values()))
    return out


def test_every_stream_receives_each_call_with_shared_ids(destinations: Destinations) -> None:
    mock = MockBackend()
    mock.push(Fault(status=429))
    client = pipeclient.Client(
        backends=[mock.backend()], max_retries=0, telemetry=destinations.telemetry()
    )
    with pytest.raises(pipeclient.RateLimitError):
        client.chat.completions.create(model="m", messages=MESSAGES, request_id=rid("error"))
    with client.trace("research") as trace:
        client.chat.completions.create(model="m", messages=MESSAGES, request_id=rid("chat"))
        chunks = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, request_id=rid("stream")
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks)
    client.embeddings.create(model="e", input=["a"], request_id=rid("embed"))
    report = client.close()
    assert report is not None and report.complete, report
    assert report.sent == {"posthog": 5, "langfuse": 5, "otlp:collector": 5}

    # PostHog: redact = true, so metadata only.
    events = {e["properties"].get("request_id"): e for e in destinations.posthog_events()}
    assert events[rid("chat")]["event"] == "$ai_generation"
    assert events[rid("embed")]["event"] == "$ai_embedding"
    assert events[rid("stream")]["properties"]["$ai_stream"] is True
    assert events[rid("error")]["properties"]["$ai_is_error"] is True
    assert events[rid("error")]["properties"]["$ai_http_status"] == 429
    assert events[rid("chat")]["properties"]["$ai_trace_id"] == trace.trace_id
    assert events[rid("chat")]["properties"]["$ai_parent_id"] == trace.span_id
    assert "$ai_input" not in events[rid("chat")]["properties"]
    assert CANARY.encode() not in destinations.posthog.all_bytes()

    # Langfuse and OTLP: capture_content defaults to true.
    lf = {
        _lf_attributes(s).get("langfuse.observation.metadata.request_id"): s
        for s in destinations.langfuse_spans()
    }
    otlp = {_attributes(s).get("pipeclient.request_id"): s for s in destinations.otlp_spans()}
    for request_id in (rid("chat"), rid("stream")):
        assert lf[request_id]["traceId"] == trace.trace_id
        assert otlp[request_id].trace_id.hex() == trace.trace_id
        assert otlp[request_id].parent_span_id.hex() == trace.span_id
    assert otlp[rid("chat")].name == "chat m"
    assert CANARY.encode() in destinations.langfuse.all_bytes()
    assert CANARY.encode() in destinations.otlp.all_bytes()
    names = {s.name for s in destinations.otlp_spans()}
    assert "research" in names  # the trace block itself, the parent of its calls
    assert destinations.otlp.requests_to("/v1/metrics")


def test_redact_false_sends_content_and_no_log_sends_nothing(
    destinations: Destinations,
) -> None:
    client = pipeclient.Client(
        backends=[MockBackend().backend()], telemetry=destinations.telemetry(redact=False)
    )
    client.chat.completions.create(model="m", messages=MESSAGES, request_id=rid("open"))
    client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "NOLOG-1"}],
        request_id=rid("quiet"),
        no_log=True,
    )
    client.close()
    events = {e["properties"]["request_id"]: e for e in destinations.posthog_events()}
    assert CANARY in json.dumps(events[rid("open")]["properties"]["$ai_input"])
    assert rid("quiet") not in events
    for server in (destinations.posthog, destinations.langfuse, destinations.otlp):
        assert (
            rid("quiet").encode() not in server.all_bytes() and b"NOLOG-1" not in server.all_bytes()
        )


def test_async_stream_early_close_and_application_span(destinations: Destinations) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    app_tracer = TracerProvider().get_tracer("app")  # the application's own, not global
    mock = MockBackend(reply=" ".join(["w"] * 50))

    async def run() -> str:
        client = pipeclient.AsyncClient(
            backends=[mock.backend()], telemetry=destinations.telemetry()
        )
        with app_tracer.start_as_current_span("handler") as app_span:
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, request_id=rid("async")
            )
            async with stream:
                async for _chunk in stream:
                    break
        await client.close()
        return f"{app_span.get_span_context().span_id:016x}"

    app_span_id = asyncio.run(run())
    (span,) = [
        s
        for s in destinations.otlp_spans()
        if _attributes(s).get("pipeclient.request_id") == rid("async")
    ]
    assert span.parent_span_id.hex() == app_span_id
    assert _attributes(span)["pipeclient.closed_early"] is True


@pytest.mark.parametrize("behaviour", ["refuse", "error", "hang"])
@pytest.mark.timeout(60)
def test_failing_destinations_never_affect_calls(behaviour: str) -> None:
    servers = Destinations()
    try:
        telemetry = servers.telemetry()
        if behaviour == "refuse":
            from pipeclient.testing import refused_url

            telemetry["posthog"]["host"] = refused_url().removesuffix("/v1")
            telemetry["langfuse"]["host"] = refused_url().removesuffix("/v1")
            telemetry["otlp"][0]["endpoint"] = refused_url().removesuffix("/v1")
        else:
            for server in (servers.posthog, servers.langfuse, servers.otlp):
                server.behaviour = "error" if behaviour == "error" else "hang"
        telemetry["export"] = {"flush_timeout_s": 0.5, "max_queue": 5}
        client = pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry)
        for index in range(40):
            response = client.chat.completions.create(model="m", messages=MESSAGES)
            assert response.choices, index
        report = client.close()
        assert report is not None
        assert report.submitted == 40
        lost = report.dropped + report.pending + min(report.failed.values())
        assert lost > 0 and not report.complete
        assert all(report.sent[name] == 0 for name in report.sent)
    finally:
        servers.close()


def test_capture_telemetry_records_payloads_without_sending(
    destinations: Destinations,
) -> None:
    with capture_telemetry() as captured:
        client = pipeclient.Client(
            backends=[MockBackend().backend()], telemetry=destinations.telemetry()
        )
        client.chat.completions.create(model="m", messages=MESSAGES, request_id=rid("cap"))
        client.close()
    assert set(captured) == {"posthog", "langfuse", "otlp:collector"}
    assert captured["posthog"][0]["properties"]["request_id"] == rid("cap")
    assert CANARY not in captured.text("posthog")
    assert CANARY in captured.text("langfuse") and CANARY in captured.text("otlp:collector")
    for server in (destinations.posthog, destinations.langfuse, destinations.otlp):
        assert server.requests == []


def test_preview_shows_each_enabled_stream(cli: RunCli, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    env = {
        "PIPECLIENT_POSTHOG__ENABLED": "true",
        "POSTHOG_API_KEY": "phc_preview",
        "PIPECLIENT_OTLP__0__ENABLED": "true",
        "PIPECLIENT_OTLP__0__CAPTURE_CONTENT": "false",
        "PIPECLIENT_AUDIT__ENABLED": "true",
        "PIPECLIENT_AUDIT__PATH": str(audit),
        "PIPECLIENT_API_KEY": "sk-preview-backend-key-77",
        "PIPECLIENT_BASE_URL": "https://api.example.com/v1",
    }
    result = cli("telemetry", "preview", env=env)
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    # The client's own pipeline: the audit line too, written nowhere.
    assert set(preview["destinations"]) == {"posthog", "otlp:collector", "audit"}
    assert not audit.exists()
    (line,) = preview["destinations"]["audit"]
    assert line["user_id"].startswith("sha256:") and line["model"] == "gpt-4o-mini"
    text = json.dumps(preview["destinations"])
    assert "jane.doe@example.com" not in text  # neither destination may receive content
    assert "phc_preview" not in result.stdout and "sk-preview-backend-key-77" not in text


@pytest.mark.timeout(60)
def test_a_hanging_destination_delays_only_itself(destinations: Destinations) -> None:
    destinations.posthog.behaviour = "hang"
    telemetry = destinations.telemetry()
    telemetry["export"] = {"flush_timeout_s": 1.0}
    client = pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry)
    for index in range(5):
        client.chat.completions.create(model="m", messages=MESSAGES, request_id=f"hol-{index}")
    report = client.flush(timeout=1.5)  # the hanging send outlives it
    assert report is not None
    assert report.sent["langfuse"] == 5 and report.sent["otlp:collector"] == 5
    assert report.sent["posthog"] == 0
    assert report.pending + report.failed["posthog"] == 5
    client.close()


def test_content_is_a_snapshot_of_what_was_sent(destinations: Destinations) -> None:
    client = pipeclient.Client(
        backends=[MockBackend().backend()], telemetry=destinations.telemetry()
    )
    batch = ["public document"]
    messages = [{"role": "user", "content": "public question"}]
    client.embeddings.create(model="e", input=batch, request_id="first-embed")
    client.chat.completions.create(model="m", messages=messages, request_id="first-chat")
    # The caller reuses its objects for a no-log call before telemetry was sent.
    batch[0] = "SECRET-NOLOG-DOC"
    messages[0]["content"] = "SECRET-NOLOG-QUESTION"
    client.embeddings.create(model="e", input=batch, no_log=True)
    client.chat.completions.create(model="m", messages=messages, no_log=True)
    client.close()
    for server in (destinations.posthog, destinations.langfuse, destinations.otlp):
        assert b"SECRET-NOLOG" not in server.all_bytes()
    assert b"public document" in destinations.langfuse.all_bytes()
    assert b"public question" in destinations.otlp.all_bytes()


def test_non_streamed_calls_have_no_time_to_first_token(destinations: Destinations) -> None:
    client = pipeclient.Client(
        backends=[MockBackend().backend()], telemetry=destinations.telemetry()
    )
    client.chat.completions.create(model="m", messages=MESSAGES, request_id=rid("plain"))
    list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, request_id=rid("streamed")
        )
    )
    client.close()
    events = {e["properties"]["request_id"]: e for e in destinations.posthog_events()}
    assert "$ai_time_to_first_token" not in events[rid("plain")]["properties"]
    assert events[rid("streamed")]["properties"]["$ai_time_to_first_token"] > 0


def test_a_script_that_exits_without_close_still_delivers(destinations: Destinations) -> None:
    telemetry = json.dumps(destinations.telemetry())
    script = (
        "import json, pipeclient\n"
        "from pipeclient.testing import MockBackend\n"
        f"client = pipeclient.Client(backends=[MockBackend().backend()], "
        f"telemetry=json.loads({telemetry!r}))\n"
        "client.chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'x'}],"
        f" request_id={rid('at-exit')!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for server in (destinations.posthog, destinations.langfuse, destinations.otlp):
        assert rid("at-exit").encode() in server.all_bytes(), server.url
    assert "Traceback" not in result.stderr


def test_many_threads_while_the_sdks_load(destinations: Destinations) -> None:
    import threading

    client = pipeclient.Client(
        backends=[MockBackend().backend()], telemetry=destinations.telemetry()
    )
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(40):
                client.chat.completions.create(model="m", messages=MESSAGES)
                with client.trace("t"):
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = client.close()
    assert errors == []
    assert report is not None and report.submitted == 8 * 40 * 2
