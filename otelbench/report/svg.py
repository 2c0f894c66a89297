"""Inline SVG charts: a line chart (CDFs, trends, throughput with error bars) and a heatmap.

Plain strings, no dependencies, no scripts: the report opens offline in any browser. Each chart
is a ``<figure class="chart" data-chart=ID data-series=N>`` whose series are the elements with
class ``series`` (a path per line, a rect per heatmap cell), so a test can count what was drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

#: Colour-blind-safe palette (Okabe-Ito), cycled.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH, HEIGHT = 640, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 44
LEGEND_COLUMNS = 2


@dataclass
class Series:
    """One line: (x, y) points, optionally a (low, high) error bar per point."""

    label: str
    points: list[tuple[float, float]]
    errors: list[tuple[float, float]] | None = None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}" if abs(value) >= 0.01 else f"{value:.2g}"


def figure(chart_id: str, title: str, body: str, series: int, note: str = "") -> str:
    """Wrap an SVG in the figure the report and its test look for."""
    caption = f"<figcaption>{escape(title)}</figcaption>"
    extra = f'<p class="note">{escape(note)}</p>' if note else ""
    return (
        f'<figure class="chart" data-chart="{escape(chart_id)}" data-series="{series}">'
        f"{caption}{body}{extra}</figure>"
    )


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    step: bool = False,
    x_format: Callable[[float], str] = _fmt,
    x_ticks: Sequence[float] | None = None,
    y_min: float | None = None,
    note: str = "",
) -> str:
    """A line chart with axes, ticks, a legend and optional error bars."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [v for s in series for e in s.errors or [] for v in e]
    ys = [y for y in ys if math.isfinite(y)]
    if not xs or not ys:
        return ""
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    ytick = nice_ticks(min(ys) if y_min is None else y_min, max(ys))
    y0, y1 = ytick[0], ytick[-1]
    if y1 == y0:
        y1 = y0 + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 18 * ((len(series) + 1) // LEGEND_COLUMNS)}" role="img">']
    parts.append(f'<rect class="frame" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>')
    for t in ytick:
        y = py(t)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in x_ticks if x_ticks is not None else nice_ticks(x0, x1, 6):
        if not x0 <= t <= x1:
            continue
        x = px(t)
        parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{escape(x_format(t))}</text>"
        )
    parts.append(
        f'<text class="axis" x="{LEFT + plot_w / 2}" y="{TOP + plot_h + 34}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    parts.append(
        f'<text class="axis" transform="translate(14,{TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    for n, s in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        pts = [(px(x), py(y)) for x, y in s.points if math.isfinite(y)]
        if not pts:
            continue
        d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
        for bx, by in pts[1:]:
            d += f"H{bx:.1f}V{by:.1f}" if step else f"L{bx:.1f},{by:.1f}"
        parts.append(
            f'<path class="series" data-label="{escape(s.label)}" d="{d}" fill="none" stroke="{colour}" '
            f'stroke-width="2"><title>{escape(s.label)}</title></path>'
        )
        if not step:
            for x, y in pts:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        for (x, _), (low, high) in zip(s.points, s.errors or [], strict=False):
            if math.isfinite(low) and math.isfinite(high):
                parts.append(
                    f'<line class="error" x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{py(low):.1f}" '
                    f'y2="{py(high):.1f}" stroke="{colour}"/>'
                )
    for n, s in enumerate(series):  # legend below the plot
        lx = LEFT + (n % LEGEND_COLUMNS) * (plot_w / LEGEND_COLUMNS)
        ly = HEIGHT + 4 + 18 * (n // LEGEND_COLUMNS)
        colour = PALETTE[n % len(PALETTE)]
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="12" height="4" fill="{colour}"/>')
        parts.append(f'<text class="legend" x="{lx + 16:.1f}" y="{ly}">{escape(s.label)}</text>')
    parts.append("</svg>")
    return figure(chart_id, title, "".join(parts), len(series), note)


def heatmap(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    cells: dict[tuple[int, int], tuple[float, str]],
    note: str = "",
) -> str:
    """A square matrix: cell (row, column) coloured by log2 of its value (1 = white), labelled."""
    n = len(labels)
    if n == 0 or not cells:
        return ""
    cell, left, top = 110, 170, 36
    row_h = cell // 2
    width, height = left + cell * n + 8, top + row_h * n + 8
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img">']
    for j, name in enumerate(labels):
        # Two lines (provider, model): the full id is wider than a cell.
        head, sep, tail = name.partition(":")
        x = left + cell * j + cell / 2
        lines = (
            f'<tspan x="{x}" dy="0">{escape(head + sep)}</tspan><tspan x="{x}" dy="13">{escape(tail)}</tspan>'
        )
        parts.append(f'<text class="tick" x="{x}" y="{top - 14}" text-anchor="middle">{lines}</text>')
    for i, name in enumerate(labels):
        y = top + row_h * i
        parts.append(
            f'<text class="tick" x="{left - 8}" y="{y + row_h / 2 + 4}" text-anchor="end">{escape(name)}</text>'
        )
        for j in range(n):
            x = left + cell * j
            if (i, j) not in cells:
                parts.append(f'<rect class="empty" x="{x}" y="{y}" width="{cell - 2}" height="{row_h - 2}"/>')
                continue
            value, text = cells[(i, j)]
            parts.append(
                f'<rect class="series" x="{x}" y="{y}" width="{cell - 2}" height="{row_h - 2}" '
                f'fill="{_diverging(value)}"><title>{escape(text)}</title></rect>'
            )
            parts.append(
                f'<text class="cell" x="{x + cell / 2 - 1}" y="{y + row_h / 2 + 4}" text-anchor="middle">'
                f"{escape(text)}</text>"
            )
    parts.append("</svg>")
    return figure(chart_id, title, "".join(parts), len(cells), note)


def _diverging(ratio: float) -> str:
    """Blue below 1, red above, white at 1; saturates at x4 / x0.25."""
    if not (math.isfinite(ratio) and ratio > 0):
        return "#dddddd"
    t = max(-1.0, min(1.0, math.log2(ratio) / 2))
    r, g, b = (213, 94, 0) if t > 0 else (0, 114, 178)
    a = abs(t)
    mix = [round(255 + (c - 255) * a) for c in (r, g, b)]
    return "#{:02x}{:02x}{:02x}".format(*mix)


__all__ = ["PALETTE", "Series", "figure", "heatmap", "line_chart", "nice_ticks"]
