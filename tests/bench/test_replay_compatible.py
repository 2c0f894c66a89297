"""`--target deepseek:|groq:|xai:|mistral:|gemini:MODEL`: other providers' OpenAI-compatible APIs,
each at its public URL with its own key, replayed through the openai SDK (and the lean client)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from otelbench.errors import UsageError
from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile
from otelbench.replay import parse_target, run_replay
from otelbench.replay.options import options_for
from otelbench_instrumentation import semconv

from .conftest import sdk_replay_config


@pytest.mark.parametrize(
    ("scheme", "key_var", "endpoint", "provider"),
    [
        ("deepseek", "DEEPSEEK_API_KEY", "https://api.deepseek.com", semconv.PROVIDER_DEEPSEEK),
        ("groq", "GROQ_API_KEY", "https://api.groq.com/openai/v1", semconv.PROVIDER_GROQ),
        ("xai", "XAI_API_KEY", "https://api.x.ai/v1", semconv.PROVIDER_X_AI),
        ("mistral", "MISTRAL_API_KEY", "https://api.mistral.ai/v1", semconv.PROVIDER_MISTRAL_AI),
        (
            "gemini",
            "GEMINI_API_KEY",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            semconv.PROVIDER_GCP_GEMINI,
        ),
    ],
)
def test_each_provider_has_its_url_key_and_provider_name(
    scheme: str, key_var: str, endpoint: str, provider: str
) -> None:
    # OPENAI_API_KEY is another provider's key: never sent here.
    target = parse_target(f"{scheme}:some-model", {key_var: "their-key", "OPENAI_API_KEY": "openai-key"})
    assert (target.id, target.endpoint, target.api_key) == (f"{scheme}:some-model", endpoint, "their-key")
    # As the instrumentation names it: the summary finds the target's metrics by this name.
    assert (target.provider, target.sdk) == (provider, "openai")
    assert "their-key" not in repr(target)
    with pytest.raises(UsageError, match=f"--target {scheme}:m: {key_var}.* not set"):
        parse_target(f"{scheme}:m", {"OPENAI_API_KEY": "openai-key"})


def test_gemini_also_reads_google_api_key_and_urls_override() -> None:
    assert parse_target("gemini:gemini-2.5-flash", {"GOOGLE_API_KEY": "g"}).api_key == "g"
    assert parse_target("gemini:g", {"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "first"}).api_key == "first"
    # A gateway in front of the provider: its URL named, and no key needed.
    gateway = parse_target("groq:llama@http://127.0.0.1:4000/v1", {})
    assert (gateway.id, gateway.provider, gateway.api_key) == (
        "groq:llama@http://127.0.0.1:4000/v1",
        "openai",
        "unused",
    )
    assert parse_target("xai:grok", {}, base_url="http://127.0.0.1:9/v1").endpoint == "http://127.0.0.1:9/v1"


def test_on_the_mock_each_speaks_its_api() -> None:
    url = "http://127.0.0.1:5"
    deepseek = parse_target("deepseek:m@mock", {}).with_mock(url)
    assert (deepseek.base_url, deepseek.mock_protocol) == (f"{url}/deepseek", "deepseek")
    mistral = parse_target("mistral:m@mock", {}).with_mock(url)
    assert (mistral.base_url, mistral.mock_protocol, mistral.provider) == (
        f"{url}/mistral/v1",
        "mistral",
        "openai",
    )


def test_mistral_is_sent_no_seed() -> None:
    # Mistral's schema refuses seed (its own is random_seed); the other options pass.
    request = {"seed": 7, "temperature": 0.2, "top_p": 0.9}
    assert options_for("mistral", request) == {"temperature": 0.2, "top_p": 0.9}
    assert options_for("deepseek", request) == request


@pytest.mark.parametrize("kind", ["sdk", "http"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_mistral_replay_meets_its_strict_schema(kind: str, stream: bool) -> None:
    # The mock's Mistral API refuses stream_options, max_completion_tokens and seed with a 422:
    # every request succeeding shows none was sent, and the usage came unasked.
    config = sdk_replay_config("mistral:mock-m@mock", stream, {}, kind=kind)
    config = replace(config, client=replace(config.client, request={"seed": 7, "temperature": 0.2}))
    outcome = run_replay(config)
    (run,) = outcome.runs
    served = [r for r in outcome.mock_records if r.model == "mock-m"]
    assert {(r.protocol, r.path, r.status) for r in served} == {
        ("mistral", "/mistral/v1/chat/completions", 200)
    }
    assert all(r.ok and r.output_tokens == 3 for r in run.measured)
    assert run.metrics is not None and run.metrics.requests == 16 and not run.metrics.errors
    assert run.metrics.output_tokens == 16 * 3
    # The mock's records are found under the mistral protocol, and paired with the requests.
    gt = run.ground_truth
    assert gt is not None and gt.served == 16 and gt.server_ttft_p50 is not None


def test_an_openai_target_fails_where_mistral_refuses_its_fields() -> None:
    # The same server through the plain openai: scheme: stream_options is sent, and refused.
    with MockServer(MockConfig(seed=1)) as server:
        spec = f"openai:mock-m@{server.mistral_base_url}"
        config = replace(sdk_replay_config("openai:mock-m@mock", True, {}), targets=[parse_target(spec, {})])
        outcome = run_replay(replace(config, mock_config=None))
    (run,) = outcome.runs
    assert run.measured and all(r.http_status == 422 and not r.ok for r in run.measured)


@pytest.mark.parametrize("kind", ["sdk", "http"])
def test_deepseek_thinking_is_timed_from_its_first_reasoning_chunk(kind: str) -> None:
    # The mock's DeepSeek API thinks by default: 3 reasoning_content chunks, 40 ms apart, come
    # before 3 answer chunks. The client, the instrumentation and the mock must all start TTFT at
    # the first reasoning chunk; from the first answer chunk it would be >= 120 ms later.
    config = sdk_replay_config("deepseek:mock-d@mock", True, {}, kind=kind)
    slow = ModelProfile(ttft=Dist.fixed(0.01), itl=Dist.fixed(0.04), output_tokens=Dist.fixed(6))
    config = replace(config, mock_config=replace(config.mock_config, profiles={"mock-d": slow}))  # type: ignore[arg-type]
    outcome = run_replay(config)
    (run,) = outcome.runs
    assert {(r.protocol, r.path, r.reasoning_tokens) for r in outcome.mock_records} == {
        ("deepseek", "/deepseek/chat/completions", 3)
    }
    assert all(r.ok and r.output_tokens == 6 and len(r.chunk_ns) == 6 for r in run.measured)
    assert all(r.client_ttft is not None and r.client_ttft < 0.1 for r in run.measured)
    gt = run.ground_truth
    assert gt is not None and gt.served == 16 and gt.receive_p50 is not None and gt.receive_p50 < 0.03
    assert run.metrics is not None and run.metrics.requests == 16 and run.metrics.ttft is not None
    assert run.metrics.ttft.q(0.5) < 0.1
    assert run.metrics.output_tokens == 16 * 6
    # The answer's first chunk comes three 40 ms gaps after the first reasoning chunk.
    ttfa = run.metrics.ttfa
    assert ttfa is not None and ttfa.count == 16 and 0.13 <= ttfa.q(0.5) < 0.2
    assert all(r.ttfa is not None and r.ttft is not None and r.ttfa - r.ttft > 0.1 for r in run.measured)
