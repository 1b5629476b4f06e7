"""Public signatures spell out their parameters: a typo is caught, by mypy and at run time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pipeclient
from pipeclient.testing import MockBackend

MESSAGES = [{"role": "user", "content": "hi"}]
ROOT = Path(__file__).resolve().parent.parent


def test_a_typo_in_a_request_parameter_is_a_type_error_that_suggests_the_name() -> None:
    mock = MockBackend()
    client = pipeclient.Client(backends=[mock.backend()])
    calls: dict[str, Any] = {
        "temperature": lambda: client.chat.completions.create(
            model="m", messages=MESSAGES, temprature=0.2
        ),
        "dimensions": lambda: client.embeddings.create(model="e", input=["a"], dimension=8),
        "size": lambda: client.images.generate(prompt="a cat", sise="1024x1024"),
    }
    for meant, call in calls.items():
        with pytest.raises(TypeError, match=rf"did you mean '{meant}'.*extra_body="):
            call()
    assert mock.requests == []  # refused before anything was sent


def test_the_async_client_refuses_typos_too() -> None:
    async def main() -> None:
        client = pipeclient.AsyncClient(backends=[MockBackend().backend()])
        with pytest.raises(TypeError, match="did you mean 'max_tokens'"):
            await client.chat.completions.create(model="m", messages=MESSAGES, max_token=5)
        await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("client_class", [pipeclient.Client, pipeclient.AsyncClient])
def test_a_typo_in_a_client_option_is_a_type_error(client_class: Any) -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'max_retry'.*'max_retries'"):
        client_class(backends=[MockBackend().backend()], max_retry=3)


def test_only_the_parameters_given_are_sent_and_extras_never_are() -> None:
    mock = MockBackend()
    client = pipeclient.Client(backends=[mock.backend()])
    client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        temperature=0.2,
        stop=None,
        request_id="0c5d3b1a-7e2f-4a6b-8c9d-000000000001",
        extra_body={"provider_field": 1},
    )
    body = mock.requests[0].json()
    assert body == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.2,
        "stop": None,  # given as None: sent as null, as openai-python does
        "provider_field": 1,
    }


@pytest.mark.timeout(180)
def test_mypy_catches_typos_in_calls_and_client_options(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import pipeclient\n"
        "client = pipeclient.Client(max_retry=3)\n"
        "client.chat.completions.create(model='m', messages=[], temprature=0.2)\n"
        "client.chat.completions.create(model='m', messages=[], temperature='hot')\n"
        "floats = client.embeddings.create(model='e', input='x')\n"
        "reveal_type(floats.data[0].embedding)\n"
        "packed = client.embeddings.create(model='e', input='x', encoding_format='base64')\n"
        "reveal_type(packed.data[0].embedding)\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=170,
    )
    assert result.returncode == 1, result.stdout
    assert '"max_retry"' in result.stdout, result.stdout
    assert '"temprature"' in result.stdout, result.stdout
    assert '"temperature"' in result.stdout and "str" in result.stdout, result.stdout
    # An embedding is typed by the encoding asked for: floats, or base64 text.
    assert ':6: note: Revealed type is "list[float]"' in result.stdout, result.stdout
    assert ':8: note: Revealed type is "str"' in result.stdout, result.stdout


@pytest.mark.parametrize("client_class", [pipeclient.Client, pipeclient.AsyncClient])
def test_an_embedding_is_floats_unless_base64_was_asked_for(client_class: Any) -> None:
    import base64
    import struct

    from pipeclient.types import CreateEmbeddingBase64Response, CreateEmbeddingResponse

    mock = MockBackend()
    client = client_class(backends=[mock.backend()])

    async def calls() -> tuple[Any, Any]:
        floats = client.embeddings.create(model="e", input="x", dimensions=4)
        packed = client.embeddings.create(
            model="e", input="x", dimensions=4, encoding_format="base64"
        )
        if client_class is pipeclient.AsyncClient:
            return await floats, await packed
        return floats, packed

    floats, packed = asyncio.run(calls())
    assert type(floats) is CreateEmbeddingResponse
    assert type(packed) is CreateEmbeddingBase64Response
    vector = floats.data[0].embedding
    assert isinstance(vector, list) and len(vector) == 4
    decoded = struct.unpack("<4f", base64.b64decode(packed.data[0].embedding))
    assert list(decoded) == vector  # the same embedding, as the encoding asked for it
    assert "encoding_format" not in mock.requests[0].json()
    assert mock.requests[1].json()["encoding_format"] == "base64"
    with pytest.raises(pipeclient.ConfigError, match="encoding_format"):
        bad = client.embeddings.create(model="e", input="x", encoding_format="int8")
        if client_class is pipeclient.AsyncClient:
            asyncio.run(bad)
    assert len(mock.requests) == 2


def test_every_parameter_of_the_installed_openai_sdk_is_accepted_under_its_name() -> None:
    """A newer openai with a new parameter fails here: the signal to mirror it."""
    import inspect

    from openai.resources.chat.completions.completions import Completions
    from openai.resources.embeddings import Embeddings
    from openai.resources.images import Images

    from pipeclient._client.params import ChatParams, EmbeddingParams, ImageParams

    explicit = {"model", "messages", "stream", "input", "prompt", "self", "encoding_format"}
    for method, params in (
        (Completions.create, ChatParams),
        (Embeddings.create, EmbeddingParams),
        (Images.generate, ImageParams),
    ):
        theirs = set(inspect.signature(method).parameters) - explicit
        missing = theirs - set(params.__annotations__)
        if method is Images.generate:
            missing -= {"stream"}  # image streams are not supported by pipeclient
        assert not missing, (method.__qualname__, sorted(missing))


def test_extra_query_goes_in_the_url_with_the_backends_default_query() -> None:
    mock = MockBackend()
    with mock.serve() as server:
        backend = server.backend(default_query={"api-version": "2024-10-21"})
        with pipeclient.Client(backends=[backend]) as client:
            client.chat.completions.create(
                model="m", messages=MESSAGES, extra_query={"x": 1, "flag": True}
            )
            client.embeddings.create(
                model="e", input=["a"], extra_query={"api-version": "2025-01-01"}
            )
    first, second = mock.requests
    assert first.query == "api-version=2024-10-21&x=1&flag=true"
    assert "x" not in first.json() and "extra_query" not in first.json()
    assert second.query == "api-version=2025-01-01"  # the call's own value wins
    with pytest.raises(pipeclient.ConfigError, match=r"extra_query\['bad'\]"):
        pipeclient.Client(backends=[mock.backend()]).chat.completions.create(
            model="m", messages=MESSAGES, extra_query={"bad": [1]}
        )
