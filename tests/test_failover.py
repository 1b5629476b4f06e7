"""Retries, failover, Retry-After and stream breaks, over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import pipeclient
from pipeclient import Backend, RetryPolicy
from pipeclient.testing import Fault, MockBackend, refused_url

from .conftest import listen, wait_until

MESSAGES = [{"role": "user", "content": "hello there"}]
FAST = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)


def test_failover_from_503_to_healthy_backend_keeps_request_id() -> None:
    sick, healthy = MockBackend(), MockBackend()
    sick.push(Fault(status=503), times=10)
    with sick.serve() as sick_server, healthy.serve() as healthy_server:
        backends = [sick_server.backend("sick", weight=1), healthy_server.backend("ok", weight=0)]
        with pipeclient.Client(backends=backends, retry_policy=FAST) as client:
            records = listen(client)
            response = client.chat.completions.create(
                model="m", messages=MESSAGES, request_id="call-123"
            )
    assert response.request_id == "call-123"
    assert [r.headers["x-request-id"] for r in sick.requests] == ["call-123"]
    assert [r.headers["x-request-id"] for r in healthy.requests] == ["call-123"]
    (record,) = records
    assert record.attempts == 2 and record.backend == "ok" and record.outcome == "ok"


def test_failover_from_refused_connection() -> None:
    healthy = MockBackend()
    with healthy.serve() as server:
        backends = [
            Backend(name="down", base_url=refused_url(), api_key="k", weight=1),
            server.backend("ok", weight=0),
        ]
        with pipeclient.Client(backends=backends, retry_policy=FAST) as client:
            response = client.chat.completions.create(model="m", messages=MESSAGES)
    assert response.choices
    assert healthy.requests[0].headers["x-request-id"] == response.request_id


def test_same_request_id_on_every_retry_of_one_backend() -> None:
    mock = MockBackend()
    mock.push(Fault(status=500), times=2)
    with (
        mock.serve() as server,
        pipeclient.Client(backends=[server.backend()], retry_policy=FAST) as client,
    ):
        response = client.chat.completions.create(model="m", messages=MESSAGES)
    ids = {request.headers["x-request-id"] for request in mock.requests}
    assert len(mock.requests) == 3 and ids == {response.request_id}


@pytest.mark.parametrize("header", [{"Retry-After": "0.3"}, {"retry-after-ms": "300"}])
def test_retry_after_is_honoured(header: dict[str, str]) -> None:
    mock = MockBackend()
    mock.push(Fault(status=429, headers=header))
    with (
        mock.serve() as server,
        pipeclient.Client(backends=[server.backend()], retry_policy=FAST) as client,
    ):
        records = listen(client)
        client.chat.completions.create(model="m", messages=MESSAGES)
    # Retry-After is a floor on the wait (the default backoff here is 0.01 s).
    assert len(mock.requests) == 2
    assert records[0].total_ms >= 300


@pytest.mark.timeout(30)
def test_retry_after_is_capped() -> None:
    # An hour-long Retry-After is capped at max_retry_after: the call completes (the
    # timeout above would end it otherwise) after waiting at least the cap.
    mock = MockBackend()
    mock.push(Fault(status=429, headers={"Retry-After": "3600"}))
    policy = RetryPolicy(max_retry_after=0.2, initial_delay=0.01)
    with pipeclient.Client(backends=[mock.backend()], retry_policy=policy) as client:
        records = listen(client)
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert len(mock.requests) == 2 and records[0].total_ms >= 200


def test_http_date_retry_after_and_should_retry_header() -> None:
    mock = MockBackend()
    mock.push(Fault(status=503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    mock.push(Fault(status=400, headers={"x-should-retry": "true"}))
    mock.push(Fault(status=503, headers={"x-should-retry": "false"}))
    with pipeclient.Client(backends=[mock.backend()], retry_policy=FAST) as client:
        with pytest.raises(pipeclient.InternalServerError):
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(mock.requests) == 3


def test_exhausted_retries_raise_the_last_error_with_request_id() -> None:
    mock = MockBackend()
    mock.push(Fault(status=503), times=10)
    with pipeclient.Client(backends=[mock.backend()], retry_policy=FAST) as client:
        records = listen(client)
        with pytest.raises(pipeclient.InternalServerError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES, request_id="r-9")
    assert caught.value.status_code == 503 and caught.value.request_id == "r-9"
    assert "after 3 attempts" in str(caught.value)
    assert len(mock.requests) == 3
    (record,) = records
    assert record.outcome == "error" and record.error is not None
    assert record.error.type == "InternalServerError" and record.error.code == 503


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, pipeclient.BadRequestError),
        (401, pipeclient.AuthenticationError),
        (404, pipeclient.NotFoundError),
        (422, pipeclient.UnprocessableEntityError),
    ],
)
def test_client_errors_are_not_retried(status: int, error: type[Exception]) -> None:
    first, second = MockBackend(), MockBackend()
    first.push(Fault(status=status))
    backends = [first.backend("a"), second.backend("b", weight=0)]
    with pipeclient.Client(backends=backends, retry_policy=FAST) as client, pytest.raises(error):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(first.requests) == 1 and second.requests == []


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    mock = MockBackend()
    mock.push(Fault(status=status))
    with pipeclient.Client(backends=[mock.backend()], retry_policy=FAST) as client:
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert len(mock.requests) == 2


def test_timeout_fails_over() -> None:
    slow, healthy = MockBackend(), MockBackend()
    slow.push(Fault(delay=2.0))
    with slow.serve() as slow_server, healthy.serve() as ok_server:
        backends = [slow_server.backend("slow"), ok_server.backend("ok", weight=0)]
        with pipeclient.Client(backends=backends, retry_policy=FAST, timeout=0.2) as client:
            records = listen(client)
            response = client.chat.completions.create(model="m", messages=MESSAGES)
    assert response.choices and records[0].attempts == 2


def test_timeout_error_when_nothing_answers() -> None:
    slow = MockBackend()
    slow.push(Fault(delay=1.0), times=3)
    with (
        slow.serve() as server,
        pipeclient.Client(
            backends=[server.backend()], retry_policy=RetryPolicy(max_retries=0)
        ) as client,
        pytest.raises(pipeclient.APITimeoutError) as caught,
    ):
        client.chat.completions.create(model="m", messages=MESSAGES, timeout=0.1)
    assert caught.value.request_id


def test_weighted_choice_between_healthy_backends() -> None:
    backends = [MockBackend().backend("heavy", weight=3), MockBackend().backend("light", weight=1)]
    client = pipeclient.Client(backends=backends)
    client._router.rng.seed(7)
    firsts = Counter(client._router.order()[0].name for _ in range(4000))
    assert 0.70 < firsts["heavy"] / 4000 < 0.80


def test_standby_backend_only_used_on_failure() -> None:
    primary, standby = MockBackend(), MockBackend()
    backends = [primary.backend("primary"), standby.backend("standby", weight=0)]
    with pipeclient.Client(backends=backends) as client:
        for _ in range(20):
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(primary.requests) == 20 and standby.requests == []


def test_backend_that_keeps_failing_cools_down() -> None:
    flaky, steady = MockBackend(), MockBackend()
    flaky.push(Fault(status=503), times=3)
    backends = [flaky.backend("flaky", weight=1000), steady.backend("steady", weight=0.001)]
    policy = RetryPolicy(max_retries=0, cooldown_after=3, cooldown=60)
    with pipeclient.Client(backends=backends, retry_policy=policy) as client:
        for _ in range(3):
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert client._router.cooling_down(client.backends[0])
        for _ in range(5):
            client.chat.completions.create(model="m", messages=MESSAGES)
    # After three failures in a row, the flaky backend is tried last, so it saw no more calls.
    assert len(flaky.requests) == 3 and len(steady.requests) == 8


def test_stream_fails_over_before_the_first_byte() -> None:
    sick, healthy = MockBackend(), MockBackend()
    sick.push(Fault(status=502))
    with (
        sick.serve() as a,
        healthy.serve() as b,
        pipeclient.Client(
            backends=[a.backend("a"), b.backend("b", weight=0)], retry_policy=FAST
        ) as client,
    ):
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "Mock reply to: hello there"
    assert sick.requests[0].headers["x-request-id"] == healthy.requests[0].headers["x-request-id"]


def test_stream_cut_midway_raises_typed_error_and_is_not_replayed() -> None:
    cut, other = MockBackend(), MockBackend()
    cut.push(Fault(disconnect_after_chunks=2))
    with (
        cut.serve() as a,
        other.serve() as b,
        pipeclient.Client(
            backends=[a.backend("a"), b.backend("b", weight=0)], retry_policy=FAST
        ) as client,
    ):
        records = listen(client)
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, request_id="cut-1"
        )
        received = []
        with pytest.raises(pipeclient.StreamInterruptedError) as caught:
            for chunk in stream:
                received.append(chunk)
    assert caught.value.request_id == "cut-1"
    assert 1 <= len(received) <= 2
    assert other.requests == []
    (record,) = records
    assert record.outcome == "error" and record.error is not None
    assert record.error.type == "StreamInterruptedError"


def test_early_break_closes_the_connection() -> None:
    # chunk_delay: the stream is still being sent when the loop leaves it
    mock = MockBackend(reply=" ".join(["word"] * 200), chunk_delay=0.01)
    with mock.serve() as server, pipeclient.Client(backends=[server.backend()]) as client:
        records = listen(client)
        for index, _chunk in enumerate(
            client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        ):
            if index == 3:
                break
        # No gc.collect(): leaving the loop closes the stream at once (no reference cycle).
        wait_until(lambda: server.aborted_streams, 5, "the server to see the stream aborted")
        assert server.aborted_streams == 1
    (record,) = records
    assert record.closed_early and record.outcome == "ok"


def test_exception_inside_the_loop_ends_the_record_once() -> None:
    mock = MockBackend()
    with pipeclient.Client(backends=[mock.backend()]) as client:
        records = listen(client)
        with pytest.raises(ZeroDivisionError):
            for _chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                raise ZeroDivisionError
        assert len(records) == 1  # ended when the exception left the loop, not at GC time
        with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
            next(iter(stream))
        stream.close()
    assert len(records) == 2
    assert all(record.closed_early for record in records)


def test_async_failover_and_stream_break() -> None:
    sick, healthy, cut = MockBackend(), MockBackend(), MockBackend()
    sick.push(Fault(status=503))
    cut.push(Fault(disconnect_after_chunks=1))

    async def run() -> tuple[str, str]:
        backends = [sick.backend("sick"), healthy.backend("ok", weight=0)]
        async with pipeclient.AsyncClient(backends=backends, retry_policy=FAST) as client:
            response = await client.chat.completions.create(model="m", messages=MESSAGES)
        async with pipeclient.AsyncClient(backends=[cut.backend()]) as client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            with pytest.raises(pipeclient.StreamInterruptedError) as caught:
                async for _chunk in stream:
                    pass
        return response.request_id, caught.value.request_id

    first_id, cut_id = asyncio.run(run())
    assert sick.requests[0].headers["x-request-id"] == first_id
    assert healthy.requests[0].headers["x-request-id"] == first_id
    assert cut.requests[0].headers["x-request-id"] == cut_id
