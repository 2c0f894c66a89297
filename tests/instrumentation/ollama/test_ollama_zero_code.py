"""Fresh interpreters: `opentelemetry-instrument` on an unmodified app, and the module-level
functions (``ollama.chat`` & co.), whose default client reads OLLAMA_HOST at import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv

from ...conftest import MOCK_OUTPUT_TOKENS, console_spans
from .conftest import mock_port

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def _run(argv: list[str], server: MockServer, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "OLLAMA_HOST": server.ollama_host,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "ollama-zero-code-test",
        **env,
    }
    return subprocess.run(
        argv, env=full_env, capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    )


# The app uses only Ollama; loading the other instrumentors would import their SDKs (seconds).
OTHERS = "openai,anthropic"


def _instrumented_example(server: MockServer, disabled: str = OTHERS) -> tuple[list[dict[str, Any]], str]:
    bin_dir = Path(sys.executable).parent
    proc = _run(
        [
            str(bin_dir / "opentelemetry-instrument"),
            sys.executable,
            str(ROOT / "examples" / "ollama_chat.py"),
        ],
        server,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
    )
    genai = [s for s in console_spans(proc.stdout) if semconv.GEN_AI_OPERATION_NAME in s["attributes"]]
    return genai, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_unmodified_app_is_instrumented(mock_server: MockServer) -> None:
    spans, output = _instrumented_example(mock_server)
    assert len(spans) == 2, output
    assert all(s["name"] == "chat llama3.2:1b" and s["kind"] == "SpanKind.CLIENT" for s in spans)
    module_level, streamed = (s["attributes"] for s in spans)
    # ollama.chat(...) went through the SDK's default client, built from OLLAMA_HOST.
    assert module_level[semconv.GEN_AI_PROVIDER_NAME] == "ollama"
    assert module_level[semconv.SERVER_PORT] == mock_port(mock_server)
    assert module_level[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert semconv.GEN_AI_REQUEST_STREAM not in module_level
    assert streamed[semconv.GEN_AI_REQUEST_STREAM] is True
    assert streamed[semconv.STREAM_CHUNK_COUNT] > 0
    assert streamed[semconv.OLLAMA_REQUEST_NUM_CTX] == 2048
    assert streamed[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert streamed[semconv.OLLAMA_RESPONSE_EVAL_RATE] > 0


def test_disabled_instrumentations_env_is_honoured(mock_server: MockServer) -> None:
    spans, output = _instrumented_example(mock_server, disabled=f"{OTHERS},ollama")
    assert spans == [], output


def test_module_level_functions_one_span_each_and_restored(mock_server: MockServer) -> None:
    proc = _run([sys.executable, str(HERE / "module_level_app.py")], mock_server)
    result = json.loads(proc.stdout)
    assert all(result["wrapped"].values()), result["wrapped"]
    # uninstrument() puts back the very same bound-method objects.
    assert all(result["restored"].values()), result["restored"]
    spans = result["spans"]
    assert [(s["name"], s["attributes"].get(semconv.GEN_AI_REQUEST_STREAM, False)) for s in spans] == [
        ("chat llama3.2:1b", False),
        ("chat llama3.2:1b", True),
        ("text_completion llama3.2:1b", False),
        ("text_completion llama3.2:1b", True),
        ("embeddings nomic-embed-text", False),
        ("embeddings nomic-embed-text", False),
    ]  # one each; the call made after uninstrument() has none
    assert all(s["kind"] == "SpanKind.CLIENT" for s in spans)
    a = [s["attributes"] for s in spans]
    assert all(x[semconv.SERVER_ADDRESS] == "127.0.0.1" for x in a)
    assert all(x[semconv.SERVER_PORT] == mock_port(mock_server) for x in a)
    observed = result["observed"]
    for attributes, final in (
        (a[0], observed["chat"]),
        (a[1], observed["chat_stream_final"]),
        (a[2], observed["generate"]),
        (a[3], observed["generate_stream_final"]),
    ):
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == final["prompt_eval_count"]
        assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final["eval_count"]
        assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == [final["done_reason"]]
        assert attributes[semconv.OLLAMA_RESPONSE_TOTAL_DURATION] == final["total_duration"] / 1e9
        assert attributes[semconv.OLLAMA_RESPONSE_EVAL_RATE] == final["eval_count"] / (
            final["eval_duration"] / 1e9
        )
    assert a[1][semconv.STREAM_CHUNK_COUNT] == a[3][semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[4][semconv.GEN_AI_USAGE_INPUT_TOKENS] == observed["embed_input_tokens"]
    assert a[5][semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == observed["embeddings_dimensions"]
