"""Resilience instrumentation on real OTel SDK providers, real tenacity/pybreaker, the real mock."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pybreaker
import pytest
from opentelemetry.sdk.metrics.export import NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile
from otelbench_instrumentation import OpenAIInstrumentor, PyBreakerInstrumentor, TenacityInstrumentor, semconv

from ..conftest import API_KEY, Otel, make_providers

__all__ = [
    "API_KEY",
    "FAST_PROFILE",
    "AttemptEvent",
    "Otel",
    "Transitions",
    "ask",
    "attempt_events",
    "children",
    "counter_total",
    "example_app",
    "gauge_values",
    "genai_spans",
    "instrumented",
    "spans_named",
    "uninstrument_all",
]

ROOT = Path(__file__).resolve().parents[3]
# No waiting in the mock: these tests count events, they do not time the server.
FAST_PROFILE = ModelProfile(ttft=Dist.fixed(0.0), itl=Dist.fixed(0.0), output_tokens=Dist.fixed(2))


def uninstrument_all() -> None:
    """Turn off the three instrumentations these tests use."""
    for cls in (TenacityInstrumentor, PyBreakerInstrumentor, OpenAIInstrumentor):
        instrumentor = cls()
        # Another test may have left one on (e.g. through otelbench_instrumentation.instrument()).
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def instrumented() -> Otel:
    """tenacity, pybreaker and OpenAI instrumentation exporting into one in-memory pair."""
    uninstrument_all()
    exporter, tp, reader, mp = make_providers()
    TenacityInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    # Breakers of earlier tests live on in reference cycles: skip the scan that would adopt them
    # (test_safety covers it).
    PyBreakerInstrumentor().instrument(tracer_provider=tp, meter_provider=mp, attach_existing=False)
    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    return Otel(exporter, reader, tp, mp)


@pytest.fixture
def otel() -> Iterator[Otel]:
    """All three instrumentations on; undone after the test."""
    data = instrumented()
    try:
        yield data
    finally:
        uninstrument_all()
        data.meter_provider.shutdown()
        data.tracer_provider.shutdown()


@pytest.fixture
def fast_mock() -> Iterator[MockServer]:
    """A mock of its own (clean records and scripts) that answers at once."""
    with MockServer(MockConfig(seed=11, default_profile=FAST_PROFILE)) as server:
        yield server


@pytest.fixture
def client(fast_mock: MockServer) -> Iterator[openai.OpenAI]:
    """A real OpenAI client of the fast mock, without SDK retries (the app retries itself)."""
    with openai.OpenAI(base_url=fast_mock.openai_base_url, api_key=API_KEY, max_retries=0) as c:
        yield c


def ask(client: openai.OpenAI, model: str, prompt: str = "hello") -> str:
    """One chat completion; its text."""
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content or ""


class Transitions(pybreaker.CircuitBreakerListener):
    """The test's own record of what a breaker did (independent of the instrumentation)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.successes = 0
        self.failures = 0

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.seen.append((cb.name, old_state.name if old_state else "", new_state.name))

    def success(self, cb: Any) -> None:
        self.successes += 1

    def failure(self, cb: Any, exc: BaseException) -> None:
        self.failures += 1


def counter_total(otel: Otel, name: str, **match: Any) -> int:
    """Sum of a counter's points whose attributes include ``match`` (0 if never recorded)."""
    metric = otel.metrics().get(name)
    if metric is None:
        return 0
    total = 0
    for point in metric.data.data_points:
        assert isinstance(point, NumberDataPoint)
        attrs = dict(point.attributes or {})
        if all(attrs.get(key) == value for key, value in match.items()):
            total += int(point.value)
    return total


def gauge_values(otel: Otel, name: str) -> dict[str, float]:
    """An observable gauge's values by breaker name, from one collection."""
    metric = otel.metrics().get(name)
    if metric is None:
        return {}
    points = [p for p in metric.data.data_points if isinstance(p, NumberDataPoint)]
    return {str((p.attributes or {})[semconv.BREAKER_NAME]): p.value for p in points}


def spans_named(otel: Otel, prefix: str) -> list[ReadableSpan]:
    """Finished spans whose name starts with ``prefix``, oldest first."""
    return [s for s in otel.spans() if s.name.startswith(prefix)]


def genai_spans(otel: Otel) -> list[ReadableSpan]:
    """Finished GenAI (provider) spans, in start order."""
    found = [s for s in otel.spans() if (s.attributes or {}).get(semconv.GEN_AI_OPERATION_NAME)]
    return sorted(found, key=lambda s: s.start_time or 0)


def children(otel: Otel, parent: ReadableSpan) -> list[ReadableSpan]:
    """Direct children of ``parent``, in start order."""
    pid = parent.context.span_id if parent.context else None
    found = [s for s in otel.spans() if s.parent is not None and s.parent.span_id == pid]
    return sorted(found, key=lambda s: s.start_time or 0)


@dataclass
class AttemptEvent:
    """One otelbench.retry.attempt event, flattened."""

    number: int
    outcome: str
    will_retry: bool
    sleep: float | None
    error_type: str | None
    timestamp: int


def attempt_events(span: ReadableSpan) -> list[AttemptEvent]:
    """The retry attempt events of a retry span, in order."""
    found = []
    for event in span.events:
        if event.name != semconv.EVENT_RETRY_ATTEMPT:
            continue
        a = event.attributes or {}
        sleep = a.get(semconv.RETRY_ATTEMPT_SLEEP)
        error = a.get(semconv.ERROR_TYPE)
        found.append(
            AttemptEvent(
                number=int(a[semconv.RETRY_ATTEMPT_NUMBER]),  # type: ignore[arg-type]
                outcome=str(a[semconv.RETRY_ATTEMPT_OUTCOME]),
                will_retry=bool(a[semconv.RETRY_ATTEMPT_WILL_RETRY]),
                sleep=float(sleep) if isinstance(sleep, float) else None,
                error_type=str(error) if error is not None else None,
                timestamp=event.timestamp,
            )
        )
    return found


def example_app() -> ModuleType:
    """examples/resilient_app.py as a module (its main() is not run)."""
    name = "resilient_app_under_test"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "resilient_app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module
