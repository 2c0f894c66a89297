"""`opentelemetry-instrument` instruments an unmodified Anthropic app, beside the SDK's own tracing.

`opentelemetry-instrument` installs a global tracer provider, so the SDK's own tracing is live
here exactly as in a user's deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv

from ...conftest import console_spans

ROOT = Path(__file__).resolve().parents[3]
SECRET = "sk-ant-zero-code-SECRET"


# Each run pays seconds for importing SDKs, so the scenarios run side by side, once, and the
# instrumentors of SDKs the app does not use stay off.
OTHERS = "openai,ollama"
SCENARIOS: dict[str, dict[str, str]] = {
    "sdk-tracing-on": {},
    "ours-disabled": {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": f"{OTHERS},anthropic"},
}


@pytest.fixture(scope="module")
def runs(mock_server: MockServer) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """Each scenario's GenAI spans and whole output, from examples/anthropic_chat.py run unmodified."""
    bin_dir = Path(sys.executable).parent
    base_env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": mock_server.anthropic_base_url,
        "ANTHROPIC_API_KEY": SECRET,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code-test",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": OTHERS,
    }
    command = [
        str(bin_dir / "opentelemetry-instrument"),
        sys.executable,
        str(ROOT / "examples" / "anthropic_chat.py"),
    ]
    procs = {
        name: subprocess.Popen(
            command, env={**base_env, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, env in SCENARIOS.items()
    }
    results = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr[-3000:]
        genai = [s for s in console_spans(stdout) if semconv.GEN_AI_OPERATION_NAME in s["attributes"]]
        results[name] = (genai, stdout + stderr)
    return results


def test_unmodified_app_gets_one_genai_span_per_call(
    runs: dict[str, tuple[list[dict[str, Any]], str]],
) -> None:
    # SDK tracing is on here (its default); with it off, see test_anthropic_coexistence.py.
    genai, output = runs["sdk-tracing-on"]
    assert len(genai) == 2, output[-3000:]
    assert all(s["name"] == "chat claude-haiku-4-5" and s["kind"] == "SpanKind.CLIENT" for s in genai)
    streamed = [s for s in genai if s["attributes"].get(semconv.GEN_AI_REQUEST_STREAM)]
    assert len(streamed) == 1
    assert streamed[0]["attributes"][semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert streamed[0]["attributes"][semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert SECRET not in output


def test_disabling_ours_leaves_the_sdks_own_spans(runs: dict[str, tuple[list[dict[str, Any]], str]]) -> None:
    genai, output = runs["ours-disabled"]
    assert [s["name"] for s in genai] == ["anthropic.messages.create"] * 2, output[-3000:]
