"""Sweeps: parsing, statistics, and a real sweep through the Ollama SDK against the embedded mock.

The mock's Ollama latency model depends on the request's options (otelbench/mock/ollama_api.py):
TTFT x (1 + num_ctx / 8192) and inter-token latency x (1 + 4 x (1 - min(num_gpu, 32) / 32)). A
sweep must find the configuration that model makes best, and its CIs must contain the true
values: the configured TTFT median, scaled, plus the send overhead the mock's ground truth
measured (the SDK's time to build and send a request; see test_replay.py).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from otelbench.datasets import builtin
from otelbench.errors import UsageError
from otelbench.load import Limits
from otelbench.mock import Dist, MockConfig, ModelProfile
from otelbench.replay import LoadSpec, ReplayConfig, parse_target
from otelbench.sweep import (
    METRICS,
    SweepResult,
    configurations,
    parse_axes,
    parse_axis,
    parse_configuration,
    render_csv,
    render_markdown,
    run_sweep,
    summarise,
    write_sweep,
)
from tests.bench.test_cli import run_main

TTFT_MEDIAN = 0.080
ITL = 0.002
NUM_CTX_SCALE = 8192


# --- parsing ----------------------------------------------------------------------------------
def test_axes_parse_into_the_cartesian_product_in_order() -> None:
    axes = parse_axes(["num_ctx=256,512,1024", "temperature=0.6,0.8"])
    assert [a.key for a in axes] == ["num_ctx", "temperature"]
    assert axes[0].values == (256, 512, 1024) and all(isinstance(v, int) for v in axes[0].values)
    configs = configurations(axes)
    assert len(configs) == 6
    assert configs[0] == {"num_ctx": 256, "temperature": 0.6}
    assert configs[1] == {"num_ctx": 256, "temperature": 0.8}
    assert configs[-1] == {"num_ctx": 1024, "temperature": 0.8}
    assert parse_configuration("temperature=0.8,num_ctx=512", axes) == {"num_ctx": 512, "temperature": 0.8}
    assert configurations([]) == [{}]


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("num_ctx", "'num_ctx'"),
        ("bogus=1,2", "'bogus'"),
        ("num_ctx=256,abc", "'abc'"),
        ("num_ctx=1.5", "'1.5'"),
        ("temperature=0.5,,0.7", "empty value"),
        ("concurrency=0,2", "'0'"),
        ("rate=nan", "'nan'"),
        ("num_ctx=256,256", "twice"),
    ],
)
def test_bad_sweep_specs_are_usage_errors_naming_the_bad_part(spec: str, named: str) -> None:
    with pytest.raises(UsageError, match=named):
        parse_axis(spec)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--sweep", "num_ctx=256,x"], "'x'"),
        (["--sweep", "nosuch=1"], "'nosuch'"),
        (["--sweep", "num_ctx=1", "--sweep", "num_ctx=2"], "given twice"),
        (["--sweep", "concurrency=1,2", "--sweep", "rate=1,2"], "exclude each other"),
        (["--sweep", "concurrency=1,2", "--rate", "5"], "open loop"),
        (["--sweep", "num_ctx=256,512", "--sweep-baseline", "num_ctx=128"], "matches no configuration"),
        (["--sweep", "num_ctx=256,512", "--sweep-baseline", "top_k=3"], "'top_k' is not swept"),
        (["--target", "openai:mock-fast@mock", "--sweep", "num_ctx=256"], "no target's SDK takes it"),
        (["--sweep", "num_ctx=256", "--sweep-metric", "fastest"], "'fastest'"),
        (["--sweep", "num_ctx=256", "--runs", "0"], "'0'"),
    ],
)
def test_cli_sweep_misuse_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], named: str
) -> None:
    code, _out, err = run_main(capsys, "replay", "--output-dir", str(tmp_path), *args)
    assert code == 2, (args, err)
    assert named in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_summary_is_the_student_t_interval() -> None:
    values = [0.101, 0.097, 0.104, 0.099]
    s = summarise(values)
    std = float(np.std(values, ddof=1))
    half = 3.182 * std / math.sqrt(4)  # t(0.975, 3)
    assert s.mean == pytest.approx(float(np.mean(values)))
    assert (s.ci_low, s.ci_high) == pytest.approx((s.mean - half, s.mean + half))
    assert s.cv == pytest.approx(std / s.mean)
    one = summarise([0.2])
    assert one.runs == 1 and math.isnan(one.ci_low)


# --- a real sweep -----------------------------------------------------------------------------
def _base(runs_seed: int = 0) -> ReplayConfig:
    profile = ModelProfile(
        ttft=Dist.normal(TTFT_MEDIAN, 0.012), itl=Dist.fixed(ITL), output_tokens=Dist.fixed(8)
    )
    return ReplayConfig(
        targets=[parse_target("ollama:sweepy@mock", {})],
        prompts=builtin("chat"),
        dataset="chat",
        # One request at a time: with two, the second waits for the client to build the first,
        # and the send overhead (the truth's client part) stops being a per-request constant.
        load=LoadSpec(limits=Limits(requests=12), concurrency=1, warmup=1),
        seed=runs_seed,
        mock_config=MockConfig(seed=runs_seed, default_profile=profile),
    )


def _true_ttft(result: SweepResult, index: int) -> float:
    """Configured median x the num_ctx factor + the mean send overhead the ground truth measured."""
    config = result.configs[index]
    cell = result.cell("ollama:sweepy", index)
    sends = [r.ground_truth["send_overhead_p50_s"] for r in cell.runs if r.ground_truth]
    assert len(sends) == result.runs
    return TTFT_MEDIAN * (1 + int(config["num_ctx"]) / NUM_CTX_SCALE) + sum(sends) / len(sends)


@pytest.mark.slow
def test_sweep_finds_the_configured_best_and_its_cis_contain_the_true_values(tmp_path: Path) -> None:
    axes = parse_axes(["num_ctx=512,4096", "num_gpu=8,32"])
    result = run_sweep(_base(), axes, runs=3, metric="duration_p50")
    target = "ollama:sweepy"
    assert not result.partial and len(result.configs) == 4
    for i in range(4):
        cell = result.cell(target, i)
        assert len(cell.runs) == 3
        assert all(r.metrics["requests"] == 12 and r.metrics["errors"] == 0 for r in cell.runs)
    # Best by duration: short prefill (num_ctx 512) and every layer on the GPU (fast tokens).
    best = result.best(target)
    assert best is not None and result.configs[best] == {"num_ctx": 512, "num_gpu": 32}
    ttft_best = result.best(target, METRICS["ttft_p50"])
    assert ttft_best is not None and result.configs[ttft_best]["num_ctx"] == 512
    tpot_best = result.best(target, METRICS["tpot_p50"])
    assert tpot_best is not None and result.configs[tpot_best]["num_gpu"] == 32
    for i, config in enumerate(result.configs):
        ttft = result.cell(target, i).summary(METRICS["ttft_p50"])
        truth = _true_ttft(result, i)
        # The across-run CI contains the truth. (The mock is seeded: each run draws the same
        # latencies every time the test runs; what varies is the client's timing, a millisecond
        # or two against a CI half-width of about 10 ms.)
        assert ttft.contains(truth), (config, truth, ttft)
        assert ttft.pooled_low < ttft.mean < ttft.pooled_high, (config, ttft)
        # Time per output token follows num_gpu: 2 ms x (1 + 4 x (1 - num_gpu / 32)).
        tpot = result.cell(target, i).summary(METRICS["tpot_p50"]).mean
        expected_itl = ITL * (1 + 4 * (1 - int(config["num_gpu"]) / 32))
        assert tpot == pytest.approx(expected_itl, rel=0.10), (config, tpot)
    # Against the baseline (num_ctx 512, num_gpu 8): a longer context is a significant TTFT change;
    # more GPU layers are not (the same TTFT distribution, sampled with the same seeds).
    diffs = result.differences(target)
    for i, config in enumerate(result.configs[1:], start=1):
        d = diffs[(i, "ttft_p50")]
        assert d.significant == (config["num_ctx"] == 4096), (config, d)
        if config["num_ctx"] == 4096:
            assert d.relative == pytest.approx((1 + 4096 / 8192) / (1 + 512 / 8192) - 1, abs=0.08)
    # (4096, 8) vs (512, 8): the same tokens. Not a configured effect, but over ~100 values per
    # side the client's timing can make a 0.1 % shift "significant" (it did once: -12 us on
    # 8 ms, p = 6e-5), so the check is on the size, against the 150 % of a configured one.
    same = diffs[(2, "tpot_p50")]
    assert abs(same.relative) < 0.02, same
    assert diffs[(1, "tpot_p50")].significant  # num_gpu 32 vs 8: 5 ms vs 2 ms per token

    csv_path, md_path = write_sweep(result, tmp_path)
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert len(rows) == 4 * len(METRICS)
    best_rows = [r for r in rows if r["metric"] == "duration_p50" and r["is_best"] == "yes"]
    assert [(r["num_ctx"], r["num_gpu"]) for r in best_rows] == [("512", "32")]
    assert csv_path.read_text() == render_csv(result)
    markdown = md_path.read_text()
    assert markdown == render_markdown(result, csv_path.name)
    assert "| num_ctx=512 num_gpu=32 |" in markdown and "baseline" in markdown
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_cli_sweep_over_rate_and_temperature_writes_csv_and_markdown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_main(
        capsys,
        "replay",
        "--target",
        "openai:mock-fast@mock",
        "--sweep",
        "rate=20,40",
        "--sweep",
        "temperature=0.5",
        "--runs",
        "2",
        "--requests",
        "10",
        "--warmup",
        "0",
        "--sweep-metric",
        "requests_per_s",
        "--sweep-baseline",
        "rate=40",
        "--no-progress",
        "--output-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert "sweep 4/4: rate=40 temperature=0.5, run 2/2" in err
    lines = out.splitlines()
    assert any(line.split()[:2] == ["rate=40", "temperature=0.5"] and "baseline" in line for line in lines)
    (csv_path,) = (tmp_path / "raw").glob("sweep-*.csv")
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    rps = {r["rate"]: float(r["mean"]) for r in rows if r["metric"] == "requests_per_s"}
    # Open loop: the achieved rate follows the swept rate (10 requests each).
    assert rps["40"] > rps["20"], rps
    assert {r["is_baseline"] for r in rows if r["rate"] == "40"} == {"yes"}
    assert (tmp_path / "sweep.md").exists()
