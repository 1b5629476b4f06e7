"""Routing by request class: `[routing]` rules and `sensitive = "local"`, over real
loopback backends (one of them the user's own, `local=True`), counting what each received."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
from pipeclient._privacy.detectors import DETECTOR_ORDER, Redactor
from pipeclient._privacy.walk import strings_of
from pipeclient.testing import CaptureServer, Fault, MockBackend, capture_telemetry

from .conftest import RunCli, listen

PII = {"privacy": {"pii": ["email", "secret", "credit_card"]}}
SENSITIVE = {**PII, "routing": {"sensitive": "local"}}
CLEAN = [{"role": "user", "content": "what is the capital of France?"}]
EMAIL = "canary.4d2f@example.com"
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
AWS_KEY_ID = "AKIA" + "Z7QW3ERT5YUI9OPL"
OPENAI_KEY = "sk-proj-" + "x9Y8w7V6u5T4s3R2q1P0o9N8"
CANARIES = (EMAIL, GITHUB_TOKEN, AWS_KEY_ID, OPENAI_KEY, "4111 1111 1111 1111")


class Served:
    """A loopback backend server and its mock, to count what reached it."""

    def __init__(self) -> None:
        self.mock = MockBackend()
        self.server = self.mock.serve()

    def backend(self, name: str, **kw: Any) -> pipeclient.Backend:
        return self.server.backend(name, **kw)

    @property
    def bodies(self) -> list[bytes]:
        return [request.body for request in self.mock.requests]

    def received(self, text: str) -> bool:
        return any(text.encode() in body for body in self.bodies)


@pytest.fixture
def cloud() -> Iterator[Served]:
    served = Served()
    yield served
    served.server.close()


@pytest.fixture
def own() -> Iterator[Served]:
    served = Served()
    yield served
    served.server.close()


def two_backends(cloud: Served, own: Served) -> list[pipeclient.Backend]:
    """The third-party provider takes every ordinary call; the local server stands by."""
    return [cloud.backend("cloud"), own.backend("own", local=True, weight=0)]


# -- sensitive requests stay local -------------------------------------------------------


def placements(canary: str) -> list[list[dict[str, Any]]]:
    """The canary in a user message, a system message, a content part, tool-call
    arguments (JSON-escaped) and a tool's result."""
    arguments = json.dumps({"to": canary}, ensure_ascii=True).replace("@", "\\u0040")
    return [
        [{"role": "user", "content": f"please write to {canary} today"}],
        [{"role": "system", "content": f"owner: {canary}"}, *CLEAN],
        [{"role": "user", "content": [{"type": "text", "text": f"key {canary} here"}]}],
        [
            *CLEAN,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "send", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
        ],
        [*CLEAN, {"role": "tool", "tool_call_id": "c", "content": f"found {canary}"}],
    ]


def test_a_sensitive_request_goes_only_to_the_local_backend(cloud: Served, own: Served) -> None:
    with pipeclient.Client(backends=two_backends(cloud, own), telemetry=SENSITIVE) as client:
        records = listen(client)
        client.chat.completions.create(model="m", messages=CLEAN)
        sent = 0
        for canary in CANARIES:
            for messages in placements(canary):
                client.chat.completions.create(model="m", messages=messages)
                sent += 1
        for _chunk in client.chat.completions.create(
            model="m", messages=placements(EMAIL)[0], stream=True
        ):
            pass
    assert len(cloud.bodies) == 1 and not any(cloud.received(c) for c in CANARIES)
    assert len(own.bodies) == sent + 1
    assert [r.backend for r in records] == ["cloud"] + ["own"] * (sent + 1)
    assert [r.route for r in records] == [None] + ["sensitive"] * (sent + 1)


def test_without_routing_the_same_requests_reach_the_provider(cloud: Served, own: Served) -> None:
    """The control: the canaries are what the routing keeps away, not something else."""
    with pipeclient.Client(backends=two_backends(cloud, own), telemetry=PII) as client:
        for messages in placements(EMAIL):
            client.chat.completions.create(model="m", messages=messages)
    assert len(cloud.bodies) == 5 and own.bodies == []
    assert cloud.received(EMAIL) and cloud.received("\\u0040example.com")


text_around = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    canary=st.sampled_from(CANARIES),
    where=st.integers(min_value=0, max_value=4),
    before=text_around,
    after=text_around,
    stream=st.booleans(),
)
def test_property_a_canary_never_reaches_the_non_local_backend(
    cloud: Served, own: Served, canary: str, where: int, before: str, after: str, stream: bool
) -> None:
    cloud.mock.reset()
    own.mock.reset()
    messages = placements(f"{before} {canary} {after}")[where]
    with pipeclient.Client(backends=two_backends(cloud, own), telemetry=SENSITIVE) as client:
        answer = client.chat.completions.create(model="m", messages=messages, stream=stream)
        if stream:
            for _ in answer:  # type: ignore[union-attr]
                pass
    assert cloud.bodies == []
    assert len(own.bodies) == 1


def test_a_returned_message_sent_back_is_scanned_and_routed(cloud: Served, own: Served) -> None:
    """The tool loop appends the answer's message object itself to `messages=`."""
    from pipeclient.types import ChatCompletionMessage

    said = ChatCompletionMessage(role="assistant", content=f"I will write to {EMAIL}")
    seen: list[bool] = []

    def route(request: pipeclient.RouteRequest) -> None:
        seen.append(EMAIL in json.dumps(request.body))
        request.body.clear()  # a copy: neither what is sent nor what is scanned

    with pipeclient.Client(
        backends=two_backends(cloud, own), telemetry=SENSITIVE, routing=route
    ) as client:
        client.chat.completions.create(model="m", messages=[*CLEAN, said, *CLEAN])
    assert seen == [True] and cloud.bodies == [] and own.received(EMAIL)


def test_failover_stays_among_the_local_backends(cloud: Served, own: Served) -> None:
    spare = Served()
    try:
        backends = [
            cloud.backend("cloud"),
            own.backend("own", local=True),
            spare.backend("spare", local=True),
        ]
        own.mock.push(Fault(status=500), times=10)
        spare.mock.push(Fault(status=503), times=10)
        with pipeclient.Client(backends=backends, telemetry=SENSITIVE, max_retries=2) as client:
            with pytest.raises(pipeclient.InternalServerError) as caught:
                client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
        assert cloud.bodies == []
        assert len(own.bodies) == 3 and len(spare.bodies) == 3  # every round, both locals
        assert "on 2 backends" in str(caught.value)
    finally:
        spare.server.close()


def test_a_sensitive_request_without_a_local_backend_is_refused_before_any_io(
    cloud: Served, own: Served
) -> None:
    with CaptureServer() as posthog:
        telemetry = {
            **SENSITIVE,
            "posthog": {"enabled": True, "host": posthog.url, "api_key": "phc_test"},
        }
        with pipeclient.Client(backends=[cloud.backend("cloud")], telemetry=telemetry) as client:
            with pytest.raises(pipeclient.RoutingError) as caught:
                client.chat.completions.create(model="m", messages=placements(GITHUB_TOKEN)[3])
            client.chat.completions.create(model="m", messages=CLEAN)  # others still work
            client.flush()
        events = [e["properties"] for r in posthog.requests for e in r.json()["batch"]]
    assert len(cloud.bodies) == 1 and not cloud.received("ghp_")
    error = caught.value
    assert isinstance(error, pipeclient.PipeclientError) and error.route == "sensitive"
    message = str(error)
    assert "(secret)" in message and "local=True" in message and error.request_id in message
    assert "ghp_" not in message
    assert [e.get("pipeclient_route") for e in events] == ["sensitive", None]
    assert events[0]["$ai_error"].startswith("RoutingError")
    assert "ghp_" not in json.dumps(events)


def test_the_gateway_is_never_local(cloud: Served) -> None:
    backends = [cloud.backend("gw", kind="gateway")]
    with pipeclient.Client(backends=backends, telemetry=SENSITIVE) as client:
        with pytest.raises(pipeclient.RoutingError):
            client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
    assert cloud.bodies == []


def test_a_backend_at_the_gateways_url_cannot_be_marked_local(
    cloud: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever its kind says, a backend whose host is PIPECLIENT_GATEWAY_URL's is the
    gateway: marking it local=True would let flagged requests reach a third party."""
    monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", cloud.server.url)
    disguised = cloud.backend("mine", kind="openai", local=True)
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[disguised], telemetry=SENSITIVE)
    assert "'mine'" in str(caught.value) and "local=True" in str(caught.value)
    assert "PIPECLIENT_GATEWAY_URL" in str(caught.value)
    assert cloud.bodies == []


def test_do_not_track_does_not_change_routing(
    cloud: Served, own: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    with pipeclient.Client(backends=two_backends(cloud, own), telemetry=SENSITIVE) as client:
        client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
    assert cloud.bodies == [] and len(own.bodies) == 1


def test_the_clients_own_keys_count_as_secrets(cloud: Served, own: Served) -> None:
    backends = [
        cloud.backend("cloud", api_key="provider-key-0123456789"),
        own.backend("own", local=True, weight=0),
    ]
    with pipeclient.Client(backends=backends, telemetry=SENSITIVE) as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "my key: provider-key-0123456789"}]
        )
    assert cloud.bodies == [] and len(own.bodies) == 1


def test_the_async_client_routes_the_same(cloud: Served, own: Served) -> None:
    async def main() -> None:
        async with pipeclient.AsyncClient(
            backends=two_backends(cloud, own), telemetry=SENSITIVE
        ) as client:
            await client.chat.completions.create(model="m", messages=CLEAN)
            await client.chat.completions.create(model="m", messages=placements(EMAIL)[3])
            stream = await client.chat.completions.create(
                model="m", messages=placements(OPENAI_KEY)[0], stream=True
            )
            async for _ in stream:
                pass

    asyncio.run(main())
    assert len(cloud.bodies) == 1 and not any(cloud.received(c) for c in CANARIES)
    assert len(own.bodies) == 2


def test_the_async_client_refuses_without_a_local_backend(cloud: Served) -> None:
    async def main() -> None:
        async with pipeclient.AsyncClient(
            backends=[cloud.backend("cloud")], telemetry=SENSITIVE
        ) as client:
            await client.embeddings.create(model="e", input=f"user {EMAIL}")

    with pytest.raises(pipeclient.RoutingError):
        asyncio.run(main())
    assert cloud.bodies == [] and cloud.server.connections == 0


def test_other_endpoints_are_scanned_too(cloud: Served, own: Served) -> None:
    with pipeclient.Client(backends=two_backends(cloud, own), telemetry=SENSITIVE) as client:
        client.embeddings.create(model="e", input=[f"user {EMAIL}"])
        client.responses.create(model="m", input=f"token {AWS_KEY_ID}")
        client.responses.create(model="m", input="hello", instructions=f"mail {EMAIL}")
        client.completions.create(model="m", prompt="card 4111 1111 1111 1111")
        client.audio.transcriptions.create(
            model="w", file=("talk.wav", b"RIFF0000"), prompt=f"names: {EMAIL}"
        )
        client.chat.completions.create(model="m", messages=CLEAN, extra_body={"note": EMAIL})
        client.chat.completions.create(
            model="m",
            messages=CLEAN,
            tools=[{"type": "function", "function": {"name": "f", "description": f"mail {EMAIL}"}}],
        )
        client.audio.transcriptions.create(model="w", file=(f"{EMAIL}.wav", b"RIFF0000"))
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"data:x;base64, mail {EMAIL}"}]
        )
        client.models.list()  # no content: any backend
    assert not any(cloud.received(c) for c in CANARIES) and len(own.bodies) == 9
    assert len(cloud.bodies) == 1 and cloud.mock.requests[0].method == "GET"


fragments = st.sampled_from(
    [
        *CANARIES,
        "word",
        " ",
        "\n",
        "1.2.3.4",
        "10.0.0.1",
        "+1 415 555 0100",
        "a@b",
        "@",
        "-",
        "sk-",
        "ghp_",
        "12345",
        "2026-12-07",
        "data:image/png;base64,",
        ":",
        "/",
        "x" * 8,
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(fragments, max_size=12).map("".join), st.sampled_from([(), ("email",), DETECTOR_ORDER])
)
def test_property_the_scan_flags_exactly_what_redaction_would_replace(
    text: str, detectors: tuple[str, ...]
) -> None:
    redactor = Redactor(detectors, ["provider-key-0123456789"])
    assert (redactor.finds(text) is not None) == (redactor.redact(text, {}) != text)
    walked = list(strings_of({"messages": [{"role": "user", "content": text}]}))
    assert text in walked


# -- rules ------------------------------------------------------------------------------


@pytest.fixture
def four() -> Iterator[dict[str, Served]]:
    found = {name: Served() for name in ("small", "big", "vision", "tools")}
    yield found
    for served in found.values():
        served.server.close()


def four_backends(four: dict[str, Served]) -> list[pipeclient.Backend]:
    return [four[name].backend(name, weight=1 if name == "small" else 0) for name in four]


def counts(four: dict[str, Served]) -> dict[str, int]:
    return {name: len(served.bodies) for name, served in four.items()}


RULES = {
    "rules": [
        {"name": "vision", "images": True, "backends": ["vision"]},
        {"tools": True, "backends": ["tools"]},
        {"name": "long", "min_input_tokens": 1000, "backends": ["big"]},
        {"name": "alias", "model": ["big-model", "huge"], "backends": ["big"]},
    ]
}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 9000}},
        ],
    }
]


def test_rules_route_by_tokens_tools_images_and_model(four: dict[str, Served]) -> None:
    long_text = [{"role": "user", "content": "word " * 1000}]  # 5000 characters: 1250 tokens
    with pipeclient.Client(backends=four_backends(four), routing=RULES) as client:
        records = listen(client)
        client.chat.completions.create(model="m", messages=CLEAN)
        client.chat.completions.create(model="m", messages=long_text)
        client.chat.completions.create(model="m", messages=CLEAN, tools=[TOOL])
        client.chat.completions.create(model="m", messages=IMAGE)  # big, but the image is not text
        client.chat.completions.create(model="huge", messages=CLEAN)
        client.responses.create(
            model="m",
            input=[{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
        )
    assert counts(four) == {"small": 1, "big": 2, "vision": 2, "tools": 1}
    assert [r.route for r in records] == [None, "long", "rules[1]", "vision", "alias", "vision"]


def test_a_rule_narrows_and_failover_stays_in_it(four: dict[str, Served]) -> None:
    four["big"].mock.push(Fault(status=500), times=5)
    four["vision"].mock.push(Fault(status=502), times=5)
    routing = {"rules": [{"model": "m", "backends": ["big", "vision"]}]}
    with pipeclient.Client(backends=four_backends(four), routing=routing) as client:
        with pytest.raises(pipeclient.InternalServerError):
            client.chat.completions.create(model="m", messages=CLEAN)
    # Every round tried both, and nothing else: max_retries=2 makes three rounds.
    assert counts(four) == {"small": 0, "big": 3, "vision": 3, "tools": 0}


def test_max_input_tokens_and_false_conditions(four: dict[str, Served]) -> None:
    routing = {
        "rules": [
            {
                "name": "short-plain",
                "max_input_tokens": 50,
                "tools": False,
                "images": False,
                "backends": ["tools"],
            },
        ]
    }
    with pipeclient.Client(backends=four_backends(four), routing=routing) as client:
        client.chat.completions.create(model="m", messages=CLEAN)  # short, plain
        client.chat.completions.create(model="m", messages=CLEAN, tools=[TOOL])
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 400}])
    assert counts(four) == {"small": 2, "big": 0, "vision": 0, "tools": 1}


def test_a_rule_may_send_to_the_local_backends(cloud: Served, own: Served) -> None:
    routing = {"rules": [{"name": "private-model", "model": "mine", "local": True}]}
    with pipeclient.Client(backends=two_backends(cloud, own), routing=routing) as client:
        client.chat.completions.create(model="mine", messages=CLEAN)
        client.chat.completions.create(model="m", messages=CLEAN)
    assert len(cloud.bodies) == 1 and len(own.bodies) == 1
    assert json.loads(own.bodies[0])["model"] == "mine"


def test_a_user_function_routes_first(four: dict[str, Served]) -> None:
    seen: list[tuple[str, str, int, bool, bool]] = []

    def route(request: pipeclient.RouteRequest) -> list[str] | None:
        seen.append(
            (request.operation, request.model, request.input_tokens, request.tools, request.images)
        )
        return ["vision"] if request.model == "pick-vision" else None

    with pipeclient.Client(backends=four_backends(four), routing=route) as client:
        records = listen(client)
        client.chat.completions.create(model="pick-vision", messages=CLEAN)
        client.chat.completions.create(model="m", messages=CLEAN, tools=[TOOL])
        client.embeddings.create(model="e", input="abcd" * 10)
    assert counts(four) == {"small": 2, "big": 0, "vision": 1, "tools": 0}
    assert [r.route for r in records] == ["function", None, None]
    assert seen[0][:2] == ("chat", "pick-vision") and seen[1][3] is True
    assert seen[2][0] == "embeddings" and seen[2][2] >= 10


def test_a_user_function_cannot_escape_the_sensitive_rule(cloud: Served, own: Served) -> None:
    with pipeclient.Client(
        backends=two_backends(cloud, own), telemetry=SENSITIVE, routing=lambda _: ["cloud"]
    ) as client:
        records = listen(client)
        client.chat.completions.create(model="m", messages=CLEAN)
        client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
    assert len(cloud.bodies) == 1 and not cloud.received(EMAIL) and len(own.bodies) == 1
    assert [r.route for r in records] == ["function", "sensitive"]


def test_a_user_function_returning_no_backend_or_an_unknown_one(cloud: Served) -> None:
    with pipeclient.Client(backends=[cloud.backend("cloud")], routing=lambda _: []) as client:
        with pytest.raises(pipeclient.RoutingError) as refused:
            client.chat.completions.create(model="m", messages=CLEAN)
    assert refused.value.route == "function" and "returned no backend" in str(refused.value)
    with pipeclient.Client(backends=[cloud.backend("cloud")], routing=lambda _: ["nope"]) as client:
        with pytest.raises(pipeclient.ConfigError) as unknown:
            client.chat.completions.create(model="m", messages=CLEAN)
    assert "'nope'" in str(unknown.value) and "cloud" in str(unknown.value)
    assert "Client(routing=...)" in str(unknown.value)
    with pipeclient.Client(backends=[cloud.backend("cloud")], routing=lambda _: "cloud") as client:
        with pytest.raises(pipeclient.ConfigError, match="list of backend names"):
            client.chat.completions.create(model="m", messages=CLEAN)
    assert cloud.bodies == []


# -- configuration -----------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


FILE = """
[privacy]
pii = ["email"]

[routing]
sensitive = "local"

[[routing.rules]]
name = "long"
min_input_tokens = 1000
backends = ["own"]
"""


def test_the_file_configures_routing(cloud: Served, own: Served, tmp_path: Path) -> None:
    path = write(tmp_path / "telemetry.toml", FILE)
    with pipeclient.Client(backends=two_backends(cloud, own), telemetry_file=path) as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "y" * 5000}]
        )
        client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
        client.chat.completions.create(model="m", messages=CLEAN)
    assert len(own.bodies) == 2 and len(cloud.bodies) == 1


def test_the_argument_overrides_the_file_key_by_key(
    cloud: Served, own: Served, tmp_path: Path
) -> None:
    path = write(tmp_path / "telemetry.toml", FILE)
    routing = pipeclient.RoutingConfig(rules=[])  # the file's rules replaced, its sensitive kept
    with pipeclient.Client(
        backends=two_backends(cloud, own), telemetry_file=path, routing=routing
    ) as client:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "y" * 5000}]
        )
        client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
    assert len(cloud.bodies) == 1 and len(own.bodies) == 1 and own.received(EMAIL)


def test_the_environment_can_switch_sensitive_routing_on(
    cloud: Served, own: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPECLIENT_ROUTING__SENSITIVE", "local")
    monkeypatch.setenv("PIPECLIENT_PRIVACY__PII", '["email"]')
    with pipeclient.Client(backends=two_backends(cloud, own)) as client:
        client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
    assert cloud.bodies == [] and len(own.bodies) == 1


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[routing]\nsensitive = "loca"\n', "routing.sensitive", "'off' or 'local'"),
        ("[routing]\nsensitive = true\n", "routing.sensitive", "'off' or 'local'"),
        ("[routing]\nsensitiv = 1\n", "routing.sensitiv", "unknown key"),
        ('[[routing.rules]]\nmodel = "m"\n', "routing.rules[0]", "one target"),
        (
            '[[routing.rules]]\nmodel = "m"\nlocal = true\nbackends = ["own"]\n',
            "routing.rules[0]",
            "one target",
        ),
        ('[[routing.rules]]\nmodle = "m"\nlocal = true\n', "routing.rules[0].modle", "Extra"),
        (
            '[[routing.rules]]\nname = "a rule"\nlocal = true\n',
            "routing.rules[0].name",
            "letters, digits",
        ),
        (
            "[[routing.rules]]\nmin_input_tokens = 9\nmax_input_tokens = 1\nlocal = true\n",
            "routing.rules[0]",
            "above max_input_tokens",
        ),
        (
            '[[routing.rules]]\nname = "x"\nlocal = true\n' * 2,
            "routing.rules",
            "repeated: x",
        ),
        ('[[routing.rules]]\nbackends = ["ghost"]\n', "routing.rules[0].backends", "ghost"),
        ('[routing]\nsensitive = "local"\n', "privacy.pii", "pii is empty"),
    ],
)
def test_configuration_errors_are_clear(
    cloud: Served, own: Served, tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path / "telemetry.toml", text)
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=two_backends(cloud, own), telemetry_file=path)
    assert caught.value.key == key and reason in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_local_rule_needs_a_local_backend(cloud: Served) -> None:
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(
            backends=[cloud.backend("cloud")], routing={"rules": [{"local": True, "model": "m"}]}
        )
    assert caught.value.key == "routing.rules[0].local"
    assert "Client(routing=...)" in str(caught.value) and "local=True" in str(caught.value)


@pytest.mark.parametrize(
    ("routing", "fragment"),
    [
        ({"sensitive": "yes"}, "routing.sensitive"),
        ({"rules": [{"backends": "cloud"}]}, "routing.rules[0].backends"),
        ({"rule": []}, "routing.rule"),
        (42, "got int"),
        ({"sensitive": "local"}, "privacy.pii"),
    ],
)
def test_argument_errors_are_clear(cloud: Served, routing: Any, fragment: str) -> None:
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Client(backends=[cloud.backend("cloud")], routing=routing)
    assert fragment in str(caught.value) and "Client(routing=...)" in str(caught.value)
    assert cloud.server.connections == 0


# -- telemetry ---------------------------------------------------------------------------


def test_the_route_reaches_every_destination_and_the_content_does_not(
    cloud: Served, own: Served
) -> None:
    telemetry = {
        **SENSITIVE,
        "routing": {
            "sensitive": "local",
            "rules": [{"name": "tooling", "tools": True, "local": True}],
        },
        "posthog": {"enabled": True, "host": "http://127.0.0.1:9", "api_key": "phc_test"},
        "langfuse": {
            "enabled": True,
            "host": "http://127.0.0.1:9",
            "public_key": "pk-lf-x",
            "secret_key": "sk-lf-x",
        },
        "otlp": [
            {
                "name": "collector",
                "enabled": True,
                "endpoint": "http://127.0.0.1:9",
                "capture_content": False,
            }
        ],
    }
    with capture_telemetry() as captured:
        client = pipeclient.Client(backends=two_backends(cloud, own), telemetry=telemetry)
        client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
        client.chat.completions.create(model="m", messages=CLEAN, tools=[TOOL])
        client.chat.completions.create(model="m", messages=CLEAN)
        client.close()
    props = [event["properties"] for event in captured["posthog"]]
    assert [p.get("pipeclient_route") for p in props] == ["sensitive", "tooling", None]
    langfuse = captured.text("langfuse")
    assert langfuse.count('"langfuse.observation.metadata.route"') == 2
    assert '"sensitive"' in langfuse and '"tooling"' in langfuse
    otlp = captured.text("otlp:collector")
    assert otlp.count("pipeclient.route") == 2
    assert EMAIL not in captured.text("posthog") and EMAIL not in otlp


def test_the_record_of_an_unrouted_client_has_no_route(cloud: Served) -> None:
    with pipeclient.Client(backends=[cloud.backend("cloud")]) as client:
        assert client._routing is None
        records = listen(client)
        client.chat.completions.create(model="m", messages=placements(EMAIL)[0])
    assert records[0].route is None and cloud.received(EMAIL)


def test_preview_and_status_show_routing(cli: RunCli, tmp_path: Path) -> None:
    path = write(tmp_path / "telemetry.toml", FILE)
    env = {"PIPECLIENT_TELEMETRY_FILE": str(path)}
    preview = cli("telemetry", "preview", env=env)
    assert preview.returncode == 0, preview.stderr
    shown = json.loads(preview.stdout)["routing"]
    assert shown["sensitive"] == "local" and shown["rules"] == ["long"]
    assert shown["sample_call_route"] == "sensitive" and "(email)" in shown["note"]
    status = cli("telemetry", "status", env=env)
    assert status.returncode == 0
    assert "[routing]" in status.stdout and "routing.sensitive" in status.stdout
    assert "'local'" in status.stdout and "'long'" in status.stdout
    rows = json.loads(cli("telemetry", "status", "--json", env=env).stdout)["routing"]
    assert rows[1] == {
        "key": "routing.rules",
        "value": [{"name": "long", "min_input_tokens": 1000, "backends": ["own"]}],
        "source": f"file {path}",
    }
    plain = cli(
        "telemetry",
        "preview",
        env={
            "PIPECLIENT_TELEMETRY_FILE": str(
                write(tmp_path / "plain.toml", '[privacy]\npii = ["email"]\n')
            )
        },
    )
    assert "routing" not in json.loads(plain.stdout)
