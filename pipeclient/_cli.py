"""The `pipeclient` command. Exit codes: 0 ok, 1 failure found, 2 usage or configuration error."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._exceptions import APIError, ConfigError, PipeclientError

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
    return parser


def _chat(args: argparse.Namespace) -> int:
    from ._client import Client

    options: dict[str, Any] = {}
    if args.mock:
        from .testing import MockBackend

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
