"""tenacity hooks: one span per retried operation, one span event per attempt.

Everything tenacity decides goes through ``iter(retry_state)``: it returns ``DoAttempt`` (an
attempt starts), ``DoSleep(seconds)`` (the attempt failed and will be retried after that
sleep), the final value, or raises (``RetryError``, a re-raised or non-retryable exception).
Wrapping ``iter`` therefore sees every decision of every form of use (``@retry``,
``Retrying()(fn)``, ``for attempt in Retrying()``, ``AsyncRetrying``) without touching tenacity's
state, statistics or exceptions. The loops themselves (``__call__``, ``__iter__``,
``__anext__``) are wrapped only to end the span if the loop is left between two ``iter`` calls
(a cancelled sleep, a loop the caller abandons), so no span is ever left open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from .. import semconv
from .._patching import Patch, Wrapper
from ..recorder import suppress_telemetry_errors
from . import _telemetry as tm

log = logging.getLogger(__name__)

_RUN: ContextVar[_RetryRun | None] = ContextVar("otelbench_retry_run", default=None)


class RetryTelemetry:
    """Tracer and instruments of the tenacity instrumentation."""

    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
        self.tracer = tm.get_tracer(tracer_provider)
        meter = tm.get_meter(meter_provider)
        self.attempts = tm.counter(
            meter, semconv.METRIC_RETRY_ATTEMPTS, semconv.UNIT_ATTEMPTS, semconv.DESCRIPTION_RETRY_ATTEMPTS
        )
        self.operations = tm.counter(
            meter,
            semconv.METRIC_RETRY_OPERATIONS,
            semconv.UNIT_OPERATIONS,
            semconv.DESCRIPTION_RETRY_OPERATIONS,
        )
        self.sleep = tm.histogram(
            meter,
            semconv.METRIC_RETRY_SLEEP,
            semconv.UNIT_SECONDS,
            semconv.DESCRIPTION_RETRY_SLEEP,
            semconv.BUCKETS_RETRY_SLEEP,
        )


def _operation_name(retry_state: Any) -> str:
    fn = getattr(retry_state, "fn", None)
    if fn is not None:
        name = getattr(fn, "__qualname__", None)
        return name if isinstance(name, str) else type(fn).__qualname__
    # Iterator forms have no function; tenacity >= 9 lets the caller name the Retrying object.
    name = getattr(getattr(retry_state, "retry_object", None), "_name", None)
    return name if isinstance(name, str) else "<unknown>"


def _gave_up(retry_object: Any, exc: BaseException | None) -> bool:
    """Whether the stop strategy ended the loop (as opposed to a non-retryable outcome)."""
    try:
        import tenacity

        if isinstance(exc, tenacity.RetryError):
            return True
        # tenacity >= 8.3 keeps the stop decision of the last iter() in iter_state.
        state = getattr(retry_object, "iter_state", None)
        return bool(getattr(state, "stop_run_result", False))
    except Exception:
        return False


class _RetryRun:
    """The span and counts of one retried operation (one ``RetryCallState``)."""

    __slots__ = (
        "_context_token",
        "_run_token",
        "attempts",
        "ended",
        "name",
        "retry_state",
        "sleep_total",
        "span",
        "telemetry",
    )

    def __init__(self, telemetry: RetryTelemetry, retry_state: Any) -> None:
        self.telemetry = telemetry
        self.retry_state = retry_state
        self.name = _operation_name(retry_state)
        self.attempts = 0
        self.sleep_total = 0.0
        self.ended = False
        self._context_token: object | None = None
        self._run_token: Token[_RetryRun | None] | None = None
        self.span: Span = telemetry.tracer.start_span(
            f"{semconv.SPAN_RETRY} {self.name}",
            kind=SpanKind.INTERNAL,
            attributes={semconv.RETRY_NAME: self.name},
        )
        # Current for the attempts, so a provider span of each attempt nests under it.
        self._context_token = otel_context.attach(trace.set_span_in_context(self.span))
        self._run_token = _RUN.set(self)

    def on_attempt_end(self, will_retry: bool, sleep: float | None, gave_up: bool = False) -> None:
        """Record the attempt whose outcome tenacity has just judged (never raises)."""
        try:
            self._record_attempt(will_retry, sleep, gave_up)
        except Exception:
            log.debug("could not record a retry attempt", exc_info=True)

    def _record_attempt(self, will_retry: bool, sleep: float | None, gave_up: bool) -> None:
        outcome = self.retry_state.outcome
        if outcome is None:
            return
        self.attempts += 1
        attrs: dict[str, AttributeValue] = {
            semconv.RETRY_ATTEMPT_NUMBER: int(self.retry_state.attempt_number),
            semconv.RETRY_ATTEMPT_WILL_RETRY: will_retry,
        }
        exc = outcome.exception() if outcome.failed else None
        if exc is not None:
            kind = semconv.ATTEMPT_OUTCOME_ERROR
            attrs[semconv.ERROR_TYPE] = tm.error_type(exc)
        elif will_retry or gave_up:
            kind = semconv.ATTEMPT_OUTCOME_REJECTED_RESULT
        else:
            kind = semconv.ATTEMPT_OUTCOME_SUCCESS
        attrs[semconv.RETRY_ATTEMPT_OUTCOME] = kind
        if sleep is not None:
            attrs[semconv.RETRY_ATTEMPT_SLEEP] = sleep
            self.sleep_total += sleep
        self.span.add_event(semconv.EVENT_RETRY_ATTEMPT, attrs)
        metric_attrs: dict[str, Any] = {semconv.RETRY_NAME: self.name, semconv.RETRY_ATTEMPT_OUTCOME: kind}
        if exc is not None:
            metric_attrs[semconv.ERROR_TYPE] = attrs[semconv.ERROR_TYPE]
        tm.add(self.telemetry.attempts, 1, metric_attrs)
        if sleep is not None:
            tm.record(self.telemetry.sleep, sleep, {semconv.RETRY_NAME: self.name})

    def finish(self, outcome: str, exc: BaseException | None) -> None:
        """End the span (once) with the final outcome, and leave the context as it was."""
        if self.ended:
            return
        self.ended = True
        try:
            attrs: dict[str, AttributeValue] = {
                semconv.RETRY_OUTCOME: outcome,
                semconv.RETRY_ATTEMPT_COUNT: self.attempts,
                semconv.RETRY_SLEEP_TOTAL: self.sleep_total,
            }
            metric_attrs: dict[str, Any] = {semconv.RETRY_NAME: self.name, semconv.RETRY_OUTCOME: outcome}
            if exc is not None:
                attrs[semconv.ERROR_TYPE] = metric_attrs[semconv.ERROR_TYPE] = tm.error_type(exc)
                # The class only: an exception message may echo a prompt.
                self.span.set_status(Status(StatusCode.ERROR, tm.error_type(exc)))
            self.span.set_attributes(attrs)
            tm.add(self.telemetry.operations, 1, metric_attrs)
        except Exception:
            log.debug("could not record the retry outcome", exc_info=True)
        finally:
            self._leave()
            try:
                self.span.end()
            except Exception:
                log.debug("could not end the retry span", exc_info=True)

    def _leave(self) -> None:
        try:
            if self._run_token is not None:
                _RUN.reset(self._run_token)
            if self._context_token is not None:
                otel_context.detach(self._context_token)  # type: ignore[arg-type]
        except Exception:
            # A loop finished from another context (a generator collected elsewhere): harmless.
            log.debug("could not restore the context of a retry span", exc_info=True)
        self._run_token = self._context_token = None


def _run_for(telemetry: RetryTelemetry, retry_state: Any) -> _RetryRun | None:
    """The run of ``retry_state``; a new one when its first attempt is about to be decided."""
    try:
        run = _RUN.get()
        if run is not None and run.retry_state is retry_state and not run.ended:
            return run
        if retry_state.outcome is None and retry_state.attempt_number == 1:
            return _RetryRun(telemetry, retry_state)
    except Exception:
        log.debug("could not start retry telemetry", exc_info=True)
    return None


def _after_iter(run: _RetryRun, instance: Any, action: Any) -> None:
    import tenacity

    if isinstance(action, tenacity.DoAttempt):
        return
    if isinstance(action, tenacity.DoSleep):
        run.on_attempt_end(True, float(action))
        return
    # A final value: the accepted result, or a retry_error_callback's after giving up.
    gave_up = _gave_up(instance, None)
    run.on_attempt_end(False, None, gave_up)
    run.finish(semconv.RETRY_OUTCOME_GAVE_UP if gave_up else semconv.RETRY_OUTCOME_SUCCESS, None)


def _after_iter_raised(run: _RetryRun, instance: Any, exc: BaseException) -> None:
    gave_up = _gave_up(instance, exc)
    run.on_attempt_end(False, None, gave_up)
    run.finish(semconv.RETRY_OUTCOME_GAVE_UP if gave_up else semconv.RETRY_OUTCOME_ERROR, exc)


def _retry_state_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return kwargs["retry_state"] if "retry_state" in kwargs else args[0]


def _sync_iter(telemetry: RetryTelemetry) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        run = _run_for(telemetry, _retry_state_of(args, kwargs))
        if run is None:
            return wrapped(*args, **kwargs)
        try:
            action = wrapped(*args, **kwargs)
        except BaseException as exc:
            with suppress_telemetry_errors("retry failure"):
                _after_iter_raised(run, instance, exc)
            raise
        with suppress_telemetry_errors("retry decision"):
            _after_iter(run, instance, action)
        return action

    return wrapper


def _async_iter(telemetry: RetryTelemetry) -> Wrapper:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Awaited directly by the retry loop, so context changes made here stay in its task.
        run = _run_for(telemetry, _retry_state_of(args, kwargs))
        if run is None:
            return await wrapped(*args, **kwargs)
        try:
            action = await wrapped(*args, **kwargs)
        except BaseException as exc:
            with suppress_telemetry_errors("retry failure"):
                _after_iter_raised(run, instance, exc)
            raise
        with suppress_telemetry_errors("retry decision"):
            _after_iter(run, instance, action)
        return action

    return wrapper


def _run_of(instance: Any) -> _RetryRun | None:
    """The open run of a loop driven by the Retrying object ``instance``, if current."""
    run = _RUN.get()
    if run is not None and not run.ended and getattr(run.retry_state, "retry_object", None) is instance:
        return run
    return None


def _end_left_open(instance: Any, exc: BaseException, before: _RetryRun | None = None) -> None:
    """End the run of ``instance`` if its loop was left without a final ``iter``."""
    run = _run_of(instance)
    if run is not None and run is not before:
        run.finish(semconv.RETRY_OUTCOME_ERROR, exc)


def _sync_call() -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        before = _RUN.get()
        try:
            return wrapped(*args, **kwargs)
        except BaseException as exc:
            # e.g. KeyboardInterrupt while tenacity sleeps between attempts.
            _end_left_open(instance, exc, before)
            raise

    return wrapper


def _async_call() -> Wrapper:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        before = _RUN.get()
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            # e.g. asyncio.CancelledError while tenacity sleeps between attempts.
            _end_left_open(instance, exc, before)
            raise

    return wrapper


def _anext() -> Wrapper:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            return await wrapped(*args, **kwargs)
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            _end_left_open(instance, exc)
            raise

    return wrapper


def _guarded_attempts(attempts: Generator[Any, None, None], instance: Any) -> Generator[Any, None, None]:
    """``for attempt in Retrying()``: ends the span if the caller leaves the loop early."""
    run: _RetryRun | None = None
    try:
        for attempt in attempts:
            if run is None:
                run = _run_of(instance)
            yield attempt
    except GeneratorExit:
        attempts.close()
        if run is not None:
            run.finish(semconv.RETRY_OUTCOME_ABANDONED, None)
        raise
    except BaseException as exc:
        run = run or _run_of(instance)
        if run is not None:
            run.finish(semconv.RETRY_OUTCOME_ERROR, exc)
        raise


def _dunder_iter() -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return _guarded_attempts(wrapped(*args, **kwargs), instance)

    return wrapper


def patches(telemetry: RetryTelemetry) -> list[Patch]:
    """Every tenacity method we wrap; the same list drives instrument and uninstrument.

    Listing them imports nothing: tenacity is wrapped when the application first imports it.
    """
    return [
        Patch("tenacity", "BaseRetrying.iter", lambda: _sync_iter(telemetry)),
        Patch("tenacity", "BaseRetrying.__iter__", _dunder_iter),
        Patch("tenacity", "Retrying.__call__", _sync_call),
        # tenacity >= 8.4: AsyncRetrying lives in tenacity.asyncio and decides in its own async iter().
        Patch("tenacity.asyncio", "AsyncRetrying.iter", lambda: _async_iter(telemetry)),
        Patch("tenacity.asyncio", "AsyncRetrying.__call__", _async_call),
        Patch("tenacity.asyncio", "AsyncRetrying.__anext__", _anext),
        # tenacity < 8.4: tenacity._asyncio, deciding in the inherited BaseRetrying.iter (wrapped above).
        Patch("tenacity._asyncio", "AsyncRetrying.__call__", _async_call),
        Patch("tenacity._asyncio", "AsyncRetrying.__anext__", _anext),
    ]
