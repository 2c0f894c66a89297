"""The embedded mock's four default models, one per SDK, each with its own shape.

    openai:mock-fast         TTFT median  60 ms, ~10 ms per token, ~20 tokens (short answers)
    anthropic:mock-balanced  TTFT median 120 ms,  ~7 ms per token, ~32 tokens
    bedrock:mock-steady      TTFT median 180 ms,  ~6 ms per token, ~28 tokens
    ollama:mock-slow         TTFT median 250 ms,  ~5 ms per token, ~40 tokens (slow prefill)

TTFT is skewed like a real endpoint's (a slow tail of up to ~2.5x the median, a few faster
answers) but 80 % of its mass sits within a millisecond of the median, so the
median of a few dozen requests is pinned to the configured value: that is what lets a
default run check the harness's TTFT against the mock's configuration within 2 ms.
"""

from __future__ import annotations

from otelbench.mock import Dist, MockConfig, ModelProfile

#: Configured TTFT median (seconds) of each default mock model.
TTFT_MEDIANS = {"mock-fast": 0.060, "mock-balanced": 0.120, "mock-steady": 0.180, "mock-slow": 0.250}


def pinned_ttft(median: float, jitter: float, low: float, high: float) -> Dist:
    """40 equally likely values: 4 from ``low`` up, 32 spread evenly over median +- jitter, 4 up to
    ``high`` (geometric); the median of the set is exactly ``median``."""
    core = [median - jitter + 2 * jitter * i / 31 for i in range(32)]
    below = [low + (median - jitter - low) * i / 4 for i in range(4)]
    ratio = (high / (median + jitter)) ** (1 / 4)
    above = [(median + jitter) * ratio ** (i + 1) for i in range(4)]
    return Dist.empirical(below + core + above)


DEFAULT_PROFILES = {
    "mock-fast": ModelProfile(
        ttft=pinned_ttft(0.060, 0.001, 0.050, 0.150),
        itl=Dist.normal(0.010, 0.001),
        output_tokens=Dist.lognormal(20, 0.3),
    ),
    "mock-balanced": ModelProfile(
        ttft=pinned_ttft(0.120, 0.001, 0.100, 0.320),
        itl=Dist.normal(0.007, 0.001),
        output_tokens=Dist.lognormal(32, 0.3),
    ),
    "mock-steady": ModelProfile(
        ttft=pinned_ttft(0.180, 0.001, 0.150, 0.450),
        itl=Dist.normal(0.006, 0.0008),
        output_tokens=Dist.lognormal(28, 0.3),
    ),
    "mock-slow": ModelProfile(
        ttft=pinned_ttft(0.250, 0.001, 0.210, 0.650),
        itl=Dist.normal(0.005, 0.0008),
        output_tokens=Dist.lognormal(40, 0.3),
    ),
}


def default_mock_config(seed: int = 0) -> MockConfig:
    """The embedded mock's configuration when the user gives none."""
    return MockConfig(seed=seed, profiles=dict(DEFAULT_PROFILES))
