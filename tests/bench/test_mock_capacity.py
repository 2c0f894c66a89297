"""The mock-capacity target's plumbing: its counts agree with the mock's ground truth (no timings)."""

from __future__ import annotations

import math

import pytest

from otelbench.targets import target_ids
from otelbench.targets.mock_capacity import MockCapacityTarget, build_request


def test_registered() -> None:
    assert "mock-capacity" in target_ids()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="protocol"):
        MockCapacityTarget(protocols=("grpc",))
    with pytest.raises(ValueError, match="connections"):
        MockCapacityTarget(connections=0)


def test_requests_are_well_formed() -> None:
    for protocol in ("openai", "anthropic", "ollama"):
        head, _, body = build_request(protocol, stream=True).partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert length == len(body) and b'"stream": true' in body


def test_small_run_agrees_with_ground_truth() -> None:
    connections = 4
    target = MockCapacityTarget(
        duration_s=0.5,
        warmup_s=0.2,
        connections=connections,
        stream_steps=(2, 4),
        stream_tokens=8,
        itl_ms=1.0,
        late_limit_ms=1e9,  # never stop the sweep early: both steps run
        drain_s=5.0,
        time_budget_s=60.0,
    )
    result = target.run()
    assert result.target_id == "mock-capacity"
    phases = {p["name"]: p for p in result.details["phases"]}
    assert set(phases) == {
        "requests/openai",
        "requests/anthropic",
        "requests/ollama",
        "streams/2",
        "streams/4",
    }
    for name, phase in phases.items():
        # Every response the generator counted is one the server recorded, and vice versa.
        assert phase["received"] == phase["server_records"] > 0, name
        assert phase["errors"] == phase["connection_errors"] == phase["unanswered"] == 0, name
        if phase["stream"]:
            assert phase["received_chunks"] == phase["server_chunks"] > 0, name
            assert phase["received_chunks"] == 8 * phase["received"], name
            assert phase["chunks"] > 0 and phase["late_p50_ms"] is not None
        # Inside the window the two sides may differ by the requests in flight at its edges.
        assert abs(phase["requests"] - phase["server_window_records"]) <= phase["connections"], name
        count = phase["chunks"] if phase["stream"] else phase["requests"]
        assert phase["rate_per_s"] == pytest.approx(count / phase["window_s"])
        assert phase["per_core"] == pytest.approx(count / phase["server_cpu_s"])
        assert phase["server_cpu_s"] > 0 and phase["generator_cpu_s"] > 0
        assert phase["limited_by"] in {"server", "generator", "both", "neither"}
    metrics = result.metrics
    assert metrics["requests_per_s"] == pytest.approx(phases["requests/openai"]["rate_per_s"])
    assert metrics["ollama_requests_per_s_per_core"] == pytest.approx(phases["requests/ollama"]["per_core"])
    assert metrics["chunks_per_s_max"] == pytest.approx(
        max(phases["streams/2"]["rate_per_s"], phases["streams/4"]["rate_per_s"])
    )
    for name in ("requests_per_s", "anthropic_requests_per_s", "ollama_requests_per_s", "chunks_per_s_max"):
        assert math.isfinite(metrics[name]) and metrics[name] > 0, name
    assert not [w for w in result.details["warnings"] if "counted" in w]
    assert "requests/openai" in result.details["note"]
