"""Fixtures shared by every test area: one mock server per session, a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile, RequestRecord

# Latencies every instrumentation test can rely on (per-request headers override them).
MOCK_TTFT_S = 0.030
MOCK_ITL_S = 0.002
MOCK_OUTPUT_TOKENS = 8
#: Timed streams a timing test makes before it gives up on finding an undisturbed one.
TIMING_ATTEMPTS = 8


def undisturbed(record: RequestRecord, seen_ns: int, delay_s: float) -> bool:
    """Whether a timed stream ran undisturbed, by the mock's ground truth (same monotonic clock).

    The mock wrote the first content within 1 ms of its configured delay and the app had it within
    1.5 ms of that write (an SDK parses the first events in ~1 ms on a slow VM). On a loaded 2-core
    machine either process can wake late, and the client's own full garbage collection (~4 ms with
    every SDK imported) can fall between the write and the read: neither says anything about the
    clock under test.
    """
    if record.first_byte_ns is None:
        return False
    served_s = (record.first_byte_ns - record.arrival_ns) / 1e9
    delivered_s = (seen_ns - record.first_byte_ns) / 1e9
    return abs(served_s - delay_s) < 0.001 and delivered_s < 0.0015


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
