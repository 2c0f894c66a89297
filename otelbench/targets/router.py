"""Target ``router-decisions``: what ``@routed`` costs per routing decision, per strategy.

Three routes (``small``, ``medium``, ``large``, each with a price per 1k tokens and a latency
model) and four strategies, each a function of the request that orders the routes:

* ``round_robin``: rotates the first choice.
* ``cost``: cheapest route able to take the request's token count.
* ``latency``: lowest moving-average latency, updated after each call with a seeded latency.
* ``fallback``: fixed priority; the first route fails ``fallback_share`` of the time (seeded),
  so the router falls back to the second.

The routed function does no work (it returns the route's name or raises), so the figure is the
router's own cost. ``undecorated`` runs the same strategy and the same try-in-order loop by
hand (what an application writes without the decorator): the baseline. ``decorated`` is
``otelbench_instrumentation.decorators.routed`` with telemetry into the real OTel SDK.
``decisions`` decisions per strategy and variant, in rounds of ``decisions / rounds``, the two
variants interleaved. Metrics per strategy: ``{s}_decision_us`` / ``{s}_decision_ops_per_s``
(decorated), ``{s}_baseline_decision_us`` / ``_ops_per_s``, ``{s}_overhead_us``, ``{s}_ratio``.

Correctness: both variants see the same seeded requests, so their sequences of final routes must
be equal; the exported ``otelbench.router.requests`` (by final route) and
``otelbench.router.route_attempts`` (outcome ``fallback``) must equal the counts the routed
function itself saw.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from otelbench_instrumentation import semconv
from otelbench_instrumentation.decorators import Route, routed

from . import BenchmarkError, BenchmarkResult, utc_now_iso
from ._measure import Figures, Sinks, frozen_heap, rounded, run_rounds, sinks

TARGET_ID = "router-decisions"
STRATEGIES = ("round_robin", "cost", "latency", "fallback")


class RouteUnavailable(Exception):
    """A route refused the request; the router moves on to the next one."""


@dataclass(frozen=True)
class _RouteSpec:
    route: Route
    price_per_1k: float
    max_tokens: int
    latency_s: float


ROUTES = (
    _RouteSpec(Route("small", model="bench-small", provider="mock"), 0.1, 2_000, 0.20),
    _RouteSpec(Route("medium", model="bench-medium", provider="mock"), 0.5, 8_000, 0.35),
    _RouteSpec(Route("large", model="bench-large", provider="mock"), 2.0, 128_000, 0.60),
)


@dataclass
class _Strategy:
    """One strategy's state; a fresh one per variant so both see identical decisions."""

    name: str
    seed: int
    fallback_share: float
    rng: random.Random = field(init=False)
    turn: Any = field(init=False)
    ewma: dict[str, float] = field(init=False)
    seen: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.turn = itertools.count()
        self.ewma = {spec.route.name: spec.latency_s for spec in ROUTES}

    def order(self, tokens: int) -> Sequence[Route]:
        """The routes in the order this strategy tries them for a request of ``tokens`` tokens."""
        if self.name == "round_robin":
            k = next(self.turn) % len(ROUTES)
            return [spec.route for spec in ROUTES[k:] + ROUTES[:k]]
        if self.name == "cost":
            able = [spec for spec in ROUTES if spec.max_tokens >= tokens]
            return [spec.route for spec in sorted(able, key=lambda s: s.price_per_1k * tokens)]
        if self.name == "latency":
            return [spec.route for spec in sorted(ROUTES, key=lambda s: self.ewma[s.route.name])]
        return [spec.route for spec in ROUTES]  # fallback: fixed priority

    def call(self, tokens: int, *, route: Route) -> str:
        """The routed function: record, maybe fail, return the route's name."""
        first = route.name == ROUTES[0].route.name
        if self.name == "fallback" and first and self.rng.random() < self.fallback_share:
            self.seen["fallback"] += 1
            raise RouteUnavailable(route.name)
        if self.name == "latency":
            base = self.ewma[route.name]
            observed = base * (0.5 + self.rng.random())
            self.ewma[route.name] = 0.9 * base + 0.1 * observed
        self.seen[route.name] += 1
        return route.name


@dataclass
class _Runner:
    """Feeds the requests, in order, to one variant of a router; keeps the routes it chose."""

    fn: Callable[[int], str]
    requests: Sequence[int]
    chosen: list[str] = field(default_factory=list)

    def batch(self, n: int) -> int:
        """Route the next ``n`` requests; return the elapsed nanoseconds."""
        start = len(self.chosen)
        todo = self.requests[start : start + n]
        out = self.chosen
        fn = self.fn
        t0 = time.perf_counter_ns()
        for tokens in todo:
            out.append(fn(tokens))
        return time.perf_counter_ns() - t0


def _by_hand(strategy: _Strategy) -> Callable[[int], str]:
    """The undecorated router: the same strategy and try-in-order loop, no telemetry."""

    def route(tokens: int) -> str:
        routes = strategy.order(tokens)
        for i, r in enumerate(routes):
            try:
                return strategy.call(tokens, route=r)
            except RouteUnavailable:
                if i == len(routes) - 1:
                    raise
        raise AssertionError("unreachable")

    return route


@dataclass(frozen=True)
class RouterConfig:
    """Sizes of the run."""

    decisions: int = 10_000  # per strategy and variant
    rounds: int = 10
    fallback_share: float = 0.3
    seed: int = 0
    time_budget_s: float = 10.0


class RouterTarget:
    """``@routed`` against the same router written by hand, four strategies."""

    id = TARGET_ID
    description = "router decisions (round-robin, cost, latency, fallback): µs/decision, overhead"

    def __init__(self, **overrides: Any) -> None:
        self.config = RouterConfig(**overrides)
        if self.config.rounds < 1 or self.config.decisions < self.config.rounds:
            raise ValueError("rounds >= 1 and decisions >= rounds required")

    def run(self) -> BenchmarkResult:
        """Time both variants of every strategy; check the decisions and the exported counts."""
        cfg = self.config
        timestamp = utc_now_iso()
        started = time.monotonic()
        per_round = cfg.decisions // cfg.rounds
        rng = random.Random(cfg.seed)
        # Token counts up to 20k: "cost" must skip "small" (2k) and "medium" (8k) for some requests.
        requests = [int(rng.lognormvariate(7.0, 1.2)) % 20_000 + 1 for _ in range(cfg.decisions)]
        fig = Figures()
        checks: dict[str, Any] = {}
        warnings: list[str] = []
        per_round_us: dict[str, Any] = {}
        with sinks() as s, frozen_heap():
            for i, name in enumerate(STRATEGIES):
                # Each strategy gets an equal share of what is left of the budget.
                deadline = time.monotonic() + (started + cfg.time_budget_s - time.monotonic()) / (
                    len(STRATEGIES) - i
                )
                states = {
                    v: _Strategy(name, cfg.seed + i, cfg.fallback_share) for v in ("baseline", "decorated")
                }
                plain = _by_hand(states["baseline"])
                decorated = routed(
                    states["decorated"].order,
                    name=name,
                    strategy=name,
                    fallback_on=RouteUnavailable,
                    tracer_provider=s.tracer_provider,
                    meter_provider=s.meter_provider,
                )(states["decorated"].call)
                runners = {"baseline": _Runner(plain, requests), "decorated": _Runner(decorated, requests)}
                rounds = run_rounds(
                    {v: r.batch for v, r in runners.items()},
                    ops=per_round,
                    rounds=cfg.rounds,
                    deadline=deadline,
                    min_rounds=1,
                )
                chosen = {v: r.chosen for v, r in runners.items()}
                fig.latency(f"{name}_baseline_decision", rounds.per_op_us["baseline"])
                fig.latency(f"{name}_decision", rounds.per_op_us["decorated"])
                fig.compare(name, rounds, "decorated", "baseline")
                per_round_us[name] = rounded(rounds.per_op_us)
                checks[name] = self._check(name, s, chosen, states["decorated"], warnings)
                checks[name]["rounds"] = rounds.rounds
            spans = s.spans()
        if spans == 0:
            raise BenchmarkError("@routed produced no spans: its telemetry is not working")
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "routes": [
                {"name": r.route.name, "price_per_1k": r.price_per_1k, "max_tokens": r.max_tokens}
                for r in ROUTES
            ],
            "per_round_us": per_round_us,
            "samples": fig.samples,
            "checks": checks,
            "spans_exported": spans,
            "total_seconds": round(time.monotonic() - started, 2),
            "warnings": warnings,
            "definitions": {
                "{s}_decision_us": "decorated: median over rounds of µs per routed call",
                "{s}_baseline_decision_us": "the same router written by hand, no telemetry",
                "{s}_overhead_us": "median over rounds of (decorated - baseline) µs per decision",
                "{s}_ratio": "median over rounds of decorated / baseline",
            },
        }
        return BenchmarkResult(self.id, fig.metrics, timestamp, details=details)

    @staticmethod
    def _check(
        name: str, s: Sinks, chosen: dict[str, list[str]], state: _Strategy, warnings: list[str]
    ) -> dict[str, Any]:
        """Compare decisions across variants and the exported counts with the function's own."""
        decided = len(chosen["decorated"])
        if chosen["decorated"] != chosen["baseline"][:decided]:
            warnings.append(f"{name}: decorated and hand-written routers chose different routes")
        final = Counter(chosen["decorated"])
        exported = {
            route: s.total(
                semconv.METRIC_ROUTER_REQUESTS,
                **{semconv.ROUTER_NAME: name, semconv.ROUTER_FINAL_ROUTE: route},
            )
            for route in final
        }
        fallbacks = s.total(
            semconv.METRIC_ROUTER_ROUTE_ATTEMPTS,
            **{semconv.ROUTER_NAME: name, semconv.ROUTER_ROUTE_OUTCOME: semconv.ROUTE_OUTCOME_FALLBACK},
        )
        if exported != dict(final):
            warnings.append(f"{name}: exported final routes {exported} != decisions {dict(final)}")
        if fallbacks != state.seen["fallback"]:
            warnings.append(f"{name}: exported fallbacks {fallbacks} != {state.seen['fallback']} seen")
        return {
            "decisions": decided,
            "final_routes": dict(final),
            "exported_final_routes": exported,
            "fallbacks": state.seen["fallback"],
            "exported_fallbacks": fallbacks,
        }
