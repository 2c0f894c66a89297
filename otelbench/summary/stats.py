"""Statistics over raw per-request values: exact quantiles, bootstrap CIs, a significance test.

The summary's headline figures come from the exported histograms; these functions serve what a
histogram cannot: confidence intervals (percentile bootstrap over the raw values), the
cross-check of histogram quantiles against exact ones, and the pairwise comparison of targets
(Mann-Whitney U, normal approximation with tie and continuity corrections, Holm-adjusted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Bootstrap resamples; 1 000 gives a stable 95 % percentile interval.
BOOTSTRAP_RESAMPLES = 1000
#: Above this many values, resampling costs more than it adds: use the order-statistic interval.
BOOTSTRAP_MAX_VALUES = 20_000

FloatArray = npt.NDArray[np.float64]


def exact_quantile(values: Sequence[float] | FloatArray, q: float) -> float:
    """Nearest-rank quantile (the value at rank ceil(q * n)), the definition histograms approximate."""
    arr = np.sort(np.asarray(values, dtype=float))
    if arr.size == 0:
        return math.nan
    return float(arr[max(0, math.ceil(q * arr.size) - 1)])


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval."""

    low: float
    high: float


@dataclass(frozen=True)
class RawDistribution:
    """Exact statistics of one latency over the raw per-request values, with 95 % CIs."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[float, float]
    mean_ci: Interval
    quantile_ci: dict[float, Interval]

    @property
    def cv(self) -> float:
        """Coefficient of variation, std / mean."""
        return self.std / self.mean if self.mean else math.nan


def describe(
    values: Sequence[float] | FloatArray,
    quantiles: Sequence[float] = (0.5, 0.95, 0.99),
    *,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> RawDistribution | None:
    """Exact statistics of ``values`` with percentile-bootstrap 95 % CIs (None when empty)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    arr = np.sort(arr)
    qs = {q: exact_quantile(arr, q) for q in quantiles}
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    if arr.size <= BOOTSTRAP_MAX_VALUES:
        mean_ci, q_ci = _bootstrap(arr, quantiles, seed, resamples)
    else:
        # Large samples: distribution-free order-statistic interval for quantiles, normal for the mean.
        half = 1.96 * std / math.sqrt(arr.size)
        mean_ci = Interval(float(arr.mean()) - half, float(arr.mean()) + half)
        q_ci = {q: _order_statistic_ci(arr, q) for q in quantiles}
    return RawDistribution(
        count=int(arr.size),
        mean=float(arr.mean()),
        std=std,
        min=float(arr[0]),
        max=float(arr[-1]),
        quantiles=qs,
        mean_ci=mean_ci,
        quantile_ci=q_ci,
    )


def _bootstrap(
    arr: FloatArray, quantiles: Sequence[float], seed: int, resamples: int
) -> tuple[Interval, dict[float, Interval]]:
    rng = np.random.default_rng(seed)
    n = arr.size
    means = np.empty(resamples)
    qvals = {q: np.empty(resamples) for q in quantiles}
    # Rank of each quantile in a sorted resample (nearest rank, as exact_quantile).
    ranks = {q: max(0, math.ceil(q * n) - 1) for q in quantiles}
    # Blocks bound memory: block * n values at a time.
    block = max(1, min(resamples, 2_000_000 // n))
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        sample = arr[rng.integers(0, n, size=(stop - start, n))]
        # Partial sort: only the quantile ranks need to land in place (O(n), not O(n log n)).
        sample.partition(sorted(set(ranks.values())), axis=1)
        means[start:stop] = sample.mean(axis=1)
        for q in quantiles:
            qvals[q][start:stop] = sample[:, ranks[q]]
    return _percentile_interval(means), {q: _percentile_interval(v) for q, v in qvals.items()}


def _percentile_interval(samples: FloatArray) -> Interval:
    low, high = np.quantile(samples, [0.025, 0.975])
    return Interval(float(low), float(high))


def _order_statistic_ci(sorted_arr: FloatArray, q: float) -> Interval:
    n = sorted_arr.size
    half = 1.96 * math.sqrt(n * q * (1 - q))
    lo = max(0, math.floor(n * q - half) - 1)
    hi = min(n - 1, math.ceil(n * q + half) - 1)
    return Interval(float(sorted_arr[lo]), float(sorted_arr[hi]))


# --- comparison ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """Two-sided Mann-Whitney U test of sample a against sample b."""

    n_a: int
    n_b: int
    #: P(a > b) + P(a = b) / 2: 0.5 = no difference, 1 = every a is larger.
    prob_a_greater: float
    p_value: float


def mann_whitney(a: Sequence[float] | FloatArray, b: Sequence[float] | FloatArray) -> Comparison | None:
    """Mann-Whitney U test (normal approximation, tie-corrected); None if a sample has < 2 values."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    n1, n2 = x.size, y.size
    if n1 < 2 or n2 < 2:
        return None
    both = np.concatenate([x, y])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct value (ties share the mean of their ranks).
    ends = np.cumsum(counts)
    avg_rank = ends - (counts - 1) / 2.0
    ranks = avg_rank[inverse]
    u1 = float(ranks[:n1].sum()) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie_term = float(np.sum(counts.astype(float) ** 3 - counts)) / (n * (n - 1))
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term))
    mu = n1 * n2 / 2.0
    if sigma == 0:
        p = 1.0
    else:
        z = (abs(u1 - mu) - 0.5) / sigma  # continuity correction
        p = min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    return Comparison(n1, n2, u1 / (n1 * n2), p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given), for a family of tests."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "Comparison",
    "Interval",
    "RawDistribution",
    "describe",
    "exact_quantile",
    "holm",
    "mann_whitney",
]
