"""`otelbench compare`: regressions of real replays against the mock, the rules, and bad input.

The end-to-end tests replay through the real OpenAI SDK (instrumented) against the embedded mock
on 127.0.0.1 with `otelbench replay`, then compare the result files with `otelbench compare`. A
mock profile whose TTFT is 1.5 x the baseline's must be flagged; the TTFT of reruns of the
baseline's own profile must not be (the mock's latencies are random, so each rerun is a fresh
sample).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from otelbench.cli import main
from otelbench.compare import compare_results, direction, load, relative_change, series_for
from otelbench.targets import BenchmarkResult, write_results

#: The baseline's profile. TTFT long and narrow: the median of 30 requests varies by ~1 % from
#: sample to sample, and a busy machine's extra client delay (15 ms seen on a shared 2-core VM) is
#: ~2.5 % of it, both well inside the 5 % threshold; ITL long enough (50 ms) that the client's
#: scheduling noise (a few ms on a busy machine) is small beside it too.
PROFILE = """
seed = {seed}
[default]
ttft_ms = {{ normal = [{ttft}, {sd}] }}
itl_ms = {{ normal = [50, 2] }}
output_tokens = 4
"""
TTFT_MS, TTFT_SD_MS = 600.0, 30.0


def replay(tmp: Path, name: str, slowdown: float = 1.0, seed: int = 0) -> Path:
    """One small `otelbench replay` against the embedded mock; the path of its results JSON."""
    config = tmp / f"{name}.toml"
    config.write_text(PROFILE.format(seed=seed, ttft=TTFT_MS * slowdown, sd=TTFT_SD_MS * slowdown))
    out = tmp / name
    args = ["replay", "--target", "openai:bench@mock", "--mock-config", str(config)]
    args += ["--requests", "30", "--concurrency", "10", "--warmup", "4", "--seed", str(seed)]
    args += ["--no-progress", "--output-dir", str(out)]
    assert main(args) == 0
    (raw,) = (out / "raw").glob("benchmarks-*.json")
    return raw


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference replay, shared by the end-to-end tests."""
    return replay(tmp_path_factory.mktemp("baseline"), "baseline")


def test_a_slowed_mock_is_flagged_as_a_regression(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slowed = replay(tmp_path, "slowed", slowdown=1.5, seed=1)
    capsys.readouterr()
    markdown = tmp_path / "compare.md"

    code = main(["compare", str(baseline), str(slowed), "--markdown", str(markdown)])

    out = capsys.readouterr().out
    assert code == 1
    comparison = compare_results(load(baseline), load(slowed))
    flagged = {c.metric for c in comparison.regressions}
    assert {"ttft_p50_s", "ttft_mean_s", "duration_p50_s"} <= flagged
    # Tested on the per-request values of the raw log written beside the JSON.
    ttft = next(c for c in comparison.changes if c.metric == "ttft_p50_s")
    assert ttft.n_old == ttft.n_new == 30 and ttft.p_value is not None and ttft.p_value < 0.001
    assert ttft.change > 0.05
    row = next(line for line in out.splitlines() if " ttft_p50_s " in line)
    assert row.split()[-1] == "regression"
    assert f"{len(comparison.regressions)} regression(s)" in out
    text = markdown.read_text()
    assert "| replay/openai:bench | ttft_p50_s |" in text and "regression" in text
    # The other way round, the same metric is an improvement (--baseline form of the command).
    main(["compare", "--baseline", str(slowed), str(baseline)])
    row = next(line for line in capsys.readouterr().out.splitlines() if " ttft_p50_s " in line)
    assert row.split()[-1] == "improvement"


@pytest.mark.slow
def test_identical_reruns_are_not_flagged(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Gated on TTFT, what the slowed profile changes. The streaming tails (tpot, itl, duration
    # p95) of a rerun do move when other jobs load the shared machine (once in ~10 reruns here,
    # e.g. tpot p95 +75 % with p = 0.001): a real slowdown of that run, which the full
    # comparison then reports, as it should; it is not what this false-positive check is about.
    for seed in (1, 2, 3):
        rerun = replay(tmp_path, f"rerun{seed}", seed=seed)
        capsys.readouterr()
        code = main(["compare", str(baseline), str(rerun), "--match", "ttft"])
        out = capsys.readouterr().out
        assert code == 0, out
        comparison = compare_results(load(baseline), load(rerun), match=re.compile("ttft"))
        assert comparison.regressions == []
        # The test did run: the TTFT metrics were compared on their per-request values.
        tested = [c for c in comparison.changes if c.p_value is not None]
        assert {c.metric for c in tested} >= {"ttft_p50_s", "ttft_mean_s", "ttft_p95_s"}
        assert all(c.n_old == c.n_new == 30 for c in tested)


# --- the rules, on result files written by write_results --------------------------------------
def results_file(tmp: Path, name: str, metrics: dict[str, float], samples: dict[str, list[float]]) -> Path:
    result = BenchmarkResult("micro", metrics, "2025-01-31T12:00:00+00:00", details={"samples": samples})
    raw, _ = write_results([result], tmp / name)
    return raw


def rounds(center: float, n: int = 15, seed: int = 0, spread: float = 0.02) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def test_direction_follows_the_metric_name() -> None:
    lower = ["ttft_p95_s", "per_call_overhead_us", "stream_end_late_p50_ms", "server_cpu_us_per_request"]
    lower += [
        "client_peak_rss_mib",
        "client_rss_growth_mib",
        "errors",
        "error_rate",
        "cached_hit_vs_memo_ratio",
        "ttft_cv",
    ]
    lower += ["metric_vs_raw_max_rel_diff", "chaos_telemetry_mismatches", "cost_usd", "client_cpu_s"]
    higher = ["requests_per_s", "cached_hit_ops_per_s", "requests_per_s_per_core", "chunks_per_s_max"]
    higher += ["goodput_rps", "hit_rate_cap100", "slo_attainment", "chaos_success_rate"]
    neutral = ["requests", "input_tokens", "server_cpu_util", "client_minus_recorded_ttft_p50_s", "partial"]
    assert {m: direction(m) for m in lower} == dict.fromkeys(lower, "lower")
    assert {m: direction(m) for m in higher} == dict.fromkeys(higher, "higher")
    assert {m: direction(m) for m in neutral} == dict.fromkeys(neutral)


def test_series_and_relative_change() -> None:
    series = {"ttft": [1.0], "ttft_p50_s": [2.0], "duration": [3.0]}
    assert series_for(series, "ttft_p50_s") == "ttft_p50_s"
    assert series_for(series, "ttft_p95_s") == "ttft"
    assert series_for(series, "tpot_p50_s") is None
    assert relative_change(2.0, 3.0) == pytest.approx(0.5)
    assert relative_change(-2.0, -1.0) == pytest.approx(0.5)
    assert relative_change(0.0, 0.0) == 0.0 and relative_change(0.0, 1.0) == float("inf")


def test_slower_and_faster_rounds_are_judged_by_direction(tmp_path: Path) -> None:
    old = results_file(
        tmp_path,
        "old",
        {"op_us": 10.0, "op_ops_per_s": 1e5, "count": 5.0, "nosamples_us": 1.0},
        {"op_us": rounds(10.0), "op_ops_per_s": rounds(1e5)},
    )
    new = results_file(
        tmp_path,
        "new",
        {"op_us": 12.0, "op_ops_per_s": 1.2e5, "count": 9.0, "nosamples_us": 2.0},
        {"op_us": rounds(12.0, seed=1), "op_ops_per_s": rounds(1.2e5, seed=1)},
    )
    verdicts = {c.metric: c.verdict for c in compare_results(load(old), load(new)).changes}
    assert verdicts == {
        "op_us": "regression",  # lower is better and it grew
        "op_ops_per_s": "improvement",  # higher is better and it grew
        "count": "not judged",
        "nosamples_us": "untested",  # beyond the threshold, but nothing to test it with
    }
    # A significant change smaller than the threshold is not a regression.
    small = results_file(tmp_path, "small", {"op_us": 10.3}, {"op_us": rounds(10.3, seed=2, spread=0.001)})
    tight = results_file(tmp_path, "tight", {"op_us": 10.0}, {"op_us": rounds(10.0, seed=3, spread=0.001)})
    (change,) = compare_results(load(tight), load(small)).changes
    assert change.p_value is not None and change.p_value < 0.01
    assert change.verdict == "within threshold"
    (change,) = compare_results(load(tight), load(small), threshold=0.01).changes
    assert change.verdict == "regression"


def test_match_restricts_the_compared_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = {"op_us": 10.0, "op_ratio": 2.0}
    old = results_file(tmp_path, "old", metrics, {"op_us": rounds(10.0), "op_ratio": rounds(2.0)})
    new = results_file(
        tmp_path, "new", {"op_us": 20.0, "op_ratio": 2.0}, {"op_us": rounds(20.0), "op_ratio": rounds(2.0)}
    )
    assert main(["compare", str(old), str(new)]) == 1  # op_us doubled
    capsys.readouterr()
    assert main(["compare", str(old), str(new), "--match", "_ratio$", "--all"]) == 0
    out = capsys.readouterr().out
    assert "op_ratio" in out and "op_us" not in out
    assert main(["compare", str(old), str(new), "--match", "nothing"]) == 2
    assert "'nothing'" in one_line_error(capsys)


def test_replay_results_are_tested_on_the_raw_log_beside_them(tmp_path: Path) -> None:
    def replay_file(name: str, ttfts: list[float]) -> Path:
        out = tmp_path / name
        log = "requests-x.jsonl"
        rows = [{"target": "openai:m", "warmup": False, "status": "ok", "ttft_s": t} for t in ttfts]
        rows.append({"target": "openai:m", "warmup": True, "status": "ok", "ttft_s": 99.0})  # not counted
        rows.append({"target": "other:m", "warmup": False, "status": "ok", "ttft_s": 99.0})  # not ours
        (out / "raw").mkdir(parents=True)
        (out / "raw" / log).write_text("".join(json.dumps(r) + "\n" for r in rows))
        median = sorted(ttfts)[len(ttfts) // 2]
        result = BenchmarkResult(
            "replay/openai:m",
            {"ttft_p50_s": median},
            "2025-01-31T12:00:00+00:00",
            details={"target": "openai:m", "raw_log": log},
        )
        raw, _ = write_results([result], out)
        return raw

    old = replay_file("old", rounds(0.1, n=20))
    new = replay_file("new", rounds(0.2, n=20, seed=1))
    (change,) = compare_results(load(old), load(new)).changes
    assert (change.n_old, change.n_new) == (20, 20)
    assert change.verdict == "regression"
    # Without its raw log the metric cannot be tested: a note, and no regression.
    (new.parent / "requests-x.jsonl").unlink()
    comparison = compare_results(load(old), load(new))
    assert comparison.changes[0].verdict == "untested"
    assert any("requests-x.jsonl" in note for note in comparison.notes)


def test_overlapping_rounds_are_not_significant(tmp_path: Path) -> None:
    old = results_file(tmp_path, "old", {"op_us": 10.0}, {"op_us": rounds(10.0, spread=0.5)})
    new = results_file(tmp_path, "new", {"op_us": 11.0}, {"op_us": rounds(10.0, seed=1, spread=0.5)})
    (change,) = compare_results(load(old), load(new)).changes
    assert change.verdict == "not significant"
    assert main(["compare", str(old), str(new)]) == 0


# --- bad input ---------------------------------------------------------------------------------
def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_missing_and_invalid_files_exit_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = results_file(tmp_path, "good", {"op_us": 1.0}, {})
    missing = tmp_path / "missing.json"
    assert main(["compare", str(good), str(missing)]) == 2
    assert str(missing) in one_line_error(capsys)

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["compare", "--baseline", str(broken), str(good)]) == 2
    assert str(broken) in one_line_error(capsys)

    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"hello": 1}))
    assert main(["compare", str(foreign), str(good)]) == 2
    assert str(foreign) in one_line_error(capsys)

    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert main(["compare", str(good), str(good), "--markdown", str(blocked / "out.md")]) == 2
    assert str(blocked / "out.md") in one_line_error(capsys)

    other = tmp_path / "other"
    unrelated = write_results([BenchmarkResult("x", {"a": 1.0}, "2025-01-31T12:00:00+00:00")], other)[0]
    assert main(["compare", str(good), str(unrelated)]) == 2
    assert "no metric in common" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["one.json"], "got 1 file"),
        (["--baseline", "a.json", "b.json", "c.json"], "exactly one NEW"),
        (["a.json", "b.json", "--threshold", "lots"], "'lots'"),
        (["a.json", "b.json", "--threshold", "-3"], "'-3'"),
        (["a.json", "b.json", "--alpha", "1.5"], "'1.5'"),
        (["a.json", "b.json", "--match", "("], "'('"),
    ],
)
def test_misuse_exits_2_with_one_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["compare", *args])
    except SystemExit as exc:  # argparse rejects bad option values while parsing
        code = int(exc.code or 0)
    assert code == 2
    assert needle in one_line_error(capsys)
