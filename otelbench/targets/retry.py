"""Target ``retry-backoff``: what ``TenacityInstrumentor`` costs per retry attempt.

One operation = a ``tenacity.Retrying`` run of a function that fails ``attempts - 1`` times and
then succeeds, with exponential backoff (``wait_exponential``) whose sleeps are computed as usual
but not slept (``sleep=`` a no-op, so the run is bounded and the figure is tenacity's and our
cost, not the clock's). Variants, interleaved in rounds with the instrumentation switched on or
off before each batch (untimed): ``baseline`` (uninstrumented) and ``instrumented`` (a span per
operation, an event and a counter per attempt, the chosen sleep in a histogram, real OTel SDK).

Metrics: ``attempt_us`` / ``attempt_ops_per_s`` (instrumented, per attempt),
``attempt_baseline_us`` / ``_ops_per_s``, ``attempt_overhead_us`` and ``attempt_ratio``
(instrumented against baseline), ``operation_us`` (instrumented, whole operation).
Correctness: the exported ``otelbench.retry.attempts`` and ``otelbench.retry.sleep.duration``
counts must equal the attempts and sleeps the instrumented batches made.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import tenacity

from otelbench_instrumentation import TenacityInstrumentor, semconv

from . import BenchmarkError, BenchmarkResult, utc_now_iso
from ._measure import Batch, Figures, Switch, frozen_heap, require_uninstrumented, rounded, run_rounds, sinks

TARGET_ID = "retry-backoff"


class TransientError(Exception):
    """The failure every attempt but the last raises."""


@dataclass(frozen=True)
class RetryConfig:
    """Sizes of the run."""

    attempts: int = 3  # per operation: attempts - 1 failures, then a success
    rounds: int = 15
    ops: int = 200  # operations per batch
    time_budget_s: float = 3.0


def _no_sleep(seconds: float) -> None:
    return None


class RetryTarget:
    """tenacity retries with and without our instrumentation, sleeps computed but skipped."""

    id = TARGET_ID
    description = "tenacity retry with exponential backoff (sleeps skipped): cost per attempt"

    def __init__(self, **overrides: Any) -> None:
        self.config = RetryConfig(**overrides)
        if self.config.attempts < 1 or self.config.ops < 1 or self.config.rounds < 1:
            raise ValueError("attempts, ops and rounds must be >= 1")

    def run(self) -> BenchmarkResult:
        """Time both variants, check the exported attempt counts, return the figures."""
        cfg = self.config
        require_uninstrumented(TenacityInstrumentor())
        timestamp = utc_now_iso()
        started = time.monotonic()
        made = {"attempts": 0, "sleeps": 0}
        clock = time.perf_counter_ns

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(cfg.attempts),
            wait=tenacity.wait_exponential(multiplier=0.1, max=5),
            retry=tenacity.retry_if_exception_type(TransientError),
            sleep=_no_sleep,
            reraise=True,
        )

        def operation() -> str:
            state = {"n": 0}

            def flaky() -> str:
                state["n"] += 1
                if state["n"] < cfg.attempts:
                    raise TransientError("try again")
                return "ok"

            return retrying(flaky)

        def batch(count: bool) -> Batch:
            def run(n: int) -> int:
                t0 = clock()
                for _ in range(n):
                    operation()
                elapsed = clock() - t0
                if count:
                    made["attempts"] += n * cfg.attempts
                    made["sleeps"] += n * (cfg.attempts - 1)
                return elapsed

            return run

        with sinks() as s, frozen_heap():
            with Switch(
                TenacityInstrumentor(), tracer_provider=s.tracer_provider, meter_provider=s.meter_provider
            ) as switch:
                rounds = run_rounds(
                    {"baseline": batch(False), "instrumented": batch(True)},
                    ops=cfg.ops,
                    rounds=cfg.rounds,
                    deadline=started + cfg.time_budget_s,
                    between=lambda variant: switch.set(variant == "instrumented"),
                )
            exported_attempts = s.total(semconv.METRIC_RETRY_ATTEMPTS)
            exported_sleeps = s.total(semconv.METRIC_RETRY_SLEEP)
            spans = s.spans()
        if exported_attempts == 0:
            raise BenchmarkError(
                "instrumented retries exported no attempts: the instrumentation is not working"
            )
        per_attempt = {v: [x / cfg.attempts for x in xs] for v, xs in rounds.per_op_us.items()}
        fig = Figures()
        fig.latency("attempt", per_attempt["instrumented"])
        fig.latency("attempt_baseline", per_attempt["baseline"])
        fig.put("operation_us", rounds.per_op_us["instrumented"])
        fig.put("operation_baseline_us", rounds.per_op_us["baseline"])
        diffs = [i - b for i, b in zip(per_attempt["instrumented"], per_attempt["baseline"], strict=True)]
        fig.put("attempt_overhead_us", diffs)
        fig.put("attempt_ratio", rounds.ratios("instrumented", "baseline"))
        warnings = []
        if exported_attempts != made["attempts"]:
            warnings.append(f"{exported_attempts:g} attempts exported, {made['attempts']} made")
        if exported_sleeps != made["sleeps"]:
            warnings.append(f"{exported_sleeps:g} sleeps exported, {made['sleeps']} chosen")
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "rounds": rounds.rounds,
            "per_round_us_per_operation": rounded(rounds.per_op_us),
            "samples": fig.samples,
            "attempts_made": made["attempts"],
            "attempts_exported": exported_attempts,
            "sleeps_chosen": made["sleeps"],
            "sleeps_exported": exported_sleeps,
            "spans_exported": spans,
            "total_seconds": round(time.monotonic() - started, 2),
            "warnings": warnings,
        }
        return BenchmarkResult(self.id, fig.metrics, timestamp, details=details)
