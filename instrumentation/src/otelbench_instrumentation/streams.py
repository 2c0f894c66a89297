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
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Iterator
from itertools import repeat, starmap
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

import wrapt

from .recorder import LLMRecorder

log = logging.getLogger(__name__)

#: Handles one chunk (or event) of a stream: ``handler(recorder, chunk)``.
ChunkHandler = Callable[[LLMRecorder, Any], None]
#: Reads one stream: ``reader(recorder, chunks)`` is a generator that sets itself up, yields
#: ``None`` once inside ``with ending(recorder, chunks):``, then takes each chunk (or event) from
#: ``chunks``, records what it carries (catching its own errors) and yields it on unchanged. A
#: synchronous stream's proxy hands the reader out as the stream's iterator: one generator
#: resumption per chunk, where a separate reader would cost a call and a second resumption.
StreamReader = Callable[[LLMRecorder, Iterable[Any]], Generator[Any, None, None]]

# wrapt 1.x (older opentelemetry-instrumentation releases require wrapt < 2) cannot subscript
# ObjectProxy: the generic form is for the type checker only.
if TYPE_CHECKING:
    ObjectProxy: TypeAlias = wrapt.ObjectProxy[Any]
else:
    ObjectProxy = wrapt.ObjectProxy


class _Fed:
    """The chunks of :func:`feed_reader`: whatever was put in last."""

    __slots__ = ("box",)

    def __init__(self) -> None:
        self.box: deque[Any] = deque()

    def __iter__(self) -> Iterator[Any]:
        # C all the way, and no comparison per chunk (iter(popleft, sentinel) would compare each
        # chunk with the sentinel: a Python-level __eq__ call on a pydantic model).
        return starmap(self.box.popleft, repeat(()))


class ending:
    """Ends a reader's recording when its chunks run out (or raise, as failed); and, if the reader
    is the stream's iterator, when it is closed or collected first (as closed early). Chunks fed
    in (:func:`feed_reader`) never run out: who feeds them ends the recording."""

    __slots__ = ("pulled", "recorder")

    def __init__(self, recorder: LLMRecorder, chunks: Iterable[Any]) -> None:
        self.recorder = recorder
        self.pulled = type(chunks) is not _Fed

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.recorder.end()
        elif not isinstance(exc, GeneratorExit):
            self.recorder.fail(exc)
        elif self.pulled:
            self.recorder.end(closed_early=True)


def per_chunk(handler: ChunkHandler) -> StreamReader:
    """A :data:`StreamReader` that calls ``handler(recorder, chunk)`` for each chunk."""

    def reader(recorder: LLMRecorder, chunks: Iterable[Any]) -> Generator[Any, None, None]:
        with ending(recorder, chunks):
            yield None
            for chunk in chunks:
                try:
                    handler(recorder, chunk)
                except Exception:
                    log.debug("could not read stream chunk", exc_info=True)
                yield chunk

    return reader


def ignore_chunks(recorder: LLMRecorder, chunks: Iterable[Any]) -> Generator[Any, None, None]:
    """A :data:`StreamReader` that records nothing (operations that never stream)."""
    with ending(recorder, chunks):
        yield None
        for chunk in chunks:  # noqa: UP028 - `yield from` would close the stream with the reader
            yield chunk


def read_stream(make: StreamReader, recorder: LLMRecorder, chunks: Iterable[Any]) -> Iterator[Any]:
    """Start ``make``'s reader over ``chunks``; returns the iterator to hand out in their place
    (never raises: a reader that cannot set itself up is replaced by one that records nothing)."""
    try:
        reader = make(recorder, chunks)
        next(reader)
        return reader
    except Exception:
        log.debug("could not start the stream reader", exc_info=True)
        reader = ignore_chunks(recorder, chunks)
        next(reader)
        return reader


def feed_reader(make: StreamReader, recorder: LLMRecorder) -> tuple[Callable[[Any], None], Callable[[], Any]]:
    """Start ``make``'s reader for chunks handed over one at a time (an async stream, a raw HTTP
    client): returns ``(put, take)``; ``put(chunk)`` then ``take()`` has the reader read it.
    The caller ends the recording (end or fail) itself."""
    fed = _Fed()
    return fed.box.append, read_stream(make, recorder, fed).__next__


def end_abandoned(proxy: Any) -> None:
    """A proxy collected before its recording ended ends it (as closed early)."""
    recorder = getattr(proxy, "_self_recorder", None)
    if recorder is not None and not recorder.ended:
        recorder.end(closed_early=True)


def _async_step(
    next_chunk: Callable[[], Awaitable[Any]], recorder: LLMRecorder, make: StreamReader
) -> Callable[[], Awaitable[Any]]:
    """The per-chunk work of an async stream, as a coroutine function."""
    put, take = feed_reader(make, recorder)

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
            put(chunk)
            take()
        except Exception:  # a reader that has stopped
            log.debug("could not read stream chunk", exc_info=True)
        return chunk

    return step


async def timed_async_iterator(
    source: Any, recorder: LLMRecorder, make: StreamReader
) -> AsyncGenerator[Any, None]:
    """``source``'s chunks, read by ``make``'s reader: for streams timed in place of a proxy. Its
    end ends the recording; so does closing it or leaving it early (as closed early)."""
    step = _async_step(source.__anext__, recorder, make)
    try:
        while True:
            try:
                chunk = await step()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        recorder.end(closed_early=True)  # no-op once the last step ended or failed it


class SyncStreamProxy(ObjectProxy):
    """Wraps a synchronous SDK stream (an iterator of chunks or events)."""

    # A slot read through its descriptor skips the proxy's (slow) attribute lookup.
    __slots__ = ("_self_chunks",)

    def __init__(self, wrapped: Any, recorder: LLMRecorder, reader: StreamReader) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_reader = reader
        self._self_iterates_itself = False
        #: The reader over the stream, made on first use and shared, so `for` loops and
        #: next() calls can be mixed. From then on the reader ends the recording.
        self._self_chunks: Iterator[Any] | None = None

    def _chunks(self) -> Iterator[Any]:
        chunks = self._self_chunks
        if chunks is None:
            wrapped = self.__wrapped__
            source = iter(wrapped)
            self._self_iterates_itself = source is wrapped
            chunks = self._self_chunks = read_stream(self._self_reader, self._self_recorder, source)
        return chunks

    def __iter__(self) -> Iterator[Any]:
        chunks = self._chunks()
        # A generator (e.g. Ollama's) is its own iterator; so stays its proxy.
        return self if self._self_iterates_itself else chunks

    def __next__(self) -> Any:
        chunks = _sync_chunks_slot(self)
        if chunks is None:
            chunks = self._chunks()
        return next(chunks)

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

    def __del__(self) -> None:
        # Never iterated, then collected: end the span. Once iterating, the reader ends it,
        # also when it outlives the proxy (`for chunk in client.create(..., stream=True)`).
        if getattr(self, "_self_chunks", None) is None:
            end_abandoned(self)


class AsyncStreamProxy(ObjectProxy):
    """Wraps an asynchronous SDK stream (an async iterator of chunks or events)."""

    __slots__ = ("_self_step",)

    def __init__(self, wrapped: Any, recorder: LLMRecorder, reader: StreamReader) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_reader = reader
        self._self_step: Callable[[], Awaitable[Any]] | None = None

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    def __anext__(self) -> Awaitable[Any]:
        # Returns the step's coroutine directly: no extra coroutine frame per chunk.
        step = _async_step_slot(self)
        if step is None:
            wrapped = self.__wrapped__
            anext_ = wrapped.__anext__ if hasattr(wrapped, "__anext__") else wrapped.__aiter__().__anext__
            step = self._self_step = _async_step(anext_, self._self_recorder, self._self_reader)
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


_sync_chunks_slot: Callable[[SyncStreamProxy], Iterator[Any] | None] = vars(SyncStreamProxy)[
    "_self_chunks"
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
