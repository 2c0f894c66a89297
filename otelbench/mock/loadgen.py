"""A lean HTTP/1.1 load generator for measuring the mock's capacity (`mock-capacity` target).

Usage (a child process; the parent passes one JSON spec, as the argument or on stdin, and reads
one JSON result from stdout):

    python -m otelbench.mock.loadgen "$(cat spec.json)" > result.json

A Python client built on an SDK (or even httpx) spends far more CPU per request than the mock,
so it would measure itself. This one does almost nothing per request: the request bytes are
encoded once, `connections` keep-alive sockets each keep `depth` requests in flight (more than
one is HTTP/1.1 pipelining; the mock answers a connection's requests strictly in order), one raw
`epoll` loop drives them all, and responses are never parsed, only counted by searching the
received bytes for fixed markers (C-speed `bytes.count`):

* `response_marker`, once per response: `HTTP/1.1 ` (the status line; the mock writes a whole
  non-streamed response with one write, so its body arrives with it) or `\r\n0\r\n\r\n` (the
  terminating chunk of a streamed response);
* `ok_marker`, once per successful response (`HTTP/1.1 200 `);
* `chunk_marker`, once per content chunk of a stream (e.g. `{"content":"` for OpenAI).

Bounds: new requests stop at `warmup_s + duration_s` after `start_at` or after `max_requests`;
the in-flight ones are then drained for at most `drain_s`; `deadline_s` caps the whole run.

Time windows use `time.monotonic()`, which on Linux is the same clock as `perf_counter_ns()` in
any process, so the parent can line the window up with the server's ground-truth records and
CPU samples.

Spec fields: host, port, request (latin-1 string), connections, depth, stream (bool),
response_marker, ok_marker, chunk_marker (stream only), start_at (monotonic seconds; 0 = now),
warmup_s, duration_s, drain_s, deadline_s, max_requests.
Result fields: see `LoadResult`.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

_RECV = 1 << 18


@dataclass
class LoadSpec:
    """What to send, how hard, and for how long."""

    host: str
    port: int
    request: bytes
    connections: int = 32
    depth: int = 4
    stream: bool = False
    #: Counted once per response (see the module docstring).
    response_marker: bytes = b"HTTP/1.1 "
    #: Counted once per successful response (its status line).
    ok_marker: bytes = b"HTTP/1.1 200 "
    #: Counted once per content chunk of a stream.
    chunk_marker: bytes = b""
    start_at: float = 0.0
    warmup_s: float = 1.0
    duration_s: float = 3.0
    drain_s: float = 10.0
    deadline_s: float = 60.0
    max_requests: int = 10_000_000

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (bytes as latin-1 strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, bytes):
                out[key] = value.decode("latin-1")
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadSpec:
        """Inverse of `to_json`."""
        fields = dict(data)
        for key in ("request", "response_marker", "ok_marker", "chunk_marker"):
            if key in fields:
                fields[key] = str(fields[key]).encode("latin-1")
        return cls(**fields)


@dataclass
class LoadResult:
    """Counts for the whole run and for the measurement window."""

    #: Requests written / responses completely received / of which successful, whole run.
    sent: int = 0
    received: int = 0
    ok: int = 0
    chunks: int = 0
    #: The same inside the measurement window (responses completed within it).
    window_received: int = 0
    window_ok: int = 0
    window_chunks: int = 0
    #: Actual window (monotonic seconds) and this process's CPU seconds spent inside it.
    window_start: float = 0.0
    window_end: float = 0.0
    window_cpu_s: float = 0.0
    #: CPU seconds of the whole run.
    cpu_s: float = 0.0
    #: Connections the server closed or reset, and requests still unanswered at the end.
    connection_errors: int = 0
    unanswered: int = 0
    bytes_received: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


class _Conn:
    __slots__ = ("in_flight", "out", "sock", "tail", "want_write")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.in_flight = 0
        self.out = b""
        self.tail = b""
        self.want_write = False


class _Poller:
    """`select.epoll` (Linux) or `select.poll`: no per-event objects, unlike `selectors`."""

    def __init__(self) -> None:
        self._epoll = hasattr(select, "epoll")
        self._impl: Any = select.epoll() if self._epoll else select.poll()
        self.read = select.EPOLLIN if self._epoll else select.POLLIN
        self.write = select.EPOLLOUT if self._epoll else select.POLLOUT
        self.hangup = (
            (select.EPOLLHUP | select.EPOLLERR) if self._epoll else (select.POLLHUP | select.POLLERR)
        )

    def register(self, fd: int, mask: int) -> None:
        self._impl.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        self._impl.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        self._impl.unregister(fd)

    def poll(self, timeout_s: float) -> list[tuple[int, int]]:
        events: list[tuple[int, int]] = self._impl.poll(timeout_s if self._epoll else timeout_s * 1000)
        return events

    def close(self) -> None:
        if self._epoll:
            self._impl.close()


def run(spec: LoadSpec) -> LoadResult:
    """Drive the load described by `spec` and count what comes back."""
    result = LoadResult()
    cpu0 = time.process_time()
    start = spec.start_at or time.monotonic()
    window_start = start + spec.warmup_s
    window_end = window_start + spec.duration_s
    hard_stop = time.monotonic() + spec.deadline_s
    poller = _Poller()
    readable, writable = poller.read, poller.write
    conns: dict[int, _Conn] = {}
    for _ in range(spec.connections):
        sock = socket.create_connection((spec.host, spec.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conns[sock.fileno()] = _Conn(sock)
        poller.register(sock.fileno(), readable)
    request = spec.request
    resp_marker, ok_marker, chunk_marker = spec.response_marker, spec.ok_marker, spec.chunk_marker
    # Matches must include a byte of the new data (one wholly inside the kept tail was counted).
    resp_back, ok_back, chunk_back = len(resp_marker) - 1, len(ok_marker) - 1, max(0, len(chunk_marker) - 1)
    keep = max(resp_back, ok_back, chunk_back, 1)
    stream = spec.stream
    depth = max(1, spec.depth)
    issued = 0
    max_requests = spec.max_requests
    while time.monotonic() < start:
        time.sleep(min(0.01, start - time.monotonic()))

    def send(conn: _Conn, k: int) -> None:
        nonlocal issued
        k = min(k, max_requests - issued)
        if k <= 0:
            return
        issued += k
        conn.in_flight += k
        data = conn.out + request * k
        try:
            n = conn.sock.send(data)
        except BlockingIOError:
            n = 0
        conn.out = data[n:]
        if conn.out and not conn.want_write:
            conn.want_write = True
            poller.modify(conn.sock.fileno(), readable | writable)

    for conn in conns.values():
        send(conn, depth)
    phase = 0  # 0 warmup, 1 window, 2 draining
    base = (0, 0, 0)
    window_cpu0 = 0.0
    drain_until = 0.0
    received = ok = chunks = 0

    def close_window(now: float) -> None:
        result.window_end = now
        result.window_cpu_s = time.process_time() - window_cpu0
        result.window_received = received - base[0]
        result.window_ok = ok - base[1]
        result.window_chunks = chunks - base[2]

    live = dict(conns)
    while live:
        now = time.monotonic()
        if phase == 0 and now >= window_start:
            phase = 1
            result.window_start = now
            window_cpu0 = time.process_time()
            base = (received, ok, chunks)
        if phase == 1 and now >= window_end:
            phase = 2
            close_window(now)
            drain_until = now + spec.drain_s
        if phase == 2 and (now >= drain_until or all(c.in_flight <= 0 for c in live.values())):
            break
        if now >= hard_stop:
            break
        for fd, mask in poller.poll(0.01):
            polled = live.get(fd)
            if polled is None:
                continue
            conn = polled
            if mask & writable and conn.out:
                try:
                    n = conn.sock.send(conn.out)
                except BlockingIOError:
                    n = 0
                conn.out = conn.out[n:]
                if not conn.out:
                    conn.want_write = False
                    poller.modify(fd, readable)
            if not mask & (readable | poller.hangup):
                continue
            try:
                data = conn.sock.recv(_RECV)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                result.connection_errors += 1
                del live[fd]
                poller.unregister(fd)
                conn.sock.close()
                result.unanswered += conn.in_flight
                conn.in_flight = 0
                continue
            result.bytes_received += len(data)
            tail = conn.tail
            if tail:
                buf = tail + data
                t = len(tail)
            else:
                buf, t = data, 0
            conn.tail = buf[-keep:]
            done = buf.count(resp_marker, max(0, t - resp_back))
            ok += buf.count(ok_marker, max(0, t - ok_back))
            if stream:
                chunks += buf.count(chunk_marker, max(0, t - chunk_back))
            if done:
                received += done
                conn.in_flight -= done
                if phase < 2:
                    send(conn, depth - conn.in_flight if stream else done)
    if phase == 1:  # the hard deadline cut the window short
        close_window(time.monotonic())
    for conn in conns.values():
        result.unanswered += conn.in_flight
        if conn.sock.fileno() >= 0:
            conn.sock.close()
    poller.close()
    result.sent = issued
    result.received = received
    result.ok = ok
    result.chunks = chunks
    result.cpu_s = time.process_time() - cpu0
    return result


def main() -> int:
    """Read a spec (argument or stdin), run it, print the result as JSON."""
    spec = LoadSpec.from_json(json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()))
    print(json.dumps(run(spec).to_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
