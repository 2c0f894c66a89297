"""`--api responses`: openai: and azure: targets through OpenAI's Responses API (SDK and lean)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from otelbench.mock import Dist, ModelProfile
from otelbench.replay import run_replay

from .conftest import sdk_replay_config


@pytest.mark.parametrize("kind", ["sdk", "http"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ("openai:mock-r@mock", "/v1/responses"),
        ("azure:mock-r@mock", "/openai/responses"),
        # Groq and xAI serve the Responses API beside Chat Completions.
        ("groq:mock-r@mock", "/v1/responses"),
        ("xai:mock-r@mock", "/v1/responses"),
    ],
)
def test_responses_api_is_replayed_and_measured(kind: str, stream: bool, spec: str, path: str) -> None:
    config = sdk_replay_config(spec, stream, {}, kind=kind)
    client = replace(config.client, api="responses", request={"temperature": 0.5, "seed": 3})
    outcome = run_replay(replace(config, client=client))
    (run,) = outcome.runs
    # Every request went to the Responses API (seed, which it has no field for, was not sent:
    # the mock answers unknown fields with a 400).
    assert {(r.path, r.status) for r in outcome.mock_records} == {(path, 200)}
    assert len(run.measured) == 16 and all(r.ok and r.output_tokens == 3 for r in run.measured)
    # The instrumentation measured them (the summary's numbers), in agreement with the client.
    assert run.metrics is not None and run.metrics.requests == 16 and run.metrics.output_tokens == 16 * 3
    gt = run.ground_truth
    assert gt is not None and gt.served == 16
    if stream:
        assert run.metrics.ttft is not None and run.metrics.ttft.count == 16
        assert all(len(r.chunk_ns) == 3 for r in run.measured)
        assert gt.receive_p50 is not None and gt.receive_p50 < 0.005


def test_other_targets_keep_their_api() -> None:
    config = sdk_replay_config("anthropic:mock-a@mock", True, {})
    outcome = run_replay(replace(config, client=replace(config.client, api="responses")))
    assert {r.path for r in outcome.mock_records} == {"/v1/messages"}


@pytest.mark.parametrize("kind", ["sdk", "http"])
def test_a_failed_response_is_a_failed_request(kind: str) -> None:
    # response.failed arrives in a 200 stream and the SDK raises nothing: replay still counts
    # the request as failed, named by the error's code in its own log and in the metrics alike.
    config = sdk_replay_config("openai:mock-f@mock", True, {"error:1": 0.5}, max_retries=0, kind=kind)
    outcome = run_replay(replace(config, client=replace(config.client, api="responses")))
    (run,) = outcome.runs
    faulted = [r for r in outcome.mock_records if r.fault == "error:1"]
    failed = [r for r in run.measured if not r.ok]
    assert 0 < len(faulted) < 16 and len(failed) == len(faulted)
    assert {r.error_type for r in failed} == {"server_error"}
    assert all(len(r.chunk_ns) == 1 for r in failed)
    assert run.metrics is not None and run.metrics.errors == {"server_error": len(failed)}


@pytest.mark.parametrize("kind", ["sdk", "http"])
def test_a_reasoning_summary_is_timed_apart_from_the_answer(kind: str) -> None:
    # `reasoning.summary` (an openai: body field) makes the mock's reasoning model stream a summary
    # before its answer: 2 of 4 chunks, 20 ms apart (gaps no socket read of the lean client merges).
    config = sdk_replay_config("openai:mock-reasoning@mock", True, {}, kind=kind)
    profile = ModelProfile(ttft=Dist.fixed(0.01), itl=Dist.fixed(0.02), output_tokens=Dist.fixed(4))
    mock = replace(config.mock_config, profiles={"mock-reasoning": profile})  # type: ignore[arg-type]
    body = {"openai": {"reasoning": {"effort": "low", "summary": "auto"}}}
    client = replace(config.client, api="responses", body=body)
    outcome = run_replay(replace(config, mock_config=mock, client=client))
    (run,) = outcome.runs
    assert all(r.ok for r in run.measured) and len(run.measured) == 16
    assert {(r.reasoning_tokens, r.output_tokens) for r in outcome.mock_records} == {(2, 4)}
    assert all(r.ttft is not None and r.ttfa is not None and r.ttfa - r.ttft > 0.03 for r in run.measured)
    assert run.metrics is not None and run.metrics.ttfa is not None and run.metrics.ttfa.count == 16
    assert run.metrics.ttfa.mean - run.metrics.ttft.mean > 0.03  # type: ignore[union-attr]
