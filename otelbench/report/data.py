"""Read what the HTML report draws: result files, their request logs, a history CSV, a sweep CSV.

Every reader raises :class:`~otelbench.errors.UsageError` naming the file (and line) it could not
use, so ``otelbench report`` exits 2 with one line.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from otelbench.errors import UsageError
from otelbench.targets import BenchmarkResult, read_results


@dataclass
class Distributions:
    """Per-request values of one target from its request log (measured, successful requests)."""

    ttft: list[float] = field(default_factory=list)
    duration: list[float] = field(default_factory=list)


@dataclass
class ResultFile:
    """One ``benchmarks-<stamp>.json`` and the request log beside it (if any)."""

    path: Path
    results: list[BenchmarkResult]
    log: Path | None = None
    #: By target id as written in the log (``openai:mock-fast``), not the result id.
    distributions: dict[str, Distributions] = field(default_factory=dict)

    def distribution(self, result: BenchmarkResult) -> Distributions | None:
        """The request-log values of ``result`` (replay results only)."""
        target = result.details.get("target")
        return self.distributions.get(target) if isinstance(target, str) else None


def _log_path(path: Path, results: list[BenchmarkResult]) -> Path | None:
    names = {r.details.get("raw_log") for r in results} - {None}
    for name in sorted(str(n) for n in names):
        candidate = path.parent / Path(name).name  # a name, never a path out of the directory
        if candidate.is_file():
            return candidate
    if path.name.startswith("benchmarks-"):
        guess = path.with_name("requests-" + path.name.removeprefix("benchmarks-")).with_suffix(".jsonl")
        if guess.is_file():
            return guess
    return None


def read_request_log(path: Path) -> dict[str, Distributions]:
    """TTFT and duration of every measured, successful request, by target."""
    out: dict[str, Distributions] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read request log {path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row.get("warmup") or row.get("status") != "ok":
                continue
            dist = out.setdefault(str(row["target"]), Distributions())
            if row.get("ttft_s") is not None:
                dist.ttft.append(float(row["ttft_s"]))
            if row.get("duration_s") is not None:
                dist.duration.append(float(row["duration_s"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path}:{number}: not a request log line ({exc})") from exc
    return out


def load_result_file(path: str | Path) -> ResultFile:
    """Read a results file and, when it has one, its request log."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such results file: {p}")
    results = read_results(p)
    if not results:
        raise UsageError(f"{p} holds no results")
    file = ResultFile(p, results)
    file.log = _log_path(p, results)
    if file.log is not None:
        file.distributions = read_request_log(file.log)
    return file


@dataclass(frozen=True)
class HistoryPoint:
    """One metric of one target in one past run."""

    time: datetime
    target: str
    metric: str
    value: float


HISTORY_COLUMNS = ("timestamp", "target_id", "metric", "value")


def _read_csv(path: Path, what: str, required: tuple[str, ...]) -> tuple[list[str], list[dict[str, str]]]:
    """Column names and rows of a CSV that must have ``required`` columns."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    reader = csv.DictReader(text.splitlines())
    names = list(reader.fieldnames or [])
    missing = [c for c in required if c not in names]
    if missing:
        raise UsageError(f"{path} is not a {what} CSV (missing column {missing[0]!r})")
    return names, list(reader)


def read_history(path: str | Path) -> list[HistoryPoint]:
    """The rows of a history CSV (``timestamp,target_id,metric,value,...``)."""
    p = Path(path)
    _, rows = _read_csv(p, "history", HISTORY_COLUMNS)
    points = []
    for number, row in enumerate(rows, start=2):
        try:
            value = float(row["value"]) if row["value"] not in ("", None) else math.nan
            when = datetime.fromisoformat(row["timestamp"])
            if when.tzinfo is None:  # naive stamps are UTC, as otelbench writes them
                when = when.replace(tzinfo=UTC)
            points.append(HistoryPoint(when, row["target_id"], row["metric"], value))
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{p}:{number}: bad history row ({exc})") from exc
    return points


SWEEP_COLUMNS = ("target", "configuration", "metric", "runs", "mean", "ci95_low", "ci95_high")


@dataclass
class SweepTable:
    """The rows of a sweep CSV and its swept keys (the columns between configuration and metric)."""

    keys: list[str]
    rows: list[dict[str, str]]

    def value(self, row: dict[str, str], column: str) -> float:
        """A numeric cell (NaN when empty)."""
        text = row.get(column) or ""
        return float(text) if text else math.nan


def read_sweep(path: str | Path) -> SweepTable:
    """A sweep CSV written by ``otelbench replay --sweep``."""
    p = Path(path)
    names, rows = _read_csv(p, "sweep", SWEEP_COLUMNS)
    keys = names[names.index("configuration") + 1 : names.index("metric")]
    table = SweepTable(keys, rows)
    for number, row in enumerate(rows, start=2):
        try:
            for column in ("mean", "ci95_low", "ci95_high", *keys):
                table.value(row, column)
        except ValueError as exc:
            raise UsageError(f"{p}:{number}: bad sweep row ({exc})") from exc
    return table


def short_id(result_id: str) -> str:
    """``replay/openai:mock-fast`` -> ``openai:mock-fast``."""
    return result_id.removeprefix("replay/")


__all__ = [
    "Distributions",
    "HistoryPoint",
    "ResultFile",
    "SweepTable",
    "load_result_file",
    "read_history",
    "read_request_log",
    "read_sweep",
    "short_id",
]
