"""Replay end to end, in process: the real SDKs, instrumented, against the embedded mock on 127.0.0.1.

Every timing assertion compares with the mock's own ground truth (``server.records``, on the
same monotonic clock as the client) or with the harness's raw log, never with a wall-clock
guess, so a busy machine slows the tests down without failing them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from otelbench.cli import main
from otelbench.datasets import builtin
from otelbench.load import Limits
from otelbench.mock import Dist, MockConfig, ModelProfile
from otelbench.replay import LoadSpec, ReplayConfig, parse_target, run_replay
from otelbench.replay.pricing import PriceTable
from otelbench.replay.report import build_report
from otelbench.summary import QUANTILES


def read_results(out: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    (raw,) = sorted((out / "raw").glob("benchmarks-*.json"))
    document = json.loads(raw.read_text())
    return {r["target_id"]: r for r in document["results"]}


def test_small_default_replay_compares_four_providers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        ["replay", "--requests", "6", "--concurrency", "2", "--warmup", "1", "--output-dir", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    header = next(line for line in captured.out.splitlines() if "openai:mock-fast" in line)
    assert header.split() == [
        "openai:mock-fast",
        "anthropic:mock-balanced",
        "bedrock:mock-steady",
        "ollama:mock-slow",
    ]
    requests_row = next(
        line for line in captured.out.splitlines() if line.strip().startswith("requests (failed)")
    )
    assert requests_row.split()[-8:] == ["6", "(0)"] * 4
    assert "Traceback" not in captured.err
    results = read_results(out)
    assert set(results) == {
        "replay/openai:mock-fast",
        "replay/anthropic:mock-balanced",
        "replay/bedrock:mock-steady",
        "replay/ollama:mock-slow",
    }
    for result in results.values():
        metrics, details = result["metrics"], result["details"]
        assert metrics["requests"] == 6 and metrics["errors"] == 0  # counted by the exported metrics
        assert details["raw_requests"] == 6
        assert details["mock_ground_truth"]["served"] == details["mock_ground_truth"]["sent"] == 7
        assert metrics["partial"] == 0 and not details["partial"]
        assert set(details["instrumented"]) >= {"openai", "anthropic", "bedrock", "ollama"}
        for name in ("ttft", "duration", "tpot", "itl"):
            assert metrics[f"{name}_p50_s"] > 0, name
        # Memory the replay itself accumulated, imports excluded (a figure, not asserted small).
        assert metrics["client_peak_rss_mib"] > metrics["client_rss_growth_mib"] >= 0
    # The mock's four profiles differ: the ordering of TTFT medians must come through.
    ttft = {k: v["metrics"]["ttft_p50_s"] for k, v in results.items()}
    assert (
        ttft["replay/openai:mock-fast"]
        < ttft["replay/anthropic:mock-balanced"]
        < ttft["replay/bedrock:mock-steady"]
        < ttft["replay/ollama:mock-slow"]
    )
    # Output layout: raw JSON, the request log beside it, summary.md with the comparison; no temp files.
    (log,) = (out / "raw").glob("requests-*.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 4 * 7 and sum(r["warmup"] for r in rows) == 4
    summary = (out / "summary.md").read_text()
    assert "time to first token" in summary and "## replay/ollama:mock-slow" in summary
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert (out / "history.csv").exists()


def _distribution_config(**overrides: object) -> ReplayConfig:
    profiles = {
        # TTFT shapes: log-normal, normal, bimodal, heavy-tailed; ITL and lengths vary too.
        "lognormal": ModelProfile(
            ttft=Dist.lognormal(0.080, 0.4), itl=Dist.normal(0.006, 0.002), output_tokens=Dist.fixed(12)
        ),
        "normal": ModelProfile(
            ttft=Dist.normal(0.070, 0.012), itl=Dist.fixed(0.004), output_tokens=Dist.lognormal(16, 0.4)
        ),
        "bimodal": ModelProfile(
            ttft=Dist.empirical([0.05] * 7 + [0.22] * 3),
            itl=Dist.lognormal(0.005, 0.5),
            output_tokens=Dist.fixed(10),
        ),
        "heavy": ModelProfile(
            ttft=Dist.lognormal(0.060, 0.9), itl=Dist.normal(0.008, 0.001), output_tokens=Dist.fixed(8)
        ),
    }
    targets = [
        parse_target("openai:lognormal@mock", {}),
        parse_target("anthropic:normal@mock", {}),
        parse_target("ollama:bimodal@mock", {}),
        parse_target("openai:heavy@mock", {}),
    ]
    settings: dict[str, object] = {
        "targets": targets,
        "prompts": builtin("chat"),
        "dataset": "chat",
        "load": LoadSpec(limits=Limits(requests=60), concurrency=4, warmup=2),
        # All at once: quicker, and a busy client changes the values, not their agreement.
        "parallel": True,
        "mock_config": MockConfig(seed=3, profiles=profiles),
    }
    settings.update(overrides)
    return ReplayConfig(**settings)  # type: ignore[arg-type]


def test_metric_percentiles_agree_with_the_raw_log_within_one_percent() -> None:
    outcome = run_replay(_distribution_config())
    assert not outcome.interrupted
    for run in outcome.runs:
        report = build_report(run, [], PriceTable())
        assert report.requests == 60 and report.raw_requests == 60 and not report.errors, run.target.id
        for name in ("ttft", "duration", "tpot", "itl"):
            lat = report.latencies[name]
            assert lat.metric is not None and lat.raw is not None, (run.target.id, name)
            for q in QUANTILES:
                metric, raw = lat.metric.q(q), lat.raw.quantiles[q]
                assert metric == pytest.approx(raw, rel=0.01), (run.target.id, name, q, metric, raw)
        # The summary's own cross-check says the same.
        assert report.max_diff < 0.01, (run.target.id, report.max_diff, report.max_diff_at)
        # The recorded values are the instrumentation's clock; the client's own timer starts a
        # little earlier (the wrapper opens its span first) and sees the chunk a little later.
        median, _ = report.client_offset["ttft"]
        assert 0 <= median < 0.005, (run.target.id, median)
        # And the harness's count is the mock's: warm-up + measured, nothing lost or doubled.
        assert run.ground_truth is not None
        assert run.ground_truth.served == run.ground_truth.sent == 62


def test_open_loop_beyond_the_clients_capacity_reports_send_lag(tmp_path: Path) -> None:
    # 3 000 req/s through the OpenAI SDK is far beyond one client process (~100-300/s here):
    # the schedule must stay as intended and the lag must show, not a quietly lower rate.
    config = _distribution_config(
        targets=[parse_target("openai:quick@mock", {})],
        mock_config=MockConfig(
            profiles={
                "quick": ModelProfile(
                    ttft=Dist.fixed(0.002), itl=Dist.fixed(0.001), output_tokens=Dist.fixed(2)
                )
            }
        ),
        load=LoadSpec(limits=Limits(requests=300), rate=3000, arrival="constant", warmup=2),
        parallel=False,
    )
    outcome = run_replay(config)
    (run,) = outcome.runs
    measured = sorted(run.measured, key=lambda r: r.index)
    assert len(measured) == 300 and all(r.ok for r in measured)
    start = measured[0].intended_ns
    # Intended send times are the absolute schedule i / 3000 s...
    assert [round((r.intended_ns - start) / 1e6, 3) for r in measured[:5]] == [0.0, 0.333, 0.667, 1.0, 1.333]
    assert (measured[-1].intended_ns - start) / 1e9 == pytest.approx(299 / 3000)
    # ...the actual ones fell behind, and the report says by how much.
    report = build_report(run, [], PriceTable())
    assert report.send_lag is not None and report.send_lag.max > 0.05
    assert report.send_lag.quantiles[0.99] > 10 * report.send_lag.quantiles[0.5] or report.send_lag.max > 0.1
    results = {}
    from otelbench.replay.report import compare, to_results

    for result in to_results(outcome, [report], compare([report]), None):
        results[result.target_id] = result
    metrics = results["replay/openai:quick"].metrics
    assert metrics["send_lag_max_s"] == pytest.approx(report.send_lag.max)
    assert metrics["achieved_rate_rps"] < 0.8 * 3000


@pytest.mark.slow
def test_default_replay_ttft_matches_the_mock_profiles(tmp_path: Path) -> None:
    """`otelbench replay` with no arguments: < 30 s, four providers, TTFT medians within 2 ms."""
    import os
    import subprocess
    import sys
    import time

    from otelbench.replay.defaults import TTFT_MEDIANS

    exe = str(Path(sys.executable).parent / "otelbench")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    began = time.monotonic()
    proc = subprocess.run([exe, "replay"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    assert took < 30, took
    assert "openai:mock-fast" in proc.stdout and "ollama:mock-slow" in proc.stdout
    assert "bedrock:mock-steady" in proc.stdout
    results = read_results(tmp_path / "benchmarks" / "output")
    assert len(results) == 4
    for target_id, result in results.items():
        model = target_id.split(":")[-1]
        gt = result["details"]["mock_ground_truth"]
        assert gt["served"] == gt["sent"] == 44
        # The metric-derived TTFT median = configured median + what the SDK spends building and
        # sending the request before the mock has it (arrival_ns - the client's call time, same
        # monotonic clock). What remains is the client's receive path and the mock's jitter.
        expected = TTFT_MEDIANS[model] + gt["send_overhead_p50_s"]
        measured = result["metrics"]["ttft_p50_s"]
        assert abs(measured - expected) <= 0.002, (target_id, measured, expected, gt)
        # The mock itself kept to its profile (its own clock): within a millisecond of the median.
        assert gt["server_ttft_p50_s"] == pytest.approx(TTFT_MEDIANS[model], abs=0.001)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["openai", "anthropic", "ollama"])
def test_concurrency_1000_loses_and_doubles_nothing(scheme: str) -> None:
    profile = ModelProfile(ttft=Dist.fixed(1.0), itl=Dist.fixed(0.001), output_tokens=Dist.fixed(4))
    config = ReplayConfig(
        targets=[parse_target(f"{scheme}:wide@mock", {})],
        prompts=builtin("chat"),
        dataset="chat",
        load=LoadSpec(limits=Limits(requests=1000), concurrency=1000, warmup=4),
        mock_config=MockConfig(default_profile=profile),
    )
    outcome = run_replay(config)
    (run,) = outcome.runs
    served = [r for r in outcome.mock_records if r.model == "wide"]
    assert len(served) == len(run.requests) == 1004  # mock ground truth = harness count
    assert len({r.request_id for r in served}) == 1004
    assert sorted(r.index for r in run.measured) == list(range(1000))
    assert all(r.ok for r in run.requests), {r.error_type for r in run.requests}
    assert run.metrics is not None and run.metrics.requests == 1000 and not run.metrics.errors
    assert run.metrics.ttft is not None and run.metrics.ttft.count == 1000
    # The load was really concurrent at the server. Building and sending one request costs the
    # client a few ms of CPU, so on 2 cores not all 1 000 reach the server within the 1 s TTFT;
    # several hundred open at once shows that no connection limit (the SDKs keep 100 alive by
    # default) serialised the load.
    events = sorted(
        [(r.arrival_ns, 1) for r in served] + [(r.last_byte_ns or r.arrival_ns, -1) for r in served]
    )
    peak = depth = 0
    for _, step in events:
        depth += step
        peak = max(peak, depth)
    assert peak > 300, peak
    assert not math.isnan(build_report(run, [], PriceTable()).max_diff)


def test_sdk_retries_are_counted_as_attempts(tmp_path: Path) -> None:
    # A quarter of the mock's answers are 429 with a 10 ms retry-after: the SDKs retry, and every
    # attempt is one HTTP request the mock served, so the attempts in the raw log (from the GenAI
    # spans) must add up to the mock's own count.
    config = _distribution_config(
        targets=[parse_target("openai:flaky@mock", {}), parse_target("anthropic:flaky@mock", {})],
        mock_config=MockConfig(
            seed=5,
            profiles={
                "flaky": ModelProfile(
                    ttft=Dist.fixed(0.01), itl=Dist.fixed(0.001), output_tokens=Dist.fixed(3)
                )
            },
            fault_rates={"429:0.01": 0.25},
        ),
        load=LoadSpec(limits=Limits(requests=40), concurrency=4, warmup=0),
        parallel=False,
    )
    outcome = run_replay(config)
    for run in outcome.runs:
        served = [r for r in outcome.mock_records if r.protocol == run.target.scheme]
        assert all(r.attempts for r in run.requests)
        assert sum(r.attempts or 0 for r in run.requests) == len(served), run.target.id
        assert any((r.attempts or 0) > 1 for r in run.requests), run.target.id
        # A request is ok unless all three attempts hit a 429; the metrics agree with the log.
        failed = [r for r in run.measured if not r.ok]
        assert all(r.error_type == "RateLimitError" and r.attempts == 3 for r in failed)
        assert run.metrics is not None and sum(run.metrics.errors.values()) == len(failed)
