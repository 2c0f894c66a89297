"""Helpers shared by the replay tests."""

from __future__ import annotations

from otelbench.datasets import builtin
from otelbench.load import Limits
from otelbench.mock import Dist, MockConfig, ModelProfile
from otelbench.replay import LoadSpec, ReplayConfig, parse_target
from otelbench.replay.adapters import ClientOptions


def sdk_replay_config(
    spec: str, stream: bool, fault_rates: dict[str, float], max_retries: int = 2, kind: str = "sdk"
) -> ReplayConfig:
    """16 chat prompts at concurrency 4 through ``spec``'s SDK (or ``kind="http"``: the lean
    client), on the embedded mock (``spec`` names ``MODEL@mock``): 10 ms TTFT, 1 ms gaps,
    3 output tokens, faults at ``fault_rates``."""
    target = parse_target(spec, {})
    profile = ModelProfile(ttft=Dist.fixed(0.01), itl=Dist.fixed(0.001), output_tokens=Dist.fixed(3))
    return ReplayConfig(
        targets=[target],
        prompts=builtin("chat"),
        dataset="chat",
        load=LoadSpec(limits=Limits(requests=16), concurrency=4, warmup=0),
        mock_config=MockConfig(seed=5, profiles={target.model: profile}, fault_rates=fault_rates),
        client=ClientOptions(connections=4, stream=stream, max_retries=max_retries, kind=kind),
    )
