"""The privacy engine: `[privacy] pii` detectors, the client's own secrets, the `redact=`
hook, and what each destination receives (DESIGN 5.2).

The bulk runs generated conversations through clients with every destination enabled,
recording the exact payloads with `capture_telemetry()`; one test sends real bytes through
the real SDKs to loopback servers.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import string
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
from pipeclient._cli.preview import sample_call
from pipeclient._privacy import detectors as _detectors
from pipeclient._privacy.detectors import DETECTOR_ORDER, Redactor, luhn_valid
from pipeclient._privacy.walk import map_strings
from pipeclient._telemetry.privacy import CONTENT, PrivacyStep, Record
from pipeclient._telemetry.record import CallRecord, ErrorInfo
from pipeclient.config import PrivacyConfig
from pipeclient.testing import (
    CapturedTelemetry,
    CaptureServer,
    Fault,
    MockBackend,
    MockGateway,
    capture_telemetry,
)

ALL = list(DETECTOR_ORDER)
OWN_KEY = "sk-own-backend-key-7f3a9c2e"  # the client's own backend key
OWN_HEADER = "org-header-value-5d1e"  # a backend header value: a secret too


# Request ids of the test's own, as UUIDs: a caller's UUID reaches every destination as it
# is (any other id the caller chooses is free text: pseudonymised where content may not go).
REAL_1 = "6f1f2b6e-1d1a-4f5e-9a57-0c3e5b2d7a01"
REAL_2 = "6f1f2b6e-1d1a-4f5e-9a57-0c3e5b2d7a02"
R1, R2, R3 = (f"0c5d3b1a-7e2f-4a6b-8c9d-00000000000{n}" for n in (1, 2, 3))


def content_view(step: PrivacyStep, record: Record) -> Record | None:
    """What a destination that may receive content gets of `record`."""
    return step.view(record, CONTENT)


def redact(text: str, *detectors: str, secrets: tuple[str, ...] = ()) -> str:
    return Redactor(detectors or ALL, secrets).redact(text, {})


@pytest.fixture(params=["built-in", "phonenumbers"])
def phone_rules(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of validating phone numbers: the built-in rules, and `phonenumbers`."""
    if request.param == "built-in":
        monkeypatch.setattr(_detectors, "phone_library", lambda: None)
    else:
        pytest.importorskip("phonenumbers")
    return str(request.param)


# -- what each detector finds -------------------------------------------------------------

FOUND = [
    ("email", "write to jane.doe@example.com today", "write to [REDACTED:email] today"),
    ("email", "CC: J.Smith+news@mail.example.co.uk.", "CC: [REDACTED:email]."),
    ("email", "(ops_team@corp-mail.io)", "([REDACTED:email])"),
    ("credit_card", "card 4111 1111 1111 1111 exp 12/27", "card [REDACTED:credit_card] exp 12/27"),
    ("credit_card", "pay with 5555-5555-5555-4444.", "pay with [REDACTED:credit_card]."),
    ("credit_card", "amex 3782 822463 10005", "amex [REDACTED:credit_card]"),
    ("credit_card", "visa:4242424242424242", "visa:[REDACTED:credit_card]"),
    ("credit_card", "diners 3056 930902 5904", "diners [REDACTED:credit_card]"),
    ("credit_card", "discover 6011111111111117", "discover [REDACTED:credit_card]"),
    ("phone", "call +1 415 555 0132 now", "call [REDACTED:phone] now"),
    ("phone", "US (415) 555-0199, or", "US [REDACTED:phone], or"),
    ("phone", "toll free 1-800-555-0199", "toll free [REDACTED:phone]"),
    ("phone", "office 212.555.0147", "office [REDACTED:phone]"),
    ("phone", "Paris +33 6 12 34 56 78.", "Paris [REDACTED:phone]."),
    ("phone", "London +44 (0)20 7946 0958", "London [REDACTED:phone]"),
    ("phone", "Berlin +49 30 12345678", "Berlin [REDACTED:phone]"),
    ("phone", "Tokyo +81-3-1234-5678", "Tokyo [REDACTED:phone]"),
    ("phone", "compact +14155550132", "compact [REDACTED:phone]"),
    ("ip", "host 203.0.113.42 is down", "host [REDACTED:ip] is down"),
    ("ip", "from 10.1.20.30:8443.", "from [REDACTED:ip]:8443."),
    ("ip", "v6 2001:db8:85a3::8a2e:370:7334 ok", "v6 [REDACTED:ip] ok"),
    ("ip", "link fe80::1ff:fe23:4567:890a.", "link [REDACTED:ip]."),
    ("ip", "mapped ::ffff:198.51.100.7", "mapped [REDACTED:ip]"),
    ("ip", "url http://[2001:db8::1]:8080/x", "url http://[[REDACTED:ip]]:8080/x"),
    ("ip", "HOST=192.168.1.20", "HOST=[REDACTED:ip]"),
]

SECRETS_FOUND = [
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "sk-ant-api03-Zq8Xw2Ve5Ut1Sr7Qp4On0Ml3Kj6Ih9Gf-AAAA",
    "sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "sk-lf-1b2c3d4e-5f60-7a8b-9c0d-1e2f3a4b5c6d",
    "pk-lf-1b2c3d4e-5f60-7a8b-9c0d-1e2f3a4b5c6d",
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "xapp-1-A0123456789-1234567890123-abcdef0123456789",
    "sk_live_51H8abcDEFghiJKLmnoPQRst",
    "rk_live_51H8abcDEFghiJKLmnoPQRst",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "phc_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V",
    "phx_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
]

SECRETS_IN_CONTEXT = [
    (
        "Authorization: Bearer ya29.a0AfH6SMC1x2y3z4",
        "Authorization: Bearer [REDACTED:secret]",
    ),
    ('headers={"authorization": "bearer abc123def456ghi789"}', None),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED:secret]"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [REDACTED:secret]",
    ),
    (
        '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        '"SecretAccessKey": "[REDACTED:secret]"',
    ),
    (
        "DATABASE_URL=postgres://app:s3cr3t-Pa55@db.internal:5432/app",
        "DATABASE_URL=postgres://app:[REDACTED:secret]@db.internal:5432/app",
    ),
]

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi8ZbQWZbqLPaGxNbL5Gh7y\n"
    "b0fZ0pOExqYbUhd9PZ7yq1eYN0mqkZ6o9nF3rJg3hpxLwXnq5Wc2Pz4Q==\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(("detector", "text", "expected"), FOUND)
def test_each_detector_finds_its_kind(
    detector: str, text: str, expected: str, phone_rules: str
) -> None:
    counts: dict[str, int] = {}
    assert Redactor([detector]).redact(text, counts) == expected
    assert counts == {detector: 1}
    assert redact(text) == expected  # with every detector on, nothing else fires


@pytest.mark.parametrize("key", SECRETS_FOUND)
def test_provider_keys_are_secrets(key: str) -> None:
    for text in (key, f"my key is {key}, thanks", f'{{"api_key": "{key}"}}', f"KEY={key}\n"):
        counts: dict[str, int] = {}
        cleaned = Redactor(["secret"]).redact(text, counts)
        assert key not in cleaned and counts == {"secret": 1}, text
        assert cleaned == text.replace(key, "[REDACTED:secret]")


@pytest.mark.parametrize(("text", "expected"), SECRETS_IN_CONTEXT)
def test_secrets_in_context_keep_their_context(text: str, expected: str | None) -> None:
    cleaned = redact(text, "secret")
    assert "[REDACTED:secret]" in cleaned
    if expected is not None:
        assert cleaned == expected
    assert redact(text) == cleaned  # other detectors do not touch the rest


def test_private_key_blocks_are_secrets() -> None:
    text = f"here is the key:\n{PEM}\nand the rest"
    assert redact(text, "secret") == "here is the key:\n[REDACTED:secret]\nand the rest"
    truncated = PEM.rsplit("-----END", 1)[0]  # pasted without its END line
    assert "MIIE" not in redact(f"key: {truncated}", "secret")


def test_a_dotted_version_is_not_an_ip_address() -> None:
    # A valid dotted quad is an address, unless written as a version, or all single digits.
    assert redact("connect to 10.2.3.4 now", "ip") == "connect to [REDACTED:ip] now"
    assert redact("see 1.7.12.1", "ip") == "see [REDACTED:ip]"  # could be either: redacted
    for version in (
        "connect to 1.2.3.4",
        "fixed in 1.6.0.5, not in 1.6.0.4",
        "v10.2.3.4",
        "version 10.2.3.4",
        "Version: 10.2.3.4",
        "release 40.1.0.2",
        "rev 10.2.3.4",
        "v1.2.3.4",
        "version 1.2.3.4",
        "Version: 1.2.3.4",
        "release 4.1.0.2",
        "build 10.0.0.1",
        "foo==1.2.3.4",
        "foo>=1.2.3.4",
        "pkg@1.2.3.4",
        "1.2.3.4.5",
        "10.0.19045.3803",
    ):
        assert redact(version, "ip") == version


# -- what no detector may touch -------------------------------------------------------------

ORDINARY = [
    # prose, dates, times, numbers, prices, versions, identifiers
    "The quick brown fox jumps over the lazy dog.",
    "Meeting on 2024-03-15 at 10:30, or 15/03/2024, or Mar 15, 2024 10:30:45.",
    "Timestamp 2024-03-15T10:30:00+05:30 and 2024-03-15T10:30:00Z",
    "It costs $1,299.00 (or €1.299,00), a 15% discount on 3 items.",
    "Order #100045871, invoice INV-2024-000123, ticket JIRA-4521.",
    "Population 8,336,817; pi is 3.14159; e is 2.71828; 1e+10 and -12345678.",
    "Python 3.11.7, Node v20.11.1, release 2.14.1, Windows 10.0.19045.3803.",
    "pip install requests==2.31.0 numpy>=1.26.4 'torch~=2.2.0'",
    "uuid 123e4567-e89b-12d3-a456-426614174000 and sha 9f86d081884c7d659a2feaa0c55ad015",
    "ISBN 978-3-16-148410-0, tracking 1Z999AA10123456784, ms 1700000000123",
    "The 2024 budget: 1200 500 3000, codes 404 500 503, phone ext 4412.",
    "Matrix 3x3, ratio 16:9, score 3-1, room 4.12, floor 3, from 9 to 5.",
    "Epoch ns 1710498600000000000 and ids 4000 1234 5678",
    "The bearer of good news; Bearer tokens; basic authorization rules.",
    "a task-management-system-configuration-file, risk-assessment-framework-2024",
    "github user octocat, gho and ghp are prefixes, AKIA alone, sk- alone.",
    "secret_key = settings.SECRET_KEY  # read from the environment",
    # code
    "def f(x: int) -> int:\n    return x[1::2] + y[::-1]\n",
    "std::vector<int> v; std::map<std::string, int> m; a::b::c",
    "for (int i = 0; i < 10; i++) { total += prices[i] * 1.08; }",
    "@app.route('/users/<int:id>')\ndef show(id): ...",
    "x = weights @ inputs.T + bias",
    "git clone git@github.com:octocat/hello-world.git",
    "logo@2x.png, icon@3x.webp, bundle@1.2.3.js",
    "npm i @types/node@20.11.0 lodash@4.17.21",
    "docker pull nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
    "SELECT id, email FROM users WHERE created_at > '2024-01-01' LIMIT 100;",
    "MAC 00:1A:2B:3C:4D:5E, time 12:30:45, ratio 1:2:3, beef::cafe",
    "localhost 127.0.0.1, ::1, 0.0.0.0, netmask 255.255.255.0, multicast 224.0.0.251",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "Coordinates 48.8566, 2.3522 and 40.7128,-74.0060",
    "Call +1 234 (not a number) or dial 911, 112 or 0800.",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_code_and_numbers_are_left_alone(text: str, phone_rules: str) -> None:
    counts: dict[str, int] = {}
    assert Redactor(ALL).redact(text, counts) == text
    assert counts == {}


@pytest.mark.parametrize(
    "text",
    [
        "data:x;base64, hi, write to canary.9@example.com",
        "data:image/png;base64,iVBORw0KGgo= and canary.9@example.com",
        "data:canary.9@example.com;base64,AAAA",
    ],
)
def test_only_a_whole_inline_data_url_is_skipped(text: str) -> None:
    """An inline image is not text; a string that merely starts like one is."""
    assert "canary.9@example.com" not in redact(text, "email")
    assert Redactor(["email"]).finds(text) == "email"


@given(st.binary(min_size=1, max_size=300))
def test_a_real_inline_data_url_is_left_alone(data: bytes) -> None:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert redact(url) == url and Redactor(ALL).finds(url) is None


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112") and not luhn_valid("1234567812345678")
    # Luhn alone is not enough: a number that is no card network's is left alone.
    assert luhn_valid("1234567812345670")
    assert redact("ref 1234567812345670", "credit_card") == "ref 1234567812345670"
    assert redact("card 4111111111111112", "credit_card") == "card 4111111111111112"


def test_unknown_detectors_are_refused() -> None:
    with pytest.raises(ValueError, match="known: secret, email"):
        Redactor(["passport"])


# -- the privacy step: structure, order, the hook, counts -----------------------------------

CONVERSATION: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "You help jane.doe@example.com with her bills."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "My card is 4111 1111 1111 1111, call +1 415 555 0132"},
                {"type": "image_url", "image_url": {"url": "https://example.com/bill.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "lookup",
                        "arguments": '{"email":"jane.doe@example.com","limit":3,'
                        '"filters":{"ip":"203.0.113.9","tags":["a","b"]}}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "found sk-proj-Ab3dEf6hIj9kLm2nOp5q"},
        {"role": "user", "content": "thanks"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find a customer by email",
                "parameters": {"type": "object", "properties": {"email": {"type": "string"}}},
            },
        }
    ],
}


def chat_record(**changes: Any) -> CallRecord:
    body = {"model": "m", **CONVERSATION}
    record = dataclasses.replace(
        sample_call(),
        request_body=json.dumps(body).encode(),
        input=None,
        output=[{"role": "assistant", "content": "Done, jane.doe@example.com."}],
        error=ErrorInfo("BadRequestError", 400, "invalid card 4111 1111 1111 1111"),
        outcome="error",
    )
    return dataclasses.replace(record, **changes)


def shape(value: Any) -> Any:
    """The structure of content: keys, lengths, roles, types; tool arguments parsed."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "arguments":
                out[key] = shape(json.loads(item))
            elif key in ("role", "type", "id", "tool_call_id", "name"):
                out[key] = item
            else:
                out[key] = shape(item)
        return out
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_detectors_keep_structure_roles_and_valid_tool_arguments() -> None:
    step = PrivacyStep(PrivacyConfig(pii=ALL))
    view = content_view(step, chat_record())
    assert isinstance(view, CallRecord) and view.request_body is None
    assert shape(view.input) == shape(CONVERSATION)
    messages = view.input["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
    arguments = json.loads(messages[2]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {
        "email": "[REDACTED:email]",
        "limit": 3,
        "filters": {"ip": "[REDACTED:ip]", "tags": ["a", "b"]},
    }
    assert messages[1]["content"][0]["text"] == (
        "My card is [REDACTED:credit_card], call [REDACTED:phone]"
    )
    assert messages[1]["content"][1] == CONVERSATION["messages"][1]["content"][1]
    assert messages[3]["content"] == "found [REDACTED:secret]"
    assert view.output == [{"role": "assistant", "content": "Done, [REDACTED:email]."}]
    assert view.error is not None and view.error.message == "invalid card [REDACTED:credit_card]"
    assert view.redactions == {"email": 3, "credit_card": 2, "phone": 1, "ip": 1, "secret": 1}
    assert step.counts() == dict(view.redactions)


def test_unchanged_content_is_kept_byte_for_byte() -> None:
    arguments = '{"a":1,  "b":"plain text"}'  # not re-serialised when nothing changed
    content = [{"role": "assistant", "tool_calls": [{"function": {"arguments": arguments}}]}]
    out = map_strings(content, lambda text: text.upper())
    assert out[0]["tool_calls"][0]["function"]["arguments"] == '{"a": 1, "b": "PLAIN TEXT"}'
    out = map_strings(content, lambda text: text)
    assert out[0]["tool_calls"][0]["function"]["arguments"] == arguments
    assert out[0]["role"] == "assistant"


def test_detectors_run_before_truncation() -> None:
    step = PrivacyStep(PrivacyConfig(pii=["email"], content_max_length=20))
    view = content_view(
        step, chat_record(request_body=None, input="contact: jane.doe@example.com", error=None)
    )
    assert isinstance(view, CallRecord)
    assert view.input == "contact: [REDACTED:e…[truncated]"


def test_the_clients_own_secrets_are_scrubbed_whatever_pii_says() -> None:
    secrets = [OWN_KEY, "short", OWN_HEADER, "Bearer otlp-token-9a8b7c"]
    step = PrivacyStep(PrivacyConfig(), secrets=secrets)
    view = content_view(
        step,
        chat_record(
            request_body=None,
            input=f"my key {OWN_KEY} and header {OWN_HEADER}; short stays; otlp-token-9a8b7c",
            error=ErrorInfo("AuthenticationError", 401, f"Incorrect API key {OWN_KEY}"),
        ),
    )
    assert isinstance(view, CallRecord) and view.error is not None
    assert view.input == (
        "my key [REDACTED:api_key] and header [REDACTED:api_key]; short stays; [REDACTED:api_key]"
    )
    assert view.error.message == "Incorrect API key [REDACTED:api_key]"
    assert view.redactions == {"api_key": 4}
    # Nothing on: the step leaves content as it is.
    plain = PrivacyStep(PrivacyConfig()).view(chat_record(), CONTENT)
    assert isinstance(plain, CallRecord) and plain.redactions == {}
    assert plain.input["messages"] == CONVERSATION["messages"]


def test_the_hook_runs_after_the_detectors_on_every_string() -> None:
    seen: list[str] = []

    def hook(text: str) -> str:
        seen.append(text)
        return text.replace("bills", "[REDACTED:topic]")

    step = PrivacyStep(PrivacyConfig(pii=["email"]), redact=hook)
    view = content_view(step, chat_record())
    assert isinstance(view, CallRecord)
    assert (
        view.input["messages"][0]["content"]
        == "You help [REDACTED:email] with her [REDACTED:topic]."
    )
    assert not any("jane.doe@example.com" in text for text in seen)  # detectors went first
    assert "user" not in seen and "function" not in seen  # roles and types are structure
    assert view.redactions == {"email": 3, "hook": 1}
    assert step.counts() == {"email": 3, "hook": 1}


@pytest.mark.parametrize(
    "hook",
    [
        lambda text: 1 / 0 if "card" in text else text,
        lambda text: None,
        lambda text: text.encode(),
    ],
    ids=["raises", "returns-None", "returns-bytes"],
)
def test_a_failing_hook_drops_the_content_and_is_counted(hook: Callable[[str], Any]) -> None:
    step = PrivacyStep(PrivacyConfig(pii=ALL), redact=hook)
    view = content_view(step, chat_record())
    assert isinstance(view, CallRecord)
    assert view.input is None and view.output is None and view.request_body is None
    assert view.error is not None and view.error.message is None and view.error.code == 400
    assert view.redactions == {"hook_failed": 1}
    assert step.counts() == {"hook_failed": 1}  # what the detectors found is not counted


def test_counts_are_thread_safe_and_hold_no_values() -> None:
    step = PrivacyStep(PrivacyConfig(pii=ALL), secrets=[OWN_KEY])
    record = chat_record(output=[{"role": "assistant", "content": f"key {OWN_KEY}"}])

    def work() -> None:
        for _ in range(50):
            content_view(step, record)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = step.counts()
    assert counts == {
        "secret": 200,
        "email": 400,
        "credit_card": 400,
        "phone": 200,
        "ip": 200,
        "api_key": 200,
    }
    assert all(type(value) is int for value in counts.values())


# -- through the client: every destination, generated conversations -----------------------

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"

FILLERS = [
    "Please summarise the attached report.",
    "The build 2.14.1 shipped on 2024-03-15 at 10:30.",
    "Order #100045871 costs $1,299.00 for 3 items.",
    "pip install requests==2.31.0 numpy>=1.26",
    "uuid 123e4567-e89b-12d3-a456-426614174000 is the job id",
    "call retry(n=3, backoff=0.5) in a loop",
    "version 1.2.3.4 of the tool, Python 3.11.7",
    "x = a[1::2] + b[::-1]",
    "ISBN 978-3-16-148410-0 and ms 1700000000123",
    "room 4.12 from 9 to 5, ratio 16:9, pi 3.14159",
]


def _text(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=size, max_size=size)


@st.composite
def _random_token(draw: st.DrawFn, alphabet: str, size: int) -> str:
    """A random key body, with a digit somewhere (as real keys have)."""
    body = draw(_text(alphabet, size - 1))
    at = draw(st.integers(0, size - 1))
    return body[:at] + draw(st.sampled_from(string.digits)) + body[at:]


@dataclasses.dataclass(frozen=True)
class Salt:
    kind: str  # the detector that must find it: "email", "credit_card", "secret", "api_key"
    text: str  # as written in the conversation
    values: tuple[str, ...]  # what must never reach a destination once redacted


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@st.composite
def emails(draw: st.DrawFn) -> Salt:
    local = draw(st.from_regex(r"[a-z][a-z0-9]{1,10}(\.[a-z0-9]{1,8})?", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z][a-z0-9]{1,12}", fullmatch=True))
    tld = draw(st.sampled_from(["com", "org", "net", "io", "dev", "co.uk", "de", "fr"]))
    address = f"{local}@{domain}.{tld}"
    return Salt("email", address, (address,))


_CARD_NETWORKS = [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15)]
_CARD_NETWORKS += [("6011", 16), ("3528", 16), ("36", 14), ("62", 16), ("4", 13)]


@st.composite
def card_numbers(draw: st.DrawFn) -> Salt:
    prefix, length = draw(st.sampled_from(_CARD_NETWORKS))
    partial = prefix + draw(_text(string.digits, length - len(prefix) - 1))
    digits = next(partial + d for d in string.digits if luhn_valid(partial + d))
    separator = draw(st.sampled_from(["", " ", "-"]))
    if separator and length == 16:
        written = separator.join(digits[i : i + 4] for i in range(0, 16, 4))
    elif separator and length in (14, 15):
        written = separator.join((digits[:4], digits[4:10], digits[10:]))
    else:
        written = digits
    return Salt("credit_card", written, (written, digits))


def _key(prefix: str, alphabet: str, size: int) -> st.SearchStrategy[Salt]:
    return _random_token(alphabet, size).map(lambda body: Salt("secret", prefix + body, ()))


@st.composite
def provider_keys(draw: st.DrawFn) -> Salt:
    jwt = st.builds(
        lambda sub, signature: (
            _b64url(b'{"alg":"HS256","typ":"JWT"}')
            + "."
            + _b64url(json.dumps({"sub": sub}).encode())
            + "."
            + signature
        ),
        st.integers(10**6, 10**12).map(str),
        _random_token(ALNUM + "_-", 43),
    ).map(lambda token: Salt("secret", token, ()))
    aws_secret = _text(ALNUM + "/+", 40).map(
        lambda value: Salt("secret", f"aws_secret_access_key={value}", (value,))
    )
    bearer = _random_token(ALNUM + "._-", 32).map(
        lambda token: Salt("secret", f"Authorization: Bearer {token}", (token,))
    )
    pem = st.lists(_text(ALNUM + "+/", 64), min_size=2, max_size=4).map(
        lambda lines: Salt(
            "secret",
            "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----",
            tuple(lines),
        )
    )
    salt = draw(
        st.one_of(
            _key("sk-proj-", ALNUM + "_-", 48),
            _key("sk-ant-api03-", ALNUM + "_-", 80),
            _key("sk-lf-", HEX + "-", 36),
            _key("pk-lf-", HEX + "-", 36),
            _key("AKIA", string.ascii_uppercase + "234567", 16),
            _key("ghp_", ALNUM, 36),
            _key("github_pat_", ALNUM + "_", 82),
            _key("xoxb-", ALNUM + "-", 50),
            _key("sk_live_", ALNUM, 24),
            _key("rk_live_", ALNUM, 24),
            _key("AIza", ALNUM + "_-", 35),
            _key("phc_", ALNUM, 43),
            jwt,
            aws_secret,
            bearer,
            pem,
        )
    )
    return salt if salt.values else Salt(salt.kind, salt.text, (salt.text,))


ip_addresses = (
    st.tuples(
        st.integers(11, 223).filter(lambda first: first != 127),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(1, 254),
    )
    .map(lambda parts: ".".join(map(str, parts)))
    .map(lambda ip: Salt("ip", ip, (ip,)))
)

SALTS = st.one_of(
    ip_addresses,
    emails(),
    card_numbers(),
    provider_keys(),
    st.just(Salt("api_key", OWN_KEY, (OWN_KEY,))),
)


@dataclasses.dataclass
class Example:
    messages: list[dict[str, Any]]
    salts: list[Salt]
    canary: str
    fillers: list[str]
    tools: bool
    stream: bool
    error: str | None  # a provider error message that echoes the prompt


@st.composite
def examples(draw: st.DrawFn) -> Example:
    canary = "CANARY-" + draw(_text(HEX, 12))
    salts: list[Salt] = draw(st.lists(SALTS, min_size=1, max_size=4))
    fillers: list[str] = []

    def text(*salted: Salt) -> str:
        filler = draw(st.sampled_from(FILLERS))
        fillers.append(filler)
        return " ".join([filler, canary, *(salt.text for salt in salted)]) + " end"

    def some_salts() -> list[Salt]:
        return draw(st.lists(st.sampled_from(salts), max_size=2))

    call_id = "call_" + draw(_text(HEX, 8))
    arguments = json.dumps({"query": text(*some_salts()), "limit": 3, "tags": [canary]})
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": text(*some_salts())},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text(*some_salts())},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "search", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": text(*some_salts())},
        # The last user message holds every salt: the mock echoes it in its answer.
        {"role": "user", "content": text(*salts)},
    ]
    error = draw(st.none() | st.sampled_from(salts).map(lambda s: f"Invalid prompt: {s.text}"))
    return Example(
        messages, salts, canary, fillers, draw(st.booleans()), draw(st.booleans()), error
    )


def _echo(body: dict[str, Any]) -> str:
    return "You said: " + str(body["messages"][-1]["content"])


def _variants(value: str) -> set[str]:
    """`value` as it may appear in a payload: raw, JSON-escaped, escaped twice."""
    once = json.dumps(value)[1:-1]
    return {value, once, json.dumps(once)[1:-1]}


@dataclasses.dataclass
class Configuration:
    name: str
    client: pipeclient.Client
    mock: MockBackend
    captured: CapturedTelemetry
    allowed: set[str]  # destinations that may receive content
    forbidden: set[str]  # destinations that may not
    detectors: bool  # whether [privacy] pii has every detector on


def _telemetry(detectors: bool, redact: bool, quiet_otlp: bool, hosts: dict[str, str]) -> Any:
    otlp = [{"name": "collector", "enabled": True, "endpoint": hosts["otlp"]}]
    if quiet_otlp:
        otlp.append(
            {"name": "quiet", "enabled": True, "endpoint": hosts["quiet"], "capture_content": False}
        )
    return {
        "posthog": {
            "enabled": True,
            "host": hosts["posthog"],
            "api_key": "phc_test",
            "redact": redact,
        },
        "langfuse": {
            "enabled": True,
            "host": hosts["langfuse"],
            "public_key": "pk-lf-test",
            "secret_key": "sk-lf-telemetry-secret-4e1d",
        },
        "otlp": otlp,
        "privacy": {"pii": ALL if detectors else []},
        "audit": {"enabled": True, "path": "audit.jsonl"},
    }


_NOWHERE = {name: "http://127.0.0.1:9" for name in ("posthog", "langfuse", "otlp", "quiet")}


def _configuration(name: str) -> Configuration:
    if name == "detectors":  # the gateway as backend, PostHog with content, a quiet OTLP
        mock: MockBackend = MockGateway(api_key=OWN_KEY, reply=_echo)
        telemetry = _telemetry(True, redact=False, quiet_otlp=True, hosts=_NOWHERE)
        allowed = {"posthog", "langfuse", "otlp:collector"}
        forbidden = {"otlp:quiet", "gateway", "audit"}
    else:  # no detectors, PostHog redacting
        mock = MockBackend(api_key=OWN_KEY, reply=_echo)
        telemetry = _telemetry(False, redact=True, quiet_otlp=False, hosts=_NOWHERE)
        allowed, forbidden = {"langfuse", "otlp:collector"}, {"posthog", "audit"}
    with capture_telemetry() as captured:
        client = pipeclient.Client(
            backends=[mock.backend(headers={"OpenAI-Organization": OWN_HEADER})],
            max_retries=0,
            telemetry=telemetry,
        )
    return Configuration(name, client, mock, captured, allowed, forbidden, name == "detectors")


@pytest.fixture(scope="module")
def configurations() -> Iterator[dict[str, Configuration]]:
    made: dict[str, Configuration] = {}
    yield made
    for configuration in made.values():
        configuration.client.close()


def run(client: pipeclient.Client, mock: MockBackend, example: Example, request_id: str) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "search", "description": "search the notes", "parameters": {}},
        }
    ]
    options: dict[str, Any] = {"tools": tools} if example.tools else {}
    if example.error is not None:
        mock.push(Fault(status=400, body=json.dumps({"error": {"message": example.error}})))
        with pytest.raises(pipeclient.BadRequestError):
            client.chat.completions.create(
                model="m", messages=example.messages, request_id=request_id, **options
            )
    elif example.stream:
        stream = client.chat.completions.create(
            model="m", messages=example.messages, request_id=request_id, stream=True, **options
        )
        for _ in stream:
            pass
    else:
        client.chat.completions.create(
            model="m", messages=example.messages, request_id=request_id, **options
        )


def check_destination(
    destination: str, text: str, example: Example, *, allowed: bool, detectors: bool
) -> None:
    """What DESIGN 5.2 allows `destination` to have received of `example`."""
    for salt in example.salts:
        if allowed and not detectors and salt.kind != "api_key":  # shown as written
            assert any(variant in text for variant in _variants(salt.text)), (destination, salt)
            continue
        for value in salt.values:
            assert not any(variant in text for variant in _variants(value)), (destination, salt)
    assert OWN_HEADER not in text and "sk-lf-telemetry-secret-4e1d" not in text
    if not allowed:
        assert example.canary not in text, destination
        assert "[REDACTED:" not in text, destination
        return
    # Content may go there: it went (capture works), ordinary text untouched.
    assert example.canary in text, destination
    for filler in example.fillers:
        assert any(variant in text for variant in _variants(filler)), (destination, filler)
    for kind in {salt.kind for salt in example.salts}:
        if detectors or kind == "api_key":
            assert f"[REDACTED:{kind}]" in text, (destination, kind)


def _tool_arguments(payload: Any) -> Iterator[str]:
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "arguments" and isinstance(value, str):
                yield value
            else:
                yield from _tool_arguments(value)
    elif isinstance(payload, list):
        for item in payload:
            yield from _tool_arguments(item)


@pytest.mark.parametrize("name", ["detectors", "no-detectors"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=examples())
def test_each_destination_receives_what_design_allows(
    name: str, example: Example, configurations: dict[str, Configuration]
) -> None:
    if name not in configurations:
        configurations[name] = _configuration(name)
    config = configurations[name]
    request_id = str(uuid.uuid4())
    run(config.client, config.mock, example, request_id)
    for destination in config.allowed | config.forbidden:
        payloads = [
            p for p in config.captured[destination] if request_id in json.dumps(p, default=str)
        ]
        assert payloads, destination  # every destination got this call
        text = json.dumps(payloads, ensure_ascii=False, default=str)
        allowed = destination in config.allowed
        check_destination(destination, text, example, allowed=allowed, detectors=config.detectors)
        if allowed:
            for arguments in _tool_arguments(payloads):
                json.loads(arguments)  # tool arguments are still JSON
    counts = config.client.privacy_counts()
    assert set(counts) <= {*ALL, "api_key", "hook", "hook_failed"}
    assert not any(v in json.dumps(counts) for s in example.salts for v in s.values)


# -- the same over real sockets: the real SDKs' bytes --------------------------------------


def test_real_destinations_receive_redacted_content_only_where_allowed(tmp_path: Path) -> None:
    servers = {name: CaptureServer() for name in ("posthog", "langfuse", "otlp", "quiet")}
    gateway = MockGateway(api_key=OWN_KEY, reply=_echo)
    salts = [
        Salt("email", "maria.rossi@example.org", ("maria.rossi@example.org",)),
        Salt("credit_card", "4539 1488 0343 6467", ("4539 1488 0343 6467", "4539148803436467")),
        Salt("secret", "sk-proj-4fJk29XbQmW8zR1tLpN6vC3yH7eD0aGs", ("sk-proj-4fJk29XbQmW8zR1",)),
        Salt("api_key", OWN_KEY, (OWN_KEY,)),
    ]
    canary = "CANARY-0a1b2c3d4e5f"
    text = f"{FILLERS[1]} {canary} " + " ".join(salt.text for salt in salts) + " end"
    example = Example(
        messages=[{"role": "user", "content": text}],
        salts=salts,
        canary=canary,
        fillers=[FILLERS[1]],
        tools=False,
        stream=False,
        error=None,
    )
    try:
        with gateway.serve() as served:
            hosts = {name: server.url for name, server in servers.items()}
            telemetry = _telemetry(True, redact=False, quiet_otlp=True, hosts=hosts)
            telemetry["audit"]["path"] = str(tmp_path / "audit.jsonl")
            client = pipeclient.Client(backends=[served.backend()], telemetry=telemetry)
            run(client, gateway, example, REAL_1)
            with pytest.raises(pipeclient.BadRequestError):
                gateway.push(Fault(status=400, body=json.dumps({"error": {"message": text}})))
                client.chat.completions.create(
                    model="m", messages=example.messages, request_id=REAL_2
                )
            report = client.close()
            assert report is not None and report.complete, report
            received = {
                name: server.all_bytes().decode(errors="replace")
                for name, server in servers.items()
            }
            received["gateway"] = "\n".join(r.body.decode() for r in gateway.telemetry_requests)
            received["audit"] = (tmp_path / "audit.jsonl").read_text()
        for name, data in received.items():
            assert REAL_1 in data and REAL_2 in data, name
            allowed = name in ("posthog", "langfuse", "otlp")
            check_destination(name, data, example, allowed=allowed, detectors=True)
        # real-1: the input and the answer echoing it; real-2: the input and the error text
        assert client.privacy_counts()["credit_card"] == 4
    finally:
        for server in servers.values():
            server.close()


def test_a_failing_hook_sends_metadata_only_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock = MockBackend(api_key=OWN_KEY)
    telemetry = _telemetry(False, redact=False, quiet_otlp=False, hosts=_NOWHERE)

    def hook(text: str) -> str:
        if "boom" in text:
            raise ValueError(f"cannot handle {text}")  # the message quotes content
        return text.replace("ACME-", "[REDACTED:customer]-")

    with capture_telemetry() as captured:
        client = pipeclient.Client(backends=[mock.backend()], telemetry=telemetry, redact=hook)
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "boom CANARY-77 ACME-1"}],
            request_id=R1,
        )
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "fine ACME-2"}], request_id=R2
        )
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "boom again"}], request_id=R3
        )
    for destination in ("posthog", "langfuse", "otlp:collector"):
        text = captured.text(destination)
        assert R1 in text and "CANARY-77" not in text and "ACME-1" not in text, destination
        assert "[REDACTED:customer]-2" in text and "ACME-2" not in text, destination
        assert R3 in text and "boom" not in text, destination
    # r2: the input, the output echoing it (the mock's answer), each changed once.
    assert client.privacy_counts() == {"hook_failed": 2, "hook": 2}
    # Said once, by class name: the exception's message quotes the content.
    assert caplog.text.count("the redact= hook failed (ValueError)") == 1
    assert "CANARY-77" not in caplog.text and "boom" not in caplog.text
    client.close()


PATHOLOGICAL = {
    "long local part": "a" * 20_000 + "@",
    "many dots": "a@" + "a." * 10_000,
    "plus and groups": "+1 " + "1 " * 10_000,
    "digits": "1" * 50_000,
    "grouped digits": "1234 " * 10_000,
    "dotted": "1." * 20_000,
    "colons": ":" * 20_000,
    "hex and colons": "ab:" * 10_000 + "::",
    "token without digit": "sk-" + "a" * 100_000,
    "key blocks without end": "-----BEGIN PRIVATE KEY-----." * 2_000,
    "bearer": "Bearer " * 10_000,
    "credentials in a url": "://" + "a:" * 10_000 + "@",
}


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
@pytest.mark.timeout(30)
def test_no_input_makes_the_detectors_slow(text: str) -> None:
    # Linear: about 0.1 s at worst here; a quadratic or exponential scan would run for
    # minutes and hit the timeout above (timings themselves live in benchmarks/).
    Redactor(ALL, [OWN_KEY]).redact(text, {})


def test_redact_must_be_callable() -> None:
    with pytest.raises(pipeclient.ConfigError, match="redact"):
        pipeclient.Client(backends=[MockBackend().backend()], redact="email")
    assert pipeclient.Client(backends=[MockBackend().backend()]).privacy_counts() == {}


def test_the_fast_copy_of_a_record_is_dataclasses_replace() -> None:
    """The privacy step's copies (`_telemetry.copies.replace`): the same record as
    `dataclasses.replace`, for every field of every record class, and its TypeError."""
    import dataclasses

    from pipeclient._cli.preview import sample_call
    from pipeclient._telemetry.copies import replace
    from pipeclient._telemetry.record import CallRecord, ErrorInfo, TraceRecord

    call = sample_call()
    trace = TraceRecord(
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, "t", 1.0, 2.0, "ok"
    )
    for record in (call, trace, ErrorInfo("RateLimitError", 429, "slow")):
        for field in dataclasses.fields(record):  # type: ignore[arg-type]
            assert field.init and not hasattr(type(record), "__post_init__")
            changed = {field.name: None}
            assert replace(record, **changed) == dataclasses.replace(record, **changed)  # type: ignore[type-var]
            assert replace(record, **changed) is not record
        assert replace(record) == record
        with pytest.raises(TypeError):
            replace(record, not_a_field=1)
    assert isinstance(replace(call, model="m"), CallRecord)
