"""When bytes reached this machine: the kernel's receive time of socket reads.

A busy event loop reads a socket some time after its bytes arrived. Timing from the read puts
that lag into every latency measured at either end: the load generator's TTFT, and the mock's
own view of when a request arrived. On 64-bit Linux a TCP socket can hand out, with each read,
the receive time of the last packet it returns (``SO_TIMESTAMPNS``); the sockets made here do
that, and keep it on the ``perf_counter_ns`` clock the rest of otelbench uses. Elsewhere, or if
the kernel refuses the option, the sockets are plain ones and callers use the time of the read.

A reader that falls behind by more than the gap between two packets still loses their times: TCP
merges packets waiting in a receive queue and keeps the newest time (even a one-byte peek gets
it), so bytes read together share the time of the latest packet among them. That is never later
than the read.

asyncio's selector transports read through ``recv`` (plain protocols) and ``recv_into`` (TLS),
so a protocol's ``data_received`` runs right after the stamped read that produced its bytes.
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import threading
import time
from typing import Any

#: 64-bit Linux ABIs where ``SO_TIMESTAMPNS`` is 35 and ``struct timespec`` is two 64-bit fields.
_ABIS = ("x86_64", "amd64", "aarch64", "arm64")
#: ``SO_TIMESTAMPNS`` (the control message's type is the same number), or None: not supported here.
SO_TIMESTAMPNS: int | None = (
    getattr(socket, "SO_TIMESTAMPNS", 35)
    if sys.platform == "linux" and struct.calcsize("l") == 8 and platform.machine().lower() in _ABIS
    else None
)
TIMESPEC = struct.Struct("qq")
#: Room for one timestamp control message.
_ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
#: A stamp further back than this, or in the future, means the wall clock was stepped.
_MAX_LAG_NS = 10 * 1_000_000_000
_NS = 1_000_000_000

_last = threading.local()


def received_at(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time in ``ancillary``, on the ``perf_counter_ns`` clock (now if none)."""
    now = time.perf_counter_ns()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec: int
            nsec: int
            sec, nsec = TIMESPEC.unpack_from(data)
            # The stamp is wall-clock time: how long ago it was, taken off the monotonic now.
            lag = time.time_ns() - (sec * _NS + nsec)
            if 0 <= lag < _MAX_LAG_NS:
                return now - lag
    return now


class StampedSocket(socket.socket):
    """A TCP socket whose reads keep the kernel's receive time of their bytes in ``rx_ns``.

    Each read also leaves that time for :func:`last_read_ns` in the reading thread, for protocols
    that cannot reach the socket asyncio made for them (a server's accepted connections).
    """

    __slots__ = ("rx_ns",)

    def __init__(self, family: int, kind: int, proto: int, fileno: int | None = None) -> None:
        super().__init__(family, kind, proto, fileno)
        self.rx_ns = 0
        assert SO_TIMESTAMPNS is not None
        try:
            self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            # Leave a given descriptor open for the caller's plain socket; close our own.
            if fileno is not None:
                self.detach()
            else:
                self.close()
            raise

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancillary, _, _ = self.recvmsg(bufsize, _ANCILLARY, flags)
        self.rx_ns = _last.ns = received_at(ancillary)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        n, ancillary, _, _ = self.recvmsg_into((view[:nbytes] if nbytes else view,), _ANCILLARY, flags)
        self.rx_ns = _last.ns = received_at(ancillary)
        return n


class StampingListener(socket.socket):
    """A listening socket whose accepted connections are :class:`StampedSocket`."""

    __slots__ = ()

    def accept(self) -> tuple[socket.socket, Any]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        try:
            conn: socket.socket = StampedSocket(self.family, self.type, self.proto, fileno=fd)
        except OSError:
            conn = socket.socket(self.family, self.type, self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            conn.setblocking(True)  # as socket.accept: the listener's timeout is not inherited
        return conn, address


def _stampable(family: int) -> bool:
    return SO_TIMESTAMPNS is not None and family in (socket.AF_INET, socket.AF_INET6)


def client_socket(family: int, kind: int, proto: int) -> socket.socket:
    """A non-blocking socket that stamps its reads where the platform allows, a plain one otherwise."""
    sock: socket.socket | None = None
    if _stampable(family):
        try:
            sock = StampedSocket(family, kind, proto)
        except OSError:
            sock = None  # the kernel refused the option
    if sock is None:
        sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    return sock


def listening_socket(family: int, kind: int, proto: int) -> socket.socket:
    """A socket to bind and listen on whose connections stamp their reads where the platform allows."""
    if _stampable(family):
        sock = StampingListener(family, kind, proto)
        try:
            # Set here too: the kernel then stamps what arrives before accept(), and the
            # connections inherit the option.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # type: ignore[arg-type]
        except OSError:
            sock.close()
        else:
            return sock
    return socket.socket(family, kind, proto)


def stamps_reads(sock: Any) -> bool:
    """Whether ``sock`` (a socket or asyncio's ``TransportSocket``) has its reads stamped."""
    if SO_TIMESTAMPNS is None:
        return False
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS))
    except (OSError, AttributeError):
        return False


def last_read_ns() -> int | None:
    """The receive time of the latest stamped read in this thread, or None if there was none."""
    ns: int | None = getattr(_last, "ns", None)
    return ns


__all__ = [
    "SO_TIMESTAMPNS",
    "StampedSocket",
    "StampingListener",
    "client_socket",
    "last_read_ns",
    "listening_socket",
    "received_at",
    "stamps_reads",
]
