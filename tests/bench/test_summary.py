"""Quantiles read back from exported exponential histograms agree with the raw values."""

from __future__ import annotations

import math
import random

import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from otelbench.summary import QUANTILES, summarize
from otelbench_instrumentation import semconv


def exact_quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile, the definition the histogram estimate approximates."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _record(series: dict[tuple[str, str], list[float]]) -> InMemoryMetricReader:
    reader = InMemoryMetricReader(preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()})
    provider = MeterProvider(metric_readers=[reader])
    duration = provider.get_meter("t").create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
    for (model, error), values in series.items():
        attrs = {semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: model}
        if error:
            attrs[semconv.ERROR_TYPE] = error
        for v in values:
            duration.record(v, attrs)
    return reader


@pytest.mark.parametrize(
    "draw",
    [
        lambda r: r.lognormvariate(math.log(0.2), 0.5),
        lambda r: r.uniform(0.05, 0.08),
        lambda r: 0.1 + r.expovariate(20),
        lambda r: r.choice([0.02, 0.5]) * r.uniform(0.95, 1.05),  # bimodal
    ],
    ids=["lognormal", "uniform", "shifted-exponential", "bimodal"],
)
def test_histogram_quantiles_within_one_percent(draw) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    values = [draw(rng) for _ in range(5000)]
    reader = _record({("m", ""): values})
    (stats,) = summarize(reader.get_metrics_data())
    assert stats.duration is not None
    assert stats.requests == len(values)
    for q in QUANTILES:
        expected = exact_quantile(values, q)
        assert stats.duration.q(q) == pytest.approx(expected, rel=0.01), q
    assert stats.duration.mean == pytest.approx(sum(values) / len(values))
    assert stats.duration.min == min(values)
    assert stats.duration.max == max(values)


def test_error_series_are_merged_into_their_target() -> None:
    rng = random.Random(3)
    ok = [rng.uniform(0.1, 0.2) for _ in range(900)]
    failed = [rng.uniform(0.01, 0.02) for _ in range(100)]
    reader = _record({("m", ""): ok, ("m", "RateLimitError"): failed, ("other", ""): [0.3]})
    by_model = {s.model: s for s in summarize(reader.get_metrics_data())}
    m = by_model["m"]
    assert m.requests == 1000
    assert m.errors == {"RateLimitError": 100}
    assert m.duration is not None
    for q in QUANTILES:
        assert m.duration.q(q) == pytest.approx(exact_quantile(ok + failed, q), rel=0.01)
    assert by_model["other"].requests == 1


def test_summarize_shows_the_first_answer_chunk_only_where_it_differs() -> None:
    from otelbench.cli.summarize import render
    from otelbench.summary.prometheus import PromTargetStats

    plain = PromTargetStats("openai", "m", requests=3, means={"ttft": 0.06, "ttfa": 0.06})
    assert "first answer" not in render([plain])
    thinking = PromTargetStats("deepseek", "r", requests=3, means={"ttft": 0.06, "ttfa": 0.18})
    assert "first answer p50 ms" in render([plain, thinking])
    empty = PromTargetStats("ollama", "e", requests=1, means={"ttft": math.nan, "ttfa": math.nan})
    assert "first answer" not in render([plain, empty])
