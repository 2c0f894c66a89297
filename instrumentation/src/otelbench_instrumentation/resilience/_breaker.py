"""pybreaker hooks: a listener on every ``CircuitBreaker``, and the calls it rejects.

pybreaker tells listeners about state changes and about calls it let through (``before_call``,
``success``, ``failure``) but not about calls it rejects while open: the open state raises
``CircuitBreakerError`` before any listener hears of the call. ``CircuitBreaker.call`` (which
``@breaker``, ``breaker.call`` and ``with breaker.calling()`` all go through) is therefore
wrapped too: a ``CircuitBreakerError`` from a call whose ``before_call`` never reached our
listener is a rejection; one raised after the guarded function ran is the trip that opened the
breaker, already seen as a failure and a transition.

Nothing here imports pybreaker: the wrappers are applied when the application first imports
it (``_patching.apply``), and the listener class is built then.
"""

from __future__ import annotations

import functools
import gc
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.util.types import AttributeValue

from .. import semconv
from .._patching import Patch, Wrapper, apply, revert
from ..recorder import suppress_telemetry_errors
from . import _telemetry as tm

log = logging.getLogger(__name__)


class _CallFrame:
    """One ``CircuitBreaker.call`` in progress: did the guarded function get to run?"""

    __slots__ = ("breaker", "invoked", "parent")

    def __init__(self, breaker: Any, parent: _CallFrame | None) -> None:
        self.breaker = breaker
        self.parent = parent
        self.invoked = False


_FRAME: ContextVar[_CallFrame | None] = ContextVar("otelbench_breaker_call", default=None)


def breaker_name(cb: Any) -> str:
    """The name metrics and events use for ``cb``."""
    name = getattr(cb, "name", None)
    return name if isinstance(name, str) and name else semconv.BREAKER_UNNAMED


def _state_name(state: Any) -> str | None:
    name = getattr(state, "name", state)
    return name if isinstance(name, str) else None


class BreakerTelemetry:
    """Instruments of the pybreaker instrumentation (events go to whatever span is current)."""

    def __init__(self, meter_provider: MeterProvider | None, registry: BreakerRegistry) -> None:
        meter = tm.get_meter(meter_provider)
        self.transitions = tm.counter(
            meter,
            semconv.METRIC_BREAKER_TRANSITIONS,
            semconv.UNIT_TRANSITIONS,
            semconv.DESCRIPTION_BREAKER_TRANSITIONS,
        )
        self.calls = tm.counter(
            meter, semconv.METRIC_BREAKER_CALLS, semconv.UNIT_CALLS, semconv.DESCRIPTION_BREAKER_CALLS
        )
        self.rejected = tm.counter(
            meter, semconv.METRIC_BREAKER_REJECTED, semconv.UNIT_CALLS, semconv.DESCRIPTION_BREAKER_REJECTED
        )
        tm.observable_gauge(
            meter,
            semconv.METRIC_BREAKER_STATE,
            semconv.UNIT_STATE,
            semconv.DESCRIPTION_BREAKER_STATE,
            registry.gauge_callback(meter_provider),
        )


class OtelBreakerListener:
    """Turns pybreaker's notifications into span events and metrics; never raises.

    The listener attached is :func:`listener_type`'s subclass, which is also a
    ``pybreaker.CircuitBreakerListener``."""

    def __init__(self, telemetry: BreakerTelemetry) -> None:
        self.telemetry = telemetry

    def before_call(self, cb: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """The guarded function is about to run: this call is not a rejection."""
        frame = _FRAME.get()
        if frame is not None and frame.breaker is cb:
            frame.invoked = True

    def success(self, cb: Any) -> None:
        """The breaker counted a success."""
        attrs = {
            semconv.BREAKER_NAME: breaker_name(cb),
            semconv.BREAKER_OUTCOME: semconv.BREAKER_OUTCOME_SUCCESS,
        }
        tm.add(self.telemetry.calls, 1, attrs)

    def failure(self, cb: Any, exc: BaseException) -> None:
        """The breaker counted a failure."""
        attrs = {
            semconv.BREAKER_NAME: breaker_name(cb),
            semconv.BREAKER_OUTCOME: semconv.BREAKER_OUTCOME_FAILURE,
            semconv.ERROR_TYPE: tm.error_type(exc),
        }
        tm.add(self.telemetry.calls, 1, attrs)

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        """A transition: a span event on the current span and a count by from/to state."""
        with suppress_telemetry_errors("circuit breaker transition"):
            attrs: dict[str, AttributeValue] = {semconv.BREAKER_NAME: breaker_name(cb)}
            old, new = _state_name(old_state), _state_name(new_state)
            if old:
                attrs[semconv.BREAKER_FROM_STATE] = old
            if new:
                attrs[semconv.BREAKER_TO_STATE] = new
            trace.get_current_span().add_event(semconv.EVENT_BREAKER_STATE_CHANGE, attrs)
            tm.add(self.telemetry.transitions, 1, dict(attrs))

    def rejected(self, cb: Any) -> None:
        """The breaker refused a call while open."""
        with suppress_telemetry_errors("circuit breaker rejection"):
            attrs: dict[str, AttributeValue] = {semconv.BREAKER_NAME: breaker_name(cb)}
            trace.get_current_span().add_event(semconv.EVENT_BREAKER_REJECTED, attrs)
            tm.add(self.telemetry.rejected, 1, dict(attrs))


@functools.cache
def listener_type() -> type[OtelBreakerListener]:
    """Our listener as a ``pybreaker.CircuitBreakerListener`` (built once pybreaker is imported)."""
    import pybreaker

    class PyBreakerListener(OtelBreakerListener, pybreaker.CircuitBreakerListener):
        """OtelBreakerListener, as the CircuitBreakerListener subclass pybreaker documents."""

    return PyBreakerListener


class BreakerRegistry:
    """The breakers carrying our listener (weakly held) and the listener itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._breakers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.telemetry: BreakerTelemetry | None = None
        self.meter_provider: MeterProvider | None = None
        self._listener: OtelBreakerListener | None = None

    @property
    def listener(self) -> OtelBreakerListener | None:
        """The listener while instrumented (created at first use: pybreaker is imported by then)."""
        telemetry = self.telemetry
        if telemetry is None:
            return None
        listener = self._listener
        if listener is None or listener.telemetry is not telemetry:
            listener = self._listener = listener_type()(telemetry)
        return listener

    def attach(self, cb: Any) -> None:
        """Add our listener to ``cb`` once."""
        with suppress_telemetry_errors("attach circuit breaker listener"):
            listener = self.listener
            if listener is None:
                return
            if not any(isinstance(existing, OtelBreakerListener) for existing in cb.listeners):
                cb.add_listener(listener)
            with self._lock:
                self._breakers.add(cb)

    def detach_all(self) -> None:
        """Remove our listeners from every breaker we attached them to."""
        with self._lock:
            breakers = list(self._breakers)
            self._breakers = weakref.WeakSet()
        for cb in breakers:
            with suppress_telemetry_errors("detach circuit breaker listener"):
                for existing in cb.listeners:
                    if isinstance(existing, OtelBreakerListener):
                        cb.remove_listener(existing)

    def snapshot(self) -> list[Any]:
        """The breakers tracked now."""
        with self._lock:
            return list(self._breakers)

    def gauge_callback(
        self, meter_provider: MeterProvider | None
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """The gauge callback: worst current state per breaker name, while instrumented."""

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            # A meter keeps its first callback for good: report only while that meter's
            # instrumentation is the active one.
            if self.telemetry is None or self.meter_provider is not meter_provider:
                return []
            worst: dict[str, int] = {}
            for cb in self.snapshot():
                try:
                    # current_state reads the storage (memory, Redis ...): the shared truth.
                    value = semconv.BREAKER_STATE_VALUES.get(cb.current_state)
                except Exception:
                    log.debug("could not read a circuit breaker state", exc_info=True)
                    continue
                if value is not None:
                    name = breaker_name(cb)
                    worst[name] = max(value, worst.get(name, value))
            return [Observation(value, {semconv.BREAKER_NAME: name}) for name, value in worst.items()]

        return observe


_REGISTRY = BreakerRegistry()


def _init_wrapper() -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = wrapped(*args, **kwargs)
        _REGISTRY.attach(instance)
        return result

    return wrapper


def _call_wrapper() -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        parent = _FRAME.get()
        frame = _CallFrame(instance, parent)
        token = _FRAME.set(frame)
        try:
            return wrapped(*args, **kwargs)
        except Exception as exc:
            # Only called on a pybreaker object, so pybreaker is imported.
            if not frame.invoked and isinstance(exc, sys.modules["pybreaker"].CircuitBreakerError):
                listener = _REGISTRY.listener
                if listener is not None:
                    listener.rejected(instance)
            raise
        finally:
            _FRAME.reset(token)
            # The open state's timeout path re-enters call() for the half-open trial: a trial
            # that ran means the outer call was not rejected either.
            if frame.invoked and parent is not None and parent.breaker is instance:
                parent.invoked = True

    return wrapper


_PATCHES = (
    Patch("pybreaker", "CircuitBreaker.__init__", _init_wrapper),
    Patch("pybreaker", "CircuitBreaker.call", _call_wrapper),
)


def install(meter_provider: MeterProvider | None, attach_existing: bool = True) -> list[Patch]:
    """Listen to every breaker, existing and future; return the patches applied."""
    _REGISTRY.meter_provider = meter_provider
    _REGISTRY.telemetry = BreakerTelemetry(meter_provider, _REGISTRY)
    applied = apply(_PATCHES)  # now if pybreaker is imported, else at its first import
    pybreaker = sys.modules.get("pybreaker")
    if attach_existing and pybreaker is not None:
        # Breakers created before instrumentation (module-level ones, typically): one heap scan.
        # type() rather than isinstance(): no proxy's __class__ property runs during the scan.
        breaker_type = pybreaker.CircuitBreaker
        for obj in gc.get_objects():
            if issubclass(type(obj), breaker_type):
                _REGISTRY.attach(obj)
    return applied


def uninstall(applied: Iterable[Patch]) -> None:
    """Undo :func:`install`: detach every listener and unwrap pybreaker."""
    revert(applied)
    _REGISTRY.telemetry = None
    _REGISTRY.detach_all()
