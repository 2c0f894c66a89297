"""Fixtures and timing helpers shared by every test area: one mock server per session, a clean
environment, and the rule for a timed stream the machine did not disturb."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile, RequestRecord

# Latencies every instrumentation test can rely on (per-request headers override them).
MOCK_TTFT_S = 0.030
MOCK_ITL_S = 0.002
MOCK_OUTPUT_TOKENS = 8
#: Timed streams a timing test makes before it gives up on finding an undisturbed one.
TIMING_ATTEMPTS = 8


@dataclass(frozen=True)
class TimedStream:
    """One timed stream: the instrumentation's TTFT, the app's clock and the mock's ground truth
    (all on the same monotonic clock)."""

    ttft: float
    #: ``perf_counter_ns`` at the call, and when the app saw the first content.
    called_ns: int
    seen_ns: int
    record: RequestRecord
    attributes: Mapping[str, Any]

    @property
    def first_byte_ns(self) -> int:
        """When the mock wrote the first content."""
        assert self.record.first_byte_ns is not None
        return self.record.first_byte_ns

    @property
    def sdk_send_s(self) -> float:
        """From the call to the request's arrival: the SDK's request building and sending."""
        return (self.record.arrival_ns - self.called_ns) / 1e9

    @property
    def served_s(self) -> float:
        """From the request's arrival to the mock's first content write."""
        return (self.first_byte_ns - self.record.arrival_ns) / 1e9

    @property
    def delivered_s(self) -> float:
        """From the mock's first content write to the app seeing it."""
        return (self.seen_ns - self.first_byte_ns) / 1e9

    @property
    def figures(self) -> str:
        """The timings, for assertion messages."""
        return (
            f"ttft={self.ttft:.4f} served={self.served_s:.4f} sdk_send={self.sdk_send_s:.4f} "
            f"delivered={self.delivered_s:.4f}"
        )

    def assert_bounds(self, started_ns: int | None = None) -> None:
        """TTFT ends at the first content, whatever the load: not before the mock wrote it (counted
        from ``started_ns``, when the SDK starts the span later than the call), not after the app
        saw it."""
        start = self.called_ns if started_ns is None else started_ns
        assert self.ttft >= (self.first_byte_ns - start) / 1e9 - 0.0005, self.figures
        assert self.ttft <= (self.seen_ns - self.called_ns) / 1e9, self.figures

    def undisturbed(self, delay_s: float) -> bool:
        """Whether neither side was held up: the mock wrote the first content within 1 ms of its
        configured delay and the app had it within 1.5 ms of that write (an SDK parses the first
        events in ~1 ms on a slow VM).

        On a loaded 2-core machine either process can wake late, and the client's own full garbage
        collection (~4 ms with every SDK imported) can fall between the write and the read: neither
        says anything about the clock under test.
        """
        return abs(self.served_s - delay_s) < 0.001 and self.delivered_s < 0.0015


def first_undisturbed(measure: Callable[[], TimedStream], delay_s: float) -> list[TimedStream]:
    """Timed streams up to the first undisturbed one (at most ``TIMING_ATTEMPTS``), that one last."""
    streams: list[TimedStream] = []
    for _ in range(TIMING_ATTEMPTS):
        streams.append(measure())
        if streams[-1].undisturbed(delay_s):
            return streams
    pytest.fail(f"no undisturbed measurement: {[s.figures for s in streams]}")


def console_spans(stdout: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed among the app's own output (each an indented JSON
    object whose first line is a bare '{')."""
    decoder = json.JSONDecoder()
    spans = []
    lines = stdout.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip("\n") == "{":
            span, _ = decoder.raw_decode("".join(lines[i:]))
            spans.append(span)
    return spans


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    """One mock provider server on 127.0.0.1 for the whole test session."""
    profile = ModelProfile(
        ttft=Dist.fixed(MOCK_TTFT_S), itl=Dist.fixed(MOCK_ITL_S), output_tokens=Dist.fixed(MOCK_OUTPUT_TOKENS)
    )
    with MockServer(MockConfig(seed=7, default_profile=profile)) as server:
        yield server


@pytest.fixture(scope="session")
def isolated_mock_server() -> Iterator[MockServer]:
    """The same mock in a child process, for timing tests: no GIL shared with the client."""
    profile = ModelProfile(
        ttft=Dist.fixed(MOCK_TTFT_S), itl=Dist.fixed(MOCK_ITL_S), output_tokens=Dist.fixed(MOCK_OUTPUT_TOKENS)
    )
    with MockServer(MockConfig(seed=7, default_profile=profile), isolated=True) as server:
        yield server


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
