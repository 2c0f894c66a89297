"""`otelbench report`: a self-contained HTML report of benchmark results.

Usage::

    otelbench report benchmarks/output/raw/benchmarks-<stamp>.json [MORE.json ...] \\
        --history benchmarks/output/history.csv --sweep benchmarks/output/raw/sweep-<stamp>.csv \\
        -o report.html

Inputs: result files (``BenchmarkResult`` JSON; a replay's request log beside it supplies the
per-request values), optionally a history CSV and a sweep CSV. The page holds inline SVG and
CSS and a few lines of inline script; it loads nothing from the network. Modules: ``data``
(readers), ``svg`` (charts), ``html`` (the page). See ``docs/report.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from otelbench.errors import UsageError
from otelbench.targets import atomic_write

from .data import load_result_file, read_history, read_sweep
from .html import render_html


def build_report(
    results: Sequence[str | Path],
    *,
    history: str | Path | None = None,
    history_metric: str = "ttft_p50_s",
    sweep: str | Path | None = None,
) -> str:
    """Read every input (UsageError naming a bad one) and render the HTML."""
    files = [load_result_file(p) for p in results]
    return render_html(
        files,
        history=read_history(history) if history else None,
        history_metric=history_metric,
        sweep=read_sweep(sweep) if sweep else None,
    )


def write_report(html: str, output: str | Path) -> Path:
    """Write the report atomically; UsageError if the path cannot be written."""
    path = Path(output)
    try:
        atomic_write(path, lambda fh: fh.write(html))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


__all__ = ["build_report", "render_html", "write_report"]
