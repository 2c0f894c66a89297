"""OpenTelemetry instrumentation for tenacity retries and pybreaker circuit breakers.

Usage::

    from otelbench_instrumentation import PyBreakerInstrumentor, TenacityInstrumentor
    TenacityInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    PyBreakerInstrumentor().instrument(meter_provider=mp)

or zero-code: both are ``opentelemetry_instrumentor`` entry points (``tenacity``, ``pybreaker``),
so ``opentelemetry-instrument python app.py`` enables them when the library is installed.

**tenacity** (``@retry``, ``Retrying``, ``AsyncRetrying``, the iterator forms, any
``retry_if_*``/``stop_*``/``wait_*`` combination): one INTERNAL span ``retry {function}`` per
retried operation, current while the attempts run, so the provider span of every attempt (an
instrumented LLM call, an HTTP request) is its child. Each attempt is a span *event*
``otelbench.retry.attempt`` on it (number, outcome, ``error.type``, the sleep tenacity chose),
not a child span: when the retried function calls an LLM, the provider span already is the
per-attempt span (own duration, status and error), so an attempt span would only duplicate it
and double the span volume; events also give the same shape as the SDK-internal retries, which
are ``otelbench.attempt`` events on the provider span. Attempt *k*'s event is stamped when
tenacity judged attempt *k*, i.e. after the *k*-th child span ended and before the next began.
The span ends with ``otelbench.retry.outcome`` (``success``, ``gave_up``, ``error``), the
attempt count and, if it raised, ``error.type`` (``RetryError`` or the re-raised exception).
Metrics: ``otelbench.retry.attempts`` (by attempt outcome), ``otelbench.retry.operations`` (by
final outcome), ``otelbench.retry.sleep.duration``. Tenacity's behaviour, statistics and
exceptions are untouched: only ``iter()``'s decisions are read.

**pybreaker**: an ``OtelBreakerListener`` is attached to every ``CircuitBreaker`` (those alive at
``instrument()`` time and every one created after); each transition is an
``otelbench.circuit_breaker.state_change`` event on the current span and counts in
``otelbench.circuit_breaker.transitions`` (by name, from, to); ``otelbench.circuit_breaker.state``
is an observable gauge per breaker name (0 closed, 1 half-open, 2 open, read from the breaker's
storage, so Redis-backed breakers report the shared state); calls rejected while open count in
``otelbench.circuit_breaker.rejected_calls`` (and get an ``otelbench.circuit_breaker.rejected``
event), calls let through in ``otelbench.circuit_breaker.calls`` by outcome. pybreaker 1.4 has
no native asyncio call: in async code use ``with breaker.calling(): await ...``, which is covered
like every synchronous form; Tornado's ``call_async`` gets transitions and calls but its
rejections are not counted. ``uninstrument()`` detaches every listener.

Configuration: the standard ``OTEL_*`` variables and ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
(``tenacity``, ``pybreaker``). Neither instrumentor imports its library: if the application has
not imported it yet, it is wrapped on its first import.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from .._patching import Patch, apply, revert

__all__ = ["PyBreakerInstrumentor", "TenacityInstrumentor"]


class TenacityInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments tenacity: a span per retried operation, an event and metrics per attempt."""

    # BaseInstrumentor is a singleton whose __init__ runs on every construction, so the
    # applied patches live on the class-level default until the first _instrument.
    _applied: tuple[Patch, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        """The tenacity versions this instrumentor supports."""
        return ("tenacity >= 8.2",)

    def _instrument(self, **kwargs: Any) -> None:
        from ._retry import RetryTelemetry, patches

        telemetry = RetryTelemetry(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._applied = tuple(apply(patches(telemetry)))

    def _uninstrument(self, **kwargs: Any) -> None:
        revert(self._applied)
        self._applied = ()


class PyBreakerInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments pybreaker: transitions, state gauge, calls and rejections per breaker."""

    _applied: tuple[Patch, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        """The pybreaker versions this instrumentor supports."""
        return ("pybreaker >= 1.2",)

    def _instrument(self, **kwargs: Any) -> None:
        from ._breaker import install

        # attach_existing=False skips the one-off heap scan for breakers created earlier.
        self._applied = tuple(
            install(kwargs.get("meter_provider"), attach_existing=kwargs.get("attach_existing", True))
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        from ._breaker import uninstall

        uninstall(self._applied)
        self._applied = ()
