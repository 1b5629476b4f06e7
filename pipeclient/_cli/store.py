"""`pipeclient store ...`: export, show, delete, prune and re-key the local content store.

The store and its key are those `[store]` configures (`path`, `key`), whether or not
`enabled` is set: a store that is off is still exported and deleted from. Exit codes as
for every command: 0 ok, 1 failure found (a damaged record, a deletion that could not
scrub the files), 2 usage or configuration error (no store, a wrong or malformed key).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import ConfigError

if TYPE_CHECKING:
    from .._config.models import StoreConfig
    from .._store.store import ContentStore, OpenedRecord

__all__ = ["add_store_commands"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_Parser = TypeVar("_Parser", bound=argparse.ArgumentParser)


def add_store_commands(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    store = subparsers.add_parser("store", help="export, show or delete the local content store")
    what = store.add_subparsers(dest="what", metavar="WHAT", parser_class=type(store))
    what.required = True

    export = what.add_parser(
        "export", help="a JSON bundle of one user's records, decrypted (an access request)"
    )
    export.add_argument("--user-id", required=True, help="the user whose records to export")
    export.add_argument("--out", metavar="FILE", help="write the bundle there (default: stdout)")
    export.set_defaults(run=_export)

    show = what.add_parser("show", help="print the record of one request, decrypted")
    show.add_argument("--request-id", required=True, help="the call's X-Request-Id")
    show.set_defaults(run=_show)

    delete = what.add_parser(
        "delete", help="destroy one user's data key and records (an erasure request)"
    )
    delete.add_argument("--user-id", required=True, help="the user whose records to delete")
    delete.set_defaults(run=_delete)

    rotate = what.add_parser(
        "rotate-key", help="re-wrap every data key under a new key-encryption key"
    )
    rotate.add_argument(
        "--new-key-env",
        metavar="VAR",
        required=True,
        help="the environment variable holding the new key (32 random bytes as base64)",
    )
    rotate.set_defaults(run=_rotate)

    prune = what.add_parser(
        "prune", help="delete expired ephemeral records and those past retention_days"
    )
    prune.set_defaults(run=_prune)

    for command in (export, show, delete, rotate, prune):
        command.add_argument("--file", help="read this telemetry.toml instead of the usual lookup")


@contextlib.contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[ContentStore, StoreConfig]]:
    """The configured store, opened with the configured key (ConfigError if either is
    unusable), closed after the block; the store file must exist."""
    store, config = _open(args)
    try:
        yield store, config
    finally:
        store.close()


def _open(args: argparse.Namespace) -> tuple[ContentStore, StoreConfig]:
    _require_crypto()
    from .._config.keys import decode_key
    from .._config.placeholders import UnresolvedPlaceholder, resolve_text
    from .._config.settings import load_settings, value_source, where_value
    from .._store.crypto import KeyEncryptionKey
    from .._store.store import ContentStore

    settings = load_settings(file=args.file)
    config = settings.config.store
    path = Path(config.path).expanduser()
    path_source = where_value(("store", "path"), settings.sources)
    if not path.is_file():
        raise ConfigError(
            f"there is no content store at {path}: set [store] path to the store's file",
            source=path_source,
            key="store.path",
        )
    key_text = config.key
    key_source = value_source(("store", "key"), settings)
    if "${" in key_text:  # a table that is off keeps its placeholders: read them now
        try:
            key_text = resolve_text(key_text, os.environ)
        except UnresolvedPlaceholder as problem:
            raise ConfigError(problem.reason, source=key_source, key="store.key") from None
    try:
        key = decode_key(key_text)
    except ValueError as exc:
        raise ConfigError(str(exc), source=key_source, key="store.key") from None
    store = ContentStore(
        _storage(path, path_source), KeyEncryptionKey(key), key_source=key_source, create=False
    )
    return store, config


def _require_crypto() -> None:
    from .._config.extras import require_crypto

    require_crypto("the content store (AES-256-GCM)", source="pipeclient store")


def _storage(path: Path, source: str) -> Any:
    from .._store.sqlite import SqliteStorage

    return SqliteStorage(path, source=source)


def _bundle_entry(record: OpenedRecord) -> dict[str, Any]:
    from .._telemetry.sink import rfc3339

    entry: dict[str, Any] = {
        "request_id": record.request_id,
        "user_id": record.user_id,
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.expires_at) if record.expires_at is not None else None,
    }
    if record.plaintext is None:
        entry["damaged"] = record.damage
    else:
        entry["content"] = json.loads(record.plaintext)
    return entry


def _export(args: argparse.Namespace) -> int:
    with _opened(args) as (store, _config):
        records = store.records(user_id=args.user_id)
    entries = [_bundle_entry(record) for record in records]
    bundle = {
        "user_id": args.user_id,
        "store": str(store.storage.location),
        "records": [entry for entry in entries if "content" in entry],
        "damaged": [entry for entry in entries if "damaged" in entry],
    }
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        out = Path(args.out)
        try:  # the bundle is personal data: readable by the owner only, never overwritten
            descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            _say(f"--out {out} already exists; remove it or choose another path")
            return EXIT_USAGE
        except OSError as exc:
            _say(f"--out {out}: cannot write ({exc.strerror or exc})")
            return EXIT_USAGE
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        print(f"wrote {len(bundle['records'])} record(s) of user {args.user_id!r} to {out}")
    else:
        sys.stdout.write(text)
    return _report_damage(bundle["damaged"], "export")


def _show(args: argparse.Namespace) -> int:
    with _opened(args) as (store, _config):
        records = store.records(request_id=args.request_id)
    if not records:
        _say(f"no record of request {args.request_id!r} in {store.storage.location}")
        return EXIT_OK
    entries = [_bundle_entry(record) for record in records]
    for entry in entries:
        print(json.dumps(entry, indent=2, ensure_ascii=False))
    return _report_damage([entry for entry in entries if "damaged" in entry], "show")


def _report_damage(damaged: list[dict[str, Any]], command: str) -> int:
    if not damaged:
        return EXIT_OK
    ids = ", ".join(repr(entry["request_id"]) for entry in damaged[:5])
    more = f" and {len(damaged) - 5} more" if len(damaged) > 5 else ""
    _say(
        f"store {command}: {len(damaged)} record(s) are damaged and were not decrypted "
        f"(request {ids}{more}): {damaged[0]['damaged']}"
    )
    return EXIT_FAILURE


def _delete(args: argparse.Namespace) -> int:
    with _opened(args) as (store, _config):
        done = store.delete_user(args.user_id)
    if not done.key and not done.records:
        print(f"no data key and no record of user {args.user_id!r} in {store.storage.location}")
    else:
        print(
            f"deleted {done.records} record(s) of user {args.user_id!r} and destroyed the "
            "user's data key"
        )
    if not done.scrubbed:
        _say(
            "the write-ahead log could not be emptied: another process has the store open. "
            "The deleted records cannot be decrypted (their key is gone), but their "
            "ciphertext may stay in the -wal file until that process closes the store; run "
            "`pipeclient store delete` again then"
        )
        return EXIT_FAILURE
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    _require_crypto()
    from .._config.keys import decode_key
    from .._store.crypto import KeyEncryptionKey

    variable = args.new_key_env
    text = os.environ.get(variable, "")
    try:
        new_key = decode_key(text)
    except ValueError as exc:
        raise ConfigError(
            str(exc), source=f"environment variable {variable} (named by --new-key-env)"
        ) from None
    with _opened(args) as (store, _config):
        count = store.rotate(KeyEncryptionKey(new_key))
    print(
        f"re-wrapped {count} data key(s) under the key in {variable}; records were not "
        "touched. Set [store] key (PIPECLIENT_STORE_KEY by default) to the new key now: "
        "the old one no longer opens the store"
    )
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    with _opened(args) as (store, config):
        gone = store.prune(retention_days=config.retention_days)
    kept = f", and records older than {config.retention_days} days" if config.retention_days else ""
    print(f"deleted {gone} record(s): expired ephemeral ones{kept}")
    return EXIT_OK


def _say(message: str) -> None:
    print(f"pipeclient: {message}", file=sys.stderr)
