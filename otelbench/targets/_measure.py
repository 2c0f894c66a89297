"""Shared machinery of the micro-benchmark targets: telemetry sinks, interleaved rounds, figures.

Every micro target follows one method: the variants (a baseline and what is compared with it)
run in *rounds*; in each round every variant times one batch of operations, in an order that
rotates from round to round, so a slow phase of a shared machine hits all variants alike. A
round's figure is a batch's time per operation. Reported: the median over rounds (``*_us``,
``*_ops_per_s``) and the median of the per-round ratios to the baseline (``*_ratio``), with the
per-round values kept in ``details["samples"]`` for ``otelbench compare``'s significance test.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from . import BenchmarkError
from .overhead import CountingSpanExporter

#: Large enough that no span of a micro target is dropped: the exporter's count is checked.
SPAN_QUEUE = 1 << 17


class Sinks:
    """Real OTel SDK providers: spans counted and dropped, metrics aggregated in memory."""

    def __init__(self) -> None:
        self.exporter = CountingSpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(self.exporter, max_queue_size=SPAN_QUEUE, max_export_batch_size=4096)
        )
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self) -> int:
        """Spans exported so far (flushes first)."""
        self.tracer_provider.force_flush()
        return self.exporter.spans

    def total(self, name: str, **attributes: Any) -> float:
        """Sum of a counter's points (or count of a histogram's) whose attributes include ``attributes``."""
        data = self.reader.get_metrics_data()
        total = 0.0
        if data is None:
            return total
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        attrs = point.attributes or {}
                        if any(attrs.get(k) != v for k, v in attributes.items()):
                            continue
                        if isinstance(point, NumberDataPoint):
                            total += point.value
                        elif isinstance(point, HistogramDataPoint):
                            total += point.count
        return total

    def shutdown(self) -> None:
        """Flush and shut both providers down."""
        self.tracer_provider.force_flush()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@contextmanager
def sinks() -> Iterator[Sinks]:
    """A :class:`Sinks` shut down after the block."""
    s = Sinks()
    try:
        yield s
    finally:
        s.shutdown()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Objects alive now are left out of garbage collection for the block (cheap, equal collections)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def require_uninstrumented(*instrumentors: Any) -> None:
    """Raise BenchmarkError if one of ``instrumentors`` is on: the baseline would be instrumented too."""
    for instrumentor in instrumentors:
        if instrumentor.is_instrumented_by_opentelemetry:
            raise BenchmarkError(
                f"{type(instrumentor).__name__} is already active in this process; cannot measure a baseline"
            )


class Switch:
    """Turns one instrumentor on or off between batches (untimed); off again when the block ends."""

    def __init__(self, instrumentor: Any, **instrument_kwargs: Any) -> None:
        self.instrumentor = instrumentor
        self.kwargs = instrument_kwargs

    def set(self, on: bool) -> None:
        """Instrument (with the keyword arguments given) or uninstrument, if not so already."""
        active = self.instrumentor.is_instrumented_by_opentelemetry
        if on and not active:
            self.instrumentor.instrument(**self.kwargs)
        elif not on and active:
            self.instrumentor.uninstrument()

    def __enter__(self) -> Switch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.set(False)


#: A batch: run ``n`` operations, return the elapsed nanoseconds.
Batch = Callable[[int], int]


@dataclass
class Rounds:
    """Per-round µs per operation of each variant, from :func:`run_rounds`."""

    per_op_us: dict[str, list[float]] = field(default_factory=dict)
    rounds: int = 0
    seconds: float = 0.0

    def median(self, variant: str) -> float:
        """Median over rounds of ``variant``'s µs per operation."""
        values = self.per_op_us.get(variant) or []
        return statistics.median(values) if values else math.nan

    def ratios(self, variant: str, baseline: str) -> list[float]:
        """Per-round ``variant / baseline`` (paired by round)."""
        pairs = zip(self.per_op_us[variant], self.per_op_us[baseline], strict=True)
        return [v / b if b > 0 else math.nan for v, b in pairs]


def run_rounds(
    batches: Mapping[str, Batch],
    *,
    ops: int | Mapping[str, int],
    rounds: int,
    deadline: float,
    min_rounds: int = 3,
    between: Callable[[str], None] | None = None,
) -> Rounds:
    """Run every batch once per round, rotating their order, until ``rounds`` or ``deadline``.

    ``ops`` is the batch size (per variant if a mapping); ``between(variant)`` runs untimed before
    each batch (e.g. to switch instrumentation on or off). At least ``min_rounds`` always run.
    """
    names = list(batches)
    result = Rounds({name: [] for name in names})
    started = time.monotonic()
    last = 0.0
    for r in range(rounds):
        if r >= min_rounds and time.monotonic() + last > deadline:
            break
        round_start = time.monotonic()
        k = r % len(names)
        gc.collect()  # outside the timed batches; the heap is frozen, so this is cheap
        for name in names[k:] + names[:k]:
            n = ops if isinstance(ops, int) else ops[name]
            if between is not None:
                between(name)
            result.per_op_us[name].append(batches[name](n) / n / 1e3)
        result.rounds += 1
        last = time.monotonic() - round_start
    result.seconds = time.monotonic() - started
    return result


@dataclass
class Figures:
    """Metrics and the per-round samples they come from."""

    metrics: dict[str, float] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)

    def latency(self, name: str, per_op_us: Sequence[float]) -> None:
        """``{name}_us`` and ``{name}_ops_per_s`` from per-round µs per operation."""
        values = list(per_op_us)
        self.put(f"{name}_us", values)
        self.put(f"{name}_ops_per_s", [1e6 / v if v > 0 else math.nan for v in values])

    def put(self, name: str, per_round: Sequence[float]) -> None:
        """``name`` = median of ``per_round`` (finite values only; kept as its samples)."""
        values = [round(v, 6) for v in per_round if math.isfinite(v)]
        self.metrics[name] = statistics.median(values) if values else math.nan
        self.samples[name] = values

    def compare(self, name: str, rounds: Rounds, variant: str, baseline: str) -> None:
        """``{name}_overhead_us`` (median difference) and ``{name}_ratio`` (median per-round ratio)."""
        diffs = [v - b for v, b in zip(rounds.per_op_us[variant], rounds.per_op_us[baseline], strict=True)]
        self.put(f"{name}_overhead_us", diffs)
        self.put(f"{name}_ratio", rounds.ratios(variant, baseline))


def rounded(values: Mapping[str, Sequence[float]], digits: int = 3) -> dict[str, list[float]]:
    """Per-round values rounded for the JSON details."""
    return {k: [round(v, digits) for v in vs] for k, vs in values.items()}


__all__ = [
    "Batch",
    "Figures",
    "Rounds",
    "Sinks",
    "Switch",
    "frozen_heap",
    "require_uninstrumented",
    "rounded",
    "run_rounds",
    "sinks",
]
