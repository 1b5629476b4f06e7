"""Canaries in every free-text input the API accepts, searched in every byte that arrived.

Real destinations over loopback: PostHog, Langfuse and two OTLP collectors on capture
servers (the real SDKs' bytes: PostHog's gzip JSON, OTLP protobuf), the gateway's
telemetry endpoint (the gateway is the backend), and the audit log file. Each example
salts a unique marker into a trace block's name, a nested block's name, the model name,
a request id the caller chose, the prompt, a tool call's arguments, a provider error
body, OpenAI's own `metadata` and `user` fields, an extra header and the attribution
(`user_id=`, `session_id=`, a text property), and then checks (the provider too, for the
attribution), destination by destination, what DESIGN 5.2 (and 8: free text is content) allows.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
from pipeclient.testing import CaptureServer, Fault, MockGateway

GATEWAY_KEY = "gw-leak-test-key-3f9a"
EMAIL = "jane.doe@example.com"
HEX = "0123456789abcdef"

# Per configuration: destinations that may receive content, and those that may not.
OPEN = {"content": {"posthog", "langfuse", "otlp"}, "metadata": {"quiet"}}
CLOSED = {"content": set(), "metadata": {"posthog", "langfuse", "otlp", "quiet"}}


@dataclasses.dataclass
class World:
    name: str
    client: pipeclient.Client
    gateway: MockGateway
    servers: dict[str, CaptureServer]
    audit: Path
    content: set[str]
    metadata: set[str]

    def received(self) -> dict[str, bytes]:
        """Every byte each destination holds so far (bodies decompressed)."""
        found = {name: server.all_bytes() for name, server in self.servers.items()}
        found["gateway"] = b"\n".join(r.body for r in self.gateway.telemetry_requests)
        found["audit"] = self.audit.read_bytes() if self.audit.exists() else b""
        return found


def _telemetry(servers: dict[str, CaptureServer], *, open_: bool, audit: Path) -> Any:
    return {
        "posthog": {
            "enabled": True,
            "host": servers["posthog"].url,
            "api_key": "phc_leaks",
            "redact": not open_,
        },
        "langfuse": {
            "enabled": True,
            "host": servers["langfuse"].url,
            "public_key": "pk-lf-leaks",
            "secret_key": "sk-lf-leaks-secret",
            "capture_content": open_,
        },
        "otlp": [
            {
                "name": "collector",
                "enabled": True,
                "endpoint": servers["otlp"].url,
                "capture_content": open_,
            },
            {
                "name": "quiet",
                "enabled": True,
                "endpoint": servers["quiet"].url,
                "capture_content": False,
            },
        ],
        "privacy": {"pii": ["email"]},
        "audit": {"enabled": True, "path": str(audit)},
    }


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, World]]:
    made: dict[str, World] = {}
    stack: list[Any] = []
    for name, table in (("open", OPEN), ("closed", CLOSED)):
        servers = {key: CaptureServer() for key in ("posthog", "langfuse", "otlp", "quiet")}
        for server in servers.values():
            stack.append(server.__enter__())
        gateway = MockGateway(api_key=GATEWAY_KEY)
        served = gateway.serve()
        stack.append(served.__enter__())
        audit = tmp_path_factory.mktemp(name) / "audit.jsonl"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PIPECLIENT_GATEWAY_SPOOL_DIR", str(audit.parent / "spool"))
            client = pipeclient.Client(
                backends=[served.backend()],
                max_retries=0,
                telemetry=_telemetry(servers, open_=name == "open", audit=audit),
            )
        made[name] = World(
            name, client, gateway, servers, audit, table["content"], table["metadata"]
        )
    yield made
    for world in made.values():
        world.client.close()
    for entry in reversed(stack):
        entry.__exit__(None, None, None)


@dataclasses.dataclass(frozen=True)
class Scenario:
    tag: str
    nested: bool  # a second block inside the first
    block_no_log: bool  # client.trace(..., no_log=True)
    call_no_log: bool  # a second call, no_log=True, outside any block
    stream: bool
    error: bool  # the provider answers 400 with a body echoing the prompt
    email_in_name: bool  # the block's name holds an e-mail address (pii = ["email"])

    def marker(self, kind: str) -> str:
        return f"zq{kind}{self.tag}"


scenarios = st.builds(
    Scenario,
    tag=st.text(HEX, min_size=12, max_size=12),
    nested=st.booleans(),
    block_no_log=st.booleans(),
    call_no_log=st.booleans(),
    stream=st.booleans(),
    error=st.booleans(),
    email_in_name=st.booleans(),
)


def _call(client: pipeclient.Client, gateway: MockGateway, s: Scenario, prefix: str) -> None:
    m = s.marker
    arguments = json.dumps({"query": f"find {m(prefix + 'tool')}"})
    messages = [
        {"role": "user", "content": f"hello {m(prefix + 'prompt')}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "search", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "nothing found"},
    ]
    options: dict[str, Any] = {
        "model": f"m-{m(prefix + 'model')}",
        "messages": messages,
        "request_id": f"rid-{m(prefix + 'rid')}",
        "extra_headers": {"X-Note": m(prefix + "header")},
        "extra_body": {"metadata": {"note": m(prefix + "meta")}, "user": m(prefix + "user")},
        "no_log": prefix == "quiet",
        # Attribution: personal data, for telemetry only.
        "user_id": m(prefix + "uid"),
        "session_id": m(prefix + "sid"),
        "properties": {"plan": m(prefix + "prop"), "seats": 3},
    }
    if s.error and prefix != "quiet":
        body = {"error": {"message": f"bad {m('err')}", "code": f"code {m('code')}"}}
        gateway.push(Fault(status=400, body=json.dumps(body)))
        with pytest.raises(pipeclient.BadRequestError):
            client.chat.completions.create(**options)
    elif s.stream:
        for _ in client.chat.completions.create(stream=True, **options):
            pass
    else:
        client.chat.completions.create(**options)


def _absent(data: bytes, markers: list[str], where: str) -> None:
    for marker in markers:
        assert marker.encode() not in data, (where, marker)


def _present(data: bytes, markers: list[str], where: str) -> None:
    for marker in markers:
        assert marker.encode() in data, (where, marker)


@pytest.mark.parametrize("name", ["open", "closed"])
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(s=scenarios)
def test_free_text_reaches_only_the_destinations_that_may_have_it(
    name: str, s: Scenario, worlds: dict[str, World]
) -> None:
    world = worlds[name]
    # Destinations keep every example's bytes: each example's markers are its own.
    s = dataclasses.replace(s, tag=s.tag + uuid.uuid4().hex[:8])
    client, m = world.client, s.marker
    outer = f"invoice {m('outer')}" + (f" for {EMAIL}" if s.email_in_name else "")
    inner = f"step {m('inner')}"
    with client.trace(outer, no_log=True if s.block_no_log else None):
        if s.nested:
            with client.trace(inner):
                _call(client, world.gateway, s, "")
        else:
            _call(client, world.gateway, s, "")
    if s.call_no_log:
        _call(client, world.gateway, s, "quiet")
    report = client.flush(10.0)
    assert report is not None and report.pending == 0, report
    received = world.received()
    people = [m(k) for k in ("uid", "sid", "prop", "quietuid", "quietsid", "quietprop")]
    for request in world.gateway.requests:  # what the provider received: no attribution
        raw = request.body + request.query.encode() + repr(dict(request.headers)).encode()
        _absent(raw, people, "provider")

    # What no destination ever receives: OpenAI's own metadata/user fields and headers.
    never = [m(k) for k in ("meta", "user", "header", "quietmeta", "quietuser", "quietheader")]
    names = [m("outer"), *([m("inner")] if s.nested else [])]
    text = [m("prompt"), m("tool"), *([m("err")] if s.error else [])]
    for where, data in received.items():
        _absent(data, never, where)
        if s.error and where not in world.content:  # a sentence as a code is the provider's text
            _absent(data, [m("code")], where)
        assert EMAIL.encode() not in data, where  # pii = ["email"]: never as written
        if s.call_no_log:  # a no-log call: billing fields for the gateway, nothing else
            quiet = [m(k) for k in ("quietprompt", "quiettool", "quietuid", "quietsid")]
            quiet.append(m("quietprop"))
            billing = [m("quietrid"), m("quietmodel")]
            _absent(data, quiet if where == "gateway" else quiet + billing, where)
        if s.block_no_log:  # nothing of the block, nor of the calls inside it
            _absent(data, names + text + [m("uid"), m("sid"), m("prop")], where)
            if where != "gateway":
                _absent(data, [m("rid"), m("model")], where)
            continue
        if where in world.content:
            _present(data, names + text + [m("rid"), m("uid"), m("sid"), m("prop")], where)
            if s.email_in_name:
                assert b"[REDACTED:email]" in data, where
        elif where in ("gateway", "audit"):
            # Metadata only; the request id is the gateway's billing key (it came as the
            # call's X-Request-Id) and the audit log's lookup key.
            _absent(data, names + text + [m("sid"), m("prop")], where)
            _present(data, [m("rid"), m("model")], where)
            # The audit line's user is the call's user_id=; the gateway gets none of it.
            (_present if where == "audit" else _absent)(data, [m("uid")], where)
        else:
            assert where in world.metadata
            _absent(data, [*names, *text, m("rid"), m("uid"), m("sid"), m("prop")], where)
            _present(data, [m("model")], where)
