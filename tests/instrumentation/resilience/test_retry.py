"""tenacity: attempt events, sleeps and outcomes, correlated with the provider spans they wrap."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import openai
import pytest
import tenacity
from opentelemetry import trace

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import semconv

from .conftest import (
    API_KEY,
    Otel,
    ask,
    attempt_events,
    children,
    counter_total,
    example_app,
    genai_spans,
    instrumented,
    spans_named,
    uninstrument_all,
)

SCHEDULE = [0.05, 0.1, 0.2, 0.4, 0.5]  # the example's backoff before jitter: 50 ms doubling, 500 ms cap


def test_backoff_schedule_and_attempts_over_provider_spans(
    otel: Otel, fast_mock: MockServer, client: openai.OpenAI
) -> None:
    # Real sleeps (about 1.25 s in all): the point is that tenacity really waited what it chose.
    wait = example_app().JitteredExponentialWait(rng=random.Random(3))
    fast_mock.script("model-r", [Fault.status(500)] * 5)
    retrying = tenacity.Retrying(
        wait=wait,
        stop=tenacity.stop_after_attempt(6),
        retry=tenacity.retry_if_exception_type(openai.InternalServerError),
    )
    text = retrying(ask, client, "model-r")
    assert text

    (retry_span,) = spans_named(otel, semconv.SPAN_RETRY + " ")
    assert retry_span.name == "retry ask"
    provider = genai_spans(otel)
    assert len(provider) == 6
    assert children(otel, retry_span) == provider  # every attempt's provider span nests under it

    events = attempt_events(retry_span)
    assert [e.number for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.outcome for e in events] == ["error"] * 5 + ["success"]
    assert [e.will_retry for e in events] == [True] * 5 + [False]
    sleeps = [e.sleep for e in events[:5]]
    for sleep, base in zip(sleeps, SCHEDULE, strict=True):
        assert sleep is not None and 0.75 * base <= sleep <= 1.25 * base, (sleep, base)
    assert events[5].sleep is None
    for k, event in enumerate(events):
        # Attempt k is judged after its provider span ended and before the next one started.
        assert (provider[k].end_time or 0) <= event.timestamp
        if k + 1 < len(provider):
            assert event.timestamp <= (provider[k + 1].start_time or 0)
            # The sleep really happened between the two requests (1 ms for clock granularity).
            gap = (provider[k + 1].start_time or 0) - (provider[k].end_time or 0)
            assert gap >= (sleeps[k] or 0) * 1e9 - 1e6
        assert event.error_type == (provider[k].attributes or {}).get(semconv.ERROR_TYPE)
    assert {(s.attributes or {}).get(semconv.ERROR_TYPE) for s in provider[:5]} == {"InternalServerError"}

    attrs = retry_span.attributes or {}
    assert attrs[semconv.RETRY_OUTCOME] == "success"
    assert attrs[semconv.RETRY_ATTEMPT_COUNT] == 6
    assert attrs[semconv.RETRY_SLEEP_TOTAL] == pytest.approx(sum(s or 0 for s in sleeps))
    # tenacity's own statistics are what the telemetry says.
    assert retrying.statistics["attempt_number"] == 6
    assert retrying.statistics["idle_for"] == pytest.approx(sum(s or 0 for s in sleeps))
    (point,) = otel.points(semconv.METRIC_RETRY_SLEEP)
    assert point.count == 5
    assert point.sum == pytest.approx(sum(s or 0 for s in sleeps))
    assert counter_total(otel, semconv.METRIC_RETRY_ATTEMPTS) == 6
    assert len(fast_mock.records) == 6


def test_async_retry_nests_provider_spans(otel: Otel, fast_mock: MockServer) -> None:
    fast_mock.script("model-ar", [Fault.status(500)] * 2)

    async def run() -> str:
        async with openai.AsyncOpenAI(
            base_url=fast_mock.openai_base_url, api_key=API_KEY, max_retries=0
        ) as ac:

            @tenacity.retry(wait=tenacity.wait_fixed(0.01), stop=tenacity.stop_after_attempt(4))
            async def ask_async() -> str:
                reply = await ac.chat.completions.create(
                    model="model-ar", messages=[{"role": "user", "content": "hi"}]
                )
                return reply.choices[0].message.content or ""

            return await ask_async()

    assert asyncio.run(run())
    (retry_span,) = spans_named(otel, "retry ")
    provider = genai_spans(otel)
    assert len(provider) == 3
    assert children(otel, retry_span) == provider
    events = attempt_events(retry_span)
    assert [(e.number, e.outcome, e.sleep) for e in events] == [
        (1, "error", 0.01),
        (2, "error", 0.01),
        (3, "success", None),
    ]


class Flaky:
    """A function failing (``exc=None``: returning None) a set number of times before it works."""

    def __init__(
        self, failures: int, exc: type[BaseException] | None = OSError, result: Any = "done"
    ) -> None:
        self.left = failures
        self.exc = exc
        self.result = result
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            if self.exc is None:
                return None
            raise self.exc(f"failure {self.calls}")
        return self.result


def _scenarios() -> list[tuple[str, Any]]:
    """(name, run) pairs; run() returns what the app can observe."""
    fixed = tenacity.wait_fixed(0.001)

    def plain(retrying: tenacity.Retrying, fn: Any) -> Any:
        observed = _observe(lambda: retrying(fn))
        stats = retrying.statistics
        return observed, stats["attempt_number"], stats["idle_for"]

    def iterator(failures: int) -> Any:
        flaky = Flaky(failures)
        for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(5), wait=fixed):
            with attempt:
                value = flaky()
        return value

    def try_again() -> Any:
        calls = {"n": 0}

        @tenacity.retry(stop=tenacity.stop_after_attempt(5), retry=tenacity.retry_never)
        def fn() -> str:
            calls["n"] += 1
            if calls["n"] < 3:
                raise tenacity.TryAgain
            return "after TryAgain"

        return fn(), fn.statistics["attempt_number"]

    def async_forms() -> Any:
        async def run() -> Any:
            flaky = Flaky(2)

            @tenacity.retry(stop=tenacity.stop_after_attempt(4), wait=fixed)
            async def fn() -> Any:
                return flaky()

            first = await fn()
            other = Flaky(1)
            async for attempt in tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(3), wait=fixed):
                with attempt:
                    second = other()
            return first, second, fn.statistics["attempt_number"]

        return asyncio.run(run())

    return [
        (
            "success after 2",
            lambda: plain(tenacity.Retrying(stop=tenacity.stop_after_attempt(5), wait=fixed), Flaky(2)),
        ),
        (
            "retry error",
            lambda: plain(tenacity.Retrying(stop=tenacity.stop_after_attempt(2), wait=fixed), Flaky(9)),
        ),
        (
            "reraise",
            lambda: plain(
                tenacity.Retrying(stop=tenacity.stop_after_attempt(2), wait=fixed, reraise=True),
                Flaky(9, ValueError),
            ),
        ),
        (
            "result or exception",
            lambda: plain(
                tenacity.Retrying(
                    stop=tenacity.stop_any(tenacity.stop_after_attempt(5), tenacity.stop_after_delay(5)),
                    retry=tenacity.retry_if_result(lambda r: r is None)
                    | tenacity.retry_if_exception_type(OSError),
                    wait=fixed,
                ),
                Flaky(2, None),
            ),
        ),
        (
            "error callback",
            lambda: plain(
                tenacity.Retrying(
                    stop=tenacity.stop_after_attempt(3),
                    retry=tenacity.retry_if_result(lambda r: r is None),
                    retry_error_callback=lambda state: ("fallback", state.attempt_number),
                ),
                Flaky(9, None),
            ),
        ),
        (
            "not retried",
            lambda: plain(
                tenacity.Retrying(
                    stop=tenacity.stop_after_attempt(5),
                    retry=tenacity.retry_if_exception_type(OSError)
                    & tenacity.retry_if_not_exception_type(KeyError),
                ),
                Flaky(1, KeyError),
            ),
        ),
        (
            "message",
            lambda: plain(
                tenacity.Retrying(
                    stop=tenacity.stop_after_attempt(4),
                    retry=tenacity.retry_if_exception_message(match="failure [12]"),
                    wait=fixed,
                ),
                Flaky(3),
            ),
        ),
        ("iterator", lambda: iterator(2)),
        ("try again", try_again),
        ("async", async_forms),
    ]


def _observe(run: Any) -> Any:
    try:
        return ("returned", run())
    except tenacity.RetryError as exc:
        # The message holds a Future's address; the last attempt's exception is the observable part.
        last = exc.last_attempt.exception()
        return ("RetryError", exc.last_attempt.attempt_number, type(last).__name__, str(last))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def test_app_observes_the_same_with_and_without_instrumentation() -> None:
    expected = [(name, _observe(run)) for name, run in _scenarios()]
    otel = instrumented()
    try:
        observed = [(name, _observe(run)) for name, run in _scenarios()]
    finally:
        uninstrument_all()
    assert observed == expected
    retry_spans = spans_named(otel, "retry ")
    outcomes = sorted(str((s.attributes or {})[semconv.RETRY_OUTCOME]) for s in retry_spans)
    # 10 scenarios, the async one runs two loops; "message" ends on a message it does not retry.
    assert outcomes == sorted(["success"] * 6 + ["gave_up"] * 3 + ["error"] * 2)


def test_outcomes_of_retry_strategies(otel: Otel) -> None:
    results = {name: _observe(run) for name, run in _scenarios()}
    assert results["error callback"] == ("returned", (("returned", ("fallback", 3)), 3, 0))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for span in spans_named(otel, "retry "):
        by_kind.setdefault(str((span.attributes or {})[semconv.RETRY_OUTCOME]), []).append(
            dict(span.attributes or {})
        )
    errors = {a.get(semconv.ERROR_TYPE) for a in by_kind["gave_up"]}
    # RetryError, the re-raised exception, and none for the callback's value.
    assert errors == {"RetryError", "ValueError", None}
    not_retried = {a[semconv.ERROR_TYPE]: a[semconv.RETRY_ATTEMPT_COUNT] for a in by_kind["error"]}
    assert not_retried == {"KeyError": 1, "OSError": 3}
    rejected = counter_total(
        otel, semconv.METRIC_RETRY_ATTEMPTS, **{semconv.RETRY_ATTEMPT_OUTCOME: "rejected_result"}
    )
    assert rejected == 2 + 3  # "result or exception" returned None twice; "error callback" three times


def test_abandoned_iterator_and_cancelled_sleep_end_their_spans(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("app") as app:
        for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(5)):
            with attempt:
                pass
            break  # leaves the loop before tenacity judged the attempt
        assert trace.get_current_span() is app

        async def cancelled() -> None:
            retrying = tenacity.AsyncRetrying(
                stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(5)
            )

            async def fail() -> None:
                raise OSError("down")

            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await retrying(fail)
            assert trace.get_current_span() is app

        asyncio.run(cancelled())
        assert trace.get_current_span() is app

    abandoned, cancelled_span = spans_named(otel, "retry ")
    assert (abandoned.attributes or {})[semconv.RETRY_OUTCOME] == "abandoned"
    attrs = cancelled_span.attributes or {}
    assert attrs[semconv.RETRY_OUTCOME] == "error"
    assert attrs[semconv.ERROR_TYPE] == "CancelledError"
    assert [e.sleep for e in attempt_events(cancelled_span)] == [5.0]


def test_nested_retries_nest_their_spans(otel: Otel) -> None:
    inner_flaky = Flaky(1)

    @tenacity.retry(stop=tenacity.stop_after_attempt(3))
    def inner() -> Any:
        return inner_flaky()

    outer_flaky = Flaky(1)

    @tenacity.retry(stop=tenacity.stop_after_attempt(3))
    def outer() -> Any:
        outer_flaky()
        return inner()

    assert outer() == "done"
    (outer_span,) = [s for s in spans_named(otel, "retry ") if s.name.endswith("outer")]
    (inner_span,) = [s for s in spans_named(otel, "retry ") if s.name.endswith("inner")]
    assert inner_span.parent is not None and outer_span.context is not None
    assert inner_span.parent.span_id == outer_span.context.span_id
    assert [e.outcome for e in attempt_events(outer_span)] == ["error", "success"]
    assert [e.outcome for e in attempt_events(inner_span)] == ["error", "success"]
