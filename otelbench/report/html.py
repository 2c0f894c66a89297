"""Assemble the self-contained HTML report: tables and inline SVG charts, no network, no libraries.

Charts (``data-chart`` ids): ``ttft-cdf`` and ``duration-cdf`` (per-request values from the
request logs), ``matrix-ttft`` and ``matrix-duration`` (median ratio of every pair of targets,
Mann-Whitney U on the per-request values, Holm-adjusted), ``throughput`` (requests/s against
concurrency, rate or configuration, from a sweep CSV) and ``history`` (one metric over time,
from a history CSV). A chart whose input is missing is replaced by a sentence saying which
option supplies it.

A small inline script counts, once the page is laid out, the drawn series of each chart (those
with a non-empty bounding box) into ``data-drawn``, so a headless browser can check the
rendering from the DOM alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import numpy as np

from otelbench.summary.stats import exact_quantile, holm, mann_whitney

from .data import HistoryPoint, ResultFile, SweepTable, short_id
from .svg import Series, heatmap, line_chart

#: Points per CDF line: above this, evenly spaced quantiles stand in for the raw values.
CDF_POINTS = 400
SIGNIFICANCE = 0.05

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1360px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta,.note{color:#666;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{margin:0;flex:1 1 620px;max-width:660px;border:1px solid #e4e4e4;border-radius:6px;padding:8px}
figcaption{font-weight:600;font-size:13px;margin-bottom:4px}
svg{width:100%;height:auto;font-size:11px}
.frame{fill:none;stroke:#bbb}.grid{stroke:#eee}.tick{fill:#555}.axis{fill:#333;font-size:12px}
.legend{fill:#333}.cell{fill:#111;font-size:11px}.empty{fill:#f4f4f4}.error{stroke-width:1.5}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#fafafa}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var total = 0;
  document.querySelectorAll('figure.chart').forEach(function (fig) {
    var drawn = 0;
    fig.querySelectorAll('.series').forEach(function (el) {
      var box = el.getBBox();
      if (box.width > 0 || box.height > 0) { drawn += 1; }
    });
    fig.setAttribute('data-drawn', String(drawn));
    total += 1;
  });
  document.body.setAttribute('data-charts', String(total));
});
"""


@dataclass
class Line:
    """One target of one result file, with its per-request values."""

    label: str
    metrics: dict[str, float]
    ttft: list[float]
    duration: list[float]


def _lines(files: Sequence[ResultFile]) -> list[Line]:
    lines = []
    for n, file in enumerate(files, start=1):
        for result in file.results:
            dist = file.distribution(result)
            if dist is None:
                continue
            tag = f" #{n}" if len(files) > 1 else ""
            lines.append(Line(short_id(result.target_id) + tag, result.metrics, dist.ttft, dist.duration))
    return lines


def _cdf(values: Sequence[float]) -> list[tuple[float, float]]:
    arr = np.sort(np.asarray(values, dtype=float))
    n = arr.size
    if n == 0:
        return []
    if n <= CDF_POINTS:
        return [(float(v) * 1000, (i + 1) / n) for i, v in enumerate(arr)]
    probs = np.linspace(1 / CDF_POINTS, 1.0, CDF_POINTS)
    return [(exact_quantile(arr, float(p)) * 1000, float(p)) for p in probs]


def _cdf_chart(chart_id: str, title: str, lines: Sequence[Line], attr: str) -> str:
    series = [Series(f"{ln.label} (n={len(getattr(ln, attr))})", _cdf(getattr(ln, attr))) for ln in lines]
    series = [s for s in series if s.points]
    return line_chart(
        chart_id, title, series, x_label="milliseconds", y_label="share of requests", step=True, y_min=0.0
    )


def _matrix(chart_id: str, title: str, lines: Sequence[Line], attr: str, metric: str) -> str:
    usable = [ln for ln in lines if len(getattr(ln, attr)) >= 2]
    if len(usable) < 2:
        return ""
    tests = []
    for i, a in enumerate(usable):
        for j, b in enumerate(usable):
            if i >= j:
                continue
            result = mann_whitney(getattr(a, attr), getattr(b, attr))
            ma, mb = _median(a, attr, metric), _median(b, attr, metric)
            if result is not None and mb > 0 and ma > 0:
                tests.append((i, j, ma / mb, result.p_value))
    adjusted = holm([t[3] for t in tests])
    cells: dict[tuple[int, int], tuple[float, str]] = {}
    for (i, j, ratio, _raw_p), p in zip(tests, adjusted, strict=True):
        mark = "*" if p < SIGNIFICANCE else ""
        cells[(i, j)] = (ratio, f"x{ratio:.2f}{mark} ({_p(p)})")
        cells[(j, i)] = (1 / ratio, f"x{1 / ratio:.2f}{mark} ({_p(p)})")
    note = (
        "median of row / median of column; p: two-sided Mann-Whitney U on the per-request values, "
        "Holm-adjusted over the matrix; * = significant at 0.05"
    )
    return heatmap(chart_id, title, [ln.label for ln in usable], cells, note)


def _median(line: Line, attr: str, metric: str) -> float:
    # The exported histogram's median when the result has it (the figure the tables show).
    value = line.metrics.get(metric, math.nan)
    return value if math.isfinite(value) else exact_quantile(getattr(line, attr), 0.5)


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _throughput(sweep: SweepTable, metric: str = "requests_per_s") -> str:
    rows = [r for r in sweep.rows if r["metric"] == metric]
    if not rows:
        return ""
    load_key = next((k for k in ("concurrency", "rate") if k in sweep.keys), None)
    others = [k for k in sweep.keys if k != load_key]
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        rest = " ".join(f"{k}={row[k]}" for k in others)
        groups.setdefault(f"{row['target']} {rest}".strip(), []).append(row)
    configs = list(dict.fromkeys(r["configuration"] for r in rows))
    series = []
    for name, members in groups.items():

        def x_of(row: dict[str, str]) -> float:
            return sweep.value(row, load_key) if load_key else float(configs.index(row["configuration"]))

        members = sorted(members, key=x_of)
        series.append(
            Series(
                name,
                [(x_of(r), sweep.value(r, "mean")) for r in members],
                [(sweep.value(r, "ci95_low"), sweep.value(r, "ci95_high")) for r in members],
            )
        )
    if load_key:
        return line_chart(
            "throughput",
            f"Throughput vs {load_key} (mean over runs, 95% CI)",
            series,
            x_label=load_key if load_key == "concurrency" else "rate (req/s)",
            y_label="requests/s",
            y_min=0.0,
        )
    # No load axis swept: one point per configuration, labelled by its settings.
    return line_chart(
        "throughput",
        "Throughput by configuration (mean over runs, 95% CI)",
        series,
        x_label="configuration",
        y_label="requests/s",
        x_ticks=[float(i) for i in range(len(configs))],
        x_format=lambda x: configs[int(x)] if 0 <= int(x) < len(configs) else "",
        y_min=0.0,
    )


def _history(points: Sequence[HistoryPoint], metric: str) -> str:
    chosen = [p for p in points if p.metric == metric and math.isfinite(p.value)]
    if not chosen:
        return ""
    by_target: dict[str, list[HistoryPoint]] = {}
    for p in chosen:
        by_target.setdefault(p.target, []).append(p)
    scale, unit = (1000.0, "ms") if metric.endswith("_s") else (1.0, "")
    series = [
        Series(
            short_id(target),
            [(p.time.timestamp(), p.value * scale) for p in sorted(pts, key=lambda p: p.time)],
        )
        for target, pts in by_target.items()
    ]
    times = [p.time.timestamp() for p in chosen]
    span = max(times) - min(times)
    return line_chart(
        "history",
        f"History: {metric}" + (f" ({unit})" if unit else ""),
        series,
        x_label="run time (UTC)",
        y_label=f"{metric.removesuffix('_s')} {unit}".strip(),
        x_format=lambda t: datetime.fromtimestamp(t, UTC).strftime(_time_format(span)),
    )


def _time_format(span_s: float) -> str:
    if span_s < 3600:
        return "%H:%M:%S"
    return "%m-%d %H:%M" if span_s < 3 * 86400 else "%Y-%m-%d"


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * scale:.{digits}f}"


def _results_table(files: Sequence[ResultFile]) -> str:
    head = (
        "<tr><th>target</th><th>file</th><th>requests (failed)</th><th>TTFT p50 ms</th><th>TTFT p95 ms</th>"
        "<th>duration p50 ms</th><th>duration p95 ms</th><th>output tokens/s</th><th>requests/s</th></tr>"
    )
    rows, others = [], []
    for file in files:
        for r in file.results:
            m = r.metrics
            if "ttft_p50_s" not in m and "duration_p50_s" not in m:
                others.append((file, r))
                continue
            rows.append(
                f"<tr><td>{escape(short_id(r.target_id))}</td><td>{escape(file.path.name)}</td>"
                f"<td>{_fmt(m.get('requests'), digits=0)} ({_fmt(m.get('errors'), digits=0)})</td>"
                f"<td>{_fmt(m.get('ttft_p50_s'), 1000)}</td><td>{_fmt(m.get('ttft_p95_s'), 1000)}</td>"
                f"<td>{_fmt(m.get('duration_p50_s'), 1000)}</td><td>{_fmt(m.get('duration_p95_s'), 1000)}</td>"
                f"<td>{_fmt(m.get('output_tokens_per_s'), digits=0)}</td>"
                f"<td>{_fmt(m.get('requests_per_s'), digits=2)}</td></tr>"
            )
    html = f"<table>{head}{''.join(rows)}</table>" if rows else ""
    for file, r in others:  # benchmark targets without latencies (overhead, capacity, ...)
        cells = "".join(
            f"<tr><td>{escape(k)}</td><td>{escape(_number(v))}</td></tr>" for k, v in r.metrics.items()
        )
        html += (
            f"<details><summary>{escape(r.target_id)} ({escape(file.path.name)})</summary>"
            f"<table><tr><th>metric</th><th>value</th></tr>{cells}</table></details>"
        )
    return html


def _number(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.6g}"


def _sweep_table(sweep: SweepTable) -> str:
    shown = ("ttft_p50", "duration_p50", "output_tokens_per_s", "requests_per_s")
    cells: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    # The sweep's own choice: the best row of the metric it was run with.
    best = {
        row["target"]: row["configuration"]
        for row in sweep.rows
        if row.get("is_best") == "yes" and row["metric"] == (row.get("sweep_metric") or "ttft_p50")
    }
    for row in sweep.rows:
        if row["metric"] in shown:
            cells.setdefault((row["target"], row["configuration"]), {})[row["metric"]] = row
    head = "<tr><th>target</th><th>configuration</th><th>runs</th>" + "".join(
        f"<th>{escape(m)} mean [95% CI]</th>" for m in shown
    )
    head += "<th></th></tr>"
    body = []
    for (target, config), by_metric in cells.items():
        first = next(iter(by_metric.values()))
        texts = []
        for m in shown:
            found = by_metric.get(m)
            if found is None:
                texts.append("-")
                continue
            scale = 1000.0 if m.endswith("_p50") else 1.0
            low, high = sweep.value(found, "ci95_low"), sweep.value(found, "ci95_high")
            ci = f" [{_fmt(low, scale, 2)}, {_fmt(high, scale, 2)}]" if math.isfinite(low) else ""
            texts.append(f"{_fmt(sweep.value(found, 'mean'), scale, 2)}{ci}")
        marks = ["baseline"] if first.get("is_baseline") == "yes" else []
        chosen = best.get(target)
        if chosen is not None and chosen == config:
            marks.append(f"best by {first.get('sweep_metric') or 'ttft_p50'}")
        body.append(
            f"<tr><td>{escape(target)}</td><td>{escape(config)}</td><td>{escape(first['runs'])}</td>"
            + "".join(f"<td>{escape(t)}</td>" for t in texts)
            + f"<td>{escape(' '.join(marks))}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _missing(what: str) -> str:
    return f'<p class="note">{escape(what)}</p>'


def render_html(
    files: Sequence[ResultFile],
    *,
    history: Sequence[HistoryPoint] | None = None,
    history_metric: str = "ttft_p50_s",
    sweep: SweepTable | None = None,
    generated: datetime | None = None,
) -> str:
    """The whole report as one HTML document."""
    generated = generated or datetime.now(UTC)
    lines = _lines(files)
    inputs = ", ".join(escape(f.path.name) for f in files)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>otelbench report</title><style>{CSS}</style></head><body>",
        "<h1>otelbench report</h1>",
        f"<p class='meta'>Generated {generated:%Y-%m-%d %H:%M:%S} UTC from {inputs}"
        + (" and a history CSV" if history else "")
        + (" and a sweep CSV" if sweep else "")
        + ". Latency figures in the table come from the exported gen_ai.client.* histograms; "
        "distributions from the per-request log.</p>",
        "<h2>Results</h2>",
        _results_table(files),
        "<h2>Latency distributions</h2>",
    ]
    cdfs = [
        _cdf_chart("ttft-cdf", "Time to first token: CDF per target", lines, "ttft"),
        _cdf_chart("duration-cdf", "Request duration: CDF per target", lines, "duration"),
    ]
    if any(cdfs):
        parts.append("<div class='charts'>" + "".join(cdfs) + "</div>")
    else:
        parts.append(
            _missing("No request log found next to the results (replay writes raw/requests-*.jsonl).")
        )
    parts.append("<h2>Provider comparison</h2>")
    matrices = [
        _matrix("matrix-ttft", "Time to first token: median ratio", lines, "ttft", "ttft_p50_s"),
        _matrix("matrix-duration", "Request duration: median ratio", lines, "duration", "duration_p50_s"),
    ]
    if any(matrices):
        parts.append("<div class='charts'>" + "".join(matrices) + "</div>")
    else:
        parts.append(_missing("Fewer than two targets with per-request values: nothing to compare."))
    parts.append("<h2>Throughput vs load (sweep)</h2>")
    if sweep is not None and (chart := _throughput(sweep)):
        parts += ["<div class='charts'>", chart, "</div>", _sweep_table(sweep)]
    else:
        parts.append(_missing("No sweep given (otelbench report ... --sweep raw/sweep-<stamp>.csv)."))
    parts.append("<h2>History</h2>")
    if history and (chart := _history(history, history_metric)):
        parts += ["<div class='charts'>", chart, "</div>"]
    else:
        parts.append(_missing(f"No history of {history_metric} given (--history history.csv)."))
    parts.append(f"<script>{SCRIPT}</script></body></html>\n")
    return "\n".join(parts)


__all__ = ["CDF_POINTS", "render_html"]
