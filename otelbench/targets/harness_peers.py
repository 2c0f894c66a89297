"""Target ``harness-peers``: ``otelbench replay`` next to the load generators people would otherwise use.

Tools: ``otelbench replay`` (ours, from the project environment; also ``--workers 2``,
``--client http`` and both, when the installed CLI offers them), GuideLLM, AIPerf,
inference-perf and ``vllm bench serve``, each in its own virtualenv (:mod:`._harness_tools` has
the pins, command lines and output parsers). Every tool is driven as a user would drive it, as a
subprocess with its own CLI, against one mock server (``MockServer(isolated=True)``, its own
process, 127.0.0.1) in the same run, and read back from its own output file.

Phases, interleaved (every tool runs a phase before the next phase starts):

* ``c1``, ``c64``, ``c256`` (accuracy): streamed chat completions with a fixed plan, TTFT
  ``ttft_ms`` (50), then ``output_tokens`` (32) chunks ``itl_ms`` (10) apart; ``requests_per_slot``
  x C requests (at least ``min_requests``) at concurrency C. Each tool's reported TTFT and
  per-request inter-token latency (mean, p50, p99) minus the mock's own for the same requests
  (``Truth``: the mock's records of the run's model name, the tool's warm-up requests left out).
  And whether the tool held C in flight: the time-weighted mean of requests in flight at the mock
  (arrival to last byte) over the middle 80 % of the run, / C.
* ``capacity``: a 0-delay model (TTFT 0, ITL 0, ``capacity_tokens`` streamed tokens: every tool
  can stream, ``vllm bench serve`` can only stream) at concurrency ``capacity_concurrency``,
  ``capacity_requests`` requests. Max rate = completions per second at the mock over the middle
  80 % of completions; inflation = tool-reported request latency - the mock's (p50 and mean).

Each run sends its own model name (``acc-<tool>-c<C>``, ``cap-<tool>``), so the mock's records of a
run are exactly that run's requests. A tool that cannot be installed is ``not installable:
<reason>``; a run whose process fails or times out is ``failed: <reason>``; one whose output has no
figures is ``no numbers: <reason>``. None of those get figures.

Metrics (ms unless named): ``<tool>_c<C>_{ttft,itl}_{mean,p50,p99}_err_ms``,
``<tool>_c<C>_inflight_ratio``, ``<tool>_max_rps``, ``<tool>_latency_{p50,mean}_inflation_ms``,
``<tool>_mock_cores_busy`` (the mock's CPU per request times the rate: near the cores it can use,
the server, not the tool, set the rate). ``details`` has per run the command, wall time, the
tool's and the mock's CPU, the tool's figures, the truth, counts and the stderr tail, and per tool
its pins and installed versions.

Configuration: ``OTELBENCH_HARNESS_DIR`` moves the virtualenvs (default
``~/.cache/otelbench/harness-peers/<tool>-<hash of pins>/``); ``OTELBENCH_HARNESS_TOOLS`` (comma-
separated: otelbench, otelbench_w2, otelbench_http, otelbench_http_w2, guidellm, aiperf,
inference_perf, vllm) runs a subset; ``OTELBENCH_HARNESS_ROUNDS`` (1-20) repeats everything,
round after round, and reports medians.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile, RequestRecord
from otelbench.mock.core import WORDS

from . import BenchmarkError, BenchmarkResult, utc_now_iso
from ._harness_tools import (
    OURS_ALL,
    PEERS,
    Figures,
    ParseError,
    RunSpec,
    Tool,
    find_python,
    write_tokenizer,
)
from ._harness_truth import Stat, Truth, ground_truth
from .peers import Pins, _tail, build_venv, machine_load

TARGET_ID = "harness-peers"
ALL_TOOLS = (*(t.name for t, _ in OURS_ALL), *(t.name for t in PEERS))
_VERSION_PROBE = (
    "import json, importlib.metadata as m\n"
    "out = {}\n"
    "for n in ('guidellm', 'aiperf', 'inference-perf', 'vllm', 'transformers', 'torch', 'httpx', 'aiohttp'):\n"
    "    try: out[n] = m.version(n)\n"
    "    except m.PackageNotFoundError: pass\n"
    "print(json.dumps(out))\n"
)


@dataclass(frozen=True)
class HarnessConfig:
    """Sizes of the run; the defaults keep it near 5 minutes on 2 cores once the venvs exist."""

    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    output_tokens: int = 32
    concurrencies: tuple[int, ...] = (1, 64, 256)
    requests_per_slot: int = 4  # requests per unit of concurrency
    min_requests: int = 16
    capacity_concurrency: int = 64
    # At ~3,000 req/s, 1,000 requests last a third of a second: the two-process figure then
    # moved between 2,025 and 3,276 req/s over three rounds (2,683-3,214 with 4,000).
    capacity_requests: int = 4000
    capacity_tokens: int = 8
    tools: tuple[str, ...] = ALL_TOOLS
    run_timeout_s: float = 180.0  # per tool invocation (the process group is killed past it)
    install_timeout_s: float = 900.0  # per uv command (vllm pulls CUDA wheels, GBs)
    time_budget_s: float = 600.0  # per round: later runs are skipped (and listed) past it
    #: Every phase of every tool this many times, interleaved round by round; the metrics are
    #: medians over the rounds, with min and max of the headline ones.
    rounds: int = 1

    def requests(self, concurrency: int) -> int:
        """Requests of an accuracy run at ``concurrency``."""
        return max(self.min_requests, self.requests_per_slot * concurrency)


def harness_dir() -> Path:
    """Where the tools' virtualenvs are cached."""
    configured = os.environ.get("OTELBENCH_HARNESS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "otelbench" / "harness-peers"


@dataclass
class ToolState:
    """What is known about one tool during and after the run."""

    name: str
    label: str
    status: str = "ok"
    note: str = ""
    pins: dict[str, Any] = field(default_factory=dict)
    venv: str = ""
    built: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    bin_dir: str = ""


@dataclass
class RunOutcome:
    """One tool's run of one phase."""

    tool: str
    phase: str
    status: str
    command: list[str]
    wall_s: float
    concurrency: int
    requests: int
    figures: Figures | None = None
    truth: Truth | None = None
    records: int = 0
    stderr_tail: str = ""
    cpu_s: float = math.nan  # CPU of the tool's process tree (start-up included)
    round: int = 0
    #: CPU the mock used while the tool ran: per request, and times the rate, it says how many
    #: cores the server itself needed, i.e. whether the server rather than the tool set the rate.
    mock_cpu_s: float = math.nan

    @property
    def mock_us_per_request(self) -> float:
        """Mock CPU per request it served (µs); NaN without records."""
        return self.mock_cpu_s / self.records * 1e6 if self.records else math.nan

    @property
    def mock_cores_busy(self) -> float:
        """Cores the mock kept busy at the rate it served (NaN without a truth)."""
        if self.truth is None:
            return math.nan
        return self.mock_us_per_request * 1e-6 * self.truth.rate_per_s

    def summary(self) -> dict[str, Any]:
        """A JSON-ready row for the details (times in ms)."""

        def ms(stat: Stat | None) -> dict[str, float] | None:
            return None if stat is None else {k: round(v, 4) for k, v in stat.as_ms().items()}

        row: dict[str, Any] = {
            "tool": self.tool,
            "phase": self.phase,
            "round": self.round + 1,
            "status": self.status,
            "command": self.command,
            "wall_s": round(self.wall_s, 2),
            "cpu_s": _round(self.cpu_s, 2),
            "mock_cpu_s": _round(self.mock_cpu_s, 3),
            "concurrency": self.concurrency,
            "requests": self.requests,
            "mock_records": self.records,
            "stderr_tail": self.stderr_tail,
        }
        if self.figures is not None:
            f = self.figures
            row["tool_reported"] = {
                "requests": f.requests,
                "errors": f.errors,
                "ttft": ms(f.ttft),
                "itl": ms(f.itl),
                "itl_gap": ms(f.itl_gap),
                "latency": ms(f.latency),
            }
        if self.figures is not None and self.truth is not None:
            # Requests the tool's report counts minus those the mock served (warm-up excluded).
            row["reported_minus_served"] = self.figures.requests + self.figures.errors - self.truth.requests
        if self.truth is not None:
            t = self.truth
            row["mock_truth"] = {
                "requests": t.requests,
                "failed": t.failed,
                "ttft": ms(t.ttft),
                "itl": ms(t.itl),
                "latency": ms(t.latency),
                "inflight_mean": _round(t.inflight_mean),
                "inflight_max": t.inflight_max,
                "rate_per_s": _round(t.rate_per_s),
                "span_s": _round(t.span_s),
                "read_wait": ms(t.read_wait),
            }
        return row


def _round(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


@functools.cache
def replay_options(bin_dir: Path) -> str:
    """The installed ``otelbench replay``'s help text (where its options are listed)."""
    try:
        done = subprocess.run(
            [str(bin_dir / "otelbench"), "replay", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def measured_records(records: list[RequestRecord], model: str, warmup: int) -> list[RequestRecord]:
    """The run's records (its model name), without the tool's first ``warmup`` arrivals."""
    mine = sorted((r for r in records if r.model == model), key=lambda r: r.arrival_ns)
    return mine[warmup:]


class HarnessPeersTarget:
    """Accuracy (TTFT, ITL, concurrency held) and capacity of our load generator and the peers'."""

    id = TARGET_ID
    description = (
        "otelbench replay vs GuideLLM, AIPerf, inference-perf, vllm bench serve: accuracy and capacity"
    )
    #: ~14 GB of peer virtualenvs on first use and ~5 minutes: not part of a bare `otelbench run`.
    on_request_only = True

    def __init__(self, config: HarnessConfig | None = None, **overrides: Any) -> None:
        config = config or HarnessConfig()
        chosen = os.environ.get("OTELBENCH_HARNESS_TOOLS")
        if chosen and "tools" not in overrides:
            overrides["tools"] = tuple(t.strip() for t in chosen.split(",") if t.strip())
        rounds = os.environ.get("OTELBENCH_HARNESS_ROUNDS")
        if rounds and "rounds" not in overrides:
            if not rounds.isdigit():
                raise ValueError(f"OTELBENCH_HARNESS_ROUNDS={rounds!r}: not a whole number")
            overrides["rounds"] = int(rounds)
        if overrides:
            config = HarnessConfig(**{**asdict(config), **overrides})
        unknown = [t for t in config.tools if t not in ALL_TOOLS]
        if unknown:
            raise ValueError(f"unknown tool {unknown[0]!r} (known: {', '.join(ALL_TOOLS)})")
        if min(config.concurrencies, default=0) < 1 or config.output_tokens < 2 or config.capacity_tokens < 1:
            raise ValueError("concurrencies >= 1, output_tokens >= 2 and capacity_tokens >= 1 required")
        if not 1 <= config.rounds <= 20:
            raise ValueError(f"rounds {config.rounds}: 1 to 20")
        self.config = config

    # --- the run ------------------------------------------------------------------------------
    def run(self) -> BenchmarkResult:
        """Install or reuse the tools, run every phase for every tool, return the figures."""
        cfg = self.config
        timestamp = utc_now_iso()
        started = time.monotonic()
        load_before = os.getloadavg()
        tools = self._tools()
        states = {t.name: ToolState(t.name, t.label, note=t.note) for t in tools}
        self._install(tools, states)
        setup_s = time.monotonic() - started
        profiles = {
            "acc-*": ModelProfile(
                ttft=Dist.fixed(cfg.ttft_ms / 1000),
                itl=Dist.fixed(cfg.itl_ms / 1000),
                output_tokens=Dist.fixed(cfg.output_tokens),
            ),
            "cap-*": ModelProfile(
                ttft=Dist.fixed(0), itl=Dist.fixed(0), output_tokens=Dist.fixed(cfg.capacity_tokens)
            ),
        }
        phases = [(f"c{c}", c, cfg.requests(c), True) for c in cfg.concurrencies]
        phases.append(("capacity", cfg.capacity_concurrency, cfg.capacity_requests, True))
        outcomes: list[RunOutcome] = []
        skipped: list[str] = []
        with tempfile.TemporaryDirectory(prefix="otelbench-harness-") as tmp:
            tokenizer = write_tokenizer(Path(tmp, "tokenizer"), WORDS)
            with MockServer(MockConfig(seed=0, profiles=profiles), isolated=True) as server:
                for rnd, (phase, concurrency, requests, stream) in (
                    (r, p) for r in range(cfg.rounds) for p in phases
                ):
                    for tool in tools:
                        if states[tool.name].status != "ok":
                            continue
                        if concurrency < tool.min_concurrency:
                            skipped.append(
                                f"{tool.name}/{phase}: needs concurrency >= {tool.min_concurrency}"
                            )
                            continue
                        where = f"{tool.name}/{phase}" + (f"/round {rnd + 1}" if cfg.rounds > 1 else "")
                        if time.monotonic() - started > cfg.time_budget_s * cfg.rounds:
                            skipped.append(where)
                            continue
                        print(f"{TARGET_ID}: {tool.label}: {where} ({requests} requests)", file=sys.stderr)
                        outcomes.append(
                            self._run_one(
                                server,
                                tool,
                                states[tool.name],
                                phase,
                                concurrency,
                                requests,
                                stream,
                                tokenizer,
                                Path(tmp),
                                rnd,
                            )
                        )
        metrics = self._figures(outcomes)
        if not any(o.figures is not None for o in outcomes):
            raise BenchmarkError(
                "no tool produced figures: " + "; ".join(f"{s.name}: {s.status}" for s in states.values())
            )
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "tools": {name: asdict(state) for name, state in states.items()},
            "runs": [o.summary() for o in outcomes],
            "skipped_runs": skipped,
            "setup_seconds": round(setup_s, 1),
            "elapsed_seconds": round(time.monotonic() - started, 1),
            "machine": machine_load(load_before),
        }
        details["note"] = self.table(outcomes, states)
        return BenchmarkResult(TARGET_ID, metrics, timestamp, details=details)

    def _tools(self) -> list[Tool]:
        wanted = set(self.config.tools)
        return [t for t in (*(t for t, _ in OURS_ALL), *PEERS) if t.name in wanted]

    def _install(self, tools: list[Tool], states: dict[str, ToolState]) -> None:
        project_bin = Path(sys.executable).parent
        for tool in tools:
            state = states[tool.name]
            if not tool.requirements:  # ours: the project's own CLI
                state.bin_dir = str(project_bin)
                if not (project_bin / "otelbench").exists():
                    state.status = f"not installable: no otelbench script in {project_bin}"
                else:
                    needs = next(o for t, o in OURS_ALL if t is tool)
                    missing = [o for o in needs if o not in replay_options(project_bin)]
                    if missing:
                        state.status = f"not available: this otelbench replay has no {missing[0]} option"
                continue
            found = find_python(tool.min_python)
            if found is None:
                state.status = (
                    f"not installable: needs Python >= {tool.min_python[0]}.{tool.min_python[1]}, none found"
                )
                continue
            python, version = found
            pins = Pins(requirements=list(tool.requirements), constraints=[], overrides=[], python=version)
            state.pins = asdict(pins)
            path = harness_dir() / f"{tool.name}-{pins.digest()}"
            if not (path / "otelbench-pins.json").exists():
                print(f"{TARGET_ID}: building the {tool.label} virtualenv in {path}", file=sys.stderr)
            outcome = build_venv(path, pins, self.config.install_timeout_s, base_python=python)
            state.venv, state.built = str(path), outcome.built
            if outcome.python is None:
                state.status = f"not installable: {outcome.error}"
                continue
            state.bin_dir = str(outcome.python.parent)
            state.versions = _versions(outcome.python)

    def _run_one(
        self,
        server: MockServer,
        tool: Tool,
        state: ToolState,
        phase: str,
        concurrency: int,
        requests: int,
        stream: bool,
        tokenizer: Path,
        tmp: Path,
        rnd: int = 0,
    ) -> RunOutcome:
        cfg = self.config
        # One model name per run, so the mock's records of a run are exactly its requests.
        suffix = f"-r{rnd + 1}" if rnd else ""
        model = f"{'cap' if phase == 'capacity' else 'acc'}-{tool.name}-{phase}{suffix}"
        workdir = tmp / f"{tool.name}-{phase}{suffix}"
        workdir.mkdir()
        spec = RunSpec(
            url=server.url,
            model=model,
            concurrency=concurrency,
            requests=requests,
            stream=stream or tool.always_streams,
            output_tokens=cfg.capacity_tokens if phase == "capacity" else cfg.output_tokens,
            tokenizer=tokenizer,
            workdir=workdir,
        )
        command = tool.command(Path(state.bin_dir), spec)
        server.clear_records()
        cpu0, mock_cpu0 = _children_cpu_s(), server.cpu_seconds()
        status, wall_s, stderr = _run_process(command, workdir, tool.environment(), cfg.run_timeout_s)
        mock_cpu_s = server.cpu_seconds() - mock_cpu0  # before fetching the records costs it more
        outcome = RunOutcome(
            tool.name,
            phase,
            status,
            command,
            wall_s,
            concurrency,
            requests,
            stderr_tail=stderr,
            cpu_s=_children_cpu_s() - cpu0,
            round=rnd,
            mock_cpu_s=mock_cpu_s,
        )
        records = measured_records(server.records, model, tool.warmup_records)
        outcome.records = len(records)
        if records:
            outcome.truth = ground_truth(records)
        if status != "ok":
            return outcome
        try:
            figures = tool.parse(workdir)
        except ParseError as exc:
            outcome.status = f"no numbers: {exc}"
            return outcome
        if figures.requests <= 0 or figures.latency is None or (spec.stream and figures.ttft is None):
            outcome.status = f"no numbers: the tool counted {figures.requests} successful requests"
            return outcome
        outcome.figures = figures
        return outcome

    # --- figures ------------------------------------------------------------------------------
    def _figures(self, outcomes: list[RunOutcome]) -> dict[str, float]:
        """Each run's figures; over several rounds, their median, and the headline figures'
        smallest and largest as ``<name>_min`` / ``<name>_max``."""
        values: dict[str, list[float]] = {}
        for o in outcomes:
            for name, value in _run_figures(o).items():
                values.setdefault(name, []).append(value)
        metrics: dict[str, float] = {}
        for name, seen in values.items():
            metrics[name] = statistics.median(seen)
            if self.config.rounds > 1 and name.endswith(_SPREAD_SUFFIXES):
                metrics[f"{name}_min"] = min(seen)
                metrics[f"{name}_max"] = max(seen)
        return metrics

    def table(self, outcomes: list[RunOutcome], states: dict[str, ToolState]) -> str:
        """Markdown tables: accuracy errors per tool and concurrency, then capacity."""
        lines = [
            "Accuracy: tool-reported minus mock ground truth, ms (TTFT and per-request ITL: "
            "p50 / p99 / mean); in flight: time-weighted mean at the mock / requested",
            "",
            "| tool | C | status | TTFT err p50 / p99 / mean | ITL err p50 / p99 / mean | in flight / C |",
            "|---|---:|---|---:|---:|---:|",
        ]

        rounds = self.config.rounds

        def label(o: RunOutcome) -> str:
            name = states[o.tool].label
            return f"{name} (round {o.round + 1})" if rounds > 1 else name

        def err(reported: Stat | None, truth: Stat | None) -> str:
            if reported is None or truth is None:
                return "-"
            e = reported.minus(truth)
            return f"{e.p50 * 1e3:+.2f} / {e.p99 * 1e3:+.2f} / {e.mean * 1e3:+.2f}"

        for o in outcomes:
            if o.phase == "capacity":
                continue
            t = o.truth
            held = f"{t.inflight_mean:.1f} / {o.concurrency}" if t else "-"
            if o.figures is None:
                lines.append(f"| {label(o)} | {o.concurrency} | {o.status[:80]} | - | - | {held} |")
                continue
            lines.append(
                f"| {label(o)} | {o.concurrency} | ok | {err(o.figures.ttft, t.ttft if t else None)} "
                f"| {err(o.figures.itl, t.itl if t else None)} | {held} |"
            )
        lines += [
            "",
            "Capacity: 0-delay mock, streamed, completions/s at the mock; inflation = tool-reported "
            "request latency - the mock's, ms",
            "",
            "| tool | status | max req/s | mock latency p50 | tool latency p50 | inflation p50 / mean "
            "| tool CPU s / wall s | mock CPU µs/req | mock cores busy |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for o in outcomes:
            if o.phase != "capacity":
                continue
            t = o.truth
            if o.figures is None or t is None or o.figures.latency is None or t.latency is None:
                lines.append(f"| {label(o)} | {o.status[:80]} | - | - | - | - | - | - | - |")
                continue
            e = o.figures.latency.minus(t.latency)
            lines.append(
                f"| {label(o)} | ok | {t.rate_per_s:,.0f} | {t.latency.p50 * 1e3:.2f} "
                f"| {o.figures.latency.p50 * 1e3:.2f} | {e.p50 * 1e3:+.2f} / {e.mean * 1e3:+.2f} "
                f"| {o.cpu_s:.1f} / {o.wall_s:.1f} | {o.mock_us_per_request:.0f} | {o.mock_cores_busy:.2f} |"
            )
        if rounds > 1:
            lines += self._rounds_table(outcomes, states)
        missing = [f"{s.label}: {s.status}" for s in states.values() if s.status != "ok"]
        if missing:
            lines += ["", "Not measured: " + "; ".join(missing)]
        return "\n".join(lines)

    def _rounds_table(self, outcomes: list[RunOutcome], states: dict[str, ToolState]) -> list[str]:
        """Median [min, max] over the rounds of the headline figures, per tool and phase."""
        m = self._figures(outcomes)

        def cell(name: str, fmt: str) -> str:
            if name not in m:
                return "-"
            return f"{m[name]:{fmt}} [{m[name + '_min']:{fmt}}, {m[name + '_max']:{fmt}}]"

        lines = [
            "",
            f"Over {self.config.rounds} rounds: median [min, max]",
            "",
            "| tool | C | TTFT err p50 ms | TTFT err p99 ms | in flight / C |",
            "|---|---:|---:|---:|---:|",
        ]
        pairs = list(dict.fromkeys((o.tool, o.phase, o.concurrency) for o in outcomes))
        for tool, phase, concurrency in pairs:
            if phase == "capacity":
                continue
            prefix = f"{tool}_{phase}"
            lines.append(
                f"| {states[tool].label} | {concurrency} | {cell(prefix + '_ttft_p50_err_ms', '+.2f')} "
                f"| {cell(prefix + '_ttft_p99_err_ms', '+.2f')} | {cell(prefix + '_inflight_ratio', '.3f')} |"
            )
        lines += ["", "| tool | max req/s | mock cores busy |", "|---|---:|---:|"]
        for tool in dict.fromkeys(o.tool for o in outcomes if o.phase == "capacity"):
            lines.append(
                f"| {states[tool].label} | {cell(tool + '_max_rps', ',.0f')} "
                f"| {cell(tool + '_mock_cores_busy', '.2f')} |"
            )
        return lines


#: Figures reported with their range over the rounds, besides the median.
_SPREAD_SUFFIXES = ("_ttft_p50_err_ms", "_ttft_p99_err_ms", "_inflight_ratio", "_max_rps", "_mock_cores_busy")


def _run_figures(o: RunOutcome) -> dict[str, float]:
    """The metrics of one run (none when it produced no figures)."""
    metrics: dict[str, float] = {}
    if o.figures is None or o.truth is None:
        return metrics
    f, t = o.figures, o.truth
    if o.phase == "capacity":
        metrics[f"{o.tool}_max_rps"] = t.rate_per_s
        if math.isfinite(o.mock_cores_busy):
            metrics[f"{o.tool}_mock_cores_busy"] = o.mock_cores_busy
        if f.latency is not None and t.latency is not None:
            err = f.latency.minus(t.latency)
            metrics[f"{o.tool}_latency_p50_inflation_ms"] = err.p50 * 1e3
            metrics[f"{o.tool}_latency_mean_inflation_ms"] = err.mean * 1e3
        return metrics
    prefix = f"{o.tool}_{o.phase}"
    for name, reported, truth in (("ttft", f.ttft, t.ttft), ("itl", f.itl, t.itl)):
        if reported is None or truth is None:
            continue
        for key, value in reported.minus(truth).as_ms().items():
            metrics[f"{prefix}_{name}_{key.removesuffix('_ms')}_err_ms"] = value
    metrics[f"{prefix}_inflight_ratio"] = t.inflight_mean / o.concurrency
    return metrics


def _children_cpu_s() -> float:
    """User + system CPU of the reaped child processes (a tool's tree once its leader is reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _versions(python: Path) -> dict[str, str]:
    try:
        done = subprocess.run(
            [str(python), "-I", "-c", _VERSION_PROBE], capture_output=True, text=True, timeout=60, check=False
        )
        versions = json.loads(done.stdout) if done.returncode == 0 else {}
        return {str(k): str(v) for k, v in versions.items()}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}


def _run_process(
    command: list[str], cwd: Path, env: dict[str, str], timeout_s: float
) -> tuple[str, float, str]:
    """Run one tool invocation in its own process group; (status, wall seconds, stderr tail)."""
    log = cwd / "output.log"
    started = time.monotonic()
    with log.open("w") as out:
        try:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return f"failed: cannot start: {exc}", 0.0, ""
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # The tools fork workers: end the whole group this run started, then reap.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return f"failed: timed out after {timeout_s:.0f} s", time.monotonic() - started, _log_tail(log)
        finally:
            # Helpers a tool left running (its group, which this run started) must not load the next run.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    wall = time.monotonic() - started
    if code != 0:
        return f"failed: exit {code}: {_log_tail(log)}", wall, _log_tail(log)
    return "ok", wall, _log_tail(log)


def _log_tail(log: Path) -> str:
    try:
        return _tail(log.read_text(errors="replace"), lines=4)
    except OSError:
        return ""
