"""What the Stainless-generated clients (``openai``, ``anthropic``) share: raw responses, retries.

``with_raw_response``/``with_streaming_response`` results are observed through
:class:`RawResponseProxy`. Both SDKs share one base client: ``_calculate_retry_timeout`` picks the wait,
``_sleep_for_retry`` sleeps it (inside the ``except`` block of a failed attempt, or after a
retryable response) and ``_process_response`` handles the attempt that ended the loop. Wrapping
those three reports every retry as an attempt event on the current call's recorder.
"""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from .._patching import Patch, Wrapper
from ..recorder import LLMRecorder
from ..streams import (
    AsyncStreamProxy,
    ObjectProxy,
    StreamReader,
    SyncStreamProxy,
    close_then_end,
    end_abandoned,
    read_stream,
    timed_async_iterator,
)

log = logging.getLogger(__name__)


def timed_stream(stream: Any, recorder: LLMRecorder, reader: StreamReader, is_async: bool) -> Any:
    """What the app gets for an SDK stream: our proxy of it, or the stream itself timed in place
    where the SDK's stream classes fail ``isinstance`` for every object but their own exact type
    (anthropic < 1.0: a metaclass kept for a deprecated subclass), which a proxy would break."""
    metaclass: Any = type(type(stream))
    if metaclass.__instancecheck__ is type.__instancecheck__ or not hasattr(stream, "_iterator"):
        return (AsyncStreamProxy if is_async else SyncStreamProxy)(stream, recorder, reader)
    # Stainless streams read every chunk through `_iterator` and close through `close()` (also
    # from `__exit__`/`__aexit__`): replacing both on the instance times the stream unchanged.
    if is_async:
        stream._iterator = timed_async_iterator(stream._iterator, recorder, reader)
    else:
        stream._iterator = read_stream(reader, recorder, stream._iterator)
    stream.close = _closer(stream, recorder)
    # A stream dropped unread ends its span when collected (an unstarted async generator runs
    # no code then).
    weakref.finalize(stream, recorder.end, closed_early=True)
    return stream


def _closer(stream: Any, recorder: LLMRecorder) -> Callable[..., Any]:
    # A weak reference: the instance keeps this function, which must not keep the instance.
    ref, close = weakref.ref(stream), type(stream).close

    def closer(*args: Any, **kwargs: Any) -> Any:
        return close_then_end(lambda: close(ref(), *args, **kwargs), recorder)

    return closer


class RawResponseProxy(ObjectProxy):
    """A raw or streaming-response result whose ``parse()`` is observed; ``close()`` and garbage
    collection end the span. Providers implement :meth:`_read`."""

    #: The SDK's name, for debug logs.
    _SDK = "Stainless SDK"

    def __init__(self, wrapped: Any, recorder: LLMRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_stream: tuple[Any, Any] | None = None  # (SDK stream, our proxy of it)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        """Parse as the SDK does; streams come back timed, results are read for usage."""
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if inspect.isawaitable(parsed):
            return self._await_then_observe(parsed)
        return self._observe(parsed)

    async def _await_then_observe(self, awaitable: Any) -> Any:
        return self._observe(await awaitable)

    def _observe(self, parsed: Any) -> Any:
        recorder = self._self_recorder
        cached = self._self_stream
        if cached is not None and cached[0] is parsed:
            return cached[1]
        if recorder.ended:
            return parsed
        try:
            proxy = self._read(parsed)
            if proxy is not None:
                self._self_stream = (parsed, proxy)
                return proxy
        except Exception:
            log.debug("could not read parsed %s response", self._SDK, exc_info=True)
        recorder.end()
        return parsed

    def _read(self, parsed: Any) -> Any:
        """Our timed proxy if ``parsed`` is an SDK stream; else read usage from it and return None."""
        raise NotImplementedError

    def close(self) -> Any:
        """Close the HTTP response (sync or async) and end the span if still open."""
        return close_then_end(self.__wrapped__.close, self._self_recorder)

    def __del__(self) -> None:
        # Once parse() has handed out a stream proxy, that proxy ends the span: the raw
        # response may go first (`for c in ....with_raw_response.create(...).parse()`).
        if getattr(self, "_self_stream", None) is None:
            end_abandoned(self)


#: (status code, error.type) of the attempt that failed, from the response (None if none).
AttemptOutcome = Callable[[Any], tuple[int | None, str | None]]


class RetryHooks:
    """Wrappers of one SDK's retry internals, reporting to the recorder of the call in progress."""

    def __init__(self, sdk: str, current: Callable[[], LLMRecorder | None], outcome: AttemptOutcome) -> None:
        self._sdk = sdk
        self._current = current
        self._outcome = outcome
        # The wait the SDK chose for the retry in progress (set by _calculate_retry_timeout).
        self._wait: ContextVar[float | None] = ContextVar(f"otelbench_{sdk}_retry_wait", default=None)

    def patches(self, base_module: str) -> list[Patch]:
        """The retry patches of ``base_module`` (the SDK's ``_base_client``)."""
        return [
            Patch(base_module, "BaseClient._calculate_retry_timeout", self._retry_timeout_wrapper),
            Patch(base_module, "SyncAPIClient._sleep_for_retry", lambda: self._sleep_wrapper(False)),
            Patch(base_module, "AsyncAPIClient._sleep_for_retry", lambda: self._sleep_wrapper(True)),
            Patch(base_module, "SyncAPIClient._process_response", self._process_response_wrapper),
            Patch(base_module, "AsyncAPIClient._process_response", self._process_response_wrapper),
        ]

    def _retry_timeout_wrapper(self) -> Wrapper:
        def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            timeout = wrapped(*args, **kwargs)
            if self._current() is not None and isinstance(timeout, int | float):
                self._wait.set(float(timeout))
            return timeout

        return wrapper

    def _note(self, kwargs: Mapping[str, Any]) -> tuple[LLMRecorder, int | None, str | None, int] | None:
        # Called synchronously inside the SDK's except block: sys.exc_info() still holds the error.
        recorder = self._current()
        if recorder is None:
            return None
        try:
            status, error_type = self._outcome(kwargs.get("response"))
            self._wait.set(None)
            return recorder, status, error_type, time.time_ns()
        except Exception:
            log.debug("could not note a %s retry", self._sdk, exc_info=True)
            return None

    def _record(self, noted: tuple[LLMRecorder, int | None, str | None, int] | None) -> None:
        if noted is not None:
            noted[0].on_retry(noted[1], noted[2], self._wait.get(), timestamp_ns=noted[3])

    def _sleep_wrapper(self, is_async: bool) -> Wrapper:
        def sync_wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            noted = self._note(kwargs)
            try:
                return wrapped(*args, **kwargs)
            finally:
                self._record(noted)

        def async_wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            noted = self._note(kwargs)

            async def sleep() -> Any:
                try:
                    return await wrapped(*args, **kwargs)
                finally:
                    self._record(noted)

            return sleep()

        return async_wrapper if is_async else sync_wrapper

    def _process_response_wrapper(self) -> Wrapper:
        def wrapper(
            wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            recorder = self._current()
            if recorder is not None and recorder.attempts > 1:
                recorder.on_final_attempt(getattr(kwargs.get("response"), "status_code", None))
            return wrapped(*args, **kwargs)

        return wrapper
