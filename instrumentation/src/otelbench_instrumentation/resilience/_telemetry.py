"""Tracer and instruments for the resilience instrumentors and the decorators.

Every factory here falls back to a no-op object when the provider raises, so a broken
tracer or meter provider turns telemetry off instead of breaking the application.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, MeterProvider, Observation
from opentelemetry.trace import TracerProvider

from ..recorder import SCOPE_NAME
from ..version import __version__

log = logging.getLogger(__name__)

_NOOP_METER = metrics.NoOpMeter(SCOPE_NAME)


def get_tracer(tracer_provider: TracerProvider | None) -> trace.Tracer:
    """Our tracer from ``tracer_provider`` (None: the global one), or a no-op tracer."""
    try:
        return trace.get_tracer(SCOPE_NAME, __version__, tracer_provider)
    except Exception:
        log.debug("tracer unavailable; spans disabled", exc_info=True)
        return trace.NoOpTracer()


def get_meter(meter_provider: MeterProvider | None) -> Meter:
    """Our meter from ``meter_provider`` (None: the global one), or a no-op meter."""
    try:
        return metrics.get_meter(SCOPE_NAME, __version__, meter_provider)
    except Exception:
        log.debug("meter unavailable; metrics disabled", exc_info=True)
        return _NOOP_METER


def counter(meter: Meter, name: str, unit: str, description: str) -> Counter:
    """A counter, or a no-op one if the meter refuses."""
    try:
        return meter.create_counter(name, unit=unit, description=description)
    except Exception:
        log.debug("could not create counter %s", name, exc_info=True)
        return _NOOP_METER.create_counter(name)


def histogram(meter: Meter, name: str, unit: str, description: str, buckets: Sequence[float]) -> Histogram:
    """A histogram with advisory bucket boundaries, or a no-op one if the meter refuses."""
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
        )
    except Exception:
        log.debug("could not create histogram %s", name, exc_info=True)
        return _NOOP_METER.create_histogram(name)


def observable_gauge(
    meter: Meter,
    name: str,
    unit: str,
    description: str,
    callback: Callable[[CallbackOptions], Iterable[Observation]],
) -> None:
    """Register an observable gauge; nothing if the meter refuses."""
    try:
        meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)
    except Exception:
        log.debug("could not create gauge %s", name, exc_info=True)


def add(instrument: Counter, value: int, attributes: dict[str, Any]) -> None:
    """Counter.add that never raises."""
    try:
        instrument.add(value, attributes)
    except Exception:
        log.debug("could not record a counter value", exc_info=True)


def record(instrument: Histogram, value: float, attributes: dict[str, Any]) -> None:
    """Histogram.record that never raises."""
    try:
        instrument.record(value, attributes)
    except Exception:
        log.debug("could not record a histogram value", exc_info=True)


def error_type(exc: BaseException) -> str:
    """The conventions' error.type of an exception: its class name, never its message."""
    return type(exc).__qualname__
