"""No leaks: every stream's span ends exactly once however the app leaves it; memory stays flat.

The real SDKs parse real mock wire bytes through their public httpx hook (see wire.py), so tens
of thousands of calls fit in a test run. Spans go to a real SDK TracerProvider through a counting
processor (an in-memory exporter would itself grow), metrics to a real InMemoryMetricReader.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otelbench.mock import MockServer
from otelbench_instrumentation import AnthropicInstrumentor, OllamaInstrumentor, OpenAIInstrumentor, semconv

from .conftest import bounded, uninstrument_everything
from .wire import MESSAGES, Body, Clients, Reply, by_protocol, record_bodies

PROVIDERS = ("openai", "anthropic", "ollama")
SYNC_EXITS = ("exhaust", "break", "close", "exception", "gc", "context")
ASYNC_EXITS = ("exhaust", "break", "close", "exception", "gc", "cancel")
EARLY = frozenset({"break", "close", "exception", "gc", "context"})


class CountingProcessor(SpanProcessor):
    """Counts started and ended spans (and ends per span, to catch a double end)."""

    def __init__(self, *, track_ids: bool = True) -> None:
        self.track_ids = track_ids  # off for the memory test: the Counter itself would grow
        self.count = 0
        self.started = 0
        self.ends: Counter[int] = Counter()
        self.closed_early = 0
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self.lock:
            self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        a = span.attributes or {}
        with self.lock:
            self.count += 1
            if self.track_ids:
                self.ends[span.context.span_id if span.context else 0] += 1
            if a.get(semconv.STREAM_CLOSED_EARLY) is True:
                self.closed_early += 1
            if semconv.ERROR_TYPE in a:
                self.errors[str(a[semconv.ERROR_TYPE])] += 1

    @property
    def ended(self) -> int:
        return self.count


@dataclass
class Instrumented:
    spans: CountingProcessor
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    instrumentors: list[Any] = field(default_factory=list)


@pytest.fixture
def instrumented() -> Iterator[Instrumented]:
    uninstrument_everything()
    spans = CountingProcessor()
    tp = TracerProvider()
    tp.add_span_processor(spans)
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    inst = Instrumented(spans, reader, tp, mp)
    for cls in (OpenAIInstrumentor, AnthropicInstrumentor, OllamaInstrumentor):
        cls().instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield inst
    finally:
        uninstrument_everything()
        mp.shutdown()
        tp.shutdown()


@pytest.fixture(scope="module")
def bodies(mock_server: MockServer) -> dict[str, Body]:
    return record_bodies(mock_server)


class AppError(Exception):
    """The app's own exception, raised while it reads a stream."""


def _open_sync(c: Clients, provider: str) -> Any:
    if provider == "openai":
        return c.openai.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    if provider == "anthropic":
        return c.anthropic.messages.create(model="m", max_tokens=50, messages=MESSAGES, stream=True)
    return c.ollama.chat(model="m", messages=MESSAGES, stream=True)


async def _open_async(c: Clients, provider: str) -> Any:
    if provider == "openai":
        return await c.aopenai.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    if provider == "anthropic":
        return await c.aanthropic.messages.create(model="m", max_tokens=50, messages=MESSAGES, stream=True)
    return await c.aollama.chat(model="m", messages=MESSAGES, stream=True)


_cycles: list[Any] = []


def _sync_call(c: Clients, provider: str, exit_mode: str) -> None:
    stream = _open_sync(c, provider)
    if exit_mode == "exhaust":
        for _ in stream:
            pass
    elif exit_mode == "break":
        for _ in stream:
            break
    elif exit_mode == "close":
        next(iter(stream))
        stream.close()
    elif exit_mode == "exception":
        with contextlib.suppress(AppError):
            for _ in stream:
                raise AppError
    elif exit_mode == "gc":
        next(iter(stream))
        # Only the cycle collector can free it now: __del__ must end the span then.
        cycle: list[Any] = [stream]
        cycle.append(cycle)
    elif exit_mode == "context":
        if provider == "ollama":  # a generator has no context manager: contextlib.closing is the idiom
            stream = contextlib.closing(stream)
        with stream as s:
            for _ in s:
                break


async def _async_call(c: Clients, provider: str, exit_mode: str) -> None:
    stream = await _open_async(c, provider)
    if exit_mode == "exhaust":
        async for _ in stream:
            pass
    elif exit_mode == "break":
        async for _ in stream:
            break
    elif exit_mode == "close":
        await stream.__anext__()
        await (stream.aclose() if provider == "ollama" else stream.close())
    elif exit_mode == "exception":
        with contextlib.suppress(AppError):
            async for _ in stream:
                raise AppError
    elif exit_mode == "gc":
        await stream.__anext__()
        cycle: list[Any] = [stream]
        cycle.append(cycle)
    elif exit_mode == "cancel":
        first = asyncio.Event()

        async def read() -> None:
            async for _ in stream:
                first.set()

        task = asyncio.create_task(read())
        await first.wait()  # the task is now suspended inside the stream's next read
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _plan(n: int, seed: int) -> list[tuple[bool, str, str]]:
    rng = random.Random(seed)
    plan = []
    for _ in range(n):
        is_async = rng.random() < 0.5
        plan.append((is_async, rng.choice(PROVIDERS), rng.choice(ASYNC_EXITS if is_async else SYNC_EXITS)))
    return plan


def _run_streams(bodies: dict[str, Body], inst: Instrumented, n: int, budget_s: float) -> dict[str, Any]:
    # Async bodies yield to the loop between events, so a cancel lands inside a stream read.
    route = by_protocol({name: Reply(body, async_pause=True) for name, body in bodies.items()})
    clients = Clients.build(route)
    plan = _plan(n, seed=n)
    threads_before = threading.active_count()
    in_time = bounded(budget_s)
    t0 = time.perf_counter()
    done = 0
    try:
        for _, provider, exit_mode in (p for p in plan if not p[0]):
            assert in_time(), f"time budget exceeded after {done} calls"
            _sync_call(clients, provider, exit_mode)
            done += 1
            if done % 500 == 0:
                gc.collect()

        async def run_async() -> int:
            count = 0
            for _, provider, exit_mode in (p for p in plan if p[0]):
                assert in_time(), f"time budget exceeded after {done + count} calls"
                await _async_call(clients, provider, exit_mode)
                count += 1
                if count % 500 == 0:
                    gc.collect()
            # Abandoned async-generator streams (Ollama's) are closed by asyncio's finalizer hook in
            # tasks of their own: give them a few loop turns, then nothing may be left running.
            for _ in range(100):
                if asyncio.all_tasks() == {asyncio.current_task()}:
                    break
                await asyncio.sleep(0)
            assert asyncio.all_tasks() == {asyncio.current_task()}
            return count

        done += asyncio.run(run_async())
    finally:
        clients.close()
    gc.collect()
    elapsed = time.perf_counter() - t0
    assert threading.active_count() == threads_before
    modes = Counter(mode for _, _, mode in plan)
    return {"done": done, "elapsed": elapsed, "modes": modes}


@pytest.mark.parametrize(
    "calls",
    [pytest.param(1_000, id="1k"), pytest.param(10_000, id="10k", marks=pytest.mark.slow)],
)
def test_streams_with_random_early_exits_end_every_span_once(
    bodies: dict[str, Body], instrumented: Instrumented, calls: int
) -> None:
    result = _run_streams(bodies, instrumented, calls, budget_s=calls * 0.02)
    spans = instrumented.spans
    modes: Counter[str] = result["modes"]
    assert result["done"] == calls
    assert spans.started == calls
    assert spans.ended == calls, f"{spans.started - spans.ended} spans never ended"
    assert set(spans.ends.values()) == {1}
    # Each exit is recorded as what it was: early closes flagged, cancellations as errors.
    assert spans.errors == Counter({"CancelledError": modes["cancel"]})
    assert spans.closed_early == sum(modes[m] for m in EARLY)
    rate = calls / result["elapsed"]
    print(
        f"\n{calls} streams, exits {dict(modes)}: {result['elapsed']:.1f} s ({rate:.0f}/s), spans {spans.ended}"
    )


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_rss_stays_flat_across_100k_instrumented_calls(
    bodies: dict[str, Body], instrumented: Instrumented
) -> None:
    """100 000 calls (plain and streamed, all three SDKs, sync) after a 10 000-call warm-up."""
    instrumented.spans.track_ids = False
    clients = Clients.build(by_protocol({name: Reply(body) for name, body in bodies.items()}))
    threads_before = threading.active_count()
    calls = [
        lambda: clients.openai.chat.completions.create(model="m", messages=MESSAGES),
        lambda: list(_open_sync(clients, "openai")),
        lambda: clients.anthropic.messages.create(model="m", max_tokens=50, messages=MESSAGES),
        lambda: list(_open_sync(clients, "anthropic")),
        lambda: clients.ollama.chat(model="m", messages=MESSAGES),
        lambda: list(_open_sync(clients, "ollama")),
    ]
    in_time = bounded(900)  # ~240 calls/s measured on a loaded 2-core machine
    samples: list[tuple[int, float]] = []
    try:
        t0 = time.perf_counter()
        for i in range(110_000):
            assert in_time(), f"time budget exceeded after {i} calls"
            calls[i % len(calls)]()
            if i % 10_000 == 9_999:
                gc.collect()
                instrumented.reader.get_metrics_data()  # a collection, as a periodic reader would
                samples.append((i + 1, _rss_bytes() / 2**20))
        elapsed = time.perf_counter() - t0
    finally:
        clients.close()
    warm = samples[0][1]
    drift = [rss - warm for _, rss in samples[1:]]
    print(
        f"\nRSS after warm-up {warm:.1f} MiB; drift per 10k calls {[f'{d:+.2f}' for d in drift]} MiB; "
        f"{110_000 / elapsed:.0f} calls/s"
    )
    assert instrumented.spans.ended == 110_000
    assert all(abs(d) <= 5 for d in drift), drift
    assert threading.active_count() == threads_before
