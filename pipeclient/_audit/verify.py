"""Reading the audit log back: `verify` (is the chain intact?) and `find_lines` (show).

`verify` reads the log once, checking each line's hash and its link to the line before,
and stops at the first line that breaks the chain. Only then does it read the log again
to name what happened there (edited, deleted, inserted, reordered, duplicate, malformed).
A fragment left by an interrupted write is not a fault when the chain continues across
it: it is reported as torn. An anchor (`SEQ:HASH`, the head printed by an earlier
verify) detects what the chain alone cannot: lines cut from the end, or a rewritten log.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if sys.platform != "win32":
    import fcntl

from .log import CANONICAL_LINE, GENESIS, LineCheck, check_line, is_utf8, leaf_bytes
from .merkle import Leaves, TreeBuilder

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

__all__ = ["FaultKind", "VerifyResult", "find_lines", "log_origin", "parse_anchor", "verify"]

FaultKind = Literal[
    "edited",  # a line's content does not hash to its hash (or it was re-hashed)
    "deleted",  # seq numbers are missing: lines were removed
    "inserted",  # a self-consistent line that does not belong to the chain
    "reordered",  # a line is out of place: the ones before it come later
    "duplicate",  # an exact copy of another line
    "malformed",  # not JSON, wrong keys or types, or a cut line the chain does not cross
    "truncated",  # the log ends before the anchor's seq: lines were cut from the end
    "rewritten",  # the line at the anchor's seq has another hash, or the checkpoint's
    # tree head is not that of the log's first lines
    "another_log",  # the checkpoint is of another log
]

_BLOCK = 1 << 22
_ANCHOR = re.compile(r"(0|[1-9][0-9]*):([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class VerifyResult:
    """What `verify` found: intact, or the first bad line and what is wrong with it."""

    ok: bool
    lines: int  # lines in the file, fragments included
    head_seq: int  # the last intact line that the chain reaches (0: none)
    head_hash: str
    bad_line: int | None = None  # 1-based line number of the first bad line
    fault: FaultKind | None = None
    message: str = ""
    torn: tuple[int, ...] = ()  # fragments of interrupted writes that the chain crosses
    tree_size: int = 0  # with a checkpoint or collected leaves: the log's tree, its size
    root: bytes = b""  # and its head
    origin: str = ""  # and the log's name in checkpoints
    continues: str = ""  # a segment: the checkpoint of the sealed one its first line follows

    @property
    def anchor(self) -> str:
        """The head as `SEQ:HASH`, to pass later as `--expect-head`."""
        return f"{self.head_seq}:{self.head_hash}"


def parse_anchor(text: str) -> tuple[int, str]:
    """`SEQ:HASH` -> (seq, hash); ValueError saying what the shape must be."""
    match = _ANCHOR.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not an anchor: expected SEQ:HASH, e.g. 42:<64 hex digits>, "
            "as printed by `pipeclient audit verify`"
        )
    return int(match[1]), match[2].lower()


def _raw_lines(path: Path, end: int) -> Iterator[bytes]:
    """Each line of the first `end` bytes, without its newline (a last one without, too)."""
    with path.open("rb") as file:
        tail = b""
        while end > 0 and (block := file.read(min(_BLOCK, end))):
            end -= len(block)
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            yield from lines
        if tail:
            yield tail


def _settled_size(path: Path) -> int:
    """The size once no writer is mid-line: writers hold the exclusive flock per line."""
    with path.open("rb") as file:
        if sys.platform != "win32":
            fcntl.flock(file.fileno(), fcntl.LOCK_SH)  # released when the file closes
        return os.fstat(file.fileno()).st_size


def verify(
    path: str | os.PathLike[str],
    expect_head: tuple[int, str] | None = None,
    *,
    checkpoint: Checkpoint | None = None,
    tree_file: str | os.PathLike[str] | None = None,
    leaves: Leaves | None = None,
) -> VerifyResult:
    """Check the whole chain (and the anchor, and the checkpoint's tree, if given); report
    the first bad line. `leaves` collects the leaf hashes of the log's tree; `tree_file`
    (leaf hashes kept by `audit checkpoint`) lets a rewrite be traced to its first line."""
    path = Path(path)
    match, sha = CANONICAL_LINE.fullmatch, sha256
    line_no = last_line = last_seq = 0
    last_hash, last_prev = GENESIS.encode(), b""
    anchor_seq, anchor_hash = expect_head if expect_head is not None else (-1, "")
    anchor_seen: tuple[int, bytes] | None = None
    tree = TreeBuilder() if checkpoint is not None or leaves is not None else None
    want_size = checkpoint.size if checkpoint is not None else -1
    first: tuple[int, bytes] | None = None  # line number and hash of the tree's first leaf
    at_size: tuple[int, bytes] | None = None  # line number and tree head at `want_size`
    end = _settled_size(path)  # lines appended while we read are not ours to judge
    pending: list[int] = []  # cut lines waiting for the next intact line to explain them
    torn: list[int] = []
    continues = ""  # the sealed segment's checkpoint that the first line commits to
    for raw in _raw_lines(path, end):
        line_no += 1
        found = match(raw)
        if found is not None and (raw.isascii() or is_utf8(raw)):  # the fast, usual path
            start = found.start(1)  # `,"hash":"<64 hex>"`: 74 bytes
            digest, prev, seq_text = found.group(2, 3, 4)
            seq = int(seq_text)
            body = raw[:start] + raw[start + 74 :]
            if sha(body).hexdigest().encode() != digest:
                return _fault(line_no, "edited", _EDITED, line_no, last_seq, last_hash)
        else:
            check = check_line(raw)
            if check.status == "cut":
                pending.append(line_no)
                continue
            if check.status != "ok":
                kind: FaultKind = "edited" if check.status == "edited" else "malformed"
                message = _EDITED if kind == "edited" else check.reason
                return _fault(line_no, kind, message, line_no, last_seq, last_hash)
            digest, seq, prev = check.hash.encode(), check.seq, check.prev_hash.encode()
            body = leaf_bytes(raw) if tree is not None else b""
        if not last_line and seq > 1 and not continues:  # a segment after a sealed one?
            continues = _sealed_before(path, prev)
            if continues:
                last_seq, last_hash = seq - 1, prev
        if seq != last_seq + 1 or prev != last_hash:
            if pending:
                return _fault(
                    pending[0],
                    "malformed",
                    f"the line is cut short and the chain does not continue across it (line "
                    f"{line_no} has seq {seq}, after seq {last_seq}): a complete line was cut, "
                    "or lines after an interrupted write were removed",
                    line_no,
                    last_seq,
                    last_hash,
                )
            kind, bad, message = _diagnose(
                path, end, line_no, LineCheck("ok", seq, prev.decode(), digest.decode()),
                last_line, last_seq, last_hash.decode(), last_prev.decode(),
            )  # fmt: skip
            return _fault(bad, kind, message, line_no, last_seq, last_hash)
        if pending:
            torn += pending
            pending.clear()
        if seq == anchor_seq:
            anchor_seen = (line_no, digest)
        if tree is not None:
            leaf = sha(b"\x00" + body).digest()
            tree.append(leaf)
            if leaves is not None:
                leaves.append(leaf)
            if first is None:
                first = (line_no, digest)
            if tree.size == want_size:
                at_size = (line_no, tree.root())
        last_line, last_seq, last_prev, last_hash = line_no, seq, prev, digest
    torn += pending
    head, torn_lines = last_hash.decode(), tuple(torn)
    if expect_head is not None:
        if anchor_seq > last_seq:
            return VerifyResult(
                False, line_no, last_seq, head, line_no + 1, "truncated",
                f"the log ends at seq {last_seq} but the anchor is seq {anchor_seq}: "
                f"seq {last_seq + 1}..{anchor_seq} (at least) were cut from the end",
                torn_lines,
            )  # fmt: skip
        at, seen = anchor_seen if anchor_seen else (1, GENESIS.encode())  # seq 0: genesis
        if seen.decode() != anchor_hash:
            return VerifyResult(
                False, line_no, last_seq, head, at, "rewritten",
                f"seq {anchor_seq} does not have the anchor's hash: the log was rewritten "
                "since the anchor was taken",
                torn_lines,
            )  # fmt: skip
    size, root = (tree.size, tree.root()) if tree is not None else (0, b"")
    origin = log_origin(first[1].decode()) if first is not None else ""
    if checkpoint is not None:
        problem = _tree_problem(
            path, end, checkpoint, tree_file, size, first, at_size, line_no, last_seq
        )
        if problem is not None:
            bad, kind, message = problem
            return VerifyResult(
                False, line_no, last_seq, head, bad, kind, message, torn_lines, size, root, origin
            )
    return VerifyResult(
        True, line_no, last_seq, head, torn=torn_lines, tree_size=size, root=root, origin=origin,
        continues=continues,
    )  # fmt: skip


_SEGMENT_NAME = re.compile(r"(.+)\.[0-9]{12}")


def _sealed_before(path: Path, prev_hash: bytes) -> str:
    """The checkpoint beside the log whose text hashes to `prev_hash`: the final checkpoint
    of the segment this one continues (a segment's first line commits to it), or ""."""
    from .checkpoint import CheckpointError, parse_checkpoint

    named = _SEGMENT_NAME.fullmatch(path.name)
    base = named[1] if named else path.name
    for candidate in sorted(path.parent.glob(f"{glob.escape(base)}.*.checkpoint")):
        try:
            checkpoint = parse_checkpoint(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, CheckpointError):
            continue
        if sha256(checkpoint.body.encode()).hexdigest().encode() == prev_hash:
            return str(candidate)
    return ""


def log_origin(first_hash: str) -> str:
    """A log's name in its checkpoints: fixed by its first line, so no two logs share one."""
    return f"pipeclient/audit/{first_hash[:16]}"


def _tree_problem(
    path: Path,
    end: int,
    checkpoint: Checkpoint,
    tree_file: str | os.PathLike[str] | None,
    size: int,
    first: tuple[int, bytes] | None,
    at_size: tuple[int, bytes] | None,
    lines: int,
    last_seq: int,
) -> tuple[int, FaultKind, str] | None:
    """Why the log does not hold the checkpoint's tree (line, fault, message), or None."""
    origin = log_origin(first[1].decode()) if first is not None else None
    if first is not None and origin != checkpoint.origin:
        line = first[0]
        return (
            line,
            "another_log",
            (
                f"line {line} is not the first line of the checkpoint's log: the checkpoint is of "
                f"{checkpoint.origin!r}, this log is {origin!r} (a checkpoint of another log, or "
                "this log was rewritten from its first line)"
            ),
        )
    if checkpoint.size == 0 or (at_size is not None and at_size[1] == checkpoint.root):
        return None
    found = _first_rewritten(path, end, checkpoint, tree_file)
    if checkpoint.size > size and found is None:
        return (
            lines + 1,
            "truncated",
            (
                f"the log holds {size} lines (up to seq {last_seq}) but the checkpoint covers "
                f"{checkpoint.size}: {checkpoint.size - size} line(s) were cut from the end"
            ),
        )
    last_line = at_size[0] if at_size is not None else lines
    if found is not None:
        line, index = found
        return (
            line,
            "rewritten",
            (
                f"line {line} (entry {index} of the tree) is not the line the checkpoint covers "
                "(the tree file kept beside the log says what it was): the log was rewritten "
                "from this line on"
            ),
        )
    return (
        last_line,
        "rewritten",
        (
            f"the first {checkpoint.size} lines no longer hash to the checkpoint's tree head: "
            f"the log was rewritten at or before line {last_line}; keep the tree file that "
            "`pipeclient audit checkpoint` writes beside the log to have the first changed "
            "line named"
        ),
    )


def _first_rewritten(
    path: Path, end: int, checkpoint: Checkpoint, tree_file: str | os.PathLike[str] | None
) -> tuple[int, int] | None:
    """(line number, leaf index) of the first leaf that differs from the tree file's, when
    that file holds the checkpoint's tree (so its hashes are the ones that were signed)."""
    if tree_file is None:
        return None
    try:
        data = Path(tree_file).read_bytes()[: checkpoint.size * 32]
    except OSError:
        return None
    if len(data) != checkpoint.size * 32:
        return None
    kept = Leaves(data)
    if kept.root() != checkpoint.root:
        return None  # not the signed tree: it proves nothing about the lines
    index = 0
    for number, raw in enumerate(_raw_lines(path, end), 1):
        if check_line(raw).status != "ok":
            continue  # a torn fragment: not a leaf
        if index >= checkpoint.size:
            break
        if sha256(b"\x00" + leaf_bytes(raw)).digest() != kept[index]:
            return number, index
        index += 1
    return None


_EDITED = "its content does not hash to its hash field: the line was changed"


def _fault(
    bad: int, kind: FaultKind, message: str, lines: int, last_seq: int, last_hash: bytes
) -> VerifyResult:
    return VerifyResult(False, lines, last_seq, last_hash.decode(), bad, kind, message)


def _diagnose(
    path: Path,
    end: int,
    line_no: int,
    line: LineCheck,
    last_line: int,
    last_seq: int,
    last_hash: str,
    last_prev: str,
) -> tuple[FaultKind, int, str]:
    """Name a chain break at `line_no` (an intact line that does not follow the one before)."""
    seq, where = line.seq, f"line {line_no} (seq {line.seq})"
    if seq == last_seq and line.hash == last_hash:
        return "duplicate", line_no, f"{where} is a copy of line {last_line}"
    earlier_copy = later_copy = predecessor_later = next_seq_later = False
    next_line: LineCheck | None = None
    for number, raw in enumerate(_raw_lines(path, end), 1):
        if number == line_no:
            continue
        check = check_line(raw)
        if check.status != "ok":
            continue
        if number < line_no:
            earlier_copy = earlier_copy or (check.seq == seq and check.hash == line.hash)
            continue
        next_line = next_line or check
        later_copy = later_copy or (check.seq == seq and check.hash == line.hash)
        predecessor_later = predecessor_later or check.hash == line.prev_hash
        next_seq_later = next_seq_later or check.seq == last_seq + 1
    follows = next_line is not None and (next_line.seq, next_line.prev_hash) == (seq + 1, line.hash)
    if earlier_copy or later_copy:
        return "duplicate", line_no, f"{where} is a copy of another line of the log"
    if seq == last_seq and line.prev_hash == last_prev:  # two lines claim one place
        if follows:
            why = f"line {last_line} and line {line_no} both claim seq {seq}; the chain goes on"
            return "inserted", last_line, f"{why} from line {line_no}: line {last_line} is extra"
        return "inserted", line_no, f"{where} repeats seq {seq} and the chain does not use it"
    if seq > last_seq + 1:
        if predecessor_later:
            why = "comes before the line it follows: lines are out of order"
            return "reordered", line_no, f"{where} {why}"
        if next_seq_later:
            why = f"does not belong to the chain: seq {last_seq + 1} comes later"
            return "inserted", line_no, f"{where} {why}"
        if line.prev_hash == last_hash:
            return "edited", line_no, f"{where} follows seq {last_seq} but was renumbered"
        missing = f"seq {last_seq + 1}" + (f"..{seq - 1}" if seq - 1 > last_seq + 1 else "")
        return "deleted", line_no, f"{missing} missing before {where}: lines were deleted"
    if seq < last_seq:
        why = f"goes back after seq {last_seq}, and is not a copy of an earlier line"
        return "inserted", line_no, f"{where} {why}"
    if next_line is not None and (next_line.seq, next_line.prev_hash) == (seq, last_hash):
        why = f"does not follow line {last_line}, and the next line takes its place"
        return "inserted", line_no, f"{where} {why}"
    # The right seq but the wrong link: one of the two lines was changed and re-hashed.
    if not last_line:
        return "edited", line_no, f"{where} does not start from the genesis hash: re-hashed"
    if follows or next_line is None:
        why = f"is not the line that {where} follows: it was replaced or re-hashed"
        return "edited", last_line, f"line {last_line} (seq {last_seq}) {why}"
    return "edited", line_no, f"{where} does not follow line {last_line}: it was re-hashed"


def find_lines(
    path: str | os.PathLike[str], *, request_id: str | None = None, user_id: str | None = None
) -> Iterator[tuple[int, str | None]]:
    """Lines whose `x_request_id` and `user_id` match: (line number, text or None if unreadable)."""
    wanted = {"x_request_id": request_id, "user_id": user_id}
    wanted = {key: value for key, value in wanted.items() if value is not None}
    needles = [json.dumps(value, ensure_ascii=False).encode() for value in wanted.values()]
    for number, raw in enumerate(_raw_lines(Path(path), _settled_size(Path(path))), 1):
        # Values appear literally in a line unless it uses escapes: skip the rest unparsed.
        if b"\\" not in raw and not all(needle in raw for needle in needles):
            continue
        try:
            line = json.loads(raw.decode("utf-8"))
        except ValueError:
            yield number, None
            continue
        if isinstance(line, dict) and all(line.get(k) == v for k, v in wanted.items()):
            yield number, raw.decode("utf-8")
