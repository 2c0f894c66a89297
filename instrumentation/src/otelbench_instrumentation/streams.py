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
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import wrapt

from .recorder import LLMRecorder

log = logging.getLogger(__name__)

ChunkHandler = Callable[[LLMRecorder, Any], None]


def _handle(handler: ChunkHandler, recorder: LLMRecorder, chunk: Any) -> None:
    try:
        handler(recorder, chunk)
    except Exception:
        log.debug("could not read stream chunk", exc_info=True)


class SyncStreamProxy(wrapt.ObjectProxy[Any]):
    """Wraps a synchronous SDK stream (an iterator of chunks or events)."""

    def __init__(self, wrapped: Any, recorder: LLMRecorder, on_chunk: ChunkHandler) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_on_chunk = on_chunk
        self._self_next: Callable[[], Any] | None = None

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        nxt = self._self_next
        if nxt is None:
            wrapped = self.__wrapped__
            nxt = self._self_next = (
                wrapped.__next__ if hasattr(wrapped, "__next__") else iter(wrapped).__next__
            )
        try:
            chunk = nxt()
        except StopIteration:
            self._self_recorder.end()
            raise
        except BaseException as exc:
            self._self_recorder.fail(exc)
            raise
        _handle(self._self_on_chunk, self._self_recorder, chunk)
        return chunk

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
        recorder = getattr(self, "_self_recorder", None)
        if recorder is not None and not recorder.ended:
            recorder.end(closed_early=True)


class AsyncStreamProxy(wrapt.ObjectProxy[Any]):
    """Wraps an asynchronous SDK stream (an async iterator of chunks or events)."""

    def __init__(self, wrapped: Any, recorder: LLMRecorder, on_chunk: ChunkHandler) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_on_chunk = on_chunk
        self._self_anext: Callable[[], Awaitable[Any]] | None = None

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        anext_ = self._self_anext
        if anext_ is None:
            wrapped = self.__wrapped__
            anext_ = self._self_anext = (
                wrapped.__anext__ if hasattr(wrapped, "__anext__") else wrapped.__aiter__().__anext__
            )
        try:
            chunk = await anext_()
        except StopAsyncIteration:
            self._self_recorder.end()
            raise
        except BaseException as exc:
            # Includes asyncio.CancelledError: a cancelled stream ends with error.type set.
            self._self_recorder.fail(exc)
            raise
        _handle(self._self_on_chunk, self._self_recorder, chunk)
        return chunk

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
        return self._close_with(self.__wrapped__.close)

    def aclose(self) -> Any:
        """Close an async-generator stream and end the span."""
        return self._close_with(self.__wrapped__.aclose)

    def _close_with(self, closer: Callable[[], Any]) -> Any:
        recorder = self._self_recorder
        try:
            result = closer()
        except BaseException:
            recorder.end(closed_early=True)
            raise
        if inspect.isawaitable(result):
            return _await_then_end(result, recorder)
        recorder.end(closed_early=True)
        return result

    def __del__(self) -> None:
        recorder = getattr(self, "_self_recorder", None)
        if recorder is not None and not recorder.ended:
            recorder.end(closed_early=True)


async def _await_then_end(awaitable: Awaitable[Any], recorder: LLMRecorder) -> Any:
    try:
        return await awaitable
    finally:
        recorder.end(closed_early=True)
