"""``otelbench run``: run the registered benchmark targets and write their results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otelbench.targets import (
    DEFAULT_OUTPUT_DIR,
    BenchmarkResult,
    BenchTarget,
    all_targets,
    format_value,
    on_request_only,
    run_all_benchmarks,
    select_targets,
    write_results,
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``run`` sub-command to the top-level parser's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the benchmark targets (all by default)",
        description="Run benchmark targets; write raw JSON and a Markdown summary under --output-dir.",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="ID",
        help="run only this target (repeatable); see --list",
    )
    parser.add_argument(
        "--output-dir",
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        help=f"where raw/ and summary.md go (default: {DEFAULT_OUTPUT_DIR})",
    )
    parser.add_argument("--list", action="store_true", help="list the target ids and exit")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the selected targets, write the results, print a table; return the exit code."""
    if args.list:
        for target in all_targets():
            note = " (only with --only)" if on_request_only(target) else ""
            print(f"{target.id}\t{getattr(target, 'description', '')}{note}")
        return 0
    only: Sequence[str] | None = args.only
    select_targets(only)  # unknown ids fail now (UsageError), before any long work starts

    def announce(target: BenchTarget) -> None:
        print(f"running {target.id} ...", file=sys.stderr, flush=True)

    results = run_all_benchmarks(only, on_start=announce)
    raw_path, summary_path = write_results(results, args.output_dir)
    print(render_table(results))
    for result in results:
        for warning in result.details.get("warnings") or []:
            print(f"warning: {result.target_id}: {warning}", file=sys.stderr)
    print(f"\nraw results: {raw_path}\nsummary:     {summary_path}")
    previous = previous_results(raw_path)
    if previous is not None:
        print(f"compare:     otelbench compare {previous} {raw_path}")
    return 0


def previous_results(raw_path: Path) -> Path | None:
    """The results file written before ``raw_path`` in the same directory (None if it is the first)."""
    # By modification time: names of two runs in the same second do not sort in run order.
    others = [p for p in raw_path.parent.glob("benchmarks-*.json") if p != raw_path]
    return max(others, key=lambda p: (p.stat().st_mtime_ns, p.name)) if others else None


def render_table(results: Sequence[BenchmarkResult]) -> str:
    """A plain-text table of every metric of every result, aligned for a terminal."""
    rows = [("target", "metric", "value")]
    for result in results:
        rows += [(result.target_id, name, format_value(value)) for name, value in result.metrics.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for n, (target, metric, value) in enumerate(rows):
        lines.append(f"{target:<{widths[0]}}  {metric:<{widths[1]}}  {value:>{widths[2]}}")
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
