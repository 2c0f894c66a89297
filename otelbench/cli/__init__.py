"""The `otelbench` command line: one module per sub-command.

Each sub-command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` (called with the parsed namespace, returning an exit code).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from otelbench.errors import OtelbenchError

from . import backends, compare, mock, replay, report, run, summarize

EXIT_RUNTIME = 1
EXIT_USAGE = 2

log = logging.getLogger("otelbench")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``otelbench replay: error: ...`` and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level argument parser with every sub-command registered."""
    parser = _Parser(
        prog="otelbench", description="Benchmark LLM providers through OpenTelemetry GenAI instrumentation."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (replay, mock, run, summarize, compare, report, backends):
        module.register(sub)
    for command in sub.choices.values():
        # Also accept `otelbench replay --debug`; SUPPRESS keeps the top-level value otherwise.
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `otelbench` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        # `otelbench` alone runs the default replay against the embedded mock.
        args = parser.parse_args([*(argv or []), "replay"])
    try:
        return int(args.func(args))
    except OtelbenchError as exc:
        if args.debug:
            raise
        print(f"otelbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("otelbench: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # A full disk or a vanished directory while writing results: say what and where.
        if args.debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"otelbench: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_RUNTIME
