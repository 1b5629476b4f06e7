"""Per-call attribution (`user_id=`, `session_id=`, `properties=`): where it arrives, as
the real SDKs send it to loopback capture servers, and where it must never go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
from pipeclient._telemetry.record import CallRecord, TraceRecord
from pipeclient.testing import MockBackend, MockGateway, capture_telemetry

from .conftest import listen
from .test_telemetry_e2e import Destinations, _attributes, _lf_attributes

HI = [{"role": "user", "content": "hi"}]
USER = "user-CANARY-71c3"
SESSION = "session-CANARY-0d9e"
PLAN = "plan-CANARY-4b2a"
CANARIES = (USER, SESSION, PLAN)


@pytest.fixture
def destinations() -> Iterator[Destinations]:
    found = Destinations()
    yield found
    found.close()


def test_attribution_reaches_each_stream_under_its_own_names(destinations: Destinations) -> None:
    mock = MockBackend()
    with pipeclient.Client(
        backends=[mock.backend()], telemetry=destinations.telemetry(redact=False)
    ) as client:
        client.chat.completions.create(
            model="m",
            messages=HI,
            user_id=USER,
            session_id=SESSION,
            properties={"plan": PLAN, "seats": 3, "trial": True, "ratio": 0.5},
        )
    (event,) = destinations.posthog_events()
    assert event["distinct_id"] == USER
    props = event["properties"]
    assert props["$ai_session_id"] == SESSION
    assert (props["plan"], props["seats"], props["trial"], props["ratio"]) == (PLAN, 3, True, 0.5)
    assert "$process_person_profile" not in props  # an identified user: a person profile

    (span,) = destinations.langfuse_spans()
    attributes = _lf_attributes(span)
    assert attributes["user.id"] == USER and attributes["session.id"] == SESSION
    assert attributes["langfuse.trace.metadata.plan"] == PLAN
    assert attributes["langfuse.trace.metadata.seats"] == 3

    (otlp,) = destinations.otlp_spans()
    found = _attributes(otlp)
    assert found["user.id"] == USER and found["gen_ai.conversation.id"] == SESSION
    assert (found["plan"], found["seats"], found["trial"]) == (PLAN, 3, True)


def test_attribution_is_never_sent_to_the_provider_nor_to_the_gateway() -> None:
    gateway = MockGateway()
    with (
        gateway.serve() as server,
        pipeclient.Client(backends=[server.backend()], user_id=USER) as client,
    ):
        with client.trace("t", session_id=SESSION):
            client.chat.completions.create(model="m", messages=HI, properties={"plan": PLAN})
            list(
                client.chat.completions.create(
                    model="m", messages=HI, stream=True, properties={"plan": PLAN}
                )
            )
        client.embeddings.create(model="e", input="x", user_id=USER)
    sent = [r for r in gateway.requests if not r.path.endswith("/telemetry")]
    assert len(sent) == 3
    telemetry = gateway.telemetry_requests
    assert len(gateway.events) == 3
    for request in sent + telemetry:
        raw = request.body + json.dumps(dict(request.headers)).encode() + request.query.encode()
        for canary in CANARIES:
            assert canary.encode() not in raw, (request.path, canary)


def test_a_call_over_a_block_over_the_client_and_properties_merge() -> None:
    client = pipeclient.Client(
        backends=[MockBackend().backend()],
        user_id="client-user",
        session_id="client-session",
        properties={"app": "web", "tier": "free"},
    )
    records = listen(client)
    client.chat.completions.create(model="m", messages=HI)
    with client.trace("outer", user_id="block-user", properties={"tier": "pro"}):
        with client.trace("inner", properties={"step": 2}):
            client.chat.completions.create(
                model="m", messages=HI, session_id="call-session", properties={"step": 3}
            )
    client.close()
    plain, inner_call = [r for r in records if isinstance(r, CallRecord)]
    assert (plain.user_id, plain.session_id) == ("client-user", "client-session")
    assert dict(plain.properties) == {"app": "web", "tier": "free"}
    assert (inner_call.user_id, inner_call.session_id) == ("block-user", "call-session")
    assert dict(inner_call.properties) == {"app": "web", "tier": "pro", "step": 3}
    blocks = {r.name: r for r in records if isinstance(r, TraceRecord)}
    assert blocks["inner"].user_id == "block-user"
    assert dict(blocks["inner"].properties) == {"app": "web", "tier": "pro", "step": 2}
    assert blocks["outer"].session_id == "client-session"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"user_id": 42}, "user_id= must be a string, not int"),
        ({"session_id": b"s"}, "session_id= must be a string, not bytes"),
        ({"properties": ["plan"]}, "properties= must be a mapping"),
        ({"properties": {"plan": None}}, "properties['plan'] must be a string, a number"),
        ({"properties": {"tags": ["a"]}}, "properties['tags'] must be a string, a number"),
        ({"properties": {"nested": {"a": 1}}}, "flatten nested values"),
        ({"properties": {1: "x"}}, "names must be non-empty strings"),
        ({"properties": {"ratio": float("nan")}}, "must be a finite number"),
    ],
)
def test_bad_attribution_is_a_clear_type_error_before_anything_is_sent(
    arguments: dict[str, Any], message: str
) -> None:
    mock = MockBackend()
    client = pipeclient.Client(backends=[mock.backend()])
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("(", r"\(")):
        client.chat.completions.create(model="m", messages=HI, **arguments)
    with pytest.raises(TypeError, match=r"Client\(\)"):
        pipeclient.Client(backends=[mock.backend()], **arguments)
    with pytest.raises(TypeError, match=r"client\.trace\(\)"):
        client.trace("t", **arguments)
    assert mock.requests == []


def test_a_redacted_posthog_gets_stable_pseudonyms_and_never_the_text(
    destinations: Destinations,
) -> None:
    mock = MockBackend()
    with pipeclient.Client(
        backends=[mock.backend()], telemetry=destinations.telemetry(redact=True)
    ) as client:
        for _ in range(2):
            client.chat.completions.create(
                model="m",
                messages=HI,
                user_id=USER,
                session_id=SESSION,
                properties={"plan": PLAN, "seats": 3},
            )
        client.chat.completions.create(model="m", messages=HI, user_id="someone-else")
    first, second, other = destinations.posthog_events()
    assert first["distinct_id"].startswith("u-") and first["distinct_id"] == second["distinct_id"]
    assert other["distinct_id"].startswith("u-") and other["distinct_id"] != first["distinct_id"]
    assert first["properties"]["$ai_session_id"].startswith("s-")
    assert first["properties"]["plan"].startswith("p-")
    assert first["properties"]["seats"] == 3  # a number is not text
    raw = b"".join(r.body for r in destinations.posthog.requests)
    for canary in CANARIES:
        assert canary.encode() not in raw


def test_redact_properties_drops_a_property_and_pii_detectors_clean_the_rest(
    destinations: Destinations,
) -> None:
    telemetry = destinations.telemetry(redact=False, redact_properties=["email"])
    telemetry["privacy"] = {"pii": ["email"]}
    mock = MockBackend()
    with pipeclient.Client(backends=[mock.backend()], telemetry=telemetry) as client:
        client.chat.completions.create(
            model="m",
            messages=HI,
            user_id="jane.doe@example.com",
            properties={"email": "jane.doe@example.com", "note": "mail jane.doe@example.com"},
        )
    (event,) = destinations.posthog_events()
    assert "email" not in event["properties"]
    assert "jane.doe@example.com" not in json.dumps(event)
    assert event["properties"]["note"].startswith("mail ")
    for server in (destinations.posthog, destinations.langfuse, destinations.otlp):
        for request in server.requests:
            assert b"jane.doe@example.com" not in request.content


def test_no_log_sends_no_attribution_anywhere(destinations: Destinations) -> None:
    mock = MockBackend()
    with pipeclient.Client(
        backends=[mock.backend()], telemetry=destinations.telemetry(redact=False)
    ) as client:
        client.chat.completions.create(
            model="m", messages=HI, user_id=USER, properties={"plan": PLAN}, no_log=True
        )
        client.chat.completions.create(model="m", messages=HI, request_id="after")
    assert len(destinations.posthog_events()) == 1
    for server in (destinations.posthog, destinations.langfuse, destinations.otlp):
        for request in server.requests:
            for canary in CANARIES:
                assert canary.encode() not in request.content


def test_the_pseudonym_key_keeps_pseudonyms_the_same_across_clients(
    destinations: Destinations, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPECLIENT_PSEUDONYM_KEY", "k" * 32)
    telemetry = destinations.telemetry(redact=True)
    telemetry["privacy"] = {"pseudonym_key": "${PIPECLIENT_PSEUDONYM_KEY}"}
    for _ in range(2):
        with pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry) as client:
            client.chat.completions.create(model="m", messages=HI, user_id=USER)
    first, second = destinations.posthog_events()
    assert first["distinct_id"] == second["distinct_id"] and first["distinct_id"] != USER


def test_a_short_pseudonym_key_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(pipeclient.ConfigError, match="pseudonym_key") as caught:
        pipeclient.Client(
            backends=[MockBackend().backend()],
            telemetry={"privacy": {"pseudonym_key": "short"}, "audit": {"enabled": True}},
        )
    assert "16 characters" in str(caught.value)


def _audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_audit_line_takes_user_id_unless_the_audit_table_sets_one(tmp_path: Path) -> None:
    mock = MockBackend()
    log = tmp_path / "audit.jsonl"
    audit = {"audit": {"enabled": True, "path": str(log)}}
    with pipeclient.Client(backends=[mock.backend()], telemetry=audit) as client:
        client.chat.completions.create(model="m", messages=HI, user_id="alice")
        client.chat.completions.create(model="m", messages=HI, session_id=SESSION)
    named, keyed = _audit_lines(log)
    assert named["user_id"] == "alice"
    assert keyed["user_id"].startswith("sha256:")  # the backend key's fingerprint
    assert SESSION not in log.read_text()  # a session id is not an audit key

    fixed = tmp_path / "fixed.jsonl"
    table = {"audit": {"enabled": True, "path": str(fixed), "user_id": "svc-billing"}}
    with pipeclient.Client(backends=[mock.backend()], telemetry=table) as client:
        client.chat.completions.create(model="m", messages=HI, user_id="alice")
    (line,) = _audit_lines(fixed)
    assert line["user_id"] == "svc-billing"


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).map(
    lambda text: f"CANARY{text}CANARY"
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=_text, session=_text, value=_text)
def test_metadata_destinations_never_see_attribution_text(
    user: str, session: str, value: str
) -> None:
    """Whatever the text, a metadata-only view carries none of it (checked on the
    encoded PostHog event, as it would be sent)."""
    with capture_telemetry() as captured:
        client = pipeclient.Client(
            backends=[MockBackend().backend()],
            telemetry={"posthog": {"enabled": True, "api_key": "phc_test"}},
        )
        client.chat.completions.create(
            model="m",
            messages=HI,
            user_id=user,
            session_id=session,
            properties={"v": value},
        )
        client.close()
    encoded = captured.text("posthog")
    assert '"distinct_id": "u-' in encoded
    for text in (user, session, value):
        assert text not in encoded
