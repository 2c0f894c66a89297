"""Parameter sweeps: every combination of request options and load settings, each run N times.

Usage::

    otelbench replay --target ollama:llama3.2:1b --sweep num_ctx=2048,8192 --sweep temperature=0.2,0.8 --runs 3

``--sweep KEY=V1,V2,...`` (repeatable) takes a request option (``temperature``, ``num_ctx``, ...;
see :mod:`otelbench.replay.options` for which SDK receives which), ``max_tokens``, or a load
setting (``concurrency``, ``rate``). The configurations are the Cartesian product of the axes,
first axis outermost; each is replayed ``--runs`` times. Run r of every configuration uses seed
``--seed`` + r (Poisson arrivals, and the embedded mock's latency samples), so configurations
see the same arrivals and samples: their differences come from the swept setting.

Per target and configuration: the mean over runs of each main metric, its 95 % CI (Student t
over the per-run values), CV across runs, and for latencies the percentile-bootstrap CI of the
pooled per-request values. The best configuration is chosen by ``--sweep-metric``. Every other
configuration is compared with the baseline (the first, or ``--sweep-baseline``): two-sided
Mann-Whitney U on the pooled per-request values (latencies) or on the per-run values (rates),
Holm-adjusted over all the target's tests.

Written atomically: ``<output dir>/raw/sweep-<stamp>.csv`` (one row per target, configuration
and metric) and ``<output dir>/sweep.md``.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otelbench.errors import UsageError
from otelbench.replay.options import OPTION_TYPES, SDK_OPTIONS, number_kind, parse_number
from otelbench.targets import atomic_write

# numpy (through the statistics) and the replay runner are imported on use: the CLI imports
# this module to build its parser and must reject a bad flag without paying for them.
if TYPE_CHECKING:
    from rich.console import RenderableType

    from otelbench.replay.progress import Progress
    from otelbench.replay.runner import ReplayConfig, ReplayOutcome

Value = int | float
Configuration = dict[str, Value]

#: Load settings that can be swept (everything else is a request option).
LOAD_KEYS: dict[str, type] = {"concurrency": int, "rate": float}
#: Sets every prompt's output limit (mapped per SDK by the adapters).
MAX_TOKENS = "max_tokens"
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Metric:
    """A metric a sweep reports: its BenchmarkResult name and how to judge it."""

    name: str
    label: str
    key: str  # the BenchmarkResult metric
    lower_is_better: bool = True
    #: Per-request values for the significance test (a latency name); None = per-run values.
    latency: str | None = None
    scale: float = 1000.0  # shown in ms
    unit: str = "ms"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("ttft_p50", "TTFT p50", "ttft_p50_s", latency="ttft"),
        Metric("ttft_p95", "TTFT p95", "ttft_p95_s", latency="ttft"),
        Metric("duration_p50", "duration p50", "duration_p50_s", latency="duration"),
        Metric("duration_p95", "duration p95", "duration_p95_s", latency="duration"),
        Metric("tpot_p50", "time/output token p50", "tpot_p50_s", latency="tpot"),
        Metric("itl_p50", "inter-chunk gap p50", "itl_p50_s", latency="itl"),
        Metric("output_tokens_per_s", "output tokens/s", "output_tokens_per_s", False, scale=1.0, unit=""),
        Metric("requests_per_s", "requests/s", "requests_per_s", False, scale=1.0, unit=""),
        Metric("error_rate", "error rate", "error_rate", scale=100.0, unit="%"),
    )
}
DEFAULT_METRIC = "ttft_p50"
#: Shown in the terminal table and summary (all are in the CSV).
SHOWN = ("ttft_p50", "duration_p50", "tpot_p50", "output_tokens_per_s")


# --- parsing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One swept key and its values, in the order given."""

    key: str
    values: tuple[Value, ...]


def _key_type(key: str) -> type:
    if key in LOAD_KEYS:
        return LOAD_KEYS[key]
    if key == MAX_TOKENS:
        return int
    if key in OPTION_TYPES:
        return OPTION_TYPES[key]
    known = ", ".join([*LOAD_KEYS, MAX_TOKENS, *sorted(OPTION_TYPES)])
    raise UsageError(f"unknown --sweep key {key!r} (known: {known})")


def _value(key: str, text: str, flag: str) -> Value:
    kind = _key_type(key)
    value = parse_number(text, kind)
    if value is None:
        raise UsageError(f"bad {flag} value {text!r} for {key}: expected {number_kind(kind)}")
    if (key in LOAD_KEYS or key == MAX_TOKENS) and value <= 0:
        raise UsageError(f"bad {flag} value {text!r} for {key}: expected a positive number")
    return value


_SPEC = re.compile(r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=(?P<values>.*)$")


def parse_axis(spec: str) -> Axis:
    """Parse ``KEY=V1,V2,...`` (UsageError naming the bad part)."""
    found = _SPEC.match(spec)
    if not found:
        raise UsageError(f"bad --sweep {spec!r}: expected KEY=V1,V2,... e.g. num_ctx=2048,4096")
    key = found["key"]
    _key_type(key)
    texts = [t.strip() for t in found["values"].split(",")]
    if not any(texts) or not all(texts):
        raise UsageError(f"bad --sweep {spec!r}: empty value")
    values = tuple(_value(key, t, "--sweep") for t in texts)
    if len(set(values)) != len(values):
        raise UsageError(f"bad --sweep {spec!r}: a value is given twice")
    return Axis(key, values)


def parse_axes(specs: Sequence[str]) -> list[Axis]:
    """Parse every ``--sweep``; a key given twice is an error."""
    axes = [parse_axis(s) for s in specs]
    seen: set[str] = set()
    for axis in axes:
        if axis.key in seen:
            raise UsageError(f"--sweep {axis.key} is given twice; list all its values in one --sweep")
        seen.add(axis.key)
    if "concurrency" in seen and "rate" in seen:
        raise UsageError("--sweep concurrency and --sweep rate exclude each other (closed vs open loop)")
    return axes


def parse_configuration(text: str, axes: Sequence[Axis], flag: str = "--sweep-baseline") -> Configuration:
    """Parse ``k=v,k2=v2`` into a configuration of ``axes`` (UsageError if it is not one of them)."""
    config: Configuration = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or not raw.strip():
            raise UsageError(f"bad {flag} {text!r}: expected KEY=VALUE,...")
        if key not in {a.key for a in axes}:
            raise UsageError(f"bad {flag} {text!r}: {key!r} is not swept")
        config[key] = _value(key, raw.strip(), flag)
    if not config:
        raise UsageError(f"bad {flag} {text!r}: expected KEY=VALUE,...")
    candidates = [c for c in configurations(axes) if all(c[k] == v for k, v in config.items())]
    if len(candidates) != 1:
        why = (
            "matches no configuration" if not candidates else "matches several configurations; name every key"
        )
        raise UsageError(f"bad {flag} {text!r}: {why}")
    return candidates[0]


def configurations(axes: Sequence[Axis]) -> list[Configuration]:
    """The Cartesian product of the axes (first axis outermost); one empty configuration if none."""
    keys = [a.key for a in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(a.values for a in axes))]


def label(config: Configuration) -> str:
    """``num_ctx=256 temperature=0.6`` (``-`` for the unswept configuration)."""
    return " ".join(f"{k}={v:g}" for k, v in config.items()) or "-"


def check_applicable(axes: Sequence[Axis], schemes: Iterable[str]) -> list[str]:
    """Notes on options some targets' SDKs do not take; UsageError if none of them takes one."""
    schemes = sorted(set(schemes))
    notes = []
    for axis in axes:
        if axis.key in LOAD_KEYS or axis.key == MAX_TOKENS:
            continue
        takes = [s for s in schemes if axis.key in SDK_OPTIONS.get(s, frozenset())]
        if not takes:
            sdks = ", ".join(s for s, keys in SDK_OPTIONS.items() if axis.key in keys)
            raise UsageError(f"--sweep {axis.key}: no target's SDK takes it (only {sdks})")
        if len(takes) < len(schemes):
            notes.append(f"{axis.key} is sent to {', '.join(takes)} targets only")
    return notes


def apply(base: ReplayConfig, config: Configuration, seed: int) -> ReplayConfig:
    """``base`` with the configuration's load settings and request options, and ``seed``."""
    from otelbench.datasets import with_max_tokens

    load = base.load
    if "concurrency" in config:
        load = replace(load, concurrency=int(config["concurrency"]))
    if "rate" in config:
        load = replace(load, rate=float(config["rate"]))
    options = {k: v for k, v in config.items() if k in OPTION_TYPES}
    client = replace(base.client, request={**base.client.request, **options})
    prompts = base.prompts
    if MAX_TOKENS in config:
        prompts = with_max_tokens(prompts, int(config[MAX_TOKENS]))
    # The embedded mock is re-seeded too: each run then samples its own latencies, so the CI
    # across runs covers the provider's variation, not just the client's timing noise.
    mock = base.mock_config
    if mock is not None:
        mock = replace(mock, seed=mock.seed + seed - base.seed)
    return replace(base, load=load, client=client, prompts=prompts, seed=seed, mock_config=mock)


# --- statistics -------------------------------------------------------------------------------
# Two-sided 95 % Student t quantiles by degrees of freedom (runs - 1); the normal's beyond 30.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t_quantile(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df


@dataclass(frozen=True)
class Summary:
    """One metric over the runs of one configuration."""

    runs: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    #: Percentile-bootstrap CI of the pooled per-request values' quantile (latencies only).
    pooled_low: float = math.nan
    pooled_high: float = math.nan

    @property
    def cv(self) -> float:
        """Coefficient of variation across runs."""
        return self.std / self.mean if self.mean else math.nan

    def contains(self, value: float) -> bool:
        """True if ``value`` lies in the across-run 95 % CI."""
        return self.ci_low <= value <= self.ci_high


def summarise(values: Sequence[float]) -> Summary:
    """Mean, std and Student-t 95 % CI of per-run values (NaNs dropped)."""
    vals = [v for v in values if math.isfinite(v)]
    n = len(vals)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = sum(vals) / n
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass
class RunCell:
    """One target in one run of one configuration."""

    metrics: dict[str, float]
    #: Per-request values the instrumentation recorded (successful requests), by latency name.
    values: dict[str, list[float]]
    ground_truth: dict[str, Any] | None = None


@dataclass
class Cell:
    """One target under one configuration, over its runs."""

    target: str
    config: Configuration
    runs: list[RunCell] = field(default_factory=list)

    def per_run(self, metric: Metric) -> list[float]:
        """The metric's value in each run."""
        return [r.metrics.get(metric.key, math.nan) for r in self.runs]

    def pooled(self, latency: str) -> list[float]:
        """Every run's per-request values of ``latency``."""
        return [v for r in self.runs for v in r.values.get(latency, [])]

    def summary(self, metric: Metric, seed: int = 0) -> Summary:
        """Across-run statistics of ``metric`` (plus the pooled bootstrap CI for latency quantiles)."""
        from otelbench.summary.stats import describe

        s = summarise(self.per_run(metric))
        q = _quantile_of(metric)
        if metric.latency is not None and q is not None:
            dist = describe(self.pooled(metric.latency), (q,), seed=seed)
            if dist is not None:
                ci = dist.quantile_ci[q]
                s = replace(s, pooled_low=ci.low, pooled_high=ci.high)
        return s


def _quantile_of(metric: Metric) -> float | None:
    found = re.search(r"_p(\d+(?:\.\d+)?)$", metric.name)
    return float(found.group(1)) / 100 if found else None


@dataclass(frozen=True)
class Difference:
    """A configuration against the baseline, for one metric of one target."""

    diff: float  # mean - baseline mean
    relative: float  # diff / baseline mean
    p_value: float
    p_holm: float

    @property
    def significant(self) -> bool:
        """Holm-adjusted p below 0.05."""
        return self.p_holm < SIGNIFICANCE


@dataclass
class SweepResult:
    """Every configuration's cells, the baseline and the metric that picks the best."""

    axes: list[Axis]
    configs: list[Configuration]
    targets: list[str]
    runs: int
    metric: Metric
    baseline: int = 0
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)
    partial: bool = False
    notes: list[str] = field(default_factory=list)
    seed: int = 0

    def cell(self, target: str, index: int) -> Cell:
        """The cell of ``target`` under configuration ``index``."""
        return self.cells.setdefault((target, index), Cell(target, self.configs[index]))

    def complete(self, target: str) -> list[int]:
        """Configurations of ``target`` with at least one run."""
        return [
            i for i in range(len(self.configs)) if self.cells.get((target, i)) and self.cell(target, i).runs
        ]

    def best(self, target: str, metric: Metric | None = None) -> int | None:
        """Index of the configuration with the best mean ``metric`` (default: the sweep metric)."""
        metric = metric or self.metric
        scored = [
            (m, i)
            for i in self.complete(target)
            if math.isfinite(m := self.cell(target, i).summary(metric).mean)
        ]
        if not scored:
            return None
        return (min(scored) if metric.lower_is_better else max(scored))[1]

    def differences(self, target: str) -> dict[tuple[int, str], Difference]:
        """Each configuration vs the baseline, for every metric; p-values Holm-adjusted per target."""
        from otelbench.summary.stats import holm, mann_whitney

        base = self.cells.get((target, self.baseline))
        if base is None or not base.runs:
            return {}
        tests: list[tuple[int, str, float, float, float]] = []
        for i in self.complete(target):
            if i == self.baseline:
                continue
            cell = self.cell(target, i)
            for metric in METRICS.values():
                if metric.latency is not None:
                    result = mann_whitney(cell.pooled(metric.latency), base.pooled(metric.latency))
                else:
                    result = mann_whitney(cell.per_run(metric), base.per_run(metric))
                mean = cell.summary(metric).mean
                base_mean = base.summary(metric).mean
                if result is None or not (math.isfinite(mean) and math.isfinite(base_mean)):
                    continue
                diff = mean - base_mean
                rel = diff / base_mean if base_mean else math.nan
                tests.append((i, metric.name, diff, rel, result.p_value))
        adjusted = holm([t[4] for t in tests])
        return {
            (i, name): Difference(d, r, p, a) for (i, name, d, r, p), a in zip(tests, adjusted, strict=True)
        }


# --- running ----------------------------------------------------------------------------------
def run_sweep(
    base: ReplayConfig,
    axes: Sequence[Axis],
    runs: int,
    *,
    metric: str = DEFAULT_METRIC,
    baseline: Configuration | None = None,
    progress: Callable[[], Progress] | None = None,
    message: Callable[[str], None] | None = None,
) -> SweepResult:
    """Replay every configuration ``runs`` times and gather the per-run metrics and values."""
    from otelbench.replay.runner import run_replay

    configs = configurations(axes)
    result = SweepResult(
        list(axes),
        configs,
        [t.id for t in base.targets],
        runs,
        METRICS[metric],
        configs.index(baseline) if baseline is not None else 0,
        seed=base.seed,
    )
    say = message or (lambda _text: None)
    total = len(configs) * runs
    step = 0
    for index, config in enumerate(configs):
        for r in range(runs):
            step += 1
            where = f"{label(config)}, " if config else ""
            say(f"sweep {step}/{total}: {where}run {r + 1}/{runs}")
            replay = apply(base, config, base.seed + r)
            try:
                outcome = run_replay(replay, progress() if progress else None)
            except KeyboardInterrupt:
                # Ctrl-C outside a run's own handler (e.g. while its mock starts): keep what we have.
                result.partial = True
                return result
            _gather(result, index, outcome)
            if outcome.interrupted:
                result.partial = True
                return result
    return result


def _gather(result: SweepResult, index: int, outcome: ReplayOutcome) -> None:
    from otelbench.replay.pricing import PriceTable
    from otelbench.replay.report import build_report, to_results

    runs = [r for r in outcome.runs if not r.skipped]
    reports = [build_report(r, [], PriceTable(), seed=outcome.config.seed) for r in runs]
    for run, bench in zip(runs, to_results(outcome, reports, [], None), strict=True):
        ok = [r for r in run.measured if r.ok]
        values = {
            "ttft": [v for r in ok if (v := r.ttft) is not None],
            "duration": [v for r in ok if (v := r.duration) is not None],
            "tpot": [v for r in ok if (v := r.tpot) is not None],
            "itl": [g for r in ok for g in r.gaps],
        }
        cell = RunCell(dict(bench.metrics), values, bench.details.get("mock_ground_truth"))
        result.cell(run.target.id, index).runs.append(cell)


# --- rendering --------------------------------------------------------------------------------
CSV_COLUMNS = (
    "metric",
    "runs",
    "mean",
    "ci95_low",
    "ci95_high",
    "std",
    "cv",
    "pooled_ci95_low",
    "pooled_ci95_high",
    "diff_vs_baseline",
    "rel_diff_vs_baseline",
    "p_value",
    "p_holm",
    "significant",
    "is_baseline",
    "is_best",
    "sweep_metric",
)


def _num(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ""


def render_csv(result: SweepResult) -> str:
    """One row per target, configuration and metric (values in the metric's own unit, seconds).

    ``is_best`` marks the best configuration by that row's metric; ``sweep_metric`` names the
    metric the sweep was run with (the terminal table's "best")."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = [a.key for a in result.axes]
    writer.writerow(("target", "configuration", *keys, *CSV_COLUMNS))
    for target in result.targets:
        diffs = result.differences(target)
        best = {m: result.best(target, METRICS[m]) for m in METRICS}
        for i in result.complete(target):
            cell = result.cell(target, i)
            for metric in METRICS.values():
                s = cell.summary(metric, result.seed)
                d = diffs.get((i, metric.name))
                writer.writerow(
                    (
                        target,
                        label(cell.config),
                        *(f"{cell.config[k]:g}" for k in keys),
                        metric.name,
                        s.runs,
                        _num(s.mean),
                        _num(s.ci_low),
                        _num(s.ci_high),
                        _num(s.std),
                        _num(s.cv),
                        _num(s.pooled_low),
                        _num(s.pooled_high),
                        _num(d.diff) if d else "",
                        _num(d.relative) if d else "",
                        _num(d.p_value) if d else "",
                        _num(d.p_holm) if d else "",
                        ("yes" if d.significant else "no") if d else "",
                        "yes" if i == result.baseline else "no",
                        "yes" if best[metric.name] == i else "no",
                        result.metric.name,
                    )
                )
    return buf.getvalue()


def _fmt(value: float, metric: Metric) -> str:
    if not math.isfinite(value):
        return "-"
    scaled = value * metric.scale
    digits = 0 if metric.name == "output_tokens_per_s" else 2 if abs(scaled) < 100 else 1
    return f"{scaled:.{digits}f}"


def _cell_text(result: SweepResult, target: str, i: int, metric: Metric) -> str:
    s = result.cell(target, i).summary(metric)
    text = _fmt(s.mean, metric)
    if s.runs > 1:
        text += f" [{_fmt(s.ci_low, metric)}, {_fmt(s.ci_high, metric)}] ({s.cv:.2f})"
    return text


def _diff_text(result: SweepResult, target: str, i: int, diffs: dict[tuple[int, str], Difference]) -> str:
    if i == result.baseline:
        return "baseline"
    d = diffs.get((i, result.metric.name))
    if d is None:
        return "-"
    p = "p<0.001" if d.p_holm < 0.001 else f"p={d.p_holm:.3f}"
    return f"{d.relative * 100:+.1f}%{'*' if d.significant else ''} ({p})"


def _headers(result: SweepResult) -> list[str]:
    unit = {m: f" {METRICS[m].unit}".rstrip() for m in SHOWN}
    return [
        "configuration",
        *(f"{METRICS[m].label}{unit[m]}" for m in SHOWN),
        f"{result.metric.label} vs baseline",
        "",
    ]


def table_rows(result: SweepResult, target: str) -> list[list[str]]:
    """The rows of one target's table: configuration, shown metrics, difference, best mark."""
    diffs = result.differences(target)
    best = result.best(target)
    rows = []
    for i in result.complete(target):
        cell = result.cell(target, i)
        rows.append(
            [
                label(cell.config),
                *(_cell_text(result, target, i, METRICS[m]) for m in SHOWN),
                _diff_text(result, target, i, diffs),
                "best" if i == best and len(result.configs) > 1 else "",
            ]
        )
    return rows


def _title(result: SweepResult) -> str:
    partial = "PARTIAL (interrupted) - " if result.partial else ""
    n = len(result.configs)
    axes = " x ".join(f"{a.key} ({len(a.values)})" for a in result.axes) or "no swept key"
    return (
        f"{partial}otelbench sweep: {axes} = {n} configuration{'s' * (n != 1)} x {result.runs} runs; "
        f"best by {result.metric.label} ({'lower' if result.metric.lower_is_better else 'higher'} is better)"
    )


FOOTNOTE = (
    "Cells: mean over runs [Student-t 95% CI across runs] (CV across runs). vs baseline: relative difference of the "
    "means; p: two-sided Mann-Whitney U on pooled per-request values (rates: per-run values), Holm-adjusted "
    "per target; * = significant at 0.05."
)


def render_terminal(result: SweepResult) -> RenderableType:
    """One rich table per target."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = [Text(_title(result))]
    for target in result.targets:
        table = Table(box=box.SIMPLE_HEAD, title=target, title_justify="left", pad_edge=False)
        for n, header in enumerate(_headers(result)):
            table.add_column(header, justify="left" if n == 0 else "right", no_wrap=n == 0)
        for row in table_rows(result, target):
            table.add_row(*(Text(c) for c in row))
        parts.append(table)
    parts += [Text(FOOTNOTE), *(Text(f"note: {n}") for n in result.notes)]
    return Group(*parts)


def render_markdown(result: SweepResult, csv_name: str | None = None) -> str:
    """The sweep as Markdown: one table per target."""
    lines = [f"# {_title(result)}", ""]
    if csv_name:
        lines += [f"Every metric per configuration: `raw/{csv_name}`", ""]
    headers = _headers(result)
    for target in result.targets:
        lines += [f"## `{target}`", "", "| " + " | ".join(headers) + " |"]
        lines.append("|---|" + "---:|" * (len(headers) - 1))
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(result, target)]
        lines.append("")
    lines += [FOOTNOTE, "", *(f"Note: {n}" for n in result.notes), ""]
    return "\n".join(lines)


def write_sweep(result: SweepResult, output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``raw/sweep-<stamp>.csv`` and ``sweep.md`` atomically; return their paths."""
    from otelbench.replay.report import stamped_path

    out = Path(output_dir)
    csv_path = stamped_path(out / "raw", "sweep", ".csv")
    text = render_csv(result)
    atomic_write(csv_path, lambda fh: fh.write(text))
    md_path = out / "sweep.md"
    markdown = render_markdown(result, csv_path.name)
    atomic_write(md_path, lambda fh: fh.write(markdown))
    return csv_path, md_path


__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "Axis",
    "Cell",
    "Difference",
    "Metric",
    "Summary",
    "SweepResult",
    "apply",
    "check_applicable",
    "configurations",
    "label",
    "parse_axes",
    "parse_axis",
    "parse_configuration",
    "render_csv",
    "render_markdown",
    "render_terminal",
    "run_sweep",
    "summarise",
    "t_quantile",
    "write_sweep",
]
