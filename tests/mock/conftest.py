"""A mock server of our own for the mock's tests (other areas share the root `mock_server`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile, RequestRecord

# Small defaults keep the suite fast; timing tests set their latencies per request.
TTFT_S = 0.004
ITL_S = 0.001
OUTPUT_TOKENS = 6


@pytest.fixture(scope="session")
def mock() -> Iterator[MockServer]:
    """One mock server for all tests under tests/mock."""
    profile = ModelProfile(
        ttft=Dist.fixed(TTFT_S), itl=Dist.fixed(ITL_S), output_tokens=Dist.fixed(OUTPUT_TOKENS)
    )
    with MockServer(MockConfig(seed=11, default_profile=profile)) as server:
        yield server


def hdrs(**values: object) -> dict[str, str]:
    """Per-request overrides: hdrs(ttft_ms=30) -> {"x-mock-ttft-ms": "30"}."""
    return {f"x-mock-{key.replace('_', '-')}": str(value) for key, value in values.items()}


def record_for(server: MockServer, request_id: str | None, timeout: float = 2.0) -> RequestRecord:
    """The server's record of the request with this `x-request-id` (waits for cancelled ones)."""
    assert request_id, "response carried no request id"
    deadline = time.monotonic() + timeout
    while True:
        for record in server.records:
            if record.request_id == request_id:
                return record
        if time.monotonic() > deadline:
            raise AssertionError(f"no record for {request_id}")
        time.sleep(0.005)


def records_for_model(server: MockServer, model: str) -> list[RequestRecord]:
    """Records of one model, oldest first."""
    return [r for r in server.records if r.model == model]
