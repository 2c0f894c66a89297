"""The resilience instrumentation never breaks the app, undoes itself and never doubles up."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import openai
import pybreaker
import pytest
import tenacity
from opentelemetry.metrics import Meter, MeterProvider, NoOpMeter
from opentelemetry.trace import NonRecordingSpan, NoOpTracer, Tracer, TracerProvider

import otelbench_instrumentation
from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import (
    PyBreakerInstrumentor,
    TenacityInstrumentor,
    Usage,
    cached,
    llm_call,
    routed,
    semconv,
)
from otelbench_instrumentation.resilience._breaker import OtelBreakerListener

from ..conftest import make_providers
from .conftest import API_KEY, Otel, ask, counter_total, spans_named, uninstrument_all

SECRET = "my secret prompt about the merger"


class Boom(RuntimeError):
    pass


class BrokenSpan(NonRecordingSpan):
    """A span every method of which raises."""

    def __init__(self) -> None:
        super().__init__(NonRecordingSpan(None).get_span_context())  # type: ignore[arg-type]

    def add_event(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("add_event")

    def set_attribute(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("set_attribute")

    def set_attributes(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("set_attributes")

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("set_status")

    def end(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("end")


class TracerOfBrokenSpans(NoOpTracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        return BrokenSpan()


class TracerThatRaises(NoOpTracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise Boom("start_span")


class Tracers(TracerProvider):
    def __init__(self, tracer: Tracer | None) -> None:
        self.tracer = tracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        if self.tracer is None:
            raise Boom("get_tracer")
        return self.tracer


class RaisingInstrument:
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("add")

    def record(self, *args: Any, **kwargs: Any) -> None:
        raise Boom("record")


class MeterOfRaisingInstruments(NoOpMeter):
    def create_counter(self, *args: Any, **kwargs: Any) -> Any:
        return RaisingInstrument()

    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        return RaisingInstrument()

    def create_observable_gauge(self, *args: Any, **kwargs: Any) -> Any:
        raise Boom("create_observable_gauge")


class Meters(MeterProvider):
    def __init__(self, meter: Meter | None) -> None:
        self.meter = meter

    def get_meter(self, *args: Any, **kwargs: Any) -> Meter:
        if self.meter is None:
            raise Boom("get_meter")
        return self.meter


def _workload(server: MockServer, tracer_provider: Any, meter_provider: Any) -> list[Any]:
    """Retries, a breaker tripping, and the three decorators in every shape; what the app saw."""
    seen: list[Any] = []
    providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}
    server.script("safe-retry", [Fault.status(500)] * 2)
    server.script("safe-trip", [Fault.status(500)] * 3)
    with openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0) as client:
        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(0.001))
        seen.append(bool(retrying(ask, client, "safe-retry", SECRET)))
        seen.append(dict(retrying.statistics, start_time=0, delay_since_first_attempt=0))
        breaker = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=60, name="safe")
        for _ in range(4):
            try:
                breaker.call(ask, client, "safe-trip", SECRET)
            except (openai.InternalServerError, pybreaker.CircuitBreakerError) as exc:
                seen.append(type(exc).__name__)
        seen.append(breaker.current_state)

        @llm_call("custom", usage=lambda r: Usage(output_tokens=len(r)), **providers)
        def custom(prompt: str, model: str = "m") -> str:
            return prompt[::-1]

        store: dict[Any, Any] = {}

        @cached(store, name="safe", **providers)
        @routed(["down", "up"], name="safe", **providers)
        def routed_answer(prompt: str, *, route: str) -> str:
            if route == "down":
                raise ConnectionError(SECRET)
            return custom(prompt)

        seen += [routed_answer(SECRET), routed_answer(SECRET), len(store)]

        @llm_call("custom", **providers)
        @routed(["only"], name="gen", **providers)
        def words(prompt: str, *, route: str) -> Iterator[str]:
            yield from prompt.split()

        seen.append(list(words(SECRET)))

        @cached({}, name="async", **providers)
        @llm_call("custom", model="m", **providers)
        async def shout(prompt: str) -> str:
            return prompt.upper()

        async def run_async() -> list[str]:
            return [await shout("a"), await shout("a")]

        seen.append(asyncio.run(run_async()))
    return seen


@pytest.mark.parametrize(
    ("tracer_provider", "meter_provider"),
    [
        (Tracers(None), Meters(None)),
        (Tracers(TracerThatRaises()), Meters(MeterOfRaisingInstruments("x"))),
        (Tracers(TracerOfBrokenSpans()), Meters(MeterOfRaisingInstruments("x"))),
    ],
    ids=["get-raises", "start-raises", "every-call-raises"],
)
def test_raising_telemetry_never_reaches_the_app(
    fast_mock: MockServer, tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> None:
    uninstrument_all()
    expected = _workload(fast_mock, None, None)
    TenacityInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    PyBreakerInstrumentor().instrument(meter_provider=meter_provider, attach_existing=False)
    try:
        observed = _workload(fast_mock, tracer_provider, meter_provider)
    finally:
        uninstrument_all()
    assert observed == expected


def test_nothing_secret_is_exported(otel: Otel, fast_mock: MockServer) -> None:
    _workload(fast_mock, otel.tracer_provider, otel.meter_provider)
    assert spans_named(otel, "retry ") and spans_named(otel, "router ") and spans_named(otel, "cache ")
    exported = "".join(s.to_json() for s in otel.spans())
    data = otel.reader.get_metrics_data()
    exported += data.to_json() if data is not None else ""
    assert SECRET not in exported
    assert API_KEY not in exported


def test_uninstrument_restores_and_detaches(fast_mock: MockServer) -> None:
    uninstrument_all()
    from tenacity.asyncio import AsyncRetrying

    targets = [
        (tenacity.BaseRetrying, "iter"),
        (tenacity.BaseRetrying, "__iter__"),
        (tenacity.Retrying, "__call__"),
        (AsyncRetrying, "iter"),
        (AsyncRetrying, "__call__"),
        (AsyncRetrying, "__anext__"),
        (pybreaker.CircuitBreaker, "__init__"),
        (pybreaker.CircuitBreaker, "call"),
    ]
    originals = [owner.__dict__[name] for owner, name in targets]
    exporter, tp, _, mp = make_providers()
    enabled = otelbench_instrumentation.instrument(
        tracer_provider=tp, meter_provider=mp, include=["tenacity", "pybreaker"]
    )
    assert sorted(enabled) == ["pybreaker", "tenacity"]
    assert all(
        owner.__dict__[name] is not original
        for (owner, name), original in zip(targets, originals, strict=True)
    )
    breaker = pybreaker.CircuitBreaker(name="detach-me")
    assert any(isinstance(listener, OtelBreakerListener) for listener in breaker.listeners)
    otelbench_instrumentation.uninstrument()

    assert [owner.__dict__[name] for owner, name in targets] == originals
    assert breaker.listeners == ()
    tenacity.Retrying(stop=tenacity.stop_after_attempt(2))(lambda: 1)
    pybreaker.CircuitBreaker(name="after").call(lambda: 1)
    assert exporter.get_finished_spans() == ()


def test_existing_breakers_are_adopted_and_instrumenting_twice_does_not_double() -> None:
    uninstrument_all()
    gc.collect()  # breakers of earlier tests are garbage by now: do not adopt them
    early = pybreaker.CircuitBreaker(fail_max=1, name="early")
    exporter, tp, reader, mp = make_providers()
    otel = Otel(exporter, reader, tp, mp)
    try:
        otelbench_instrumentation.instrument(
            tracer_provider=tp, meter_provider=mp, include=["tenacity", "pybreaker"]
        )
        otelbench_instrumentation.instrument(
            tracer_provider=tp, meter_provider=mp, include=["tenacity", "pybreaker"]
        )
        TenacityInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
        PyBreakerInstrumentor().instrument(meter_provider=mp)
        late = pybreaker.CircuitBreaker(fail_max=1, name="late")
        for cb in (early, late):
            assert sum(isinstance(listener, OtelBreakerListener) for listener in cb.listeners) == 1
            with pytest.raises(pybreaker.CircuitBreakerError):
                cb.call(_fail)
        tenacity.Retrying(stop=tenacity.stop_after_attempt(2), retry=tenacity.retry_if_result(bool))(
            lambda: 0
        )
    finally:
        otelbench_instrumentation.uninstrument()
    assert counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS) == 2
    assert counter_total(otel, semconv.METRIC_BREAKER_CALLS) == 2
    (span,) = spans_named(otel, "retry ")
    assert len(span.events) == 1
    assert counter_total(otel, semconv.METRIC_RETRY_ATTEMPTS) == 1


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    uninstrument_all()
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "tenacity, pybreaker")
    try:
        enabled = otelbench_instrumentation.instrument(include=["tenacity", "pybreaker", "openai"])
        assert enabled == ["openai"]
        assert not TenacityInstrumentor().is_instrumented_by_opentelemetry
        assert not PyBreakerInstrumentor().is_instrumented_by_opentelemetry
    finally:
        otelbench_instrumentation.uninstrument()


def _fail() -> None:
    raise OSError("down")
