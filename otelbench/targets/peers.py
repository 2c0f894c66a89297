"""Target ``overhead-peers``: our OpenAI instrumentation's cost next to the other instrumentations'.

The same workload as ``instrumentation-overhead`` (the official ``openai`` SDK over an in-process
``httpx2.MockTransport``: a non-streamed ``chat.completions.create``, a 256-chunk stream, and both
through ``AsyncOpenAI``), run once per *variant*, each in its own process and its own virtualenv:

* ``baseline``: uninstrumented;
* ``sdk_floor``: no instrumentation library, only the OTel SDK calls a semconv-complete
  instrumentation must make (one span, the duration and token-usage records; TTFT and time per
  chunk for streams), made by hand around each call: the floor under every variant below;
* ``ours``: ``otelbench-instrumentation`` installed editable from this working tree;
* ``openllmetry``: ``opentelemetry-instrumentation-openai`` (Traceloop);
* ``openlit``: ``openlit`` with only its openai instrumentor on, events off, a local pricing file;
* ``openai_v2``: the official ``opentelemetry-instrumentation-openai-v2``.

Every process builds the same OTel SDK setup (``_peer_worker.py``): ``TracerProvider`` +
``BatchSpanProcessor`` into a span-counting exporter, ``MeterProvider`` + ``InMemoryMetricReader``,
message-content capture off. The pins are in :data:`VARIANTS`; ``openai`` and its dependencies are
pinned to the versions this project runs, in every virtualenv.

Virtualenvs live under ``~/.cache/otelbench/peers/<variant>-<hash of its pins>/`` (override with
``OTELBENCH_PEERS_DIR``), built with ``uv venv`` + ``uv pip install`` on first use and reused
after. A variant that cannot be installed is reported as ``not installable: <reason>``; one whose
process fails as ``failed: <reason>``; one that exported no span as ``no spans``. None of these
get figures, so a silent no-op is never reported as fast.

Method: the workers stay alive; rounds interleave all (phase, variant) batches in an order that
rotates every round (:func:`otelbench.targets._measure.run_rounds`), so a slow phase of a shared
machine hits all variants alike. A batch's figure is its mean time per operation (including the
garbage collections it causes). Reported, per variant, as the median over rounds of the paired
difference (variant round r - baseline round r):

* ``<variant>_per_call_us``: µs added to a non-streamed call;
* ``<variant>_per_chunk_us``: µs added to a 256-chunk stream (request to exhaustion) / 256, i.e.
  the fixed per-call cost amortised in (an upper bound on the marginal per-chunk cost);
* ``<variant>_async_per_call_us``, ``<variant>_async_per_chunk_us``: the same with ``AsyncOpenAI``;
* ``ours_to_<peer>_per_call`` / ``..._per_chunk`` (+ ``async_``): our overhead / the peer's;
* ``<variant>_<figure>_above_floor_us``: the variant's figure minus ``sdk_floor``'s, i.e. what the
  library adds beyond the SDK work it cannot avoid, and ``ours_to_<peer>_<figure>_above_floor``;
* ``<variant>_spans_per_call``: spans exported per call made.

``details["variants"]`` holds, per variant: status, pins, installed versions, spans and metric
names seen, and the spread (min, p25, p75, max) of every figure over rounds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from . import BenchmarkError, BenchmarkResult, utc_now_iso
from ._measure import Rounds, rounded, run_rounds

TARGET_ID = "overhead-peers"
WORKER = Path(__file__).with_name("_peer_worker.py")
_REPO = Path(__file__).resolve().parents[2]
_INSTRUMENTATION = _REPO / "instrumentation"
PHASES = ("sync_call", "sync_stream", "async_call", "async_stream")
_FIGURE = {
    "sync_call": "per_call",
    "sync_stream": "per_chunk",
    "async_call": "async_per_call",
    "async_stream": "async_per_chunk",
}
# Same for every worker, so no inherited OTEL_*/TRACELOOP_*/OPENLIT_* setting changes one variant.
# Content capture is off by default everywhere but OpenLLMetry (ours and openlit are also told so
# in code). OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT stays unset: util-genai rejects
# "false" and logs a warning on every call, which would be timed as openai-v2's overhead.
_WORKER_ENV = {"TRACELOOP_TRACE_CONTENT": "false"}
# openlit's cost path runs as in production, without fetching its price list from the network.
_PRICING = {"chat": {"gpt-4o-mini": {"promptPrice": 0.00015, "completionPrice": 0.0006}}}


@dataclass(frozen=True)
class Variant:
    """One variant's virtualenv: what is installed beyond the common pins, and why."""

    name: str
    requirements: tuple[str, ...] = ()
    # Distributions forced to the project's version past the peer's declared bounds (recorded).
    overrides: tuple[str, ...] = ()
    otel_sdk: str | None = None  # None: the project's opentelemetry-sdk version
    note: str = ""


VARIANTS: tuple[Variant, ...] = (
    Variant("baseline"),
    Variant(
        "sdk_floor",
        note="no instrumentation library: one span and the duration, token-usage (and for streams TTFT "
        "and time-per-chunk) records with our attribute sets, done by hand around each call",
    ),
    Variant("ours", ("-e", str(_INSTRUMENTATION))),
    Variant("openllmetry", ("opentelemetry-instrumentation-openai==0.62.4",)),
    Variant(
        "openlit",
        ("openlit==1.45.0",),
        overrides=("openai",),
        otel_sdk="1.45.1",
        note="openlit 1.45.0 declares openai<3: installed with openai overridden to the project's "
        "version; its instrumentation dependencies need opentelemetry-semantic-conventions<=0.66b1, "
        "hence opentelemetry-sdk 1.45.1",
    ),
    Variant(
        "openai_v2",
        (
            "opentelemetry-instrumentation-openai-v2==2.4b0",
            "opentelemetry-util-genai==1.1b0",
            "httpx==0.28.1",
        ),
        note="imports httpx, which openai 3 no longer depends on; opentelemetry-util-genai 1.2b0 "
        "and later lack the module it imports",
    ),
)


@dataclass(frozen=True)
class PeersConfig:
    """Sizes of the run; the defaults keep the rounds near a minute on 2 cores."""

    rounds: int = 40
    calls_per_round: int = 20  # non-streamed calls per variant per round
    streams_per_round: int = 2  # streams per variant per round
    chunks: int = 256
    time_budget_s: float = 75.0  # rounds stop early (after min_rounds) rather than exceed this
    min_rounds: int = 3
    variants: tuple[str, ...] = tuple(v.name for v in VARIANTS)
    install_timeout_s: float = 180.0  # per uv command
    batch_timeout_s: float = 120.0


# --- virtualenvs ------------------------------------------------------------------------------
def peers_dir() -> Path:
    """Where the variants' virtualenvs are cached."""
    configured = os.environ.get("OTELBENCH_PEERS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "otelbench" / "peers"


def _requirement_closure(dist: str) -> dict[str, str]:
    """``dist`` and every installed distribution it requires (no extras), with their versions."""
    found: dict[str, str] = {}
    todo = [dist]
    for _ in range(500):  # bounded walk over the dependency graph
        if not todo:
            break
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            found[key] = metadata.version(name)
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
            if match:
                todo.append(match.group(0))
    return found


@dataclass
class Pins:
    """What one variant's virtualenv is built from."""

    requirements: list[str]
    constraints: list[str]
    overrides: list[str]
    python: str

    def digest(self) -> str:
        """A short hash of everything that decides the virtualenv's contents."""
        data = asdict(self)
        if any(str(_INSTRUMENTATION) in r for r in self.requirements):
            # Editable: code changes need no rebuild, dependency changes do.
            pyproject = _INSTRUMENTATION / "pyproject.toml"
            data["instrumentation"] = pyproject.read_text() if pyproject.exists() else ""
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def pins_for(variant: Variant) -> Pins:
    """The variant's requirements, constraints (the project's openai stack) and overrides."""
    stack = _requirement_closure("openai")
    openai_pin = f"openai=={stack['openai']}"
    sdk = variant.otel_sdk or metadata.version("opentelemetry-sdk")
    return Pins(
        requirements=[openai_pin, f"opentelemetry-sdk=={sdk}", *variant.requirements],
        constraints=sorted(f"{name}=={version}" for name, version in stack.items()),
        overrides=[f"{name}=={stack[name]}" for name in variant.overrides],
        python=".".join(map(str, sys.version_info[:3])),
    )


@dataclass
class VenvOutcome:
    """The virtualenv of one variant, or why there is none."""

    python: Path | None
    path: Path
    built: bool = False
    error: str = ""


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(kept[-lines:])[:500]


def ensure_venv(variant: Variant, pins: Pins, timeout_s: float) -> VenvOutcome:
    """Reuse the variant's cached virtualenv, or build it with uv; never raises for a failed install."""
    path = peers_dir() / f"{variant.name}-{pins.digest()}"
    if variant.name == "ours" and not _INSTRUMENTATION.is_dir():
        return VenvOutcome(None, path, error=f"instrumentation source not found at {_INSTRUMENTATION}")
    return build_venv(path, pins, timeout_s)


def venv_python(path: Path) -> Path:
    """The interpreter of the virtualenv at ``path``."""
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def build_venv(path: Path, pins: Pins, timeout_s: float, base_python: str | None = None) -> VenvOutcome:
    """Reuse the virtualenv at ``path`` if complete, else build it from ``pins`` with uv (``uv venv`` +
    ``uv pip install``, each bounded by ``timeout_s``); never raises for a failed install."""
    python = venv_python(path)
    marker = path / "otelbench-pins.json"
    if marker.exists() and python.exists():
        return VenvOutcome(python, path)
    uv = shutil.which("uv")
    if uv is None:
        return VenvOutcome(None, path, error="uv not found on PATH")
    shutil.rmtree(path, ignore_errors=True)  # a half-built one from an interrupted run
    path.parent.mkdir(parents=True, exist_ok=True)
    interpreter = base_python or str(getattr(sys, "_base_executable", sys.executable))
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp, "constraints.txt")
        constraints.write_text("\n".join(pins.constraints) + "\n")
        overrides = Path(tmp, "overrides.txt")
        overrides.write_text("\n".join(pins.overrides) + "\n")
        commands = [
            [uv, "venv", "--quiet", "--python", interpreter, str(path)],
            [uv, "pip", "install", "--quiet", "--python", str(python), "--constraint", str(constraints)]
            + (["--override", str(overrides)] if pins.overrides else [])
            + pins.requirements,
        ]
        for command in commands:
            try:
                done = subprocess.run(
                    command, cwd=tmp, capture_output=True, text=True, timeout=timeout_s, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                shutil.rmtree(path, ignore_errors=True)
                return VenvOutcome(None, path, error=f"{command[1]} {command[2]}: {exc}")
            if done.returncode != 0:
                shutil.rmtree(path, ignore_errors=True)
                return VenvOutcome(None, path, error=_tail(done.stderr or done.stdout))
    marker.write_text(json.dumps(asdict(pins), indent=2) + "\n")
    return VenvOutcome(python, path, built=True)


# --- worker processes -------------------------------------------------------------------------
def env_without_telemetry_settings() -> dict[str, str]:
    """This process's environment minus OTEL_*, TRACELOOP_* and OPENLIT_* settings, so that none
    inherited from the caller changes one variant or tool and not the others."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_", "OPENLIT_"))}


def machine_load(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """Cores and load average before and after a comparison run (for its ``details``)."""
    return {
        "cpu_count": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


class WorkerFailed(Exception):
    """A worker process died, timed out or answered nonsense."""


class WorkerProcess:
    """One variant's ``_peer_worker.py`` process and its line protocol."""

    def __init__(self, name: str, python: Path, chunks: int, pricing: Path, log: IO[str]) -> None:
        env = env_without_telemetry_settings()
        env.update(_WORKER_ENV)
        self.name = name
        self.log = log
        self.proc = subprocess.Popen(
            [
                str(python),
                "-I",
                str(WORKER),
                "--variant",
                name,
                "--chunks",
                str(chunks),
                "--pricing",
                str(pricing),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )

    def read(self, timeout_s: float) -> dict[str, Any]:
        """The worker's next answer."""
        stdout = self.proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout_s)
        line = stdout.readline() if ready else b""
        if not line:
            self.close()
            reason = "timed out" if not ready else f"exited with {self.proc.returncode}"
            raise WorkerFailed(f"{reason}: {self.stderr_tail()}")
        try:
            answer = json.loads(line)
        except ValueError as exc:
            raise WorkerFailed(f"bad answer {line[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise WorkerFailed(f"bad answer {line[:200]!r}")
        return answer

    def ask(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one command and return its answer."""
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(command).encode() + b"\n")
            stdin.flush()
        except OSError as exc:
            raise WorkerFailed(f"cannot write to the worker: {exc}; {self.stderr_tail()}") from exc
        return self.read(timeout_s)

    def stderr_tail(self) -> str:
        """The last lines the worker wrote to stderr."""
        self.log.flush()
        try:
            return _tail(Path(self.log.name).read_text(errors="replace"))
        except OSError:
            return ""

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"op": "exit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@dataclass
class VariantState:
    """What is known about one variant during and after the run."""

    name: str
    status: str = "ok"
    pins: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    venv: str = ""
    built: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    spread_us: dict[str, dict[str, float]] = field(default_factory=dict)


def _spread(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"min": min(values), "p25": q[0], "median": q[1], "p75": q[2], "max": max(values)}


class PeersOverheadTarget:
    """Per-call and per-chunk overhead of ours and of each peer instrumentation, side by side."""

    id = TARGET_ID
    description = "µs per call / per chunk added by ours and by OpenLLMetry, OpenLIT, openai-v2 (own venvs)"

    def __init__(self, **overrides: Any) -> None:
        self.config = PeersConfig(**overrides)
        cfg = self.config
        if min(cfg.rounds, cfg.calls_per_round, cfg.streams_per_round) < 1 or cfg.chunks < 2:
            raise ValueError("rounds, calls and streams per round >= 1 and chunks >= 2 required")
        known = {v.name for v in VARIANTS}
        if not {"baseline", "ours"} <= set(cfg.variants) <= known:
            raise ValueError(f"variants must include baseline and ours, from {sorted(known)}")

    def run(self) -> BenchmarkResult:
        """Build or reuse the virtualenvs, run the interleaved rounds, return the figures."""
        cfg = self.config
        timestamp = utc_now_iso()
        load_before = os.getloadavg()
        started = time.monotonic()
        states = {name: VariantState(name) for name in cfg.variants}
        pythons = self._venvs(states)
        setup_s = time.monotonic() - started
        for required in ("baseline", "ours"):
            if states[required].status != "ok":
                raise BenchmarkError(f"{required} variant unavailable: {states[required].status}")

        with tempfile.TemporaryDirectory(prefix="otelbench-peers-") as tmp:
            pricing = Path(tmp, "pricing.json")
            pricing.write_text(json.dumps(_PRICING))
            workers = self._start(states, pythons, pricing, Path(tmp))
            try:
                rounds = self._rounds(states, workers)
                self._check(states, workers)
            finally:
                for worker in workers.values():
                    worker.close()
                    worker.log.close()
        metrics, samples = self._figures(states, rounds.per_op_us)
        details = {
            "config": asdict(self.config),
            "rounds": rounds.rounds,
            "rounds_seconds": round(rounds.seconds, 2),
            "setup_seconds": round(setup_s, 2),
            "venvs_built": [s.name for s in states.values() if s.built],
            "variants": {name: asdict(state) for name, state in states.items()},
            "per_round_us": rounded(rounds.per_op_us),
            "samples": samples,
            "machine": machine_load(load_before),
        }
        details["note"] = self.table(metrics, states)
        return BenchmarkResult(TARGET_ID, metrics, timestamp, details=details)

    # --- steps ----------------------------------------------------------------------------
    def _venvs(self, states: dict[str, VariantState]) -> dict[str, Path]:
        by_name = {v.name: v for v in VARIANTS}
        pythons: dict[str, Path] = {}
        for name, state in states.items():
            variant = by_name[name]
            pins = pins_for(variant)
            state.pins = asdict(pins)
            state.note = variant.note
            venv_dir = peers_dir() / f"{name}-{pins.digest()}"
            if not (venv_dir / "otelbench-pins.json").exists():
                # Said on stderr: the first run spends its setup time here, not measuring.
                print(f"overhead-peers: building the {name} virtualenv in {venv_dir}", file=sys.stderr)
            outcome = ensure_venv(variant, pins, self.config.install_timeout_s)
            state.venv = str(outcome.path)
            state.built = outcome.built
            if outcome.python is None:
                state.status = f"not installable: {outcome.error}"
            else:
                pythons[name] = outcome.python
        return pythons

    def _start(
        self, states: dict[str, VariantState], pythons: dict[str, Path], pricing: Path, tmp: Path
    ) -> dict[str, WorkerProcess]:
        workers: dict[str, WorkerProcess] = {}
        for name, python in pythons.items():
            log = (tmp / f"{name}.stderr").open("w+")
            worker = WorkerProcess(name, python, self.config.chunks, pricing, log)
            try:
                hello = worker.read(self.config.batch_timeout_s)
            except WorkerFailed as exc:
                states[name].status = f"failed: {exc}"
                log.close()
                continue
            states[name].versions = dict(hello.get("versions") or {})
            workers[name] = worker
        for required in ("baseline", "ours"):
            if required not in workers:
                for worker in workers.values():
                    worker.close()
                raise BenchmarkError(f"{required} worker did not start: {states[required].status}")
        return workers

    def _rounds(self, states: dict[str, VariantState], workers: dict[str, WorkerProcess]) -> Rounds:
        cfg = self.config

        def batch(name: str, phase: str) -> Any:
            def run(n: int) -> int:
                worker = workers[name]
                if states[name].status != "ok":
                    return 0  # dropped after a failure; its figures are discarded
                try:
                    return int(worker.ask({"op": phase, "n": n}, cfg.batch_timeout_s)["ns"])
                except (WorkerFailed, KeyError, TypeError, ValueError) as exc:
                    states[name].status = f"failed: {exc}"
                    return 0

            return run

        batches = {f"{phase}/{name}": batch(name, phase) for phase in PHASES for name in workers}
        ops = {key: cfg.streams_per_round if "stream" in key else cfg.calls_per_round for key in batches}
        return run_rounds(
            batches,
            ops=ops,
            rounds=cfg.rounds,
            deadline=time.monotonic() + cfg.time_budget_s,
            min_rounds=cfg.min_rounds,
        )

    def _check(self, states: dict[str, VariantState], workers: dict[str, WorkerProcess]) -> None:
        """Every instrumented variant must have exported spans (a no-op is not 'fast')."""
        expected_chunks = self.config.chunks + 3  # role, contents, finish, usage
        for name, worker in workers.items():
            state = states[name]
            if state.status != "ok":
                continue
            try:
                stats = worker.ask({"op": "stats"}, self.config.batch_timeout_s)
            except WorkerFailed as exc:
                state.status = f"failed: {exc}"
                continue
            calls, spans = int(stats["calls"]), int(stats["spans"])
            streams = int(stats["streams"])
            state.checks = {
                "calls": calls,
                "spans": spans,
                "spans_per_call": round(spans / calls, 3) if calls else math.nan,
                "span_names": stats["span_names"],
                "metrics": stats["metrics"],
                "chunks_per_stream": stats["stream_chunks_seen"] / streams if streams else math.nan,
            }
            if streams and stats["stream_chunks_seen"] != streams * expected_chunks:
                state.status = f"failed: streams yielded {state.checks['chunks_per_stream']} chunks each"
            elif name == "baseline" and spans:
                state.status = f"failed: the uninstrumented baseline exported {spans} spans"
            elif name != "baseline" and spans == 0:
                state.status = "no spans"
            elif name != "baseline" and not stats["metrics"]:
                state.status = "ok (spans, but no metrics)"

    def _figures(
        self, states: dict[str, VariantState], per_op_us: dict[str, list[float]]
    ) -> tuple[dict[str, float], dict[str, list[float]]]:
        chunks = self.config.chunks
        metrics: dict[str, float] = {}
        samples: dict[str, list[float]] = {}
        if states["baseline"].status != "ok":
            raise BenchmarkError(f"baseline variant {states['baseline'].status}")
        for phase in PHASES:
            scale = chunks if "stream" in phase else 1
            base = per_op_us[f"{phase}/baseline"]
            metrics[f"baseline_{_FIGURE[phase]}_us"] = statistics.median(base) / scale
            for name, state in states.items():
                if name == "baseline" or not state.status.startswith("ok"):
                    continue
                diffs = [(v - b) / scale for v, b in zip(per_op_us[f"{phase}/{name}"], base, strict=True)]
                key = f"{name}_{_FIGURE[phase]}_us"
                metrics[key] = statistics.median(diffs)
                samples[key] = [round(d, 4) for d in diffs]
                state.spread_us[_FIGURE[phase]] = {k: round(v, 3) for k, v in _spread(diffs).items()}
        for name, state in states.items():
            if name != "baseline" and state.status.startswith("ok"):
                metrics[f"{name}_spans_per_call"] = float(state.checks["spans_per_call"])
        ours_ok = states["ours"].status.startswith("ok")
        floor = states.get("sdk_floor")
        floor_ok = floor is not None and floor.status.startswith("ok")
        for name, state in states.items():
            if name in ("baseline", "sdk_floor") or not state.status.startswith("ok") or not floor_ok:
                continue
            for figure in _FIGURE.values():
                metrics[f"{name}_{figure}_above_floor_us"] = (
                    metrics[f"{name}_{figure}_us"] - metrics[f"sdk_floor_{figure}_us"]
                )
        for name, state in states.items():
            if name in ("baseline", "ours", "sdk_floor") or not (ours_ok and state.status.startswith("ok")):
                continue
            for figure in _FIGURE.values():
                peer = metrics[f"{name}_{figure}_us"]
                ours = metrics[f"ours_{figure}_us"]
                metrics[f"ours_to_{name}_{figure}"] = ours / peer if peer > 0 else math.nan
                if floor_ok:
                    peer_above = metrics[f"{name}_{figure}_above_floor_us"]
                    ours_above = metrics[f"ours_{figure}_above_floor_us"]
                    metrics[f"ours_to_{name}_{figure}_above_floor"] = (
                        ours_above / peer_above if peer_above > 0 else math.nan
                    )
        if not ours_ok:
            raise BenchmarkError(f"ours variant {states['ours'].status}")
        return metrics, samples

    def table(self, metrics: dict[str, float], states: dict[str, VariantState]) -> str:
        """A Markdown table: µs above baseline, median [p25..p75] over rounds, per variant."""
        lines = [
            "| variant | status | per call µs | per chunk µs | async per call µs | async per chunk µs "
            "| spans/call |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        base = [f"{metrics[f'baseline_{f}_us']:.1f} (absolute)" for f in _FIGURE.values()]
        lines.append(f"| baseline | {states['baseline'].status} | {' | '.join(base)} | 0 |")
        for name, state in states.items():
            if name == "baseline":
                continue
            if not state.status.startswith("ok"):
                lines.append(f"| {name} | {state.status} | - | - | - | - | - |")
                continue
            cells = []
            for figure in _FIGURE.values():
                s = state.spread_us.get(figure, {})
                cells.append(
                    f"{metrics[f'{name}_{figure}_us']:.1f} [{s.get('p25', math.nan):.1f}..{s.get('p75', math.nan):.1f}]"
                )
            spans = metrics.get(f"{name}_spans_per_call", math.nan)
            lines.append(f"| {name} | {state.status} | {' | '.join(cells)} | {spans:g} |")
        return "\n".join(lines)
