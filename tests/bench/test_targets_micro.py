"""The cache, router, breaker, retry and replay targets, and resource accounting: correctness only.

Every target runs shrunk (its figures mean nothing then) against the real OTel SDK, the real
tenacity/pybreaker/decorators and, where it talks to a provider, the real mock on 127.0.0.1.
What is checked: the metrics each target names exist and are finite, the telemetry it exports
matches its own ground truth, and the relationships the workload implies hold. No timing is
ever asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import otelbench.cli
from otelbench.targets import (
    BenchmarkResult,
    all_targets,
    on_request_only,
    read_results,
    with_resource_usage,
)
from otelbench.targets.breaker import BreakerTarget
from otelbench.targets.cache import CacheTarget, LRUStore, workload
from otelbench.targets.replay_mock import ReplayMockTarget
from otelbench.targets.retry import RetryTarget
from otelbench.targets.router import STRATEGIES, RouterTarget
from otelbench_instrumentation import PyBreakerInstrumentor, TenacityInstrumentor

NEW_TARGETS = ("cache-decorator", "router-decisions", "circuit-breaker", "retry-backoff", "replay-mock")


def assert_finite(result: BenchmarkResult, names: list[str]) -> None:
    missing = [n for n in names if n not in result.metrics]
    assert not missing, missing
    bad = {n: result.metrics[n] for n in names if not math.isfinite(result.metrics[n])}
    assert not bad, bad
    json.dumps(result.to_json(), allow_nan=False)  # details are plain JSON


def assert_samples_back_metrics(result: BenchmarkResult) -> None:
    """Every per-round sample series names a reported metric and has one value per round."""
    samples = result.details["samples"]
    assert samples
    for name, values in samples.items():
        assert name in result.metrics, name
        assert values and all(math.isfinite(v) for v in values), name


def test_the_new_targets_are_registered() -> None:
    ids = [t.id for t in all_targets()]
    assert set(NEW_TARGETS) <= set(ids)
    for target in all_targets():
        assert getattr(target, "description", ""), target.id


# --- cache ---------------------------------------------------------------------------------------
def test_lru_store_evicts_the_least_recently_used() -> None:
    store = LRUStore(2)
    store["a"] = 1
    store["b"] = 2
    assert store.get("a") == 1  # "a" is now the most recent
    store["c"] = 3
    assert store.get("b", "gone") == "gone"
    assert store.get("a") == 1 and store.get("c") == 3 and len(store) == 2


def test_workload_is_80_20() -> None:
    keys = workload(20_000, universe=1000, seed=1)
    hot = sum(1 for k in keys if k < 200) / len(keys)
    assert hot == pytest.approx(0.8, abs=0.02)
    assert workload(100, 1000, seed=1) == workload(100, 1000, seed=1)


def test_cache_target_reports_every_operation_and_the_hit_rate_curve() -> None:
    capacities = (10, 50, 100, 250, 500)
    result = CacheTarget(rounds=2, ops=50, capacities=capacities, requests=3000, time_budget_s=10).run()

    ops = [
        f"{v}_{op}"
        for v, op_names in (
            ("lru_cache", ("hit", "miss")),
            ("memo", ("hit", "miss")),
            ("cached", ("hit", "miss")),
            ("store", ("write", "read_hit", "read_miss")),
        )
        for op in op_names
    ]
    names = [f"{o}_us" for o in ops] + [f"{o}_ops_per_s" for o in ops]
    names += [f"cached_{op}_vs_memo_ratio" for op in ("hit", "miss")]
    names += [f"cached_{op}_vs_lru_cache_ratio" for op in ("hit", "miss")]
    names += [f"hit_rate_cap{c}" for c in capacities]
    assert_finite(result, names)
    assert_samples_back_metrics(result)
    details = result.details
    assert details["warnings"] == []
    # One span per decorated call, none lost.
    assert details["spans_exported"] == details["spans_expected"] > 0
    rates = [result.metrics[f"hit_rate_cap{c}"] for c in capacities]
    # The exported hit rate equals functools.lru_cache's on the same requests (both exact LRUs) ...
    assert rates == [details["reference_hit_rate"][str(c)] for c in capacities]
    # ... grows with capacity (LRU is a stack algorithm), and with room for the hot 20 % of keys
    # the 80/20 workload hits about 80 % of the time.
    assert rates == sorted(rates)
    assert 0 < rates[0] < 0.2
    assert 0.75 <= rates[-1] <= 0.95
    for name in ("cached_hit_us", "store_write_us"):
        assert result.metrics[name] > 0


# --- router --------------------------------------------------------------------------------------
def test_router_target_decides_identically_with_and_without_the_decorator() -> None:
    result = RouterTarget(decisions=600, rounds=3, time_budget_s=60).run()

    names = []
    for s in STRATEGIES:
        names += [f"{s}_decision_us", f"{s}_decision_ops_per_s", f"{s}_baseline_decision_us"]
        names += [f"{s}_overhead_us", f"{s}_ratio"]
    assert_finite(result, names)
    assert_samples_back_metrics(result)
    # Same decisions in both variants; exported counts equal what the routed function saw.
    assert result.details["warnings"] == []
    checks = result.details["checks"]
    for s in STRATEGIES:
        assert checks[s]["decisions"] == 600, s
        assert checks[s]["exported_final_routes"] == checks[s]["final_routes"], s
    spread = checks["round_robin"]["final_routes"].values()
    assert max(spread) - min(spread) <= 1  # round robin: an even split
    assert set(checks["cost"]["final_routes"]) >= {"small", "medium"}  # cheapest that fits
    fallback = checks["fallback"]
    assert 0 < fallback["fallbacks"] == fallback["exported_fallbacks"] < 600
    assert fallback["final_routes"]["medium"] == fallback["fallbacks"]


def test_router_target_rejects_an_empty_configuration() -> None:
    with pytest.raises(ValueError):
        RouterTarget(decisions=1, rounds=2)


# --- breaker -------------------------------------------------------------------------------------
def test_breaker_target_measures_state_checks_and_the_chaos_run_matches_ground_truth() -> None:
    result = BreakerTarget(rounds=2, ops=100).run()

    variants = [
        "bare_call",
        "closed_call",
        "closed_call_instrumented",
        "open_reject",
        "open_reject_instrumented",
    ]
    names = [f"{v}_us" for v in variants] + [f"{v}_ops_per_s" for v in variants]
    names += ["closed_call_overhead_us", "closed_call_ratio", "open_reject_overhead_us", "open_reject_ratio"]
    chaos = ["calls", "requests_served", "server_failures", "transitions", "rejected_calls", "success_rate"]
    names += [f"chaos_{n}" for n in [*chaos, "telemetry_mismatches"]]
    assert_finite(result, names)
    assert_samples_back_metrics(result)
    assert result.details["warnings"] == []
    m = result.metrics
    assert m["chaos_telemetry_mismatches"] == 0
    # Faults happened, the breaker cycled and refused calls while open.
    assert m["chaos_server_failures"] > 0 and m["chaos_transitions"] > 0 and m["chaos_rejected_calls"] > 0
    assert m["chaos_requests_served"] >= m["chaos_calls"] * m["chaos_success_rate"]
    assert 0 < m["chaos_success_rate"] <= 1
    # The transitions alternate through the three states, starting closed.
    seen = result.details["chaos"]["transitions_seen"]
    assert seen[0] == "closed->open"
    assert not PyBreakerInstrumentor().is_instrumented_by_opentelemetry
    assert not TenacityInstrumentor().is_instrumented_by_opentelemetry


# --- retry ---------------------------------------------------------------------------------------
def test_retry_target_counts_every_attempt_and_sleep() -> None:
    result = RetryTarget(rounds=2, ops=20, attempts=4).run()

    names = ["attempt_us", "attempt_ops_per_s", "attempt_baseline_us", "attempt_baseline_ops_per_s"]
    names += ["operation_us", "operation_baseline_us", "attempt_overhead_us", "attempt_ratio"]
    assert_finite(result, names)
    assert_samples_back_metrics(result)
    d = result.details
    assert d["warnings"] == []
    assert d["attempts_exported"] == d["attempts_made"] == 2 * 20 * 4
    assert d["sleeps_exported"] == d["sleeps_chosen"] == 2 * 20 * 3
    assert d["spans_exported"] == 2 * 20  # one span per retried operation
    assert not TenacityInstrumentor().is_instrumented_by_opentelemetry


# --- replay --------------------------------------------------------------------------------------
def test_replay_target_summarises_a_short_replay_against_the_mock() -> None:
    result = ReplayMockTarget(requests=8, concurrency=4, warmup=1).run()

    names = ["requests", "errors", "requests_per_s", "ttft_p50_s", "ttft_p95_s", "duration_p50_s"]
    names += ["duration_p95_s", "metric_vs_raw_max_rel_diff", "ttft_p50_vs_mock_ratio"]
    assert_finite(result, names)
    m = result.metrics
    assert m["requests"] == 8 and m["errors"] == 0
    assert 0 < m["ttft_p50_s"] <= m["ttft_p95_s"]
    assert m["ttft_p50_s"] < m["duration_p50_s"] <= m["duration_p95_s"]
    # The exported histograms agree with the raw values (the export path's own error).
    assert m["metric_vs_raw_max_rel_diff"] < 0.05
    # The client cannot see the first token before the mock wrote it.
    assert m["ttft_p50_vs_mock_ratio"] > 1
    samples = result.details["samples"]
    assert len(samples["ttft"]) == len(samples["duration"]) == 8
    assert result.details["mock_ground_truth"]["served"] == 9


# --- resource usage and `otelbench run` ----------------------------------------------------------
def test_resource_usage_is_added_to_a_result() -> None:
    def busy() -> BenchmarkResult:
        total = sum(i * i for i in range(300_000))  # some CPU time to account for
        return BenchmarkResult("busy", {"total": float(total)}, "2025-01-31T12:00:00+00:00", details={"k": 1})

    result = with_resource_usage(busy)
    assert result.metrics["total"] > 0
    assert result.metrics["client_cpu_s"] > 0
    assert result.metrics["client_peak_rss_mib"] > 1
    resources = result.details["resources"]
    assert set(resources) == {"cpu_user_s", "cpu_system_s", "wall_s", "peak_rss_mib"}
    assert result.details["k"] == 1


def test_otelbench_run_writes_json_and_summary_that_round_trip(tmp_path: Path) -> None:
    code = otelbench.cli.main(["run", "--only", "retry-backoff", "--output-dir", str(tmp_path)])
    assert code == 0
    (raw,) = (tmp_path / "raw").glob("benchmarks-*.json")
    document = json.loads(raw.read_text())
    (entry,) = document["results"]
    result = BenchmarkResult.from_json(entry)
    assert result.to_json() == entry
    assert read_results(raw) == [result]
    assert result.target_id == "retry-backoff"
    assert result.metrics["client_cpu_s"] > 0 and result.metrics["client_peak_rss_mib"] > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "## retry-backoff" in summary and "| attempt_ratio |" in summary
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) == 1 + len(result.metrics)


def test_otelbench_run_suggests_comparing_with_the_previous_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--only", "retry-backoff", "--output-dir", str(tmp_path)]
    assert otelbench.cli.main(args) == 0
    assert "otelbench compare" not in capsys.readouterr().out  # nothing to compare with yet
    (first,) = (tmp_path / "raw").glob("benchmarks-*.json")
    assert otelbench.cli.main(args) == 0
    hint = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("compare:"))
    _, _, _, old, new = hint.split()
    assert Path(old) == first and Path(new) != first and Path(new).exists()
    # The suggested command works on the two real files (exit 0 or 1, never bad input).
    assert otelbench.cli.main(["compare", old, new]) in (0, 1)


@pytest.mark.slow
def test_otelbench_run_executes_every_registered_target(tmp_path: Path) -> None:
    assert otelbench.cli.main(["run", "--output-dir", str(tmp_path)]) == 0
    (raw,) = (tmp_path / "raw").glob("benchmarks-*.json")
    results = read_results(raw)
    # The on-request-only targets have their own tests (they need valgrind, or peer tools).
    assert [r.target_id for r in results] == [t.id for t in all_targets() if not on_request_only(t)]
    for result in results:
        assert result.metrics, result.target_id
        assert "client_cpu_s" in result.metrics, result.target_id
    assert (tmp_path / "summary.md").exists()
