"""A small HTTP/1.1 client on asyncio protocols, for ``replay --client http``.

An SDK spends milliseconds of CPU per streamed request (typed objects per chunk, request
transforms, a general-purpose HTTP stack), so at high concurrency a replay through it measures
its own event loop as much as the server. This client does only what a benchmark needs: POST a
pre-built JSON body on a keep-alive connection, read the status and headers, de-chunk the body
and split it into SSE events or NDJSON lines as the bytes arrive. Everything else (JSON decoding,
telemetry) is the caller's.

Supported: ``http`` and ``https`` (default SSL context), ``Content-Length`` and ``chunked``
bodies, keep-alive with ``Connection: close`` honoured, a per-request deadline. Not supported:
proxies, redirects, compression (none is asked for), HTTP/2, request bodies that are not bytes.

Arrival times: where :mod:`otelbench.rxtime` can (64-bit Linux), each read carries the kernel's
receive time of its bytes, so an event's time is when it reached this machine, not when a busy
event loop got round to reading it. Elsewhere it is the time of the read.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from urllib.parse import urlsplit

from ..rxtime import StampedSocket, client_socket

#: Largest status line + headers accepted.
MAX_HEAD = 64 * 1024
#: At most this much of an error body is kept for the message.
MAX_ERROR_BODY = 4096
#: Longest SSE event or NDJSON line, and largest whole body, accepted: a server that never ends
#: one would otherwise grow the client's memory until the deadline.
MAX_EVENT = 16 * 1024 * 1024
MAX_BODY = 64 * 1024 * 1024


class HTTPConnectError(ConnectionError):
    """The endpoint could not be reached (refused, unresolvable, TLS handshake failed)."""


class HTTPProtocolError(ConnectionError):
    """The server broke the protocol or the connection before the response was complete."""


class HTTPTimeout(TimeoutError):
    """The request did not complete before its deadline."""


class HTTPStatusError(Exception):
    """A complete response whose status is not 2xx."""

    def __init__(self, status_code: int, body: bytes) -> None:
        text = body[:200].decode("utf-8", "replace").strip()
        super().__init__(f"HTTP {status_code}" + (f": {text}" if text else ""))
        self.status_code = status_code
        self.body = body


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, host, port and the path prefix of a base URL."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``url`` (``http[s]://host[:port][/prefix]``) split up; user info and query are ignored."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def authority(self) -> str:
        """The Host header's value."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


#: At most this much parsing (ns) between two polls of the sockets.
SLICE_NS = 1_000_000
#: About this much of a loop turn (ns) goes to the requests' own steps (ending one, sending the
#: next: a few hundred us each); the rest wait for a later turn.
TURN_NS = 1_000_000


class _Slices:
    """Shares a busy loop's turns so that it still reads every socket often: a read gets the
    packets' own receive times only while the kernel has not merged them with later ones.

    Events read in a turn are parsed in slices of about ``SLICE_NS``, one per turn. Requests that
    :meth:`pace` between responses go on while the turn is younger than ``TURN_NS``, and wait
    for a later turn otherwise: a wave of 256 responses ending together would otherwise keep the
    loop from its sockets for tens of milliseconds while they end and send the next requests.
    """

    __slots__ = ("deadline", "loop", "marking", "passed", "queue", "scheduled", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: deque[_Connection] = deque()
        self.scheduled = False
        #: Until when (perf_counter_ns) the current turn has room for requests' steps.
        self.deadline = 0
        self.marking = False
        self.passed = 0  # requests that went on since the turn began
        self.waiters: deque[asyncio.Future[None]] = deque()

    def add(self, conn: _Connection) -> None:
        """Parse ``conn``'s events after those of the connections already waiting."""
        self.queue.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.run)

    def run(self) -> None:
        """One slice: connections in turn until the queue is empty or the slice is used up."""
        queue, clock = self.queue, time.perf_counter_ns
        until = clock() + SLICE_NS
        try:
            while queue:
                queue.popleft()._dispatch()
                if clock() > until:
                    break
        finally:
            if queue:
                self.loop.call_soon(self.run)
            else:
                self.scheduled = False

    async def pace(self) -> None:
        """Return on a loop turn with room left for this request's next steps."""
        waited = False
        while True:
            now = time.perf_counter_ns()
            if not self.marking:  # an idle loop: this turn starts now
                self.marking = True
                self.deadline = now + TURN_NS
                self.loop.call_soon(self._mark)
            if now <= self.deadline:
                self.passed += 1
                return
            waiter = self.loop.create_future()
            if waited:
                self.waiters.appendleft(waiter)  # woken but no room after all: keep its place
            else:
                self.waiters.append(waiter)
            await waiter
            waited = True

    def _mark(self) -> None:
        # Scheduled before the waiters' wake-ups, so it runs first in the next turn and dates it.
        self.deadline = time.perf_counter_ns() + TURN_NS
        waiters = self.waiters
        # About as many as went on in the last turn: waking all of a long queue only to have
        # most of them wait again cost a saturated loop ~7 % of its time.
        room, self.passed = self.passed + 1, 0
        if not waiters:
            self.marking = False
            return
        self.loop.call_soon(self._mark)
        while waiters and room:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time as its bytes arrive."""

    def __init__(self, sock: socket.socket, slices: _Slices) -> None:
        #: Where read times come from: the stamped socket, or the clock at ``data_received``.
        self._stamps = sock if isinstance(sock, StampedSocket) else None
        self._slices = slices
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.reused = False
        self._head = bytearray()
        self._raw = bytearray()  # chunked framing not yet decoded
        self._body = bytearray()  # decoded body not yet split into events
        self._events: deque[tuple[int, bytes]] = deque()
        #: When the bytes of the event being handled were read (perf_counter_ns).
        self.event_ns = 0
        self._arrival_ns = 0
        self._waiter: asyncio.Future[None] | None = None
        self._handler: Callable[[bytes], None] | None = None
        self._dispatch_pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._sep: bytes | None = None
        self.begin(None)

    # -- per request -----------------------------------------------------------------------
    def begin(self, sep: bytes | None) -> None:
        """Forget the previous response; split the next body on ``sep`` (None: keep it whole)."""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.got_bytes = False
        self.complete = False
        self.error: BaseException | None = None
        self.keep_alive = True
        self._chunked = False
        self._remaining = -1  # Content-Length left, or the current chunk's bytes left
        self._until_close = False
        self._head.clear()
        self._raw.clear()
        self._body.clear()
        self._events.clear()
        self._sep = sep
        self._handler = None

    def arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Fail the request with :class:`HTTPTimeout` at ``deadline`` (``loop.time()``)."""
        self._timer = loop.call_at(deadline, self._timed_out)

    def disarm(self) -> None:
        """Cancel the deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(HTTPTimeout("no complete response before the deadline"))
        self.abort()

    def abort(self) -> None:
        """Drop the connection now (a response cut short cannot be reused)."""
        self.open = False
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self._until_close and not self.complete:
            self._finish_body()  # a body delimited by the close: complete now
            if self._handler is not None:
                self._dispatch()
            else:
                self._wake()
        elif not self.complete:
            self._fail(
                HTTPProtocolError(f"connection closed before the response was complete ({exc or 'EOF'})")
            )
        self.disarm()

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def data_received(self, data: bytes) -> None:
        # Events are stamped here, with when their bytes came (or were read), not when the
        # consumer gets to them.
        stamps = self._stamps
        self._arrival_ns = time.perf_counter_ns() if stamps is None else stamps.rx_ns
        self.got_bytes = True
        if self.complete or self.error is not None:
            return  # bytes after a complete response: the connection is not reused (see release)
        if not self.status:
            head = self._head
            head += data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                if len(head) > MAX_HEAD:
                    self._fail(HTTPProtocolError(f"response head larger than {MAX_HEAD // 1024} KiB"))
                    self.abort()
                return
            try:
                self._parse_head(bytes(head[:end]))
            except (ValueError, UnicodeDecodeError) as exc:
                self._fail(HTTPProtocolError(f"malformed response head: {exc}"))
                self.abort()
                return
            data = bytes(head[end + 4 :])
            head.clear()
        if self._chunked:
            self._dechunk(data)
        elif self._until_close:
            self._body += data
        else:
            self._body += data
            self._remaining -= len(data)
            if self._remaining <= 0:
                self._finish_body()
        if not self.complete and self._sep is not None and self._body:
            self._split()
        if not self.complete and self.error is None:
            limit = MAX_BODY if self._sep is None else MAX_EVENT
            if len(self._body) > limit:
                what = "response body" if self._sep is None else "event (no separator yet)"
                self._fail(HTTPProtocolError(f"{what} longer than {limit // (1024 * 1024)} MiB"))
                self.abort()
                return
        if self._handler is not None:
            # Handled on a later loop turn, not here: the other connections' bytes read in this
            # turn get their time stamps before any of this turn's events is parsed.
            if not self._dispatch_pending:
                self._dispatch_pending = True
                self._slices.add(self)
        else:
            self._wake()

    # -- parsing ---------------------------------------------------------------------------
    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"status line {lines[0][:80]!r}")
        self.status = int(rest[:3])
        if not 200 <= self.status < 300:
            self._sep = None  # an error body is read whole, for its message
        headers = self.headers
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
            self._remaining = -1
        elif "content-length" in headers:
            self._remaining = int(headers["content-length"])
            if self._remaining == 0:
                self._finish_body()
        elif self.status in (204, 304) or 100 <= self.status < 200:
            self._finish_body()
        else:
            self._until_close = True
            self.keep_alive = False

    def _dechunk(self, data: bytes) -> None:
        raw = self._raw
        if raw:
            raw += data
            buf: bytes | bytearray = raw
        else:
            buf = data
        pos, size, body = 0, len(buf), self._body
        while pos < size:
            remaining = self._remaining
            if remaining == -1:  # a chunk-size line
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                try:
                    chunk = int(buf[pos:end], 16)
                except ValueError:  # extensions after ';', or not a size at all
                    chunk = -1
                if chunk < 0:
                    line = bytes(buf[pos:end]).split(b";", 1)[0].strip()
                    try:
                        chunk = int(line, 16)
                    except ValueError:
                        chunk = -1
                    if chunk < 0:
                        self._fail(HTTPProtocolError(f"bad chunk size {line[:20]!r}"))
                        self.abort()
                        return
                pos = end + 2
                stop = pos + chunk
                if chunk and stop + 2 <= size and buf.startswith(b"\r\n", stop):
                    body += buf[pos:stop]  # the usual case: the whole chunk and its CRLF are here
                    pos = stop + 2
                else:
                    self._remaining = chunk if chunk else -3
                continue
            if remaining > 0:  # inside a chunk's data
                take = min(remaining, size - pos)
                body += buf[pos : pos + take]
                pos += take
                self._remaining = remaining - take
                if self._remaining == 0:
                    self._remaining = -2  # its CRLF comes next
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            if remaining == -2:  # the CRLF after a chunk's data
                if end != pos:
                    self._fail(HTTPProtocolError("chunk data longer than its size"))
                    self.abort()
                    return
                pos = end + 2
                self._remaining = -1
                continue
            # remaining == -3: trailer lines, ended by an empty one
            if end == pos:
                self._finish_body()
                return
            pos = end + 2
        if pos >= size:
            raw.clear()
        else:
            rest = bytes(buf[pos:])
            raw.clear()
            raw += rest
            if len(raw) > MAX_HEAD:  # only a size, CRLF or trailer line waits here
                self._fail(HTTPProtocolError(f"chunk framing line longer than {MAX_HEAD // 1024} KiB"))
                self.abort()

    def _split(self) -> None:
        # One copy and a C split per read, not a find, a slice and a copy per event.
        body = self._body
        data = bytes(body)
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        parts = data.split(self._sep)
        rest = parts.pop()  # an event not yet ended (or b"")
        if parts:
            self._events.extend(zip(repeat(self._arrival_ns), filter(None, parts)))
        if len(rest) != len(body):
            body[:] = rest

    def _finish_body(self) -> None:
        if self._sep is not None:
            self._split()
            rest = bytes(self._body).strip()
            if rest:
                self._events.append((self._arrival_ns, rest))
            self._body.clear()
        self.complete = True
        self.disarm()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- consumer side ---------------------------------------------------------------------
    async def wait(self) -> None:
        """Until more of the response (or its end, or an error) is available."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def deliver(self, handler: Callable[[bytes], None]) -> None:
        """Push mode: call ``handler`` with each event (``event_ns`` set first) on the loop turn
        after its bytes were read, without waking the request's task; the events already read go
        now. Waiting for the end is then one wake-up per response instead of one per event. A
        handler's exception fails the response and drops the connection."""
        self._handler = handler
        self._dispatch()

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        handler, events = self._handler, self._events
        if handler is None:  # the response ended (or failed) before this turn
            return
        while events:
            self.event_ns, event = events.popleft()
            try:
                handler(event)
            except Exception as exc:
                self._handler = None
                events.clear()
                if self.error is None:
                    self.error = exc
                self.abort()
                break
        if self.complete or self.error is not None:
            self._wake()

    async def finished(self) -> None:
        """Until the response is complete; raises its error (push mode)."""
        while not self.complete or self._events:
            if self.error is not None:
                raise self.error
            await self.wait()
        if self.error is not None:
            raise self.error

    def event_time(self) -> int:
        """``event_ns``, as a clock for the recorder and the observation."""
        return self.event_ns

    def take_body(self) -> bytes:
        """The whole body of a complete response read without a separator."""
        body = bytes(self._body)
        self._body.clear()
        return body


class Pool:
    """Keep-alive connections to one endpoint; one request per connection at a time."""

    def __init__(self, endpoint: Endpoint, timeout: float, extra_headers: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if endpoint.scheme == "https" else None
        )
        head = [f"Host: {endpoint.authority}", "User-Agent: otelbench", "Content-Type: application/json"]
        head += [f"{name}: {value}" for name, value in extra_headers.items()]
        self._head = ("\r\n".join(head) + "\r\n").encode("latin-1")
        self._closed = False
        self._slices: _Slices | None = None

    def _slices_of(self, loop: asyncio.AbstractEventLoop) -> _Slices:
        # One parsing queue for the pool's connections, made on the loop that uses them.
        if self._slices is None or self._slices.loop is not loop:
            self._slices = _Slices(loop)
        return self._slices

    async def pace(self) -> None:
        """Return on a loop turn with room for a request's own steps (see :class:`_Slices`)."""
        await self._slices_of(asyncio.get_running_loop()).pace()

    async def _connect(self) -> _Connection:
        try:
            return await asyncio.wait_for(self._open(), timeout=min(self.timeout, 60.0))
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            raise HTTPConnectError(
                f"cannot connect to {self.endpoint.host}:{self.endpoint.port}: {exc or type(exc).__name__}"
            ) from exc

    async def _open(self) -> _Connection:
        # The socket is made here, not by create_connection, so that its reads can be stamped.
        loop = asyncio.get_running_loop()
        host, port = self.endpoint.host, self.endpoint.port
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in infos:
            sock = client_socket(family, kind, proto)
            try:
                await loop.sock_connect(sock, address)
                _, conn = await loop.create_connection(
                    functools.partial(_Connection, sock, self._slices_of(loop)),
                    sock=sock,
                    ssl=self._ssl,
                    server_hostname=host if self._ssl is not None else None,
                )
            except OSError as exc:
                sock.close()
                if isinstance(exc, ssl.SSLError):
                    raise  # the server answered: another of its addresses would answer the same
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return conn
        raise error

    async def post(self, path: str, body: bytes, *, accept: str, sep: bytes | None) -> _Connection:
        """Send ``body`` to ``path``; return the connection once the response head has arrived.

        The caller reads the events (or the body) and must then :meth:`release` the connection.
        A reused connection that the server had closed meanwhile is replaced once, transparently.
        """
        request = b"".join(
            (
                f"POST {self.endpoint.prefix}{path} HTTP/1.1\r\n".encode("latin-1"),
                self._head,
                f"Accept: {accept}\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1"),
                body,
            )
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        for attempt in (0, 1):
            conn = self._take()
            if conn is None:
                conn = await self._connect()
            conn.begin(sep)
            conn.arm(loop, deadline)
            assert conn.transport is not None
            conn.transport.write(request)
            try:
                while not conn.status:
                    if conn.error is not None:
                        raise conn.error
                    await conn.wait()
            except HTTPProtocolError:
                conn.disarm()
                if attempt == 0 and conn.reused and not conn.got_bytes:
                    continue  # the server closed an idle connection as we reused it
                raise
            except BaseException:
                conn.disarm()
                conn.abort()
                raise
            return conn
        raise AssertionError("unreachable")

    async def prepare(self, n: int) -> None:
        """Open connections until ``n`` are idle; failures are left to the requests to report."""
        missing = n - sum(1 for conn in self._idle if conn.open)
        if missing <= 0:
            return
        opened = await asyncio.gather(*(self._connect() for _ in range(missing)), return_exceptions=True)
        for conn in opened:
            if isinstance(conn, _Connection):
                self._idle.append(conn)

    def _take(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.open:
                conn.reused = True
                return conn
        return None

    def release(self, conn: _Connection) -> None:
        """Give ``conn`` back: kept if its response was read to the end, dropped otherwise."""
        conn.disarm()
        if conn.complete and conn.keep_alive and conn.open and not self._closed and conn.error is None:
            self._idle.append(conn)
        else:
            conn.abort()

    def close(self) -> None:
        """Close every idle connection (busy ones are closed by their release)."""
        self._closed = True
        for conn in self._idle:
            conn.abort()
        self._idle.clear()


async def read_all(conn: _Connection, limit: int | None = None) -> bytes:
    """The rest of the body of a response read without a separator."""
    while not conn.complete:
        if conn.error is not None:
            raise conn.error
        if limit is not None and len(conn._body) >= limit:
            break
        await conn.wait()
    return conn.take_body()


__all__ = [
    "Endpoint",
    "HTTPConnectError",
    "HTTPProtocolError",
    "HTTPStatusError",
    "HTTPTimeout",
    "Pool",
    "read_all",
]
