"""The audit log: one metadata-only JSON line per call, appended to a SHA-256 hash chain.

Each line is the RFC 8785 canonical JSON of exactly the pinned keys (DESIGN 5.5). Its
`hash` is SHA-256 over the canonical JSON of the line without `hash`; its `prev_hash` is
the previous line's `hash` (the first line's is `GENESIS`); `seq` counts from 1. Since
`hash` sorts between `error` and `http_status`, a line as written minus its
`,"hash":"…"` member is exactly the bytes that were hashed.

Writers are safe across threads (a lock) and processes (`fcntl.flock` around
read-head-then-append, one `write()` per line on an `O_APPEND` descriptor). The head
(last seq and hash) is cached and the tail re-read only when the file's size is not what
our last write left. A line cut short by a crash is closed with a newline by the next
writer, in the same `write()` as its own line, so it stays visible and the chain goes on
from the last intact line; `audit verify` reports such a fragment as torn, not tampered.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from .._exceptions import ConfigError
from .canonical import CanonicalJSONError, canonical_json

if sys.platform != "win32":
    import fcntl

__all__ = [
    "FIELD_KEYS",
    "GENESIS",
    "LINE_KEYS",
    "AuditLog",
    "LineCheck",
    "Rotation",
    "check_audit_path",
    "check_line",
    "format_line",
    "leaf_bytes",
]

GENESIS = "0" * 64
#: the keys of every line, pinned by DESIGN 5.5
LINE_KEYS = frozenset(
    {
        "user_id",
        "timestamp",
        "endpoint",
        "method",
        "model",
        "http_status",
        "x_request_id",
        "error",
        "timings",
        "token_counts",
        "seq",
        "prev_hash",
        "hash",
    }
)
#: what a caller of `AuditLog.append` supplies; the log adds the chain
FIELD_KEYS = LINE_KEYS - {"seq", "prev_hash", "hash"}

_CONFIG_KEY = "audit.path"
_TAIL_LIMIT = 1 << 20  # how far back a writer looks for the last intact line
_LINE_START = b'{"endpoint":'

# A line exactly as RFC 8785 writes it, for the values our writer produces: keys in
# order, strings with only the escapes JCS uses, integers of at most 15 digits and
# decimals of at most 15 significant digits (printed identically by JCS). A line that
# matches, and is UTF-8, is its own canonical form; any other line is canonicalised by
# `canonical_json` (slower, same answer).
_STR = rb'"[^"\\\x00-\x1f]*+(?:\\(?:["\\bfnrt]|u00(?:0[0-7bef]|1[0-9a-f]))[^"\\\x00-\x1f]*+)*+"'
_INT = rb"(?:0|-?[1-9][0-9]{0,14})"
_NUM = rb"(?:0|-?[1-9][0-9]{0,14}|-?(?:0|[1-9][0-9]{0,11})\.[0-9]{0,2}[1-9])"
CANONICAL_LINE = re.compile(
    rb'\{"endpoint":' + _STR + rb',"error":(?:null|\{"code":(?:null|' + _INT + rb"|" + _STR
    + rb'),"type":' + _STR + rb"\})"
    rb'(,"hash":"([0-9a-f]{64})")'
    rb',"http_status":(?:null|' + _INT + rb")"
    rb',"method":' + _STR + rb',"model":' + _STR
    + rb',"prev_hash":"([0-9a-f]{64})"'
    rb',"seq":([1-9][0-9]{0,14})'
    rb',"timestamp":' + _STR
    + rb',"timings":\{"total_ms":' + _NUM + rb',"ttft_ms":(?:null|' + _NUM + rb")\}"
    rb',"token_counts":\{"output":(?:null|' + _INT + rb'),"prompt":(?:null|' + _INT + rb")\}"
    rb',"user_id":' + _STR + rb',"x_request_id":' + _STR + rb"\}"
)  # fmt: skip
_HEX64 = re.compile(r"[0-9a-f]{64}")


# -- one line -------------------------------------------------------------------------


class LineCheck(NamedTuple):
    """What one line of the log is: intact, edited (hash mismatch), malformed or cut."""

    status: Literal["ok", "edited", "malformed", "cut"]
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""
    reason: str = ""


def check_line(raw: bytes) -> LineCheck:
    """Parse and hash-check one line (without its newline): fast when it is canonical."""
    match = CANONICAL_LINE.fullmatch(raw)
    if match is not None and (raw.isascii() or is_utf8(raw)):
        start, end = match.span(1)
        claimed = match[2].decode()
        seq, prev = int(match[4]), match[3].decode()
        if hashlib.sha256(raw[:start] + raw[end:]).hexdigest() != claimed:
            return LineCheck("edited", seq, prev, claimed, _EDITED)
        return LineCheck("ok", seq, prev, claimed)
    return _check_slowly(raw)


_EDITED = "its content does not hash to its hash field"


def _check_slowly(raw: bytes) -> LineCheck:
    try:
        line = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        if is_cut(raw):
            return LineCheck("cut", reason="the line stops short: an interrupted write")
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return LineCheck("malformed", reason=f"not a JSON line ({reason})")
    problem = _schema_problem(line)
    if problem:
        return LineCheck("malformed", reason=problem)
    body = {key: value for key, value in line.items() if key != "hash"}
    try:
        digest = hashlib.sha256(canonical_json(body)).hexdigest()
    except CanonicalJSONError as exc:
        return LineCheck("malformed", reason=f"not canonicalisable ({exc})")
    status: Literal["ok", "edited"] = "ok" if digest == line["hash"] else "edited"
    return LineCheck(
        status, line["seq"], line["prev_hash"], line["hash"], "" if status == "ok" else _EDITED
    )


def leaf_bytes(raw: bytes) -> bytes:
    """The bytes the chain hashes for an intact line: the line without its hash member.

    They are also the line's leaf in the log's Merkle tree."""
    match = CANONICAL_LINE.fullmatch(raw)
    if match is not None and (raw.isascii() or is_utf8(raw)):
        start, end = match.span(1)
        return raw[:start] + raw[end:]
    line = json.loads(raw.decode("utf-8"))
    del line["hash"]
    return canonical_json(line)


def is_cut(raw: bytes) -> bool:
    """A fragment a crash can leave: a prefix of a line, maybe padded with NUL bytes."""
    body = raw.rstrip(b"\x00")
    if not body:
        return bool(raw)
    return body.startswith(_LINE_START) or _LINE_START.startswith(body)


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("a key appears twice")
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _schema_problem(line: Any) -> str | None:
    """Why a parsed line is not an audit line (keys or types), or None."""
    if not isinstance(line, dict):
        return "not a JSON object"
    if set(line) != LINE_KEYS:
        missing, extra = sorted(LINE_KEYS - set(line)), sorted(set(line) - LINE_KEYS)
        return "wrong keys" + "".join(
            f"; {label}: {', '.join(keys)}"
            for label, keys in (("missing", missing), ("unexpected", extra))
            if keys
        )
    if not _is_int(line["seq"]) or line["seq"] < 1:
        return "seq is not a positive integer"
    for key in ("prev_hash", "hash"):
        if not isinstance(line[key], str) or not _HEX64.fullmatch(line[key]):
            return f"{key} is not 64 lowercase hex digits"
    for key in ("user_id", "timestamp", "endpoint", "method", "model", "x_request_id"):
        if not isinstance(line[key], str):
            return f"{key} is not a string"
    if line["http_status"] is not None and not _is_int(line["http_status"]):
        return "http_status is not an integer or null"
    error = line["error"]
    if error is not None and not (
        isinstance(error, dict)
        and set(error) == {"type", "code"}
        and isinstance(error["type"], str)
        and (error["code"] is None or isinstance(error["code"], str) or _is_int(error["code"]))
    ):
        return 'error is not null or {"type": string, "code": string, integer or null}'
    for key, names, check in (
        ("timings", {"ttft_ms", "total_ms"}, _is_number),
        ("token_counts", {"prompt", "output"}, _is_int),
    ):
        value = line[key]
        if not (
            isinstance(value, dict)
            and set(value) == names
            and all(item is None or check(item) for item in value.values())
        ):
            return f"{key} is not {{{', '.join(sorted(names))}}} with numbers or null"
    return None


def format_line(fields: Mapping[str, Any], seq: int, prev_hash: str) -> tuple[bytes, str]:
    """The canonical line (with its newline) and its hash, for the given place in the chain."""
    body = dict(fields, seq=seq, prev_hash=prev_hash)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data = text.encode("utf-8")  # a lone surrogate raises: no line is better than a bad one
    digest = hashlib.sha256(data).hexdigest()
    # "hash" sorts between "error" and "http_status"; no string can hold `,"http_status":`
    # unescaped, so the first one is the top-level key.
    cut = data.find(b',"http_status":')
    line = data[:cut] + b',"hash":"' + digest.encode() + b'"' + data[cut:]
    if cut >= 0 and CANONICAL_LINE.fullmatch(line) is not None:
        return line + b"\n", digest  # the grammar proves it is the RFC 8785 form
    # Values json.dumps does not print the JCS way (large or tiny floats...): the
    # canonicaliser decides, for the body and the line alike.
    digest = hashlib.sha256(canonical_json(body)).hexdigest()
    return canonical_json(dict(body, hash=digest)) + b"\n", digest


# -- the writer -----------------------------------------------------------------------

_FORK_GUARD = threading.Lock()


def check_audit_path(path: str | os.PathLike[str], *, source: str | None = None) -> None:
    """The ConfigError `AuditLog(path)` would raise, found without creating anything: the
    client (through AuditLog) and `telemetry status` both ask this."""
    target = Path(path).expanduser().absolute()
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:  # a symlink loop, a file where a directory should be, ...
        raise _open_error(target, _reason(exc), source) from None
    if mode is None:
        _check_creatable(target, source)
        return
    if stat.S_ISDIR(mode):
        raise _open_error(target, "it is a directory", source)
    if not os.access(target, os.R_OK | os.W_OK):
        raise _open_error(target, "Permission denied", source)
    if not stat.S_ISREG(mode):
        return  # a device or pipe: nothing to read back
    try:
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(target, _reason(exc), source) from None
    try:
        size = os.fstat(fd).st_size
        if size and _read_head(fd, size) is None:
            raise ConfigError(_not_a_log(target, size), source=source, key=_CONFIG_KEY)
    finally:
        os.close(fd)


def _check_creatable(target: Path, source: str | None) -> None:
    """The file is missing: its nearest existing ancestor must be a writable directory."""
    ancestor = target.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise _open_error(target, _NOT_A_DIRECTORY, source)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise _open_error(target, "Permission denied", source)


_NOT_A_DIRECTORY = "Not a directory: a file stands where a directory should be"


def _reason(exc: OSError) -> str:
    if isinstance(exc, IsADirectoryError):
        return "it is a directory"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return _NOT_A_DIRECTORY
    return exc.strerror or type(exc).__name__


def _open_error(path: Path, reason: str, source: str | None) -> ConfigError:
    return ConfigError(
        f"cannot open the audit log {str(path)!r} for appending ({reason}); set "
        "[audit] path (PIPECLIENT_AUDIT__PATH) to a file in a writable directory",
        source=source,
        key=_CONFIG_KEY,
    )


def _not_a_log(path: Path, size: int) -> str:
    return (
        f"{str(path)!r} is not a pipeclient audit log: no intact audit line "
        f"in its last {min(size, _TAIL_LIMIT)} bytes; set [audit] path to a new "
        "file, or look at it with `pipeclient audit verify`"
    )


class Rotation(Protocol):
    """When and how the log rolls into a new segment (`_audit.rotate` implements it)."""

    limit: int  # bytes: a line that would take the file past this starts a new segment

    def seal(self, path: Path, fd: int) -> str:
        """Keep the full file as a segment (under the writers' lock); the `prev_hash` the
        next segment's first line carries: it commits to the sealed segment."""
        ...


class AuditLog:
    """An append-only audit file shared safely by threads and processes."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        user_id: str,
        durable: bool = False,
        source: str | None = None,
        rotation: Rotation | None = None,
    ) -> None:
        self.path = Path(path).expanduser().absolute()  # immune to a later chdir
        self.user_id = user_id
        self.durable = durable
        self.rotation = rotation
        self._source = source  # where [audit] path was set, for error messages
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._size = -1  # the size our last write left the file at; -1: read the tail
        self._head: tuple[int, str] = (0, GENESIS)
        self._needs_newline = False
        check_audit_path(self.path, source=source)  # the checks `telemetry status` runs
        self._fd: int | None = self._open()
        try:  # a file that is not an audit log fails here, at construction
            with self._lock, _FileLock(self) as fd:
                self._sync_head(fd)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, durable={self.durable})"

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last line: an anchor for `audit verify --expect-head`."""
        with self._thread_lock(), _FileLock(self) as fd:
            self._sync_head(fd)
            return self._head

    def append(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Chain and write one line (and fsync it when durable); returns the line."""
        line = dict(fields)
        line.setdefault("user_id", self.user_id)
        if set(line) != FIELD_KEYS:
            unexpected, missing = sorted(set(line) - FIELD_KEYS), sorted(FIELD_KEYS - set(line))
            raise ValueError(f"audit line keys: unexpected {unexpected}, missing {missing}")
        problem = _schema_problem(dict(line, seq=1, prev_hash=GENESIS, hash=GENESIS))
        if problem:
            raise ValueError(f"audit line: {problem}")
        with self._thread_lock():
            with _FileLock(self) as fd:
                size = self._sync_head(fd)
                seq, prev = self._head
                data, digest = format_line(line, seq + 1, prev)
                rotation = self.rotation
                if rotation is not None and seq and size + len(data) > rotation.limit:
                    prev = rotation.seal(self.path, fd)
                    data, digest = format_line(line, seq + 1, prev)
                    self._start_segment(data)  # the next append opens it
                    self._size = -1
                    return dict(line, seq=seq + 1, prev_hash=prev, hash=digest)
                if self._needs_newline:
                    data = b"\n" + data  # close a fragment a crash left, in the same write
                self._size = -1  # unknown until the write is complete
                _write_all(fd, data)
                self._size = size + len(data)
                self._head, self._needs_newline = (seq + 1, digest), False
            if self.durable:
                os.fsync(fd)
        return dict(line, seq=seq + 1, prev_hash=prev, hash=digest)

    def _start_segment(self, first_line: bytes) -> None:
        """Replace the file at our path with a new one holding `first_line`, atomically:
        a writer opening the path sees the old file or the new one, never none."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, first_line)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        if self.durable:
            _fsync_directory(self.path.parent)

    def close(self) -> None:
        """Close the file. Idempotent; later appends raise."""
        with self._thread_lock():
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    # -- internals -----------------------------------------------------------------

    def _open(self) -> int:
        """Open (creating the file and its parents), or a ConfigError naming the path."""
        path = self.path
        try:
            created = not path.exists()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # check_audit_path passed, but the file changed since
            raise _open_error(path, _reason(exc), self._source) from None
        if created and self.durable:
            _fsync_directory(path.parent)
        return fd

    def _error(self, reason: str) -> ConfigError:
        return ConfigError(reason, source=self._source, key=_CONFIG_KEY)

    def _thread_lock(self) -> threading.Lock:
        if self._pid != os.getpid():
            self._after_fork()
        return self._lock

    def _after_fork(self) -> None:
        """A forked child opens its own descriptor: an inherited one shares the flock."""
        with _FORK_GUARD:
            if self._pid == os.getpid():
                return
            self._lock = threading.Lock()  # the parent's may have been held at the fork
            if self._fd is not None:
                os.close(self._fd)  # the child's copy; the parent keeps its own
                self._fd = self._open()
            self._size = -1
            self._pid = os.getpid()

    def _sync_head(self, fd: int) -> int:
        """Re-read the head if another writer (or a crash) changed the file; its size."""
        size = os.fstat(fd).st_size
        if size != self._size:
            head = _read_head(fd, size)
            if head is None:
                raise self._error(_not_a_log(self.path, size))
            self._head = head
            self._needs_newline = os.pread(fd, 1, size - 1) != b"\n" if size else False
            self._size = size
        return size


class _FileLock:
    """The flock on the log, taken on the file the path names now (it may be replaced)."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log
        self._fd = -1

    def __enter__(self) -> int:
        log = self._log
        while True:
            if log._fd is None:
                raise ValueError(f"{log!r} is closed")
            fd = log._fd
            _flock(fd, True)
            try:
                now, ours = os.stat(log.path), os.fstat(fd)
                same = (now.st_dev, now.st_ino) == (ours.st_dev, ours.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return fd
            # Deleted or replaced under us: write where the path points, not into the void.
            _flock(fd, False)
            log._fd = None
            os.close(fd)
            log._fd = log._open()
            log._size = -1

    def __exit__(self, *exc: object) -> None:
        _flock(self._fd, False)


def _flock(fd: int, exclusive: bool) -> None:
    if sys.platform != "win32":
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_UN)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    while written < len(data):  # only on a short write (a full disk), still under the lock
        written += os.write(fd, data[written:])


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_head(fd: int, size: int) -> tuple[int, str] | None:
    """(seq, hash) of the last intact line; None if the tail holds other lines only."""
    window, foreign = 4096, False
    while True:
        start = max(0, size - window)
        lines = os.pread(fd, size - start, start).split(b"\n")
        if start > 0:
            lines.pop(0)  # may be the end of a line that starts before the window
        foreign = False
        for raw in reversed(lines):
            if not raw:
                continue
            check = check_line(raw)
            if check.status == "ok":
                return check.seq, check.hash
            foreign = foreign or check.status != "cut"
        if start == 0:
            return None if foreign else (0, GENESIS)  # fragments only: a cut first line
        if window >= _TAIL_LIMIT:
            return None
        window *= 4
