"""Chaos: under seeded random 500s, every count the telemetry exports equals ground truth.

Ground truth comes from outside the instrumentation: the mock's own request records, the test's
counters around the guarded function and the retried attempt, and a pybreaker listener of the
test's own.
"""

from __future__ import annotations

import time
from collections import Counter

import openai
import pybreaker
import pytest
import tenacity

from otelbench.mock import MockConfig, MockServer
from otelbench_instrumentation import semconv

from .conftest import API_KEY, FAST_PROFILE, Otel, Transitions, ask, counter_total, genai_spans

CALLS = 150
MODEL = "chaos-model"


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.7])
def test_telemetry_counts_equal_ground_truth(otel: Otel, rate: float) -> None:
    config = MockConfig(seed=int(rate * 100), default_profile=FAST_PROFILE, fault_rates={"500": rate})
    truth = Transitions()
    app: Counter[str] = Counter()
    with (
        MockServer(config) as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0) as client,
    ):
        # fail_max=3 and a short reset timeout: the breaker cycles through its states even at 30 %.
        breaker = pybreaker.CircuitBreaker(
            fail_max=3, success_threshold=2, reset_timeout=0.005, name="llm:chaos", listeners=[truth]
        )
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_none(),
            retry=tenacity.retry_if_exception_type(openai.InternalServerError),
            reraise=True,
        )

        def guarded() -> str:
            app["executed"] += 1
            return ask(client, MODEL)

        def attempt() -> str:
            app["attempts"] += 1
            executed_before = app["executed"]
            try:
                result = breaker.call(guarded)
            except pybreaker.CircuitBreakerError:
                app["rejected" if app["executed"] == executed_before else "tripped"] += 1
                raise
            except openai.InternalServerError:
                app["failed"] += 1
                raise
            app["succeeded"] += 1
            return result

        for _ in range(CALLS):
            try:
                retrying(attempt)
                app["ok"] += 1
            except openai.InternalServerError:
                app["gave_up"] += 1
            except pybreaker.CircuitBreakerError:
                app["breaker_error"] += 1
            time.sleep(0.001)  # lets reset timeouts elapse now and then
        records = [r for r in server.records if r.model == MODEL]

    # The three sources of truth agree with each other.
    assert app["executed"] == len(records)
    server_failures = sum(1 for r in records if r.status == 500)
    assert server_failures == app["failed"] + app["tripped"] == truth.failures
    assert sum(1 for r in records if r.status == 200) == app["succeeded"] == truth.successes
    assert app["failed"] > 0

    # Attempts (tenacity) and outcomes.
    assert counter_total(otel, semconv.METRIC_RETRY_ATTEMPTS) == app["attempts"]
    outcome = semconv.RETRY_ATTEMPT_OUTCOME
    assert counter_total(otel, semconv.METRIC_RETRY_ATTEMPTS, **{outcome: "success"}) == app["succeeded"]
    assert counter_total(otel, semconv.METRIC_RETRY_ATTEMPTS, **{outcome: "error"}) == (
        app["attempts"] - app["succeeded"]
    )
    error = semconv.ERROR_TYPE
    assert (
        counter_total(otel, semconv.METRIC_RETRY_ATTEMPTS, **{error: "InternalServerError"}) == app["failed"]
    )
    assert counter_total(otel, semconv.METRIC_RETRY_ATTEMPTS, **{error: "CircuitBreakerError"}) == (
        app["rejected"] + app["tripped"]
    )
    final = semconv.RETRY_OUTCOME
    assert counter_total(otel, semconv.METRIC_RETRY_OPERATIONS, **{final: "success"}) == app["ok"]
    assert counter_total(otel, semconv.METRIC_RETRY_OPERATIONS, **{final: "gave_up"}) == app["gave_up"]
    assert counter_total(otel, semconv.METRIC_RETRY_OPERATIONS, **{final: "error"}) == app["breaker_error"]

    # Failures, rejections and transitions (pybreaker).
    breaker_outcome = semconv.BREAKER_OUTCOME
    assert (
        counter_total(otel, semconv.METRIC_BREAKER_CALLS, **{breaker_outcome: "failure"}) == server_failures
    )
    assert (
        counter_total(otel, semconv.METRIC_BREAKER_CALLS, **{breaker_outcome: "success"}) == app["succeeded"]
    )
    assert counter_total(otel, semconv.METRIC_BREAKER_REJECTED) == app["rejected"]
    for (name, old, new), count in Counter(truth.seen).items():
        attrs = {semconv.BREAKER_NAME: name, semconv.BREAKER_FROM_STATE: old, semconv.BREAKER_TO_STATE: new}
        assert counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS, **attrs) == count
    assert counter_total(otel, semconv.METRIC_BREAKER_TRANSITIONS) == len(truth.seen)
    if rate >= 0.3:
        assert truth.seen and app["rejected"], "no breaker activity: the test would pass vacuously"

    # The transition events, across all retry spans, in the order the breaker made them.
    events = sorted(
        (e for s in otel.spans() for e in s.events if e.name == semconv.EVENT_BREAKER_STATE_CHANGE),
        key=lambda e: e.timestamp,
    )
    recorded = [
        (
            (e.attributes or {})[semconv.BREAKER_NAME],
            (e.attributes or {})[semconv.BREAKER_FROM_STATE],
            (e.attributes or {})[semconv.BREAKER_TO_STATE],
        )
        for e in events
    ]
    assert recorded == truth.seen

    # One provider span per request the server saw, failed exactly where the server failed it.
    provider = genai_spans(otel)
    assert len(provider) == len(records)
    assert sum(1 for s in provider if (s.attributes or {}).get(error)) == server_failures
