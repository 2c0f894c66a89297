"""A resilient LLM app: prompt cache, model router with fallback, retries, per-model circuit breakers.

    otelbench mock --port 8000 &
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-anything \
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=console OTEL_LOGS_EXPORTER=none \
    opentelemetry-instrument python examples/resilient_app.py

The app has no telemetry code: `opentelemetry-instrument` enables the OpenAI, tenacity and
pybreaker instrumentations, and the otelbench decorators (`cached`, `routed`) report to the
global providers it configures. A request goes through

    cached (LRU, keyed by prompt)
      -> routed: route "primary" (gpt-4o-mini), on failure route "fallback" (gpt-4.1-mini)
        -> tenacity retry: exponential backoff 50 ms -> 500 ms cap, +-25 % jitter, 4 attempts
          -> pybreaker per model: fail_max=5, success_threshold=2, short reset timeout
            -> openai chat.completions.create

To show the fallback, the first RESILIENT_APP_PRIMARY_FAULTS (default 5) primary requests ask the
otelbench mock to answer 500 (`x-mock-fault`, ignored by real providers): the primary breaker
opens, traffic falls back, and after the reset timeout two good trial calls close it again.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import OrderedDict
from typing import Any

import openai
import pybreaker
import tenacity

from otelbench_instrumentation.decorators import Route, cached, routed

PRIMARY = Route("primary", model="gpt-4o-mini", provider="openai")
FALLBACK = Route("fallback", model="gpt-4.1-mini", provider="openai")
RESET_TIMEOUT_S = float(os.environ.get("RESILIENT_APP_RESET_TIMEOUT", "0.5"))
PROMPTS = [
    "Summarise the incident report in one sentence.",
    "What is a circuit breaker?",
    "Name three retry strategies.",
    "What is a circuit breaker?",
    "Summarise the incident report in one sentence.",
    "Why add jitter to backoff?",
]


class LRUCache:
    """A small least-recently-used cache that counts its own hits and misses."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, default: Any = None) -> Any:
        """The cached value (now most recently used), or ``default``."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return default

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class JitteredExponentialWait(tenacity.wait.wait_base):
    """Exponential backoff (``initial`` doubling up to ``maximum``) times a uniform +-``jitter``."""

    def __init__(
        self,
        initial: float = 0.05,
        maximum: float = 0.5,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.rng = rng or random.Random()

    def base(self, attempt_number: int) -> float:
        """The wait after attempt ``attempt_number`` before jitter."""
        return min(self.maximum, self.initial * 2.0 ** (attempt_number - 1))

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        # Jitter after the cap, so capped waits still spread out instead of synchronising clients.
        return self.base(retry_state.attempt_number) * self.rng.uniform(1 - self.jitter, 1 + self.jitter)


# Transient failures worth another attempt; an open breaker is not one (the router falls back).
RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)


def make_breaker(model: str, reset_timeout: float = RESET_TIMEOUT_S) -> pybreaker.CircuitBreaker:
    """The circuit breaker of one model."""
    return pybreaker.CircuitBreaker(
        fail_max=5,
        success_threshold=2,
        reset_timeout=reset_timeout,
        name=f"llm:{model}",
        # A 4xx is the request's fault, not the model's: it must not open the breaker.
        exclude=[lambda exc: isinstance(exc, openai.APIStatusError) and exc.status_code < 500],
    )


class ChatService:
    """Answers prompts through cache -> router -> retry -> per-model breaker -> OpenAI."""

    def __init__(
        self, client: openai.OpenAI, primary_faults: int = 0, cache_size: int = 128, **providers: Any
    ) -> None:
        """``providers``: ``tracer_provider``/``meter_provider`` for the decorators (tests); by
        default they report to the global providers that ``opentelemetry-instrument`` sets up."""
        self.client = client
        self.cache = LRUCache(cache_size)
        self.breakers = {
            route.model: make_breaker(route.model) for route in (PRIMARY, FALLBACK) if route.model
        }
        self._primary_faults = primary_faults
        self.answer = cached(self.cache, name="prompt", **providers)(
            routed([PRIMARY, FALLBACK], name="chat", strategy="priority", **providers)(self._ask)
        )

    def _ask(self, prompt: str, *, route: Route) -> str:
        return self._ask_with_retries(route.model or "", prompt)

    @tenacity.retry(
        wait=JitteredExponentialWait(),
        stop=tenacity.stop_after_attempt(4),
        retry=tenacity.retry_if_exception_type(RETRYABLE),
        reraise=True,
    )
    def _ask_with_retries(self, model: str, prompt: str) -> str:
        result: str = self.breakers[model].call(self._create, model, prompt)
        return result

    def _create(self, model: str, prompt: str) -> str:
        headers = {}
        if model == PRIMARY.model and self._primary_faults > 0:
            self._primary_faults -= 1
            headers["x-mock-fault"] = "500"  # demo chaos: the otelbench mock fails this request
        reply = self.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], extra_headers=headers
        )
        return reply.choices[0].message.content or ""


def main() -> None:
    """Serve a few rounds of prompts, wait out the breaker's reset timeout, serve again."""
    faults = int(os.environ.get("RESILIENT_APP_PRIMARY_FAULTS", "5"))
    # More than one round (each with its own faults) keeps every counter growing across several
    # Prometheus scrapes, which rate() needs: a series' first sample is only its baseline.
    rounds = int(os.environ.get("RESILIENT_APP_ROUNDS", "1"))
    pause = float(os.environ.get("RESILIENT_APP_ROUND_PAUSE", "0"))
    # The app retries itself; the SDK's own retries would hide failures from the breaker.
    with openai.OpenAI(max_retries=0) as client:
        service = ChatService(client, primary_faults=faults)
        for round_number in range(rounds):
            if round_number:
                time.sleep(pause)
                service._primary_faults = faults
            suffix = f" (round {round_number + 1})" if round_number else ""
            for prompt in PROMPTS:
                print(f"{prompt + suffix!r} -> {len(service.answer(prompt + suffix))} chars")
            time.sleep(RESET_TIMEOUT_S * 1.2)  # let the primary breaker go half-open
            for i in range(3):
                prompt = f"Fresh question number {i}.{suffix}"
                print(f"{prompt!r} -> {len(service.answer(prompt))} chars")
        states = {name: breaker.current_state for name, breaker in service.breakers.items()}
        print(f"cache hits={service.cache.hits} misses={service.cache.misses}; breakers {states}")


if __name__ == "__main__":
    main()
