"""Turn a replay outcome into statistics, ``BenchmarkResult`` values, tables and files.

Headline latencies (count, mean, std, min, max, p50/p95/p99) come from the exported
exponential histograms. The raw per-request log holds the exact values the instrumentation
recorded into those histograms (plus the client's own timings); it supplies what a histogram
cannot: bootstrap CIs, goodput, send lag, the significance test, and the cross-check of every
histogram percentile against the exact one ("metric vs raw": the export path's own error).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from otelbench.summary import QUANTILES, Distribution, TargetStats
from otelbench.summary.stats import RawDistribution, describe, exact_quantile, holm, mann_whitney
from otelbench.targets import BenchmarkResult, atomic_write, render_summary, utc_now_iso, write_results

from .adapters import LEAN_SCHEMES
from .options import RESPONSES_SCHEMES
from .pricing import PriceTable
from .runner import RawRequest, ReplayOutcome, TargetRun
from .slo import SLO

LATENCIES = ("ttft", "ttfa", "duration", "tpot", "itl")
LABELS = {
    "ttft": "time to first token",
    "ttfa": "time to first answer chunk",
    "duration": "request duration",
    "tpot": "time per output token",
    "itl": "inter-chunk gap",
}
#: The comparison matrix tests these latencies.
COMPARED = ("ttft", "duration")
SIGNIFICANCE = 0.05
#: Send lag or event-loop lag (p99, seconds) above which the run warns that the client, not the
#: provider, shaped the numbers.
CLIENT_LAG_WARNING = 0.010
MATRIX_NOTE = (
    "p: two-sided Mann-Whitney U on the raw per-request values, Holm-adjusted over all cells; "
    "* = significant at 0.05"
)


@dataclass(frozen=True)
class Latency:
    """One latency of one target: histogram-derived and raw-derived."""

    metric: Distribution | None
    raw: RawDistribution | None


@dataclass(frozen=True)
class SloResult:
    """One SLO evaluated for one target."""

    slo: SLO
    value: float  # the metric-derived percentile, seconds (NaN if unknown)
    met: bool


@dataclass
class TargetReport:
    """Every figure the replay reports for one target."""

    run: TargetRun
    latencies: dict[str, Latency]
    requests: int  # counted by the metrics (duration histogram)
    errors: dict[str, int]  # by error.type, from the metrics
    raw_requests: int
    raw_errors: dict[str, int]
    wall_seconds: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    slos: list[SloResult] = field(default_factory=list)
    goodput_rps: float = math.nan
    slo_attainment: float = math.nan
    send_lag: RawDistribution | None = None
    loop_lag_p50: float = math.nan
    loop_lag_p99: float = math.nan
    #: Client timer minus the instrumentation's, per request (seconds): median and largest.
    client_offset: dict[str, tuple[float, float]] = field(default_factory=dict)
    max_diff: float = math.nan
    max_diff_at: str = ""

    @property
    def id(self) -> str:
        """The target id."""
        return self.run.target.id

    @property
    def ok(self) -> int:
        """Successful measured requests (metrics)."""
        return self.requests - sum(self.errors.values())

    @property
    def requests_per_s(self) -> float:
        """Successful requests per second of the measured load."""
        return self.ok / self.wall_seconds if self.wall_seconds > 0 else math.nan

    @property
    def achieved_rate(self) -> float:
        """Requests actually sent per second (first to last send)."""
        sent = sorted(r.sent_ns for r in self.run.measured)
        if len(sent) < 2 or sent[-1] <= sent[0]:
            return math.nan
        return (len(sent) - 1) / ((sent[-1] - sent[0]) / 1e9)

    def warnings(self, rate: float | None, client: str = "sdk") -> list[str]:
        """Plain-language notes when the client, not the provider, shaped the numbers (``client``:
        the replay's ``--client``, for the remedy)."""
        notes = []
        lag = self.send_lag
        if rate is not None and lag is not None and lag.quantiles[0.99] > CLIENT_LAG_WARNING:
            notes.append(
                f"sent {self.achieved_rate:.1f} req/s of {rate:g} intended; sends fell behind the schedule by "
                f"up to {lag.max * 1000:.0f} ms (p99 {lag.quantiles[0.99] * 1000:.0f} ms)"
            )
        if self.loop_lag_p99 > CLIENT_LAG_WARNING:
            remedy = "lower --rate/--concurrency, drop --parallel or add --workers"
            if client == "sdk" and self.run.target.scheme in LEAN_SCHEMES:
                # Most of a loaded SDK client's CPU is the SDK's own (docs/harness.md).
                remedy += "; to measure the endpoint rather than the SDK, --client http needs far less CPU"
            notes.append(
                f"the client's event loop was busy (lag p99 {self.loop_lag_p99 * 1000:.0f} ms): latencies include "
                f"client-side queueing; {remedy}"
            )
        return notes

    @property
    def output_tokens_per_s(self) -> float:
        """Output tokens per second of the measured load."""
        return self.output_tokens / self.wall_seconds if self.wall_seconds > 0 else math.nan


@dataclass(frozen=True)
class PairTest:
    """One cell of the comparison matrix."""

    a: str
    b: str
    latency: str
    ratio: float  # median(a) / median(b), metric-derived
    prob_a_greater: float
    p_value: float
    p_adjusted: float

    @property
    def significant(self) -> bool:
        """Holm-adjusted p below 0.05."""
        return self.p_adjusted < SIGNIFICANCE


# --- statistics ---------------------------------------------------------------------------------
def _raw_values(requests: Sequence[RawRequest], latency: str) -> list[float]:
    """Per-request values the instrumentation recorded (the same ones the histograms hold): one
    per request, or for ``itl`` every gap."""
    if latency == "itl":
        return [g for r in requests for g in r.gaps]
    return [v for r in requests if (v := _per_request(r, latency)) is not None]


def _metric(stats: TargetStats | None, latency: str) -> Distribution | None:
    if stats is None:
        return None
    return {
        "ttft": stats.ttft,
        "ttfa": stats.ttfa,
        "duration": stats.duration,
        "tpot": stats.time_per_token,
        "itl": stats.time_per_chunk,
    }[latency]


def build_report(run: TargetRun, slos: Sequence[SLO], prices: PriceTable, seed: int = 0) -> TargetReport:
    """All statistics of one target's run."""
    measured = run.measured
    stats = run.metrics
    latencies = {
        name: Latency(_metric(stats, name), describe(_raw_values(measured, name), QUANTILES, seed=seed))
        for name in LATENCIES
    }
    wall = run.load.wall_seconds if run.load else 0.0
    input_tokens = stats.input_tokens if stats else 0
    output_tokens = stats.output_tokens if stats else 0
    report = TargetReport(
        run=run,
        latencies=latencies,
        requests=stats.requests if stats else 0,
        errors=dict(stats.errors) if stats else {},
        raw_requests=len(measured),
        raw_errors=dict(Counter(r.error_type or r.status for r in measured if not r.ok)),
        wall_seconds=wall,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=prices.cost(run.target.id, input_tokens, output_tokens),
    )
    _cross_check(report)
    if slos:
        _evaluate_slos(report, slos, measured)
    lags = [r.send_lag for r in measured]
    if lags and run.load is not None:
        report.send_lag = describe(lags, (0.5, 0.99), seed=seed, resamples=200)
    if run.loop_lag:
        report.loop_lag_p50 = exact_quantile(run.loop_lag, 0.5)
        report.loop_lag_p99 = exact_quantile(run.loop_lag, 0.99)
    for name, pairs in (
        ("ttft", [(r.client_ttft, r.ttft) for r in measured]),
        ("duration", [(r.client_duration, r.duration) for r in measured if r.ok]),
    ):
        offsets = [c - m for c, m in pairs if c is not None and m is not None]
        if offsets:
            report.client_offset[name] = (exact_quantile(offsets, 0.5), max(offsets, key=abs))
    return report


def _cross_check(report: TargetReport) -> None:
    worst, where = math.nan, ""
    for name, lat in report.latencies.items():
        if lat.metric is None or lat.raw is None:
            continue
        for q in QUANTILES:
            exact = lat.raw.quantiles[q]
            if exact <= 0:
                continue
            diff = abs(lat.metric.q(q) - exact) / exact
            if math.isnan(worst) or diff > worst:
                worst, where = diff, f"{name} p{q * 100:g}"
    report.max_diff, report.max_diff_at = worst, where


def _per_request(r: RawRequest, metric: str) -> float | None:
    """One request's value of ``metric`` (for ``itl``, its mean gap)."""
    if metric == "ttft":
        return r.ttft
    if metric == "ttfa":
        return r.ttfa
    if metric == "duration":
        return r.duration
    if metric == "tpot":
        return r.tpot
    gaps = r.gaps
    return sum(gaps) / len(gaps) if gaps else None


def _evaluate_slos(report: TargetReport, slos: Sequence[SLO], measured: Sequence[RawRequest]) -> None:
    for slo in slos:
        lat = report.latencies[slo.metric]
        value = math.nan
        if lat.metric is not None:
            value = _histogram_quantile(lat.metric, slo.quantile, lat.raw)
        report.slos.append(SloResult(slo, value, not math.isnan(value) and value <= slo.threshold))
    ok = [r for r in measured if r.ok]
    good = 0
    for r in ok:
        values = [_per_request(r, slo.metric) for slo in slos]
        if all(v is not None and v <= slo.threshold for v, slo in zip(values, slos, strict=True)):
            good += 1
    report.slo_attainment = good / len(ok) if ok else math.nan
    report.goodput_rps = good / report.wall_seconds if report.wall_seconds > 0 else math.nan


def _histogram_quantile(dist: Distribution, q: float, raw: RawDistribution | None) -> float:
    if q in dist.quantiles:
        return dist.q(q)
    # The summary keeps only p50/p95/p99 of each histogram; other SLO percentiles use the
    # exact raw value (documented in docs/replay.md).
    return raw.quantiles.get(q, math.nan) if raw else math.nan


def answers_late(reports: Sequence[TargetReport]) -> bool:
    """Whether some target's first answer chunk came after its first chunk: a thinking model's
    reasoning came first. (Otherwise the two histograms hold the same values: same count, same
    sum.)"""
    for r in reports:
        answer, first = r.latencies["ttfa"].metric, r.latencies["ttft"].metric
        if answer is not None and (first is None or (answer.count, answer.mean) != (first.count, first.mean)):
            return True
    return False


def compared(reports: Sequence[TargetReport]) -> tuple[str, ...]:
    """The latencies of the comparison matrix: with a thinking model, the first answer chunk too."""
    return ("ttft", "ttfa", "duration") if answers_late(reports) else COMPARED


def compare(reports: Sequence[TargetReport], latencies: Iterable[str] | None = None) -> list[PairTest]:
    """Pairwise Mann-Whitney tests on raw values, Holm-adjusted over the whole matrix (of
    ``compared(reports)`` unless ``latencies`` names others)."""
    raw_tests = []
    for name in compared(reports) if latencies is None else latencies:
        for i, a in enumerate(reports):
            for b in reports[i + 1 :]:
                va = _raw_values([r for r in a.run.measured if r.ok], name)
                vb = _raw_values([r for r in b.run.measured if r.ok], name)
                result = mann_whitney(va, vb)
                ma, mb = a.latencies[name].metric, b.latencies[name].metric
                if result is None or ma is None or mb is None or mb.q(0.5) <= 0:
                    continue
                raw_tests.append(
                    (a.id, b.id, name, ma.q(0.5) / mb.q(0.5), result.prob_a_greater, result.p_value)
                )
    adjusted = holm([t[5] for t in raw_tests])
    return [PairTest(*t, p) for t, p in zip(raw_tests, adjusted, strict=True)]


# --- BenchmarkResult ------------------------------------------------------------------------------
def to_results(
    outcome: ReplayOutcome, reports: Sequence[TargetReport], pairs: Sequence[PairTest], raw_log: str | None
) -> list[BenchmarkResult]:
    """One ``BenchmarkResult`` per target (ids ``replay/<target id>``)."""
    timestamp = utc_now_iso()
    config = outcome.config
    load = config.load
    results = []
    for rep in reports:
        m: dict[str, float] = {
            "requests": float(rep.requests),
            "errors": float(sum(rep.errors.values())),
            "error_rate": sum(rep.errors.values()) / rep.requests if rep.requests else math.nan,
            "requests_per_s": rep.requests_per_s,
            "output_tokens_per_s": rep.output_tokens_per_s,
            "input_tokens": float(rep.input_tokens),
            "output_tokens": float(rep.output_tokens),
            "cost_usd": rep.cost_usd,
        }
        ci: dict[str, Any] = {}
        for name, lat in rep.latencies.items():
            d = lat.metric
            if d is not None:
                m[f"{name}_mean_s"] = d.mean
                m[f"{name}_std_s"] = d.std
                m[f"{name}_cv"] = d.cv
                m[f"{name}_min_s"] = d.min
                m[f"{name}_max_s"] = d.max
                for q in QUANTILES:
                    m[f"{name}_p{q * 100:g}_s"] = d.q(q)
            if lat.raw is not None:
                ci[name] = {
                    "mean": [lat.raw.mean_ci.low, lat.raw.mean_ci.high],
                    **{f"p{q * 100:g}": [iv.low, iv.high] for q, iv in lat.raw.quantile_ci.items()},
                }
        if rep.slos:
            m["goodput_rps"] = rep.goodput_rps
            m["slo_attainment"] = rep.slo_attainment
        if rep.send_lag is not None and load.rate is not None:
            m["send_lag_p50_s"] = rep.send_lag.quantiles[0.5]
            m["send_lag_p99_s"] = rep.send_lag.quantiles[0.99]
            m["send_lag_max_s"] = rep.send_lag.max
            m["achieved_rate_rps"] = rep.achieved_rate
        m["metric_vs_raw_max_rel_diff"] = rep.max_diff
        m["client_loop_lag_p50_s"] = rep.loop_lag_p50
        m["client_loop_lag_p99_s"] = rep.loop_lag_p99
        for name, (median, largest) in rep.client_offset.items():
            m[f"client_minus_recorded_{name}_p50_s"] = median
            m[f"client_minus_recorded_{name}_max_s"] = largest
        run = rep.run
        if run.cpu_s is not None:
            m["client_cpu_s"] = run.cpu_s
            m["client_cpu_per_request_ms"] = (
                1e3 * run.cpu_s / rep.raw_requests if rep.raw_requests else math.nan
            )
        if run.peak_rss_mib is not None:
            m["client_peak_rss_mib"] = run.peak_rss_mib
        if run.rss_growth_mib is not None:
            m["client_rss_growth_mib"] = run.rss_growth_mib
        m["partial"] = 1.0 if outcome.interrupted else 0.0
        gt = rep.run.ground_truth
        details: dict[str, Any] = {
            "target": rep.id,
            "provider": rep.run.target.scheme,
            "model": rep.run.target.model,
            "endpoint": "embedded mock" if rep.run.target.is_mock else rep.run.target.endpoint,
            "dataset": config.dataset,
            "load": {
                "mode": "closed" if load.rate is None else "open",
                "concurrency": load.concurrency if load.rate is None else None,
                "rate_rps": load.rate,
                "arrival": load.arrival if load.rate is not None else None,
                "requests": load.limits.requests,
                "duration_s": load.limits.duration,
                "warmup": load.warmup,
                "stream": config.client.stream,
                "client": config.client.kind,
                "nonce": config.nonce,
                "parallel_targets": config.parallel,
                "workers": config.workers,
                "request_options": dict(config.client.request),
                "request_fields": dict(config.client.body.get(rep.run.target.scheme, {})),
                "api": config.client.api if rep.run.target.scheme in RESPONSES_SCHEMES else None,
            },
            "partial": outcome.interrupted,
            "metric_errors": rep.errors,
            "raw_errors": rep.raw_errors,
            "raw_requests": rep.raw_requests,
            "metric_vs_raw_max_at": rep.max_diff_at,
            "ci95": ci,
            "slo": [{"slo": s.slo.text, "value_s": _num(s.value), "met": s.met} for s in rep.slos],
            "warnings": rep.warnings(load.rate, config.client.kind),
            "comparison": [
                {
                    "other": p.b if p.a == rep.id else p.a,
                    "latency": p.latency,
                    "median_ratio": p.ratio if p.a == rep.id else 1 / p.ratio,
                    "p_value": p.p_value,
                    "p_holm": p.p_adjusted,
                    "significant": p.significant,
                }
                for p in pairs
                if rep.id in (p.a, p.b)
            ],
            "raw_log": raw_log,
            "instrumented": outcome.instrumented,
            "source": "gen_ai.client.* exponential histograms (in-process MetricReader)",
        }
        if gt is not None:
            details["mock_ground_truth"] = {
                "served": gt.served,
                "sent": gt.sent,
                "send_overhead_p50_s": gt.send_overhead_p50,
                "server_ttft_p50_s": gt.server_ttft_p50,
                "receive_p50_s": gt.receive_p50,
            }
        details["service"] = {
            k: outcome.resource[k] for k in ("service.name", "service.instance.id") if k in outcome.resource
        }
        if outcome.export is not None:
            details["otlp_export"] = {"endpoint": config.otlp_endpoint, **outcome.export.to_json()}
        if outcome.interrupted:
            details["note"] = "**Partial**: the run was interrupted (Ctrl-C); figures cover what finished."
        results.append(BenchmarkResult(f"replay/{rep.id}", m, timestamp, details=details))
    return results


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- rendering ------------------------------------------------------------------------------------
def _ms(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 1000:.{digits}f}"


def _q(lat: Latency, q: float) -> float | None:
    return lat.metric.q(q) if lat.metric else None


def _rows(reports: Sequence[TargetReport], rate: float | None) -> list[tuple[str, list[str]]]:
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, cells: Iterable[str]) -> None:
        rows.append((label, list(cells)))

    add("requests (failed)", (f"{r.requests} ({sum(r.errors.values())})" for r in reports))
    shown = [("ttft", "TTFT"), ("duration", "duration")]
    if answers_late(reports):
        shown.insert(1, ("ttfa", "first answer chunk"))
    for name, label in shown:
        add(f"{label} p50 [95% CI] ms", (_with_ci(r.latencies[name]) for r in reports))
        add(
            f"{label} p95 / p99 ms",
            (f"{_ms(_q(r.latencies[name], 0.95))} / {_ms(_q(r.latencies[name], 0.99))}" for r in reports),
        )
        add(
            f"{label} mean ± std ms (CV)",
            (
                f"{_ms(d.mean)} ± {_ms(d.std)} ({d.cv:.2f})" if (d := r.latencies[name].metric) else "-"
                for r in reports
            ),
        )
    add("time/output token p50 ms", (_ms(_q(r.latencies["tpot"], 0.5), 2) for r in reports))
    add(
        "inter-chunk gap p50 / p99 ms",
        (f"{_ms(_q(r.latencies['itl'], 0.5), 2)} / {_ms(_q(r.latencies['itl'], 0.99), 2)}" for r in reports),
    )
    add("output tokens/s", (_fmt(r.output_tokens_per_s, 0) for r in reports))
    add("requests/s", (_fmt(r.requests_per_s, 2) for r in reports))
    add("cost $ (per 1k requests)", (_cost(r) for r in reports))
    if any(r.slos for r in reports):
        for i, result in enumerate(reports[0].slos):
            add(
                f"SLO {result.slo.text}",
                (
                    f"{'met' if r.slos[i].met else 'MISSED'} ({_ms(r.slos[i].value)} ms)"
                    if i < len(r.slos)
                    else "-"
                    for r in reports
                ),
            )
        add(
            "goodput req/s (attainment)",
            (f"{_fmt(r.goodput_rps, 2)} ({_pct(r.slo_attainment)})" for r in reports),
        )
    if rate is not None:
        add(f"sent req/s (of {rate:g} intended)", (_fmt(r.achieved_rate, 1) for r in reports))
        add(
            "send lag p50 / p99 / max ms",
            (
                f"{_ms(lag.quantiles[0.5])} / {_ms(lag.quantiles[0.99])} / {_ms(lag.max)}"
                if (lag := r.send_lag) is not None
                else "-"
                for r in reports
            ),
        )
    add(
        "client loop lag p50 / p99 ms",
        (f"{_ms(r.loop_lag_p50, 2)} / {_ms(r.loop_lag_p99, 2)}" for r in reports),
    )
    add(
        "client - recorded TTFT p50 / max ms",
        (f"{_ms(o[0], 2)} / {_ms(o[1], 2)}" if (o := r.client_offset.get("ttft")) else "-" for r in reports),
    )
    add(
        "metric vs raw max diff",
        (f"{_pct(r.max_diff, 2)} ({r.max_diff_at})" if r.max_diff_at else "-" for r in reports),
    )
    if any(r.run.ground_truth for r in reports):
        add(
            "mock served / sent",
            (f"{gt.served} / {gt.sent}" if (gt := r.run.ground_truth) else "-" for r in reports),
        )
        add(
            "TTFT = send + server + receive ms",
            (
                f"{_ms(gt.send_overhead_p50, 2)} + {_ms(gt.server_ttft_p50, 2)} + {_ms(gt.receive_p50, 2)}"
                if (gt := r.run.ground_truth) and gt.server_ttft_p50 is not None
                else "-"
                for r in reports
            ),
        )
    return rows


def _with_ci(lat: Latency) -> str:
    median = _ms(_q(lat, 0.5))
    if lat.raw is None:
        return median
    ci = lat.raw.quantile_ci[0.5]
    return f"{median} [{_ms(ci.low)}, {_ms(ci.high)}]"


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


def _pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%" if math.isfinite(value) else "-"


def _cost(r: TargetReport) -> str:
    if not math.isfinite(r.cost_usd):
        return "-"
    per_k = r.cost_usd / r.ok * 1000 if r.ok else math.nan
    return f"{r.cost_usd:.4f} ({_fmt(per_k, 3)})"


def _matrix(reports: Sequence[TargetReport], pairs: Sequence[PairTest], latency: str) -> list[list[str]]:
    by_pair = {(p.a, p.b): p for p in pairs if p.latency == latency}
    ids = [r.id for r in reports]
    grid = []
    for a in ids:
        row = []
        for b in ids:
            if a == b:
                row.append("")
                continue
            p = by_pair.get((a, b))
            ratio = p.ratio if p else None
            if p is None and (b, a) in by_pair:
                p = by_pair[(b, a)]
                ratio = 1 / p.ratio
            if p is None or ratio is None:
                row.append("-")
                continue
            mark = "*" if p.significant else ""
            row.append(f"x{ratio:.2f}{mark} ({_p(p.p_adjusted)})")
        grid.append(row)
    return grid


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def render_terminal(
    outcome: ReplayOutcome, reports: Sequence[TargetReport], pairs: Sequence[PairTest]
) -> RenderableType:
    """The comparison as rich tables (one column per target)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("", no_wrap=True)
    for r in reports:
        table.add_column(Text(r.id), justify="right", no_wrap=True)
    for label, cells in _rows(reports, outcome.config.load.rate):
        table.add_row(Text(label), *(Text(c) for c in cells))
    parts: list[RenderableType] = [Text(_title(outcome)), table]
    if len(reports) > 1 and pairs:
        for latency in compared(reports):
            grid = _matrix(reports, pairs, latency)
            m = Table(
                box=box.SIMPLE_HEAD,
                title=f"{LABELS[latency]}: median of row / median of column",
                title_justify="left",
                pad_edge=False,
            )
            m.add_column("")
            for r in reports:
                m.add_column(Text(r.id), justify="right", no_wrap=True)
            for r, row in zip(reports, grid, strict=True):
                m.add_row(Text(r.id), *(Text(c) for c in row))
            parts.append(m)
    if len(reports) > 1 and pairs:
        parts.append(Text(MATRIX_NOTE))
    parts.append(Text(_footer(outcome, reports)))
    return Group(*parts)


def _title(outcome: ReplayOutcome) -> str:
    load = outcome.config.load
    mode = (
        f"closed loop, concurrency {load.concurrency}"
        if load.rate is None
        else (f"open loop, {load.rate:g} req/s {load.arrival}")
    )
    if outcome.workers > 1:
        mode += f", {outcome.workers} client processes"
    if outcome.config.client.api == "responses":
        schemes = dict.fromkeys(t.scheme for t in outcome.config.targets if t.scheme in RESPONSES_SCHEMES)
        mode += f", {'/'.join(schemes)} through the Responses API"
    partial = "PARTIAL (interrupted) - " if outcome.interrupted else ""
    return f"{partial}otelbench replay: dataset {outcome.config.dataset}, {mode}"


def _footer(outcome: ReplayOutcome, reports: Sequence[TargetReport]) -> str:
    text = (
        "Latencies from the exported gen_ai.client.* exponential histograms; CIs bootstrapped over the "
        "per-request values in the raw log."
    )
    if outcome.mock_url:
        text += f"\nEmbedded mock at {outcome.mock_url} (child process)."
    if outcome.export is not None:
        service = outcome.resource.get("service.name")
        instance = outcome.resource.get("service.instance.id")
        who = (
            f"instance={instance}"
            if outcome.workers == 1
            else f"{outcome.workers} instances (one per worker)"
        )
        text += f"\nOTLP export to {outcome.config.otlp_endpoint} as job={service} {who}: {outcome.export.describe()}."
    missing = sorted({r.target.sdk for r in outcome.runs} - set(outcome.instrumented))
    if missing:
        text += f"\nNo instrumentation active for: {', '.join(missing)} (their metric columns are empty)."
    for r in reports:
        target = r.run.target
        if r.raw_requests and not r.requests and target.sdk in outcome.instrumented:
            host, port = target.host_port
            text += (
                f"\nMetrics counted none of the {r.raw_requests} requests of {r.id}: none reported "
                f"provider {target.provider}, model {target.model} at {host}:{port}."
            )
    return text


def print_terminal(renderable: RenderableType, file: IO[str] | None = None) -> None:
    """Print to stdout (or ``file``); wide enough for the table even when piped."""
    console = Console(file=file, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(file=file, highlight=False, width=240, no_color=True)
    console.print(renderable)


def render_markdown(
    outcome: ReplayOutcome, reports: Sequence[TargetReport], pairs: Sequence[PairTest]
) -> str:
    """The replay's comparison as Markdown (the top of summary.md)."""
    lines = [f"# {_title(outcome)}", ""]
    ids = [r.id for r in reports]
    lines += ["| | " + " | ".join(f"`{i}`" for i in ids) + " |", "|---|" + "---:|" * len(ids)]
    for label, cells in _rows(reports, outcome.config.load.rate):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    if len(reports) > 1 and pairs:
        for latency in compared(reports):
            lines += [
                f"**{LABELS[latency]}**: median of row / median of column",
                "",
                "| | " + " | ".join(f"`{i}`" for i in ids) + " |",
                "|---|" + "---:|" * len(ids),
            ]
            for i, row in zip(ids, _matrix(reports, pairs, latency), strict=True):
                lines.append(f"| `{i}` | " + " | ".join(row) + " |")
            lines.append("")
        lines += [MATRIX_NOTE, ""]
    lines += [_footer(outcome, reports).replace("\n", "  \n"), ""]
    return "\n".join(lines)


# --- files ----------------------------------------------------------------------------------------
def stamped_path(directory: Path, prefix: str, suffix: str) -> Path:
    """``directory/<prefix>-<UTC stamp><suffix>``, with ``-1``, ``-2``, ... if that exists already."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{prefix}-{stamp}{suffix}"
    n = 1
    while path.exists():  # two runs in the same second keep both files
        path = directory / f"{prefix}-{stamp}-{n}{suffix}"
        n += 1
    return path


def write_outputs(
    outcome: ReplayOutcome,
    reports: Sequence[TargetReport],
    pairs: Sequence[PairTest],
    output_dir: str | Path,
) -> tuple[Path, Path, Path]:
    """Write the raw request log, the BenchmarkResult JSON and summary.md; return their paths.

    Every file is replaced atomically. summary.md is written twice: ``write_results`` writes the
    standard per-target tables, then it is replaced by the same text under the replay's own
    comparison (each version complete, so a reader never sees half a file).
    """
    out = Path(output_dir)
    log_path = stamped_path(out / "raw", "requests", ".jsonl")
    origin = outcome.origin_ns

    def dump(fh: IO[str]) -> None:
        for run in outcome.runs:
            for request in run.requests:
                fh.write(json.dumps(request.to_json(origin), allow_nan=False))
                fh.write("\n")

    atomic_write(log_path, dump)
    results = to_results(outcome, reports, pairs, log_path.name)
    raw_path, summary_path = write_results(results, out)
    summary = render_markdown(outcome, reports, pairs) + "\n" + render_summary(results, raw_path.name)
    atomic_write(summary_path, lambda fh: fh.write(summary))
    return raw_path, summary_path, log_path


__all__ = [
    "PairTest",
    "TargetReport",
    "build_report",
    "compare",
    "print_terminal",
    "render_markdown",
    "render_terminal",
    "stamped_path",
    "to_results",
    "write_outputs",
]
