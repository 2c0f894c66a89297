"""`opentelemetry-instrument` instruments an unmodified boto3 Bedrock app through our entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv

from ...conftest import console_spans
from .conftest import PROMPT, SECRET_KEY

APP = f'''
import boto3

client = boto3.client("bedrock-runtime")
reply = client.converse(
    modelId="anthropic.claude-3-haiku-20240307-v1:0",
    messages=[{{"role": "user", "content": [{{"text": "{PROMPT}"}}]}}],
)
print(reply["output"]["message"]["content"][0]["text"])
stream = client.converse_stream(
    modelId="anthropic.claude-3-haiku-20240307-v1:0",
    messages=[{{"role": "user", "content": [{{"text": "{PROMPT}"}}]}}],
)
for event in stream["stream"]:
    if "contentBlockDelta" in event:
        print(event["contentBlockDelta"]["delta"]["text"], end="", flush=True)
print()
'''


def test_unmodified_boto3_app_is_instrumented(mock_server: MockServer, tmp_path: Path) -> None:
    app = tmp_path / "bedrock_app.py"
    app.write_text(APP, encoding="utf-8")
    env = {
        **os.environ,
        # The endpoint and region come from the standard AWS variables, as in a deployment.
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": mock_server.bedrock_endpoint_url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code-bedrock",
        # SDKs the app does not use stay off (importing them costs seconds).
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,anthropic,ollama",
    }
    command = [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, str(app)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    genai = [s for s in console_spans(proc.stdout) if semconv.GEN_AI_OPERATION_NAME in s["attributes"]]
    assert len(genai) == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert all(s["name"] == "chat anthropic.claude-3-haiku-20240307-v1:0" for s in genai)
    assert all(s["attributes"][semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock" for s in genai)
    (streamed,) = [s for s in genai if s["attributes"].get(semconv.GEN_AI_REQUEST_STREAM)]
    assert streamed["attributes"][semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert streamed["attributes"][semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    spans_text = proc.stdout[proc.stdout.find("{") :]
    assert SECRET_KEY not in proc.stdout + proc.stderr and PROMPT not in spans_text
