"""Target ``circuit-breaker``: the cost of pybreaker's state check with our listener, and a chaos run.

**State-check cost.** Every ``breaker.call(fn)`` checks the breaker's state first. Timed per call,
``fn`` doing nothing, in interleaved rounds (see :mod:`otelbench.targets._measure`):

* ``bare_call``: ``fn()`` without a breaker (reference).
* ``closed_call`` / ``closed_call_instrumented``: through a closed breaker, without / with
  ``PyBreakerInstrumentor`` (the ``call`` wrapper and the listener counting the success).
* ``open_reject`` / ``open_reject_instrumented``: through an open breaker, which raises
  ``CircuitBreakerError`` at once (instrumented: the rejection is counted and an event added).

The instrumentation is switched on or off before each batch (untimed) and each batch gets a
breaker created in that state, since the listener is attached when a breaker is created.
Metrics: ``{variant}_us``/``_ops_per_s``, ``closed_call_overhead_us``/``_ratio``,
``open_reject_overhead_us``/``_ratio`` (instrumented against uninstrumented).

**Chaos.** The real OpenAI SDK against the mock on 127.0.0.1 answering 500 to ``chaos_fault_rate``
of the requests (seeded), each call through ``tenacity`` (3 attempts, no wait) and a breaker
(``fail_max=3``, ``success_threshold=2``, 5 ms reset timeout), both instrumented. Reported:
``chaos_calls``, ``chaos_server_failures``, ``chaos_transitions`` and ``chaos_rejected_calls``
(from the exported counters), ``chaos_success_rate``, and ``chaos_telemetry_mismatches``: how many
exported counts differ from the ground truth (the mock's records, the app's own counters and a
listener of the target's own); 0 when the telemetry is right.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import openai
import pybreaker
import tenacity

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile
from otelbench_instrumentation import PyBreakerInstrumentor, TenacityInstrumentor, semconv

from . import BenchmarkResult, utc_now_iso
from ._measure import (
    Batch,
    Figures,
    Sinks,
    Switch,
    frozen_heap,
    require_uninstrumented,
    rounded,
    run_rounds,
    sinks,
)

TARGET_ID = "circuit-breaker"
CHAOS_MODEL = "chaos-model"
_FAST = ModelProfile(ttft=Dist.fixed(0.0), itl=Dist.fixed(0.0), output_tokens=Dist.fixed(2))


class _Truth(pybreaker.CircuitBreakerListener):
    """The target's own record of a breaker (independent of the instrumentation)."""

    def __init__(self) -> None:
        self.transitions: list[tuple[str, str]] = []
        self.successes = 0
        self.failures = 0

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.transitions.append((old_state.name if old_state else "", new_state.name))

    def success(self, cb: Any) -> None:
        self.successes += 1

    def failure(self, cb: Any, exc: BaseException) -> None:
        self.failures += 1


@dataclass(frozen=True)
class BreakerConfig:
    """Sizes of the run."""

    rounds: int = 15
    ops: int = 1000
    time_budget_s: float = 3.0
    chaos_calls: int = 150
    chaos_fault_rate: float = 0.3
    seed: int = 0


def _noop() -> None:
    return None


class BreakerTarget:
    """pybreaker's per-call state check with and without our instrumentation; a chaos scenario."""

    id = TARGET_ID
    description = "circuit breaker: state-check cost instrumented vs not; chaos transitions and rejections"

    def __init__(self, **overrides: Any) -> None:
        self.config = BreakerConfig(**overrides)
        if min(self.config.rounds, self.config.ops, self.config.chaos_calls) < 1:
            raise ValueError("rounds, ops and chaos_calls must be >= 1")

    def run(self) -> BenchmarkResult:
        """Measure the state-check cost, run the chaos scenario, return both."""
        cfg = self.config
        instrumentors = (PyBreakerInstrumentor(), TenacityInstrumentor())
        require_uninstrumented(*instrumentors)
        timestamp = utc_now_iso()
        started = time.monotonic()
        with sinks() as s, frozen_heap():
            rounds = self._state_check(s)
        with (
            sinks() as s,
            Switch(
                instrumentors[0],
                tracer_provider=s.tracer_provider,
                meter_provider=s.meter_provider,
                attach_existing=False,
            ) as breakers,
            Switch(
                instrumentors[1], tracer_provider=s.tracer_provider, meter_provider=s.meter_provider
            ) as retries,
        ):
            breakers.set(True)
            retries.set(True)
            chaos, warnings = self._chaos(s)
        fig = Figures()
        for name, values in rounds.per_op_us.items():
            fig.latency(name, values)
        fig.compare("closed_call", rounds, "closed_call_instrumented", "closed_call")
        fig.compare("open_reject", rounds, "open_reject_instrumented", "open_reject")
        metrics = {**fig.metrics, **{f"chaos_{k}": float(v) for k, v in chaos["metrics"].items()}}
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "rounds": rounds.rounds,
            "per_round_us": rounded(rounds.per_op_us),
            "samples": fig.samples,
            "chaos": chaos["details"],
            "total_seconds": round(time.monotonic() - started, 2),
            "warnings": warnings,
        }
        return BenchmarkResult(self.id, metrics, timestamp, details=details)

    # --- state-check cost -------------------------------------------------------------------
    def _state_check(self, s: Sinks) -> Any:
        cfg = self.config
        switch = Switch(PyBreakerInstrumentor(), meter_provider=s.meter_provider, attach_existing=False)
        current: dict[str, Any] = {}
        clock = time.perf_counter_ns

        def prepare(variant: str) -> None:
            switch.set(variant.endswith("_instrumented"))
            # Created now, so it carries the listener exactly when instrumented.
            breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600, name=f"bench-{variant}")
            if variant.startswith("open"):
                breaker.open()
            current["breaker"] = breaker

        def bare(n: int) -> int:
            t0 = clock()
            for _ in range(n):
                _noop()
            return clock() - t0

        def closed(n: int) -> int:
            call = current["breaker"].call
            t0 = clock()
            for _ in range(n):
                call(_noop)
            return clock() - t0

        def rejected(n: int) -> int:
            call = current["breaker"].call
            error = pybreaker.CircuitBreakerError
            t0 = clock()
            for _ in range(n):
                try:  # noqa: SIM105 - cheaper than contextlib.suppress() inside the timed loop
                    call(_noop)
                except error:
                    pass
            return clock() - t0

        batches: dict[str, Batch] = {
            "bare_call": bare,
            "closed_call": closed,
            "closed_call_instrumented": closed,
            "open_reject": rejected,
            "open_reject_instrumented": rejected,
        }
        with switch:
            return run_rounds(
                batches,
                ops=cfg.ops,
                rounds=cfg.rounds,
                deadline=time.monotonic() + cfg.time_budget_s,
                between=prepare,
            )

    # --- chaos ------------------------------------------------------------------------------
    def _chaos(self, s: Sinks) -> tuple[dict[str, Any], list[str]]:
        """The chaos scenario (tenacity and pybreaker instrumented by the caller)."""
        cfg = self.config
        truth = _Truth()
        app: Counter[str] = Counter()
        mock = MockConfig(seed=cfg.seed, default_profile=_FAST, fault_rates={"500": cfg.chaos_fault_rate})
        started = time.monotonic()
        with (
            MockServer(mock) as server,
            openai.OpenAI(base_url=server.openai_base_url, api_key="sk-bench", max_retries=0) as client,
        ):
            breaker = pybreaker.CircuitBreaker(
                fail_max=3, success_threshold=2, reset_timeout=0.005, name="chaos", listeners=[truth]
            )
            retrying = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(3),
                wait=tenacity.wait_none(),
                retry=tenacity.retry_if_exception_type(openai.InternalServerError),
                reraise=True,
            )

            def guarded() -> None:
                app["executed"] += 1
                client.chat.completions.create(
                    model=CHAOS_MODEL, messages=[{"role": "user", "content": "hello"}]
                )

            def attempt() -> None:
                executed_before = app["executed"]
                try:
                    breaker.call(guarded)
                except pybreaker.CircuitBreakerError:
                    app["rejected" if app["executed"] == executed_before else "tripped"] += 1
                    raise

            for _ in range(cfg.chaos_calls):
                try:
                    retrying(attempt)
                    app["ok"] += 1
                except (openai.InternalServerError, pybreaker.CircuitBreakerError):
                    app["failed"] += 1
                time.sleep(0.001)  # lets the reset timeout elapse now and then
            records = [r for r in server.records if r.model == CHAOS_MODEL]
        seconds = time.monotonic() - started
        server_failures = sum(1 for r in records if r.status == 500)
        exported = {
            "transitions": s.total(semconv.METRIC_BREAKER_TRANSITIONS),
            "rejected_calls": s.total(semconv.METRIC_BREAKER_REJECTED),
            "breaker_failures": s.total(
                semconv.METRIC_BREAKER_CALLS, **{semconv.BREAKER_OUTCOME: semconv.BREAKER_OUTCOME_FAILURE}
            ),
            "operations_ok": s.total(
                semconv.METRIC_RETRY_OPERATIONS, **{semconv.RETRY_OUTCOME: semconv.RETRY_OUTCOME_SUCCESS}
            ),
        }
        expected = {
            "transitions": len(truth.transitions),
            "rejected_calls": app["rejected"],
            "breaker_failures": server_failures,
            "operations_ok": app["ok"],
        }
        mismatches = [k for k in expected if exported[k] != expected[k]]
        warnings = [f"chaos: exported {k} {exported[k]:g} != ground truth {expected[k]}" for k in mismatches]
        if truth.failures != server_failures or app["executed"] != len(records):
            warnings.append("chaos: the ground-truth sources disagree with each other")
        metrics = {
            "calls": cfg.chaos_calls,
            "requests_served": len(records),
            "server_failures": server_failures,
            "transitions": exported["transitions"],
            "rejected_calls": exported["rejected_calls"],
            "success_rate": app["ok"] / cfg.chaos_calls,
            "telemetry_mismatches": len(mismatches),
        }
        details = {
            "exported": exported,
            "ground_truth": expected,
            "transitions_seen": [f"{a}->{b}" for a, b in truth.transitions],
            "seconds": round(seconds, 2),
            "retry_spans_exported": s.spans(),
        }
        return {"metrics": metrics, "details": details}, warnings
