"""`--target bedrock:MODEL`: target specs, and replays through boto3 against the embedded mock."""

from __future__ import annotations

import pytest

from otelbench.errors import UsageError
from otelbench.replay import ReplayConfig, parse_target, run_replay

from .conftest import sdk_replay_config

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def test_bedrock_target_endpoint_from_region_or_aws_endpoint_variables() -> None:
    target = parse_target(f"bedrock:{MODEL}", {})
    assert target.id == f"bedrock:{MODEL}" and target.provider == "aws.bedrock"
    assert target.endpoint == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert target.api_key is None  # credentials stay with boto3's own chain
    assert parse_target(f"bedrock:{MODEL}", {"AWS_DEFAULT_REGION": "eu-west-1"}).host_port == (
        "bedrock-runtime.eu-west-1.amazonaws.com",
        443,
    )
    env = {"AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:9/x"}
    assert parse_target(f"bedrock:{MODEL}", env).host_port == ("127.0.0.1", 9)
    explicit = parse_target(f"bedrock:{MODEL}@http://127.0.0.1:8931", {})
    assert explicit.id == f"bedrock:{MODEL}@http://127.0.0.1:8931"
    assert parse_target("bedrock:mock-steady@mock", {}).is_mock
    with pytest.raises(UsageError, match="AWS_ENDPOINT_URL"):
        parse_target(f"bedrock:{MODEL}", {"AWS_ENDPOINT_URL": "not a url"})


def _config(stream: bool, fault_rates: dict[str, float]) -> ReplayConfig:
    return sdk_replay_config("bedrock:flaky@mock", stream, fault_rates)


def test_botocore_retries_are_counted_from_the_genai_spans() -> None:
    # A quarter of the answers are ThrottlingException: botocore retries them (standard mode, at
    # most 3 attempts), and every attempt is one request the mock served.
    outcome = run_replay(_config(True, {"429": 0.25}))
    (run,) = outcome.runs
    served = [r for r in outcome.mock_records if r.protocol == "bedrock"]
    assert sum(r.attempts or 0 for r in run.requests) == len(served)
    assert any((r.attempts or 0) > 1 for r in run.requests)
    failed = [r for r in run.measured if not r.ok]
    assert all(r.error_type == "ThrottlingException" and r.attempts == 3 for r in failed)
    assert run.metrics is not None and run.metrics.requests == 16
    assert sum(run.metrics.errors.values()) == len(failed)
    ok = [r for r in run.measured if r.ok]
    assert ok and all(r.ttft is not None and r.client_ttft is not None for r in ok)


def test_non_streamed_bedrock_replay() -> None:
    outcome = run_replay(_config(False, {}))
    (run,) = outcome.runs
    assert run.metrics is not None and run.metrics.requests == 16 and not run.metrics.errors
    assert all(r.ok and r.output_tokens == 3 for r in run.measured)
