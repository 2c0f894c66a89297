"""`opentelemetry-instrument` finds our entry point and instruments an unmodified app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv

from ..conftest import console_spans

ROOT = Path(__file__).resolve().parents[2]


def _run_example(
    mock_server: MockServer, example: str = "openai_chat.py", **env: str
) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    full_env = {
        **os.environ,
        "OPENAI_BASE_URL": mock_server.openai_base_url,
        "OPENAI_API_KEY": "sk-zero-code-SECRET",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code-test",
        **env,
    }
    return subprocess.run(
        [
            str(bin_dir / "opentelemetry-instrument"),
            sys.executable,
            str(ROOT / "examples" / example),
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_unmodified_app_is_instrumented(mock_server: MockServer) -> None:
    proc = _run_example(mock_server)
    genai = [
        s for s in console_spans(proc.stdout) if s["attributes"].get(semconv.GEN_AI_OPERATION_NAME) == "chat"
    ]
    assert len(genai) == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(s["name"] == "chat gpt-4o-mini" and s["kind"] == "SpanKind.CLIENT" for s in genai)
    streamed = [s for s in genai if s["attributes"].get(semconv.GEN_AI_REQUEST_STREAM)]
    assert len(streamed) == 1
    assert streamed[0]["attributes"][semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert "sk-zero-code-SECRET" not in proc.stdout + proc.stderr


def test_disabled_instrumentations_env_is_honoured(mock_server: MockServer) -> None:
    proc = _run_example(mock_server, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai")
    assert [s for s in console_spans(proc.stdout) if semconv.GEN_AI_OPERATION_NAME in s["attributes"]] == []


def test_unmodified_azure_app_is_instrumented(mock_server: MockServer) -> None:
    proc = _run_example(
        mock_server,
        "azure_openai_chat.py",
        AZURE_OPENAI_ENDPOINT=mock_server.azure_endpoint,
        AZURE_OPENAI_API_KEY="az-zero-code-SECRET",
        OPENAI_API_VERSION="2024-10-21",
        AZURE_OPENAI_DEPLOYMENT="prod-gpt-4o-mini",
    )
    genai = [
        s for s in console_spans(proc.stdout) if s["attributes"].get(semconv.GEN_AI_OPERATION_NAME) == "chat"
    ]
    assert len(genai) == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(s["name"] == "chat prod-gpt-4o-mini" for s in genai)
    assert {s["attributes"][semconv.GEN_AI_PROVIDER_NAME] for s in genai} == {
        semconv.PROVIDER_AZURE_AI_OPENAI
    }
    (streamed,) = [s for s in genai if s["attributes"].get(semconv.GEN_AI_REQUEST_STREAM)]
    a = streamed["attributes"]
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == "prod-gpt-4o-mini"
    assert str(a[semconv.GEN_AI_RESPONSE_ID]).startswith("chatcmpl-")
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert "az-zero-code-SECRET" not in proc.stdout + proc.stderr
