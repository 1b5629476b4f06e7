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
from .._version import __version__

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pipeclient", description="OpenAI-compatible LLM client.")
    parser.add_argument("--version", action="version", version=f"pipeclient {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    chat = commands.add_parser("chat", help="send one chat completion and print the answer")
    chat.add_argument("prompt", help="the user message; '-' reads it from standard input")
    chat.add_argument(
        "--model",
        default=os.environ.get("PIPECLIENT_MODEL", "gpt-4o-mini"),
        help="model name (default: $PIPECLIENT_MODEL or gpt-4o-mini)",
    )
    chat.add_argument(
        "--base-url",
        help="the backend's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 "
        "(default: $PIPECLIENT_BASE_URL, else $OPENAI_BASE_URL)",
    )
    chat.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable holding the API key, so the key stays out of the "
        "command line (default: PIPECLIENT_API_KEY, else OPENAI_API_KEY)",
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
    from .store import add_store_commands

    add_store_commands(commands)
    from .budget import add_budget_commands

    add_budget_commands(commands)
    from .cache import add_cache_commands

    add_cache_commands(commands)
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
    missing = [s["stream"] for s in status["streams"] if s.get("missing_sdk")]
    if missing:  # a client with this configuration would not start
        print(
            f"pipeclient: enabled without the package it needs: {', '.join(missing)} (see above)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK


_BACKEND_VARIABLES = (
    "PIPECLIENT_BASE_URL",
    "PIPECLIENT_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "PIPECLIENT_GATEWAY_URL",
    "PIPECLIENT_GATEWAY_API_KEY",
)

_NO_BACKEND = (
    "no backend to send the prompt to. Pass --base-url URL (with --api-key-env VAR naming "
    "the variable that holds its key), or set PIPECLIENT_BASE_URL and PIPECLIENT_API_KEY "
    "(OPENAI_API_KEY alone targets api.openai.com; PIPECLIENT_GATEWAY_URL and "
    "PIPECLIENT_GATEWAY_API_KEY the managed gateway), or pass --mock to answer offline"
)


def _chat_backends(args: argparse.Namespace) -> list[Any] | None:
    """The backends the options name; None: the environment's, as `Client()` reads them."""
    from .._client.backends import DEFAULT_OPENAI_BASE_URL, Backend, _env

    env = os.environ
    if args.mock:
        if args.base_url or args.api_key_env:
            raise ConfigError(
                "--mock answers offline, so --base-url and --api-key-env do not apply; "
                "drop one or the other",
                source="pipeclient chat",
            )
        from ..testing import MockBackend

        return [MockBackend().backend()]
    if not args.base_url and not args.api_key_env:
        if _env(env, *_BACKEND_VARIABLES) is None:
            raise ConfigError(_NO_BACKEND, source="pipeclient chat")
        return None
    if args.api_key_env:
        variable = args.api_key_env
        found = _env(env, variable)
        if found is None:
            raise ConfigError(
                "is not set or is empty; export the API key in it, or drop --api-key-env "
                "to read PIPECLIENT_API_KEY (or OPENAI_API_KEY)",
                source=f"environment variable {variable} (named by --api-key-env)",
            )
    else:
        found = _env(env, "PIPECLIENT_API_KEY", "OPENAI_API_KEY")
        if found is None:
            raise ConfigError(
                "--base-url is given but no API key: set PIPECLIENT_API_KEY (or "
                "OPENAI_API_KEY), or name the variable that holds it with --api-key-env VAR; "
                "for a server without authentication any placeholder value works",
                source="pipeclient chat",
            )
    key_source, api_key = f"environment variable {found[0]}", found[1]
    if args.base_url:
        url_source, base_url = "option --base-url", args.base_url
    else:
        found_url = _env(env, "PIPECLIENT_BASE_URL", "OPENAI_BASE_URL")
        url_source, base_url = (
            (f"environment variable {found_url[0]}", found_url[1])
            if found_url
            else ("the default base URL", DEFAULT_OPENAI_BASE_URL)
        )
    source = f"{url_source} with the key from {key_source}"
    return [Backend(source, name="cli", base_url=base_url, api_key=api_key)]


def _chat(args: argparse.Namespace) -> int:
    from .._client.client import Client

    prompt: str = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read().removesuffix("\n")
        if not prompt.strip():
            print(
                "pipeclient: the prompt read from standard input is empty; pipe the message "
                "in (echo 'hello' | pipeclient chat -) or pass it as an argument",
                file=sys.stderr,
            )
            return EXIT_USAGE
    backends = _chat_backends(args)
    options: dict[str, Any] = {} if backends is None else {"backends": backends}
    with Client(**options) as client:
        messages = [{"role": "user", "content": prompt}]
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
