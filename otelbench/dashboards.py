"""The Grafana dashboard in ``collector-config/grafana/``, generated from the conventions module.

Every metric and label name in the dashboard's PromQL is derived from
:mod:`otelbench_instrumentation.semconv` through the Prometheus exporter's naming rules
(:mod:`otelbench.summary.prometheus`), so a renamed attribute cannot leave a panel silently
empty. The committed JSON is this module's output; a test checks they are identical and runs
every expression against a real Prometheus.

    python -m otelbench.dashboards > collector-config/grafana/dashboards/otelbench-genai.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from otelbench.summary import METRIC_TIME_PER_OUTPUT_TOKEN
from otelbench.summary.prometheus import (
    ERROR_TYPE,
    MODEL,
    PROVIDER,
    TOKEN_TYPE,
    prometheus_label,
    prometheus_name,
)
from otelbench_instrumentation import semconv

DATASOURCE = {"type": "prometheus", "uid": "otelbench-prometheus"}
UID = "otelbench-genai"

_S = semconv.UNIT_SECONDS
TTFT = prometheus_name(semconv.METRIC_TIME_TO_FIRST_CHUNK, _S)
TTFA = prometheus_name(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK, _S)
DURATION = prometheus_name(semconv.METRIC_OPERATION_DURATION, _S)
CHUNK = prometheus_name(semconv.METRIC_TIME_PER_OUTPUT_CHUNK, _S)
TOKEN = prometheus_name(METRIC_TIME_PER_OUTPUT_TOKEN, _S)
USAGE = prometheus_name(semconv.METRIC_TOKEN_USAGE, semconv.UNIT_TOKENS)
RETRY_ATTEMPTS = prometheus_name(semconv.METRIC_RETRY_ATTEMPTS, semconv.UNIT_ATTEMPTS, counter=True)
RETRY_OPERATIONS = prometheus_name(semconv.METRIC_RETRY_OPERATIONS, semconv.UNIT_OPERATIONS, counter=True)
RETRY_SLEEP = prometheus_name(semconv.METRIC_RETRY_SLEEP, _S)
BREAKER_STATE = prometheus_name(semconv.METRIC_BREAKER_STATE, semconv.UNIT_STATE)
BREAKER_TRANSITIONS = prometheus_name(
    semconv.METRIC_BREAKER_TRANSITIONS, semconv.UNIT_TRANSITIONS, counter=True
)
BREAKER_REJECTED = prometheus_name(semconv.METRIC_BREAKER_REJECTED, semconv.UNIT_CALLS, counter=True)
CACHE_LOOKUPS = prometheus_name(semconv.METRIC_CACHE_LOOKUPS, semconv.UNIT_LOOKUPS, counter=True)
CACHE_DURATION = prometheus_name(semconv.METRIC_CACHE_LOOKUP_DURATION, _S)
ROUTER_REQUESTS = prometheus_name(semconv.METRIC_ROUTER_REQUESTS, semconv.UNIT_REQUESTS, counter=True)

RETRY_OUTCOME = prometheus_label(semconv.RETRY_ATTEMPT_OUTCOME)
BREAKER_NAME = prometheus_label(semconv.BREAKER_NAME)
BREAKER_TO = prometheus_label(semconv.BREAKER_TO_STATE)
CACHE_NAME = prometheus_label(semconv.CACHE_NAME)
CACHE_RESULT = prometheus_label(semconv.CACHE_RESULT)
ROUTER_NAME = prometheus_label(semconv.ROUTER_NAME)
ROUTER_FINAL = prometheus_label(semconv.ROUTER_FINAL_ROUTE)

#: Matchers of the GenAI panels (provider/model variables) and of the resilience panels (job only).
GENAI = f'job=~"$job", {PROVIDER}=~"$provider", {MODEL}=~"$model"'
APP = 'job=~"$job"'
BY_TARGET = f"{PROVIDER}, {MODEL}"
RATE = "$__rate_interval"


@dataclass
class Panel:
    """One panel: a title, a type, its queries (expr, legend) and a unit."""

    title: str
    targets: list[tuple[str, str]]
    unit: str
    kind: str = "timeseries"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _quantiles(metric: str, matchers: str, by: str = BY_TARGET) -> list[tuple[str, str]]:
    legend = "{{" + "}}:{{".join(p.strip() for p in by.split(",")) + "}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) (rate({metric}_bucket{{{matchers}}}[{RATE}])))",
            f"p{int(q * 100)} {legend}".strip(),
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _heatmap(metric: str) -> list[tuple[str, str]]:
    return [(f"sum by (le) (increase({metric}_bucket{{{GENAI}}}[{RATE}]))", "{{le}}")]


def _ratio(numerator: str, denominator: str) -> str:
    return f"({numerator}) / ({denominator})"


BREAKER_MAPPINGS = {
    "mappings": [
        {
            "type": "value",
            "options": {
                str(value): {"text": state, "index": value}
                for state, value in semconv.BREAKER_STATE_VALUES.items()
            },
        }
    ]
}

ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Latency",
        [
            Panel(
                "Time to first token",
                _quantiles(TTFT, GENAI),
                "s",
                description="From the request to the first output chunk (gen_ai.client.operation.time_to_first_chunk).",
            ),
            Panel("Time to first token: distribution", _heatmap(TTFT), "s", kind="heatmap"),
            Panel(
                "Time to first answer chunk",
                _quantiles(TTFA, GENAI),
                "s",
                description="From the request to the first chunk of the answer, after a thinking model's "
                "reasoning chunks; equal to time to first token without reasoning "
                "(otelbench.client.operation.time_to_first_answer_chunk).",
            ),
            Panel("Operation duration", _quantiles(DURATION, GENAI), "s"),
            Panel("Operation duration: distribution", _heatmap(DURATION), "s", kind="heatmap"),
            Panel(
                "Time per output chunk",
                _quantiles(CHUNK, GENAI)[:2],
                "s",
                description="Gap between consecutive streamed chunks after the first.",
            ),
            Panel(
                "Time per output token (otelbench replay)",
                _quantiles(TOKEN, GENAI)[:2],
                "s",
                description="(duration - TTFT) / (output tokens - 1) of each successful stream; "
                "recorded by otelbench replay only.",
            ),
        ],
    ),
    (
        "Throughput and tokens",
        [
            Panel(
                "Requests per second",
                [
                    (
                        f"sum by ({BY_TARGET}) (rate({DURATION}_count{{{GENAI}}}[{RATE}]))",
                        f"{{{{{PROVIDER}}}}}:{{{{{MODEL}}}}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "Output tokens per second",
                [
                    (
                        f'sum by ({BY_TARGET}) (rate({USAGE}_sum{{{GENAI}, {TOKEN_TYPE}="{semconv.TOKEN_TYPE_OUTPUT}"}}[{RATE}]))',
                        f"{{{{{PROVIDER}}}}}:{{{{{MODEL}}}}}",
                    )
                ],
                "short",
                description="Output tokens received per second, summed over concurrent requests.",
            ),
            Panel(
                "Tokens per request",
                [
                    (
                        _ratio(
                            f"sum by ({BY_TARGET}, {TOKEN_TYPE}) (rate({USAGE}_sum{{{GENAI}}}[{RATE}]))",
                            f"sum by ({BY_TARGET}, {TOKEN_TYPE}) (rate({USAGE}_count{{{GENAI}}}[{RATE}]))",
                        ),
                        f"{{{{{MODEL}}}}} {{{{{TOKEN_TYPE}}}}}",
                    )
                ],
                "short",
                description="Mean input and output tokens per request (cached and reasoning tokens are part of input/output).",
            ),
        ],
    ),
    (
        "Errors and resilience",
        [
            Panel(
                "Error ratio",
                [
                    (
                        _ratio(
                            f'sum by ({BY_TARGET}) (rate({DURATION}_count{{{GENAI}, {ERROR_TYPE}!=""}}[{RATE}]))',
                            f"sum by ({BY_TARGET}) (rate({DURATION}_count{{{GENAI}}}[{RATE}]))",
                        ),
                        f"{{{{{PROVIDER}}}}}:{{{{{MODEL}}}}}",
                    )
                ],
                "percentunit",
            ),
            Panel(
                "Errors per second by type",
                [
                    (
                        f'sum by ({ERROR_TYPE}) (rate({DURATION}_count{{{GENAI}, {ERROR_TYPE}!=""}}[{RATE}]))',
                        f"{{{{{ERROR_TYPE}}}}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "Retry attempts per second by outcome",
                [
                    (
                        f"sum by ({RETRY_OUTCOME}) (rate({RETRY_ATTEMPTS}{{{APP}}}[{RATE}]))",
                        f"{{{{{RETRY_OUTCOME}}}}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "Retried operations: attempts per operation",
                [
                    (
                        _ratio(
                            f"sum(rate({RETRY_ATTEMPTS}{{{APP}}}[{RATE}]))",
                            f"sum(rate({RETRY_OPERATIONS}{{{APP}}}[{RATE}]))",
                        ),
                        "attempts / operation",
                    )
                ],
                "short",
            ),
            Panel("Retry backoff sleep", _quantiles(RETRY_SLEEP, APP, by="")[:2], "s"),
            Panel(
                "Circuit breaker state",
                [(f"max by ({BREAKER_NAME}) ({BREAKER_STATE}{{{APP}}})", f"{{{{{BREAKER_NAME}}}}}")],
                "none",
                kind="state-timeline",
                description="0 closed, 1 half-open, 2 open; the worst state of breakers sharing a name.",
                extra=BREAKER_MAPPINGS,
            ),
            Panel(
                "Circuit breaker transitions",
                [
                    (
                        f"sum by ({BREAKER_NAME}, {BREAKER_TO}) (increase({BREAKER_TRANSITIONS}{{{APP}}}[{RATE}]))",
                        f"{{{{{BREAKER_NAME}}}}} -> {{{{{BREAKER_TO}}}}}",
                    )
                ],
                "short",
            ),
            Panel(
                "Calls rejected by open breakers",
                [
                    (
                        f"sum by ({BREAKER_NAME}) (rate({BREAKER_REJECTED}{{{APP}}}[{RATE}]))",
                        f"{{{{{BREAKER_NAME}}}}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "Cache hit ratio",
                [
                    (
                        _ratio(
                            f'sum by ({CACHE_NAME}) (rate({CACHE_LOOKUPS}{{{APP}, {CACHE_RESULT}="{semconv.CACHE_RESULT_HIT}"}}[{RATE}]))',
                            f"sum by ({CACHE_NAME}) (rate({CACHE_LOOKUPS}{{{APP}}}[{RATE}]))",
                        ),
                        f"{{{{{CACHE_NAME}}}}}",
                    )
                ],
                "percentunit",
            ),
            Panel("Cache lookup time", _quantiles(CACHE_DURATION, APP, by=CACHE_NAME)[:2], "s"),
            Panel(
                "Routed requests by final route",
                [
                    (
                        f"sum by ({ROUTER_NAME}, {ROUTER_FINAL}) (rate({ROUTER_REQUESTS}{{{APP}}}[{RATE}]))",
                        f"{{{{{ROUTER_NAME}}}}} -> {{{{{ROUTER_FINAL}}}}}",
                    )
                ],
                "reqps",
            ),
        ],
    ),
]


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"var-{name}"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    field_config: dict[str, Any] = {"defaults": {"unit": panel.unit, **panel.extra}, "overrides": []}
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": field_config,
        "targets": [
            {
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "refId": chr(ord("A") + i),
                **({"format": "heatmap"} if panel.kind == "heatmap" else {}),
            }
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }
    if panel.kind == "heatmap":
        body["options"] = {"calculate": False, "yAxis": {"unit": panel.unit}, "cellGap": 1}
    return body


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for title, row in ROWS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        next_id += 1
        y += 1
        for i, panel in enumerate(row):
            panels.append(_panel(panel, next_id, 12 * (i % 2), y + 8 * (i // 2)))
            next_id += 1
        y += 8 * ((len(row) + 1) // 2)
    return {
        "uid": UID,
        "title": "otelbench: GenAI clients",
        "description": "GenAI client metrics (OpenTelemetry semantic conventions) and otelbench's retry, "
        "circuit-breaker, cache and router metrics, via the Collector's Prometheus exporter.",
        "tags": ["otelbench", "genai", "opentelemetry"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {
            "list": [
                _variable("job", "Service (job)", f"label_values({DURATION}_count, job)"),
                _variable(
                    "provider", "Provider", f'label_values({DURATION}_count{{job=~"$job"}}, {PROVIDER})'
                ),
                _variable(
                    "model",
                    "Model",
                    f'label_values({DURATION}_count{{job=~"$job", {PROVIDER}=~"$provider"}}, {MODEL})',
                ),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    """The dashboard JSON exactly as committed."""
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
