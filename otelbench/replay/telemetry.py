"""The replay's OpenTelemetry SDK pipeline: where the benchmark's numbers come from.

Every histogram is aggregated as an exponential histogram and read by an in-process
``InMemoryMetricReader`` with *delta* temporality, so each ``collect()`` returns only what
happened since the previous one: the runner collects once after warm-up (and drops it) and
once after the measured load. Optionally the same metrics and spans are also exported over
OTLP/HTTP to a Collector.

Per-request values. The instrumentation is given a pass-through ("tee") meter provider: every
histogram value it records goes to the SDK as usual *and* is filed under the request it
belongs to (found through the current span: the harness wraps each request in a span of its
own). So the raw log holds exactly the values that were aggregated, and comparing the
histogram-derived percentiles with the exact ones checks the export path alone, independent of
how busy the machine is. The client's own timings are logged beside them.

A span processor (:class:`SpanTap`) files each finished GenAI span's attempt count, error type
and metric attributes under its parent (the harness's request span), for the raw log and for
the harness's one derived metric, ``otelbench.replay.time_per_output_token`` = (duration -
TTFT) / (output tokens - 1) of each successful stream, computed from the instrumentation's own
per-request values (it has no per-token metric itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

import otelbench_instrumentation
from otelbench.summary import METRIC_TIME_PER_OUTPUT_TOKEN
from otelbench_instrumentation import semconv

MAX_BUCKETS = 4096
PROVIDERS = ("openai", "anthropic", "ollama")
_GROUPING = (
    semconv.GEN_AI_OPERATION_NAME,
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
)


@dataclass(frozen=True)
class SpanFacts:
    """What the GenAI span of one request said about it."""

    attempts: int
    error_type: str | None
    #: The span's metric-identifying attributes (provider, model, server address and port).
    metric_attributes: dict[str, Any]


class SpanTap(SpanProcessor):
    """Indexes finished GenAI spans by their parent span."""

    def __init__(self) -> None:
        self._facts: dict[int, SpanFacts] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do at start."""

    def on_end(self, span: ReadableSpan) -> None:
        """File the GenAI span's facts under its parent span id."""
        attrs = span.attributes or {}
        if semconv.GEN_AI_OPERATION_NAME not in attrs or span.parent is None:
            return
        error = attrs.get(semconv.ERROR_TYPE)
        attempts = attrs.get(semconv.ATTEMPT_COUNT, 1)
        facts = SpanFacts(
            int(attempts) if isinstance(attempts, int) else 1,
            str(error) if error else None,
            {k: attrs[k] for k in _GROUPING if k in attrs},
        )
        with self._lock:
            self._facts[span.parent.span_id] = facts

    def pop(self, parent_span_id: int) -> SpanFacts | None:
        """The facts of the GenAI span whose parent is ``parent_span_id`` (forgotten afterwards)."""
        with self._lock:
            return self._facts.pop(parent_span_id, None)

    def shutdown(self) -> None:
        """Nothing to flush."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing to flush."""
        return True


@dataclass
class RecordedValues:
    """What the instrumentation recorded into its histograms for one request."""

    ttft: float | None = None
    duration: float | None = None
    gaps: list[float] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_type: str | None = None

    def add(self, name: str, amount: float, attributes: Mapping[str, Any] | None) -> None:
        """File one recorded value."""
        if name == semconv.METRIC_TIME_PER_OUTPUT_CHUNK:
            self.gaps.append(float(amount))
        elif name == semconv.METRIC_TIME_TO_FIRST_CHUNK:
            self.ttft = float(amount)
        elif name == semconv.METRIC_OPERATION_DURATION:
            self.duration = float(amount)
            error = (attributes or {}).get(semconv.ERROR_TYPE)
            self.error_type = str(error) if error else None
        elif name == semconv.METRIC_TOKEN_USAGE:
            kind = (attributes or {}).get(semconv.GEN_AI_TOKEN_TYPE)
            if kind == semconv.TOKEN_TYPE_INPUT:
                self.input_tokens = int(amount)
            elif kind == semconv.TOKEN_TYPE_OUTPUT:
                self.output_tokens = int(amount)


Sink = Callable[[str, float, "Mapping[str, Any] | None", "Context | None"], None]


class _TeeHistogram(metrics.Histogram):
    def __init__(self, inner: metrics.Histogram, name: str, sink: Sink) -> None:
        # The API's Instrument.__init__ is abstract with an empty body: nothing to call.
        self._inner = inner
        self._name = name
        self._sink = sink

    def record(self, amount: float, attributes: Any = None, context: Context | None = None) -> None:
        self._inner.record(amount, attributes, context)
        self._sink(self._name, amount, attributes, context)


class _TeeMeter(metrics.Meter):
    """Delegates everything; histograms also report each value to ``sink``."""

    def __init__(self, inner: metrics.Meter, sink: Sink) -> None:
        super().__init__(inner.name, inner.version, inner.schema_url)
        self._inner = inner
        self._sink = sink

    def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> metrics.Histogram:
        return _TeeHistogram(self._inner.create_histogram(name, *args, **kwargs), name, self._sink)

    def create_counter(self, *args: Any, **kwargs: Any) -> metrics.Counter:
        return self._inner.create_counter(*args, **kwargs)

    def create_up_down_counter(self, *args: Any, **kwargs: Any) -> metrics.UpDownCounter:
        return self._inner.create_up_down_counter(*args, **kwargs)

    def create_gauge(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.create_gauge(*args, **kwargs)

    def create_observable_counter(self, *args: Any, **kwargs: Any) -> metrics.ObservableCounter:
        return self._inner.create_observable_counter(*args, **kwargs)

    def create_observable_gauge(self, *args: Any, **kwargs: Any) -> metrics.ObservableGauge:
        return self._inner.create_observable_gauge(*args, **kwargs)

    def create_observable_up_down_counter(self, *args: Any, **kwargs: Any) -> metrics.ObservableUpDownCounter:
        return self._inner.create_observable_up_down_counter(*args, **kwargs)


class TeeMeterProvider(metrics.MeterProvider):
    """A meter provider whose histograms also hand every value to ``sink``."""

    def __init__(self, inner: metrics.MeterProvider, sink: Sink) -> None:
        self._inner = inner
        self._sink = sink

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> metrics.Meter:
        """The inner provider's meter, wrapped."""
        return _TeeMeter(self._inner.get_meter(name, version, schema_url, attributes), self._sink)


class Telemetry:
    """Meter and tracer providers wired to an in-memory delta reader (and optionally OTLP)."""

    def __init__(self, otlp_endpoint: str | None = None) -> None:
        # 4 096 buckets instead of 160: chunk gaps span microseconds (two chunks in one read) to
        # tens of milliseconds; at 160 buckets that range forces ~9 %-wide buckets, at 4 096 they
        # stay ~0.5 % wide (scale 7) across 20 octaves.
        exponential = ExponentialBucketHistogramAggregation(max_size=MAX_BUCKETS)
        self.reader = InMemoryMetricReader(
            preferred_aggregation={Histogram: exponential},
            preferred_temporality={
                Histogram: AggregationTemporality.DELTA,
                Counter: AggregationTemporality.DELTA,
                UpDownCounter: AggregationTemporality.CUMULATIVE,
            },
        )
        readers: list[MetricReader] = [self.reader]
        resource = Resource.create({"service.name": "otelbench-replay"})
        span_exporter: Any = None
        if otlp_endpoint:
            metric_exporter, span_exporter = _otlp_exporters(otlp_endpoint)
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(PeriodicExportingMetricReader(metric_exporter, export_interval_millis=5000))
        self.meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tap = SpanTap()
        self.tpot = self.meter_provider.get_meter("otelbench.replay").create_histogram(
            METRIC_TIME_PER_OUTPUT_TOKEN,
            unit=semconv.UNIT_SECONDS,
            description="(duration - time to first chunk) / (output tokens - 1) of each successful stream.",
        )
        self.tracer_provider.add_span_processor(self.tap)
        if span_exporter is not None:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        self.tracer: Tracer = self.tracer_provider.get_tracer("otelbench.replay")
        #: What the instrumentation is given: the SDK provider, with per-request capture.
        self.instrumented_meter_provider = TeeMeterProvider(self.meter_provider, self._capture)
        self._open: dict[int, RecordedValues] = {}

    def open_request(self, span_id: int) -> None:
        """Start filing recorded values under the request span ``span_id``."""
        self._open[span_id] = RecordedValues()

    def close_request(self, span_id: int) -> RecordedValues | None:
        """The values recorded for request span ``span_id`` (None if nothing was recorded)."""
        values = self._open.pop(span_id, None)
        return values if values is not None and values.duration is not None else None

    def _capture(self, name: str, amount: float, attributes: Any, context: Context | None) -> None:
        # Recorded at the end of a stream the current span is the harness's request span; for a
        # non-streamed call it is still the GenAI span, a child of the request span.
        span = trace.get_current_span(context)
        values = self._open.get(span.get_span_context().span_id)
        if values is None:
            parent = getattr(span, "parent", None)
            values = self._open.get(parent.span_id) if parent is not None else None
        if values is not None:
            values.add(name, amount, attributes)

    def collect(self) -> MetricsData | None:
        """Everything recorded since the previous collect."""
        return self.reader.get_metrics_data()

    def shutdown(self) -> None:
        """Flush exporters and release the providers."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _otlp_exporters(endpoint: str) -> tuple[Any, Any]:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    return (
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
        OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
    )


@contextmanager
def instrumented(telemetry: Telemetry) -> Iterator[list[str]]:
    """Our instrumentation on, sending to ``telemetry``'s providers, for the duration of the block."""
    # An instrumentor that is already on keeps its earlier providers and would swallow our
    # metrics; the replay owns the process, so start from a clean slate.
    otelbench_instrumentation.uninstrument()
    # Only the provider SDKs: retry/breaker libraries are not on the replay's request path.
    providers = [name for name in PROVIDERS if name in otelbench_instrumentation.INSTRUMENTORS]
    enabled = otelbench_instrumentation.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.instrumented_meter_provider,
        include=providers,
        chunk_timing="each",
    )
    try:
        yield enabled
    finally:
        otelbench_instrumentation.uninstrument()
