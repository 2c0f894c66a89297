"""``otelbench compare OLD NEW``: flag statistically significant regressions between two result files.

Exit status: 0 no regression, 1 at least one regression, 2 bad input (a missing, unreadable or
invalid file, a bad option). The rules are in :mod:`otelbench.compare`; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from typing import Any

from otelbench.errors import UsageError

EXIT_REGRESSION = 1


def _percentage(text: str) -> float:
    """``5`` or ``5%`` -> 0.05."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage such as 5 or 5%, got {text!r}") from None
    if not 0 <= value < 1000:
        raise argparse.ArgumentTypeError(f"must be within 0..1000 %, got {text!r}")
    return value / 100


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text!r}")
    return value


def _pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"invalid regular expression {text!r}: {exc}") from None


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` sub-command."""
    from otelbench.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="compare two result files; exit 1 on a significant regression",
        description="Compare the metrics of two raw results JSON files (from `otelbench run` or "
        "`otelbench replay`): change per metric, Mann-Whitney test where per-round/per-request "
        "values exist, regressions beyond --threshold. Exit 0 none, 1 regression, 2 bad input.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="OLD NEW, or NEW with --baseline")
    parser.add_argument("--baseline", metavar="FILE", help="the old (reference) results file")
    parser.add_argument(
        "--threshold",
        type=_percentage,
        default=DEFAULT_THRESHOLD,
        metavar="PCT",
        help=f"smallest relative change that counts (default {DEFAULT_THRESHOLD * 100:g}%%)",
    )
    parser.add_argument(
        "--alpha",
        type=_alpha,
        default=DEFAULT_ALPHA,
        help=f"significance level after Holm adjustment (default {DEFAULT_ALPHA:g})",
    )
    parser.add_argument(
        "--all", dest="show_all", action="store_true", help="list every metric, not only the changed ones"
    )
    parser.add_argument(
        "--match",
        type=_pattern,
        metavar="REGEX",
        help="compare only the metrics whose TARGET/METRIC matches, e.g. '_ratio$'",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the comparison as Markdown")
    parser.set_defaults(func=run)
    return parser


def _paths(args: argparse.Namespace) -> tuple[str, str]:
    files: list[str] = list(args.files)
    if args.baseline is not None:
        if len(files) != 1:
            raise UsageError(f"with --baseline give exactly one NEW file, got {len(files)}")
        return args.baseline, files[0]
    if len(files) != 2:
        raise UsageError(f"give OLD and NEW result files (or --baseline OLD NEW), got {len(files)} file(s)")
    return files[0], files[1]


def run(args: argparse.Namespace) -> int:
    """Compare, print the table, write the Markdown if asked; return the exit code."""
    from pathlib import Path

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from otelbench.compare import (
        HEADER,
        compare_results,
        footer_lines,
        load,
        render_markdown,
        rows,
        summary_line,
    )
    from otelbench.targets import atomic_write

    old_path, new_path = _paths(args)
    old, new = load(old_path), load(new_path)
    comparison = compare_results(old, new, threshold=args.threshold, alpha=args.alpha, match=args.match)

    console = Console(highlight=False, soft_wrap=False)
    piped = not console.is_terminal
    if piped:  # plain text, wide enough for the table, no trailing padding
        console = Console(file=io.StringIO(), highlight=False, width=200, no_color=True)
    table = Table(box=box.SIMPLE_HEAD, title=f"{old_path} -> {new_path}", title_justify="left")
    for i, header in enumerate(HEADER):
        table.add_column(header, justify="right" if 2 <= i <= 5 else "left")
    styles = {"regression": "bold red", "improvement": "green"}
    for cells in rows(comparison, args.show_all):
        table.add_row(*cells, style=styles.get(cells[-1]))
    if table.row_count:
        console.print(table)
    console.print(summary_line(comparison))
    for line in footer_lines(comparison):
        console.print(line)
    if piped:
        output = console.file.getvalue()  # type: ignore[attr-defined]
        print("\n".join(line.rstrip() for line in output.splitlines()))
    if args.markdown:
        text = render_markdown(comparison, args.show_all)
        try:
            atomic_write(Path(args.markdown), lambda fh: fh.write(text))
        except OSError as exc:
            raise UsageError(f"cannot write --markdown {args.markdown}: {exc.strerror or exc}") from None
        print(f"markdown: {args.markdown}", file=sys.stderr)
    return EXIT_REGRESSION if comparison.regressions else 0
