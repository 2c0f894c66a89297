"""cached: hit ratio from the exported metrics equals the cache's own count; keys never exported."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Generator
from typing import Any

import openai
import pytest

from otelbench.mock import MockServer
from otelbench_instrumentation import cached, semconv
from otelbench_instrumentation.decorators import key_hash

from .conftest import Otel, ask, children, counter_total, example_app, genai_spans, spans_named


def _providers(otel: Otel) -> dict[str, Any]:
    return {"tracer_provider": otel.tracer_provider, "meter_provider": otel.meter_provider}


def test_hit_ratio_from_metrics_equals_the_caches_own(
    otel: Otel, fast_mock: MockServer, client: openai.OpenAI
) -> None:
    lru = example_app().LRUCache(128)

    @cached(lru, name="prompt", **_providers(otel))
    def answer(prompt: str) -> str:
        return ask(client, "cache-model", prompt)

    rng = random.Random(2024)
    common = [f"common question {i}: what is our refund policy?" for i in range(5)]
    rare = [f"rare question {i}: explain clause {i * 7} of the contract" for i in range(60)]
    workload = [rng.choice(common) if rng.random() < 0.8 else rng.choice(rare) for _ in range(1000)]
    answers = [answer(prompt) for prompt in workload]
    assert len(answers) == 1000

    hits = counter_total(otel, semconv.METRIC_CACHE_LOOKUPS, **{semconv.CACHE_RESULT: "hit"})
    misses = counter_total(otel, semconv.METRIC_CACHE_LOOKUPS, **{semconv.CACHE_RESULT: "miss"})
    assert hits + misses == 1000
    assert hits / (hits + misses) >= 0.8
    assert (hits, misses) == (lru.hits, lru.misses)
    assert misses == len(set(workload)) == len(fast_mock.records)  # every miss asked the model once
    # The latency histogram counts the same lookups.
    by_result = {
        (p.attributes or {})[semconv.CACHE_RESULT]: p.count
        for p in otel.points(semconv.METRIC_CACHE_LOOKUP_DURATION)
    }
    assert by_result == {"hit": hits, "miss": misses}

    # Spans: one per call; a miss's provider span nests under it; keys only as hashes.
    cache_spans = spans_named(otel, "cache prompt")
    assert len(cache_spans) == 1000
    first = cache_spans[0]
    a = first.attributes or {}
    assert a[semconv.CACHE_RESULT] == "miss"
    assert a[semconv.CACHE_KEY_HASH] == key_hash(workload[0]) and len(str(a[semconv.CACHE_KEY_HASH])) == 16
    assert isinstance(a[semconv.CACHE_LOOKUP_TIME], float)
    assert [s.name for s in children(otel, first)] == ["chat cache-model"]
    assert len(genai_spans(otel)) == misses
    exported = "".join(s.to_json() for s in otel.spans())
    data = otel.reader.get_metrics_data()
    exported += data.to_json() if data is not None else ""
    assert not any(prompt in exported for prompt in set(workload))


def test_async_coroutine_results_are_cached(otel: Otel) -> None:
    store: dict[Any, Any] = {}
    calls: list[str] = []

    @cached(store, name="async", **_providers(otel))
    async def answer(prompt: str) -> dict[str, str]:
        calls.append(prompt)
        await asyncio.sleep(0)
        return {"text": prompt.upper()}

    async def run() -> list[dict[str, str]]:
        return [await answer("a"), await answer("a"), await answer("b")]

    first, second, third = asyncio.run(run())
    assert first is second  # the stored object itself
    assert third == {"text": "B"}
    assert calls == ["a", "b"]
    assert counter_total(otel, semconv.METRIC_CACHE_LOOKUPS, **{semconv.CACHE_RESULT: "hit"}) == 1


def test_generators_store_complete_streams_and_replay_them(otel: Otel) -> None:
    store: dict[Any, Any] = {}
    produced: list[str] = []

    @cached(store, name="stream", **_providers(otel))
    def tokens(prompt: str) -> Generator[str, None, str]:
        for word in prompt.split():
            produced.append(word)
            yield word
        return "end"

    early = tokens("one two three")
    assert next(early) == "one"
    early.close()  # incomplete: not stored
    assert store == {}
    assert list(tokens("one two three")) == ["one", "two", "three"]
    produced.clear()
    replay = tokens("one two three")
    assert list(replay) == ["one", "two", "three"]
    assert produced == []  # served from the cache
    hits = counter_total(otel, semconv.METRIC_CACHE_LOOKUPS, **{semconv.CACHE_RESULT: "hit"})
    assert hits == 1
    spans = spans_named(otel, "cache stream")
    assert len(spans) == 3 and all(s.end_time for s in spans)


def test_async_generators_are_cached(otel: Otel) -> None:
    store: dict[Any, Any] = {}
    produced: list[int] = []

    @cached(store, name="astream", **_providers(otel))
    async def numbers(n: int) -> AsyncIterator[int]:
        for i in range(n):
            produced.append(i)
            yield i

    async def run() -> tuple[list[int], list[int]]:
        return [i async for i in numbers(3)], [i async for i in numbers(3)]

    assert asyncio.run(run()) == ([0, 1, 2], [0, 1, 2])
    assert produced == [0, 1, 2]


def test_failures_are_not_cached_and_unhashable_arguments_bypass(otel: Otel) -> None:
    store: dict[Any, Any] = {}
    attempts: list[int] = []

    @cached(store, name="flaky", **_providers(otel))
    def flaky(x: Any) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first call fails")
        return 7

    with pytest.raises(ConnectionError):
        flaky(1)
    assert flaky(1) == 7 and flaky(1) == 7
    assert len(attempts) == 2
    (failed, *_) = spans_named(otel, "cache flaky")
    assert (failed.attributes or {})[semconv.ERROR_TYPE] == "ConnectionError"
    assert flaky([1, 2]) == 7  # a list cannot be a key: called through, as undecorated
    assert len(attempts) == 3
    assert counter_total(otel, semconv.METRIC_CACHE_LOOKUPS) == 3


def test_custom_key_and_no_hash(otel: Otel) -> None:
    store: dict[Any, Any] = {}

    @cached(store, name="nohash", key=lambda prompt, **_: prompt.lower(), hash_keys=False, **_providers(otel))
    def answer(prompt: str, *, temperature: float = 0.0) -> str:
        return prompt[::-1]

    assert answer("Hello", temperature=0.5) == "olleH"
    assert answer("HELLO") == "olleH"  # same key: served from the cache
    assert list(store) == ["hello"]
    spans = spans_named(otel, "cache nohash")
    assert [(s.attributes or {})[semconv.CACHE_RESULT] for s in spans] == ["miss", "hit"]
    assert all(semconv.CACHE_KEY_HASH not in (s.attributes or {}) for s in spans)
