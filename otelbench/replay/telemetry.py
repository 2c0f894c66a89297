"""The replay's OpenTelemetry SDK pipeline: where the benchmark's numbers come from.

Every histogram is aggregated as an exponential histogram and read by an in-process
``InMemoryMetricReader`` with *delta* temporality, so each ``collect()`` returns only what
happened since the previous one: the runner collects once after warm-up (and drops it) and
once after the measured load.

Optionally (:class:`OtlpExport`) the spans and a *mirror* of every metric are also exported
over OTLP/HTTP to a Collector: a second meter provider with the exporter's defaults
(cumulative temporality, the conventions' explicit buckets), fed only while the runner says
the load is measured, so Prometheus sees the same requests as the summary (warm-up spans are
still exported, marked ``otelbench.replay.warmup``). Failed exports are counted, not raised:
a Collector that goes away costs telemetry, never the run.

Per-request values. The instrumentation is given a pass-through ("tee") meter provider: every
histogram value it records goes to the SDK (queued, and aggregated in one go before each
collect: see ``_Gate``) *and* is filed at once under the request it belongs to (found through
the current span: the harness wraps each request in a span of its own). So the raw log holds
exactly the values that were aggregated, and comparing the histogram-derived percentiles with
the exact ones checks the export path alone, independent of how busy the machine is. The
client's own timings are logged beside them.

A span processor (:class:`SpanTap`) files each finished GenAI span's attempt count, error type
and metric attributes under its parent (the harness's request span), for the raw log and for
the harness's one derived metric, ``otelbench.replay.time_per_output_token`` = (duration -
TTFT) / (output tokens - 1) of each successful stream, computed from the instrumentation's own
per-request values (it has no per-token metric itself).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import urllib.parse
import uuid
from array import array
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

import otelbench_instrumentation
from otelbench.errors import UsageError
from otelbench.summary import METRIC_TIME_PER_OUTPUT_TOKEN
from otelbench_instrumentation import semconv

log = logging.getLogger("otelbench.replay")

MAX_BUCKETS = 4096
DEFAULT_SERVICE_NAME = "otelbench-replay"
DEFAULT_EXPORT_INTERVAL_MS = 5000
#: Attribute of the harness's per-request span: true for warm-up requests.
ATTR_WARMUP = "otelbench.replay.warmup"
PROVIDERS = ("openai", "anthropic", "ollama", "bedrock")
#: One histogram value per chunk gap: the summary's inter-chunk percentiles need every gap.
CHUNK_TIMING: Final = "each"
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
    ttfa: float | None = None
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
        elif name == semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK:
            self.ttfa = float(amount)
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


#: Histogram values held back at most (see _Gate): 8 bytes each, so 8 MiB. Past it, values go to
#: the SDK BACKLOG_STEP at a time (~15 ms of aggregation each here), so no single pause is long.
BACKLOG_LIMIT = 1 << 20
BACKLOG_STEP = 1_024


_TYPECODES = {float: "d", int: "q"}


class _Queued:
    """The values waiting for one histogram under one attribute set, in a compact array."""

    __slots__ = ("attributes", "instrument", "values")

    def __init__(self, instrument: Any, attributes: Any, typecode: str) -> None:
        self.instrument = instrument
        self.attributes = attributes
        self.values: array[Any] = array(typecode)

    def hand_over(self, count: int) -> int:
        """Record the oldest ``count`` values. Taken from the front: a value appended meanwhile
        (Bedrock's SDK records from worker threads) is neither lost nor recorded twice."""
        values = self.values
        batch = values[:count]
        del values[:count]
        record, attributes = self.instrument.record, self.attributes
        for amount in batch:
            record(amount, attributes)
        return len(batch)


class _Gate:
    """Whether values currently flow to the OTLP mirror (off during warm-up), and the histogram
    values waiting to reach the SDK.

    Aggregating one value costs the OpenTelemetry SDK ~14 us here (it cleans, copies and hashes
    the attributes each time), and a stream records one per chunk gap: done at once, that is a
    quarter of a loaded replay's CPU, taken from the event loop that stamps the responses' bytes.
    The in-memory reader is only read by collect(), so its values are queued, 8 bytes each in an
    array per (histogram, attribute set), and handed over before each collect (at most
    BACKLOG_LIMIT wait). The per-request capture and the OTLP mirror (``--otlp-endpoint``,
    exported while the load runs) still happen at once. The context is not queued: the in-memory
    provider keeps no exemplars.
    """

    __slots__ = ("_lock", "_queues", "generation", "open", "queued")

    def __init__(self) -> None:
        self.open = False
        self.queued = 0
        #: Bumped by each full flush: a histogram's remembered queue is valid within one generation.
        self.generation = 0
        self._queues: dict[tuple[Any, str, Any], _Queued] = {}
        self._lock = threading.Lock()  # one flush at a time

    def queue_for(self, instrument: Any, attributes: Any, typecode: str) -> _Queued:
        """The queue of ``instrument`` for what ``attributes`` holds now (a copy is kept: the
        caller may change its dict later)."""
        copy = dict(attributes) if attributes else None
        try:
            key: Any = frozenset(copy.items()) if copy else None
        except TypeError:  # an unhashable value (a list): a queue of its own
            key = object()
        queue = self._queues.get((instrument, typecode, key))
        if queue is None:  # setdefault: two threads meeting here share one queue
            queue = self._queues.setdefault((instrument, typecode, key), _Queued(instrument, copy, typecode))
        return queue

    def flush(self, count: int | None = None) -> None:
        """Hand ``count`` queued values (all by default) to their instruments."""
        with self._lock:
            if count is None or count >= self.queued:
                queues, self._queues = self._queues, {}
                self.generation += 1
                self.queued = 0
                for queue in queues.values():
                    queue.hand_over(len(queue.values))
                return
            for queue in list(self._queues.values()):
                if queue.values:
                    handed = queue.hand_over(count)
                    self.queued -= handed
                    count -= handed
                    if count <= 0:
                        return


class _Mirrored:
    """Records into the in-memory instrument and, while the gate is open, into its export twin."""

    def __init__(self, inner: Any, twin: Any, gate: _Gate) -> None:
        self._inner = inner
        self._twin = twin
        self._gate = gate

    def _both(self, method: str, amount: float, attributes: Any, context: Context | None) -> None:
        getattr(self._inner, method)(amount, attributes, context)
        if self._twin is not None and self._gate.open:
            getattr(self._twin, method)(amount, attributes, context)


class _TeeHistogram(_Mirrored, metrics.Histogram):
    def __init__(self, inner: Any, twin: Any, gate: _Gate, name: str, sink: Sink) -> None:
        # The API's Instrument.__init__ is abstract with an empty body: nothing to call.
        _Mirrored.__init__(self, inner, twin, gate)
        self._name = name
        self._sink = sink
        # The queue of the last record: consecutive records with the same dict (a stream's chunk
        # gaps) append to it without looking it up again.
        self._last: tuple[Any, type, int, _Queued] | None = None

    def record(self, amount: float, attributes: Any = None, context: Context | None = None) -> None:
        # Queued for the summary's reader, not aggregated now (see _Gate).
        gate = self._gate
        last = self._last
        kind = type(amount)
        try:
            if last is not None and last[0] is attributes and last[1] is kind and last[2] == gate.generation:
                last[3].values.append(amount)
            else:
                queue = gate.queue_for(self._inner, attributes, _TYPECODES[kind])
                queue.values.append(amount)
                self._last = (attributes, kind, gate.generation, queue)
            gate.queued += 1
        except (KeyError, OverflowError):  # a bool, a Decimal, an int past int64: as it comes
            self._inner.record(amount, attributes)
        if gate.queued >= BACKLOG_LIMIT:
            gate.flush(BACKLOG_STEP)
        if self._twin is not None and gate.open:
            # Not queued: a Collector (and a dashboard behind it) sees the load while it runs.
            self._twin.record(amount, attributes, context)
        self._sink(self._name, amount, attributes, context)


class _TeeCounter(_Mirrored, metrics.Counter):
    def add(self, amount: float, attributes: Any = None, context: Context | None = None) -> None:
        self._both("add", amount, attributes, context)


class _TeeUpDownCounter(_Mirrored, metrics.UpDownCounter):
    def add(self, amount: float, attributes: Any = None, context: Context | None = None) -> None:
        self._both("add", amount, attributes, context)


class _TeeMeter(metrics.Meter):
    """Delegates everything; histograms also report each value to ``sink``; with a ``twin``
    meter, synchronous instruments are mirrored there while ``gate`` is open."""

    def __init__(self, inner: metrics.Meter, twin: metrics.Meter | None, gate: _Gate, sink: Sink) -> None:
        super().__init__(inner.name, inner.version, inner.schema_url)
        self._inner = inner
        self._twin = twin
        self._gate = gate
        self._sink = sink

    def _pair(self, method: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        inner = getattr(self._inner, method)(*args, **kwargs)
        twin = getattr(self._twin, method)(*args, **kwargs) if self._twin is not None else None
        return inner, twin

    def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> metrics.Histogram:
        inner, twin = self._pair("create_histogram", (name, *args), kwargs)
        return _TeeHistogram(inner, twin, self._gate, name, self._sink)

    def create_counter(self, *args: Any, **kwargs: Any) -> metrics.Counter:
        return _TeeCounter(*self._pair("create_counter", args, kwargs), self._gate)

    def create_up_down_counter(self, *args: Any, **kwargs: Any) -> metrics.UpDownCounter:
        return _TeeUpDownCounter(*self._pair("create_up_down_counter", args, kwargs), self._gate)

    def create_gauge(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.create_gauge(*args, **kwargs)

    # Observable instruments report state, not events: both readers may call their callbacks.
    def create_observable_counter(self, *args: Any, **kwargs: Any) -> metrics.ObservableCounter:
        return self._pair("create_observable_counter", args, kwargs)[0]  # type: ignore[no-any-return]

    def create_observable_gauge(self, *args: Any, **kwargs: Any) -> metrics.ObservableGauge:
        return self._pair("create_observable_gauge", args, kwargs)[0]  # type: ignore[no-any-return]

    def create_observable_up_down_counter(self, *args: Any, **kwargs: Any) -> metrics.ObservableUpDownCounter:
        return self._pair("create_observable_up_down_counter", args, kwargs)[0]  # type: ignore[no-any-return]


class TeeMeterProvider(metrics.MeterProvider):
    """A meter provider whose histograms also hand every value to ``sink`` (and whose
    synchronous instruments are mirrored into ``twin`` while ``gate`` is open)."""

    def __init__(
        self,
        inner: metrics.MeterProvider,
        sink: Sink,
        twin: metrics.MeterProvider | None = None,
        gate: _Gate | None = None,
    ) -> None:
        self._inner = inner
        self._sink = sink
        self._twin = twin
        self._gate = gate or _Gate()

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> metrics.Meter:
        """The inner provider's meter, wrapped."""
        twin = self._twin.get_meter(name, version, schema_url, attributes) if self._twin is not None else None
        return _TeeMeter(
            self._inner.get_meter(name, version, schema_url, attributes), twin, self._gate, self._sink
        )


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
        self.resource = replay_resource()
        # No exemplars here: the summary never reads them, and offering each measurement to a
        # reservoir is ~6 % of a lean replay's CPU. The OTLP mirror keeps the SDK's default.
        self.meter_provider = MeterProvider(
            metric_readers=[self.reader], resource=self.resource, exemplar_filter=AlwaysOffExemplarFilter()
        )
        self.tracer_provider = TracerProvider(resource=self.resource)
        self.tap = SpanTap()
        self.tracer_provider.add_span_processor(self.tap)
        self.export = OtlpExport(otlp_endpoint, self.resource) if otlp_endpoint else None
        if self.export is not None:
            self.tracer_provider.add_span_processor(self.export.span_processor)
        self.tracer: Tracer = self.tracer_provider.get_tracer("otelbench.replay")
        self._gate = _Gate()
        #: What the instrumentation is given: the SDK provider, with per-request capture (and the
        #: OTLP mirror, fed while the load is measured).
        self.instrumented_meter_provider = TeeMeterProvider(
            self.meter_provider,
            self._capture,
            self.export.meter_provider if self.export is not None else None,
            self._gate,
        )
        self.tpot = self.instrumented_meter_provider.get_meter("otelbench.replay").create_histogram(
            METRIC_TIME_PER_OUTPUT_TOKEN,
            unit=semconv.UNIT_SECONDS,
            description="(duration - time to first chunk) / (output tokens - 1) of each successful stream.",
            explicit_bucket_boundaries_advisory=semconv.BUCKETS_TIME_PER_CHUNK,
        )
        self._open: dict[int, RecordedValues] = {}

    def measuring(self, on: bool) -> None:
        """Whether metrics recorded from now on are mirrored to the OTLP export (not in warm-up)."""
        self._gate.open = on

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
        self._gate.flush()
        return self.reader.get_metrics_data()

    def shutdown(self) -> None:
        """Flush exporters and release the providers."""
        self._gate.flush()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        if self.export is not None:
            self.export.meter_provider.shutdown()


def replay_resource() -> Resource:
    """The replay's resource: ``service.name`` otelbench-replay unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` name one, and a fresh ``service.instance.id`` per process (the
    Collector's Prometheus exporter turns them into the ``job`` and ``instance`` labels)."""
    detected = Resource.create()
    extra: dict[str, str] = {}
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        extra[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    if SERVICE_INSTANCE_ID not in detected.attributes:
        extra[SERVICE_INSTANCE_ID] = str(uuid.uuid4())
    return detected.merge(Resource(extra))


@dataclass
class ExportStats:
    """Export calls and items (spans, metric data points) that reached the Collector or not."""

    span_batches: int = 0
    span_batches_failed: int = 0
    spans: int = 0
    spans_failed: int = 0
    metric_exports: int = 0
    metric_exports_failed: int = 0

    @property
    def failed(self) -> bool:
        """Whether any export failed."""
        return bool(self.span_batches_failed or self.metric_exports_failed)

    def describe(self) -> str:
        """One line for the terminal: how much of the export failed."""
        return (
            f"{self.spans_failed} of {self.spans} spans ({self.span_batches_failed} of {self.span_batches} "
            f"batches) and {self.metric_exports_failed} of {self.metric_exports} metric exports failed"
        )

    def to_json(self) -> dict[str, int]:
        """A JSON-ready mapping."""
        return {k: int(v) for k, v in self.__dict__.items()}


class OtlpExport:
    """OTLP/HTTP export of the replay's spans and of the measured metrics, with failure counts.

    The exporters keep their own defaults and environment variables (``OTEL_EXPORTER_OTLP_TIMEOUT``
    bounds each export's retries; ``OTEL_METRIC_EXPORT_INTERVAL`` the metric period, 5 s here
    unless set)."""

    def __init__(self, endpoint: str, resource: Resource) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

        self.endpoint = endpoint.rstrip("/")
        self.stats = stats = ExportStats()
        lock = threading.Lock()

        class _Spans(OTLPSpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                result = super().export(spans)
                with lock:
                    stats.span_batches += 1
                    stats.spans += len(spans)
                    if result is not SpanExportResult.SUCCESS:
                        stats.span_batches_failed += 1
                        stats.spans_failed += len(spans)
                return result

        class _Metrics(OTLPMetricExporter):
            def export(
                self, metrics_data: Any, timeout_millis: float | None = 10_000, **kwargs: Any
            ) -> MetricExportResult:
                result = super().export(metrics_data, timeout_millis, **kwargs)
                with lock:
                    stats.metric_exports += 1
                    if result is not MetricExportResult.SUCCESS:
                        stats.metric_exports_failed += 1
                return result

        interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") else DEFAULT_EXPORT_INTERVAL_MS
        self.span_processor = BatchSpanProcessor(_Spans(endpoint=f"{self.endpoint}/v1/traces"))
        self.meter_provider = MeterProvider(
            metric_readers=[
                PeriodicExportingMetricReader(
                    _Metrics(endpoint=f"{self.endpoint}/v1/metrics"), export_interval_millis=interval
                )
            ],
            resource=resource,
        )


def check_otlp_endpoint(endpoint: str) -> None:
    """Reject an ``--otlp-endpoint`` that is not an http(s) base URL (UsageError naming it)."""
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"--otlp-endpoint {endpoint!r} is not an http(s) URL such as http://127.0.0.1:4318")
    # Unreachable is not an error (a Collector may come up later), but say so before the run.
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=2).close()
    except OSError as exc:
        log.warning(
            "nothing answers at --otlp-endpoint %s (%s); the replay runs, its telemetry export will fail",
            endpoint,
            exc.strerror or exc,
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
        chunk_timing=CHUNK_TIMING,
    )
    try:
        yield enabled
    finally:
        otelbench_instrumentation.uninstrument()
