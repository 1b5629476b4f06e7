"""The log as a Merkle tree: checkpoints of it, inclusion proofs of its lines, and their
checks without the log.

The tree's leaves are the log's intact lines in order (torn fragments are not leaves),
each leaf the bytes its chain hash covers. `audit checkpoint` keeps the leaf hashes in a
tree file beside the log (`audit.jsonl.tree`, 32 bytes a line): it is not needed to
verify, but it lets `verify` name the first line of a rewrite, since its hashes are
authenticated by the signed tree head.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import Checkpoint, CheckpointError, NoteSignature, PublicKey
from .log import check_line, leaf_bytes
from .merkle import Leaves, ProofError, inclusion_proof, leaf_hash, root_from_inclusion
from .verify import VerifyResult, find_lines, verify

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "PROOF_FORMAT",
    "CheckpointError",
    "LogFault",
    "Proof",
    "check_proof",
    "checkpoint_log",
    "default_checkpoint_path",
    "load_proof",
    "parse_proof",
    "prove",
    "tree_file_for",
    "write_private",
]

PROOF_FORMAT = "pipeclient.audit.inclusion/v1"


class LogFault(Exception):
    """The log does not verify: nothing is signed or proved over it."""

    def __init__(self, result: VerifyResult) -> None:
        self.result = result
        super().__init__(f"line {result.bad_line}: {result.fault}: {result.message}")


def tree_file_for(log: Path) -> Path:
    return log.with_name(log.name + ".tree")


def default_checkpoint_path(log: Path) -> Path:
    return log.with_name(log.name + ".checkpoint")


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically, the file readable by its owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def checkpoint_log(
    path: Path, key: Ed25519PrivateKey | None, *, tree_file: Path | None = None
) -> tuple[Checkpoint, Leaves]:
    """A checkpoint of the whole log (signed when `key` is given) and its leaf hashes, also
    kept in `tree_file`. LogFault if the chain is broken, ValueError if the log is empty."""
    leaves = Leaves()
    result = verify(path, leaves=leaves)
    if not result.ok:
        raise LogFault(result)
    if not len(leaves):
        raise ValueError(f"{path} holds no line yet: there is nothing to checkpoint")
    checkpoint = Checkpoint(result.origin, result.tree_size, result.root)
    if key is not None:
        checkpoint = checkpoint.signed(key)
    if tree_file is not None:
        write_private(tree_file, leaves.to_bytes())
    return checkpoint, leaves


def prove(path: Path, checkpoint: Checkpoint, *, request_id: str) -> dict[str, Any]:
    """Inclusion proofs of the lines of one request in the checkpoint's tree, as JSON data.
    LogFault if the log does not hold the checkpoint's tree; LookupError if no covered line
    has that request id."""
    leaves = Leaves()
    result = verify(path, checkpoint=checkpoint, tree_file=tree_file_for(path), leaves=leaves)
    if not result.ok:
        raise LogFault(result)
    entries = []
    later = 0
    for number, text in find_lines(path, request_id=request_id):
        if text is None or check_line(text.encode()).status != "ok":
            continue
        index = number - 1 - sum(1 for torn in result.torn if torn < number)
        if index >= checkpoint.size:
            later += 1
            continue
        path_hashes = inclusion_proof(leaves, index, checkpoint.size)
        entries.append(
            {
                "leaf_index": index,
                "line": text,
                "inclusion_path": [base64.b64encode(node).decode() for node in path_hashes],
            }
        )
    if not entries:
        after = f" ({later} line(s) written after it: take a new checkpoint)" if later else ""
        raise LookupError(
            f"no line of the checkpoint's tree has x_request_id {request_id!r}" + after
        )
    return {
        "format": PROOF_FORMAT,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root_hash": checkpoint.root_b64,
        "entries": entries,
    }


@dataclass(frozen=True)
class Proof:
    """A proof read back: each entry's leaf index and line."""

    origin: str
    tree_size: int
    root: bytes
    entries: tuple[tuple[int, str, tuple[bytes, ...]], ...]


def parse_proof(data: Any) -> Proof:
    """The JSON `prove` writes; ProofError saying which field is wrong."""
    if not isinstance(data, dict) or data.get("format") != PROOF_FORMAT:
        raise ProofError(f'not an audit inclusion proof: "format" must be {PROOF_FORMAT!r}')
    origin, size, root = data.get("origin"), data.get("tree_size"), data.get("root_hash")
    if not isinstance(origin, str) or not isinstance(size, int) or isinstance(size, bool):
        raise ProofError('"origin" must be a string and "tree_size" an integer')
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ProofError('"entries" must be a non-empty list')
    read = []
    for number, entry in enumerate(entries):
        where = f"entries[{number}]"
        if not isinstance(entry, dict):
            raise ProofError(f"{where} is not an object")
        index, line = entry.get("leaf_index"), entry.get("line")
        hashes = entry.get("inclusion_path")
        if not isinstance(index, int) or isinstance(index, bool) or not isinstance(line, str):
            raise ProofError(f'{where}: "leaf_index" must be an integer and "line" a string')
        if not isinstance(hashes, list):
            raise ProofError(f'{where}: "inclusion_path" must be a list of base64 hashes')
        read.append((index, line, tuple(_hash(item, f"{where}.inclusion_path") for item in hashes)))
    return Proof(origin, size, _hash(root, "root_hash"), tuple(read))


def check_proof(
    proof: Proof, checkpoint: Checkpoint, public: PublicKey | None
) -> tuple[NoteSignature | None, list[tuple[int, str]]]:
    """Check the checkpoint's signature (when a key is given), that the proof is for that
    checkpoint, and each entry's path to its tree head: (signature, [(index, line)])."""
    signature = checkpoint.check(public) if public is not None else None
    if (proof.origin, proof.tree_size, proof.root) != (
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
    ):
        raise ProofError(
            f"the proof is for {proof.origin!r} at size {proof.tree_size}, the checkpoint is "
            f"of {checkpoint.origin!r} at size {checkpoint.size} (or another tree head)"
        )
    checked = []
    for number, (index, line, path) in enumerate(proof.entries):
        raw = line.encode("utf-8")
        status = check_line(raw)
        if status.status != "ok":
            raise ProofError(f"entries[{number}]: the line is not an intact audit line")
        leaf = leaf_hash(leaf_bytes(raw))
        if root_from_inclusion(index, checkpoint.size, leaf, path) != checkpoint.root:
            raise ProofError(
                f"entries[{number}]: the line and its inclusion path do not lead to the "
                "checkpoint's tree head: the line is not entry "
                f"{index} of that tree"
            )
        checked.append((index, line))
    return signature, checked


def load_proof(text: str) -> Proof:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProofError(f"not JSON ({exc})") from None
    return parse_proof(data)


def _hash(value: Any, where: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ProofError(f"{where}: not the base64 of a 32-byte hash")
    return raw
