"""`--target azure:DEPLOYMENT`: target specs, and replays through AsyncAzureOpenAI against the mock."""

from __future__ import annotations

import pytest

from otelbench.errors import UsageError
from otelbench.replay import ReplayConfig, parse_target, run_replay
from otelbench.replay.targets import DEFAULT_AZURE_API_VERSION

from .conftest import sdk_replay_config

RESOURCE = "https://my-resource.openai.azure.com"


def test_azure_target_endpoint_key_and_api_version_from_the_environment() -> None:
    env = {"AZURE_OPENAI_ENDPOINT": RESOURCE, "AZURE_OPENAI_API_KEY": "az-key"}
    target = parse_target("azure:gpt-4o-prod", env)
    assert (target.id, target.provider, target.endpoint) == ("azure:gpt-4o-prod", "azure.ai.openai", RESOURCE)
    assert (target.api_key, target.api_version) == ("az-key", DEFAULT_AZURE_API_VERSION)
    assert target.host_port == ("my-resource.openai.azure.com", 443)
    assert "az-key" not in repr(target)
    dated = parse_target("azure:gpt-4o-prod", {**env, "OPENAI_API_VERSION": "2025-04-01-preview"})
    assert dated.api_version == "2025-04-01-preview"
    explicit = parse_target("azure:d@https://other.openai.azure.com", {"AZURE_OPENAI_API_KEY": "k"})
    assert explicit.id == "azure:d@https://other.openai.azure.com"
    # Without a key, the SDK reads an Entra ID token itself.
    token_only = parse_target("azure:d", {"AZURE_OPENAI_ENDPOINT": RESOURCE, "AZURE_OPENAI_AD_TOKEN": "t"})
    assert token_only.api_key is None
    mock = parse_target("azure:mock-fast@mock", {})
    assert mock.is_mock and mock.with_mock("http://127.0.0.1:5").base_url == "http://127.0.0.1:5"
    with pytest.raises(UsageError, match="AZURE_OPENAI_ENDPOINT is not set"):
        parse_target("azure:d", {"AZURE_OPENAI_API_KEY": "k"})
    with pytest.raises(UsageError, match="AZURE_OPENAI_API_KEY nor AZURE_OPENAI_AD_TOKEN"):
        parse_target("azure:d", {"AZURE_OPENAI_ENDPOINT": RESOURCE})
    with pytest.raises(UsageError, match="AZURE_OPENAI_ENDPOINT"):
        parse_target("azure:d", {"AZURE_OPENAI_ENDPOINT": "my-resource", "AZURE_OPENAI_API_KEY": "k"})


def test_openai_target_on_an_azure_resource_reports_what_the_instrumentation_does() -> None:
    # The summary matches metrics by gen_ai.provider.name: both sides must name it alike.
    v1 = parse_target(f"openai:gpt-4o-prod@{RESOURCE}/openai/v1", {"OPENAI_API_KEY": "k"})
    assert v1.provider == "azure.ai.openai"
    assert parse_target("openai:gpt-4o-mini", {"OPENAI_API_KEY": "k"}).provider == "openai"


def _config(stream: bool, fault_rates: dict[str, float]) -> ReplayConfig:
    return sdk_replay_config("azure:prod-deployment@mock", stream, fault_rates, max_retries=3)


def test_streamed_replay_counts_the_sdk_retries_of_azure_rate_limits() -> None:
    outcome = run_replay(_config(True, {"429:0.01": 0.25}))
    (run,) = outcome.runs
    served = [r for r in outcome.mock_records if r.protocol == "azure"]
    assert {r.path for r in served} == {"/openai/deployments/prod-deployment/chat/completions"}
    assert sum(r.attempts or 0 for r in run.requests) == len(served)
    assert any((r.attempts or 0) > 1 for r in run.requests)
    # The statistics come from the exported metrics, found under azure.ai.openai.
    assert run.metrics is not None and run.metrics.requests == 16
    assert sum(run.metrics.errors.values()) == len([r for r in run.measured if not r.ok])
    ok = [r for r in run.measured if r.ok]
    assert ok and all(r.ttft is not None and r.ttft >= 0.01 and r.output_tokens == 3 for r in ok)


def test_non_streamed_azure_replay() -> None:
    outcome = run_replay(_config(False, {}))
    (run,) = outcome.runs
    assert run.metrics is not None and run.metrics.requests == 16 and not run.metrics.errors
    assert all(r.ok and r.output_tokens == 3 for r in run.measured)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_http_client_replays_an_azure_deployment(stream: bool) -> None:
    # --client http: Azure's path, api-version and api-key on the lean client; the same recorder.
    outcome = run_replay(sdk_replay_config("azure:prod-deployment@mock", stream, {}, kind="http"))
    (run,) = outcome.runs
    served = [r for r in outcome.mock_records if r.protocol == "azure"]
    assert {(r.path, r.status) for r in served} == {
        ("/openai/deployments/prod-deployment/chat/completions", 200)
    }
    assert run.metrics is not None and run.metrics.requests == 16 and not run.metrics.errors
    assert all(r.ok and r.output_tokens == 3 for r in run.measured)
    if stream:
        # TTFT from the first content chunk, not from Azure's prompt-filter chunk sent at once.
        assert all(r.ttft is not None and r.ttft >= 0.01 for r in run.measured)
