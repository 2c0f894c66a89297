"""One variant of the ``overhead-peers`` target, run by that variant's virtualenv python.

Usage (the driver, :mod:`otelbench.targets.peers`, does this)::

    <venv>/bin/python -I _peer_worker.py --variant openllmetry --chunks 256 --pricing FILE

It imports only the standard library, ``openai``, the OTel SDK and the variant's
instrumentation: ``otelbench`` is not installed in a peer's virtualenv, so the canned responses
(``_transport.py`` beside this file) are loaded by path. The OTel setup is the same in every
variant: a global ``TracerProvider`` with a ``BatchSpanProcessor`` feeding an exporter that
counts spans and drops them, and a global ``MeterProvider`` with an ``InMemoryMetricReader``;
message-content capture is off.

Protocol: one JSON object per line. After setting up it writes ``{"ready": ...}``; then for each
line read from stdin (``{"op": "sync_call" | "sync_stream" | "async_call" | "async_stream",
"n": N}``, ``{"op": "stats"}`` or ``{"op": "exit"}``) it writes one answer. The protocol uses a
duplicate of the original stdout: fd 1 itself is pointed at stderr, so whatever a library prints
cannot corrupt it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import httpx2
import openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

MODEL = "gpt-4o-mini"
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
BASE_URL = "http://bench.invalid/v1"  # never resolved: the transport answers in-process
SPAN_QUEUE = 1 << 17  # no span may be dropped: the exported count is checked against the calls
WARMUP_CALLS = 20
WARMUP_STREAMS = 2

#: Distributions whose versions the worker reports (whichever are installed).
REPORTED_DISTS = (
    "openai",
    "httpx2",
    "pydantic",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "otelbench-instrumentation",
    "opentelemetry-instrumentation-openai",
    "opentelemetry-instrumentation-openai-v2",
    "opentelemetry-util-genai",
    "openlit",
)


def _load_transport() -> ModuleType:
    path = Path(__file__).with_name("_transport.py")
    spec = importlib.util.spec_from_file_location("_otelbench_transport", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CountingExporter(SpanExporter):
    """Counts exported spans by name, then drops them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_name: dict[str, int] = {}

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Count and drop."""
        with self._lock:  # called from the BatchSpanProcessor's worker thread
            for span in spans:
                self.by_name[span.name] = self.by_name.get(span.name, 0) + 1
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def instrument(variant: str, tp: TracerProvider, mp: MeterProvider, pricing: str) -> None:
    """Turn the variant's instrumentation on for the ``openai`` SDK (nothing for the baseline)."""
    if variant == "baseline":
        return
    if variant == "sdk_floor":
        _sdk_floor(tp, mp)
    elif variant == "ours":
        ours = importlib.import_module("otelbench_instrumentation")
        ours.OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp, capture_content=False)
    elif variant == "openllmetry":
        module = importlib.import_module("opentelemetry.instrumentation.openai")
        module.OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    elif variant == "openai_v2":
        module = importlib.import_module("opentelemetry.instrumentation.openai_v2")
        module.OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    elif variant == "openlit":
        openlit = importlib.import_module("openlit")
        names = importlib.import_module("openlit._instrumentors").MODULE_NAME_MAP
        # openlit.init reuses the global SDK providers set in main(); everything but openai is off,
        # and the pricing table is a local file (the default fetches it over the network).
        openlit.init(
            capture_message_content=False,
            disabled_instrumentors=[name for name in names if name != "openai"],
            disable_events=True,
            collect_gpu_stats=False,
            collect_system_metrics=False,
            pricing_json=pricing,
        )
    else:
        raise ValueError(f"unknown variant {variant!r}")


def _sdk_floor(tp: TracerProvider, mp: MeterProvider) -> None:
    """No instrumentation library: by hand around each call, only the OTel SDK work that a
    semconv-complete instrumentation cannot avoid (one span with the conventions' attributes, the
    duration and two token-usage records, plus TTFT and time-per-chunk for streams; the same
    attribute sets as ours). The floor under every variant's per-call cost."""
    from openai.resources.chat.completions import AsyncCompletions, Completions

    tracer = tp.get_tracer("sdk_floor")
    meter = mp.get_meter("sdk_floor")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    ttft = meter.create_histogram("gen_ai.client.operation.time_to_first_chunk", unit="s")
    per_chunk = meter.create_histogram("gen_ai.client.operation.time_per_output_chunk", unit="s")
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "server.address": "bench.invalid",
        "server.port": 80,
    }
    sync_create, async_create = Completions.create, AsyncCompletions.create

    def start(stream: bool) -> tuple[Any, int]:
        attrs: dict[str, Any] = {**base, "gen_ai.system": "openai"}
        if stream:
            attrs["gen_ai.request.stream"] = True
        return tracer.start_span(
            f"chat {MODEL}", kind=trace.SpanKind.CLIENT, attributes=attrs
        ), time.perf_counter_ns()

    def end(span: Any, t0: int, last: Any, first_ns: int = 0, last_ns: int = 0, chunks: int = 0) -> None:
        u = last.usage
        end_ns = time.perf_counter_ns()
        attrs: dict[str, Any] = {
            "gen_ai.response.id": last.id,
            "gen_ai.response.model": last.model,
            "gen_ai.response.finish_reasons": ("stop",),
            "gen_ai.openai.response.system_fingerprint": last.system_fingerprint,
            "gen_ai.usage.input_tokens": u.prompt_tokens,
            "gen_ai.usage.output_tokens": u.completion_tokens,
        }
        if chunks:
            attrs["otelbench.stream.chunk_count"] = chunks
            attrs["gen_ai.response.time_to_first_chunk"] = (first_ns - t0) / 1e9
        span.set_attributes(attrs)
        span.end()
        m = {**base, "gen_ai.response.model": last.model}
        duration.record((end_ns - t0) / 1e9, m)
        if chunks:
            ttft.record((first_ns - t0) / 1e9, m)
            per_chunk.record((last_ns - first_ns) / max(1, chunks - 1) / 1e9, m)
        usage.record(u.prompt_tokens, {**m, "gen_ai.token.type": "input"})
        usage.record(u.completion_tokens, {**m, "gen_ai.token.type": "output"})

    def timed(stream: Any, span: Any, t0: int) -> Any:
        first = last_ns = chunks = 0
        chunk = None
        for chunk in stream:
            last_ns = time.perf_counter_ns()
            first = first or last_ns
            chunks += 1
            yield chunk
        end(span, t0, chunk, first, last_ns, chunks)

    async def atimed(stream: Any, span: Any, t0: int) -> Any:
        first = last_ns = chunks = 0
        chunk = None
        async for chunk in stream:
            last_ns = time.perf_counter_ns()
            first = first or last_ns
            chunks += 1
            yield chunk
        end(span, t0, chunk, first, last_ns, chunks)

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        stream = kwargs.get("stream") is True
        span, t0 = start(stream)
        result = sync_create(self, *args, **kwargs)
        if stream:
            return timed(result, span, t0)
        end(span, t0, result)
        return result

    async def acreate(self: Any, *args: Any, **kwargs: Any) -> Any:
        stream = kwargs.get("stream") is True
        span, t0 = start(stream)
        result = await async_create(self, *args, **kwargs)
        if stream:
            return atimed(result, span, t0)
        end(span, t0, result)
        return result

    Completions.create = create  # type: ignore[method-assign]
    AsyncCompletions.create = acreate  # type: ignore[method-assign]


class Worker:
    """The variant's clients and the timed batches."""

    def __init__(self, chunks: int, transport: ModuleType) -> None:
        self.chunks = chunks
        handler = transport.make_handler(chunks)
        self.client = openai.OpenAI(
            api_key="sk-bench",
            base_url=BASE_URL,
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        )
        self.aclient = openai.AsyncOpenAI(
            api_key="sk-bench",
            base_url=BASE_URL,
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        )
        self.loop = asyncio.new_event_loop()
        self.calls = 0
        self.streams = 0
        self.stream_chunks_seen = 0

    # --- timed batches: each returns the elapsed ns for ``n`` operations -----------------------
    def sync_call(self, n: int) -> int:
        """``n`` non-streamed calls."""
        create: Any = self.client.chat.completions.create
        t0 = time.perf_counter_ns()
        for _ in range(n):
            create(model=MODEL, messages=MESSAGES)
        elapsed = time.perf_counter_ns() - t0
        self.calls += n
        return elapsed

    def sync_stream(self, n: int) -> int:
        """``n`` streamed calls, each read to exhaustion."""
        create: Any = self.client.chat.completions.create
        seen = 0
        t0 = time.perf_counter_ns()
        for _ in range(n):
            for _chunk in create(
                model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            ):
                seen += 1
        elapsed = time.perf_counter_ns() - t0
        self._streamed(n, seen)
        return elapsed

    def async_call(self, n: int) -> int:
        """``n`` non-streamed calls through ``AsyncOpenAI``."""

        async def run() -> None:
            create: Any = self.aclient.chat.completions.create
            for _ in range(n):
                await create(model=MODEL, messages=MESSAGES)

        elapsed = self._on_loop(run)
        self.calls += n
        return elapsed

    def async_stream(self, n: int) -> int:
        """``n`` streamed calls through ``AsyncOpenAI``."""
        seen = 0

        async def run() -> None:
            nonlocal seen
            create: Any = self.aclient.chat.completions.create
            for _ in range(n):
                stream = await create(
                    model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                )
                async for _chunk in stream:
                    seen += 1

        elapsed = self._on_loop(run)
        self._streamed(n, seen)
        return elapsed

    def _on_loop(self, run: Callable[[], Coroutine[Any, Any, None]]) -> int:
        t0 = time.perf_counter_ns()
        self.loop.run_until_complete(run())
        elapsed = time.perf_counter_ns() - t0
        # Finalise the async generators the SDK leaves suspended now, outside the timed code.
        gc.collect()
        self.loop.run_until_complete(_drain())
        return elapsed

    def _streamed(self, n: int, seen: int) -> None:
        self.calls += n
        self.streams += n
        self.stream_chunks_seen += seen


async def _drain() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def metric_counts(reader: InMemoryMetricReader) -> dict[str, float]:
    """Metric name -> number of histogram records (or sum of counter points) so far."""
    out: dict[str, float] = {}
    data = reader.get_metrics_data()
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                total = 0.0
                for point in metric.data.data_points:
                    if isinstance(point, HistogramDataPoint):
                        total += point.count
                    elif isinstance(point, NumberDataPoint):
                        total += point.value
                out[metric.name] = out.get(metric.name, 0.0) + total
    return out


def versions() -> dict[str, str]:
    """Installed versions of the distributions that matter for the comparison."""
    out = {}
    for dist in REPORTED_DISTS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def serve(
    worker: Worker,
    tp: TracerProvider,
    exporter: CountingExporter,
    reader: InMemoryMetricReader,
    inp: TextIO,
    out: TextIO,
) -> None:
    """Answer the driver's commands until ``exit`` or end of input."""
    batches: dict[str, Callable[[int], int]] = {
        "sync_call": worker.sync_call,
        "sync_stream": worker.sync_stream,
        "async_call": worker.async_call,
        "async_stream": worker.async_stream,
    }
    for line in inp:
        command = json.loads(line)
        op = command["op"]
        if op == "exit":
            break
        if op == "stats":
            tp.force_flush()
            answer: dict[str, Any] = {
                "calls": worker.calls,
                "streams": worker.streams,
                "stream_chunks_seen": worker.stream_chunks_seen,
                "spans": sum(exporter.by_name.values()),
                "span_names": dict(exporter.by_name),
                "metrics": metric_counts(reader),
            }
        else:
            gc.collect()  # untimed; the heap is frozen, so this stays cheap and equal for all variants
            answer = {"ns": batches[op](int(command["n"]))}
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Set up the variant, warm up, then serve the driver."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--pricing", default="")
    args = parser.parse_args(argv)
    # The protocol keeps the real stdout; anything printed by a library goes to stderr instead.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    exporter = CountingExporter()
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=SPAN_QUEUE, max_export_batch_size=4096))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    # Global too: some instrumentations (openlit) only use the global providers.
    trace.set_tracer_provider(tp)
    metrics.set_meter_provider(mp)
    instrument(args.variant, tp, mp, args.pricing)

    worker = Worker(args.chunks, _load_transport())
    worker.sync_call(WARMUP_CALLS)
    worker.async_call(WARMUP_CALLS)
    worker.sync_stream(WARMUP_STREAMS)
    worker.async_stream(WARMUP_STREAMS)
    # Objects alive now never move again: full collections stay cheap and equal in every variant.
    gc.collect()
    gc.freeze()
    out.write(json.dumps({"ready": True, "versions": versions(), "python": sys.version.split()[0]}) + "\n")
    out.flush()
    try:
        serve(worker, tp, exporter, reader, sys.stdin, out)
    finally:
        worker.loop.close()
        tp.shutdown()
        mp.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
