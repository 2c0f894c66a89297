"""A provider's error event inside a stream (the mock's `error:N` fault) fails the request, for
every SDK and the lean client, and the raw log and the metrics name it alike."""

from __future__ import annotations

import pytest

from otelbench.replay import run_replay

from .conftest import sdk_replay_config


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("openai:mock-e@mock", "sdk"),
        ("openai:mock-e@mock", "http"),
        ("azure:mock-e@mock", "http"),
        ("anthropic:mock-e@mock", "sdk"),
        ("anthropic:mock-e@mock", "http"),
        ("ollama:mock-e@mock", "sdk"),
        ("ollama:mock-e@mock", "http"),
        ("bedrock:mock-e@mock", "sdk"),
    ],
)
def test_an_error_event_mid_stream_fails_the_request(spec: str, kind: str) -> None:
    # No retries: a stream that failed after its 200 is not retried by the SDKs anyway.
    config = sdk_replay_config(spec, True, {"error:1": 0.5}, max_retries=0, kind=kind)
    outcome = run_replay(config)
    (run,) = outcome.runs
    faulted = [r for r in outcome.mock_records if r.fault == "error:1"]
    failed = [r for r in run.measured if not r.ok]
    assert 0 < len(faulted) < 16 and len(failed) == len(faulted)
    assert all(len(r.chunk_ns) == 1 for r in failed)  # the chunk before the error was seen
    (error_type,) = {r.error_type for r in failed}
    assert error_type and error_type != "ConnectionError"
    assert run.metrics is not None and run.metrics.errors == {error_type: len(failed)}
    assert run.metrics.requests == 16
