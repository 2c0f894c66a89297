"""Replay building blocks without a server: target specs, SLOs, prices, datasets, statistics."""

from __future__ import annotations

import json
import math
import random
from itertools import combinations
from pathlib import Path

import pytest

from otelbench.datasets import (
    BUILTIN,
    load_builtin,
    load_dataset,
    parse_shape,
    synthetic,
    with_nonce,
)
from otelbench.errors import ConfigError, DatasetError, UsageError
from otelbench.replay.pricing import PriceTable, load_prices
from otelbench.replay.slo import parse_slo
from otelbench.replay.targets import PLACEHOLDER_KEY, parse_target, redact_url
from otelbench.summary.stats import describe, exact_quantile, holm, mann_whitney

# --- targets ------------------------------------------------------------------------------------


def test_target_specs() -> None:
    env = {"OPENAI_API_KEY": "sk-a", "ANTHROPIC_API_KEY": "sk-b"}
    t = parse_target("openai:gpt-4o-mini", env)
    assert (t.scheme, t.model, t.base_url, t.api_key, t.id) == (
        "openai",
        "gpt-4o-mini",
        None,
        "sk-a",
        "openai:gpt-4o-mini",
    )
    assert t.host_port == ("api.openai.com", 443)
    # Ollama tags contain colons; the host comes from OLLAMA_HOST (with or without a scheme).
    o = parse_target("ollama:llama3.2:1b", {"OLLAMA_HOST": "gpu-box:11434"})
    assert (o.model, o.base_url, o.host_port) == ("llama3.2:1b", "http://gpu-box:11434", ("gpu-box", 11434))
    assert parse_target("ollama:llama3.2", {}).base_url == "http://127.0.0.1:11434"
    # An OpenAI-compatible server needs no key; the id names the endpoint.
    v = parse_target("openai:meta-llama/Llama-3.1-8B@http://127.0.0.1:8000/v1", {})
    assert (v.model, v.base_url, v.api_key) == (
        "meta-llama/Llama-3.1-8B",
        "http://127.0.0.1:8000/v1",
        PLACEHOLDER_KEY,
    )
    assert v.id == "openai:meta-llama/Llama-3.1-8B@http://127.0.0.1:8000/v1"
    # --base-url applies to targets without @URL.
    b = parse_target("anthropic:claude-x", {}, base_url="http://127.0.0.1:9000")
    assert b.base_url == "http://127.0.0.1:9000" and b.api_key == PLACEHOLDER_KEY
    # OPENAI_BASE_URL / ANTHROPIC_BASE_URL, which the SDKs read: the target's endpoint is
    # where the requests go (the summary looks for that server.address), and no key is needed.
    e = parse_target("openai:m", {"OPENAI_BASE_URL": "http://gw.internal:4000/v1"})
    assert (e.base_url, e.api_key, e.host_port, e.id) == (
        "http://gw.internal:4000/v1",
        PLACEHOLDER_KEY,
        ("gw.internal", 4000),
        "openai:m",
    )
    a = parse_target("anthropic:c", {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9001", "ANTHROPIC_API_KEY": "k"})
    assert (a.endpoint, a.api_key) == ("http://127.0.0.1:9001", "k")
    # @URL and --base-url win over the environment.
    assert parse_target("openai:m@http://h/v1", {"OPENAI_BASE_URL": "http://gw/v1"}).base_url == "http://h/v1"
    m = parse_target("anthropic:mock-x@mock", {})
    assert m.is_mock and m.with_mock("http://127.0.0.1:5").base_url == "http://127.0.0.1:5"
    assert (
        parse_target("openai:m@mock", {}).with_mock("http://127.0.0.1:5").base_url == "http://127.0.0.1:5/v1"
    )


@pytest.mark.parametrize(
    ("spec", "env", "key"),
    [
        ("openai:o3-mini", {"OPENAI_API_KEY": "k"}, "max_completion_tokens"),
        ("openai:o3-mini@https://api.openai.com:443/v1/", {}, "max_completion_tokens"),
        ("openai:o3-mini@https://API.OpenAI.com/v1", {}, "max_completion_tokens"),
        ("azure:dep@https://r.openai.azure.com", {"AZURE_OPENAI_API_KEY": "k"}, "max_completion_tokens"),
        ("openai:m", {"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}, "max_tokens"),
        ("openai:m@mock", {}, "max_tokens"),
        ("openai:m@https://api.openai.com.example.org/v1", {}, "max_tokens"),
        ("groq:llama", {"GROQ_API_KEY": "k"}, "max_tokens"),
        ("mistral:small", {"MISTRAL_API_KEY": "k"}, "max_tokens"),
    ],
)
def test_max_tokens_field_follows_the_endpoint(spec: str, env: dict[str, str], key: str) -> None:
    # One rule for the SDK and the lean HTTP client: OpenAI's own API and Azure's get
    # max_completion_tokens, every other OpenAI-compatible server max_tokens.
    assert parse_target(spec, env).max_tokens_key == key


def test_api_keys_never_appear_in_ids_or_reprs() -> None:
    t = parse_target(
        "openai:m@https://user:sk-secret@host.example:8443/v1?key=sk-q", {"OPENAI_API_KEY": "sk-env"}
    )
    assert "sk-" not in t.id + repr(t) + t.endpoint
    assert redact_url("https://u:p@h:1/v1?api_key=x#f") == "https://h:1/v1"


@pytest.mark.parametrize(
    ("spec", "env", "needle"),
    [
        ("foo:bar", {}, "'foo:bar'"),
        ("openai", {}, "'openai'"),
        ("openai:", {}, "'openai:'"),
        ("openai:@http://h/v1", {}, "empty"),
        ("openai:gpt-4o-mini", {}, "OPENAI_API_KEY"),
        ("anthropic:claude-3-5-haiku-latest", {}, "ANTHROPIC_API_KEY"),
        ("openai:m@http://h:99999/v1", {}, "h:99999"),
        ("ollama:m", {"OLLAMA_HOST": "ftp://box"}, "OLLAMA_HOST"),
        ("openai:m", {"OPENAI_BASE_URL": "gw:4000"}, "OPENAI_BASE_URL"),
        ("anthropic:m", {"ANTHROPIC_BASE_URL": "ftp://box"}, "ANTHROPIC_BASE_URL"),
    ],
)
def test_bad_target_specs_name_the_problem(spec: str, env: dict[str, str], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_target(spec, env)
    assert needle in str(info.value)


# --- SLOs and prices ------------------------------------------------------------------------------


def test_slo_syntax() -> None:
    s = parse_slo("ttft_p95=500ms")
    assert (s.metric, s.quantile, s.threshold) == ("ttft", 0.95, 0.5)
    assert parse_slo("e2e_p99=2s").metric == "duration"
    assert parse_slo("itl_p99.9=40ms").quantile == pytest.approx(0.999)
    assert parse_slo("tpot_p50=800us").threshold == pytest.approx(0.0008)


@pytest.mark.parametrize(
    "text", ["ttft=500ms", "ttft_p95=500", "ttft_p95=fast", "speed_p95=1s", "ttft_p100=1s", "ttft_p95=0ms"]
)
def test_invalid_slo_is_a_usage_error_naming_it(text: str) -> None:
    with pytest.raises(UsageError, match=f"invalid --slo {text!r}"):
        parse_slo(text)


def test_prices_builtin_and_override(tmp_path: Path) -> None:
    table = PriceTable()
    assert table.cost("openai:gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert table.cost("openai:gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.5)  # not the -mini price
    assert table.cost("ollama:llama3.2", 10**9, 10**9) == 0
    # A family's later model priced apart from the pattern that would cover it.
    assert table.cost("anthropic:claude-opus-4-1-20250805", 1_000_000, 0) == pytest.approx(15.0)
    assert table.cost("anthropic:claude-opus-4-5-20251101", 1_000_000, 0) == pytest.approx(5.0)
    assert table.cost("openai:gpt-5-2025-08-07", 0, 1_000_000) == pytest.approx(10.0)
    assert math.isnan(table.cost("openai:gpt-5-pro", 1, 1))
    assert math.isnan(table.cost("openai:o4-mini-deep-research", 1, 1))
    assert math.isnan(table.cost("openai:unknown-model", 1, 1))
    path = tmp_path / "prices.toml"
    path.write_text(
        '["openai:gpt-4o-mini"]\ninput = 1\noutput = 2\n["openai:*@http://127.0.0.1*"]\ninput = 0\noutput = 0\n'
    )
    custom = load_prices(path)
    assert custom.cost("openai:gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert custom.cost("openai:x@http://127.0.0.1:8000/v1", 5, 5) == 0
    (tmp_path / "bad.json").write_text(json.dumps({"openai:x": {"input": -1, "output": 1}}))
    with pytest.raises(ConfigError, match="'openai:x'"):
        load_prices(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_prices(tmp_path / "missing.toml")


# --- datasets -------------------------------------------------------------------------------------


def test_builtin_sets_are_small_and_complete() -> None:
    data = Path(__file__).parents[2] / "otelbench" / "datasets" / "data"
    assert sum(p.stat().st_size for p in data.glob("*.json")) < 200_000
    for name in BUILTIN:
        ds = load_builtin(name)
        assert len(ds.prompts) >= 24, name
        assert len({p.id for p in ds.prompts}) == len(ds.prompts)
        assert all(p.max_tokens for p in ds.prompts)
    assert all(len(p.tools) == 5 for p in load_builtin("tools").prompts)
    # "Long context": every summarisation prompt carries a document of 2 000+ characters.
    assert min(len(p.messages[0]["content"]) for p in load_builtin("summarize").prompts) > 2000


def test_sharegpt_loader(tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    path.write_text(
        json.dumps(
            [
                {
                    "id": "a",
                    "conversations": [
                        {"from": "system", "value": "be brief"},
                        {"from": "human", "value": "hello?"},
                        {"from": "gpt", "value": "x" * 400},
                        {"from": "human", "value": "more"},
                    ],
                },
                {"id": "b", "conversations": [{"from": "gpt", "value": "only a greeting"}]},
                {"id": "c", "conversations": [{"from": "human", "value": "no reply"}]},
            ]
        )
    )
    ds = load_dataset(str(path))
    assert [p.id for p in ds.prompts] == ["a", "c"]  # b has nothing to ask
    a, c = ds.prompts
    assert a.messages == ({"role": "system", "content": "be brief"}, {"role": "user", "content": "hello?"})
    assert a.max_tokens == 100  # the reference reply's length / 4
    assert c.max_tokens is None


def test_jsonl_loader(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "one", "max_tokens": 5}\n\n"two"\n{"messages": [{"role": "user", "content": "three"}]}\n'
    )
    ds = load_dataset(str(path))
    assert [p.messages[0]["content"] for p in ds.prompts] == ["one", "two", "three"]
    assert ds.prompts[0].max_tokens == 5


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("bad.jsonl", '{"prompt": "ok"}\n{not json\n', "bad.jsonl:2"),
        ("bad2.jsonl", '{"nothing": 1}\n', "bad2.jsonl:1"),
        ("bad.json", "[1, 2]", "conversation 0"),
        ("bad2.json", "{oops", "not valid JSON"),
        ("empty.jsonl", "\n", "empty"),
    ],
)
def test_bad_dataset_files(tmp_path: Path, name: str, text: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError, match=needle):
        load_dataset(str(path))


def test_unreadable_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cannot read dataset .*missing\.jsonl"):
        load_dataset(str(tmp_path / "missing.jsonl"))
    with pytest.raises(DatasetError, match="'nosuchset'"):
        load_dataset("nosuchset")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetError, match="cannot read dataset"):
        load_dataset(str(tmp_path / "binary.json"))


def test_shapes_and_nonce() -> None:
    assert parse_shape("1000:200") == (1000, 200)
    for bad in ("1000", "a:b", "0:5", "5:-1"):
        with pytest.raises(UsageError, match=repr(bad)):
            parse_shape(bad)
    ds = synthetic(250, 40, count=3, seed=1)
    assert [len(p.messages[0]["content"]) for p in ds.prompts] == [1000, 1000, 1000]  # 4 chars/token
    assert all(p.max_tokens == 40 for p in ds.prompts)
    assert len({p.messages[0]["content"] for p in ds.prompts}) == 3
    tagged = with_nonce(ds.prompts[0], "run1-7")
    assert tagged.messages[0]["content"].startswith("[run1-7] ")
    assert ds.prompts[0].messages[0]["content"][:5] != "[run1"  # the original is untouched


# --- statistics -----------------------------------------------------------------------------------


def test_exact_quantile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [exact_quantile(values, q) for q in (0.2, 0.5, 0.95, 1.0)] == [1.0, 3.0, 5.0, 5.0]
    assert math.isnan(exact_quantile([], 0.5))


def test_bootstrap_intervals_cover_the_truth() -> None:
    # A lognormal's median is known; the 95 % CI over 300 draws should hold it in ~95 % of samples.
    rng = random.Random(5)
    hits = 0
    trials = 60
    for t in range(trials):
        values = [rng.lognormvariate(0.0, 0.5) for _ in range(300)]
        d = describe(values, seed=t, resamples=400)
        assert d is not None
        ci = d.quantile_ci[0.5]
        hits += ci.low <= 1.0 <= ci.high
        assert ci.low <= d.quantiles[0.5] <= ci.high
        assert d.mean_ci.low <= d.mean <= d.mean_ci.high
    assert hits >= trials * 0.85  # binomial(60, 0.95) falls below 51 with probability < 0.1 %


def test_large_samples_use_order_statistics() -> None:
    rng = random.Random(2)
    d = describe([rng.random() for _ in range(50_000)])
    assert d is not None
    assert d.quantile_ci[0.5].low < 0.5 < d.quantile_ci[0.5].high
    assert d.quantile_ci[0.5].high - d.quantile_ci[0.5].low < 0.02


def _exact_mwu_p(a: list[float], b: list[float]) -> float:
    """Two-sided permutation p-value of the U statistic (small samples only)."""
    both = a + b

    def u(xs: list[float], ys: list[float]) -> float:
        return sum((x > y) + 0.5 * (x == y) for x in xs for y in ys)

    mu = len(a) * len(b) / 2
    observed = abs(u(a, b) - mu)
    extreme = total = 0
    for idx in combinations(range(len(both)), len(a)):
        chosen = set(idx)
        xs = [both[i] for i in idx]
        ys = [both[i] for i in range(len(both)) if i not in chosen]
        total += 1
        extreme += abs(u(xs, ys) - mu) >= observed - 1e-9
    return extreme / total


def test_mann_whitney_matches_the_permutation_distribution() -> None:
    rng = random.Random(9)
    for shift in (0.0, 0.5, 1.5):
        a = [round(rng.gauss(shift, 1), 1) for _ in range(8)]  # rounding makes ties
        b = [round(rng.gauss(0, 1), 1) for _ in range(8)]
        result = mann_whitney(a, b)
        assert result is not None
        exact = _exact_mwu_p(a, b)
        # The normal approximation is good to a few hundredths at n = 8 + 8.
        assert result.p_value == pytest.approx(exact, abs=0.04), (shift, exact)
    assert mann_whitney([1.0], [2.0, 3.0]) is None
    same = mann_whitney([1.0, 1.0, 1.0], [1.0, 1.0])
    assert same is not None and same.p_value == 1.0 and same.prob_a_greater == 0.5


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_a_refusal_message_is_the_providers_own_in_one_short_line() -> None:
    from otelbench.replay.httpclient import HTTPStatusError
    from otelbench.replay.runner import MESSAGE_LIMIT, refusal_message

    def refused(body: bytes) -> str | None:
        return refusal_message(HTTPStatusError(400, body), "sk-echoed-key")

    assert refused(b'{"error": {"message": "Unsupported value: \'n\'"}}') == "Unsupported value: 'n'"
    assert refused(b'{"type": "error", "error": {"type": "x", "message": "too\\n  long"}}') == "too long"
    assert refused(b'{"error": "model \'m\' not found"}') == "model 'm' not found"  # Ollama
    assert refused(b'{"message": "Malformed input request"}') == "Malformed input request"
    assert refused(b'{"error": {"message": "key sk-echoed-key is wrong"}}') == "key *** is wrong"
    assert refused(b"<html>Bad Gateway</html>") is None and refused(b'{"error": {}}') is None
    long = refused(b'{"error": {"message": "%b"}}' % (b"x" * 500))
    assert long is not None and len(long) == MESSAGE_LIMIT and long.endswith("\u2026")
    # The SDKs' own exceptions, as they build them from a response.
    import ollama
    from botocore.exceptions import ClientError

    from otelbench.replay.runner import http_status

    missing = ollama.ResponseError('{"error": "model \'m\' not found"}', 404)
    assert refusal_message(missing, None) == "model 'm' not found" and http_status(missing) == 404
    meta = {"HTTPStatusCode": 400}
    error = {"Error": {"Code": "ValidationException", "Message": "Malformed input"}, "ResponseMetadata": meta}
    refused_by_aws = ClientError(error, "Converse")  # type: ignore[arg-type]
    assert refusal_message(refused_by_aws, None) == "Malformed input" and http_status(refused_by_aws) == 400


def test_options_an_sdk_does_not_name_go_in_the_body() -> None:
    from anthropic.resources import AsyncMessages
    from openai.resources.chat import AsyncCompletions
    from openai.resources.responses import AsyncResponses

    from otelbench.replay.adapters import split_by_signature
    from otelbench.replay.options import options_for

    def create(*, model: str, temperature: float | None = None) -> None:
        """An SDK release that names temperature but no longer seed."""

    assert split_by_signature(create, {"temperature": 0.2, "seed": 7}) == ({"temperature": 0.2}, {"seed": 7})

    def anything(**kwargs: object) -> None:
        """A method that takes every keyword."""

    assert split_by_signature(anything, {"seed": 7}) == ({"seed": 7}, {})
    # The installed SDKs: openai still names every option replay sends; anthropic 2.x does not
    # name the sampling options.
    sent = {"temperature": 0.2, "top_p": 0.9, "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.1}
    assert split_by_signature(AsyncCompletions.create, options_for("openai", sent)) == (
        options_for("openai", sent),
        {},
    )
    for_responses = options_for("openai", sent, "responses")
    assert split_by_signature(AsyncResponses.create, for_responses) == (for_responses, {})
    named, body = split_by_signature(
        AsyncMessages.create, options_for("anthropic", {"temperature": 0.2, "top_k": 5})
    )
    assert (named, body) == ({}, {"temperature": 0.2, "top_k": 5})
