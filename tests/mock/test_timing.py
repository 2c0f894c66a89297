"""Latency fidelity seen by a bare client: TTFT and inter-chunk gaps as configured, ground truth agreeing.

The SDK tests (test_openai/test_anthropic/test_ollama) check the same through each SDK, whose own
parsing adds ~0.5-1 ms per chunk; here a raw socket measures the mock itself at concurrency 1:
from the request's last byte sent to the first content chunk received, and between chunks.
"""

from __future__ import annotations

import itertools
import json
import socket
import statistics
import time

import pytest

from otelbench.mock import MockServer

from .conftest import hdrs, record_for, within_attempts

TTFT_MS, ITL_MS, TOKENS = 20.0, 2.0, 12
_END = b"\r\n0\r\n\r\n"

# protocol -> (path, body, extra headers, marker occurring once per content chunk, request-id header)
CASES = {
    "openai": (
        "/v1/chat/completions",
        {"model": "gpt-raw-timing", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        {},
        b'{"content":"',
        "x-request-id",
    ),
    "anthropic": (
        "/v1/messages",
        {
            "model": "claude-raw-timing",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
        {"anthropic-version": "2023-06-01"},
        b'"type":"text_delta"',
        "request-id",
    ),
    "ollama": (
        "/api/chat",
        {"model": "llama-raw-timing", "messages": [{"role": "user", "content": "hi"}]},
        {},
        b'"done":false}',
        "x-request-id",
    ),
}


def _request(path: str, body: dict[str, object], headers: dict[str, str]) -> bytes:
    data = json.dumps(body).encode()
    all_headers = {
        "host": "127.0.0.1",
        "content-type": "application/json",
        "content-length": str(len(data)),
        **hdrs(ttft_ms=TTFT_MS, itl_ms=ITL_MS, output_tokens=TOKENS),
        **headers,
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
    return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + data


def _one_stream(sock: socket.socket, request: bytes, marker: bytes) -> tuple[int, list[int], bytes]:
    """Send one request; return (send time, arrival time of each content chunk, response bytes)."""
    times: list[int] = []
    data = b""
    sent = time.perf_counter_ns()
    sock.sendall(request)
    while not data.endswith(_END):
        piece = sock.recv(65536)
        now = time.perf_counter_ns()
        assert piece, "connection closed mid-response"
        # Markers completed by this piece (one that straddles the previous piece counts here).
        tail = data[-(len(marker) - 1) :]
        times.extend([now] * (tail + piece).count(marker))
        data += piece
    return sent, times, data


@pytest.mark.parametrize("protocol", sorted(CASES))
def test_bare_client_sees_configured_ttft_and_gaps(timing_mock: MockServer, protocol: str) -> None:
    path, body, headers, marker, id_header = CASES[protocol]
    request = _request(path, body, headers)

    def check() -> None:
        client_ttft, server_ttft, gaps, agreement = [], [], [], []
        with socket.create_connection(("127.0.0.1", timing_mock.port), timeout=5) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(10):
                sent, times, data = _one_stream(sock, request, marker)
                assert len(times) == TOKENS, data[-300:]
                head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
                request_id = head.split(f"\r\n{id_header}: ", 1)[1].split("\r\n", 1)[0]
                record = record_for(timing_mock, request_id)
                assert record.first_byte_ns is not None and record.chunks == TOKENS
                client_ttft.append((times[0] - sent) / 1e6)
                server_ttft.append((record.first_byte_ns - record.arrival_ns) / 1e6)
                # The client's TTFT also spans the request's and the chunk's trip over loopback.
                agreement.append((times[0] - sent) / 1e6 - server_ttft[-1])
                gaps.extend((b - a) / 1e6 for a, b in itertools.pairwise(times))
        assert abs(statistics.median(client_ttft) - TTFT_MS) < 1.0, client_ttft
        assert abs(statistics.median(gaps) - ITL_MS) < 0.5, gaps
        # Ground truth agrees with the client: the same TTFT within 1 ms, and on plan itself.
        assert 0 <= statistics.median(agreement) < 1.0, agreement
        assert abs(statistics.median(server_ttft) - TTFT_MS) < 0.5, server_ttft

    within_attempts(check)
