"""`pipeclient audit ...`: verify, show, checkpoint, prove and check-proof.

Exit codes as for every command: 0 ok, 1 failure found (a broken chain, a log that no
longer holds a checkpoint's tree, a signature or proof that does not hold), 2 usage or
configuration error (no such file, a malformed anchor, key or checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .._exceptions import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .._audit.checkpoint import Checkpoint, PublicKey
    from .._config.settings import TelemetrySettings

__all__ = ["add_audit_commands"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_Parser = TypeVar("_Parser", bound=argparse.ArgumentParser)


def add_audit_commands(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    """Add the `audit` commands to the `pipeclient` command."""
    audit = subparsers.add_parser("audit", help="check or search the local audit log")
    what = audit.add_subparsers(dest="what", metavar="WHAT", parser_class=type(audit))
    what.required = True

    check = what.add_parser(
        "verify", help="check the hash chain; print the head to keep as an anchor"
    )
    check.add_argument("path", nargs="?", help="the log (default: the configured [audit] path)")
    check.add_argument(
        "--expect-head",
        metavar="SEQ:HASH",
        help="an anchor printed by an earlier verify: detects lines cut from the end",
    )
    check.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a checkpoint written by `audit checkpoint`: the log must still hold its tree "
        "(detects lines cut from the end and rewritten logs)",
    )
    check.add_argument(
        "--public-key",
        metavar="KEY",
        help="the public key the checkpoint must be signed by (base64, a verifier key, or "
        "a file holding one)",
    )
    check.set_defaults(run=_verify)

    mark = what.add_parser(
        "checkpoint", help="write a checkpoint (size and Merkle tree head, signed) of the log"
    )
    mark.add_argument("path", nargs="?", help="the log (default: the configured [audit] path)")
    mark.add_argument(
        "--out", metavar="FILE", help="where to write it (default: the log's path + .checkpoint)"
    )
    mark.set_defaults(run=_checkpoint)

    prove = what.add_parser(
        "prove", help="print (JSON) an inclusion proof of one request's line in a checkpoint"
    )
    prove.add_argument("path", nargs="?", help="the log (default: the configured [audit] path)")
    prove.add_argument("--request-id", required=True, help="the call's X-Request-Id")
    prove.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="the checkpoint to prove against (default: the log's path + .checkpoint)",
    )
    prove.set_defaults(run=_prove)

    check_proof = what.add_parser(
        "check-proof", help="check an inclusion proof against a checkpoint, without the log"
    )
    check_proof.add_argument("proof", help="the JSON `audit prove` printed ('-': standard input)")
    check_proof.add_argument("--checkpoint", metavar="FILE", required=True)
    check_proof.add_argument(
        "--public-key",
        metavar="KEY",
        help="the public key the checkpoint must be signed by (base64, a verifier key, or "
        "a file holding one)",
    )
    check_proof.set_defaults(run=_check_proof)

    show = what.add_parser(
        "show", help="print the lines of one request or one user (a data request)"
    )
    show.add_argument("path", nargs="?", help="the log (default: the configured [audit] path)")
    show.add_argument("--request-id", help="the call's X-Request-Id")
    show.add_argument("--user-id", help="the user id written on the lines")
    show.set_defaults(run=_show)


def _log_path(args: argparse.Namespace) -> Path | None:
    """The log to read, or None (after saying why on stderr) when it cannot be read."""
    if args.path is None:
        from .._config.settings import load_settings

        path = Path(load_settings().config.audit.path).expanduser()
        where = f"{path} (the configured [audit] path)"
    else:
        path = Path(args.path)
        where = str(path)
    if not path.exists():
        _say(f"no audit log at {where}: pass its path, or set [audit] path")
        return None
    if not path.is_file():
        _say(f"{where} is not a file")
        return None
    return path


def _verify(args: argparse.Namespace) -> int:
    from .._audit.tree import tree_file_for
    from .._audit.verify import parse_anchor, verify

    anchor = None
    if args.expect_head is not None:
        try:
            anchor = parse_anchor(args.expect_head)
        except ValueError as exc:
            _say(f"--expect-head: {exc}")
            return EXIT_USAGE
    checkpoint = public = None
    if args.checkpoint is not None:
        given = _checkpoint_and_key(args)
        if given is None:
            return EXIT_USAGE
        checkpoint, public = given
    elif args.public_key is not None:
        _say("--public-key checks a checkpoint's signature: pass --checkpoint FILE too")
        return EXIT_USAGE
    path = _log_path(args)
    if path is None:
        return EXIT_USAGE
    signer: str | None = ""
    if checkpoint is not None:
        signer = _signature_note(args.checkpoint, checkpoint, public)
        if signer is None:
            return EXIT_FAILURE
    try:
        result = verify(path, anchor, checkpoint=checkpoint, tree_file=tree_file_for(path))
    except OSError as exc:
        _say(f"cannot read {path}: {exc.strerror or exc}")
        return EXIT_USAGE
    if result.continues:
        print(
            f"note: a segment: its first line continues the one sealed by {result.continues} "
            "(the segments before it may have expired)"
        )
    for line in result.torn:
        print(
            f"note: line {line} is a fragment of an interrupted write (a crash); the chain "
            "continues across it, so no written line is missing"
        )
    if not result.ok:
        print(f"{path}: line {result.bad_line}: {result.fault}: {result.message}")
        print(f"intact up to seq {result.head_seq} ({result.lines} lines read)")
        return EXIT_FAILURE
    checked = " and matches the anchor" if anchor is not None else ""
    if checkpoint is not None:
        checked += f" and holds the checkpoint's tree ({checkpoint.size} lines; {signer})"
    print(f"{path}: intact{checked}: {result.lines} lines, head seq {result.head_seq}")
    print(f"head {result.anchor}")
    print(
        "keep the head; `audit verify --expect-head SEQ:HASH` later detects lines cut from the end"
    )
    return EXIT_OK


def _checkpoint_and_key(args: argparse.Namespace) -> tuple[Checkpoint, PublicKey | None] | None:
    """--checkpoint and --public-key read; None (said on stderr) when they cannot be used."""
    checkpoint = _read_checkpoint(args.checkpoint)
    public = _public_key(args.public_key) if args.public_key is not None else None
    if checkpoint is None or (args.public_key is not None and public is None):
        return None
    if public is None and checkpoint.signatures:
        _say(f"{args.checkpoint} is signed: pass --public-key KEY to check its signature")
        return None
    return checkpoint, public


def _signature_note(where: str, checkpoint: Checkpoint, public: PublicKey | None) -> str | None:
    """What was checked of the checkpoint's signature; None (said on stdout) if it fails."""
    from .._audit.checkpoint import CheckpointError

    if public is None:
        return "the checkpoint is unsigned: it shows the tree, not who vouched for it"
    try:
        signature = checkpoint.check(public)
    except CheckpointError as exc:
        print(f"{where}: signature: {exc}")
        return None
    return f"signed by {signature.name} with key id {signature.key_id.hex()}"


def _read_checkpoint(where: str) -> Checkpoint | None:
    from .._audit.checkpoint import CheckpointError, parse_checkpoint

    try:
        text = Path(where).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        _say(f"cannot read the checkpoint {where}: {reason or exc}")
        return None
    try:
        return parse_checkpoint(text)
    except CheckpointError as exc:
        _say(f"{where}: {exc}")
        return None


def _public_key(text: str) -> PublicKey | None:
    from .._audit.checkpoint import parse_public_key

    try:
        return parse_public_key(text)
    except ValueError as exc:
        problem = str(exc)
    candidate = Path(text)
    if candidate.is_file():
        try:
            return parse_public_key(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problem = f"{candidate}: {exc}"
    _say(f"--public-key {problem}")
    return None


def _checkpoint(args: argparse.Namespace) -> int:
    from .._audit.tree import (
        LogFault,
        checkpoint_log,
        default_checkpoint_path,
        tree_file_for,
        write_private,
    )

    path = _log_path(args)
    if path is None:
        return EXIT_USAGE
    settings = _settings()
    key, unsigned_reason = _signing_key(settings)
    out = Path(args.out) if args.out is not None else default_checkpoint_path(path)
    try:
        checkpoint, _result = checkpoint_log(path, key, tree_file=tree_file_for(path))
        write_private(out, checkpoint.text().encode())
    except LogFault as fault:
        print(f"{path}: {fault}; no checkpoint written (`pipeclient audit verify` explains)")
        return EXIT_FAILURE
    except ValueError as exc:
        _say(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        _say(f"cannot write {exc.filename or out}: {exc.strerror or exc}")
        return EXIT_USAGE
    print(f"{out}: checkpoint of {path}: {checkpoint.size} lines, tree head {checkpoint.root_b64}")
    if key is None:
        print(f"UNSIGNED: {unsigned_reason}; anyone who can write the log can write this too")
    else:
        from .._audit.checkpoint import PublicKey, public_key_of

        public = PublicKey(public_key_of(key))
        print(f"signed as {checkpoint.origin}; public key {public.text}")
        print(f"verifier key {public.verifier_key(checkpoint.origin)}")
    return EXIT_OK


def _prove(args: argparse.Namespace) -> int:
    from .._audit.tree import LogFault, default_checkpoint_path, prove

    path = _log_path(args)
    if path is None:
        return EXIT_USAGE
    where = args.checkpoint or str(default_checkpoint_path(path))
    checkpoint = _read_checkpoint(where)
    if checkpoint is None:
        return EXIT_USAGE
    try:
        proof = prove(path, checkpoint, request_id=args.request_id)
    except LogFault as fault:
        print(f"{path}: {fault}; no proof against {where}")
        return EXIT_FAILURE
    except LookupError as exc:
        _say(f"{path}: {exc.args[0]}")
        return EXIT_FAILURE
    print(json.dumps(proof, indent=2, ensure_ascii=False))
    return EXIT_OK


def _check_proof(args: argparse.Namespace) -> int:
    from .._audit.checkpoint import CheckpointError
    from .._audit.merkle import ProofError
    from .._audit.tree import check_proof, load_proof

    given = _checkpoint_and_key(args)
    if given is None:
        return EXIT_USAGE
    checkpoint, public = given
    try:
        text = sys.stdin.read() if args.proof == "-" else Path(args.proof).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        _say(f"cannot read the proof {args.proof}: {reason or exc}")
        return EXIT_USAGE
    try:
        proof = load_proof(text)
    except ProofError as exc:
        _say(f"{args.proof}: {exc}")
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


def _show(args: argparse.Namespace) -> int:
    from .._audit.verify import find_lines

    if args.request_id is None and args.user_id is None:
        _say("audit show: pass --request-id ID and/or --user-id ID")
        return EXIT_USAGE
    path = _log_path(args)
    if path is None:
        return EXIT_USAGE
    found = unreadable = 0
    try:
        for _number, text in find_lines(path, request_id=args.request_id, user_id=args.user_id):
            if text is None:
                unreadable += 1
                continue
            found += 1
            print(text)
    except OSError as exc:
        _say(f"cannot read {path}: {exc.strerror or exc}")
        return EXIT_USAGE
    if unreadable:
        _say(f"{unreadable} unreadable line(s) skipped; `pipeclient audit verify` explains them")
    if not found:
        _say(f"no line in {path} matches")
    return EXIT_OK


def _say(message: str) -> None:
    print(f"pipeclient: {message}", file=sys.stderr)
