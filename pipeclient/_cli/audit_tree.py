"""`pipeclient audit checkpoint`, `audit prove` and `audit check-proof`: the log's Merkle
tree, signed checkpoints of it (sent to the gateway when it witnesses them), and
inclusion proofs checked without the log."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._exceptions import ConfigError
from .audit_common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    checkpoint_and_key,
    log_path,
    read_checkpoint,
    say,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .._audit.checkpoint import Checkpoint
    from .._audit.merkle import Leaves
    from .._config.settings import TelemetrySettings

__all__ = ["check_proof_command", "checkpoint_command", "prove_command"]


def checkpoint_command(args: argparse.Namespace) -> int:
    from .._audit.tree import (
        LogFault,
        checkpoint_log,
        default_checkpoint_path,
        tree_file_for,
        write_private,
    )
    from .._audit.verify import verify

    path = log_path(args)
    if path is None:
        return EXIT_USAGE
    settings = _settings()
    key, unsigned_reason = _signing_key(settings)
    witness = _witness(settings)
    out = Path(args.out) if args.out is not None else default_checkpoint_path(path)
    previous = read_checkpoint(str(out), quiet=True) if out.is_file() else None
    if previous is not None:  # the log must still hold the checkpoint this one replaces
        held = verify(path, checkpoint=previous, tree_file=tree_file_for(path))
        if not held.ok:
            print(f"{path}: line {held.bad_line}: {held.fault}: {held.message}")
            print(
                f"the log no longer holds the checkpoint in {out}; it is kept (write a new "
                "one elsewhere with --out, or move it away first)"
            )
            return EXIT_FAILURE
    try:
        checkpoint, leaves = checkpoint_log(path, key, tree_file=tree_file_for(path))
        write_private(out, checkpoint.text().encode())
    except LogFault as fault:
        print(f"{path}: {fault}; no checkpoint written (`pipeclient audit verify` explains)")
        return EXIT_FAILURE
    except ValueError as exc:
        say(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        say(f"cannot write {exc.filename or out}: {exc.strerror or exc}")
        return EXIT_USAGE
    print(f"{out}: checkpoint of {path}: {checkpoint.size} lines, tree head {checkpoint.root_b64}")
    if key is None:
        print(f"UNSIGNED: {unsigned_reason}; anyone who can write the log can write this too")
    else:
        from .._audit.checkpoint import PublicKey, public_key_of

        public = PublicKey(public_key_of(key))
        print(f"signed as {checkpoint.origin}; public key {public.text}")
        print(f"verifier key {public.verifier_key(checkpoint.origin)}")
    if witness is None:
        return EXIT_OK
    return _send_to_witness(witness, checkpoint, leaves, previous)


def _witness(settings: TelemetrySettings) -> tuple[str, str] | None:
    """The gateway's base URL and key when `[audit] witness = "gateway"`, else None."""
    if settings.config.audit.witness != "gateway":
        return None
    from .._client.backends import gateway_url_from_env

    url = gateway_url_from_env()
    api_key = os.environ.get("PIPECLIENT_GATEWAY_API_KEY", "").strip()
    if url is None or not api_key:
        from .._config.settings import where_value

        missing = "PIPECLIENT_GATEWAY_URL" if url is None else "PIPECLIENT_GATEWAY_API_KEY"
        raise ConfigError(
            f'witness = "gateway" sends checkpoints to the managed gateway, but {missing} is '
            'not set: set it (and its pair), or set witness = "none"',
            source=where_value(("audit", "witness"), settings.sources),
            key="audit.witness",
        )
    return url, api_key


def _send_to_witness(
    witness: tuple[str, str],
    checkpoint: Checkpoint,
    leaves: Leaves,
    previous: Checkpoint | None,
) -> int:
    from .._audit.merkle import consistency_proof
    from .._config.dnt import do_not_track
    from .._sinks.gateway.witness import WitnessError, send_checkpoint, witness_body

    if do_not_track():
        print("not witnessed: DO_NOT_TRACK is set, so nothing is sent to the gateway")
        return EXIT_OK
    since = None
    if previous is not None and previous.origin == checkpoint.origin:
        since = (
            previous.size,
            previous.root,
            consistency_proof(leaves, previous.size, len(leaves)),
        )
    body = witness_body(
        origin=checkpoint.origin,
        tree_size=checkpoint.size,
        root=checkpoint.root,
        note=checkpoint.text(),
        previous=since,
    )
    try:
        url = send_checkpoint(*witness, body)
    except WitnessError as exc:
        print(f"not witnessed: {exc}; the checkpoint is written, run the command again later")
        return EXIT_FAILURE
    print(f"witnessed by {url}")
    return EXIT_OK


def prove_command(args: argparse.Namespace) -> int:
    from .._audit.tree import LogFault, default_checkpoint_path, prove

    path = log_path(args)
    if path is None:
        return EXIT_USAGE
    where = args.checkpoint or str(default_checkpoint_path(path))
    checkpoint = read_checkpoint(where)
    if checkpoint is None:
        return EXIT_USAGE
    try:
        proof = prove(path, checkpoint, request_id=args.request_id)
    except LogFault as fault:
        print(f"{path}: {fault}; no proof against {where}")
        return EXIT_FAILURE
    except LookupError as exc:
        say(f"{path}: {exc.args[0]}")
        return EXIT_FAILURE
    print(json.dumps(proof, indent=2, ensure_ascii=False))
    return EXIT_OK


def check_proof_command(args: argparse.Namespace) -> int:
    from .._audit.checkpoint import CheckpointError
    from .._audit.merkle import ProofError
    from .._audit.tree import check_proof, load_proof

    given = checkpoint_and_key(args)
    if given is None:
        return EXIT_USAGE
    checkpoint, public = given
    try:
        text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        say(f"cannot read the proof {args.proof}: {reason or exc}")
        return EXIT_USAGE
    try:
        proof = load_proof(text)
    except ProofError as exc:
        say(f"{args.proof}: {exc}")
        return EXIT_USAGE
    try:
        signature, entries = check_proof(proof, checkpoint, public)
    except (CheckpointError, ProofError) as exc:
        print(f"{args.proof}: does not hold: {exc}")
        return EXIT_FAILURE
    signed = (
        f"signed by {signature.name} with key id {signature.key_id.hex()}"
        if signature is not None
        else "UNSIGNED checkpoint"
    )
    for index, line in entries:
        print(f"entry {index} of {checkpoint.origin} at size {checkpoint.size} ({signed}):")
        print(line)
    return EXIT_OK


def _settings() -> TelemetrySettings:
    from .._config.settings import load_settings

    return load_settings()


def _signing_key(settings: TelemetrySettings) -> tuple[Ed25519PrivateKey | None, str]:
    """The key that signs checkpoints, or None and why there is none."""
    from .._audit.checkpoint import parse_signing_key
    from .._config.placeholders import UnresolvedPlaceholder, resolve_text
    from .._config.settings import where_value

    text = settings.config.audit.signing_key
    try:
        text = resolve_text(text, os.environ)
    except UnresolvedPlaceholder as problem:
        return None, f"[audit] signing_key: {problem.reason}"
    if not text:
        return None, "[audit] signing_key is empty"
    try:
        return parse_signing_key(text), ""
    except ValueError as exc:
        raise ConfigError(
            str(exc),
            source=where_value(("audit", "signing_key"), settings.sources),
            key="audit.signing_key",
        ) from None
