"""Run one replay: warm up, load each target through its instrumented SDK, collect the metrics.

(With ``client.kind == "http"`` the targets are loaded through the lean HTTP client instead,
which records through the same instrumentation recorder: :mod:`otelbench.replay.lean`.)

Phases: (1) warm-up of every target at once (closed loop, excluded from the statistics; a
target whose every warm-up request fails stops the run with a ProviderError); the metrics
collected so far are dropped; (2) the measured load, target after target (or all at once with ``parallel``),
each followed by a metrics collection. Every request, warm-up included, is kept as a
:class:`RawRequest` for the raw log.

Ctrl-C (SIGINT) during the load stops sending at once, lets requests in flight finish for
``drain_timeout`` seconds (a second Ctrl-C cancels them now) and returns what was gathered
with ``interrupted=True``; targets not yet started are skipped.

With ``workers`` > 1, :mod:`otelbench.replay.workers` runs the same phases on several processes
(each a :class:`WorkerSlot` of this runner) and merges their metrics.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.context import attach, detach
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.trace import set_span_in_context

from otelbench.datasets import Prompt, new_run_tag, with_nonce
from otelbench.errors import ProviderError
from otelbench.load import Arrival, Job, Limits, LoadResult, closed_loop, open_loop
from otelbench.mock import MockConfig, MockServer, RequestRecord
from otelbench.summary import TargetStats, summarize
from otelbench.summary.stats import exact_quantile
from otelbench.targets import current_rss_mib, process_usage

from .adapters import Adapter, ClientOptions, Observation, make_adapter
from .progress import NullProgress, Progress
from .targets import Target
from .telemetry import ATTR_WARMUP, ExportStats, RecordedValues, Telemetry, instrumented


@dataclass
class RawRequest:
    """One request: the client's timings (``perf_counter_ns``, the mock's clock too) and the values
    the instrumentation recorded for it (``recorded``, None if it recorded nothing)."""

    target: str
    index: int
    warmup: bool
    prompt_id: str
    intended_ns: int
    sent_ns: int
    end_ns: int = 0
    chunk_ns: list[int] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: str = "ok"  # ok | error | cancelled
    error_type: str | None = None
    http_status: int | None = None
    attempts: int | None = None
    finish_reason: str | None = None
    #: The provider's own message when it refused the request itself (see refusal_message).
    error_message: str | None = None
    recorded: RecordedValues | None = None
    #: The worker process that sent it (``--workers``; 0 in a single-process run).
    worker: int = 0

    @property
    def ok(self) -> bool:
        """Finished without an error."""
        return self.status == "ok"

    @property
    def send_lag(self) -> float:
        """Seconds between the intended and the actual send."""
        return (self.sent_ns - self.intended_ns) / 1e9

    # -- as the instrumentation recorded it (what the summary's statistics use) --------------------
    @property
    def ttft(self) -> float | None:
        """Recorded time to first chunk (seconds)."""
        return self.recorded.ttft if self.recorded else None

    @property
    def ttfa(self) -> float | None:
        """Recorded time to the first answer chunk, after any reasoning (seconds)."""
        return self.recorded.ttfa if self.recorded else None

    @property
    def duration(self) -> float | None:
        """Recorded operation duration (seconds)."""
        return self.recorded.duration if self.recorded else None

    @property
    def gaps(self) -> list[float]:
        """Recorded gaps between content chunks (seconds)."""
        return self.recorded.gaps if self.recorded else []

    @property
    def tpot(self) -> float | None:
        """(duration - TTFT) / (output tokens - 1) of a successful stream, from recorded values."""
        rec = self.recorded
        tokens = (rec.output_tokens if rec else None) or self.output_tokens
        if not self.ok or rec is None or rec.ttft is None or rec.duration is None or not tokens or tokens < 2:
            return None
        return max(0.0, rec.duration - rec.ttft) / (tokens - 1)

    # -- as the client saw it ----------------------------------------------------------------------
    @property
    def client_duration(self) -> float:
        """Seconds from the SDK call to the arrival of the last item (or the error)."""
        return (self.end_ns - self.sent_ns) / 1e9

    @property
    def client_ttft(self) -> float | None:
        """Seconds from the SDK call to the first content-bearing chunk."""
        return (self.chunk_ns[0] - self.sent_ns) / 1e9 if self.chunk_ns else None

    @property
    def client_gaps(self) -> list[float]:
        """Seconds between consecutive content chunks."""
        c = self.chunk_ns
        return [(c[i] - c[i - 1]) / 1e9 for i in range(1, len(c))]

    def to_json(self, origin_ns: int) -> dict[str, Any]:
        """One JSONL row; times in seconds after ``origin_ns`` (plus the raw monotonic send time)."""

        def rel(ns: int) -> float:
            return round((ns - origin_ns) / 1e9, 6)

        def sec(value: float | None, digits: int = 6) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "target": self.target,
            "index": self.index,
            "warmup": self.warmup,
            "prompt": self.prompt_id,
            "intended_s": rel(self.intended_ns),
            "sent_s": rel(self.sent_ns),
            "send_lag_s": round(self.send_lag, 6),
            "end_s": rel(self.end_ns),
            "status": self.status,
            "error_type": self.error_type,
            "http_status": self.http_status,
            "attempts": self.attempts,
            "finish_reason": self.finish_reason,
            "error_message": self.error_message,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            # What the instrumentation recorded (aggregated into the exported histograms).
            "ttft_s": sec(self.ttft, 9),
            "ttfa_s": sec(self.ttfa, 9),
            "duration_s": sec(self.duration, 9),
            "tpot_s": sec(self.tpot, 9),
            "chunk_gaps_s": [round(g, 9) for g in self.gaps],
            # What the client saw around the SDK call.
            "client_ttft_s": sec(self.client_ttft),
            "client_duration_s": round(self.client_duration, 6),
            "client_chunk_gaps_s": [round(g, 6) for g in self.client_gaps],
            "chunks": len(self.chunk_ns),
            "sent_monotonic_ns": self.sent_ns,
            "worker": self.worker,
        }


@dataclass(frozen=True)
class LoadSpec:
    """How requests are scheduled."""

    limits: Limits
    concurrency: int = 4
    #: Requests per second for an open loop; None = closed loop at ``concurrency``.
    rate: float | None = None
    arrival: Arrival = "constant"
    warmup: int = 4


@dataclass(frozen=True)
class ReplayConfig:
    """Everything one replay run needs."""

    targets: list[Target]
    prompts: list[Prompt]
    dataset: str
    load: LoadSpec
    client: ClientOptions = field(default_factory=ClientOptions)
    nonce: bool = False
    parallel: bool = False
    drain_timeout: float = 10.0
    seed: int = 0
    mock_config: MockConfig | None = None
    otlp_endpoint: str | None = None
    #: Client processes sharing the load (see :mod:`otelbench.replay.workers`).
    workers: int = 1


@dataclass(frozen=True)
class GroundTruth:
    """The embedded mock's own record of a target's requests, paired with the client's."""

    served: int
    sent: int
    #: Medians over paired requests (seconds): SDK call -> request fully received by the mock,
    #: mock's first content byte - arrival (the server's TTFT), and first byte -> client saw it.
    send_overhead_p50: float | None
    server_ttft_p50: float | None
    receive_p50: float | None


@dataclass
class TargetRun:
    """What one target's run produced."""

    target: Target
    requests: list[RawRequest] = field(default_factory=list)
    load: LoadResult | None = None
    metrics: TargetStats | None = None
    ground_truth: GroundTruth | None = None
    skipped: bool = False
    #: How long a ready callback waited for the client's event loop, sampled every 5 ms during
    #: the measured load (seconds): a busy client adds about this much to what it measures.
    loop_lag: list[float] = field(default_factory=list)
    #: CPU seconds (user + system) this process spent during the measured load (with parallel
    #: targets, the shared total), and its peak RSS afterwards (MiB).
    cpu_s: float | None = None
    peak_rss_mib: float | None = None
    #: Peak RSS after this target's load - RSS before the warm-up (MiB): what the replay itself
    #: accumulated (raw log, telemetry, connection pools), imports excluded.
    rss_growth_mib: float | None = None

    @property
    def measured(self) -> list[RawRequest]:
        """The requests that count (warm-up excluded)."""
        return [r for r in self.requests if not r.warmup]


@dataclass
class ReplayOutcome:
    """The result of :func:`run_replay`."""

    config: ReplayConfig
    runs: list[TargetRun]
    interrupted: bool
    instrumented: list[str]
    origin_ns: int
    mock_url: str | None = None
    mock_records: list[RequestRecord] = field(default_factory=list)
    #: The process's OpenTelemetry resource (service.name, service.instance.id, ...).
    resource: dict[str, Any] = field(default_factory=dict)
    #: OTLP export outcome (None without ``otlp_endpoint``); complete once the run has returned.
    export: ExportStats | None = None
    #: Client processes that shared the load.
    workers: int = 1


def run_replay(config: ReplayConfig, progress: Progress | None = None) -> ReplayOutcome:
    """Run the replay described by ``config`` (starting the embedded mock if a target needs it)."""
    progress = progress or NullProgress()
    if config.workers > 1:
        from .workers import run_workers

        try:
            return run_workers(config, progress)
        finally:
            progress.close()
    telemetry = Telemetry(config.otlp_endpoint)
    try:
        with instrumented(telemetry) as enabled, embedded_mock(config) as mock:
            targets = [t.with_mock(mock.url) if (t.is_mock and mock) else t for t in config.targets]
            runner = _Runner(config, targets, telemetry, progress)
            asyncio.run(runner.run())
            for indices, data in runner.collected:
                assign_stats(runner.runs, summarize(data), indices)
            outcome = ReplayOutcome(
                config, runner.runs, runner.interrupted, enabled, runner.origin_ns, mock.url if mock else None
            )
            outcome.resource = dict(telemetry.resource.attributes)
            outcome.export = telemetry.export.stats if telemetry.export is not None else None
            if mock is not None:
                add_ground_truth(outcome, mock)
    finally:
        progress.close()
        telemetry.shutdown()
    return outcome


def add_ground_truth(outcome: ReplayOutcome, mock: MockServer) -> None:
    """Attach the embedded mock's records, and each mock target's pairing with them."""
    outcome.mock_records = mock.records
    for run in outcome.runs:
        if run.target.is_mock:
            run.ground_truth = ground_truth(run, outcome.mock_records)


@dataclass(frozen=True)
class WorkerSlot:
    """This process's share of a multi-process replay: worker ``index`` of ``count``."""

    index: int
    count: int
    #: A ``multiprocessing.Barrier`` of all workers: each measured phase starts together.
    barrier: Any

    def share(self, total: int) -> int:
        """This worker's part of ``total`` (requests or concurrency), parts differing by at most 1."""
        return total // self.count + (1 if self.index < total % self.count else 0)


@contextmanager
def embedded_mock(config: ReplayConfig) -> Iterator[MockServer | None]:
    """The embedded mock server, running in a child process, if a target needs it (else None)."""
    if not any(t.is_mock for t in config.targets):
        yield None
        return
    from .defaults import default_mock_config

    mock_config = config.mock_config or default_mock_config(config.seed)
    # A child process: the server's timing must not share the GIL with the client under test.
    with MockServer(mock_config, isolated=True) as server:
        yield server


class _Runner:
    def __init__(
        self,
        config: ReplayConfig,
        targets: list[Target],
        telemetry: Telemetry,
        progress: Progress,
        slot: WorkerSlot | None = None,
        origin_ns: int | None = None,
    ) -> None:
        self.config = config
        self.telemetry = telemetry
        self.progress = progress
        self.slot = slot or WorkerSlot(0, 1, None)
        self.runs = [TargetRun(t) for t in targets]
        self.stop = asyncio.Event()
        self.abort = asyncio.Event()
        self.interrupted = False
        self.origin_ns = origin_ns if origin_ns is not None else time.perf_counter_ns()
        self.run_tag = new_run_tag()
        self.adapters: dict[int, Adapter] = {}
        self.lag = _LoopLag()
        self.rss_before = math.nan
        #: Metrics collected after each measured phase, with the indices of the runs they cover.
        self.collected: list[tuple[list[int], MetricsData | None]] = []

    # -- signals ---------------------------------------------------------------------------------
    def _on_sigint(self) -> None:
        if self.slot.barrier is not None:
            self.slot.barrier.abort()  # workers waiting for this one to start a phase stop too
        if not self.interrupted:
            self.interrupted = True
            self.stop.set()
            self.progress.message(
                f"interrupted: no new requests; waiting up to {self.config.drain_timeout:g} s for those "
                "in flight (Ctrl-C again to cancel them)"
            )
        else:
            self.abort.set()

    @contextmanager
    def _sigint_handler(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        except (NotImplementedError, RuntimeError, ValueError):
            yield  # not the main thread, or no signal support: Ctrl-C raises KeyboardInterrupt
            return
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    # -- phases ----------------------------------------------------------------------------------
    async def run(self) -> None:
        with self._sigint_handler():
            # Closed loop: one connection per slot. Open loop: in-flight count is unbounded; 1 000 is
            # the SDKs' own default ceiling (beyond it requests queue for a connection).
            load = self.config.load
            connections = self.slot.share(load.concurrency) if load.rate is None else 1000 // self.slot.count
            options = replace(self.config.client, connections=max(connections, 10))
            for i, run in enumerate(self.runs):
                self.adapters[i] = make_adapter(
                    run.target,
                    options,
                    self.telemetry.tracer_provider,
                    self.telemetry.instrumented_meter_provider,
                )
            monitor = asyncio.create_task(self.lag.watch())
            self.rss_before = current_rss_mib()
            try:
                await self._warmup()
                self.telemetry.collect()  # drop the warm-up's metrics
                self.telemetry.measuring(True)
                # What exists now (SDKs, clients, prompts) lives for the whole run: a full
                # collection during the load then skips it (one took ~11 ms here otherwise).
                gc.collect()
                gc.freeze()
                if self.config.parallel:
                    every = list(range(len(self.runs)))
                    if await self._phase_start():
                        await asyncio.gather(*(self._measure(i) for i in every))
                        self.collected.append((every, self.telemetry.collect()))
                    else:
                        for run in self.runs:
                            run.skipped = True
                else:
                    for i in range(len(self.runs)):
                        if self.stop.is_set() or not await self._phase_start():
                            self.runs[i].skipped = True
                            continue
                        await self._measure(i)
                        self.collected.append(([i], self.telemetry.collect()))
            finally:
                gc.unfreeze()
                monitor.cancel()
                for adapter in self.adapters.values():
                    with suppress(Exception):
                        await adapter.aclose()
        for run in self.runs:
            measured = run.measured
            if measured and all(r.error_type == CONNECTION_ERROR for r in measured):
                raise _all_failed(run.target, measured, "request")

    async def _phase_start(self) -> bool:
        """Wait until every worker is ready to measure (False: a worker stopped or failed)."""
        barrier = self.slot.barrier
        if barrier is None:
            return True
        try:
            await asyncio.to_thread(barrier.wait)
        except threading.BrokenBarrierError:
            self.stop.set()
            return False
        return not self.stop.is_set()

    async def _warmup(self) -> None:
        n = self.config.load.warmup
        if n <= 0:
            return
        slot = self.slot

        async def one(i: int) -> None:
            run = self.runs[i]
            self.progress.start(f"{run.target.id} warm-up", n)
            await closed_loop(
                self._sender(i, warmup=True),
                self.config.prompts,
                concurrency=min(n, max(1, slot.share(self.config.load.concurrency))),
                limits=Limits(requests=n),
                stop=self.stop,
                drain_timeout=self.config.drain_timeout,
                abort=self.abort,
                first=slot.index,
                step=slot.count,
            )
            self.progress.finish(f"{run.target.id} warm-up")
            warm = [r for r in run.requests if r.warmup]
            if warm and not any(r.ok for r in warm) and not self.stop.is_set():
                raise _all_failed(run.target, warm, "warm-up request")
            # A closed loop's connections are opened now, so no measured TTFT includes a connect
            # (the lean client only: the SDKs' pools open theirs on demand).
            prepare = getattr(self.adapters[i], "prepare", None)
            if prepare is not None and self.config.load.rate is None and not self.stop.is_set():
                await prepare(slot.share(self.config.load.concurrency))

        # Always concurrently: warm-up is not measured, and a bare `otelbench replay` must be quick.
        await asyncio.gather(*(one(i) for i in range(len(self.runs))))

    async def _measure(self, i: int) -> None:
        run = self.runs[i]
        spec = self.config.load
        slot = self.slot
        limits = spec.limits
        if limits.requests is not None and slot.count > 1:
            limits = replace(limits, requests=slot.share(limits.requests))
        label = run.target.id
        self.progress.start(label, limits.requests, limits.duration)
        send = self._sender(i, warmup=False)
        user0, system0, _ = process_usage()
        if spec.rate is None:
            run.load = await closed_loop(
                send,
                self.config.prompts,
                concurrency=max(1, slot.share(spec.concurrency)),
                limits=limits,
                stop=self.stop,
                drain_timeout=self.config.drain_timeout,
                abort=self.abort,
                first=slot.index,
                step=slot.count,
            )
        else:
            # Each worker runs 1/n of the rate: Poisson streams add up to a Poisson stream; a
            # constant schedule is interleaved by starting worker w at w / rate.
            run.load = await open_loop(
                send,
                self.config.prompts,
                rate=spec.rate / slot.count,
                arrival=spec.arrival,
                seed=self.config.seed + i + 7919 * slot.index,
                limits=limits,
                stop=self.stop,
                drain_timeout=self.config.drain_timeout,
                abort=self.abort,
                first=slot.index,
                step=slot.count,
                phase=slot.index / spec.rate,
            )
        self.progress.finish(label)
        user1, system1, rss = process_usage()
        run.cpu_s, run.peak_rss_mib = (user1 - user0) + (system1 - system0), rss
        # The peak (the kernel's lazily kept high-water mark) can read a few pages below the RSS
        # sampled before the run when nothing grew: that is counter noise, not memory given back.
        growth = rss - self.rss_before
        run.rss_growth_mib = max(0.0, growth) if math.isfinite(growth) else None
        run.loop_lag = self.lag.between(run.load.started_ns, run.load.ended_ns)

    # -- one request -----------------------------------------------------------------------------
    def _sender(self, i: int, *, warmup: bool) -> Callable[[Job], Any]:
        run = self.runs[i]
        adapter = self.adapters[i]
        tracer = self.telemetry.tracer
        telemetry = self.telemetry
        tap = telemetry.tap
        tpot_histogram = telemetry.tpot
        nonce = self.config.nonce
        tag = f"{self.run_tag}-{i}-{'w' if warmup else 'm'}"
        progress = self.progress
        target_id = run.target.id  # a property that redacts the URL: once, not per request
        api_key = run.target.api_key
        label = f"{target_id} warm-up" if warmup else target_id
        worker = self.slot.index
        start_span = tracer.start_span
        span_attributes = {ATTR_WARMUP: warmup}

        async def send(job: Job) -> None:
            prompt = with_nonce(job.prompt, f"{tag}{job.index}") if nonce else job.prompt
            obs = Observation()
            raw = RawRequest(target_id, job.index, warmup, prompt.id, job.intended_ns, 0, worker=worker)
            run.requests.append(raw)
            # A parent span per request: the instrumentation's GenAI span becomes its child, and
            # the span tap files the child's attempt count under this span's id. Made current by
            # hand: start_as_current_span's context managers add ~3 us (of ~250) per request.
            span = start_span("otelbench.replay.request", attributes=span_attributes)
            token = attach(set_span_in_context(span))
            try:
                span_id = span.get_span_context().span_id
                telemetry.open_request(span_id)
                raw.sent_ns = time.perf_counter_ns()
                try:
                    await adapter.request(prompt, obs)
                    if obs.error_type is not None:
                        # A failure inside a 200 response (response.failed): the SDKs raise
                        # nothing; named by its code, as the instrumentation's error.type is.
                        raw.status = "error"
                        raw.error_type = obs.error_type
                except asyncio.CancelledError:
                    raw.status = "cancelled"
                    raise
                except Exception as exc:
                    raw.status = "error"
                    raw.error_type = _error_type(exc, adapter)
                    status = raw.http_status = http_status(exc)
                    if status in EXPLAINED_STATUSES:
                        raw.error_message = refusal_message(exc, api_key)
                finally:
                    # The adapter's own timestamps: the SDK call itself, and the arrival of the last
                    # item (before the stream is closed); ours only if it failed before those.
                    raw.sent_ns = obs.sent_ns or raw.sent_ns
                    raw.end_ns = obs.end_ns or time.perf_counter_ns()
                    raw.chunk_ns = obs.chunk_ns
                    raw.input_tokens = obs.input_tokens
                    raw.output_tokens = obs.output_tokens
                    raw.finish_reason = obs.finish_reason
                    raw.recorded = telemetry.close_request(span_id)
                    facts = tap.pop(span_id)
                    if facts is not None:
                        raw.attempts = facts.attempts
                        tpot = raw.tpot
                        if tpot is not None:
                            tpot_histogram.record(tpot, facts.metric_attributes)
                    progress.advance(label, ok=raw.ok)
            finally:
                detach(token)
                span.end()

        return send


def assign_stats(runs: list[TargetRun], stats: list[TargetStats], indices: list[int]) -> None:
    """Give each of ``runs[indices]`` the statistics of its provider, model and endpoint."""
    for i in indices:
        run = runs[i]
        host, port = run.target.host_port
        candidates = [
            s
            for s in stats
            if s.provider == run.target.provider
            and s.model == run.target.model
            and (s.server_address is None or host is None or s.server_address == host)
            and (s.server_port is None or port is None or s.server_port == port)
        ]
        if candidates:
            run.metrics = max(candidates, key=lambda s: s.requests)


class _LoopLag:
    """Samples how long a ready callback waits for the event loop (the client's own queueing)."""

    INTERVAL = 0.005

    def __init__(self) -> None:
        self.samples: list[tuple[int, float]] = []

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.INTERVAL)
            # One trip through the ready queue: every callback already waiting runs first. (Timer
            # lateness would also count epoll's rounding of timeouts to whole milliseconds.)
            before = time.perf_counter_ns()
            await asyncio.sleep(0)
            now = time.perf_counter_ns()
            self.samples.append((now, (now - before) / 1e9))

    def between(self, start_ns: int, end_ns: int) -> list[float]:
        return [lag for t, lag in self.samples if start_ns <= t <= end_ns]


#: ``error_type`` of a request that could not connect, whatever the SDK called it.
CONNECTION_ERROR = "ConnectionError"


def _error_type(exc: BaseException, adapter: Adapter) -> str:
    # Unreachable endpoints get one stable name across SDKs, so the run can say so plainly.
    if adapter.is_connection_error(exc):
        return CONNECTION_ERROR
    return type(exc).__qualname__


#: Statuses whose error message is about the request itself (a refused field, an unknown model),
#: not the credentials: kept with the request and shown when every request failed.
EXPLAINED_STATUSES = frozenset({400, 404, 409, 413, 422})
#: Characters of a provider's message kept.
MESSAGE_LIMIT = 200


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request: the SDKs' ``status_code``, botocore's metadata."""
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def refusal_message(exc: BaseException, api_key: str | None) -> str | None:
    """The provider's own message in a refusal: from the SDKs' parsed error body (OpenAI's and
    Anthropic's shapes), ollama's ``ResponseError.error``, botocore's error, or the lean client's
    raw body (any of those shapes). One line, at most MESSAGE_LIMIT characters, the API key
    blanked should a server echo it."""
    found: object = getattr(exc, "error", None)  # ollama's ResponseError
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        with suppress(ValueError):
            body = json.loads(body)
    if isinstance(body, dict):
        inner = body.get("error", body)
        found = inner.get("message") if isinstance(inner, dict) else inner
    response = getattr(exc, "response", None)
    if found is None and isinstance(response, dict):  # botocore's ClientError
        error = response.get("Error")
        found = error.get("Message") if isinstance(error, dict) else None
    if not isinstance(found, str) or not found.strip():
        return None
    message = " ".join(found.split())
    if api_key:
        message = message.replace(api_key, "***")
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def _all_failed(target: Target, requests: list[RawRequest], what: str) -> ProviderError:
    first = requests[0]
    if all(r.error_type == CONNECTION_ERROR for r in requests):
        return ProviderError(f"{target.id}: cannot reach {target.endpoint} (every {what} failed to connect)")
    status = f" (HTTP {first.http_status})" if first.http_status else ""
    said = f": {first.error_message}" if first.error_message else ""
    return ProviderError(
        f"{target.id}: every {what} to {target.endpoint} failed; first error: {first.error_type}{status}{said}"
    )


# --- ground truth ---------------------------------------------------------------------------------
def ground_truth(run: TargetRun, records: list[RequestRecord]) -> GroundTruth:
    """Pair the target's requests with the mock's records (by order) and split its TTFT."""
    mine = sorted(
        (r for r in records if r.model == run.target.model and r.protocol == run.target.mock_protocol),
        key=lambda r: r.arrival_ns,
    )
    sent = sorted((r for r in run.requests if r.sent_ns), key=lambda r: r.sent_ns)
    send = server = receive = None
    if mine and len(mine) == len(sent):
        # Closed-loop sends are ordered and each connection is FIFO, so the k-th send is (nearly
        # always) the k-th arrival; a rare swap moves a pair by far less than a millisecond.
        pairs = list(zip(sent, mine, strict=True))
        send = exact_quantile([(rec.arrival_ns - raw.sent_ns) / 1e9 for raw, rec in pairs], 0.5)
        ok = [(raw, rec) for raw, rec in pairs if raw.ok and raw.chunk_ns and rec.first_byte_ns]
        if ok:
            server = exact_quantile([(rec.first_byte_ns - rec.arrival_ns) / 1e9 for _, rec in ok], 0.5)  # type: ignore[operator]
            receive = exact_quantile([(raw.chunk_ns[0] - rec.first_byte_ns) / 1e9 for raw, rec in ok], 0.5)  # type: ignore[operator]
    return GroundTruth(len(mine), len(sent), send, server, receive)
