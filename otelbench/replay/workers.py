"""``replay --workers N``: the load shared by N client processes, merged through the metrics path.

One event loop running an instrumented SDK saturates one core (the ``openai`` SDK alone spends
~1 ms of CPU per call), so past a few hundred requests per second the client, not the provider,
sets the pace. Here each worker is a spawned process with its own instrumented SDK, telemetry and
event loop, running 1/N of the concurrency, of the requests and of an open loop's rate. The
parent owns the embedded mock and the progress display and never sends a request.

Results are merged the way a collector would merge N service instances: each worker sends back
the metric data points it collected after each measured phase, and the parent summarizes their
union (exponential histograms of different scales are re-bucketed to a common one), so the
statistics still come from the exported metrics. Raw requests, load counts, CPU time and RSS are
concatenated or summed. Every measured phase starts on a barrier, so workers never measure
different targets at once; Ctrl-C is forwarded to every worker once per press.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from opentelemetry.sdk.metrics.export import Metric, MetricsData, ResourceMetrics, ScopeMetrics
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otelbench.errors import OtelbenchError, ProviderError
from otelbench.load import LoadResult
from otelbench.summary import summarize

from .progress import Progress
from .runner import (
    ReplayConfig,
    ReplayOutcome,
    TargetRun,
    WorkerSlot,
    _Runner,
    add_ground_truth,
    assign_stats,
    embedded_mock,
)
from .targets import Target
from .telemetry import ExportStats, Telemetry, instrumented

#: Most client processes one replay may start.
MAX_WORKERS = 64
#: Seconds between a worker's progress messages (its finished requests are sent in batches).
_PROGRESS_PERIOD = 0.1


@dataclass
class _WorkerResult:
    runs: list[TargetRun]
    #: (run indices, the metrics of that phase) in phase order; metrics without resource/scope,
    #: which do not pickle.
    collected: list[tuple[list[int], list[Metric]]]
    interrupted: bool
    instrumented: list[str]
    resource: dict[str, Any]
    export: ExportStats | None


@dataclass
class _WorkerFailure:
    message: str
    #: The error was a ProviderError (the endpoint's fault), not a bug or a crash.
    provider: bool


# --- the worker side ------------------------------------------------------------------------------
class _RelayProgress:
    """A worker's :class:`Progress`: forwards to the parent, finished requests in batches."""

    def __init__(self, events: Any, worker: int) -> None:
        self._events = events
        self._worker = worker
        self._pending: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self._last = time.monotonic()

    def start(self, label: str, total: int | None, duration: float | None = None) -> None:
        """See :class:`Progress`."""
        self._events.put(("start", self._worker, label, total, duration))

    def advance(self, label: str, ok: bool) -> None:
        """See :class:`Progress`."""
        self._pending[label][0 if ok else 1] += 1
        now = time.monotonic()
        if now - self._last >= _PROGRESS_PERIOD:
            self._last = now
            self.flush()

    def finish(self, label: str) -> None:
        """See :class:`Progress`."""
        self.flush()
        self._events.put(("finish", self._worker, label))

    def message(self, text: str) -> None:
        """See :class:`Progress`."""
        self._events.put(("message", self._worker, text))

    def close(self) -> None:
        """See :class:`Progress`."""
        self.flush()

    def flush(self) -> None:
        """Send the counts of requests finished since the last flush."""
        for label, (ok, failed) in self._pending.items():
            if ok or failed:
                self._events.put(("advance", self._worker, label, ok, failed))
        self._pending.clear()


def _metrics_of(data: MetricsData | None) -> list[Metric]:
    if data is None:
        return []
    return [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def worker_main(
    config: ReplayConfig,
    targets: list[Target],
    index: int,
    barrier: Any,
    origin_ns: int,
    events: Any,
    conn: Connection,
) -> None:
    """Entry point of worker ``index``: run its share of the replay, send the result to ``conn``."""
    # Only the parent gets the terminal's Ctrl-C (it forwards each press once): in the terminal's
    # process group every worker would get it twice.
    with suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    progress = _RelayProgress(events, index)
    telemetry = Telemetry(config.otlp_endpoint)
    result: _WorkerResult | _WorkerFailure
    try:
        with instrumented(telemetry) as enabled:
            slot = WorkerSlot(index, config.workers, barrier)
            runner = _Runner(config, targets, telemetry, progress, slot=slot, origin_ns=origin_ns)
            asyncio.run(runner.run())
        result = _WorkerResult(
            runner.runs,
            [(indices, _metrics_of(data)) for indices, data in runner.collected],
            runner.interrupted,
            enabled,
            dict(telemetry.resource.attributes),
            None,
        )
    except ProviderError as exc:
        barrier.abort()
        result = _WorkerFailure(str(exc), provider=True)
    except BaseException as exc:  # reported to the parent, which decides
        barrier.abort()
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        result = _WorkerFailure(
            f"worker {index} failed: {type(exc).__qualname__}: {exc}{where}", provider=False
        )
    finally:
        progress.close()
        telemetry.shutdown()
    if isinstance(result, _WorkerResult) and telemetry.export is not None:
        result.export = telemetry.export.stats  # complete only after shutdown's flush
    conn.send(result)
    conn.close()


# --- the parent side ------------------------------------------------------------------------------
@dataclass
class _ProgressMerger:
    """Shows the workers' progress as one bar per phase."""

    progress: Progress
    workers: int
    totals: dict[str, list[Any]] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    finished: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    early: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    said: set[str] = field(default_factory=set)

    def handle(self, event: tuple[Any, ...]) -> None:
        kind, _worker, *rest = event
        if kind == "start":
            label, total, duration = rest
            seen = self.totals.setdefault(label, [0, 0, duration])
            seen[0] += 1
            seen[1] = None if total is None or seen[1] is None else seen[1] + total
            if seen[0] == self.workers:  # the barrier starts all workers within milliseconds
                self.progress.start(label, seen[1], duration)
                self.started.add(label)
                ok, failed = self.early.pop(label, [0, 0])
                self._advance(label, ok, failed)
        elif kind == "advance":
            label, ok, failed = rest
            if label in self.started:
                self._advance(label, ok, failed)
            else:
                counts = self.early[label]
                counts[0] += ok
                counts[1] += failed
        elif kind == "finish":
            (label,) = rest
            self.finished[label] += 1
            if self.finished[label] == self.workers and label in self.started:
                self.progress.finish(label)
        elif kind == "message":
            (text,) = rest
            if text not in self.said:  # every worker says "interrupted: ..." once
                self.said.add(text)
                self.progress.message(text)

    def _advance(self, label: str, ok: int, failed: int) -> None:
        for _ in range(ok):
            self.progress.advance(label, True)
        for _ in range(failed):
            self.progress.advance(label, False)


def _relay(events: Any, merger: _ProgressMerger) -> None:
    while True:
        event = events.get()
        if event is None:
            return
        with suppress(Exception):
            merger.handle(event)


@contextmanager
def _forward_sigint(processes: list[multiprocessing.process.BaseProcess]) -> Iterator[list[bool]]:
    """While inside, Ctrl-C is passed on to every live worker; yields [interrupted]."""
    state = [False]
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def forward(signum: int, frame: Any) -> None:
        state[0] = True
        for p in processes:
            if p.is_alive() and p.pid is not None:
                with suppress(OSError):
                    os.kill(p.pid, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, forward)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def run_workers(config: ReplayConfig, progress: Progress) -> ReplayOutcome:
    """Run ``config`` on ``config.workers`` spawned processes and merge what they measured."""
    n = config.workers
    ctx = multiprocessing.get_context("spawn")  # no fork: the parent may hold threads and locks
    with embedded_mock(config) as mock:
        targets = [t.with_mock(mock.url) if (t.is_mock and mock) else t for t in config.targets]
        origin_ns = time.perf_counter_ns()
        barrier = ctx.Barrier(n)
        events = ctx.Queue()
        relay = threading.Thread(target=_relay, args=(events, _ProgressMerger(progress, n)), daemon=True)
        relay.start()
        processes: list[multiprocessing.process.BaseProcess] = []
        conns: list[Connection] = []
        for i in range(n):
            receiver, sender = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=worker_main,
                args=(config, targets, i, barrier, origin_ns, events, sender),
                name=f"otelbench-replay-worker-{i}",
            )
            processes.append(p)
            conns.append(receiver)
        results: list[_WorkerResult | _WorkerFailure | None] = [None] * n
        try:
            with _forward_sigint(processes) as interrupted:
                for proc in processes:
                    proc.start()
                _collect(processes, conns, results, barrier)
        finally:
            for proc in processes:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.kill()
            events.put(None)
            relay.join(timeout=5)
        outcome = _merge(config, targets, results, origin_ns, interrupted[0])
        outcome.mock_url = mock.url if mock else None
        if mock is not None:
            add_ground_truth(outcome, mock)
    return outcome


def _collect(
    processes: list[multiprocessing.process.BaseProcess],
    conns: list[Connection],
    results: list[_WorkerResult | _WorkerFailure | None],
    barrier: Any,
) -> None:
    pending = dict(enumerate(conns))
    owner: dict[Any, int] = {}
    for i, (conn, p) in enumerate(zip(conns, processes, strict=True)):
        owner[conn] = owner[p.sentinel] = i
    while pending:
        ready = wait([*pending.values(), *(p.sentinel for i, p in enumerate(processes) if i in pending)])
        for item in ready:
            i = owner[item]
            if i not in pending:
                continue
            conn = pending[i]
            try:
                # A worker that exited may still have its result in the pipe.
                if item is conn or conn.poll():
                    results[i] = conn.recv()
            except (EOFError, OSError):
                pass
            if results[i] is None:
                code = processes[i].exitcode
                results[i] = _WorkerFailure(f"worker {i} exited without a result (exit code {code})", False)
            if isinstance(results[i], _WorkerFailure):
                barrier.abort()  # the others must not wait for it at the next phase
            del pending[i]


def _merge(
    config: ReplayConfig,
    targets: list[Target],
    results: list[_WorkerResult | _WorkerFailure | None],
    origin_ns: int,
    interrupted: bool,
) -> ReplayOutcome:
    failures = [r for r in results if isinstance(r, _WorkerFailure)]
    done = [r for r in results if isinstance(r, _WorkerResult)]
    provider = next((f for f in failures if f.provider), None)
    if provider is not None:
        raise ProviderError(provider.message)
    if failures and not (interrupted or any(r.interrupted for r in done)):
        raise OtelbenchError(failures[0].message)
    if not done:
        raise OtelbenchError(failures[0].message if failures else "no replay worker returned a result")
    runs = [_merge_runs(target, [r.runs[i] for r in done]) for i, target in enumerate(targets)]
    phases: dict[tuple[int, ...], list[Metric]] = defaultdict(list)
    for r in done:
        for indices, metrics in r.collected:
            phases[tuple(indices)].extend(metrics)
    for phase, metrics in phases.items():
        assign_stats(runs, summarize(_metrics_data(metrics)), list(phase))
    first = done[0]
    outcome = ReplayOutcome(
        config,
        runs,
        interrupted or any(r.interrupted for r in done) or bool(failures),
        first.instrumented,
        origin_ns,
        workers=config.workers,
    )
    outcome.resource = first.resource
    exports = [r.export for r in done if r.export is not None]
    if exports:
        total = ExportStats()
        for e in exports:
            for k, v in e.__dict__.items():
                setattr(total, k, getattr(total, k) + v)
        outcome.export = total
    return outcome


def _merge_runs(target: Target, parts: list[TargetRun]) -> TargetRun:
    run = TargetRun(target)
    run.requests = sorted((r for p in parts for r in p.requests), key=lambda r: r.sent_ns or r.intended_ns)
    run.skipped = all(p.skipped for p in parts)
    loads = [p.load for p in parts if p.load is not None]
    if loads:
        run.load = LoadResult(
            sent=sum(x.sent for x in loads),
            failed=sum(x.failed for x in loads),
            started_ns=min(x.started_ns for x in loads),
            ended_ns=max(x.ended_ns for x in loads),
            interrupted=any(x.interrupted for x in loads),
            cancelled=sum(x.cancelled for x in loads),
        )
    run.loop_lag = [lag for p in parts for lag in p.loop_lag]
    cpu = [p.cpu_s for p in parts if p.cpu_s is not None]
    run.cpu_s = sum(cpu) if cpu else None
    # The client's footprint is every worker's memory together.
    rss = [p.peak_rss_mib for p in parts if p.peak_rss_mib is not None]
    run.peak_rss_mib = sum(rss) if rss else None
    growth = [p.rss_growth_mib for p in parts if p.rss_growth_mib is not None]
    run.rss_growth_mib = sum(growth) if growth else None
    return run


def _metrics_data(metrics: list[Metric]) -> MetricsData:
    scope = InstrumentationScope("otelbench.replay.workers")
    return MetricsData([ResourceMetrics(Resource.get_empty(), [ScopeMetrics(scope, metrics, "")], "")])
