"""Service-level objectives: ``--slo ttft_p95=500ms`` and the goodput they define.

Grammar: ``METRIC_pQ=VALUE UNIT`` with METRIC one of ``ttft``, ``ttfa`` (time to the first answer
chunk of a thinking model), ``duration`` (alias ``e2e``), ``tpot`` (time per output token) or
``itl`` (inter-chunk gap, alias ``gap``); Q a percentile
(``p50``, ``p95``, ``p99``, ``p99.9``); UNIT ``us``, ``ms`` or ``s``. Examples:
``ttft_p95=500ms``, ``duration_p99=4s``, ``tpot_p50=30ms``.

An SLO is *met* when the metric's Q-th percentile (from the exported histogram) is at most
VALUE. *Goodput* is the number of successful requests per second whose own values all stay
within every SLO's VALUE (for ``itl`` a request's mean gap), from the raw per-request log.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from otelbench.errors import UsageError

METRICS = {
    "ttft": "ttft",
    "ttfa": "ttfa",
    "duration": "duration",
    "e2e": "duration",
    "tpot": "tpot",
    "itl": "itl",
    "gap": "itl",
}
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_SYNTAX = re.compile(
    r"^(?P<metric>[a-z0-9]+)_p(?P<q>\d+(?:\.\d+)?)=(?P<value>[0-9.]+(?:e[+-]?\d+)?)(?P<unit>us|ms|s)$"
)


@dataclass(frozen=True)
class SLO:
    """One objective: percentile ``quantile`` of ``metric`` at most ``threshold`` seconds."""

    metric: str
    quantile: float
    threshold: float
    text: str

    def __str__(self) -> str:
        return self.text


def parse_slo(text: str) -> SLO:
    """Parse one ``--slo`` value; a UsageError names the bad value."""
    spec = text.strip().lower().replace(" ", "")
    found = _SYNTAX.match(spec)
    hint = "expected METRIC_pQ=VALUE with METRIC ttft|ttfa|duration|tpot|itl and unit us|ms|s, e.g. ttft_p95=500ms"
    if not found:
        raise UsageError(f"invalid --slo {text!r}: {hint}")
    metric = METRICS.get(found["metric"])
    if metric is None:
        raise UsageError(f"invalid --slo {text!r}: unknown metric {found['metric']!r} ({hint})")
    quantile = float(found["q"]) / 100
    if not 0 < quantile < 1:
        raise UsageError(f"invalid --slo {text!r}: the percentile must be between 0 and 100")
    try:
        value = float(found["value"])
    except ValueError:
        raise UsageError(f"invalid --slo {text!r}: {found['value']!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"invalid --slo {text!r}: the value must be a positive number")
    return SLO(metric, quantile, value * _UNITS[found["unit"]], spec)
