"""Edge cases a demanding user hits: odd servers, odd arguments, threads, async drops."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import httpx
import pytest

import pipeclient
from pipeclient import Backend, ConfigError, RetryPolicy
from pipeclient.testing import Fault, MockBackend

from .conftest import listen, wait_until

MESSAGES = [{"role": "user", "content": "hello there"}]
FAST = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)
SSE = "text/event-stream"


def _client(mock: MockBackend, **options: Any) -> pipeclient.Client:
    return pipeclient.Client(backends=[mock.backend()], **options)


# -- servers that answer oddly ---------------------------------------------------------


def test_undecodable_body_is_a_validation_error_not_a_bare_httpx_error() -> None:
    mock = MockBackend()
    mock.push(Fault(status=200, body="not gzip", headers={"content-encoding": "gzip"}))
    with _client(mock) as client, pytest.raises(pipeclient.APIResponseValidationError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_json_answer_to_a_stream_request() -> None:
    mock = MockBackend()
    mock.push(Fault(status=200, body='{"error": {"message": "streaming unsupported"}}'))
    with _client(mock) as client, pytest.raises(pipeclient.APIResponseValidationError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert "event stream" in str(caught.value)


def test_empty_stream() -> None:
    mock = MockBackend()
    mock.push(Fault(status=200, body="", content_type=SSE))
    with _client(mock) as client:
        records = listen(client)
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(pipeclient.APIResponseValidationError, match="empty stream"):
            list(stream)
    assert records[0].outcome == "error"


def test_stream_ending_without_done_or_finish_reason_is_interrupted() -> None:
    chunk = (
        '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}'
    )
    mock = MockBackend()
    mock.push(Fault(status=200, body=f"data: {chunk}\n\n", content_type=SSE))
    with _client(mock) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(pipeclient.StreamInterruptedError, match="before \\[DONE\\]"):
            list(stream)


def test_stream_without_done_but_finished_is_accepted() -> None:
    chunk = (
        '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"all"},"finish_reason":"stop"}]}'
    )
    mock = MockBackend()
    mock.push(Fault(status=200, body=f"data: {chunk}\n\n", content_type=SSE))
    with _client(mock) as client:
        chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["all"]


def test_error_event_mid_stream() -> None:
    mock = MockBackend()
    body = 'data: {"error": {"message": "overloaded"}}\n\n'
    mock.push(Fault(status=200, body=body, content_type=SSE))
    with _client(mock) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with pytest.raises(pipeclient.APIError, match="overloaded") as caught:
            list(stream)
    assert caught.value.__context__ is None


def test_stream_cut_before_the_first_byte_fails_over() -> None:
    cut, healthy = MockBackend(), MockBackend()
    cut.push(Fault(disconnect_after_chunks=0))
    with (
        cut.serve() as a,
        healthy.serve() as b,
        pipeclient.Client(
            backends=[a.backend("a"), b.backend("b", weight=0)], retry_policy=FAST
        ) as client,
    ):
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "Mock reply to: hello there"
    assert cut.requests[0].headers["x-request-id"] == healthy.requests[0].headers["x-request-id"]


def test_redirect_is_explained() -> None:
    mock = MockBackend()
    mock.push(Fault(status=301, body="", headers={"location": "https://new.example/v1?x=1"}))
    with _client(mock) as client, pytest.raises(pipeclient.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert "redirect to https://new.example/v1; set base_url" in str(caught.value)


def test_lenient_parsing_of_nulls() -> None:
    mock = MockBackend()
    mock.push(Fault(status=200, body='{"data": [{"embedding": [0.5], "index": 0}], "usage": null}'))
    mock.push(
        Fault(
            status=200,
            body='{"choices": [{"message": {"content": "x"}, '
            '"finish_reason": null}], "usage": null}',
        )
    )
    with _client(mock) as client:
        assert client.embeddings.create(model="e", input="x").usage.prompt_tokens == 0
        assert client.chat.completions.create(model="m", messages=MESSAGES).usage is None


def test_stream_with_several_choices() -> None:
    mock = MockBackend()
    with _client(mock) as client:
        chunks = list(
            client.chat.completions.create(model="m", messages=MESSAGES, stream=True, n=2)
        )
    indexes = {choice.index for chunk in chunks for choice in chunk.choices}
    assert indexes == {0, 1}


# -- retries -----------------------------------------------------------------------------


def test_a_backend_waiting_on_retry_after_does_not_hold_up_the_others() -> None:
    limited, flaky = MockBackend(), MockBackend()
    limited.push(Fault(status=429, retry_after=30))
    flaky.push(Fault(status=503))
    backends = [limited.backend("limited", weight=1000), flaky.backend("flaky", weight=0.001)]
    with pipeclient.Client(backends=backends, retry_policy=FAST) as client:
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
        # The next call avoids the rate-limited backend while its Retry-After runs.
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert len(limited.requests) == 1 and len(flaky.requests) == 3


def test_health_counts_calls_not_attempts() -> None:
    flaky, steady = MockBackend(), MockBackend()
    flaky.push(Fault(status=500), times=3)
    policy = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.001, cooldown_after=2)
    backends = [flaky.backend("flaky"), steady.backend("steady", weight=0)]
    with pipeclient.Client(backends=backends, retry_policy=policy) as client:
        client.chat.completions.create(model="m", messages=MESSAGES)
        assert not client._router.cooling_down(client.backends[0])


def test_cooldown_ends_and_success_restores_health() -> None:
    flaky, steady = MockBackend(), MockBackend()
    flaky.push(Fault(status=503), times=2)
    policy = RetryPolicy(max_retries=0, cooldown_after=2, cooldown=0.05)
    backends = [flaky.backend("flaky", weight=1000), steady.backend("steady", weight=0.001)]
    with pipeclient.Client(backends=backends, retry_policy=policy) as client:
        for _ in range(2):
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert client._router.cooling_down(client.backends[0])
        wait_until(lambda: not client._router.cooling_down(client.backends[0]), 5, "the cooldown")
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(flaky.requests) == 3


@pytest.mark.parametrize(
    "options",
    [
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": 1, "retry_policy": RetryPolicy()},
    ],
)
def test_bad_retry_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        pipeclient.Client(backends=[MockBackend().backend()], **options)


@pytest.mark.parametrize("field", ["max_retries", "initial_delay", "cooldown"])
def test_bad_retry_policy(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**{field: -1})


# -- arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": MESSAGES, "metadata": {1, 2}}, None),
        ({"messages": MESSAGES, "timeout": "10"}, "timeout"),
        ({"messages": MESSAGES, "timeout": -1}, "timeout"),
        ({"messages": MESSAGES, "extra_body": {"stream": True}}, "extra_body"),
        ({"messages": MESSAGES, "extra_headers": {"x-note": "caf\u00e9"}}, "extra_headers"),
        ({"messages": MESSAGES, "extra_headers": {"x-note": "a\r\nb"}}, "extra_headers"),
        (
            {"messages": MESSAGES, "request_id": "a", "extra_headers": {"X-Request-Id": "b"}},
            "extra_headers",
        ),
    ],
)
def test_bad_call_arguments_are_config_errors(kwargs: dict[str, Any], key: str | None) -> None:
    mock = MockBackend()
    with _client(mock) as client, pytest.raises(ConfigError) as caught:
        client.chat.completions.create(model="m", **kwargs)
    if key:
        assert key in str(caught.value)
    assert mock.requests == []


def test_messages_as_a_generator() -> None:
    mock = MockBackend()
    with _client(mock) as client:
        response = client.chat.completions.create(model="m", messages=(m for m in MESSAGES))
    assert response.choices and mock.requests[0].json()["messages"] == MESSAGES


def test_timeout_none_and_httpx_timeout() -> None:
    mock = MockBackend()
    with _client(mock, timeout=None) as client:
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
        assert client.chat.completions.create(
            model="m", messages=MESSAGES, timeout=httpx.Timeout(5.0)
        ).choices


def test_headers_merge_case_insensitively() -> None:
    mock = MockBackend()
    backend = mock.backend(headers={"x-team": "ml"})
    with pipeclient.Client(backends=[backend], default_headers={"X-Team": "default"}) as client:
        response = client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-request-id": "from-header"}
        )
    assert response.request_id == "from-header"
    raw = mock.requests[0]
    assert raw.headers["x-request-id"] == "from-header"
    assert raw.headers["x-team"] == "default"
    assert raw.headers["content-type"] == "application/json"


def test_one_authorization_header_on_the_wire() -> None:
    mock = MockBackend()
    with (
        mock.serve() as server,
        pipeclient.Client(
            backends=[server.backend(headers={"authorization": "Bearer override"})]
        ) as client,
    ):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert mock.requests[0].headers["authorization"] == "Bearer override"


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example/v1?key=sk-secret-in-url",
        "https://x.example/v1#frag",
        "https://x.example:99999/v1",
        "https://x .example/v1",
    ],
)
def test_base_urls_that_cannot_take_a_path(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Backend(name="b", base_url=url, api_key="k")
    assert "sk-secret-in-url" not in str(caught.value)


def test_api_key_whitespace_is_stripped_and_odd_characters_refused() -> None:
    backend = Backend(name="b", base_url="https://x.example", api_key="sk-from-a-file\n")
    assert backend.api_key.get_secret_value() == "sk-from-a-file"
    with pytest.raises(ConfigError, match="non-ASCII") as caught:
        Backend(name="b", base_url="https://x.example", api_key="sk-abc\u00a0def")
    assert "sk-abc" not in str(caught.value) and caught.value.__context__ is None


def test_backend_is_hashable_and_dumps_no_headers() -> None:
    backend = Backend(
        name="b",
        base_url="https://x.example",
        api_key="k",
        headers={"api-key": "azure-secret-value"},
    )
    assert backend in {backend}
    assert "azure-secret-value" not in backend.model_dump_json()
    assert "azure-secret-value" not in repr(backend)


def test_header_secrets_are_scrubbed_from_provider_text() -> None:
    mock = MockBackend()
    mock.push(Fault(status=401, body='{"error": {"message": "bad key azure-secret-value"}}'))
    backend = mock.backend(headers={"api-key": "azure-secret-value"})
    with pipeclient.Client(backends=[backend]) as client:
        with pytest.raises(pipeclient.AuthenticationError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert "azure-secret-value" not in str(caught.value)
    assert "azure-secret-value" not in str(caught.value.body)


def test_gateway_key_never_goes_to_another_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", "https://gateway.example/v1")
    monkeypatch.setenv("PIPECLIENT_GATEWAY_API_KEY", "gw-secret")
    with pytest.raises(ConfigError, match="no API key"):
        pipeclient.Client(base_url="https://other.example/v1")


def test_api_key_argument_uses_the_base_url_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_BASE_URL", "http://127.0.0.1:8000/v1")
    client = pipeclient.Client(api_key="k")
    assert client.backends[0].base_url == "http://127.0.0.1:8000/v1"


def test_malformed_gateway_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", "gateway.example/v1")
    with pytest.raises(ConfigError, match="PIPECLIENT_GATEWAY_URL"):
        pipeclient.Client(backends=[MockBackend().backend()])


def test_gateway_detection_by_kind_or_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", "https://Gateway.Example/v1")
    plain = Backend(name="plain", base_url="https://gateway.example:8443/other", api_key="k")
    other = Backend(name="other", base_url="https://api.example/v1", api_key="k")
    kind = Backend(name="kind", base_url="https://anything.example/v1", api_key="k", kind="gateway")
    client = pipeclient.Client(backends=[plain, other, kind])
    assert [client.is_gateway(b) for b in client.backends] == [True, False, True]


def test_recorded_parameters_hold_no_text() -> None:
    mock = MockBackend()
    canary = "CANARY-7f3a9"
    with _client(mock) as client:
        records = listen(client)
        client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            temperature=0.3,
            stop=[canary],
            response_format={"type": "json_schema", "json_schema": {"name": canary}},
            tool_choice={"type": "function", "function": {"name": canary}},
            tools=[{"type": "function", "function": {"name": canary}}],
        )
    parameters = records[0].parameters
    assert parameters == {
        "temperature": 0.3,
        "response_format": "json_schema",
        "tool_choice": "function",
    }
    assert records[0].input is None and records[0].output is None


# -- threads and async -----------------------------------------------------------------


def test_many_threads_share_one_client() -> None:
    mock = MockBackend()
    with mock.serve() as server:
        client = pipeclient.Client(backends=[server.backend()])
        records = listen(client)
        barrier = threading.Barrier(16)
        errors: list[BaseException] = []

        def work() -> None:
            barrier.wait()
            try:
                for _ in range(5):
                    client.chat.completions.create(model="m", messages=MESSAGES)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and len(client._http) == 1
        client.close()
    assert len(records) == 80 and len({r.request_id for r in records}) == 80


def test_async_stream_dropped_unread_releases_its_connection() -> None:
    mock = MockBackend()

    async def run() -> tuple[bool, int]:
        async with pipeclient.AsyncClient(backends=[mock.backend()]) as client:
            records = listen(client)
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            response = stream.response
            del stream
            gc.collect()
            # The finaliser schedules the close on this loop: wait for that task.
            pending = asyncio.all_tasks() - {asyncio.current_task()}
            await asyncio.wait_for(asyncio.gather(*pending), timeout=5)
            return response.is_closed, len(records)

    closed, count = asyncio.run(run())
    assert closed and count == 1


def test_async_cancellation_ends_the_record() -> None:
    async def run() -> list[Any]:
        arrived = asyncio.Event()

        def reply(body: dict[str, Any]) -> str:
            arrived.set()  # the request reached the backend, which now waits out the delay
            return "late"

        mock = MockBackend(reply=reply)
        mock.push(Fault(delay=5.0))
        async with pipeclient.AsyncClient(backends=[mock.backend()]) as client:
            records = listen(client)
            task = asyncio.create_task(client.chat.completions.create(model="m", messages=MESSAGES))
            await asyncio.wait_for(arrived.wait(), timeout=5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return records

    (record,) = asyncio.run(run())
    assert record.outcome == "error" and record.error is not None
    assert record.error.type == "CancelledError"


def test_async_early_break_over_loopback() -> None:
    # chunk_delay: the stream is still being sent when the loop leaves it
    mock = MockBackend(reply=" ".join(["w"] * 100), chunk_delay=0.005)

    async def run() -> list[Any]:
        with mock.serve() as server:
            async with pipeclient.AsyncClient(backends=[server.backend()]) as client:
                records = listen(client)
                stream = await client.chat.completions.create(
                    model="m", messages=MESSAGES, stream=True
                )
                async with stream:
                    async for _chunk in stream:
                        break
                return records

    (record,) = asyncio.run(run())
    assert record.closed_early


# -- the gateway under DO_NOT_TRACK ------------------------------------------------------


def test_gateway_calls_fail_before_any_connection_under_do_not_track(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    gateway = MockBackend()
    with gateway.serve() as server:
        monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", server.url)
        by_kind = server.backend("gw", kind="gateway")
        by_host = server.backend("plain")  # kind "openai", but the gateway's host
        for backend in (by_kind, by_host):
            with pipeclient.Client(backends=[backend]) as client:
                records = listen(client)
                with pytest.raises(pipeclient.GatewayTelemetryRequiredError) as caught:
                    client.chat.completions.create(model="m", messages=MESSAGES)
                assert "DO_NOT_TRACK" in str(caught.value) and caught.value.request_id
                assert records[0].error is not None
                assert records[0].error.type == "GatewayTelemetryRequiredError"
        assert server.connections == 0 and gateway.requests == []


def test_non_gateway_backends_work_under_do_not_track(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    gateway, plain = MockBackend(), MockBackend()
    backends = [gateway.backend("gw", kind="gateway", weight=1000), plain.backend("plain")]
    with pipeclient.Client(backends=backends) as client:
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert gateway.requests == [] and len(plain.requests) == 1
