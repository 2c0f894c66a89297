"""Target ``instrumentation-overhead``: what our OpenAI instrumentation costs per call and per chunk.

The official ``openai`` SDK talks to an in-process ``httpx2.MockTransport`` that answers with a
canned ``ChatCompletion`` or a pre-encoded SSE stream of ``chunks`` content chunks (+ a finish
chunk, a usage chunk and ``[DONE]``), so no socket or server noise hides a microsecond-scale
difference. Telemetry goes to the real OTel SDK: a ``TracerProvider`` with a
``BatchSpanProcessor`` feeding an exporter that counts spans and drops them, and a
``MeterProvider`` with an ``InMemoryMetricReader`` (records aggregate in memory as in
production; nothing is exported during the run).

Method: in one process, rounds interleave the variants (uninstrumented baseline,
instrumented with ``chunk_timing="mean"`` - the default -, instrumented with
``chunk_timing="each"``), rotating their order each round. Each call is timed on its own; a
round's figure is the median per-call time of that variant. Reported figures:

* ``per_call_overhead_us`` = median over rounds (instrumented) - median over rounds (baseline),
  non-streaming ``chat.completions.create``.
* ``per_chunk_overhead_us`` = (median instrumented stream call - median baseline stream call) /
  ``chunks``, the whole streamed call (request to exhaustion) divided by its chunks: the fixed
  per-call cost (span start/end, final metrics) is amortised into it, so it is an upper bound.
* ``per_chunk_overhead_net_us`` = (stream overhead - ``per_call_overhead_us``) / ``chunks``: an
  estimate of the marginal per-chunk cost alone.
* ``per_chunk_overhead_each_us``: as ``per_chunk_overhead_us`` with ``chunk_timing="each"``.
* ``*_min_us`` / ``*_max_us``: the spread of the per-round paired differences
  (instrumented round r - baseline round r).
* ``async_*``: the same for ``AsyncOpenAI``.

End to end, one 256-chunk stream costs the SDK ~40 ms here, so a 1 µs/chunk difference is 0.6 %
of it, well inside the run-to-run noise of a shared 2-core VM. The ``*_isolated_*`` figures
therefore also time the instrumentation's own code paths without the SDK around them:

* ``per_chunk_isolated_us``: the stream proxy + OpenAI chunk handler (+ the chunk's share of the
  recorder's end) per content chunk, as (T(259 chunks) - T(3 non-content chunks)) / 256 over
  already-parsed ``ChatCompletionChunk`` objects; ``per_chunk_isolated_each_us`` with
  ``chunk_timing="each"``.
* ``per_call_isolated_us``: recorder start + response handling + end (span and the three
  histogram records) for one non-streamed completion.
* ``histogram_record_us``: one OTel SDK histogram record with our attribute set.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any, Literal

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.util.types import AttributeValue

from otelbench_instrumentation import OpenAIInstrumentor, Telemetry, semconv
from otelbench_instrumentation._config import Settings
from otelbench_instrumentation.providers.openai._extract import chat_chunks, on_chat_completion
from otelbench_instrumentation.streams import SyncStreamProxy

from . import BenchmarkError, BenchmarkResult, utc_now_iso
from ._transport import make_handler

TARGET_ID = "instrumentation-overhead"
MODEL = "gpt-4o-mini"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
_BASE_URL = "http://bench.invalid/v1"  # never resolved: the transport answers in-process

Mode = Literal["mean", "each"] | None  # None: uninstrumented
_VARIANT_NAMES: dict[Mode, str] = {None: "baseline", "mean": "mean", "each": "each"}


# --- telemetry sinks ------------------------------------------------------------------------
class CountingSpanExporter(SpanExporter):
    """Counts exported spans (and the chunks streaming spans saw), then drops them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans = 0
        self.stream_spans = 0
        self.stream_chunks = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Count and drop."""
        stream_spans = chunks = 0
        for span in spans:
            count = (span.attributes or {}).get(semconv.STREAM_CHUNK_COUNT)
            if isinstance(count, int):
                stream_spans += 1
                chunks += count
        with self._lock:  # called from the BatchSpanProcessor's worker thread
            self.spans += len(spans)
            self.stream_spans += stream_spans
            self.stream_chunks += chunks
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def _histogram_count(reader: InMemoryMetricReader, name: str) -> int:
    data = reader.get_metrics_data()
    total = 0
    if data is None:
        return 0
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    total += sum(
                        p.count for p in metric.data.data_points if isinstance(p, HistogramDataPoint)
                    )
    return total


# --- the benchmark ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OverheadConfig:
    """Sizes of the run; the defaults keep the whole target under about a minute on 2 cores."""

    # Many short rounds rather than few long ones: on a shared VM the CPU speed changes in bursts
    # of seconds, and fine interleaving keeps the variants of one round inside the same burst.
    # Switching instrumentation on and off costs ~2.5 ms, outside the timed code.
    rounds: int = 60
    calls_per_round: int = 20  # non-streaming calls per variant per round
    streams_per_round: int = 1  # streamed calls per variant per round
    chunks: int = 256
    include_async: bool = True
    time_budget_s: float = 50.0  # rounds stop early (after min_rounds) rather than exceed this
    min_rounds: int = 2
    warmup_calls: int = 20
    warmup_streams: int = 2
    isolated_repeats: int = 400  # repetitions of each isolated measurement (cheap; medians need many)


@dataclass
class _Expected:
    """What the instrumented work done so far must have produced (checked against the sinks)."""

    spans: int = 0
    stream_spans: int = 0
    stream_chunks: int = 0
    chunk_values: dict[str, int] = field(default_factory=lambda: {"mean": 0, "each": 0})

    def add_calls(self, n: int) -> None:
        self.spans += n

    def add_streams(self, mode: str, n: int, content_chunks: int) -> None:
        self.spans += n
        self.stream_spans += n
        self.stream_chunks += n * content_chunks
        if content_chunks > 1:  # one mean gap, or one value per gap
            self.chunk_values[mode] += n * (1 if mode == "mean" else content_chunks - 1)


@dataclass
class _PhaseResult:
    per_round_ns: dict[str, list[float]]  # variant -> median per-call ns, one per round
    fastest_ns: dict[str, float]  # variant -> fastest single call over the phase
    rounds: int
    seconds: float


class _Switch:
    """Puts the process into one variant: uninstrumented, or instrumented in a chunk-timing mode."""

    def __init__(self, tracer_provider: TracerProvider, meter_providers: dict[str, MeterProvider]) -> None:
        self._instrumentor = OpenAIInstrumentor()
        self._tp = tracer_provider
        self._mps = meter_providers
        self.mode: Mode = None

    def set(self, mode: Mode) -> None:
        if mode == self.mode:
            return
        if self.mode is not None:
            self._instrumentor.uninstrument()
            self.mode = None
        if mode is not None:
            self._instrumentor.instrument(
                tracer_provider=self._tp,
                meter_provider=self._mps[mode],
                chunk_timing=mode,
                capture_content=False,  # fixed, so OTEL_INSTRUMENTATION_GENAI_* cannot change the figures
                skip_dep_check=True,
            )
            self.mode = mode


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class InstrumentationOverheadTarget:
    """Per-call and per-chunk cost of the OpenAI instrumentation against the bare SDK."""

    id = TARGET_ID
    description = "µs added by the OpenAI instrumentation per call and per streamed chunk (in-process)"

    def __init__(
        self,
        *,
        rounds: int = OverheadConfig.rounds,
        calls_per_round: int = OverheadConfig.calls_per_round,
        streams_per_round: int = OverheadConfig.streams_per_round,
        chunks: int = OverheadConfig.chunks,
        include_async: bool = OverheadConfig.include_async,
        time_budget_s: float = OverheadConfig.time_budget_s,
        warmup_calls: int = OverheadConfig.warmup_calls,
        warmup_streams: int = OverheadConfig.warmup_streams,
        isolated_repeats: int = OverheadConfig.isolated_repeats,
    ) -> None:
        if min(rounds, calls_per_round, streams_per_round, isolated_repeats) < 1 or chunks < 2:
            raise ValueError(
                "rounds, calls/streams per round, isolated_repeats >= 1 and chunks >= 2 required"
            )
        self.config = OverheadConfig(
            rounds=rounds,
            calls_per_round=calls_per_round,
            streams_per_round=streams_per_round,
            chunks=chunks,
            include_async=include_async,
            time_budget_s=time_budget_s,
            min_rounds=min(OverheadConfig.min_rounds, rounds),
            warmup_calls=warmup_calls,
            warmup_streams=warmup_streams,
            isolated_repeats=isolated_repeats,
        )

    # --- run ------------------------------------------------------------------------------
    def run(self) -> BenchmarkResult:
        """Measure every variant and return the overhead figures (µs)."""
        cfg = self.config
        instrumentor = OpenAIInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            # The baseline would be instrumented too and every figure would be meaningless.
            raise BenchmarkError(
                "OpenAI SDK is already instrumented in this process; cannot measure a baseline"
            )
        timestamp = utc_now_iso()
        started = time.monotonic()
        deadline = started + cfg.time_budget_s

        exporter = CountingSpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        readers = {"mean": InMemoryMetricReader(), "each": InMemoryMetricReader()}
        meter_providers = {mode: MeterProvider(metric_readers=[r]) for mode, r in readers.items()}
        switch = _Switch(tracer_provider, meter_providers)
        handler = make_handler(cfg.chunks)
        client = openai.OpenAI(
            api_key="sk-bench",
            base_url=_BASE_URL,
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        )
        aclient = openai.AsyncOpenAI(
            api_key="sk-bench",
            base_url=_BASE_URL,
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        )
        loop = asyncio.new_event_loop()
        expected = _Expected()
        phases: dict[str, _PhaseResult] = {}

        # Objects alive now never move again: full collections stay cheap and equal for all
        # variants, while the young-generation work the instrumentation causes is still timed.
        gc.collect()
        gc.freeze()
        chunk_points: dict[str, int] = {}
        try:
            parsed_chunks = self._check_stream_shape(client)
            completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
            isolated = self._isolated(parsed_chunks, completion)
            sync_call, sync_stream = self._sync_batches(client)
            plan: list[tuple[str, Callable[[int], list[int]], Sequence[Mode]]] = [
                ("sync_call", sync_call, (None, "mean")),
                ("sync_stream", sync_stream, (None, "mean", "each")),
            ]
            if cfg.include_async:
                async_call, async_stream = self._async_batches(aclient, loop)
                plan += [
                    ("async_call", async_call, (None, "mean")),
                    ("async_stream", async_stream, (None, "mean", "each")),
                ]
            for i, (name, batch, modes) in enumerate(plan):
                # Each phase gets an equal share of what is left of the budget.
                phase_deadline = time.monotonic() + (deadline - time.monotonic()) / (len(plan) - i)
                phases[name] = self._phase(name, batch, modes, switch, phase_deadline, expected)
            histogram_record_ns = self._histogram_record_ns()
        finally:
            switch.set(None)
            gc.unfreeze()
            client.close()
            loop.run_until_complete(aclient.close())
            _close_loop(loop)
            tracer_provider.force_flush()
            chunk_points = {
                mode: _histogram_count(reader, semconv.METRIC_TIME_PER_OUTPUT_CHUNK)
                for mode, reader in readers.items()
            }
            tracer_provider.shutdown()
            for mp in meter_providers.values():
                mp.shutdown()

        if exporter.spans == 0:
            raise BenchmarkError(
                f"instrumented runs produced no spans ({expected.spans} expected): the OpenAI "
                "instrumentation is not patching the SDK, so the overhead figures are meaningless"
            )
        if exporter.stream_chunks == 0:
            raise BenchmarkError("instrumented streams recorded no chunks: per-chunk figures are meaningless")

        metrics, per_round, min_estimates = self._figures(phases)
        metrics.update(isolated)
        metrics["histogram_record_us"] = histogram_record_ns / 1e3
        # Mismatches short of "nothing at all" are reported, not fatal: the timings still stand.
        warnings = []
        if exporter.spans != expected.spans:
            warnings.append(f"{exporter.spans} spans exported, {expected.spans} expected")
        if exporter.stream_chunks != expected.stream_chunks:
            warnings.append(
                f"streaming spans counted {exporter.stream_chunks} chunks, {expected.stream_chunks} expected"
            )
        if chunk_points != expected.chunk_values:
            warnings.append(
                f"time_per_output_chunk values recorded {chunk_points}, expected {expected.chunk_values}"
            )
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "rounds_completed": {name: p.rounds for name, p in phases.items()},
            "phase_seconds": {name: round(p.seconds, 2) for name, p in phases.items()},
            "total_seconds": round(time.monotonic() - started, 2),
            "per_round_median_us": per_round,
            "samples": self._samples(phases),
            "alternative_estimates_us": min_estimates,
            "spans_expected": expected.spans,
            "spans_exported": exporter.spans,
            "stream_spans_exported": exporter.stream_spans,
            "stream_chunks_expected": expected.stream_chunks,
            "stream_chunks_recorded": exporter.stream_chunks,
            "time_per_output_chunk_values": chunk_points,
            "time_per_output_chunk_values_expected": expected.chunk_values,
            "tracer_provider": "TracerProvider + BatchSpanProcessor(default settings) -> exporter counting and dropping spans",
            "meter_provider": "MeterProvider + InMemoryMetricReader (one per chunk-timing mode), collected once at the end",
            "transport": "httpx2.MockTransport, canned JSON / pre-encoded SSE body",
            "definitions": {
                "per_call_overhead_us": "median(instrumented) - median(baseline) of per-round median call time, non-streaming",
                "per_chunk_overhead_us": "(median instrumented stream call - median baseline stream call) / chunks; "
                "includes the amortised per-call cost",
                "per_chunk_overhead_net_us": "(stream call overhead - per_call_overhead_us) / chunks",
                "per_chunk_overhead_each_us": "per_chunk_overhead_us with chunk_timing='each'",
                "*_min_us/*_max_us": "min/max over rounds of (instrumented round r - baseline round r)",
                "per_chunk_isolated_us": "(T(proxy over 259 parsed chunks) - T(proxy over 3 non-content chunks)) / 256, "
                "median of isolated_repeats, chunk_timing='mean'",
                "per_chunk_isolated_each_us": "per_chunk_isolated_us with chunk_timing='each'",
                "per_call_isolated_us": "recorder start + on_chat_completion + end, no SDK",
                "histogram_record_us": "best-of-5 mean of 2000 SDK Histogram.record calls with 6 attributes",
                "alternative_estimates_us.min_based": "fastest instrumented call - fastest baseline call over "
                "the phase (per call, or per chunk for streams): robust to slowdowns, sensitive to luck",
                "alternative_estimates_us.paired_median": "median over rounds of (instrumented round r - "
                "baseline round r), per call or per chunk",
            },
            "warnings": warnings,
            "machine": _machine(),
        }
        return BenchmarkResult(target_id=self.id, metrics=metrics, timestamp=timestamp, details=details)

    # --- phases ---------------------------------------------------------------------------
    def _phase(
        self,
        name: str,
        batch: Callable[[int], list[int]],
        modes: Sequence[Mode],
        switch: _Switch,
        deadline: float,
        expected: _Expected,
    ) -> _PhaseResult:
        cfg = self.config
        streaming = name.endswith("stream")
        size = cfg.streams_per_round if streaming else cfg.calls_per_round
        warmup = cfg.warmup_streams if streaming else cfg.warmup_calls
        per_round: dict[str, list[float]] = {_VARIANT_NAMES[m]: [] for m in modes}
        fastest: dict[str, float] = {}
        started = time.monotonic()

        def count(mode: Mode, n: int) -> None:
            if mode is None:
                return
            if streaming:
                expected.add_streams(mode, n, cfg.chunks)
            else:
                expected.add_calls(n)

        for mode in modes:  # warm every code path (imports, caches, pydantic models) untimed
            switch.set(mode)
            batch(warmup)
            count(mode, warmup)
        rounds = 0
        last_round_s = 0.0
        while rounds < cfg.rounds:
            if rounds >= cfg.min_rounds and time.monotonic() + last_round_s > deadline:
                break
            round_start = time.monotonic()
            k = rounds % len(modes)
            for mode in [*modes[k:], *modes[:k]]:  # rotate so no variant always runs first
                switch.set(mode)
                gc.collect()
                times = batch(size)
                count(mode, size)
                per_round[_VARIANT_NAMES[mode]].append(statistics.median(times))
                name_ = _VARIANT_NAMES[mode]
                fastest[name_] = min(fastest.get(name_, float("inf")), min(times))
            rounds += 1
            last_round_s = time.monotonic() - round_start
        switch.set(None)
        return _PhaseResult(per_round, fastest, rounds, time.monotonic() - started)

    def _check_stream_shape(self, client: openai.OpenAI) -> list[Any]:
        """Stream once uninstrumented; return the parsed chunks (role, contents, finish, usage)."""
        # The per-chunk division assumes the SDK really yields every chunk we encoded.
        expected = self.config.chunks + 3
        stream: Any = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        if len(chunks) != expected:
            raise BenchmarkError(f"mock stream yielded {len(chunks)} chunks, expected {expected}")
        return chunks

    def _isolated(self, chunks: list[Any], completion: Any) -> dict[str, float]:
        """Time the instrumentation's own code paths on already-parsed SDK objects."""
        # Own providers (same configuration), so the end-to-end span checks count only SDK calls.
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(CountingSpanExporter()))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        try:
            return self._time_isolated(tracer_provider, meter_provider, chunks, completion)
        finally:
            tracer_provider.shutdown()
            meter_provider.shutdown()

    def _time_isolated(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        chunks: list[Any],
        completion: Any,
    ) -> dict[str, float]:
        repeats = self.config.isolated_repeats
        n_content = len(chunks) - 3
        skeleton = [chunks[0], chunks[-2], chunks[-1]]  # role, finish, usage: no content chunk
        clock = time.perf_counter_ns
        telemetry = {
            mode: Telemetry(tracer_provider, meter_provider, Settings(chunk_timing=mode))
            for mode in ("mean", "each")
        }

        def start(t: Telemetry, streaming: bool) -> Any:
            # What the SDK wrapper does around a call, minus the SDK itself.
            recorder = t.start_llm(
                operation=semconv.OP_CHAT,
                provider=semconv.PROVIDER_OPENAI,
                request_model=MODEL,
                server_address="bench.invalid",
                server_port=80,
                streaming=streaming,
                request_attributes={},
            )
            if recorder is None:
                raise BenchmarkError("the instrumentation could not start a recorder")
            recorder.deactivate()
            return recorder

        def stream_ns(t: Telemetry, items: list[Any]) -> int:
            t0 = clock()
            for _chunk in SyncStreamProxy(iter(items), start(t, True), chat_chunks):
                pass
            return clock() - t0

        def plain_ns(items: list[Any]) -> int:
            t0 = clock()
            for _chunk in iter(items):
                pass
            return clock() - t0

        def call_ns(t: Telemetry) -> int:
            t0 = clock()
            recorder = start(t, False)
            on_chat_completion(recorder, completion)
            recorder.end()
            return clock() - t0

        samples: dict[str, list[int]] = {
            k: [] for k in ("call", "plain", "plain0", "mean", "mean0", "each", "each0")
        }
        gc.collect()
        for _ in range(repeats):
            samples["call"].append(call_ns(telemetry["mean"]))
            samples["plain"].append(plain_ns(chunks))
            samples["plain0"].append(plain_ns(skeleton))
            for mode in ("mean", "each"):
                samples[mode].append(stream_ns(telemetry[mode], chunks))
                samples[f"{mode}0"].append(stream_ns(telemetry[mode], skeleton))
        med = {k: statistics.median(v) for k, v in samples.items()}
        plain = med["plain"] - med["plain0"]
        return {
            "per_call_isolated_us": med["call"] / 1e3,
            "per_chunk_isolated_us": (med["mean"] - med["mean0"] - plain) / n_content / 1e3,
            "per_chunk_isolated_each_us": (med["each"] - med["each0"] - plain) / n_content / 1e3,
        }

    def _sync_batches(
        self, client: openai.OpenAI
    ) -> tuple[Callable[[int], list[int]], Callable[[int], list[int]]]:
        clock = time.perf_counter_ns

        def calls(n: int) -> list[int]:
            # Looked up per batch: instrumenting replaces the method on the class.
            create: Any = client.chat.completions.create
            out = []
            for _ in range(n):
                t0 = clock()
                create(model=MODEL, messages=MESSAGES)
                out.append(clock() - t0)
            return out

        def streams(n: int) -> list[int]:
            create: Any = client.chat.completions.create
            out = []
            for _ in range(n):
                t0 = clock()
                for _chunk in create(
                    model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                ):
                    pass
                out.append(clock() - t0)
            return out

        return calls, streams

    def _async_batches(
        self, client: openai.AsyncOpenAI, loop: asyncio.AbstractEventLoop
    ) -> tuple[Callable[[int], list[int]], Callable[[int], list[int]]]:
        clock = time.perf_counter_ns

        async def calls(n: int) -> list[int]:
            create: Any = client.chat.completions.create
            out = []
            for _ in range(n):
                t0 = clock()
                await create(model=MODEL, messages=MESSAGES)
                out.append(clock() - t0)
            return out

        async def streams(n: int) -> list[int]:
            create: Any = client.chat.completions.create
            out = []
            for _ in range(n):
                t0 = clock()
                stream = await create(
                    model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                )
                async for _chunk in stream:
                    pass
                out.append(clock() - t0)
            return out

        def on_loop(fn: Callable[[int], Coroutine[Any, Any, list[int]]]) -> Callable[[int], list[int]]:
            def batch(n: int) -> list[int]:
                times = loop.run_until_complete(fn(n))
                # The SDK leaves inner async generators suspended after [DONE]; finalise them
                # now, outside the timed code, instead of in the next batch's timings.
                gc.collect()
                loop.run_until_complete(_drain())
                return times

            return batch

        return on_loop(calls), on_loop(streams)

    # --- figures --------------------------------------------------------------------------
    def _figures(
        self, phases: dict[str, _PhaseResult]
    ) -> tuple[dict[str, float], dict[str, Any], dict[str, dict[str, float]]]:
        chunks = self.config.chunks
        metrics: dict[str, float] = {}
        per_round_us: dict[str, Any] = {}
        min_based: dict[str, float] = {}
        paired: dict[str, float] = {}
        for name, phase in phases.items():
            per_round_us[name] = {v: [round(x / 1e3, 2) for x in xs] for v, xs in phase.per_round_ns.items()}
            scale = chunks if name.endswith("stream") else 1
            base = phase.fastest_ns["baseline"]
            for variant, fastest in phase.fastest_ns.items():
                if variant != "baseline":
                    min_based[f"{name}_{variant}"] = round((fastest - base) / scale / 1e3, 3)
                    diffs = [
                        i - b
                        for i, b in zip(
                            phase.per_round_ns[variant], phase.per_round_ns["baseline"], strict=True
                        )
                    ]
                    paired[f"{name}_{variant}"] = round(_median(diffs) / scale / 1e3, 3)

        def overhead(phase: _PhaseResult, variant: str) -> tuple[float, float, float]:
            base = phase.per_round_ns["baseline"]
            inst = phase.per_round_ns[variant]
            paired = [i - b for i, b in zip(inst, base, strict=True)]
            return _median(inst) - _median(base), min(paired), max(paired)

        for prefix in ("sync", "async"):
            call = phases.get(f"{prefix}_call")
            stream = phases.get(f"{prefix}_stream")
            key = "" if prefix == "sync" else "async_"
            if call is None or stream is None:
                continue
            metrics[f"{prefix}_call_baseline_us"] = _median(call.per_round_ns["baseline"]) / 1e3
            metrics[f"{prefix}_call_instrumented_us"] = _median(call.per_round_ns["mean"]) / 1e3
            call_oh, call_lo, call_hi = overhead(call, "mean")
            metrics[f"{key}per_call_overhead_us"] = call_oh / 1e3
            metrics[f"{key}per_call_overhead_min_us"] = call_lo / 1e3
            metrics[f"{key}per_call_overhead_max_us"] = call_hi / 1e3

            metrics[f"{prefix}_stream_baseline_us"] = _median(stream.per_round_ns["baseline"]) / 1e3
            metrics[f"{prefix}_stream_instrumented_us"] = _median(stream.per_round_ns["mean"]) / 1e3
            metrics[f"{prefix}_stream_instrumented_each_us"] = _median(stream.per_round_ns["each"]) / 1e3
            metrics[f"{prefix}_baseline_per_chunk_us"] = metrics[f"{prefix}_stream_baseline_us"] / chunks
            st_oh, st_lo, st_hi = overhead(stream, "mean")
            metrics[f"{key}per_chunk_overhead_us"] = st_oh / chunks / 1e3
            metrics[f"{key}per_chunk_overhead_min_us"] = st_lo / chunks / 1e3
            metrics[f"{key}per_chunk_overhead_max_us"] = st_hi / chunks / 1e3
            metrics[f"{key}per_chunk_overhead_net_us"] = (st_oh - call_oh) / chunks / 1e3
            ea_oh, ea_lo, ea_hi = overhead(stream, "each")
            metrics[f"{key}per_chunk_overhead_each_us"] = ea_oh / chunks / 1e3
            metrics[f"{key}per_chunk_overhead_each_min_us"] = ea_lo / chunks / 1e3
            metrics[f"{key}per_chunk_overhead_each_max_us"] = ea_hi / chunks / 1e3
        return metrics, per_round_us, {"min_based": min_based, "paired_median": paired}

    def _samples(self, phases: dict[str, _PhaseResult]) -> dict[str, list[float]]:
        """Per-round values behind the headline metrics, for ``otelbench compare``'s test."""
        chunks = self.config.chunks
        out: dict[str, list[float]] = {}

        def us(values: Sequence[float], scale: int = 1) -> list[float]:
            return [round(v / scale / 1e3, 4) for v in values]

        def paired(phase: _PhaseResult, variant: str) -> list[float]:
            rounds = zip(phase.per_round_ns[variant], phase.per_round_ns["baseline"], strict=True)
            return [i - b for i, b in rounds]

        for prefix in ("sync", "async"):
            call, stream = phases.get(f"{prefix}_call"), phases.get(f"{prefix}_stream")
            if call is None or stream is None:
                continue
            key = "" if prefix == "sync" else "async_"
            out[f"{prefix}_call_baseline_us"] = us(call.per_round_ns["baseline"])
            out[f"{prefix}_call_instrumented_us"] = us(call.per_round_ns["mean"])
            out[f"{key}per_call_overhead_us"] = us(paired(call, "mean"))
            out[f"{prefix}_stream_baseline_us"] = us(stream.per_round_ns["baseline"])
            out[f"{prefix}_stream_instrumented_us"] = us(stream.per_round_ns["mean"])
            out[f"{key}per_chunk_overhead_us"] = us(paired(stream, "mean"), chunks)
            out[f"{key}per_chunk_overhead_each_us"] = us(paired(stream, "each"), chunks)
        return out

    @staticmethod
    def _histogram_record_ns(records: int = 2000, repeats: int = 5) -> float:
        """Best-of-``repeats`` cost of one SDK histogram record with the attributes we use."""
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        try:
            histogram = provider.get_meter("otelbench.bench").create_histogram(
                semconv.METRIC_TIME_PER_OUTPUT_CHUNK,
                unit=semconv.UNIT_SECONDS,
                explicit_bucket_boundaries_advisory=semconv.BUCKETS_TIME_PER_CHUNK,
            )
            attrs: dict[str, AttributeValue] = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                semconv.GEN_AI_PROVIDER_NAME: semconv.PROVIDER_OPENAI,
                semconv.GEN_AI_REQUEST_MODEL: MODEL,
                semconv.SERVER_ADDRESS: "bench.invalid",
                semconv.SERVER_PORT: 80,
                semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            }
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                for _ in range(records):
                    histogram.record(0.001, attrs)
                best = min(best, (time.perf_counter_ns() - t0) / records)
            return best
        finally:
            provider.shutdown()


async def _drain() -> None:
    # A few loop iterations let the aclose() tasks scheduled by asyncgen finalisers finish.
    for _ in range(3):
        await asyncio.sleep(0)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Finalise abandoned async generators and their tasks, then close the loop quietly."""
    gc.collect()
    loop.run_until_complete(loop.shutdown_asyncgens())
    pending = asyncio.all_tasks(loop)
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def _machine() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "openai": version("openai"),
        "httpx2": version("httpx2"),
        "opentelemetry-sdk": version("opentelemetry-sdk"),
        "otelbench-instrumentation": version("otelbench-instrumentation"),
    }
