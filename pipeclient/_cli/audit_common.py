"""What the `audit` commands share: finding the log, reading checkpoints and public keys,
and saying what is wrong in one line on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._audit.checkpoint import Checkpoint, PublicKey

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "checkpoint_and_key",
    "log_path",
    "public_key",
    "read_checkpoint",
    "say",
    "signature_note",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def log_path(args: argparse.Namespace) -> Path | None:
    """The log to read, or None (after saying why on stderr) when it cannot be read."""
    if args.path is None:
        from .._config.settings import load_settings

        path = Path(load_settings().config.audit.path).expanduser()
        where = f"{path} (the configured [audit] path)"
    else:
        path = Path(args.path)
        where = str(path)
    if not path.exists():
        say(f"no audit log at {where}: pass its path, or set [audit] path")
        return None
    if not path.is_file():
        say(f"{where} is not a file")
        return None
    return path


def checkpoint_and_key(args: argparse.Namespace) -> tuple[Checkpoint, PublicKey | None] | None:
    """--checkpoint and --public-key read; None (said on stderr) when they cannot be used."""
    checkpoint = read_checkpoint(args.checkpoint)
    public = public_key(args.public_key) if args.public_key is not None else None
    if checkpoint is None or (args.public_key is not None and public is None):
        return None
    if public is None and checkpoint.signatures:
        say(f"{args.checkpoint} is signed: pass --public-key KEY to check its signature")
        return None
    return checkpoint, public


def signature_note(where: str, checkpoint: Checkpoint, public: PublicKey | None) -> str | None:
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


def read_checkpoint(where: str, *, quiet: bool = False) -> Checkpoint | None:
    """The checkpoint in a file; None (said on stderr unless `quiet`) if there is none."""
    from .._audit.checkpoint import CheckpointError, parse_checkpoint

    try:
        text = Path(where).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problem = f"cannot read the checkpoint {where}: {reason or exc}"
    else:
        try:
            return parse_checkpoint(text)
        except CheckpointError as exc:
            problem = f"{where}: {exc}"
    if not quiet:
        say(problem)
    return None


def public_key(text: str) -> PublicKey | None:
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
    say(f"--public-key {problem}")
    return None


def say(message: str) -> None:
    print(f"pipeclient: {message}", file=sys.stderr)
