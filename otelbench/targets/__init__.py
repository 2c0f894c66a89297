"""The canonical benchmark interface: targets, their results, and where results are written.

A target is any object with an ``id`` and a ``run() -> BenchmarkResult``. Adding one means
writing its class and adding one line to :func:`all_targets`.

Output layout (``write_results``)::

    <output_dir>/raw/benchmarks-<timestamp>.json   every result of one run, full detail
    <output_dir>/summary.md                        the latest run as Markdown tables
    <output_dir>/history.csv                       one row per metric per run (regression checks)

:func:`run_all_benchmarks` adds to every result the process's CPU time and peak RSS
(:func:`with_resource_usage`).

Every file is written atomically (temp file in the same directory, fsync, ``os.replace``), so
an interrupted or failing write never leaves a truncated file behind.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from otelbench.errors import OtelbenchError, UsageError

try:
    import resource
except ImportError:  # Windows: CPU time from os.times(), no peak RSS
    resource = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
DEFAULT_OUTPUT_DIR = "benchmarks/output"


class BenchmarkError(OtelbenchError):
    """A benchmark target could not produce a trustworthy result."""


@dataclass(frozen=True)
class BenchmarkResult:
    """What one target measured in one run."""

    target_id: str
    metrics: dict[str, float]
    timestamp: str  # ISO-8601, UTC
    schema_version: int = SCHEMA_VERSION
    # Context needed to judge the figures: rounds, per-round values, configuration, machine.
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (non-finite metrics become null)."""
        return {
            "target_id": self.target_id,
            "timestamp": self.timestamp,
            "schema_version": self.schema_version,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchmarkResult:
        """Inverse of :meth:`to_json`."""
        metrics = {k: (math.nan if v is None else float(v)) for k, v in data["metrics"].items()}
        return cls(
            target_id=str(data["target_id"]),
            metrics=metrics,
            timestamp=str(data["timestamp"]),
            schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
            details=dict(data.get("details") or {}),
        )


@runtime_checkable
class BenchTarget(Protocol):
    """One benchmark: a stable id and a run that returns its result."""

    id: str

    def run(self) -> BenchmarkResult:
        """Measure and return the result (raise BenchmarkError if it cannot be trusted)."""
        ...


def utc_now_iso() -> str:
    """The current time as ISO-8601 UTC, e.g. ``2025-01-31T12:00:00.123456+00:00``."""
    return datetime.now(UTC).isoformat()


def all_targets() -> list[BenchTarget]:
    """Every registered target, in run order (the one place targets are listed)."""
    # Imported here so that listing the interface never pays for the targets' imports.
    from .breaker import BreakerTarget
    from .cache import CacheTarget
    from .harness_peers import HarnessPeersTarget
    from .instructions import InstructionsTarget
    from .mock_capacity import MockCapacityTarget
    from .overhead import InstrumentationOverheadTarget
    from .peers import PeersOverheadTarget
    from .replay_mock import ReplayMockTarget
    from .retry import RetryTarget
    from .router import RouterTarget

    return [
        InstrumentationOverheadTarget(),
        MockCapacityTarget(),
        CacheTarget(),
        RouterTarget(),
        BreakerTarget(),
        RetryTarget(),
        ReplayMockTarget(),
        PeersOverheadTarget(),
        InstructionsTarget(),
        HarnessPeersTarget(),
    ]


def target_ids() -> list[str]:
    """Ids of every registered target."""
    return [t.id for t in all_targets()]


def select_targets(only: Sequence[str] | None = None) -> list[BenchTarget]:
    """The registered targets named in ``only`` (when None: every target not marked
    ``on_request_only``); unknown ids are a UsageError."""
    targets = all_targets()
    if not only:
        return [t for t in targets if not on_request_only(t)]
    by_id = {t.id: t for t in targets}
    unknown = [i for i in only if i not in by_id]
    if unknown:
        known = ", ".join(sorted(by_id))
        raise UsageError(f"unknown benchmark target {unknown[0]!r} (known: {known})")
    wanted = set(only)
    return [t for t in targets if t.id in wanted]


def on_request_only(target: BenchTarget) -> bool:
    """Whether ``target`` runs only when named (heavy set-up: gigabytes of peer tools, valgrind)."""
    return bool(getattr(target, "on_request_only", False))


def run_all_benchmarks(
    only: Sequence[str] | None = None,
    *,
    on_start: Callable[[BenchTarget], None] | None = None,
) -> list[BenchmarkResult]:
    """Run the selected targets (the default set when ``only`` is None) one after another."""
    results = []
    for target in select_targets(only):
        if on_start is not None:
            on_start(target)
        results.append(with_resource_usage(target.run))
    return results


def process_usage() -> tuple[float, float, float]:
    """This process's user CPU seconds, system CPU seconds and peak RSS (MiB; NaN if unknown)."""
    if resource is None:
        times = os.times()
        return times.user, times.system, math.nan
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss_mib = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return usage.ru_utime, usage.ru_stime, rss_mib


def current_rss_mib() -> float:
    """This process's resident set now (MiB; NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return math.nan
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def with_resource_usage(run: Callable[[], BenchmarkResult]) -> BenchmarkResult:
    """Call ``run`` and add this process's CPU time and peak RSS to its result.

    Metrics ``client_cpu_s`` (user + system CPU seconds of this process during ``run``; child
    processes such as an isolated mock are not included) and ``client_peak_rss_mib`` (the
    process's peak resident set so far: a high-water mark, so it never drops from one target to
    the next); ``details["resources"]`` splits them up and adds the wall time.
    """
    user0, system0, _ = process_usage()
    wall0 = time.monotonic()
    result = run()
    user1, system1, rss = process_usage()
    usage = {
        "cpu_user_s": round(user1 - user0, 3),
        "cpu_system_s": round(system1 - system0, 3),
        "wall_s": round(time.monotonic() - wall0, 3),
        "peak_rss_mib": round(rss, 1),
    }
    metrics = {
        **result.metrics,
        "client_cpu_s": usage["cpu_user_s"] + usage["cpu_system_s"],
        "client_peak_rss_mib": usage["peak_rss_mib"],
    }
    return dataclasses.replace(result, metrics=metrics, details={**result.details, "resources": usage})


# --- output -------------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[IO[str]], object]) -> None:
    """Write a text file atomically: ``write`` fills a temp file that replaces ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        # Never leave the half-written temp file; the previous ``path`` is untouched.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = str(path)  # a failed write (full disk) names no file by itself
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not supported everywhere (e.g. Windows), hence best-effort.
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _file_stamp(now: datetime) -> str:
    # Filename-safe and sortable; colons are not allowed in Windows file names.
    return now.strftime("%Y%m%dT%H%M%SZ")


def write_results(
    results: Sequence[BenchmarkResult], output_dir: str | Path = DEFAULT_OUTPUT_DIR
) -> tuple[Path, Path]:
    """Write the raw JSON and the Markdown summary (and append history); return (raw, summary)."""
    out = Path(output_dir)
    now = datetime.now(UTC)
    raw_dir = out / "raw"
    raw_path = raw_dir / f"benchmarks-{_file_stamp(now)}.json"
    n = 1
    while raw_path.exists():  # two runs in the same second keep both files
        raw_path = raw_dir / f"benchmarks-{_file_stamp(now)}-{n}.json"
        n += 1
    document = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": now.isoformat(),
        "results": [r.to_json() for r in results],
    }

    def dump(fh: IO[str]) -> None:
        json.dump(document, fh, indent=2, sort_keys=False, allow_nan=False)
        fh.write("\n")

    # Raw first: if it cannot be serialised, neither the summary nor the history changes.
    atomic_write(raw_path, dump)
    summary_path = out / "summary.md"
    summary = render_summary(results, raw_path.name)
    atomic_write(summary_path, lambda fh: fh.write(summary))
    _append_history(out / "history.csv", results, raw_path.name)
    return raw_path, summary_path


def read_results(path: str | Path) -> list[BenchmarkResult]:
    """Read the results of one raw JSON file written by :func:`write_results`."""
    p = Path(path)
    try:
        document = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read benchmark results {p}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise UsageError(f"{p} is not a benchmark results file (no 'results' list)")
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise UsageError(f"{p} has schema_version {version}; this otelbench reads {SCHEMA_VERSION}")
    try:
        return [BenchmarkResult.from_json(item) for item in document["results"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{p} has a malformed result: {exc}") from exc


def format_value(value: float) -> str:
    """A metric value for tables: integers plain, others with 3 significant decimals."""
    if not math.isfinite(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}"


def render_summary(results: Sequence[BenchmarkResult], raw_name: str | None = None) -> str:
    """The Markdown summary of one run: one table of metrics per target."""
    lines = ["# Benchmark summary", ""]
    if raw_name:
        lines += [f"Raw results: `raw/{raw_name}`", ""]
    for result in results:
        lines += [f"## {result.target_id}", "", f"Run at {result.timestamp}.", ""]
        lines += ["| metric | value |", "|---|---:|"]
        lines += [f"| {name} | {format_value(value)} |" for name, value in result.metrics.items()]
        note = result.details.get("note")
        if isinstance(note, str) and note:
            lines += ["", note]
        lines.append("")
    return "\n".join(lines)


_HISTORY_HEADER = ("timestamp", "target_id", "metric", "value", "raw_file")


def _append_history(path: Path, results: Sequence[BenchmarkResult], raw_name: str) -> None:
    # Rewritten whole (atomically) rather than appended in place, so it is never half a row.
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if not previous:
        writer.writerow(_HISTORY_HEADER)
    for result in results:
        for name, value in result.metrics.items():
            writer.writerow((result.timestamp, result.target_id, name, repr(float(value)), raw_name))
    text = previous + buf.getvalue()
    atomic_write(path, lambda fh: fh.write(text))


__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "SCHEMA_VERSION",
    "BenchTarget",
    "BenchmarkError",
    "BenchmarkResult",
    "all_targets",
    "atomic_write",
    "read_results",
    "render_summary",
    "run_all_benchmarks",
    "select_targets",
    "target_ids",
    "utc_now_iso",
    "with_resource_usage",
    "write_results",
]
