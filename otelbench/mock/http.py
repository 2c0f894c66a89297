"""Minimal HTTP/1.1 server on `asyncio.Protocol` + `httptools`: keep-alive, Content-Length and chunked."""

from __future__ import annotations

import asyncio
import logging
import select
import selectors
import time
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import httptools

from .. import rxtime

log = logging.getLogger("otelbench.mock")

perf_ns = time.perf_counter_ns

_CRLF = b"\r\n"
#: Terminating chunk of a chunked body.
LAST_CHUNK = b"0\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_CLOSE = b"connection: close\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
_STATUS_LINES: dict[int, bytes] = {}
#: Request line + headers larger than this get 431.
MAX_HEADER_BYTES = 64 * 1024


def status_line(code: int) -> bytes:
    """`HTTP/1.1 <code> <reason>\\r\\n`, cached per code."""
    line = _STATUS_LINES.get(code)
    if line is None:
        try:
            reason = HTTPStatus(code).phrase
        except ValueError:
            reason = {529: "Site Overloaded", 499: "Client Closed Request"}.get(code, "Unknown")
        line = _STATUS_LINES[code] = f"HTTP/1.1 {code} {reason}\r\n".encode("latin-1")
    return line


def frame(payload: bytes) -> bytes:
    """One chunk of a chunked body (empty payload -> nothing: an empty chunk would end the body)."""
    return b"%x\r\n%b\r\n" % (len(payload), payload) if payload else b""


@dataclass(slots=True)
class Request:
    """A fully read HTTP request."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    too_large: bool
    #: `loop.time()` and `perf_counter_ns()` when the last byte of the request was read.
    arrival: float
    arrival_ns: int
    #: When the kernel received the request's last bytes (`perf_counter_ns` clock); None where
    #: reads are not stamped (see `otelbench.rxtime`).
    received_ns: int | None = None


class Handler(Protocol):
    """What the connection calls for every request (run inline until it first waits, then as a task)."""

    def __call__(self, conn: HttpConnection, request: Request) -> Coroutine[Any, Any, None]: ...


class HttpConnection(asyncio.Protocol):
    """One client connection; requests on it are answered strictly in order (pipelining-safe)."""

    def __init__(
        self,
        handler: Handler,
        loop: asyncio.AbstractEventLoop,
        max_body: int,
        on_close: Callable[[HttpConnection], None],
        read_timeout: float = 10.0,
    ) -> None:
        self._handler = handler
        self._loop = loop
        self._max_body = max_body
        self._read_timeout = read_timeout
        self._read_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        #: The incoming request was refused while being read (408/413/431); ignore the rest.
        self._rejected = False
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._stamped = False
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._pending: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._close_after = False
        self._current_keep_alive = True
        self._aborted = False
        self.closed = False
        #: Whether the current response's headers were written (so errors can't be sent any more).
        self.headers_sent = False
        self._drain: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._stamped = rxtime.stamps_reads(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        if self._close_after:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"upgrade not supported")
        except httptools.HttpParserError as exc:
            self._fail(400, str(exc).encode("utf-8", "replace"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_read_timer()
        self._pending.clear()
        # A disconnect we injected ends its own handler; only a client hang-up cancels it.
        if self._task is not None and not self._task.done() and not self._aborted:
            self._task.cancel()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._on_close(self)

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0
        self._header_bytes = 0
        self._too_large = False
        # The clock starts at a request's first byte: an idle keep-alive connection is not timed.
        self._read_timer = self._loop.call_later(
            self._read_timeout, self._reject, 408, b"request not received in time"
        )

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._rejected:
            return
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        self._count_header_bytes(len(name) + len(value) + 4)

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES and not self._rejected:
            self._reject(431, b"request header fields too large")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            self._too_large = True
        elif self._headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._too_large or self._rejected:
            return
        self._body_size += len(body)
        if self._body_size > self._max_body:
            # Drop what we buffered; the 413 answer doesn't need it.
            self._too_large = True
            self._body = []
            if "content-length" not in self._headers:
                # Chunked: no end in sight, so answer now instead of reading on.
                self._reject(413, b"request body too large")
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self._stop_read_timer()
        if self._rejected:
            return
        arrival, arrival_ns = self._loop.time(), perf_ns()
        # Called from data_received, right after the read that brought the request's last bytes.
        received_ns = rxtime.last_read_ns() if self._stamped else None
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        request = Request(
            method=self._parser.get_method().decode("latin-1"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
            keep_alive=self._parser.should_keep_alive() and not self._too_large,
            too_large=self._too_large,
            arrival=arrival,
            arrival_ns=arrival_ns,
            received_ns=received_ns,
        )
        self._body = []
        if request.too_large:
            # Stop reading a body we refuse; the connection closes after the 413.
            self._close_after = True
        self._pending.append(request)
        if self._task is None:
            self._next()

    # -- request scheduling ------------------------------------------------------------------

    def _next(self) -> None:
        # A handler runs synchronously until it first has to wait (most answers with no delay
        # never do); only then does it get a Task. This saves a Task and two loop round trips per
        # request, and answers pipelined requests in the same pass.
        while not self.closed and self._pending:
            request = self._pending.popleft()
            self.headers_sent = False
            self._current_keep_alive = request.keep_alive
            coro = self._handler(self, request)
            try:
                waiting = coro.send(None)
            except StopIteration:
                pass
            except Exception:
                log.exception("mock handler failed")
            else:
                task = self._loop.create_task(_resume(coro, waiting))
                self._task = task
                task.add_done_callback(self._done)
                return
            if self._should_close():
                self.close()
                break
        self._task = None

    def _should_close(self) -> bool:
        return not self._current_keep_alive or (self._close_after and not self._pending)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if self.closed:
            return
        if not task.cancelled() and task.exception() is not None:
            log.error("mock handler failed", exc_info=task.exception())
        if self._should_close():
            self.close()
            return
        self._next()

    def _stop_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _reject(self, status: int, message: bytes) -> None:
        """Refuse the request being read: answer ``status`` and close, ignoring what follows."""
        self._stop_read_timer()
        self._rejected = True
        self._fail(status, message)

    def _fail(self, status: int, message: bytes) -> None:
        self._close_after = True
        if self._task is None and self._transport is not None and not self.closed:
            self._transport.write(
                b"%b%bcontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%b"
                % (status_line(status), _CLOSE, len(message), message)
            )
            self.close()

    # -- writing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close after flushing what was written (FIN)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection mid-response: flush what was written, never send the last chunk."""
        self._current_keep_alive = False
        self._aborted = True
        self.close()

    async def drain(self) -> None:
        """Wait while the client isn't reading (transport buffer above the high-water mark)."""
        if self._drain is not None and not self._drain.done():
            await self._drain

    def response(self, status: int, content_type: bytes, body: bytes, extra_headers: bytes = b"") -> bytes:
        """A complete response with Content-Length (marks the headers as sent)."""
        self.headers_sent = True
        return b"%bcontent-type: %b\r\ncontent-length: %d\r\n%b%b\r\n%b" % (
            status_line(status),
            content_type,
            len(body),
            _KEEP_ALIVE if self._current_keep_alive else _CLOSE,
            extra_headers,
            body,
        )

    def stream_head(self, status: int, content_type: bytes, extra_headers: bytes, first: bytes) -> bytes:
        """Chunked-response headers plus an optional first chunk (marks the headers as sent)."""
        self.headers_sent = True
        conn = _KEEP_ALIVE if self._current_keep_alive else _CLOSE
        return b"%bcontent-type: %b\r\n%b%b%b\r\n%b" % (
            status_line(status),
            content_type,
            _CHUNKED,
            conn,
            extra_headers,
            frame(first),
        )

    def write(self, data: bytes) -> None:
        """Hand bytes to the socket (dropped once the connection is gone)."""
        if self._transport is not None and not self.closed:
            self._transport.write(data)


class _Resume:
    """Awaitable that continues a coroutine which already ran up to its first wait.

    `coro.send(None)` returned `waiting` (what the coroutine yields to its task: a future, or
    None for a bare `sleep(0)`); awaiting this object hands `waiting` to the running Task and
    then relays every resume, exception and cancellation between that Task and `coro`.
    """

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        coro, waiting = self.coro, self.waiting
        while True:
            try:
                yield waiting
            except BaseException as exc:  # cancellation (or close) is the handler's to handle
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    return


async def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    await _Resume(coro, waiting)


class PreciseEpollSelector(selectors.EpollSelector):
    """Epoll whose timeouts have microsecond, not millisecond, precision.

    `epoll_wait` rounds timeouts up to whole milliseconds, so timers fire up to 1 ms late; waiting
    on the epoll fd itself with `select()` (microsecond timeout) first keeps chunk deadlines tight.
    """

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Wait for events; see `selectors.BaseSelector.select`."""
        if timeout is not None and timeout > 0:
            try:
                ready, _, _ = select.select([self.fileno()], [], [], timeout)
            except ValueError:  # fd beyond FD_SETSIZE: fall back to millisecond precision
                return super().select(timeout)
            if not ready:
                return []
            timeout = 0
        return super().select(timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A selector event loop with precise timers (plain asyncio loop where epoll is missing)."""
    if hasattr(selectors, "EpollSelector"):
        return asyncio.SelectorEventLoop(PreciseEpollSelector())
    return asyncio.new_event_loop()


class ConnectionSet:
    """The live connections of a server, so `stop()` can close them all."""

    def __init__(self) -> None:
        self.live: set[HttpConnection] = set()

    def add(self, conn: HttpConnection) -> None:
        """Track a new connection."""
        self.live.add(conn)

    def discard(self, conn: HttpConnection) -> None:
        """Forget a closed connection."""
        self.live.discard(conn)
