"""`pipeclient cache ...`: the local response cache's status, prune and clear.

The file and key are those `[cache]` configures (`path`, `key`, or the `[store]` key
when the store is on), whether or not `enabled` is set. Looking never makes a file. Exit
codes as for every command: 0 ok, 1 a clear that could not empty the write-ahead log
(another process has the file open), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .._config.settings import TelemetrySettings
    from .._store.cache import ResponseCache

__all__ = ["add_cache_commands"]

EXIT_OK, EXIT_FAILURE = 0, 1

_Parser = TypeVar("_Parser", bound=argparse.ArgumentParser)


def add_cache_commands(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    cache = subparsers.add_parser("cache", help="the local response cache: status, prune, clear")
    what = cache.add_subparsers(dest="what", metavar="WHAT", parser_class=type(cache))
    what.required = True
    status = what.add_parser("status", help="the file, its encryption, and the answers it holds")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=_status)
    prune = what.add_parser(
        "prune", help="delete answers past ttl_seconds, then the least used beyond max_entries"
    )
    prune.set_defaults(run=_prune)
    clear = what.add_parser("clear", help="delete every answer, or one user's (--user-id)")
    clear.add_argument("--user-id", help="delete only the answers of calls made with this user_id")
    clear.set_defaults(run=_clear)
    for command in (status, prune, clear):
        command.add_argument("--file", help="read this telemetry.toml instead of the usual lookup")


@contextlib.contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[ResponseCache | None, TelemetrySettings]]:
    """The configured cache, opened (None when its file does not exist), closed after."""
    from .._client.cache import open_response_cache
    from .._config.settings import load_settings

    settings = load_settings(file=args.file)
    if not Path(settings.config.cache.path).expanduser().is_file():
        yield None, settings
        return
    cache = open_response_cache(settings)
    try:
        yield cache, settings
    finally:
        cache.close()


def _status(args: argparse.Namespace) -> int:
    from .._config.settings import where_value

    with _opened(args) as (cache, settings):
        config = settings.config.cache
        found = cache.status() if cache is not None else None
        sealed = cache.sealed if cache is not None else None
    path = Path(config.path).expanduser()
    status: dict[str, Any] = {
        "enabled": config.enabled,
        "enabled_source": where_value(("cache", "enabled"), settings.sources),
        "path": str(path.absolute()),
        "exists": found is not None,
        "ttl_seconds": config.ttl_seconds,
        "max_entries": config.max_entries,
        "encrypted": sealed,
        "entries": found.entries if found else 0,
        "live": found.live if found else 0,
        "other_key": found.other_key if found else 0,
        "file_bytes": found.file_bytes if found else 0,
    }
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    on = "on" if config.enabled else "off"
    print(f"response cache: {on} ({status['enabled_source']})")
    if found is None:
        print(f"  file:       {status['path']} (none yet)")
        return EXIT_OK
    how = "AES-256-GCM" if sealed else "no: answers are kept as they came (set [cache] key)"
    print(f"  file:       {status['path']} ({found.file_bytes} bytes)")
    print(f"  encrypted:  {how}")
    print(f"  answers:    {found.entries} ({found.live} servable within {config.ttl_seconds} s)")
    print(f"  limit:      {config.max_entries} answers")
    if found.other_key:
        print(f"  other key:  {found.other_key} answers this key cannot read (never served)")
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    with _opened(args) as (cache, _settings):
        gone = cache.prune() if cache is not None else 0
    print(f"deleted {gone} answer(s): expired, or least used beyond max_entries")
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    with _opened(args) as (cache, _settings):
        if cache is None:
            print("no cache file: nothing to clear")
            return EXIT_OK
        gone, scrubbed = cache.clear(args.user_id)
        other = cache.status().other_key if args.user_id is not None else 0
    whose = f" of user {args.user_id!r}" if args.user_id is not None else ""
    print(f"deleted {gone} answer(s){whose} from {cache.path}")
    if other:
        _say(
            f"{other} answer(s) are sealed under another key, and whose they are cannot be "
            "told without it: run again with that [cache] key, or clear without --user-id"
        )
    if not scrubbed:
        _say(
            "the write-ahead log could not be emptied: another process has the cache open, "
            "and the deleted answers' bytes may stay in the -wal file until it closes it; "
            "run `pipeclient cache clear` again then"
        )
        return EXIT_FAILURE
    return EXIT_OK


def _say(message: str) -> None:
    print(f"pipeclient: {message}", file=sys.stderr)
