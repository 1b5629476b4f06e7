"""The gateway as a witness of audit checkpoints: `POST {base_url}/audit/checkpoints`.

A witness keeps a copy of each checkpoint the user does not hold, so a later cut or
rewrite of the local log is provable against it. The body is metadata only: the log's
origin, tree size and head, the signed note, and a consistency proof from the previous
checkpoint (hashes); never a line of the log.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import httpx

__all__ = ["WITNESS_PATH", "WITNESS_SCHEMA", "WitnessError", "send_checkpoint", "witness_body"]

WITNESS_PATH = "/audit/checkpoints"
WITNESS_SCHEMA = "pipeclient.audit.checkpoint.v1"


class WitnessError(Exception):
    """The witness did not take the checkpoint: why."""


def witness_body(
    *,
    origin: str,
    tree_size: int,
    root: bytes,
    note: str,
    previous: tuple[int, bytes, Sequence[bytes]] | None,
) -> dict[str, Any]:
    """The request body; `previous` is (size, tree head, consistency proof to this one)."""
    consistency = None
    if previous is not None:
        size, head, proof = previous
        consistency = {
            "from_size": size,
            "from_root_hash": _b64(head),
            "proof": [_b64(node) for node in proof],
        }
    return {
        "schema": WITNESS_SCHEMA,
        "origin": origin,
        "tree_size": tree_size,
        "root_hash": _b64(root),
        "checkpoint": note,
        "consistency": consistency,
    }


def send_checkpoint(
    base_url: str, api_key: str, body: dict[str, Any], *, timeout: float = 10.0
) -> str:
    """POST the body; the URL it went to. WitnessError (never with the key) if refused."""
    url = base_url.rstrip("/") + WITNESS_PATH
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(follow_redirects=False, trust_env=False, timeout=timeout) as http:
            response = http.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise WitnessError(f"cannot reach {url} ({type(exc).__name__})") from None
    if not 200 <= response.status_code < 300:
        raise WitnessError(f"{url} answered {response.status_code}")
    return url


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
