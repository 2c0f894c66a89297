"""Stream proxies that keep SDK streams intact while timing their chunks.

Both proxies are ``wrapt.ObjectProxy`` objects: ``isinstance`` checks and every attribute of
the SDK stream (``response``, ``get_final_message()``, ``text_stream`` ...) pass through. The
recorder is finished exactly once: on exhaustion, on an error raised by the stream, on
``close()``/``aclose()``, on context-manager exit, and when an abandoned stream is collected.
State lives in ``_self_*`` attributes because any other attribute write reaches the stream.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Iterator
from types import TracebackType
from typing import Any

import wrapt

from .recorder import LLMRecorder

log = logging.getLogger(__name__)

#: Handles one chunk (or event) of a stream: ``handler(recorder, chunk)``.
ChunkHandler = Callable[[LLMRecorder, Any], None]
#: Makes the reader of one stream: a generator that is sent each chunk (or event) in turn and
#: records what it carries. Its frame lives as long as the stream, so the per-stream set-up
#: (looking up the recorder's clock, say) happens once, and each chunk costs a generator
#: resumption: about half of what a function call per chunk costs.
StreamReader = Callable[[LLMRecorder], Generator[None, Any, None]]
Send = Callable[[Any], Any]


def per_chunk(handler: ChunkHandler) -> StreamReader:
    """A :data:`StreamReader` that calls ``handler(recorder, chunk)`` for each chunk."""

    def reader(recorder: LLMRecorder) -> Generator[None, Any, None]:
        while True:
            chunk = yield
            try:
                handler(recorder, chunk)
            except Exception:
                log.debug("could not read stream chunk", exc_info=True)

    return reader


def ignore_chunks(recorder: LLMRecorder) -> Generator[None, Any, None]:
    """A :data:`StreamReader` that records nothing (operations that never stream)."""
    while True:
        yield


def start_reader(make: StreamReader, recorder: LLMRecorder) -> Send:
    """Start one stream's reader; returns what to call with each chunk (never raises)."""
    try:
        reader = make(recorder)
        next(reader)
        return reader.send
    except Exception:
        log.debug("could not start the stream reader", exc_info=True)
        return _drop


def _drop(chunk: Any) -> None:
    return None


def end_abandoned(proxy: Any) -> None:
    """``__del__`` of our proxies: a proxy collected before its recording ended ends it."""
    recorder = getattr(proxy, "_self_recorder", None)
    if recorder is not None and not recorder.ended:
        recorder.end(closed_early=True)


def _sync_step(next_chunk: Callable[[], Any], recorder: LLMRecorder, send: Send) -> Callable[[], Any]:
    """The per-chunk work of a sync stream, as a closure (see SyncStreamProxy.__next__)."""
    times, fold_at = recorder.chunk_times, recorder.fold_at

    def step() -> Any:
        try:
            chunk = next_chunk()
        except StopIteration:
            recorder.end()
            raise
        except BaseException as exc:
            recorder.fail(exc)
            raise
        try:
            send(chunk)
            if len(times) > fold_at:
                recorder.fold_chunk_times()
        except Exception:  # a reader that has stopped
            log.debug("could not read stream chunk", exc_info=True)
        return chunk

    return step


def _async_step(
    next_chunk: Callable[[], Awaitable[Any]], recorder: LLMRecorder, send: Send
) -> Callable[[], Awaitable[Any]]:
    """The per-chunk work of an async stream, as a coroutine function."""
    times, fold_at = recorder.chunk_times, recorder.fold_at

    async def step() -> Any:
        try:
            chunk = await next_chunk()
        except StopAsyncIteration:
            recorder.end()
            raise
        except BaseException as exc:
            # Includes asyncio.CancelledError: a cancelled stream ends with error.type set.
            recorder.fail(exc)
            raise
        try:
            send(chunk)
            if len(times) > fold_at:
                recorder.fold_chunk_times()
        except Exception:  # a reader that has stopped
            log.debug("could not read stream chunk", exc_info=True)
        return chunk

    return step


def _timed_chunks(
    proxy: SyncStreamProxy, next_chunk: Callable[[], Any], recorder: LLMRecorder, send: Send
) -> Iterator[Any]:
    """What ``iter(proxy)`` returns: resuming a generator per chunk costs far less than a
    ``__next__`` call on a proxy. Closing it early is not an error; the proxy's close or
    collection ends the span.

    ``proxy`` is only held, never used: it keeps ``for chunk in client.create(..., stream=True)``
    from collecting the proxy (and so ending the span) as soon as the loop has its iterator.
    """
    times, fold_at = recorder.chunk_times, recorder.fold_at
    while True:
        try:
            chunk = next_chunk()
        except StopIteration:
            recorder.end()
            return
        except BaseException as exc:
            recorder.fail(exc)
            raise
        try:
            send(chunk)
            if len(times) > fold_at:
                recorder.fold_chunk_times()
        except Exception:  # a reader that has stopped
            log.debug("could not read stream chunk", exc_info=True)
        yield chunk


class SyncStreamProxy(wrapt.ObjectProxy[Any]):
    """Wraps a synchronous SDK stream (an iterator of chunks or events)."""

    # A slot read through its descriptor skips the proxy's (slow) attribute lookup.
    __slots__ = ("_self_step",)

    def __init__(self, wrapped: Any, recorder: LLMRecorder, reader: StreamReader) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_send = start_reader(reader, recorder)
        self._self_next: Callable[[], Any] | None = None
        self._self_iterates_itself = False
        self._self_step: Callable[[], Any] | None = None

    def _next_chunk(self) -> Callable[[], Any]:
        # Resolved once and shared, so `for` loops and next() calls can be mixed.
        nxt = self._self_next
        if nxt is None:
            wrapped = self.__wrapped__
            iterator = iter(wrapped)
            self._self_iterates_itself = iterator is wrapped
            nxt = self._self_next = wrapped.__next__ if hasattr(wrapped, "__next__") else iterator.__next__
        return nxt

    def __iter__(self) -> Iterator[Any]:
        nxt = self._next_chunk()
        if self._self_iterates_itself:
            # A generator (e.g. Ollama's) is its own iterator; so stays its proxy.
            return self
        return _timed_chunks(self, nxt, self._self_recorder, self._self_send)

    def __next__(self) -> Any:
        # One slot read per chunk: a proxy's own attributes are slow to read (~0.15 µs).
        step = _sync_step_slot(self)
        if step is None:
            step = self._self_step = _sync_step(self._next_chunk(), self._self_recorder, self._self_send)
        return step()

    def __enter__(self) -> Any:
        entered = self.__wrapped__.__enter__()
        # SDK streams return themselves; hand back the proxy so iteration stays timed.
        return self if entered is self.__wrapped__ else entered

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_recorder.end(closed_early=True)

    def close(self) -> Any:
        """Close the SDK stream and end the span (if the stream had not finished)."""
        try:
            return self.__wrapped__.close()
        finally:
            self._self_recorder.end(closed_early=True)

    # An abandoned stream (e.g. `break` out of a loop, then collected) ends its span.
    __del__ = end_abandoned


class AsyncStreamProxy(wrapt.ObjectProxy[Any]):
    """Wraps an asynchronous SDK stream (an async iterator of chunks or events)."""

    __slots__ = ("_self_step",)

    def __init__(self, wrapped: Any, recorder: LLMRecorder, reader: StreamReader) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_send = start_reader(reader, recorder)
        self._self_step: Callable[[], Awaitable[Any]] | None = None

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    def __anext__(self) -> Awaitable[Any]:
        # Returns the step's coroutine directly: no extra coroutine frame per chunk.
        step = _async_step_slot(self)
        if step is None:
            wrapped = self.__wrapped__
            anext_ = wrapped.__anext__ if hasattr(wrapped, "__anext__") else wrapped.__aiter__().__anext__
            step = self._self_step = _async_step(anext_, self._self_recorder, self._self_send)
        return step()

    async def __aenter__(self) -> Any:
        entered = await self.__wrapped__.__aenter__()
        return self if entered is self.__wrapped__ else entered

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_recorder.end(closed_early=True)

    def close(self) -> Any:
        """Close the SDK stream (sync or async ``close``) and end the span."""
        return close_then_end(self.__wrapped__.close, self._self_recorder)

    def aclose(self) -> Any:
        """Close an async-generator stream and end the span."""
        return close_then_end(self.__wrapped__.aclose, self._self_recorder)

    # An abandoned stream (e.g. `break` out of a loop, then collected) ends its span.
    __del__ = end_abandoned


_sync_step_slot: Callable[[SyncStreamProxy], Callable[[], Any] | None] = vars(SyncStreamProxy)[
    "_self_step"
].__get__
_async_step_slot: Callable[[AsyncStreamProxy], Callable[[], Awaitable[Any]] | None] = vars(AsyncStreamProxy)[
    "_self_step"
].__get__


def close_then_end(closer: Callable[[], Any], recorder: LLMRecorder) -> Any:
    """Call ``closer`` (a sync or async ``close``) and end the recording as closed early: at once,
    or once the returned awaitable has been awaited; also when ``closer`` raises."""
    try:
        result = closer()
    except BaseException:
        recorder.end(closed_early=True)
        raise
    if inspect.isawaitable(result):
        return _await_then_end(result, recorder)
    recorder.end(closed_early=True)
    return result


async def _await_then_end(awaitable: Awaitable[Any], recorder: LLMRecorder) -> Any:
    try:
        return await awaitable
    finally:
        recorder.end(closed_early=True)
