"""Statistics read back from exported OpenTelemetry metrics (never from the harness's own timers).

The benchmark records through the same instrumentation users run in production; this module
turns what a ``MetricReader`` collected into per-target statistics. Quantiles come from
exponential-histogram data points, whose relative error is bounded by the bucket width
(``2 ** (2 ** -scale) - 1``, about 0.5 % at the default 160 buckets for latencies within one
order of magnitude).

Per-request statistics over raw values (bootstrap CIs, the significance test) live in
:mod:`otelbench.summary.stats`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint, Metric, MetricsData

from otelbench_instrumentation import semconv

QUANTILES = (0.5, 0.95, 0.99)
#: Recorded by the replay harness for each successful stream: (duration - TTFT) / (output
#: tokens - 1) from the client's timings, with the GenAI span's metric attributes (the
#: instrumentation itself has no per-token metric).
METRIC_TIME_PER_OUTPUT_TOKEN = "otelbench.replay.time_per_output_token"


@dataclass(frozen=True)
class Distribution:
    """Count, mean, extremes and quantiles of one latency metric (seconds)."""

    count: int
    mean: float
    min: float
    max: float
    quantiles: dict[float, float]
    #: Standard deviation estimated from the bucket midpoints (buckets are ~0.5 % wide).
    std: float = math.nan

    def q(self, quantile: float) -> float:
        """The value at ``quantile`` (one of QUANTILES)."""
        return self.quantiles[quantile]

    @property
    def cv(self) -> float:
        """Coefficient of variation, std / mean."""
        return self.std / self.mean if self.mean else math.nan


@dataclass
class TargetStats:
    """Everything the summary knows about one provider/model pair."""

    provider: str
    model: str
    server_address: str | None = None
    server_port: int | None = None
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    duration: Distribution | None = None
    ttft: Distribution | None = None
    #: Time to the first answer chunk (after a thinking model's reasoning; else equal to TTFT).
    ttfa: Distribution | None = None
    time_per_chunk: Distribution | None = None
    time_per_token: Distribution | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def key(self) -> str:
        """``provider:model`` as shown to users."""
        return f"{self.provider}:{self.model}"


def quantile(point: ExponentialHistogramDataPoint, q: float) -> float:
    """Estimate quantile ``q`` of a positive exponential histogram, clamped to [min, max]."""
    if point.count == 0:
        return math.nan
    rank = q * point.count
    seen = point.zero_count
    if rank <= seen:
        return 0.0
    base = 2.0 ** (2.0**-point.scale)
    offset = point.positive.offset
    for i, n in enumerate(point.positive.bucket_counts):
        if n and seen + n >= rank:
            lower = base ** (offset + i)
            upper = base ** (offset + i + 1)
            # Interpolate within the bucket on a log scale, the bucket's natural metric.
            frac = (rank - seen) / n
            value = lower * (upper / lower) ** frac
            return float(min(max(value, point.min), point.max))
        seen += n
    return point.max


def _merge(points: Sequence[ExponentialHistogramDataPoint]) -> Distribution | None:
    points = [p for p in points if p.count]
    if not points:
        return None
    if len(points) > 1:
        # Different attribute sets (e.g. error.type) of one target: re-bucket to a common scale.
        points = [_combine(points)]
    (point,) = points
    mean = point.sum / point.count
    return Distribution(
        count=point.count,
        mean=mean,
        min=point.min,
        max=point.max,
        quantiles={q: quantile(point, q) for q in QUANTILES},
        std=_std(point, mean),
    )


def _std(point: ExponentialHistogramDataPoint, mean: float) -> float:
    if point.count < 2:
        return 0.0
    base = 2.0 ** (2.0**-point.scale)
    offset = point.positive.offset
    squares = point.zero_count * mean * mean
    for i, n in enumerate(point.positive.bucket_counts):
        if n:
            # Geometric midpoint, clamped: the extreme buckets hold min and max exactly.
            mid = min(max(base ** (offset + i + 0.5), point.min), point.max)
            squares += n * (mid - mean) ** 2
    return math.sqrt(squares / (point.count - 1))


def _combine(points: Sequence[ExponentialHistogramDataPoint]) -> ExponentialHistogramDataPoint:
    scale = min(p.scale for p in points)
    counts: dict[int, int] = defaultdict(int)
    for p in points:
        shift = p.scale - scale
        for i, n in enumerate(p.positive.bucket_counts):
            counts[(p.positive.offset + i) >> shift] += n
    offset = min(counts) if counts else 0
    size = (max(counts) - offset + 1) if counts else 0
    from opentelemetry.sdk.metrics._internal.point import Buckets

    first = points[0]
    return ExponentialHistogramDataPoint(
        attributes=first.attributes,
        start_time_unix_nano=first.start_time_unix_nano,
        time_unix_nano=first.time_unix_nano,
        count=sum(p.count for p in points),
        sum=sum(p.sum for p in points),
        scale=scale,
        zero_count=sum(p.zero_count for p in points),
        positive=Buckets(offset=offset, bucket_counts=[counts.get(offset + i, 0) for i in range(size)]),
        negative=Buckets(offset=0, bucket_counts=[]),
        flags=0,
        min=min(p.min for p in points),
        max=max(p.max for p in points),
    )


Key = tuple[str, str, str | None, int | None]


def summarize(data: MetricsData | None) -> list[TargetStats]:
    """Per provider/model/endpoint statistics from one collection of the GenAI metrics."""
    latency: dict[Key, dict[str, list[ExponentialHistogramDataPoint]]] = defaultdict(
        lambda: defaultdict(list)
    )
    stats: dict[Key, TargetStats] = {}

    def target(attrs: object) -> tuple[Key, TargetStats]:
        a = dict(attrs or {})  # type: ignore[call-overload]
        address = a.get(semconv.SERVER_ADDRESS)
        port = a.get(semconv.SERVER_PORT)
        key: Key = (
            str(a.get(semconv.GEN_AI_PROVIDER_NAME, "?")),
            str(a.get(semconv.GEN_AI_REQUEST_MODEL, "?")),
            str(address) if address is not None else None,
            int(port) if isinstance(port, int) else None,
        )
        if key not in stats:
            stats[key] = TargetStats(*key)
        return key, stats[key]

    for metric in _metrics(data):
        for point in metric.data.data_points:
            if not isinstance(point, ExponentialHistogramDataPoint):
                continue  # the replay configures exponential aggregation for every histogram
            key, t = target(point.attributes)
            if metric.name == semconv.METRIC_OPERATION_DURATION:
                latency[key]["duration"].append(point)
                t.requests += point.count
                error = (point.attributes or {}).get(semconv.ERROR_TYPE)
                if error:
                    t.errors[str(error)] = t.errors.get(str(error), 0) + point.count
            elif metric.name == semconv.METRIC_TIME_TO_FIRST_CHUNK:
                latency[key]["ttft"].append(point)
            elif metric.name == semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK:
                latency[key]["ttfa"].append(point)
            elif metric.name == semconv.METRIC_TIME_PER_OUTPUT_CHUNK:
                latency[key]["chunk"].append(point)
            elif metric.name == METRIC_TIME_PER_OUTPUT_TOKEN:
                latency[key]["token"].append(point)
            elif metric.name == semconv.METRIC_TOKEN_USAGE:
                kind = (point.attributes or {}).get(semconv.GEN_AI_TOKEN_TYPE)
                if kind == semconv.TOKEN_TYPE_INPUT:
                    t.input_tokens += int(point.sum)
                elif kind == semconv.TOKEN_TYPE_OUTPUT:
                    t.output_tokens += int(point.sum)
    for key, t in stats.items():
        t.duration = _merge(latency[key]["duration"])
        t.ttft = _merge(latency[key]["ttft"])
        t.ttfa = _merge(latency[key]["ttfa"])
        t.time_per_chunk = _merge(latency[key]["chunk"])
        t.time_per_token = _merge(latency[key]["token"])
    return sorted(stats.values(), key=lambda s: (s.key, s.server_address or "", s.server_port or 0))


def _metrics(data: MetricsData | None) -> Iterable[Metric]:
    if data is None:
        return
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics
