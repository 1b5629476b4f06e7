"""Bad input gets a clear PipeclientError; no API key in any message, repr or log line."""

from __future__ import annotations

import logging
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeclient
from pipeclient import Backend, ConfigError, RetryPolicy
from pipeclient.testing import Fault, MockBackend, refused_url

MESSAGES = [{"role": "user", "content": "hi"}]


def test_no_backend_configured_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        pipeclient.Client()
    message = str(caught.value)
    for hint in ("PIPECLIENT_BASE_URL", "PIPECLIENT_API_KEY", "OPENAI_API_KEY", "backends="):
        assert hint in message


def test_base_url_without_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="PIPECLIENT_API_KEY"):
        pipeclient.Client()


def test_half_configured_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", "https://gateway.example/v1")
    with pytest.raises(ConfigError, match="PIPECLIENT_GATEWAY_API_KEY"):
        pipeclient.Client()


def test_gateway_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_GATEWAY_URL", "https://gateway.example/v1")
    monkeypatch.setenv("PIPECLIENT_GATEWAY_API_KEY", "gw-key")
    (backend,) = pipeclient.Client().backends
    assert backend.kind == "gateway" and backend.base_url == "https://gateway.example/v1"


@pytest.mark.parametrize("api_key", ["", "   "])
def test_empty_api_key(api_key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Backend(name="b", base_url="https://x.example/v1", api_key=api_key)
    assert "Backend(name='b')" in str(caught.value) and "'api_key'" in str(caught.value)


def test_missing_api_key() -> None:
    with pytest.raises(ConfigError, match="'api_key': is required"):
        Backend(name="b", base_url="https://x.example/v1")  # type: ignore[call-arg]


@pytest.mark.parametrize("url", ["api.openai.com/v1", "ftp://x.example", "http://", "not a url"])
def test_invalid_base_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Backend(name="b", base_url=url, api_key="k")
    assert "'base_url'" in str(caught.value) and "http(s)" in str(caught.value)


def test_invalid_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPECLIENT_BASE_URL", "localhost:8000")
    monkeypatch.setenv("PIPECLIENT_API_KEY", "k")
    with pytest.raises(ConfigError, match="environment variable PIPECLIENT_BASE_URL"):
        pipeclient.Client()


def test_credentials_in_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as caught:
        Backend(name="b", base_url="https://user:sk-hunter2@x.example/v1", api_key="k")
    assert "sk-hunter2" not in str(caught.value)


def test_unknown_backend_kind() -> None:
    with pytest.raises(ConfigError, match="unknown backend kind; expected 'openai' or 'gateway'"):
        Backend(name="b", base_url="https://x.example/v1", api_key="k", kind="azure")  # type: ignore[arg-type]


def test_unknown_backend_field() -> None:
    with pytest.raises(ConfigError, match="'url': is not a Backend field"):
        Backend(name="b", url="https://x.example/v1", api_key="k")  # type: ignore[call-arg]


def test_duplicate_backend_names_and_bad_arguments() -> None:
    mock = MockBackend()
    with pytest.raises(ConfigError, match="unique"):
        pipeclient.Client(backends=[mock.backend("a"), mock.backend("a")])
    with pytest.raises(ConfigError, match="empty"):
        pipeclient.Client(backends=[])
    with pytest.raises(ConfigError, match="not both"):
        pipeclient.Client(backends=[mock.backend()], api_key="k")
    with pytest.raises(ConfigError, match="max_retries"):
        pipeclient.Client(backends=[mock.backend()], max_retries=-1)


def test_bad_request_id() -> None:
    with (
        pipeclient.Client(backends=[MockBackend().backend()]) as client,
        pytest.raises(ConfigError, match="request_id"),
    ):
        client.chat.completions.create(model="m", messages=MESSAGES, request_id="a\r\nb")


def test_html_error_page_is_a_clear_status_error() -> None:
    mock = MockBackend()
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    mock.push(Fault(status=502, body=page, content_type="text/html"), times=3)
    with pipeclient.Client(backends=[mock.backend()], max_retries=0) as client:
        with pytest.raises(pipeclient.InternalServerError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 502 and error.body == page
    assert "non-JSON body (text/html" in str(error) and "<html>" not in str(error)


def test_non_json_success_body_is_a_validation_error() -> None:
    mock = MockBackend()
    mock.push(Fault(status=200, body="<html>login portal</html>", content_type="text/html"))
    with pipeclient.Client(backends=[mock.backend()]) as client:
        with pytest.raises(pipeclient.APIResponseValidationError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert "is not a ChatCompletion (text/html" in str(caught.value)
    assert isinstance(caught.value, pipeclient.PipeclientError)


def test_wrong_json_shape_is_a_validation_error() -> None:
    mock = MockBackend()
    mock.push(Fault(status=200, body='{"unexpected": true}'))
    with pipeclient.Client(backends=[mock.backend()]) as client:
        with pytest.raises(pipeclient.APIResponseValidationError):
            client.chat.completions.create(model="m", messages=MESSAGES)


def test_errors_pickle_with_their_fields() -> None:
    mock = MockBackend()
    mock.push(Fault(status=429))
    with pipeclient.Client(backends=[mock.backend()], max_retries=0) as client:
        with pytest.raises(pipeclient.RateLimitError) as caught:
            client.chat.completions.create(model="m", messages=MESSAGES, request_id="r-1")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(copy, pipeclient.RateLimitError)
    assert (copy.status_code, copy.request_id, str(copy)) == (429, "r-1", str(caught.value))


_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=12, max_size=40).map(
    lambda tail: "sk-" + tail
)


def _everything_an_exception_shows(exc: BaseException) -> list[str]:
    """Its text, repr, args, attributes, and the same for every chained exception, with
    the headers of any httpx request or response they hold."""
    shown: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        shown += [str(current), repr(current), repr(current.args), repr(vars(current))]
        for holder in ("request", "response"):
            try:
                held = getattr(current, holder, None)
            except RuntimeError:
                held = None
            if held is not None:
                shown.append(repr(list(held.headers.items())))
        todo += [current.__cause__, current.__context__]
    return shown


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=_keys)
def test_api_key_never_in_messages_reprs_or_logs(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    mock = MockBackend()
    # Providers echo the key they rejected, in the error body.
    mock.push(
        Fault(
            status=401,
            body='{"error": {"message": "Incorrect API key provided: '
            + key
            + '", "code": "invalid_api_key"}}',
        )
    )
    mock.push(Fault(status=503, body="upstream said " + key), times=3)
    mock.push(Fault(disconnect_after_chunks=1))
    mock.push(Fault(status=200, body="not gzip", headers={"content-encoding": "gzip"}))
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="pipeclient"):
        backends = [
            mock.backend("mock", api_key=key),
            Backend(name="down", base_url=refused_url(), api_key=key + "-2", weight=0),
        ]
        client = pipeclient.Client(
            backends=backends,
            retry_policy=RetryPolicy(max_retries=1, initial_delay=0.001, max_delay=0.001),
        )
        seen += [
            repr(client),
            str(client),
            repr(backends[0]),
            str(backends[0]),
            str(backends[0].model_dump()),
            backends[0].model_dump_json(),
        ]
        for stream in (False, False, True, False):
            try:
                result = client.chat.completions.create(model="m", messages=MESSAGES, stream=stream)
                if stream:
                    list(result)  # type: ignore[arg-type]
            except pipeclient.APIError as exc:
                seen += _everything_an_exception_shows(exc)
            else:
                raise AssertionError("every call above was set up to fail")
        for bad in (
            {"name": "x", "base_url": key, "api_key": key},
            {"name": "x", "base_url": "https://x.example", "apikey": key},
            {"name": "x", "base_url": "https://x.example", "api_key": key + "\u00e9"},
        ):
            try:
                Backend(**bad)
            except ConfigError as exc:
                seen += _everything_an_exception_shows(exc)
        client.close()
    seen += [record.getMessage() for record in caplog.records]
    assert len(seen) > 20
    for text in seen:
        assert key not in text
