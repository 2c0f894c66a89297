"""Compare two benchmark result files: per-metric change, significance test, regressions.

Inputs are raw results JSON files written by ``otelbench run`` or ``otelbench replay``
(``benchmarks/output/raw/benchmarks-*.json``). Every metric present in both (same target id,
same metric name) is compared:

* **change** = (new - old) / |old|.
* **direction**, from the metric's name (first rule that matches wins):

  ========================================================  ===============
  name contains / ends with                                 better when
  ========================================================  ===============
  ``_minus_`` (a signed offset, e.g. client minus recorded)  not judged
  ``_per_s`` (``ops_per_s``, ``requests_per_s``, ``_per_s_per_core``), ``_rps``,
  ``hit_rate``, ``success_rate``, ``attainment``            higher
  a time unit ``_s``, ``_ms``, ``_us``, ``_ns``; ``_mib``, ``_bytes``, ``_usd``;
  ``errors``, ``error_rate``, ``_cv``, ``_ratio`` (a cost relative to a baseline),
  ``rel_diff``, ``mismatches``                              lower
  anything else (counts such as ``requests``, utilisations)  not judged
  ========================================================  ===============

* **significance**: where the per-round or per-request values behind a metric are available on
  both sides, a two-sided Mann-Whitney U test (:func:`otelbench.summary.stats.mann_whitney`) of
  new against old, Holm-adjusted over every test of the comparison. Values come from
  ``details["samples"]`` (``{name: [values]}``, where ``name`` is a metric or a prefix of metrics,
  e.g. ``ttft`` for ``ttft_p50_s``) and, for ``otelbench replay`` results, from the per-request
  raw log named in ``details["raw_log"]`` (next to the JSON file: series ``ttft``, ``duration``,
  ``tpot``, ``itl``). The test is on the whole distribution; the threshold on the metric.
  Spread statistics and extremes (``_std``, ``_cv``, ``_min``, ``_max``) are never tested: a rank
  test of location says little about them.

A **regression** is a judged metric that got worse by more than the threshold (default 5 %), with
a significant test (Holm-adjusted p < alpha, default 0.01) whose shift points the same way. A change beyond the
threshold without values to test is reported as ``untested`` and is not a regression.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from otelbench.errors import UsageError
from otelbench.summary.stats import holm, mann_whitney
from otelbench.targets import BenchmarkResult, read_results

Direction = Literal["lower", "higher"] | None
Verdict = Literal[
    "regression", "improvement", "not significant", "untested", "within threshold", "not judged", "n/a"
]

DEFAULT_THRESHOLD = 0.05
#: A CI gate must not cry wolf: run-to-run noise of a shared machine reaches p ~ 0.02 at times.
DEFAULT_ALPHA = 0.01

_NOT_JUDGED = re.compile(r"_minus_")
_HIGHER = re.compile(r"(_per_s|_rps|hit_rate|success_rate|attainment)(_|$)")
_LOWER = re.compile(
    r"_(s|ms|us|ns|mib|bytes|usd)(_|$)|(^|_)(errors|error_rate|cv|ratio|rel_diff|mismatches)(_|$)"
)
#: Spread and extremes: a rank test of location says little about them, so they are never tested.
_UNTESTABLE = re.compile(r"_(std|cv|min|max)(_|$)")
#: Raw-log fields of ``otelbench replay`` and the series they feed.
_RAW_LOG_SERIES = {"ttft": "ttft_s", "ttfa": "ttfa_s", "duration": "duration_s", "tpot": "tpot_s"}
#: Order of verdicts in the table: what needs attention first.
_ORDER: dict[str, int] = {
    "regression": 0,
    "improvement": 1,
    "not significant": 2,
    "untested": 3,
    "n/a": 4,
    "within threshold": 5,
    "not judged": 6,
}


def direction(metric: str) -> Direction:
    """Whether ``metric`` is better ``lower`` or ``higher`` (None: not judged), from its name."""
    if _NOT_JUDGED.search(metric):
        return None
    if _HIGHER.search(metric):
        return "higher"
    if _LOWER.search(metric):
        return "lower"
    return None


@dataclass(frozen=True)
class MetricChange:
    """One metric of one target, old against new."""

    target_id: str
    metric: str
    old: float
    new: float
    direction: Direction
    change: float  # relative, (new - old) / |old|
    verdict: Verdict
    p_value: float | None = None  # Holm-adjusted; None when not tested
    n_old: int = 0
    n_new: int = 0


@dataclass
class Comparison:
    """The outcome of :func:`compare_results`."""

    old_name: str
    new_name: str
    threshold: float
    alpha: float
    changes: list[MetricChange]
    only_old: list[str] = field(default_factory=list)  # "target/metric" present in one file only
    only_new: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricChange]:
        """The changes judged regressions."""
        return [c for c in self.changes if c.verdict == "regression"]

    def count(self, verdict: str) -> int:
        """How many changes got ``verdict``."""
        return sum(1 for c in self.changes if c.verdict == verdict)


# --- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResultFile:
    """The results of one file and the per-round/per-request values behind their metrics."""

    path: Path
    results: dict[str, BenchmarkResult]
    series: dict[str, dict[str, list[float]]]  # target id -> series name -> values
    notes: list[str]


def load(path: str | Path) -> ResultFile:
    """Read a results JSON file (UsageError naming it if unreadable) and its sample series."""
    p = Path(path)
    results = {r.target_id: r for r in read_results(p)}
    if not results:
        raise UsageError(f"{p} holds no results")
    notes: list[str] = []
    series = {tid: _samples(r.details.get("samples")) for tid, r in results.items()}
    logs: dict[str, list[dict[str, Any]]] = {}
    for tid, result in results.items():
        log_name = result.details.get("raw_log")
        target = result.details.get("target")
        if not isinstance(log_name, str) or not isinstance(target, str):
            continue
        if log_name not in logs:
            logs[log_name] = _read_log(p.parent / Path(log_name).name, notes)
        series[tid] = {**_log_series(logs[log_name], target), **series[tid]}
    return ResultFile(p, results, series, notes)


def _finite(values: Any) -> list[float] | None:
    if not isinstance(values, list):
        return None
    out = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return [v for v in out if math.isfinite(v)] or None


def _samples(raw: Any) -> dict[str, list[float]]:
    if not isinstance(raw, dict):
        return {}
    out = {}
    for name, values in raw.items():
        clean = _finite(values)
        if clean is not None:
            out[str(name)] = clean
    return out


def _read_log(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError) as exc:
        notes.append(f"raw log {path} not used ({exc.__class__.__name__}): its metrics are untested")
        return []
    return [r for r in rows if isinstance(r, dict)]


def _log_series(rows: Iterable[dict[str, Any]], target: str) -> dict[str, list[float]]:
    """Per-request values of one replay target from its raw log (measured, successful requests)."""
    mine = [r for r in rows if r.get("target") == target and not r.get("warmup") and r.get("status") == "ok"]
    out: dict[str, list[float]] = {}
    for name, key in _RAW_LOG_SERIES.items():
        values = _finite([r.get(key) for r in mine if r.get(key) is not None])
        if values:
            out[name] = values
    gaps = _finite([g for r in mine for g in (r.get("chunk_gaps_s") or [])])
    if gaps:
        out["itl"] = gaps
    return out


def series_for(series: Mapping[str, list[float]], metric: str) -> str | None:
    """The series behind ``metric``: its own name, else the longest ``name_`` prefix of it."""
    if metric in series:
        return metric
    prefixes = [name for name in series if metric.startswith(name + "_")]
    return max(prefixes, key=len) if prefixes else None


# --- comparing -----------------------------------------------------------------------------------
def relative_change(old: float, new: float) -> float:
    """(new - old) / |old|; infinite when old is 0 and new is not; NaN when either is not finite."""
    if not (math.isfinite(old) and math.isfinite(new)):
        return math.nan
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - old) / abs(old)


def compare_results(
    old: ResultFile,
    new: ResultFile,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    match: re.Pattern[str] | None = None,
) -> Comparison:
    """Compare every metric present in both files (see the module docstring for the rules).

    ``match`` keeps only the metrics whose ``target_id/metric`` it finds (``re.search``).
    """
    pairs: list[tuple[str, str, str | None]] = []  # target, metric, series
    only_old: list[str] = []
    only_new: list[str] = []
    for tid, result in old.results.items():
        other = new.results.get(tid)
        if other is None:
            only_old += [f"{tid}/{m}" for m in result.metrics]
            continue
        for metric in result.metrics:
            if match is not None and not match.search(f"{tid}/{metric}"):
                continue
            if metric not in other.metrics:
                only_old.append(f"{tid}/{metric}")
                continue
            key_old = series_for(old.series.get(tid, {}), metric)
            key_new = series_for(new.series.get(tid, {}), metric)
            testable = key_old == key_new and not _UNTESTABLE.search(metric)
            pairs.append((tid, metric, key_old if testable else None))
        only_new += [f"{tid}/{m}" for m in other.metrics if m not in result.metrics]
    for tid, result in new.results.items():
        if tid not in old.results:
            only_new += [f"{tid}/{m}" for m in result.metrics]
    if match is not None:
        only_new = [name for name in only_new if match.search(name)]
    if not pairs:
        what = f" matching {match.pattern!r}" if match is not None else ""
        raise UsageError(
            f"{old.path} and {new.path} have no metric{what} in common (same target id and name)"
        )

    # One test per (target, series), Holm-adjusted over the family.
    tests: dict[tuple[str, str], tuple[float, float, int, int]] = {}
    for tid, _metric, key in pairs:
        if key is None or (tid, key) in tests:
            continue
        a, b = new.series[tid][key], old.series[tid][key]
        mw = mann_whitney(a, b)
        if mw is not None:
            tests[(tid, key)] = (mw.p_value, mw.prob_a_greater, len(b), len(a))
    adjusted = dict(zip(tests, holm([t[0] for t in tests.values()]), strict=True))

    changes = []
    for tid, metric, key in pairs:
        o = old.results[tid].metrics[metric]
        n = new.results[tid].metrics[metric]
        test = tests.get((tid, key)) if key is not None else None
        p = adjusted.get((tid, key)) if key is not None else None
        changes.append(_judge(tid, metric, o, n, test, p, threshold, alpha))
    changes.sort(key=lambda c: _ORDER[c.verdict])
    return Comparison(
        old_name=str(old.path),
        new_name=str(new.path),
        threshold=threshold,
        alpha=alpha,
        changes=changes,
        only_old=only_old,
        only_new=only_new,
        notes=old.notes + new.notes,
    )


def _judge(
    tid: str,
    metric: str,
    old: float,
    new: float,
    test: tuple[float, float, int, int] | None,
    p: float | None,
    threshold: float,
    alpha: float,
) -> MetricChange:
    way = direction(metric)
    change = relative_change(old, new)
    n_old, n_new = (test[2], test[3]) if test else (0, 0)

    def result(verdict: Verdict) -> MetricChange:
        return MetricChange(tid, metric, old, new, way, change, verdict, p, n_old, n_new)

    if math.isnan(change):
        return result("n/a")
    if way is None:
        return result("not judged")
    if abs(change) <= threshold:
        return result("within threshold")
    if test is None or p is None:
        return result("untested")
    # The distribution must have moved the way the metric did (new above old when it grew).
    shifted_up = test[1] > 0.5
    if p >= alpha or shifted_up != (change > 0):
        return result("not significant")
    worse = change > 0 if way == "lower" else change < 0
    return result("regression" if worse else "improvement")


# --- rendering -----------------------------------------------------------------------------------
HEADER = ("target", "metric", "old", "new", "change", "p (Holm)", "verdict")
_QUIET = ("within threshold", "not judged", "n/a")


def rows(comparison: Comparison, show_all: bool = False) -> list[tuple[str, ...]]:
    """Table rows (cells as text): changes beyond the threshold, or every change with ``show_all``."""
    out: list[tuple[str, ...]] = []
    for c in comparison.changes:
        if not show_all and c.verdict in _QUIET:
            continue
        p = "-" if c.p_value is None else f"{c.p_value:.2g}"
        out.append((c.target_id, c.metric, _num(c.old), _num(c.new), _pct(c.change), p, c.verdict))
    return out


def _num(value: float) -> str:
    # Four significant digits: seconds, microseconds and ops/s all stay readable.
    return f"{value:.4g}" if math.isfinite(value) else "n/a"


def _pct(change: float) -> str:
    if math.isnan(change):
        return "n/a"
    if math.isinf(change):
        return "+inf" if change > 0 else "-inf"
    return f"{change * 100:+.1f}%"


def summary_line(comparison: Comparison) -> str:
    """One line: how many metrics were compared and what was found."""
    c = comparison
    tested = sum(1 for x in c.changes if x.p_value is not None)
    return (
        f"{len(c.changes)} metrics compared ({tested} with a significance test), threshold "
        f"{c.threshold * 100:g}%, alpha {c.alpha:g}: {c.count('regression')} regression(s), "
        f"{c.count('improvement')} improvement(s), {c.count('not significant')} not significant, "
        f"{c.count('untested')} untested"
    )


def render_markdown(comparison: Comparison, show_all: bool = False) -> str:
    """The comparison as Markdown."""
    c = comparison
    lines = [
        "# Benchmark comparison",
        "",
        f"Old: `{c.old_name}`  ",
        f"New: `{c.new_name}`",
        "",
        summary_line(c) + ".",
        "",
    ]
    table = rows(c, show_all)
    if table:
        lines += ["| " + " | ".join(HEADER) + " |", "|---|---|---:|---:|---:|---:|---|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in table]
        lines.append("")
    lines += footer_lines(c)
    return "\n".join(lines) + "\n"


def footer_lines(c: Comparison) -> list[str]:
    """Metrics found in one file only, and notes about unreadable raw logs."""
    out = []
    if c.only_old:
        out.append(f"Only in old: {len(c.only_old)} metric(s), e.g. {', '.join(c.only_old[:3])}.")
    if c.only_new:
        out.append(f"Only in new: {len(c.only_new)} metric(s), e.g. {', '.join(c.only_new[:3])}.")
    out += c.notes
    return out


__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_THRESHOLD",
    "Comparison",
    "MetricChange",
    "ResultFile",
    "compare_results",
    "direction",
    "footer_lines",
    "load",
    "relative_change",
    "render_markdown",
    "rows",
    "series_for",
    "summary_line",
]
