"""The mock under abuse: slow, oversized and malformed clients get errors; nobody else waits.

Slowloris clients get 408 once their request is not complete ``request_timeout`` after its first
byte; an endless chunked body gets 413 as soon as it passes ``max_body_bytes``; endless headers
get 431 past 64 KiB.

tests/mock/test_server.py checks each error answer on its own (400 for bad JSON, 413 for an
oversized body, ...). Here the abusers run all at once, from raw sockets, while a well-behaved
OpenAI client keeps calling: its latency must stay that of an idle server.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile

from .conftest import bounded

PROFILE = ModelProfile(ttft=Dist.fixed(0.005), itl=Dist.fixed(0.0), output_tokens=Dist.fixed(4))
ABUSE_S = 2.0
READ_TIMEOUT_S = 1.0  # shorter than the abuse, so the slowloris clients are timed out in it
CHAT = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'


@pytest.fixture
def server() -> Iterator[MockServer]:
    # The server's own process: the abusers and the good client (this process) can't slow its
    # loop through the GIL, so a stall measured here is the server's.
    config = MockConfig(
        seed=3, default_profile=PROFILE, max_body_bytes=1 << 20, request_timeout=READ_TIMEOUT_S
    )
    with MockServer(config, isolated=True) as s:
        yield s


@dataclass
class Outcome:
    """What an abusive connection got back (the first line of the answer, or how it ended)."""

    answers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            self.answers.append(what)


def _connect(server: MockServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=ABUSE_S + 5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _first_line(sock: socket.socket) -> str:
    try:
        data = sock.recv(200)
    except TimeoutError:
        return "no answer"
    except OSError as exc:
        return type(exc).__name__
    return data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed"


def _send_quietly(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def slowloris(server: MockServer, out: Outcome, stop: Callable[[], bool]) -> None:
    """A request whose headers trickle in, one byte every 50 ms, for the whole abuse period."""
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        while stop() and _send_quietly(sock, b"x"):
            time.sleep(0.05)
        sock.settimeout(0.5)
        out.add("slowloris: " + _first_line(sock))


def oversized_body(server: MockServer, out: Outcome, stop: Callable[[], bool]) -> None:
    """A 100 MB body announced and pushed as fast as the server takes it."""
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 104857600\r\n\r\n")
        chunk = b"x" * 65536
        while stop() and _send_quietly(sock, chunk):
            pass
        out.add("oversized body: " + _first_line(sock))


def oversized_chunked_body(server: MockServer, out: Outcome, stop: Callable[[], bool]) -> None:
    """An endless chunked body (no length announced)."""
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
        while stop() and _send_quietly(sock, chunk):
            pass
        out.add("oversized chunked body: " + _first_line(sock))


def huge_headers(server: MockServer, out: Outcome, stop: Callable[[], bool]) -> None:
    """Header lines without end (100 KB and counting)."""
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        line = b"x-filler: " + b"y" * 1000 + b"\r\n"
        for _ in range(100):
            if not (stop() and _send_quietly(sock, line)):
                break
        out.add("huge headers: " + _first_line(sock))


def malformed(server: MockServer, out: Outcome, stop: Callable[[], bool]) -> None:
    """Garbage instead of HTTP, then a request with a broken header line."""
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    ):
        with _connect(server) as sock:
            sock.sendall(garbage)
            out.add("malformed: " + _first_line(sock))


def non_reader(server: MockServer, out: Outcome, stop: Callable[[], bool]) -> None:
    """Asks for a long stream and never reads it (the server's send buffer fills up)."""
    with _connect(server) as sock:
        body = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"x-mock-output-tokens: 200000\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
        )
        while stop():
            time.sleep(0.05)
        out.add("non-reader: done")


ABUSERS = {
    slowloris: 20,
    oversized_body: 3,
    oversized_chunked_body: 3,
    huge_headers: 3,
    malformed: 5,
    non_reader: 5,
}


def _good_client_latencies(server: MockServer, calls: int) -> list[float]:
    latencies = []
    with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0, timeout=10) as c:
        for _ in range(calls):
            t0 = time.perf_counter()
            reply = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            latencies.append(time.perf_counter() - t0)
            assert reply.choices[0].message.content
            time.sleep(0.02)
    return latencies


def test_abusive_clients_get_errors_and_never_stall_a_good_one(server: MockServer) -> None:
    baseline = _good_client_latencies(server, 20)
    out = Outcome()
    in_abuse = bounded(ABUSE_S)
    threads = [
        threading.Thread(target=abuser, args=(server, out, in_abuse), daemon=True)
        for abuser, count in ABUSERS.items()
        for _ in range(count)
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)  # let every abuser get going
    during = _good_client_latencies(server, 20)
    for t in threads:
        t.join(timeout=ABUSE_S + 10)
    assert not [t for t in threads if t.is_alive()]
    answers = sorted(out.answers)
    print(
        f"\ngood client p50/max: idle {statistics.median(baseline) * 1e3:.1f}/{max(baseline) * 1e3:.1f} ms, "
        f"under abuse {statistics.median(during) * 1e3:.1f}/{max(during) * 1e3:.1f} ms\n" + "\n".join(answers)
    )
    # Nobody else waits: the good client's latency stays within 50 ms of the idle server's.
    assert statistics.median(during) <= statistics.median(baseline) + 0.050
    assert max(during) <= max(baseline) + 0.250
    assert answers.count("malformed: HTTP/1.1 400 Bad Request") == 2 * ABUSERS[malformed], answers
    assert (
        answers.count("oversized body: HTTP/1.1 413 Request Entity Too Large") == ABUSERS[oversized_body]
    ), answers
    assert (
        answers.count("oversized chunked body: HTTP/1.1 413 Request Entity Too Large")
        == ABUSERS[oversized_chunked_body]
    ), answers
    assert answers.count("slowloris: HTTP/1.1 408 Request Timeout") == ABUSERS[slowloris], answers
    assert (
        answers.count("huge headers: HTTP/1.1 431 Request Header Fields Too Large") == ABUSERS[huge_headers]
    )


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (from the kernel's table)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_bound_to_loopback_by_default() -> None:
    assert MockConfig().host == "127.0.0.1"
    with MockServer(MockConfig()) as s:
        assert s.url.startswith("http://127.0.0.1:")
        # The kernel's own view: listening on loopback only, not on 0.0.0.0 or another address.
        assert _listening_addresses(s.port) == {"127.0.0.1"}
