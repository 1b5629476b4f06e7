"""`pipeclient audit verify` and `pipeclient audit show`: reading the local audit log.

Exit codes as for every command: 0 ok, 1 failure found (a broken chain), 2 usage or
configuration error (no such file, a malformed anchor).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TypeVar

__all__ = ["add_audit_commands"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_Parser = TypeVar("_Parser", bound=argparse.ArgumentParser)


def add_audit_commands(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    """Add `audit verify` and `audit show` to the `pipeclient` command."""
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
    check.set_defaults(run=_verify)

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
    from .._audit.verify import parse_anchor, verify

    anchor = None
    if args.expect_head is not None:
        try:
            anchor = parse_anchor(args.expect_head)
        except ValueError as exc:
            _say(f"--expect-head: {exc}")
            return EXIT_USAGE
    path = _log_path(args)
    if path is None:
        return EXIT_USAGE
    try:
        result = verify(path, anchor)
    except OSError as exc:
        _say(f"cannot read {path}: {exc.strerror or exc}")
        return EXIT_USAGE
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
    print(f"{path}: intact{checked}: {result.lines} lines, head seq {result.head_seq}")
    print(f"head {result.anchor}")
    print(
        "keep the head; `audit verify --expect-head SEQ:HASH` later detects lines cut from the end"
    )
    return EXIT_OK


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
