"""routed: the trace shows the routes tried in order, the final one, and the provider span under it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pybreaker
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import Route, routed, semconv

from .conftest import Otel, Transitions, children, counter_total, example_app, spans_named


def _providers(otel: Otel) -> dict[str, Any]:
    return {"tracer_provider": otel.tracer_provider, "meter_provider": otel.meter_provider}


def _descendants(otel: Otel, span: ReadableSpan) -> list[ReadableSpan]:
    found = []
    for child in children(otel, span):
        found += [child, *_descendants(otel, child)]
    return found


def test_open_primary_breaker_falls_back_and_the_trace_shows_it(
    otel: Otel, fast_mock: MockServer, client: openai.OpenAI
) -> None:
    app = example_app()
    service = app.ChatService(client, **_providers(otel))
    primary, fallback = app.PRIMARY, app.FALLBACK
    truth = Transitions()
    service.breakers[primary.model].add_listener(truth)
    fast_mock.script(primary.model, [Fault.status(500)] * 5)

    # Request 1: four failed attempts (real backoff), then the fallback answers. Request 2: the
    # fifth failure trips the primary breaker. Request 3: the open breaker rejects the primary.
    answers = [service.answer(f"question {i}") for i in range(3)]
    assert all(answers)
    assert truth.seen == [(f"llm:{primary.model}", "closed", "open")]
    assert service.breakers[primary.model].current_state == "open"

    routers = spans_named(otel, "router chat")
    assert len(routers) == 3
    last = routers[-1]
    a = last.attributes or {}
    assert a[semconv.ROUTER_STRATEGY] == "priority"
    assert a[semconv.ROUTER_CHOSEN_ROUTE] == "primary"
    assert tuple(a[semconv.ROUTER_ROUTES_TRIED]) == ("primary", "fallback")  # type: ignore[arg-type]
    assert a[semconv.ROUTER_FINAL_ROUTE] == "fallback"
    assert a[semconv.ROUTER_FALLBACK_COUNT] == 1
    assert a[semconv.ROUTER_OUTCOME] == "success"
    # The router span is under the cache span of that request (a miss).
    assert last.parent is not None
    assert [s.name for s in spans_named(otel, "cache prompt")][-1] == "cache prompt"

    route_primary, route_fallback = children(otel, last)
    assert route_primary.name == "route primary"
    pa = route_primary.attributes or {}
    assert pa[semconv.ROUTER_ROUTE_OUTCOME] == "fallback"
    assert pa[semconv.ROUTER_ROUTE_MODEL] == primary.model
    assert pa[semconv.ERROR_TYPE] == "CircuitBreakerError"
    # Rejected by the breaker: no provider span under the primary route, and the rejection event.
    under_primary = _descendants(otel, route_primary)
    assert [s.name for s in under_primary] == ["retry ChatService._ask_with_retries"]
    assert [e.name for e in under_primary[0].events if e.name.startswith("otelbench.circuit_breaker")] == [
        semconv.EVENT_BREAKER_REJECTED
    ]
    assert route_fallback.name == "route fallback"
    assert (route_fallback.attributes or {})[semconv.ROUTER_ROUTE_OUTCOME] == "success"
    assert [s.name for s in _descendants(otel, route_fallback)] == [
        "retry ChatService._ask_with_retries",
        f"chat {fallback.model}",
    ]

    # Request 2's primary route shows the trip: a provider span that failed, then the breaker error.
    second_primary = children(otel, routers[1])[0]
    names = [s.name for s in _descendants(otel, second_primary)]
    assert names == ["retry ChatService._ask_with_retries", f"chat {primary.model}"]

    requests = counter_total(otel, semconv.METRIC_ROUTER_REQUESTS, **{semconv.ROUTER_FINAL_ROUTE: "fallback"})
    assert requests == 3
    fallbacks = counter_total(
        otel,
        semconv.METRIC_ROUTER_ROUTE_ATTEMPTS,
        **{semconv.ROUTER_ROUTE: "primary", semconv.ROUTER_ROUTE_OUTCOME: "fallback"},
    )
    assert fallbacks == 3
    # What the app saw of the mock: 5 failed primary requests, 3 fallback answers.
    statuses = [(r.model, r.status) for r in fast_mock.records]
    assert statuses.count((primary.model, 500)) == 5
    assert statuses.count((fallback.model, 200)) == 3


def test_non_fallback_errors_and_exhaustion_propagate_unchanged(otel: Otel) -> None:
    raised = ConnectionError("a down")

    @routed(["a", "b"], name="strict", fallback_on=ConnectionError, **_providers(otel))
    def call(*, route: str, fail: dict[str, BaseException]) -> str:
        if route in fail:
            raise fail[route]
        return route

    assert call(fail={"a": raised}) == "b"
    value_error = ValueError("bad request")
    with pytest.raises(ValueError) as info:
        call(fail={"a": value_error})
    assert info.value is value_error  # not retried elsewhere, not wrapped
    last = ConnectionError("b down")
    with pytest.raises(ConnectionError) as info2:
        call(fail={"a": raised, "b": last})
    assert info2.value is last

    outcomes = [(s.attributes or {})[semconv.ROUTER_OUTCOME] for s in spans_named(otel, "router strict")]
    assert outcomes == ["success", "error", "exhausted"]
    spans = spans_named(otel, "router strict")
    tried = [tuple((s.attributes or {})[semconv.ROUTER_ROUTES_TRIED]) for s in spans]  # type: ignore[arg-type]
    assert tried == [("a", "b"), ("a",), ("a", "b")]


def test_strategy_callable_orders_routes(otel: Otel) -> None:
    latency = {"east": 0.3, "west": 0.1}

    def fastest_first(prompt: str, **_: Any) -> list[Route]:
        return [Route(name, model=f"m-{name}") for name in sorted(latency, key=latency.__getitem__)]

    @routed(fastest_first, name="geo", strategy="least_latency", **_providers(otel))
    def ask(prompt: str, *, route: Route) -> str:
        return f"{route.model}:{prompt}"

    assert ask("hi") == "m-west:hi"
    (span,) = spans_named(otel, "router geo")
    a = span.attributes or {}
    assert (a[semconv.ROUTER_STRATEGY], a[semconv.ROUTER_CHOSEN_ROUTE]) == ("least_latency", "west")


def test_async_router(otel: Otel) -> None:
    @routed(["primary", "backup"], name="async", **_providers(otel))
    async def ask(*, route: str) -> str:
        await asyncio.sleep(0)
        if route == "primary":
            raise pybreaker.CircuitBreakerError("open")
        return route

    assert asyncio.iscoroutinefunction(ask)
    assert asyncio.run(ask()) == "backup"
    (span,) = spans_named(otel, "router async")
    assert (span.attributes or {})[semconv.ROUTER_FINAL_ROUTE] == "backup"
    assert [s.name for s in children(otel, span)] == ["route primary", "route backup"]


def test_generator_router_falls_back_only_before_the_first_item(otel: Otel) -> None:
    @routed(["primary", "backup"], name="stream", **_providers(otel))
    def stream(fail_at: dict[str, int], *, route: str) -> Iterator[str]:
        for i in range(3):
            if fail_at.get(route) == i:
                raise ConnectionError(f"{route} broke at {i}")
            yield f"{route}-{i}"

    assert list(stream({"primary": 0})) == ["backup-0", "backup-1", "backup-2"]
    got: list[str] = []
    with pytest.raises(ConnectionError):
        for item in stream({"primary": 2}):  # fails after items were delivered: committed
            got.append(item)
    assert got == ["primary-0", "primary-1"]
    first, second = spans_named(otel, "router stream")
    assert tuple((first.attributes or {})[semconv.ROUTER_ROUTES_TRIED]) == ("primary", "backup")  # type: ignore[arg-type]
    assert (second.attributes or {})[semconv.ROUTER_OUTCOME] == "error"
    assert tuple((second.attributes or {})[semconv.ROUTER_ROUTES_TRIED]) == ("primary",)  # type: ignore[arg-type]


def test_async_generator_router(otel: Otel) -> None:
    @routed(["primary", "backup"], name="astream", **_providers(otel))
    async def stream(*, route: str) -> AsyncIterator[str]:
        if route == "primary":
            raise ConnectionError("primary down")
        for i in range(2):
            yield f"{route}-{i}"

    async def consume() -> list[str]:
        return [item async for item in stream()]

    assert asyncio.run(consume()) == ["backup-0", "backup-1"]
    (span,) = spans_named(otel, "router astream")
    assert (span.attributes or {})[semconv.ROUTER_FINAL_ROUTE] == "backup"
    assert span.end_time is not None
