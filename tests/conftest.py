"""Fixtures shared by every test area: one mock server per session, a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile

# Latencies every instrumentation test can rely on (per-request headers override them).
MOCK_TTFT_S = 0.030
MOCK_ITL_S = 0.002
MOCK_OUTPUT_TOKENS = 8


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
