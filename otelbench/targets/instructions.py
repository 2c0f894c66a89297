"""Target ``overhead-instructions``: the ``overhead-peers`` comparison in CPU instructions.

Wall-clock overheads of a few microseconds drown in this VM's noise (its CPU speed switches
between two levels for seconds at a time; ``overhead-peers`` reports p25..p75 ranges of ±100 µs
per call). Instruction counts do not: the same workload (``_instr_worker.py``: non-streamed
``chat.completions.create`` calls and 256-chunk streams through the official ``openai`` SDK
over an in-process transport, the ``overhead-peers`` telemetry setup) runs for each variant
under ``valgrind --tool=callgrind``, counting only the measured loops. A run is repeatable to
~0.01 % (fixed ``PYTHONHASHSEED``, a minimal environment), but the string hashes decide dict and
set layouts, and the allocator's state when the loops start decides how much each free costs;
together they move a variant by up to ~2.5 k instructions per chunk. So each variant runs under
``layouts`` layouts, each a hash seed and a ballast of objects kept alive before the loops, and
the figures are medians over the layouts of the differences within each layout (the
per-layout counts are in the details). Instructions are not time (a cache miss costs more than
an add), but they rank code paths that do similar work reliably.

Variants and virtualenvs are those of ``overhead-peers`` (:data:`otelbench.targets.peers.VARIANTS`),
sync client only. Reported per variant, in thousands of instructions above ``baseline``:
``<v>_kinstr_per_call``, ``<v>_kinstr_per_chunk`` (whole stream / chunks, the per-call cost
amortised in), the same ``_above_floor`` (minus ``sdk_floor``: what the library adds beyond the
OTel SDK calls it cannot avoid), and ``ours_to_<peer>_*`` ratios. Needs ``valgrind`` on PATH
(Debian package ``valgrind``); ~3 minutes per layout on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import BenchmarkError, BenchmarkResult, utc_now_iso
from .peers import _PRICING, VARIANTS, ensure_venv, peers_dir, pins_for

TARGET_ID = "overhead-instructions"
_WORKER = Path(__file__).with_name("_instr_worker.py")
#: The two C iterators the worker runs its counted loops in (see _instr_worker.py).
_CALLS_FN, _STREAMS_FN = "starmap_next", "accumulate_next"


#: Layout ``i`` also keeps ``i * BALLAST_STEP`` small objects alive before the counted loops, so
#: the three layouts start from different allocator states as well as different hash seeds.
BALLAST_STEP = 1531


@dataclass(frozen=True)
class InstructionsConfig:
    """Sizes of the run."""

    calls: int = 100
    streams: int = 4
    chunks: int = 256
    variants: tuple[str, ...] = tuple(v.name for v in VARIANTS)
    layouts: int = 3  # hash seeds (and ballasts) 0..layouts-1, each a run of every variant
    parallel: int = 2  # valgrind runs at once (one per core)
    install_timeout_s: float = 180.0
    run_timeout_s: float = 900.0


@dataclass
class _Run:
    name: str
    status: str = "ok"
    #: Medians over the hash seeds.
    calls_instr: int = 0
    streams_instr: int = 0
    #: Per hash seed: [calls_instr, streams_instr].
    by_seed: dict[int, list[int]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def settle(self) -> None:
        """Set the counts to their medians over the seeds counted."""
        if self.by_seed:
            self.calls_instr = int(statistics.median(c for c, _ in self.by_seed.values()))
            self.streams_instr = int(statistics.median(s for _, s in self.by_seed.values()))


def _inclusive(annotate_output: str, function: str) -> int | None:
    """Inclusive instruction count of ``function`` in ``callgrind_annotate --inclusive=yes`` output."""
    pattern = re.compile(rf"^\s*([\d,]+)\s.*[\s:]{re.escape(function)}\b", re.MULTILINE)
    match = pattern.search(annotate_output)
    return int(match.group(1).replace(",", "")) if match else None


class InstructionsTarget:
    """CPU instructions per call and per chunk of each instrumentation, under callgrind."""

    id = TARGET_ID
    description = "CPU instructions per call / per chunk of ours, the SDK floor and the peers (callgrind)"
    #: Needs valgrind and ~10 minutes (three layouts): not part of a bare `otelbench run`.
    on_request_only = True

    def __init__(self, **overrides: Any) -> None:
        self.config = InstructionsConfig(**overrides)

    def run(self) -> BenchmarkResult:
        """Build or reuse the virtualenvs, count each variant's instructions, return the figures."""
        cfg = self.config
        valgrind, annotate = shutil.which("valgrind"), shutil.which("callgrind_annotate")
        if valgrind is None or annotate is None:
            raise BenchmarkError(
                "valgrind (with callgrind_annotate) not found on PATH: install the valgrind package"
            )
        timestamp = utc_now_iso()
        started = time.monotonic()
        by_name = {v.name: v for v in VARIANTS}
        runs = {name: _Run(name) for name in cfg.variants}
        pythons: dict[str, Path] = {}
        for name in cfg.variants:
            variant = by_name[name]
            outcome = ensure_venv(variant, pins_for(variant), cfg.install_timeout_s)
            if outcome.python is None:
                runs[name].status = f"not installable: {outcome.error}"
            else:
                pythons[name] = outcome.python
        with tempfile.TemporaryDirectory(prefix="otelbench-instr-") as tmp:
            pricing = Path(tmp, "pricing.json")
            pricing.write_text(json.dumps(_PRICING))
            with ThreadPoolExecutor(max(1, cfg.parallel)) as pool:
                for seed in range(max(1, cfg.layouts)):
                    for name, python in pythons.items():
                        pool.submit(
                            self._count, runs[name], seed, python, valgrind, annotate, pricing, Path(tmp)
                        )
        for run in runs.values():
            run.settle()
        for required in ("baseline", "ours"):
            if runs[required].status != "ok":
                raise BenchmarkError(f"{required} variant {runs[required].status}")
        metrics = self._figures(runs)
        details = {
            "config": asdict(cfg),
            "seconds": round(time.monotonic() - started, 1),
            "peers_dir": str(peers_dir()),
            "variants": {name: asdict(run) for name, run in runs.items()},
            "valgrind": subprocess.run(
                [valgrind, "--version"], capture_output=True, text=True
            ).stdout.strip(),
        }
        return BenchmarkResult(TARGET_ID, metrics, timestamp, details=details)

    def _count(
        self, run: _Run, seed: int, python: Path, valgrind: str, annotate: str, pricing: Path, tmp: Path
    ) -> None:
        cfg = self.config
        if run.status != "ok":  # failed under an earlier seed
            return
        out_file = tmp / f"callgrind.{run.name}.{seed}.out"
        command = [
            valgrind, "--tool=callgrind", f"--callgrind-out-file={out_file}", "--collect-atstart=no",
            f"--toggle-collect={_CALLS_FN}", f"--toggle-collect={_STREAMS_FN}",
            # -s -P, not -I: -I implies -E, which would ignore PYTHONHASHSEED below.
            str(python), "-s", "-P", str(_WORKER), "--variant", run.name, "--calls", str(cfg.calls),
            "--streams", str(cfg.streams), "--chunks", str(cfg.chunks), "--pricing", str(pricing),
            "--ballast", str(seed * BALLAST_STEP),
        ]  # fmt: skip
        # A minimal environment: no setting of ours or of the caller (PYTHON*, OTEL_*, ...) reaches
        # the worker, and the process's memory layout does not move with the caller's variables.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/"),
            "PYTHONHASHSEED": str(seed),
        }
        started = time.monotonic()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=cfg.run_timeout_s, env=env)
            run.seconds = round(run.seconds + time.monotonic() - started, 1)
            if done.returncode != 0:
                tail = " | ".join(done.stderr.strip().splitlines()[-3:])
                run.status = f"failed: exit {done.returncode}: {tail}"
                return
            run.checks = json.loads(done.stdout.strip().splitlines()[-1])
            report = subprocess.run(
                [annotate, "--inclusive=yes", str(out_file)], capture_output=True, text=True, timeout=300
            ).stdout
        except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            run.status = f"failed: {type(exc).__name__}: {exc}"
            return
        calls, streams = _inclusive(report, _CALLS_FN), _inclusive(report, _STREAMS_FN)
        if calls is None or streams is None:
            run.status = "failed: the counted loops are missing from callgrind's output"
            return
        run.by_seed[seed] = [calls, streams]
        expected_chunks = cfg.streams * (cfg.chunks + 3)
        spans = int(run.checks.get("spans", 0))
        if run.checks.get("chunks_seen") != expected_chunks:
            run.status = f"failed: saw {run.checks.get('chunks_seen')} chunks, expected {expected_chunks}"
        elif run.name == "baseline" and spans:
            run.status = f"failed: the uninstrumented baseline exported {spans} spans"
        elif run.name != "baseline" and spans < int(run.checks.get("calls", 0)):
            run.status = f"no spans ({spans} for {run.checks.get('calls')} calls)"

    def _figures(self, runs: dict[str, _Run]) -> dict[str, float]:
        cfg = self.config
        base = runs["baseline"]
        per_chunk = cfg.streams * cfg.chunks
        metrics: dict[str, float] = {
            "baseline_kinstr_per_call": base.calls_instr / cfg.calls / 1e3,
            "baseline_kinstr_per_chunk": base.streams_instr / per_chunk / 1e3,
        }
        ok = [name for name, run in runs.items() if name != "baseline" and run.status == "ok"]

        def above(run: _Run, under: _Run) -> tuple[float, float] | None:
            # Differences within each layout, then the median: a layout moves the baseline too,
            # so medians taken apart and subtracted would mix layouts.
            seeds = sorted(set(run.by_seed) & set(under.by_seed))
            if not seeds:
                return None
            calls = statistics.median(run.by_seed[s][0] - under.by_seed[s][0] for s in seeds)
            streams = statistics.median(run.by_seed[s][1] - under.by_seed[s][1] for s in seeds)
            return calls / cfg.calls / 1e3, streams / per_chunk / 1e3

        figures = ("per_call", "per_chunk")
        for name in ok:
            over_base = above(runs[name], base)
            over_floor = above(runs[name], runs["sdk_floor"]) if "sdk_floor" in ok else None
            for suffix, found in (("", over_base), ("_above_floor", over_floor)):
                if found is not None and (suffix == "" or name != "sdk_floor"):
                    for f, value in zip(figures, found, strict=True):
                        metrics[f"{name}_kinstr_{f}{suffix}"] = value
        for name in ok:
            if name in ("ours", "sdk_floor") or "ours" not in ok:
                continue
            for f in figures:
                for suffix in ("", "_above_floor"):
                    peer = metrics.get(f"{name}_kinstr_{f}{suffix}")
                    ours = metrics.get(f"ours_kinstr_{f}{suffix}")
                    if peer is not None and ours is not None:
                        metrics[f"ours_to_{name}_kinstr_{f}{suffix}"] = ours / peer if peer > 0 else math.nan
        return metrics


if __name__ == "__main__":  # pragma: no cover - a convenience for profiling sessions
    print(json.dumps(InstructionsTarget().run().metrics, indent=2), file=sys.stdout)
