"""`opentelemetry-instrument` runs examples/resilient_app.py unmodified, fully traced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv

from ...conftest import console_spans

ROOT = Path(__file__).resolve().parents[3]


def _run_example(server: MockServer, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    full_env = {
        **os.environ,
        "OPENAI_BASE_URL": server.openai_base_url,
        "OPENAI_API_KEY": "sk-zero-code-SECRET",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "resilient-app",
        "RESILIENT_APP_RESET_TIMEOUT": "0.3",
        **env,
    }
    return subprocess.run(
        [
            str(bin_dir / "opentelemetry-instrument"),
            sys.executable,
            str(ROOT / "examples" / "resilient_app.py"),
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _by_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["context"]["span_id"]: s for s in spans}


def _ancestors(span: dict[str, Any], index: dict[str, dict[str, Any]]) -> list[str]:
    names = []
    parent = span.get("parent_id")
    while parent in index:
        span = index[parent]
        names.append(span["name"])
        parent = span.get("parent_id")
    return names


def test_example_app_is_traced_end_to_end(fast_mock: MockServer) -> None:
    proc = _run_example(fast_mock)
    assert "cache hits=2 misses=7" in proc.stdout
    assert "'gpt-4o-mini': 'closed'" in proc.stdout  # the primary breaker closed again
    spans = console_spans(proc.stdout)
    index = _by_id(spans)
    names = [s["name"] for s in spans]
    assert names.count("cache prompt") == 9
    assert names.count("router chat") == 7
    provider = [s for s in spans if s["attributes"].get(semconv.GEN_AI_OPERATION_NAME) == "chat"]
    assert {s["name"] for s in provider} == {"chat gpt-4o-mini", "chat gpt-4.1-mini"}
    for span in provider:
        chain = _ancestors(span, index)
        assert chain[0] == "retry ChatService._ask_with_retries", chain
        assert chain[1] in ("route primary", "route fallback")
        assert chain[2:] == ["router chat", "cache prompt"]

    events = sorted(
        (e for s in spans for e in s["events"] if e["name"] == semconv.EVENT_BREAKER_STATE_CHANGE),
        key=lambda e: e["timestamp"],
    )
    transitions = [
        (e["attributes"][semconv.BREAKER_FROM_STATE], e["attributes"][semconv.BREAKER_TO_STATE])
        for e in events
    ]
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    rejected = [e for s in spans for e in s["events"] if e["name"] == semconv.EVENT_BREAKER_REJECTED]
    assert len(rejected) == 2
    attempts = [e for s in spans for e in s["events"] if e["name"] == semconv.EVENT_RETRY_ATTEMPT]
    slept = [
        e["attributes"][semconv.RETRY_ATTEMPT_SLEEP]
        for e in attempts
        if semconv.RETRY_ATTEMPT_SLEEP in e["attributes"]
    ]
    assert len(slept) == 3 and all(0.0375 <= s <= 0.25 for s in slept)  # 50, 100, 200 ms +-25 %
    assert "sk-zero-code-SECRET" not in proc.stdout + proc.stderr
