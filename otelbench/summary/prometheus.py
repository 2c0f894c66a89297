"""The same per-target summary, read from Prometheus instead of the in-process reader.

A replay started with ``--otlp-endpoint`` exports cumulative explicit-bucket histograms through
the Collector, whose Prometheus exporter turns ``service.name`` into the ``job`` label and
``service.instance.id`` into ``instance``. Summing over ``instance`` gives the union of every
replay process that exported under one job name (the scale-out path); ``instance=`` selects one.

Quantiles are ``histogram_quantile`` over those buckets: Prometheus interpolates linearly
inside the bucket the rank falls in, so each estimate is only known to lie within that bucket.
:class:`Quantile` carries the bucket's bounds with the estimate.

Metric and label names are derived from :mod:`otelbench_instrumentation.semconv` the way the
Collector's Prometheus exporter translates them (dots to underscores, unit suffix, ``_total``
on counters), never spelled here.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from otelbench.errors import ProviderError, UsageError
from otelbench.summary import METRIC_TIME_PER_OUTPUT_TOKEN, QUANTILES
from otelbench_instrumentation import semconv

_UNIT_SUFFIXES = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


def prometheus_name(metric: str, unit: str = "", *, counter: bool = False) -> str:
    """The name the Collector's Prometheus exporter gives an OTel metric."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", metric)
    suffix = _UNIT_SUFFIXES.get(unit, "")  # annotations such as {token} add no suffix
    if suffix and not name.endswith(f"_{suffix}"):
        name = f"{name}_{suffix}"
    return f"{name}_total" if counter else name


def prometheus_label(attribute: str) -> str:
    """The label name the exporter gives an OTel attribute."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


PROVIDER = prometheus_label(semconv.GEN_AI_PROVIDER_NAME)
MODEL = prometheus_label(semconv.GEN_AI_REQUEST_MODEL)
ERROR_TYPE = prometheus_label(semconv.ERROR_TYPE)
TOKEN_TYPE = prometheus_label(semconv.GEN_AI_TOKEN_TYPE)

#: The latency histograms summarised, by the names the in-process summary uses.
LATENCIES = {
    "duration": prometheus_name(semconv.METRIC_OPERATION_DURATION, semconv.UNIT_SECONDS),
    "ttft": prometheus_name(semconv.METRIC_TIME_TO_FIRST_CHUNK, semconv.UNIT_SECONDS),
    "ttfa": prometheus_name(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK, semconv.UNIT_SECONDS),
    "time_per_chunk": prometheus_name(semconv.METRIC_TIME_PER_OUTPUT_CHUNK, semconv.UNIT_SECONDS),
    "time_per_token": prometheus_name(METRIC_TIME_PER_OUTPUT_TOKEN, semconv.UNIT_SECONDS),
}
TOKEN_USAGE = prometheus_name(semconv.METRIC_TOKEN_USAGE, semconv.UNIT_TOKENS)


@dataclass(frozen=True)
class Quantile:
    """A ``histogram_quantile`` estimate and the bucket it lies in."""

    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float | None]:
        """A JSON-ready mapping (non-finite values become null)."""
        return {k: (v if math.isfinite(v) else None) for k, v in self.__dict__.items()}


@dataclass
class PromTargetStats:
    """One provider/model as Prometheus sees it (summed over the selected instances)."""

    provider: str
    model: str
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    instances: int = 0
    latencies: dict[str, dict[float, Quantile]] = field(default_factory=dict)
    means: dict[str, float] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def key(self) -> str:
        """``provider:model`` as shown to users."""
        return f"{self.provider}:{self.model}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "target": self.key,
            "provider": self.provider,
            "model": self.model,
            "requests": self.requests,
            "errors": self.errors,
            "instances": self.instances,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latencies": {
                name: {f"p{q * 100:g}": est.to_json() for q, est in qs.items()}
                for name, qs in self.latencies.items()
            },
            "means_s": {k: (v if math.isfinite(v) else None) for k, v in self.means.items()},
        }


class Prometheus:
    """A minimal client of Prometheus's HTTP query API."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UsageError(f"Prometheus URL {url!r} is not an http(s) URL such as http://127.0.0.1:9090")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series of the resulting vector."""
        data = self._get("/api/v1/query", {"query": expr})
        if data.get("resultType") != "vector":
            raise ProviderError(f"Prometheus at {self.url}: expected a vector for {expr!r}")
        return [(dict(r["metric"]), float(r["value"][1])) for r in data.get("result", [])]

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            raise ProviderError(
                f"Prometheus at {self.url} rejected {params}: HTTP {exc.code} {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ProviderError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        except ValueError:
            raise ProviderError(
                f"Prometheus at {self.url} answered with something that is not JSON"
            ) from None
        if body.get("status") != "success":
            raise ProviderError(f"Prometheus at {self.url}: {body.get('error', 'query failed')}")
        result: dict[str, Any] = body["data"]
        return result


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", ""))
    except (ValueError, OSError):
        return ""


def selector(job: str | None = None, instance: str | None = None, extra: Iterable[str] = ()) -> str:
    """A label matcher block such as ``{job="x"}`` (empty braces match everything)."""
    parts = [f'job="{_escape(job)}"'] if job else []
    if instance:
        parts.append(f'instance="{_escape(instance)}"')
    parts.extend(extra)
    return "{" + ",".join(parts) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def summarize_prometheus(
    prom: Prometheus,
    job: str | None = None,
    instance: str | None = None,
    quantiles: Sequence[float] = QUANTILES,
) -> list[PromTargetStats]:
    """Per provider/model statistics from the cumulative GenAI histograms Prometheus holds."""
    sel = selector(job, instance)
    by = f"{PROVIDER}, {MODEL}"
    stats: dict[tuple[str, str], PromTargetStats] = {}

    def target(labels: dict[str, str]) -> PromTargetStats:
        key = (labels.get(PROVIDER, ""), labels.get(MODEL, ""))
        if key not in stats:
            stats[key] = PromTargetStats(*key)
        return stats[key]

    duration = LATENCIES["duration"]
    for labels, value in prom.query(f"sum by ({by}) ({duration}_count{sel})"):
        target(labels).requests = round(value)
    for labels, value in prom.query(f"count by ({by}) (count by ({by}, instance) ({duration}_count{sel}))"):
        target(labels).instances = round(value)
    errors = selector(job, instance, [f'{ERROR_TYPE}!=""'])
    for labels, value in prom.query(f"sum by ({by}, {ERROR_TYPE}) ({duration}_count{errors})"):
        if round(value):
            target(labels).errors[labels.get(ERROR_TYPE, "")] = round(value)
    for name, metric in LATENCIES.items():
        buckets = _buckets(prom, metric, sel, by)
        for q in quantiles:
            expr = f"histogram_quantile({q}, sum by (le, {by}) ({metric}_bucket{sel}))"
            for labels, value in prom.query(expr):
                key = (labels.get(PROVIDER, ""), labels.get(MODEL, ""))
                low, high = _bucket_of(value, buckets.get(key, []))
                target(labels).latencies.setdefault(name, {})[q] = Quantile(value, low, high)
        mean = f"sum by ({by}) ({metric}_sum{sel}) / sum by ({by}) ({metric}_count{sel})"
        for labels, value in prom.query(mean):
            target(labels).means[name] = value
    tokens = f"sum by ({by}, {TOKEN_TYPE}) ({TOKEN_USAGE}_sum{sel})"
    for labels, value in prom.query(tokens):
        kind = labels.get(TOKEN_TYPE)
        if kind == semconv.TOKEN_TYPE_INPUT:
            target(labels).input_tokens = round(value)
        elif kind == semconv.TOKEN_TYPE_OUTPUT:
            target(labels).output_tokens = round(value)
    return sorted((s for s in stats.values() if s.requests), key=lambda s: s.key)


def _buckets(prom: Prometheus, metric: str, sel: str, by: str) -> dict[tuple[str, str], list[float]]:
    found: dict[tuple[str, str], set[float]] = {}
    for labels, _ in prom.query(f"sum by (le, {by}) ({metric}_bucket{sel})"):
        key = (labels.get(PROVIDER, ""), labels.get(MODEL, ""))
        found.setdefault(key, set()).add(float(labels["le"]))
    return {key: sorted(bounds) for key, bounds in found.items()}


def _bucket_of(value: float, bounds: list[float]) -> tuple[float, float]:
    """The explicit bucket (low, high] holding ``value``; NaN bounds if it cannot be told."""
    if math.isnan(value) or not bounds:
        return math.nan, math.nan
    low = 0.0
    for high in bounds:
        if value <= high:
            return low, high
        low = high
    return low, math.inf
