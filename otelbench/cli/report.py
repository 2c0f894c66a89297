"""`otelbench report`: render result files (plus a history and a sweep CSV) as one HTML page.

Exit codes: 0 written; 2 a missing or unreadable input, or an unwritable output (one line).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `report` sub-command."""
    p = sub.add_parser(
        "report",
        help="self-contained HTML report of result files (charts, comparison, sweep, history)",
        description="Render benchmark results as one HTML file with inline SVG charts. See docs/report.md.",
    )
    p.add_argument("results", nargs="+", metavar="RESULT.json", help="raw/benchmarks-<stamp>.json file(s)")
    p.add_argument(
        "--history",
        metavar="CSV",
        help="history CSV for the trend chart (e.g. benchmarks/output/history.csv)",
    )
    p.add_argument(
        "--history-metric",
        default="ttft_p50_s",
        metavar="NAME",
        help="metric of the trend chart (default ttft_p50_s)",
    )
    p.add_argument("--sweep", metavar="CSV", help="sweep CSV (raw/sweep-<stamp>.csv) for throughput vs load")
    p.add_argument(
        "-o", "--output", default="report.html", metavar="FILE", help="where to write (default report.html)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the inputs, write the report, print its path."""
    from otelbench.report import build_report, write_report

    html = build_report(
        args.results, history=args.history, history_metric=args.history_metric, sweep=args.sweep
    )
    path = write_report(html, args.output)
    print(f"report: {path} ({len(html.encode()) // 1024} KB)")
    return 0
