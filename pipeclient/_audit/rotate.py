"""Segments: the log rolls into a new file past `[audit] rotate_mb`; old segments expire.

Sealing a full log, under the writers' lock: its final checkpoint (signed when a key is
configured) is written beside it as `audit.jsonl.<first seq>.checkpoint`, the file gets
its segment name `audit.jsonl.<first seq, 12 digits>` (a hard link, so the path is never
missing), and the new file's first line continues the seq with `prev_hash` = SHA-256 of
that checkpoint's text: the new segment commits to the old one's whole tree. Each segment
is then a log of its own (its own tree, origin and checkpoints); `verify` accepts a
segment that starts at seq > 1 when the checkpoint its first line commits to is beside it.
Segments whose last write is older than `retention_days` are deleted with their tree
files at each roll; their checkpoints (size and tree head, no line) are kept, so the
next segment still verifies.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import Checkpoint
from .log import check_line, leaf_bytes
from .merkle import TreeBuilder, leaf_hash
from .tree import write_private
from .verify import log_origin

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["SegmentRotation", "expire_segments", "segment_of", "segments"]

_SEGMENT = re.compile(r"\.([0-9]{12})")
_BLOCK = 1 << 22


def segment_of(path: Path, first_seq: int) -> Path:
    return path.with_name(f"{path.name}.{first_seq:012d}")


def segments(path: Path) -> list[Path]:
    """The sealed segments of the log at `path`, oldest first."""
    found = [
        item
        for item in path.parent.glob(f"{path.name}.*")
        if _SEGMENT.fullmatch(item.name[len(path.name) :])
    ]
    return sorted(found)


def expire_segments(path: Path, retention_days: float, *, now: float | None = None) -> list[Path]:
    """Delete the segments (and their tree files) last written before the retention period;
    their checkpoints stay. Returns what was deleted."""
    if retention_days <= 0:
        return []
    cutoff = (time.time() if now is None else now) - retention_days * 86400
    deleted = []
    for segment in segments(path):
        try:
            expired = segment.stat().st_mtime < cutoff
        except FileNotFoundError:
            continue
        if expired:
            for item in (segment, segment.with_name(segment.name + ".tree")):
                with contextlib.suppress(FileNotFoundError):
                    item.unlink()
            deleted.append(segment)
    return deleted


@dataclass
class SegmentRotation:
    """The `Rotation` that `[audit] rotate_mb` and `retention_days` ask for."""

    limit: int
    retention_days: float = 0
    key: Ed25519PrivateKey | None = None

    def seal(self, path: Path, fd: int) -> str:
        checkpoint, first_seq = _checkpoint_of(fd)
        if self.key is not None:
            checkpoint = checkpoint.signed(self.key)
        segment = segment_of(path, first_seq)
        write_private(segment.with_name(segment.name + ".checkpoint"), checkpoint.text().encode())
        try:
            os.link(path, segment)
        except FileExistsError:  # a roll interrupted after this step: the same file
            if not os.path.samefile(path, segment):
                raise
        expire_segments(path, self.retention_days)
        return sha256(checkpoint.body.encode()).hexdigest()


def _checkpoint_of(fd: int) -> tuple[Checkpoint, int]:
    """The unsigned checkpoint of the open log, and its first seq."""
    tree, origin, first_seq = TreeBuilder(), "", 0
    size, offset, tail = os.fstat(fd).st_size, 0, b""
    while offset < size:
        block = os.pread(fd, min(_BLOCK, size - offset), offset)
        if not block:
            break
        offset += len(block)
        lines = (tail + block).split(b"\n")
        tail = lines.pop()
        if offset >= size and tail:
            lines.append(tail)  # a last line without its newline: a leaf if it is intact
        for raw in lines:
            check = check_line(raw)
            if check.status != "ok":
                continue  # a torn fragment: not a leaf
            if not origin:
                origin, first_seq = log_origin(check.hash), check.seq
            tree.append(leaf_hash(leaf_bytes(raw)))
    return Checkpoint(origin, tree.size, tree.root()), first_seq
