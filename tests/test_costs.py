"""Cost per call: priced on the worker from `[pricing]`, arriving at each stream under its
own names (real SDKs, loopback capture servers); unknown models get no cost, counted."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import pipeclient
from pipeclient._client.answers import facts_of
from pipeclient.testing import MockBackend, capture_telemetry
from pipeclient.types import ChatCompletion

from .test_telemetry_e2e import Destinations, _attributes, _lf_attributes

# Two words in, the mock's usage: prompt_tokens 2 ("hello there"), completion = its answer
HI = [{"role": "user", "content": "hello there"}]
PRICES = {"models": {"priced-model": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}}}


@pytest.fixture
def destinations() -> Iterator[Destinations]:
    found = Destinations()
    yield found
    found.close()


def test_each_stream_gets_the_calls_cost(destinations: Destinations) -> None:
    telemetry = {**destinations.telemetry(redact=False), "pricing": PRICES}
    with pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry) as client:
        answer = client.chat.completions.create(model="priced-model", messages=HI)
        report = client.flush()
    assert answer.usage is not None
    inputs, outputs = answer.usage.prompt_tokens, answer.usage.completion_tokens
    want_in, want_out = inputs * 2.5 / 1e6, outputs * 10.0 / 1e6
    assert report.unpriced == 0

    (event,) = destinations.posthog_events()
    props = event["properties"]
    assert props["$ai_input_cost_usd"] == pytest.approx(want_in)
    assert props["$ai_output_cost_usd"] == pytest.approx(want_out)
    assert props["$ai_total_cost_usd"] == pytest.approx(want_in + want_out)

    (span,) = destinations.langfuse_spans()
    cost = json.loads(_lf_attributes(span)["langfuse.observation.cost_details"])
    assert cost == pytest.approx(
        {"input": want_in, "output": want_out, "total": want_in + want_out}
    )

    (otlp,) = destinations.otlp_spans()
    attributes = _attributes(otlp)
    assert attributes["pipeclient.cost.input_usd"] == pytest.approx(want_in)
    assert attributes["pipeclient.cost.output_usd"] == pytest.approx(want_out)
    assert attributes["pipeclient.cost.total_usd"] == pytest.approx(want_in + want_out)


def test_an_unknown_model_has_no_cost_and_is_counted(destinations: Destinations) -> None:
    telemetry = {
        **destinations.telemetry(redact=False),
        "pricing": {**PRICES, "table": "none"},
    }
    with pipeclient.Client(backends=[MockBackend().backend()], telemetry=telemetry) as client:
        client.chat.completions.create(model="nobody-knows-me", messages=HI)
        report = client.flush()
    assert report.unpriced == 1
    (event,) = destinations.posthog_events()
    assert not any("cost" in key for key in event["properties"])
    (otlp,) = destinations.otlp_spans()
    assert not any(key.startswith("pipeclient.cost") for key in _attributes(otlp))


def test_a_local_backends_calls_are_priced_only_by_an_override(
    destinations: Destinations,
) -> None:
    """Your own server bills no one per token: the table's price of an API model of the
    same name would be a wrong number. An override of yours still prices it."""
    telemetry = {**destinations.telemetry(redact=False), "pricing": PRICES}
    mock = MockBackend()
    with pipeclient.Client(
        backends=[mock.backend("own", local=True)], telemetry=telemetry
    ) as client:
        client.chat.completions.create(model="gpt-4o", messages=HI)  # in the price table
        client.chat.completions.create(model="priced-model", messages=HI)  # overridden
        report = client.flush()
    assert report.unpriced == 1
    table_named, overridden = destinations.posthog_events()
    assert not any("cost" in key for key in table_named["properties"])
    assert overridden["properties"]["$ai_total_cost_usd"] > 0
    with pipeclient.Client(backends=[mock.backend("api")], telemetry=telemetry) as client:
        client.chat.completions.create(model="gpt-4o", messages=HI)  # an API's: priced
        assert client.flush().unpriced == 0


def test_cached_tokens_are_read_from_the_usage_details() -> None:
    answer = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 1000,
                "completion_tokens": 10,
                "total_tokens": 1010,
                "prompt_tokens_details": {"cached_tokens": 800},
            },
        }
    )
    facts = facts_of(answer, capture_content=False)
    assert (facts["input_tokens"], facts["cached_tokens"]) == (1000, 800)


class _Transcriber(BaseHTTPRequestHandler):
    """A transcription endpoint whose usage reports audio input tokens, as OpenAI's does."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = json.dumps(
            {
                "text": "hello",
                "usage": {
                    "type": "tokens",
                    "input_tokens": 1000,
                    "input_token_details": {"text_tokens": 200, "audio_tokens": 800},
                    "output_tokens": 10,
                    "total_tokens": 1010,
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(sys.version_info < (3, 11), reason="genai-prices needs Python 3.11")
def test_audio_tokens_are_priced_at_the_audio_rate() -> None:
    from genai_prices import Usage, calc_price

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Transcriber)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        backend = pipeclient.Backend(
            name="api", base_url=f"http://127.0.0.1:{httpd.server_port}/v1", api_key="sk"
        )
        with capture_telemetry() as captured:
            with pipeclient.Client(
                backends=[backend], telemetry={"posthog": {"enabled": True, "api_key": "phc"}}
            ) as client:
                client.audio.transcriptions.create(
                    file=("a.wav", b"RIFF"), model="gpt-4o-transcribe"
                )
    finally:
        httpd.shutdown()
        httpd.server_close()
    (event,) = captured["posthog"]
    table = calc_price(
        Usage(input_tokens=1000, input_audio_tokens=800, output_tokens=10), "gpt-4o-transcribe"
    )
    text_only = calc_price(Usage(input_tokens=1000, output_tokens=10), "gpt-4o-transcribe")
    assert table.total_price != text_only.total_price  # the audio rate differs
    assert event["properties"]["$ai_total_cost_usd"] == pytest.approx(float(table.total_price))
    assert event["properties"]["$ai_input_cost_usd"] == pytest.approx(float(table.input_price))


@pytest.mark.parametrize("price", [-1, float("inf"), float("nan")])
def test_a_bad_price_names_the_key(price: float) -> None:
    bad = {"pricing": {"models": {"m": {"input_per_mtok": price, "output_per_mtok": 1}}}}
    with pytest.raises(pipeclient.ConfigError, match="input_per_mtok"):
        pipeclient.Client(backends=[MockBackend().backend()], telemetry=bad)
