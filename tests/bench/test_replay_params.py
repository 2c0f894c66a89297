"""`--param`: request options for every target, and provider fields sent as given in the body."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from otelbench.cli import main
from otelbench.mock import Dist, ModelProfile
from otelbench.replay import run_replay
from otelbench.replay.options import parse_params

from .conftest import sdk_replay_config


def test_parse_splits_options_from_provider_fields() -> None:
    options, fields = parse_params(
        [
            "temperature=0.2",
            "seed=7",
            'deepseek:thinking={"type": "disabled"}',
            "openai:reasoning_effort=low",
            "openai:service_tier=flex",
            "ollama:keep_alive=5m",
            "ollama:think=false",
        ],
        {"openai", "deepseek", "ollama"},
    )
    assert options == {"temperature": 0.2, "seed": 7}
    assert fields == {
        "deepseek": {"thinking": {"type": "disabled"}},
        "openai": {"reasoning_effort": "low", "service_tier": "flex"},
        "ollama": {"keep_alive": "5m", "think": False},
    }


@pytest.mark.parametrize("kind", ["sdk", "http"])
def test_deepseek_thinking_turned_off_by_a_body_field(kind: str) -> None:
    # The mock's DeepSeek API thinks unless told otherwise: no reasoning tokens shows the field
    # reached it, through the SDK's extra_body and the lean client's body alike.
    config = sdk_replay_config("deepseek:mock-d@mock", True, {}, kind=kind)
    config = replace(
        config, client=replace(config.client, body={"deepseek": {"thinking": {"type": "disabled"}}})
    )
    outcome = run_replay(config)
    (run,) = outcome.runs
    assert all(r.ok for r in run.measured) and len(run.measured) == 16
    assert {r.reasoning_tokens for r in outcome.mock_records} == {0}


@pytest.mark.parametrize("kind", ["sdk", "http"])
@pytest.mark.parametrize(("field", "ok"), [("random_seed", True), ("seed", False)])
def test_mistral_gets_its_own_fields_only_when_named(kind: str, field: str, ok: bool) -> None:
    # Mistral's strict schema takes random_seed and refuses seed with a 422: the field is sent
    # as named, to mistral: targets only.
    config = sdk_replay_config("mistral:mock-m@mock", False, {}, kind=kind)
    config = replace(config, client=replace(config.client, body={"mistral": {field: 7}}))
    (run,) = run_replay(config).runs
    assert len(run.measured) == 16
    assert all(r.ok for r in run.measured) if ok else {r.http_status for r in run.measured} == {422}


@pytest.mark.parametrize("kind", ["sdk", "http"])
def test_ollama_fields_and_options(kind: str) -> None:
    config = sdk_replay_config("ollama:mock-o@mock", True, {}, kind=kind)
    client = replace(
        config.client, request={"num_ctx": 2048}, body={"ollama": {"keep_alive": "5m", "think": False}}
    )
    (run,) = run_replay(replace(config, client=client)).runs
    assert all(r.ok for r in run.measured) and len(run.measured) == 16


_THINKING_FIELDS = [
    ("ollama", "mock-t", {"think": True}),
    ("anthropic", "mock-t", {"thinking": {"type": "adaptive"}}),
]


@pytest.mark.parametrize(
    ("kind", "scheme", "model", "fields"),
    [(kind, *case) for kind in ("sdk", "http") for case in _THINKING_FIELDS]
    # Converse hands the field to an Anthropic model as additionalModelRequestFields (boto3 only:
    # the lean client does not speak Bedrock).
    + [("sdk", "bedrock", "anthropic.mock-t", {"thinking": {"type": "adaptive"}})],
)
def test_thinking_turned_on_by_a_body_field(
    kind: str, scheme: str, model: str, fields: dict[str, Any]
) -> None:
    # Ollama's `think` and Anthropic's `thinking` (also on Bedrock) reach the mock, which then
    # thinks for half of each reply: reasoning tokens, and answers that start after the first chunk.
    config = sdk_replay_config(f"{scheme}:{model}@mock", True, {}, kind=kind)
    # 2 of 4 chunks reasoning, 20 ms apart: gaps no socket read could merge (the lean client
    # stamps chunks per read).
    profile = ModelProfile(ttft=Dist.fixed(0.01), itl=Dist.fixed(0.02), output_tokens=Dist.fixed(4))
    mock = replace(config.mock_config, profiles={model: profile})  # type: ignore[arg-type]
    outcome = run_replay(
        replace(config, mock_config=mock, client=replace(config.client, body={scheme: fields}))
    )
    (run,) = outcome.runs
    assert all(r.ok for r in run.measured) and len(run.measured) == 16
    assert {r.reasoning_tokens for r in outcome.mock_records} == {2}
    assert all(r.ttft is not None and r.ttfa is not None and r.ttfa - r.ttft > 0.03 for r in run.measured)
    assert run.metrics is not None and run.metrics.ttfa is not None and run.metrics.ttfa.count == 16


def test_bedrock_fields_go_to_additional_model_request_fields() -> None:
    config = sdk_replay_config("bedrock:mock-b@mock", True, {})
    client = replace(config.client, body={"bedrock": {"top_k": 5}})
    (run,) = run_replay(replace(config, client=client)).runs
    assert all(r.ok for r in run.measured) and len(run.measured) == 16


def test_results_record_the_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    code = main(
        [
            "replay", "--target", "deepseek:mock-d@mock", "--target", "openai:mock-o@mock",
            "--param", "temperature=0.3", "--param", 'deepseek:thinking={"type":"disabled"}',
            "--requests", "2", "--warmup", "0", "--no-progress", "--output-dir", str(out_dir),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    (raw,) = (out_dir / "raw").glob("benchmarks-*.json")
    results: dict[str, Any] = {r["target_id"]: r["details"] for r in json.loads(raw.read_text())["results"]}
    deepseek, openai = results["replay/deepseek:mock-d"], results["replay/openai:mock-o"]
    assert deepseek["load"]["request_options"] == openai["load"]["request_options"] == {"temperature": 0.3}
    assert deepseek["load"]["request_fields"] == {"thinking": {"type": "disabled"}}
    assert openai["load"]["request_fields"] == {}


def test_anthropic_sampling_options_reach_any_sdk_version() -> None:
    # anthropic 2.x's messages.create() no longer names temperature/top_p/top_k (passing them
    # raised TypeError on every request): they now travel in the body when it does not.
    config = sdk_replay_config("anthropic:mock-a@mock", True, {})
    client = replace(config.client, request={"temperature": 0.2, "top_p": 0.9, "top_k": 5})
    (run,) = run_replay(replace(config, client=client)).runs
    assert len(run.measured) == 16 and all(r.ok for r in run.measured), {r.error_type for r in run.measured}
