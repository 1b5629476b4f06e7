"""Finding and reading `.pipelex/telemetry.toml`, and checking its tables and keys."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

# The TOML parser, difflib and the configuration model are imported where a file is read
# or checked: a client that finds no file never loads them.

__all__ = [
    "FILE_VARIABLE",
    "KeyPath",
    "check_tables",
    "find_telemetry_file",
    "key_name",
    "read_toml",
    "unknown",
]

KeyPath = tuple[str | int, ...]

FILE_VARIABLE = "PIPECLIENT_TELEMETRY_FILE"
GATEWAY_REFUSAL = (
    "the gateway telemetry stream cannot be configured or turned off: it is on whenever "
    "the managed gateway is a call's backend. Use another backend, or set DO_NOT_TRACK "
    "(gateway calls then fail)."
)


def key_name(path: KeyPath) -> str:
    """`("otlp", 0, "endpoint")` -> `otlp[0].endpoint`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def find_telemetry_file(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None
) -> Path | None:
    """PIPECLIENT_TELEMETRY_FILE, else ./.pipelex/telemetry.toml, else ~/.pipelex/telemetry.toml.

    A candidate that exists but is not a readable file (a directory, a dangling symlink)
    is an error, never a reason to fall through to the next one.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(FILE_VARIABLE)
    if explicit:
        path = Path(explicit).expanduser()
        _check_candidate(path, f"environment variable {FILE_VARIABLE}={explicit}")
        if not os.path.lexists(path):
            raise ConfigError(
                "the file does not exist; create it with 'pipeclient init telemetry --path "
                f"{explicit}' or unset the variable",
                source=f"environment variable {FILE_VARIABLE}={explicit}",
            )
        return path
    for base in (cwd or Path.cwd(), home or Path.home()):
        candidate = base / ".pipelex" / "telemetry.toml"
        if os.path.lexists(candidate):
            _check_candidate(candidate, str(candidate))
            return candidate
    return None


def _check_candidate(path: Path, source: str) -> None:
    if not os.path.lexists(path):
        return
    try:
        regular = path.is_file()
    except OSError:  # e.g. a symlink loop
        regular = False
    if not regular:
        raise ConfigError(
            "is not a regular file (a directory, a dangling or looping symlink?); "
            "point it at a TOML file",
            source=source,
        )


def read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    reason: str | None = None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        reason = f"cannot be read: {exc.strerror or type(exc).__name__}"
    except UnicodeDecodeError:
        reason = "cannot be read: it is not UTF-8 text"
    if reason is None:
        try:
            data: dict[str, Any] = tomllib.loads(text)
            return data
        except tomllib.TOMLDecodeError as exc:
            reason = f"is not valid TOML: {exc}"
        except RecursionError:
            reason = "is not valid TOML: values are nested too deeply"
    raise ConfigError(reason, source=str(path))


def unknown(kind: str, name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind}{hint} (known: {', '.join(known)})"


def check_tables(raw: Mapping[str, Any], where: str) -> None:
    """Known tables and keys, in the right shape (`[table]`, `[[otlp]]`)."""
    from .models import section_models

    tables = section_models()
    for name, value in raw.items():
        if name == "gateway":
            raise ConfigError(GATEWAY_REFUSAL, source=where, key="gateway")
        if name not in tables:
            raise ConfigError(unknown("table", name, list(tables)), source=where, key=name)
        if name == "otlp":
            if not isinstance(value, list):
                raise ConfigError(
                    "must be an array of tables: write [[otlp]], not [otlp]", source=where, key=name
                )
            items: list[tuple[tuple[str | int, ...], Any]] = [
                ((name, index), item) for index, item in enumerate(value)
            ]
        else:
            if isinstance(value, list):
                raise ConfigError(
                    f"must be a table: write [{name}], not [[{name}]]", source=where, key=name
                )
            items = [((name,), value)]
        for path, item in items:
            check_keys(item, tables[name], path, where)


def check_keys(item: Any, model: type[BaseModel], path: tuple[str | int, ...], where: str) -> None:
    if not isinstance(item, Mapping):
        raise ConfigError("must be a table", source=where, key=key_name(path))
    for key in item:
        if key not in model.model_fields:
            raise ConfigError(
                unknown("key", str(key), list(model.model_fields)),
                source=where,
                key=key_name((*path, key)),
            )
