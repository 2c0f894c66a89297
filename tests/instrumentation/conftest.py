"""Real OTel SDK providers with in-memory exporters, passed explicitly to the instrumentors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelbench.mock import MockServer
from otelbench_instrumentation import OpenAIInstrumentor, semconv

from ..conftest import TimedStream

API_KEY = "sk-test-0123456789abcdefSECRET"


@dataclass
class Otel:
    """What the instrumentation exported during one test."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, oldest first."""
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, Metric]:
        """Metrics by name from one collection."""
        data = self.reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    found[metric.name] = metric
        return found

    def points(self, name: str) -> list[HistogramDataPoint]:
        """Histogram data points of one metric (empty if it was never recorded)."""
        metric = self.metrics().get(name)
        return list(metric.data.data_points) if metric is not None else []  # type: ignore[union-attr]


def only_span(otel: Otel) -> ReadableSpan:
    """The single finished span (fails listing the names otherwise)."""
    spans = otel.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def span_start_ns(span: ReadableSpan) -> int:
    """The span's start on the ``perf_counter_ns`` clock the mock records on (span times are
    wall-clock; this process's offset between the two maps them)."""
    assert span.start_time is not None
    return span.start_time - (time.time_ns() - time.perf_counter_ns())


def timed_stream(
    otel: Otel, mock: MockServer, stream: Callable[[], tuple[int, int]], *, from_span_start: bool = False
) -> TimedStream:
    """One timed stream, its bounds checked: ``stream`` makes the call and returns (``perf_counter_ns``
    at the call, when the app saw the first content); what earlier attempts exported and recorded
    is cleared first.

    ``from_span_start``: the lower bound counts from the span's start, for an SDK whose
    instrumentation starts inside its call.
    """
    otel.exporter.clear()
    mock.clear_records()
    called_ns, seen_ns = stream()
    span = only_span(otel)
    a = span.attributes or {}
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttft, float)
    (record,) = mock.records
    timed = TimedStream(ttft, called_ns, seen_ns, record, a)
    timed.assert_bounds(span_start_ns(span) if from_span_start else None)
    return timed


def make_providers() -> tuple[InMemorySpanExporter, TracerProvider, InMemoryMetricReader, MeterProvider]:
    """A fresh tracer and meter provider pair with in-memory export."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return exporter, tracer_provider, reader, MeterProvider(metric_readers=[reader])


def instrument_into_memory(instrumentor: Any, **kwargs: Any) -> Otel:
    """Turn ``instrumentor`` on (off first, if another test left it on) with in-memory export."""
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    exporter, tp, reader, mp = make_providers()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp, **kwargs)
    return Otel(exporter, reader, tp, mp)


@contextmanager
def instrumented_otel(instrumentor: Any, **kwargs: Any) -> Iterator[Otel]:
    """``instrument_into_memory`` for the block; uninstrumented and shut down after it."""
    data = instrument_into_memory(instrumentor, **kwargs)
    try:
        yield data
    finally:
        instrumentor.uninstrument()
        data.meter_provider.shutdown()
        data.tracer_provider.shutdown()


@pytest.fixture
def otel() -> Iterator[Otel]:
    """OpenAI instrumentation on, exporting into memory; undone after the test."""
    exporter, tp, reader, mp = make_providers()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield Otel(exporter, reader, tp, mp)
    finally:
        instrumentor.uninstrument()
        mp.shutdown()
        tp.shutdown()


@pytest.fixture
def client(mock_server: MockServer) -> Iterator[openai.OpenAI]:
    """A real OpenAI client talking to the mock."""
    with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY, max_retries=2) as c:
        yield c


def headers(**values: Any) -> dict[str, str]:
    """Per-request mock overrides, e.g. headers(ttft_ms=50) -> {"x-mock-ttft-ms": "50"}."""
    return {f"x-mock-{key.replace('_', '-')}": str(value) for key, value in values.items()}
