"""``otelbench summarize``: the replay summary, read back from Prometheus.

Reads the GenAI histograms that replays exported through a Collector (``otelbench replay
--otlp-endpoint``) and prints per provider/model counts, errors and p50/p95/p99. See
``docs/pipeline.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from otelbench.replay.telemetry import DEFAULT_SERVICE_NAME
from otelbench.summary import QUANTILES
from otelbench.summary.prometheus import Prometheus, PromTargetStats, Quantile, summarize_prometheus

_SHOWN = (("ttft", "TTFT"), ("duration", "duration"), ("time_per_chunk", "chunk gap"))
#: Shown when it differs from TTFT somewhere (a thinking model); else it repeats TTFT's values.
_ANSWER = ("ttfa", "first answer")


def register(sub: Any) -> None:
    """Add the ``summarize`` sub-command."""
    p = sub.add_parser(
        "summarize",
        help="summarise replays from the metrics Prometheus scraped from the Collector",
        description="Per provider/model counts, errors and p50/p95/p99 from the GenAI histograms in "
        "Prometheus (summed over every replay process of the job). See docs/pipeline.md.",
    )
    p.add_argument(
        "--prometheus", required=True, metavar="URL", help="Prometheus base URL, e.g. http://127.0.0.1:9090"
    )
    p.add_argument(
        "--job",
        default=DEFAULT_SERVICE_NAME,
        metavar="NAME",
        help=f"job label = the replays' service.name (default {DEFAULT_SERVICE_NAME}; '' for every job)",
    )
    p.add_argument("--instance", metavar="ID", help="only this replay process (its service.instance.id)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Query Prometheus and print the summary; exit 1 when it holds no GenAI data for the job."""
    prom = Prometheus(args.prometheus)
    stats = summarize_prometheus(prom, job=args.job or None, instance=args.instance)
    if args.json:
        json.dump([s.to_json() for s in stats], sys.stdout, indent=2)
        print()
    else:
        print(render(stats))
    if not stats:
        where = f"job={args.job!r}" + (f" instance={args.instance!r}" if args.instance else "")
        print(
            f"otelbench: no GenAI operation metrics in Prometheus at {prom.url} for {where}", file=sys.stderr
        )
        return 1
    return 0


def render(stats: list[PromTargetStats]) -> str:
    """A plain-text table, one row per provider/model."""
    shown = list(_SHOWN)
    if any(_differs(s.means.get("ttfa"), s.means.get("ttft")) for s in stats):
        shown.insert(1, _ANSWER)
    header = ["target", "requests", "errors", "instances"]
    for _, label in shown:
        header += [f"{label} p{q * 100:g} ms" for q in QUANTILES]
    rows = [header]
    for s in stats:
        row = [s.key, str(s.requests), str(sum(s.errors.values())), str(s.instances)]
        for name, _ in shown:
            row += [_cell(s.latencies.get(name, {}).get(q)) for q in QUANTILES]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("Quantiles: histogram_quantile over the exported explicit buckets (linear within a bucket).")
    return "\n".join(lines)


def _differs(a: float | None, b: float | None) -> bool:
    """Two means that are not the same number (a missing one counts as NaN, NaN as NaN)."""
    x, y = (math.nan if v is None else v for v in (a, b))
    return not (x == y or (math.isnan(x) and math.isnan(y)))


def _cell(est: Quantile | None) -> str:
    if est is None or math.isnan(est.value):
        return "-"
    return f"{est.value * 1e3:.1f}"
