"""`pipeclient audit ...`: verify, show, checkpoint, prove and check-proof.

Exit codes as for every command: 0 ok, 1 failure found (a broken chain, a log that no
longer holds a checkpoint's tree, a signature or proof that does not hold), 2 usage or
configuration error (no such file, a malformed anchor, key or checkpoint).
"""

from __future__ import annotations

import argparse
from typing import TypeVar

from .audit_common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    checkpoint_and_key,
    log_path,
    say,
    signature_note,
)
from .audit_tree import check_proof_command, checkpoint_command, prove_command

__all__ = ["add_audit_commands"]

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
    mark.set_defaults(run=checkpoint_command)

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
    prove.set_defaults(run=prove_command)

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
    check_proof.set_defaults(run=check_proof_command)

    show = what.add_parser(
        "show", help="print the lines of one request or one user (a data request)"
    )
    show.add_argument("path", nargs="?", help="the log (default: the configured [audit] path)")
    show.add_argument("--request-id", help="the call's X-Request-Id")
    show.add_argument("--user-id", help="the user id written on the lines")
    show.set_defaults(run=_show)


def _verify(args: argparse.Namespace) -> int:
    from .._audit.tree import tree_file_for
    from .._audit.verify import parse_anchor, verify

    anchor = None
    if args.expect_head is not None:
        try:
            anchor = parse_anchor(args.expect_head)
        except ValueError as exc:
            say(f"--expect-head: {exc}")
            return EXIT_USAGE
    checkpoint = public = None
    if args.checkpoint is not None:
        given = checkpoint_and_key(args)
        if given is None:
            return EXIT_USAGE
        checkpoint, public = given
    elif args.public_key is not None:
        say("--public-key checks a checkpoint's signature: pass --checkpoint FILE too")
        return EXIT_USAGE
    path = log_path(args)
    if path is None:
        return EXIT_USAGE
    signer: str | None = ""
    if checkpoint is not None:
        signer = signature_note(args.checkpoint, checkpoint, public)
        if signer is None:
            return EXIT_FAILURE
    try:
        result = verify(path, anchor, checkpoint=checkpoint, tree_file=tree_file_for(path))
    except OSError as exc:
        say(f"cannot read {path}: {exc.strerror or exc}")
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


def _show(args: argparse.Namespace) -> int:
    from .._audit.verify import find_lines

    if args.request_id is None and args.user_id is None:
        say("audit show: pass --request-id ID and/or --user-id ID")
        return EXIT_USAGE
    path = log_path(args)
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
        say(f"cannot read {path}: {exc.strerror or exc}")
        return EXIT_USAGE
    if unreadable:
        say(f"{unreadable} unreadable line(s) skipped; `pipeclient audit verify` explains them")
    if not found:
        say(f"no line in {path} matches")
    return EXIT_OK
