"""Target ``cache-decorator``: what ``@cached`` costs per lookup, against a reference LRU.

Variants, each memoizing the same trivial function ``key -> key`` (so the cache is all there is
to time), capacity ``capacity``:

* ``lru_cache``: ``functools.lru_cache(maxsize=capacity)``, the reference LRU.
* ``memo``: a hand-written memoization over :class:`LRUStore` (an ``OrderedDict`` LRU), i.e. what
  an application writes without the decorator: the baseline of ``cached``.
* ``cached``: ``otelbench_instrumentation.decorators.cached`` over the same ``LRUStore``, telemetry
  into the real OTel SDK (a span per lookup through a ``BatchSpanProcessor``, the lookup counter
  and latency histogram into an ``InMemoryMetricReader``).
* ``store``: the ``LRUStore`` operations themselves.

Operations: ``hit`` (a call whose key is cached), ``miss`` (a call with a new key into a full
cache: lookup, call, insert, evict), and for the store ``write`` (insert + evict),
``read_hit`` and ``read_miss`` (``get`` of a present / absent key). Metrics per operation:
``{variant}_{op}_us`` and ``{variant}_{op}_ops_per_s``; ratios ``cached_{op}_vs_memo_ratio``,
``cached_{op}_vs_lru_cache_ratio`` and ``cached_{op}_vs_memo_overhead_us`` (µs the telemetry adds).

Hit rate: a seeded 80/20 workload (80 % of requests go to 20 % of ``universe`` keys) through
``cached`` at each capacity in ``capacities``, after ``warmup_requests`` that fill the cache
(counted under another cache name); ``hit_rate_cap{C}`` is computed from the exported
``otelbench.cache.lookups`` counter. ``functools.lru_cache`` replays the same requests: both are
exact LRUs, so their hit counts must be equal (a mismatch is a warning: the telemetry miscounted).
"""

from __future__ import annotations

import functools
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from otelbench_instrumentation import semconv
from otelbench_instrumentation.decorators import cached

from . import BenchmarkError, BenchmarkResult, utc_now_iso
from ._measure import Batch, Figures, Sinks, frozen_heap, rounded, run_rounds, sinks

TARGET_ID = "cache-decorator"
_MISS = object()


class LRUStore:
    """A minimal LRU over ``OrderedDict``: ``get`` refreshes, ``__setitem__`` evicts the oldest."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, default: Any = None, /) -> Any:
        """The value under ``key`` (now the most recent), or ``default``."""
        try:
            self._data.move_to_end(key)
        except KeyError:
            return default
        return self._data[key]

    def __setitem__(self, key: Any, value: Any, /) -> None:
        """Store ``value``; past capacity, drop the least recently used entry."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def workload(
    requests: int, universe: int, seed: int, hot_share: float = 0.2, hot_traffic: float = 0.8
) -> list[int]:
    """Seeded keys: ``hot_traffic`` of the requests go to the first ``hot_share`` of ``universe``."""
    rng = random.Random(seed)
    hot = max(1, int(universe * hot_share))
    return [
        rng.randrange(hot) if rng.random() < hot_traffic else rng.randrange(hot, universe)
        for _ in range(requests)
    ]


@dataclass(frozen=True)
class CacheConfig:
    """Sizes of the run (the defaults keep it to a few seconds)."""

    capacity: int = 500
    rounds: int = 15
    ops: int = 500  # operations per batch
    capacities: tuple[int, ...] = (10, 50, 100, 250, 500)
    universe: int = 1000
    requests: int = 3000  # measured per capacity, hit-rate workload
    warmup_requests: int = 1000  # before them, through the same store (steady state)
    seed: int = 0
    time_budget_s: float = 3.0  # of the timed rounds


class CacheTarget:
    """``@cached`` (instrumented) against hand-written memoization and ``functools.lru_cache``."""

    id = TARGET_ID
    description = "cache decorator vs reference LRU: hit/miss/write latency, ops/s, 80/20 hit rate"

    def __init__(self, **overrides: Any) -> None:
        self.config = CacheConfig(**overrides)
        if self.config.capacity < 1 or self.config.ops < 1 or self.config.rounds < 1:
            raise ValueError("capacity, ops and rounds must be >= 1")

    def run(self) -> BenchmarkResult:
        """Time every variant, measure the hit rates, return the figures."""
        cfg = self.config
        timestamp = utc_now_iso()
        started = time.monotonic()
        with sinks() as s, frozen_heap():
            batches, calls = self._batches(s)
            rounds = run_rounds(batches, ops=cfg.ops, rounds=cfg.rounds, deadline=started + cfg.time_budget_s)
            spans_expected = calls()
            spans = s.spans()
            hit_rates, reference = self._hit_rates(s)
        if spans == 0:
            raise BenchmarkError("@cached produced no spans: its telemetry is not working")
        fig = Figures()
        for name, values in rounds.per_op_us.items():
            fig.latency(name, values)
        for op in ("hit", "miss"):
            fig.compare(f"cached_{op}_vs_memo", rounds, f"cached_{op}", f"memo_{op}")
            fig.put(f"cached_{op}_vs_lru_cache_ratio", rounds.ratios(f"cached_{op}", f"lru_cache_{op}"))
        warnings = []
        for cap, rate in hit_rates.items():
            fig.metrics[f"hit_rate_cap{cap}"] = rate
            if abs(rate - reference[cap]) > 1e-12:
                warnings.append(
                    f"capacity {cap}: exported hit rate {rate} != functools.lru_cache {reference[cap]}"
                )
        if spans != spans_expected:
            warnings.append(f"{spans} spans exported, {spans_expected} expected")
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "rounds": rounds.rounds,
            "per_round_us": rounded(rounds.per_op_us),
            "samples": fig.samples,
            "spans_exported": spans,
            "spans_expected": spans_expected,
            "reference_hit_rate": {str(k): v for k, v in reference.items()},
            "total_seconds": round(time.monotonic() - started, 2),
            "warnings": warnings,
            "definitions": {
                "hit": "a call whose key is cached",
                "miss": "a call with a new key into a full cache: lookup + call + insert + evict",
                "store_write": "LRUStore.__setitem__ of a new key into a full store (insert + evict)",
                "store_read_hit/read_miss": "LRUStore.get of a present / absent key",
                "*_vs_memo_ratio": "median over rounds of cached / memo (same store, no telemetry)",
                "hit_rate_capC": "hits / lookups from the exported otelbench.cache.lookups counter, "
                "80/20 workload, capacity C",
            },
        }
        return BenchmarkResult(self.id, fig.metrics, timestamp, details=details)

    def _batches(self, s: Sinks) -> tuple[dict[str, Batch], Callable[[], int]]:
        """The timed batches, and a function returning how many spans ``cached`` calls made."""
        cfg = self.config
        cap = cfg.capacity
        clock = time.perf_counter_ns
        present = list(range(cap))  # keys 0..cap-1 are cached; fresh keys count up from 10**9
        fresh = iter(range(10**9, 10**18))
        counted = {"calls": 0}

        def identity(key: int) -> int:
            return key

        reference = functools.lru_cache(maxsize=cap)(identity)
        memo_store = LRUStore(cap)

        def memo(key: int) -> Any:
            value = memo_store.get(key, _MISS)
            if value is _MISS:
                value = memo_store[key] = identity(key)
            return value

        cached_store = LRUStore(cap)
        decorated = cached(
            cached_store,
            name="bench",
            tracer_provider=s.tracer_provider,
            meter_provider=s.meter_provider,
        )(identity)
        raw_store = LRUStore(cap)
        for key in present:  # every variant starts full
            reference(key)
            memo(key)
            decorated(key)
            raw_store[key] = key
        counted["calls"] += cap

        def calls_of(fn: Callable[[int], Any], instrumented: bool = False) -> tuple[Batch, Batch]:
            def hits(n: int) -> int:
                keys = [present[i % cap] for i in range(n)]
                t0 = clock()
                for key in keys:
                    fn(key)
                elapsed = clock() - t0
                if instrumented:
                    counted["calls"] += n
                return elapsed

            def misses(n: int) -> int:
                keys = [next(fresh) for _ in range(n)]
                t0 = clock()
                for key in keys:
                    fn(key)
                elapsed = clock() - t0
                # Restore the cached set, untimed, so the next hit batch hits.
                for key in present:
                    fn(key)
                if instrumented:
                    counted["calls"] += n + cap
                return elapsed

            return hits, misses

        def store_ops() -> tuple[Batch, Batch, Batch]:
            def write(n: int) -> int:
                keys = [next(fresh) for _ in range(n)]
                t0 = clock()
                for key in keys:
                    raw_store[key] = key
                return clock() - t0

            def read_hit(n: int) -> int:
                for key in present:  # make sure they are present (a write batch evicted them)
                    raw_store[key] = key
                keys = [present[i % cap] for i in range(n)]
                get = raw_store.get
                t0 = clock()
                for key in keys:
                    get(key, _MISS)
                return clock() - t0

            def read_miss(n: int) -> int:
                keys = [-1 - i for i in range(n)]
                get = raw_store.get
                t0 = clock()
                for key in keys:
                    get(key, _MISS)
                return clock() - t0

            return write, read_hit, read_miss

        batches: dict[str, Batch] = {}
        for name, fn, instrumented in (
            ("lru_cache", reference, False),
            ("memo", memo, False),
            ("cached", decorated, True),
        ):
            batches[f"{name}_hit"], batches[f"{name}_miss"] = calls_of(fn, instrumented)
        batches["store_write"], batches["store_read_hit"], batches["store_read_miss"] = store_ops()
        return batches, lambda: counted["calls"]

    def _hit_rates(self, s: Sinks) -> tuple[dict[int, float], dict[int, float]]:
        """Exported hit rate of ``cached`` and ``lru_cache``'s own, per capacity, same requests."""
        cfg = self.config
        keys = workload(cfg.warmup_requests + cfg.requests, cfg.universe, cfg.seed)
        warm, measured = keys[: cfg.warmup_requests], keys[cfg.warmup_requests :]
        exported: dict[int, float] = {}
        reference: dict[int, float] = {}
        for cap in cfg.capacities:
            name = f"cap{cap}"

            def identity(key: int) -> int:
                return key

            store = LRUStore(cap)
            # Two decorators over one store: the warm-up's lookups count under their own name.
            warmup, decorated = (
                cached(store, name=n, tracer_provider=s.tracer_provider, meter_provider=s.meter_provider)(
                    identity
                )
                for n in (f"{name}-warmup", name)
            )
            lru = functools.lru_cache(maxsize=cap)(identity)
            for key in warm:
                warmup(key)
                lru(key)
            before = lru.cache_info()
            for key in measured:
                decorated(key)
                lru(key)
            hits = s.total(
                semconv.METRIC_CACHE_LOOKUPS,
                **{semconv.CACHE_NAME: name, semconv.CACHE_RESULT: semconv.CACHE_RESULT_HIT},
            )
            total = s.total(semconv.METRIC_CACHE_LOOKUPS, **{semconv.CACHE_NAME: name})
            exported[cap] = hits / total if total else float("nan")
            info = lru.cache_info()
            reference[cap] = (info.hits - before.hits) / len(measured)
        return exported, reference
