"""pybreaker: transitions, calls, rejections and the state gauge match what the breaker did."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import openai
import pybreaker
import pytest

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import semconv

from .conftest import API_KEY, Otel, Transitions, ask, counter_total, gauge_values, spans_named

OPEN, HALF_OPEN, CLOSED = "open", "half-open", "closed"
FAILURES = (openai.InternalServerError, pybreaker.CircuitBreakerError)


def _breaker(model: str, reset_timeout: float = 60.0, **kwargs: Any) -> pybreaker.CircuitBreaker:
    return pybreaker.CircuitBreaker(
        fail_max=5, success_threshold=2, reset_timeout=reset_timeout, name=f"llm:{model}", **kwargs
    )


def _transition_events(otel: Otel, span_name: str) -> list[tuple[str, str, str]]:
    (span,) = spans_named(otel, span_name)
    return [
        (
            str((e.attributes or {})[semconv.BREAKER_NAME]),
            str((e.attributes or {})[semconv.BREAKER_FROM_STATE]),
            str((e.attributes or {})[semconv.BREAKER_TO_STATE]),
        )
        for e in span.events
        if e.name == semconv.EVENT_BREAKER_STATE_CHANGE
    ]


def test_five_failures_open_then_half_open_then_two_successes_close(
    otel: Otel, fast_mock: MockServer, client: openai.OpenAI
) -> None:
    truth = Transitions()
    breaker = _breaker("model-a", reset_timeout=0.2, listeners=[truth])
    fast_mock.script("model-a", [Fault.status(500)] * 5)
    tracer = otel.tracer_provider.get_tracer("test")
    observed: list[str] = []
    with tracer.start_as_current_span("app"):
        for _ in range(5):
            with pytest.raises(FAILURES) as info:
                breaker.call(ask, client, "model-a")
            observed.append(type(info.value).__name__)
        assert breaker.current_state == OPEN
        assert gauge_values(otel, semconv.METRIC_BREAKER_STATE)["llm:model-a"] == 2
        with pytest.raises(pybreaker.CircuitBreakerError):
            breaker.call(ask, client, "model-a")  # rejected: never reaches the server
        time.sleep(0.25)  # past reset_timeout
        breaker.call(ask, client, "model-a")
        assert breaker.current_state == HALF_OPEN
        assert gauge_values(otel, semconv.METRIC_BREAKER_STATE)["llm:model-a"] == 1
        breaker.call(ask, client, "model-a")
        assert breaker.current_state == CLOSED

    # What the app saw: four 500s, then the fifth failure trips the breaker.
    assert observed == ["InternalServerError"] * 4 + ["CircuitBreakerError"]
    assert [r.status for r in fast_mock.records if r.model == "model-a"] == [500] * 5 + [200, 200]

    expected = [
        ("llm:model-a", CLOSED, OPEN),
        ("llm:model-a", OPEN, HALF_OPEN),
        ("llm:model-a", HALF_OPEN, CLOSED),
    ]
    assert truth.seen == expected
    assert _transition_events(otel, "app") == expected
    for _, old, new in expected:
        count = counter_total(
            otel,
            semconv.METRIC_BREAKER_TRANSITIONS,
            **{semconv.BREAKER_FROM_STATE: old, semconv.BREAKER_TO_STATE: new},
        )
        assert count == 1, (old, new)
    assert counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS) == 3
    assert counter_total(otel, semconv.METRIC_BREAKER_REJECTED, **{semconv.BREAKER_NAME: "llm:model-a"}) == 1
    outcome = semconv.BREAKER_OUTCOME
    assert counter_total(otel, semconv.METRIC_BREAKER_CALLS, **{outcome: "failure"}) == truth.failures == 5
    assert counter_total(otel, semconv.METRIC_BREAKER_CALLS, **{outcome: "success"}) == truth.successes == 2
    assert gauge_values(otel, semconv.METRIC_BREAKER_STATE) == {"llm:model-a": 0}


def test_per_model_breakers_are_isolated(otel: Otel, fast_mock: MockServer, client: openai.OpenAI) -> None:
    breakers = {model: _breaker(model) for model in ("model-a", "model-b")}
    fast_mock.script("model-a", [Fault.status(500)] * 5)
    for _ in range(5):
        with pytest.raises(FAILURES):
            breakers["model-a"].call(ask, client, "model-a")
        breakers["model-b"].call(ask, client, "model-b")
    with pytest.raises(pybreaker.CircuitBreakerError):
        breakers["model-a"].call(ask, client, "model-a")
    for _ in range(3):
        breakers["model-b"].call(ask, client, "model-b")

    assert breakers["model-a"].current_state == OPEN
    assert breakers["model-b"].current_state == CLOSED
    a = {semconv.BREAKER_NAME: "llm:model-a"}
    b = {semconv.BREAKER_NAME: "llm:model-b"}
    assert counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS, **a) == 1
    assert counter_total(otel, semconv.METRIC_BREAKER_REJECTED, **a) == 1
    assert counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS, **b) == 0
    assert counter_total(otel, semconv.METRIC_BREAKER_REJECTED, **b) == 0
    assert counter_total(otel, semconv.METRIC_BREAKER_CALLS, **b, **{semconv.BREAKER_OUTCOME: "success"}) == 8
    assert counter_total(otel, semconv.METRIC_BREAKER_CALLS, **b, **{semconv.BREAKER_OUTCOME: "failure"}) == 0
    assert gauge_values(otel, semconv.METRIC_BREAKER_STATE) == {"llm:model-a": 2, "llm:model-b": 0}


class SharedStorage(pybreaker.CircuitBreakerStorage):
    """State in a dict that several breakers share, the way CircuitRedisStorage shares Redis keys
    between processes (redis itself is not a test dependency)."""

    def __init__(self, shared: dict[str, Any]) -> None:
        super().__init__("shared")
        self.shared = shared
        shared.setdefault("state", CLOSED)
        shared.setdefault("fail", 0)
        shared.setdefault("success", 0)
        shared.setdefault("opened_at", None)

    @property
    def state(self) -> str:
        return str(self.shared["state"])

    @state.setter
    def state(self, state: str) -> None:
        self.shared["state"] = state

    def increment_counter(self) -> None:
        self.shared["fail"] += 1

    def reset_counter(self) -> None:
        self.shared["fail"] = 0

    def increment_success_counter(self) -> None:
        self.shared["success"] += 1

    def reset_success_counter(self) -> None:
        self.shared["success"] = 0

    @property
    def counter(self) -> int:
        return int(self.shared["fail"])

    @property
    def success_counter(self) -> int:
        return int(self.shared["success"])

    @property
    def opened_at(self) -> datetime | None:
        value = self.shared["opened_at"]
        return value if isinstance(value, datetime) else None

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self.shared["opened_at"] = value


def test_shared_storage_backend(otel: Otel, fast_mock: MockServer, client: openai.OpenAI) -> None:
    shared: dict[str, Any] = {}
    truth = Transitions()
    # Two "processes" guarding the same model through one storage backend.
    first = _breaker("shared", state_storage=SharedStorage(shared), listeners=[truth])
    second = _breaker("shared", state_storage=SharedStorage(shared), listeners=[truth])
    fast_mock.script("model-s", [Fault.status(500)] * 5)
    for _ in range(5):
        with pytest.raises(FAILURES):
            first.call(ask, client, "model-s")
    # The gauge reads the storage: open, although `second` has not looked yet.
    assert gauge_values(otel, semconv.METRIC_BREAKER_STATE) == {"llm:shared": 2}
    with pytest.raises(pybreaker.CircuitBreakerError):
        second.call(ask, client, "model-s")  # notices the shared state, then rejects

    assert truth.seen == [("llm:shared", CLOSED, OPEN), ("llm:shared", CLOSED, OPEN)]
    open_count = counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS, **{semconv.BREAKER_TO_STATE: OPEN})
    assert open_count == len(truth.seen) == 2
    assert counter_total(otel, semconv.METRIC_BREAKER_REJECTED) == 1
    assert len([r for r in fast_mock.records if r.model == "model-s"]) == 5


def test_async_calls_through_calling_context(otel: Otel, fast_mock: MockServer) -> None:
    """pybreaker 1.4 has no asyncio call(): `with breaker.calling(): await ...` is the async form."""
    truth = Transitions()
    breaker = _breaker("model-async", listeners=[truth])
    fast_mock.script("model-async", [Fault.status(500)] * 5)

    async def run() -> list[str]:
        seen: list[str] = []
        async with openai.AsyncOpenAI(
            base_url=fast_mock.openai_base_url, api_key=API_KEY, max_retries=0
        ) as ac:
            for _ in range(7):
                try:
                    with breaker.calling():
                        await ac.chat.completions.create(
                            model="model-async", messages=[{"role": "user", "content": "hi"}]
                        )
                    seen.append("ok")
                except FAILURES as exc:
                    seen.append(type(exc).__name__)
        return seen

    seen = asyncio.run(run())
    assert seen == ["InternalServerError"] * 4 + ["CircuitBreakerError"] * 3
    assert truth.seen == [("llm:model-async", CLOSED, OPEN)]
    assert counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS) == 1
    assert counter_total(otel, semconv.METRIC_BREAKER_REJECTED) == 2
    assert counter_total(otel, semconv.METRIC_BREAKER_CALLS) == truth.failures == 5
    assert len([r for r in fast_mock.records if r.model == "model-async"]) == 5
