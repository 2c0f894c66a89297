"""`otelbench replay --otlp-endpoint` and an instrumented app through the real Collector.

Checks, against the real Jaeger and Prometheus: one GenAI span per replayed request; retry and
breaker events of a zero-code app; the Prometheus-side summary (`otelbench summarize`) agrees
with the in-process one within the exported buckets; every dashboard query returns plausible
data; a Collector killed mid-replay costs telemetry, not results; two replay processes add up.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from otelbench.backends import Stack
from otelbench.dashboards import render
from otelbench.mock import MockServer
from otelbench.replay import parse_target
from otelbench.summary.stats import exact_quantile
from otelbench_instrumentation import semconv

from .conftest import SCRAPE_INTERVAL
from .helpers import get_json, poll, prom

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DASHBOARD = ROOT / "collector-config" / "grafana" / "dashboards" / "otelbench-genai.json"
REQUESTS = 30
WARMUP = 2
TARGETS = ("openai:mock-fast", "anthropic:mock-balanced", "bedrock:mock-steady", "ollama:mock-slow")


def _provider_key(target: str) -> str:
    """``provider:model`` as the GenAI spans and metrics name a target (Bedrock's is aws.bedrock)."""
    parsed = parse_target(f"{target}@mock", {})
    return f"{parsed.provider}:{parsed.model}"


def _count(stack: Stack, job: str) -> float:
    result = prom(stack, f'sum(gen_ai_client_operation_duration_seconds_count{{job="{job}"}})')
    return float(result[0]["value"][1]) if result else 0.0


def _collector_text(stack: Stack) -> str:
    try:
        with urllib.request.urlopen(stack.collector_metrics_url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("OTEL_")}
    # Export often, so the test does not wait for the 5 s defaults.
    return {**env, "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BSP_SCHEDULE_DELAY": "200", **extra}


@dataclass
class Replay:
    """One finished `otelbench replay` subprocess and what it wrote."""

    job: str
    proc: subprocess.CompletedProcess[str]
    results: dict[str, dict[str, Any]]
    requests: list[dict[str, Any]]


def _replay_argv(stack: Stack, out: Path, *args: str) -> list[str]:
    return [
        str(BIN / "otelbench"),
        "replay",
        "--otlp-endpoint",
        stack.otlp_http_endpoint,
        "--output-dir",
        str(out),
        "--warmup",
        str(WARMUP),
        *args,
    ]


def _read(job: str, proc: subprocess.CompletedProcess[str], out: Path) -> Replay:
    assert proc.returncode == 0, proc.stderr[-3000:]
    (raw,) = sorted((out / "raw").glob("benchmarks-*.json"))
    results = {r["target_id"].split("/", 1)[1]: r for r in json.loads(raw.read_text())["results"]}
    (log,) = sorted((out / "raw").glob("requests-*.jsonl"))
    requests = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return Replay(job, proc, results, requests)


def _run_replay(stack: Stack, out: Path, job: str, *args: str) -> Replay:
    proc = subprocess.run(
        _replay_argv(stack, out, *args),
        cwd=out.parent,
        env=_env(OTEL_SERVICE_NAME=job),
        capture_output=True,
        text=True,
        timeout=180,
    )
    return _read(job, proc, out)


@pytest.fixture(scope="module")
def replay(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Replay:
    """The default four-provider replay, exported to the stack; waits until Prometheus has it."""
    job = f"e2e-replay-{uuid.uuid4().hex[:8]}"
    out = tmp_path_factory.mktemp("replay") / "output"
    done = _run_replay(stack, out, job, "--requests", str(REQUESTS))
    expected = REQUESTS * len(TARGETS)
    assert poll(lambda: _count(stack, job), lambda n: n >= expected) == expected, stack.log("otelcol")[-2000:]
    return done


@pytest.fixture(scope="module")
def app(stack: Stack, mock_server: MockServer) -> str:
    """examples/resilient_app.py under `opentelemetry-instrument`, exporting to the stack."""
    job = f"e2e-app-{uuid.uuid4().hex[:8]}"
    env = _env(
        OTEL_SERVICE_NAME=job,
        OTEL_TRACES_EXPORTER="otlp_proto_http",
        OTEL_METRICS_EXPORTER="otlp_proto_http",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=stack.otlp_http_endpoint,
        OPENAI_BASE_URL=mock_server.openai_base_url,
        OPENAI_API_KEY="sk-e2e-app-SECRET",
        # Two rounds, a scrape interval apart: rate() sees every series grow.
        RESILIENT_APP_ROUNDS="2",
        RESILIENT_APP_ROUND_PAUSE="2",
    )
    proc = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(ROOT / "examples" / "resilient_app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Each round opens the primary breaker, and the reset timeout lets it half-open and close.
    transitions = f'sum(otelbench_circuit_breaker_transitions_total{{job="{job}"}})'
    found = poll(lambda: prom(stack, transitions), lambda r: bool(r) and float(r[0]["value"][1]) >= 6)
    assert found and float(found[0]["value"][1]) == 6, proc.stdout
    return job


# --- traces ------------------------------------------------------------------------------------
def _traces(stack: Stack, service: str, minimum: int) -> list[dict[str, Any]]:
    url = f"{stack.jaeger_url}/api/traces?service={service}&limit=1000"
    return poll(lambda: get_json(url)["data"], lambda data: len(data) >= minimum)  # type: ignore[no-any-return]


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def _events(span: dict[str, Any]) -> list[dict[str, Any]]:
    return [{f["key"]: f["value"] for f in log["fields"]} for log in span["logs"]]


def test_jaeger_has_one_genai_span_per_replayed_request(stack: Stack, replay: Replay) -> None:
    total = (REQUESTS + WARMUP) * len(TARGETS)
    traces = _traces(stack, replay.job, total)
    assert len(traces) == total
    per_target: dict[str, int] = {}
    for trace in traces:
        spans = trace["spans"]
        genai = [s for s in spans if semconv.GEN_AI_OPERATION_NAME in _tags(s)]
        (root,) = [s for s in spans if s["operationName"] == "otelbench.replay.request"]
        assert len(genai) == 1 and len(spans) == 2, [s["operationName"] for s in spans]
        (span,) = genai
        assert span["references"][0]["spanID"] == root["spanID"]
        tags = _tags(span)
        key = f"{tags[semconv.GEN_AI_PROVIDER_NAME]}:{tags[semconv.GEN_AI_REQUEST_MODEL]}"
        per_target[key] = per_target.get(key, 0) + 1
        assert tags["span.kind"] == "client"
        assert tags[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
        assert tags[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
        assert isinstance(_tags(root)["otelbench.replay.warmup"], bool)
    assert per_target == dict.fromkeys(map(_provider_key, TARGETS), REQUESTS + WARMUP)
    warm = sum(1 for t in traces for s in t["spans"] if _tags(s).get("otelbench.replay.warmup") is True)
    assert warm == WARMUP * len(TARGETS)


def test_jaeger_shows_retries_and_breaker_transitions_of_an_app(stack: Stack, app: str) -> None:
    traces = _traces(stack, app, 9)
    events = [e for t in traces for s in t["spans"] for e in _events(s)]
    names = [e.get("event") for e in events]
    assert semconv.EVENT_RETRY_ATTEMPT in names
    transitions = [
        (e[semconv.BREAKER_FROM_STATE], e[semconv.BREAKER_TO_STATE])
        for e in events
        if e.get("event") == semconv.EVENT_BREAKER_STATE_CHANGE
    ]
    assert ("closed", "open") in transitions and ("half-open", "closed") in transitions
    assert semconv.EVENT_BREAKER_REJECTED in names
    failed = [
        e for e in events if e.get("event") == semconv.EVENT_RETRY_ATTEMPT and e.get(semconv.ERROR_TYPE)
    ]
    assert failed and all(e[semconv.ERROR_TYPE] for e in failed)
    assert "sk-e2e-app-SECRET" not in json.dumps(traces)


# --- metrics -----------------------------------------------------------------------------------
def _summarize(stack: Stack, *args: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(BIN / "otelbench"), "summarize", "--prometheus", stack.prometheus_url, "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _same_bucket(exact: float, estimate: dict[str, float]) -> bool:
    """``exact`` lies in the bucket Prometheus's estimate came from (1 % slack at a boundary: the
    two sides rank a sample that sits on a bucket edge slightly differently)."""
    low, high = estimate["low"], estimate["high"] if estimate["high"] is not None else math.inf
    return low * 0.99 <= exact <= high * 1.01


LATENCY_NAMES = {
    "ttft": "ttft",
    "ttfa": "ttfa",
    "duration": "duration",
    "itl": "time_per_chunk",
    "tpot": "time_per_token",
}


def test_prometheus_summary_matches_the_in_process_one(stack: Stack, replay: Replay) -> None:
    summary = {s["target"]: s for s in _summarize(stack, "--job", replay.job)}
    assert set(summary) == set(map(_provider_key, TARGETS))
    for target, result in replay.results.items():
        prom = summary[_provider_key(target)]
        assert prom["requests"] == result["metrics"]["requests"] == REQUESTS  # warm-up excluded on both sides
        assert prom["instances"] == 1 and not prom["errors"]
        assert prom["output_tokens"] == result["metrics"]["output_tokens"]
        for mine, theirs in LATENCY_NAMES.items():
            for q in ("p50", "p95", "p99"):
                exact = result["metrics"][f"{mine}_{q}_s"]
                estimate = prom["latencies"][theirs][q]
                assert _same_bucket(exact, estimate), (target, mine, q, exact, estimate)


def test_dashboard_json_is_generated_from_the_conventions() -> None:
    assert DASHBOARD.read_text() == render(), "regenerate: python -m otelbench.dashboards > " + str(DASHBOARD)


def _substitute(expr: str, jobs: str) -> str:
    # What Grafana would send with "All" selected, over a window covering the whole test run.
    return (
        expr.replace("$job", jobs)
        .replace("$provider", ".*")
        .replace("$model", ".*")
        .replace("$__rate_interval", "10m")
    )


def _plausible(unit: str, kind: str, values: list[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    if not finite or min(finite) < 0:
        return False
    if kind == "heatmap":  # bucket counts; the unit is the y axis's
        return max(finite) > 0
    if unit == "percentunit":
        return max(finite) <= 1 and max(finite) > 0
    if unit == "s":
        return 0 < max(finite) < 60
    if kind == "state-timeline":
        return set(finite) <= set(semconv.BREAKER_STATE_VALUES.values())
    return max(finite) > 0


def test_every_dashboard_query_returns_plausible_data(stack: Stack, replay: Replay, app: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    jobs = f"{replay.job}|{app}"
    for variable in dashboard["templating"]["list"]:
        found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert found, variable
        series = prom(stack, _substitute(found[1], jobs))
        assert {s["metric"].get(found[2]) for s in series} - {None}, variable["name"]
    checked = 0
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        for target in panel["targets"]:
            expr = _substitute(target["expr"], jobs)
            assert "$" not in expr, expr
            result = prom(stack, expr)
            values = [float(r["value"][1]) for r in result]
            assert _plausible(panel["fieldConfig"]["defaults"]["unit"], panel["type"], values), (
                panel["title"],
                expr,
                values,
            )
            checked += 1
    assert checked >= 20


# --- failure and scale-out ---------------------------------------------------------------------
def test_collector_killed_mid_replay_costs_telemetry_not_results(tmp_path: Path) -> None:
    job = f"e2e-kill-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "output"
    n = 100  # 10 s at 10 req/s: the kill and the restart both fall inside the measured load
    with Stack(scrape_interval=SCRAPE_INTERVAL) as stack:
        proc = subprocess.Popen(
            _replay_argv(
                stack, out, "--target", "openai:mock-fast@mock", "--rate", "10", "--requests", str(n)
            ),
            cwd=tmp_path,
            env=_env(OTEL_SERVICE_NAME=job, OTEL_EXPORTER_OTLP_TIMEOUT="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The measured load is being exported: read the Collector's exporter directly (no scrape delay).
        poll(lambda: _collector_text(stack), lambda text: f'job="{job}"' in text, timeout=60)
        assert proc.poll() is None, "the replay ended before the Collector could be killed"
        stack.kill("otelcol")
        time.sleep(3)
        restarted = time.time()
        stack.restart_collector()
        stdout, stderr = proc.communicate(timeout=180)
        done = _read(job, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), out)
        (result,) = done.results.values()
        assert result["metrics"]["requests"] == n and result["metrics"]["partial"] == 0
        assert sum(1 for r in done.requests if not r["warmup"] and r["status"] == "ok") == n
        export = result["details"]["otlp_export"]
        assert 0 < export["spans_failed"] < export["spans"], export
        assert f"{export['spans_failed']} of {export['spans']} spans" in stdout
        # Metrics are cumulative: the first export to the new Collector restores the full count.
        assert poll(lambda: _count(stack, job), lambda c: c >= n) == n
        traces = _traces(stack, job, 1)
        starts = [s["startTime"] / 1e6 for t in traces for s in t["spans"]]
        assert max(starts) > restarted, "no span exported after the restart"


def test_two_replay_processes_add_up_in_prometheus(stack: Stack, tmp_path: Path) -> None:
    job = f"e2e-union-{uuid.uuid4().hex[:8]}"
    n = 30
    procs = []
    for i in (1, 2):
        out = tmp_path / f"run{i}" / "output"
        out.parent.mkdir()
        argv = _replay_argv(
            stack, out, "--target", "openai:mock-fast@mock", "--requests", str(n), "--seed", str(i)
        )
        procs.append(
            (
                out,
                subprocess.Popen(
                    argv,
                    cwd=out.parent,
                    env=_env(OTEL_SERVICE_NAME=job),
                    text=True,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                ),
            )
        )
    runs = []
    for out, proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        runs.append(_read(job, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), out))
    assert poll(lambda: _count(stack, job), lambda c: c >= 2 * n) == 2 * n
    (prom,) = _summarize(stack, "--job", job)
    assert prom["requests"] == 2 * n and prom["instances"] == 2
    measured = [r for run in runs for r in run.requests if not r["warmup"]]
    for mine, theirs, field in (("ttft", "ttft", "ttft_s"), ("duration", "duration", "duration_s")):
        union = [r[field] for r in measured if r[field] is not None]
        assert len(union) == 2 * n
        for q in (0.5, 0.95, 0.99):
            exact = exact_quantile(union, q)
            estimate = prom["latencies"][theirs][f"p{q * 100:g}"]
            assert _same_bucket(exact, estimate), (mine, q, exact, estimate)
    # One instance alone is that process's own run.
    first = runs[0].results["openai:mock-fast"]["details"]["service"]["service.instance.id"]
    (alone,) = _summarize(stack, "--job", job, "--instance", first)
    assert alone["requests"] == n
