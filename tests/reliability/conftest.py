"""Real OTel SDK pipelines that fail in every way, and helpers shared by the reliability suite.

The broken parts are real SDK extension points (``SpanProcessor``, ``SpanExporter``,
``MetricExporter``) plugged into real SDK providers, the way a misconfigured or overloaded
production pipeline would fail: raise, hang (bounded), or report failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile
from otelbench_instrumentation import (
    AnthropicInstrumentor,
    OllamaInstrumentor,
    OpenAIInstrumentor,
    PyBreakerInstrumentor,
    TenacityInstrumentor,
)

#: How long a "hanging" part of the pipeline blocks, per call (bounded so the suite ends).
HANG_S = 0.050

INSTRUMENTORS = (
    OpenAIInstrumentor,
    AnthropicInstrumentor,
    OllamaInstrumentor,
    TenacityInstrumentor,
    PyBreakerInstrumentor,
)


class PipelineBoom(RuntimeError):
    """Raised by the broken telemetry pipeline; must never reach the application."""


@dataclass
class CallLog:
    """Which threads the broken pipeline was called on (to prove it never ran on the loop)."""

    threads: set[int] = field(default_factory=set)
    calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def misbehave(self, mode: str, what: str) -> None:
        """Note the call, then raise (mode "raise") or block for HANG_S (mode "hang")."""
        with self.lock:
            self.calls += 1
            self.threads.add(threading.get_ident())
        if mode == "raise":
            raise PipelineBoom(what)
        if mode == "hang":
            time.sleep(HANG_S)


class BrokenProcessor(SpanProcessor):
    """A span processor that raises or hangs on start and/or end."""

    def __init__(self, mode: str, *, on_start: bool, on_end: bool, log: CallLog) -> None:
        self.mode, self.start, self.end, self.log = mode, on_start, on_end, log

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.start:
            self.log.misbehave(self.mode, "span processor")

    def on_end(self, span: ReadableSpan) -> None:
        if self.end:
            self.log.misbehave(self.mode, "span processor")


class BrokenSpanExporter(SpanExporter):
    """A span exporter that raises, hangs, or reports failure."""

    def __init__(self, mode: str, log: CallLog) -> None:
        self.mode, self.log = mode, log

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.log.misbehave(self.mode, "span exporter")
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


class BrokenMetricExporter(MetricExporter):
    """A metric exporter that raises, hangs, or reports failure."""

    def __init__(self, mode: str, log: CallLog) -> None:
        super().__init__()
        self.mode, self.log = mode, log

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.log.misbehave(self.mode, "metric exporter")
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


@dataclass
class Pipeline:
    """A real SDK tracer + meter provider pair with one broken part."""

    name: str
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    log: CallLog
    #: True when the broken part runs on the application's thread by OTel's own contract
    #: (span processors are synchronous); False when the SDK runs it on its own thread.
    on_app_thread: bool

    def shutdown(self) -> None:
        # The SDK's own shutdown may log the broken part's failure; it must not raise here.
        self.meter_provider.shutdown(timeout_millis=2_000)
        self.tracer_provider.shutdown()


def _periodic(exporter: MetricExporter) -> PeriodicExportingMetricReader:
    # Export every 20 ms so the broken exporter is called many times during a workload.
    return PeriodicExportingMetricReader(exporter, export_interval_millis=20, export_timeout_millis=500)


def build_pipeline(name: str) -> Pipeline:
    """One of :data:`PIPELINES`, freshly built."""
    log = CallLog()
    tp = TracerProvider()
    mp_readers: list[Any] = []
    on_app_thread = False
    kind, mode = name.rsplit("-", 1)
    if kind == "processor-start":
        tp.add_span_processor(BrokenProcessor(mode, on_start=True, on_end=False, log=log))
        on_app_thread = True
    elif kind == "processor-end":
        tp.add_span_processor(BrokenProcessor(mode, on_start=False, on_end=True, log=log))
        on_app_thread = True
    elif kind == "simple-exporter":
        # SimpleSpanProcessor exports on the ending thread by design; only raise/fail here.
        tp.add_span_processor(SimpleSpanProcessor(BrokenSpanExporter(mode, log)))
        on_app_thread = True
    elif kind == "batch-exporter":
        tp.add_span_processor(BatchSpanProcessor(BrokenSpanExporter(mode, log), schedule_delay_millis=10))
        mp_readers.append(_periodic(BrokenMetricExporter(mode, log)))
    else:  # pragma: no cover - a typo in PIPELINES
        raise AssertionError(name)
    return Pipeline(name, tp, MeterProvider(metric_readers=mp_readers), log, on_app_thread)


#: Every broken pipeline the never-break tests run the app under.
PIPELINES = (
    "processor-start-raise",
    "processor-end-raise",
    "processor-end-hang",
    "simple-exporter-raise",
    "simple-exporter-fail",
    "batch-exporter-raise",
    "batch-exporter-hang",
    "batch-exporter-fail",
)


def uninstrument_everything() -> None:
    """Undo every instrumentor that another test may have left on."""
    for cls in INSTRUMENTORS:
        inst = cls()
        if inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()


@pytest.fixture
def clean_instrumentation() -> Iterator[None]:
    """No instrumentor on before or after the test."""
    uninstrument_everything()
    try:
        yield
    finally:
        uninstrument_everything()


def instrument_everything(tracer_provider: Any, meter_provider: Any, **kwargs: Any) -> None:
    """Every instrumentor of the library, on one provider pair."""
    for cls in INSTRUMENTORS:
        extra = {"attach_existing": False} if cls is PyBreakerInstrumentor else {}
        cls().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **extra, **kwargs)


FAST_PROFILE = ModelProfile(ttft=Dist.fixed(0.0), itl=Dist.fixed(0.0), output_tokens=Dist.fixed(4))


@pytest.fixture(scope="module")
def fast_mock() -> Iterator[MockServer]:
    """A mock of this module's own that answers at once (these tests count, they don't time)."""
    with MockServer(MockConfig(seed=23, default_profile=FAST_PROFILE)) as server:
        yield server


def bounded(deadline_s: float) -> Callable[[], bool]:
    """A predicate that turns False once ``deadline_s`` seconds have passed (for load loops)."""
    end = time.monotonic() + deadline_s
    return lambda: time.monotonic() < end
