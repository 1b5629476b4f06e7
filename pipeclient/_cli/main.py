"""The `pipeclient` command. Exit codes: 0 ok, 1 failure found, 2 usage or configuration error."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .._exceptions import APIError, ConfigError, PipeclientError

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pipeclient", description="OpenAI-compatible LLM client.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    chat = commands.add_parser("chat", help="send one chat completion and print the answer")
    chat.add_argument("prompt", help="the user message")
    chat.add_argument(
        "--model",
        default=os.environ.get("PIPECLIENT_MODEL", "gpt-4o-mini"),
        help="model name (default: $PIPECLIENT_MODEL or gpt-4o-mini)",
    )
    chat.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    chat.add_argument(
        "--mock",
        action="store_true",
        help="answer from pipeclient.testing.MockBackend, offline, instead of a real backend",
    )
    chat.set_defaults(run=_chat)

    init = commands.add_parser("init", help="write a configuration file")
    init_what = init.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    init_what.required = True
    init_telemetry = init_what.add_parser(
        "telemetry", help="write .pipelex/telemetry.toml with every stream off"
    )
    init_telemetry.add_argument(
        "--path", default=".pipelex/telemetry.toml", help="where to write it (default: %(default)s)"
    )
    init_telemetry.add_argument("--force", action="store_true", help="overwrite an existing file")
    init_telemetry.set_defaults(run=_init_telemetry)

    telemetry = commands.add_parser("telemetry", help="inspect the telemetry configuration")
    telemetry_what = telemetry.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    telemetry_what.required = True
    status = telemetry_what.add_parser(
        "status", help="each stream: on or off and why, where it sends, what it receives"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--file", help="read this file instead of the usual lookup")
    status.set_defaults(run=_telemetry_status)
    preview = telemetry_what.add_parser(
        "preview", help="the exact payload each enabled stream would receive for a sample call"
    )
    preview.add_argument("--file", help="read this file instead of the usual lookup")
    preview.set_defaults(run=_telemetry_preview)

    from .audit import add_audit_commands

    add_audit_commands(commands)
    return parser


def _telemetry_preview(args: argparse.Namespace) -> int:
    from .._config.settings import load_settings
    from .preview import preview

    result = preview(load_settings(file=args.file))
    if not result["destinations"]:
        reason = "DO_NOT_TRACK is set" if result["do_not_track"] else "no stream is enabled"
        print(
            f"nothing would be sent: {reason} (see 'pipeclient telemetry status')", file=sys.stderr
        )
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return EXIT_OK


def _init_telemetry(args: argparse.Namespace) -> int:
    from .._config.models import TelemetryConfig, default_file_text
    from .._config.settings import read_toml

    path = Path(args.path).expanduser()
    problem = None
    if path.is_symlink():
        problem = "is a symbolic link; pass the path of the file itself"
    elif path.is_dir():
        problem = "is a directory; pass a file path"
    elif os.path.lexists(path) and not args.force:
        problem = "already exists; pass --force to overwrite it"
    if problem:
        print(f"pipeclient: {path} {problem}", file=sys.stderr)
        return EXIT_USAGE
    text = default_file_text()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        print(f"pipeclient: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    # The file must load back into the defaults exactly.
    if TelemetryConfig.model_validate(read_toml(path)) != TelemetryConfig():
        print(f"pipeclient: {path} does not load back into the defaults", file=sys.stderr)
        return EXIT_FAILURE
    print(f"wrote {path} (every stream off)")
    return EXIT_OK


def _telemetry_status(args: argparse.Namespace) -> int:
    from .._config.settings import load_settings
    from .status import describe, render_text

    settings = load_settings(file=args.file)
    status = describe(settings)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        sys.stdout.write(render_text(status))
    return EXIT_OK


def _chat(args: argparse.Namespace) -> int:
    from .._client.client import Client

    options: dict[str, Any] = {}
    if args.mock:
        from ..testing import MockBackend

        options["backends"] = [MockBackend().backend()]
    with Client(**options) as client:
        messages = [{"role": "user", "content": args.prompt}]
        if args.stream:
            for chunk in client.chat.completions.create(
                model=args.model, messages=messages, stream=True
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    sys.stdout.write(chunk.choices[0].delta.content)
                    sys.stdout.flush()
            sys.stdout.write("\n")
        else:
            response = client.chat.completions.create(model=args.model, messages=messages)
            print(response.choices[0].message.content or "")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"pipeclient: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except APIError as exc:
        print(f"pipeclient: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except PipeclientError as exc:
        print(f"pipeclient: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
