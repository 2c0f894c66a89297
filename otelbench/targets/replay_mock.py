"""Target ``replay-mock``: a short ``otelbench replay`` against the embedded mock.

``requests`` streamed chat requests (after ``warmup``) through the instrumented OpenAI SDK to the
embedded mock's ``mock-fast`` model (TTFT median 60 ms, in a child process), closed loop at
``concurrency``; the statistics are the replay's own (:mod:`otelbench.replay.report`): latencies
from the exported histograms, cross-checked against the raw per-request values.

Metrics: ``ttft_p50_s``, ``ttft_p95_s``, ``duration_p50_s``, ``duration_p95_s`` (from the
exported metrics), ``requests``, ``errors``, ``requests_per_s``, ``metric_vs_raw_max_rel_diff``
(largest relative difference between a histogram percentile and the exact one) and
``ttft_p50_vs_mock_ratio``: measured TTFT median over the mock's own (server-side) TTFT median
in the same run, i.e. what the client, the SDK and the network add. The per-request TTFT and
duration values are kept in ``details["samples"]`` (series ``ttft`` and ``duration``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from otelbench.datasets import builtin
from otelbench.load import Limits

from . import BenchmarkError, BenchmarkResult, utc_now_iso

TARGET_ID = "replay-mock"
_KEPT = (
    "requests",
    "errors",
    "requests_per_s",
    "ttft_p50_s",
    "ttft_p95_s",
    "duration_p50_s",
    "duration_p95_s",
    "metric_vs_raw_max_rel_diff",
)


@dataclass(frozen=True)
class ReplayMockConfig:
    """Sizes of the run."""

    target: str = "openai:mock-fast@mock"
    requests: int = 40
    concurrency: int = 8
    warmup: int = 4
    seed: int = 0


class ReplayMockTarget:
    """A few dozen replayed requests against the embedded mock, summarised from the metrics."""

    id = TARGET_ID
    description = "short replay against the embedded mock: TTFT/duration p50/p95, metric-vs-raw diff"

    def __init__(self, **overrides: Any) -> None:
        self.config = ReplayMockConfig(**overrides)
        if self.config.requests < 2:
            raise ValueError("requests must be >= 2")

    def run(self) -> BenchmarkResult:
        """Run the replay and keep its headline figures and per-request samples."""
        from otelbench.replay import LoadSpec, ReplayConfig, parse_target, run_replay
        from otelbench.replay.pricing import PriceTable
        from otelbench.replay.report import build_report, to_results

        cfg = self.config
        timestamp = utc_now_iso()
        started = time.monotonic()
        config = ReplayConfig(
            targets=[parse_target(cfg.target, os.environ)],
            prompts=builtin("chat"),
            dataset="chat",
            load=LoadSpec(
                limits=Limits(requests=cfg.requests), concurrency=cfg.concurrency, warmup=cfg.warmup
            ),
            seed=cfg.seed,
        )
        outcome = run_replay(config)
        (run,) = outcome.runs
        report = build_report(run, [], PriceTable(), seed=cfg.seed)
        (full,) = to_results(outcome, [report], [], None)
        metrics = {name: full.metrics.get(name, float("nan")) for name in _KEPT}
        if not metrics["requests"]:
            raise BenchmarkError("the replay recorded no requests in its metrics")
        truth = full.details.get("mock_ground_truth") or {}
        server_ttft = truth.get("server_ttft_p50_s")
        metrics["ttft_p50_vs_mock_ratio"] = (
            metrics["ttft_p50_s"] / server_ttft if server_ttft else float("nan")
        )
        ok = [r for r in run.measured if r.ok]
        samples = {
            "ttft": [round(r.ttft, 9) for r in ok if r.ttft is not None],
            "duration": [round(r.duration, 9) for r in ok if r.duration is not None],
        }
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "samples": samples,
            "mock_ground_truth": truth,
            "metric_vs_raw_max_at": full.details.get("metric_vs_raw_max_at"),
            "ci95": full.details.get("ci95"),
            "warnings": full.details.get("warnings", []),
            "total_seconds": round(time.monotonic() - started, 2),
        }
        return BenchmarkResult(self.id, metrics, timestamp, details=details)
