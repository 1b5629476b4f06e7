"""`Backend(local=True)`: the user's own server; never the managed gateway."""

from __future__ import annotations

import pytest

import pipeclient


def test_local_defaults_to_false_and_can_be_set() -> None:
    plain = pipeclient.Backend(name="p", base_url="http://127.0.0.1:1/v1", api_key="none")
    own = pipeclient.Backend(name="o", base_url="http://127.0.0.1:1/v1", api_key="none", local=True)
    assert plain.local is False
    assert own.local is True


def test_a_gateway_backend_cannot_be_local() -> None:
    with pytest.raises(pipeclient.ConfigError) as caught:
        pipeclient.Backend(
            name="gw",
            base_url="https://gateway.example/v1",
            api_key="none",
            kind="gateway",
            local=True,
        )
    message = str(caught.value)
    assert "local=True" in message and "gateway" in message and "Backend(name='gw')" in message
