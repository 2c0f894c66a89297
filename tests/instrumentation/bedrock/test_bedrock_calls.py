"""Non-streamed Bedrock calls through real boto3 against the mock: spans, metrics, retries, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import boto3
import botocore.client
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import semconv

from ...conftest import MOCK_OUTPUT_TOKENS
from ..conftest import only_span
from .conftest import ACCESS_KEY, MESSAGES, MODEL, PROMPT, SECRET_KEY, Otel, bedrock_client, instrumented

NOVA = "us.amazon.nova-lite-v1:0"


def test_converse_is_one_span_with_attributes_and_metrics(otel: Otel, client: Any) -> None:
    result = client.converse(
        modelId=MODEL,
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 100, "temperature": 0.25, "topP": 0.9, "stopSequences": ["END"]},
    )
    assert result["stopReason"] == "end_turn"
    span = only_span(otel)
    assert span.name == f"chat {MODEL}"
    assert span.kind.name == "CLIENT"
    a = span.attributes or {}
    assert a[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert a[semconv.GEN_AI_PROVIDER_NAME] == semconv.PROVIDER_AWS_BEDROCK == "aws.bedrock"
    assert a[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 100 and type(a[semconv.GEN_AI_REQUEST_MAX_TOKENS]) is int
    assert a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.25
    assert type(a[semconv.GEN_AI_REQUEST_TOP_P]) is float
    assert tuple(a[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ("END",)  # type: ignore[arg-type]
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("end_turn",)  # type: ignore[arg-type]
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == result["usage"]["inputTokens"]
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == result["usage"]["outputTokens"] == MOCK_OUTPUT_TOKENS
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1" and type(a[semconv.SERVER_PORT]) is int
    assert semconv.ERROR_TYPE not in a and semconv.GEN_AI_REQUEST_STREAM not in a

    metrics = otel.metrics()
    (duration,) = metrics[semconv.METRIC_OPERATION_DURATION].data.data_points  # type: ignore[attr-defined]
    assert duration.attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert 0.0 < duration.sum < 5.0
    usage = metrics[semconv.METRIC_TOKEN_USAGE].data.data_points  # type: ignore[attr-defined]
    by_type = {p.attributes[semconv.GEN_AI_TOKEN_TYPE]: p.sum for p in usage}
    assert by_type == {"input": result["usage"]["inputTokens"], "output": MOCK_OUTPUT_TOKENS}
    assert semconv.METRIC_TIME_TO_FIRST_CHUNK not in metrics


def test_converse_cache_points_report_cache_tokens(otel: Otel, client: Any) -> None:
    system = [{"text": "You are a careful assistant. " * 20}, {"cachePoint": {"type": "default"}}]
    first = client.converse(modelId=MODEL, system=system, messages=MESSAGES)
    second = client.converse(modelId=MODEL, system=system, messages=MESSAGES)
    assert first["usage"]["cacheWriteInputTokens"] > 0 and second["usage"]["cacheReadInputTokens"] > 0
    wrote, read = (s.attributes or {} for s in otel.spans())
    usage = second["usage"]
    assert read[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == usage["cacheReadInputTokens"]
    # Bedrock's inputTokens excludes the cached prompt; the conventions' input count includes it.
    assert read[semconv.GEN_AI_USAGE_INPUT_TOKENS] == usage["inputTokens"] + usage["cacheReadInputTokens"]
    assert wrote[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == first["usage"]["cacheWriteInputTokens"]


def test_invoke_model_anthropic_body_is_read_and_handed_back(otel: Otel, client: Any) -> None:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 5,
        "temperature": 0.5,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    result = client.invoke_model(modelId=MODEL, body=json.dumps(body))
    assert isinstance(result["body"], StreamingBody)
    message = json.loads(result["body"].read())
    assert message["type"] == "message" and message["stop_reason"] == "max_tokens"
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 5 and a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert a[semconv.GEN_AI_RESPONSE_ID] == message["id"]
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("max_tokens",)  # type: ignore[arg-type]
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == message["usage"]["input_tokens"]


def test_invoke_model_nova_body(otel: Otel, client: Any) -> None:
    body = {
        "schemaVersion": "messages-v1",
        "messages": MESSAGES,
        "inferenceConfig": {"max_new_tokens": 50, "top_p": 0.5, "top_k": 20},
    }
    result = client.invoke_model(modelId=NOVA, body=json.dumps(body))
    decoded = json.loads(result["body"].read())
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_REQUEST_MODEL] == NOVA
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 50 and a[semconv.GEN_AI_REQUEST_TOP_K] == 20
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == (decoded["stopReason"],)  # type: ignore[arg-type]
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == decoded["usage"]["outputTokens"] == MOCK_OUTPUT_TOKENS


def test_throttling_retried_by_botocore_shows_attempts(otel: Otel, mock_server: MockServer) -> None:
    model = "bedrock-retry-model"
    mock_server.script(model, [Fault.status(429), Fault.status(503), Fault.ok()])
    client = bedrock_client(mock_server, max_attempts=3)
    result = client.converse(modelId=model, messages=MESSAGES)
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    span = only_span(otel)
    a = span.attributes or {}
    assert a[semconv.ATTEMPT_COUNT] == 3 and semconv.ERROR_TYPE not in a
    events = [dict(e.attributes or {}) for e in span.events if e.name == semconv.EVENT_ATTEMPT]
    assert [e[semconv.ATTEMPT_NUMBER] for e in events] == [1, 2, 3]
    assert [e.get(semconv.HTTP_RESPONSE_STATUS_CODE) for e in events] == [429, 503, 200]
    assert [e.get(semconv.ERROR_TYPE) for e in events] == [
        "ThrottlingException",
        "ServiceUnavailableException",
        None,
    ]
    # botocore's back-off (random, at most 1 s for early attempts in standard mode) is measured.
    waits = [e[semconv.ATTEMPT_RETRY_WAIT] for e in events[:2]]
    assert all(isinstance(w, float) and 0.0 <= w < 3.0 for w in waits)
    client.close()


def test_retries_exhausted_fail_with_the_error_code(otel: Otel, mock_server: MockServer) -> None:
    model = "bedrock-throttled-model"
    mock_server.script(model, [Fault.status(429)] * 2)
    client = bedrock_client(mock_server, max_attempts=2)
    with pytest.raises(ClientError) as info:
        client.converse(modelId=model, messages=MESSAGES)
    assert type(info.value).__name__ == "ThrottlingException"
    span = only_span(otel)
    a = span.attributes or {}
    assert a[semconv.ERROR_TYPE] == "ThrottlingException" and a[semconv.ATTEMPT_COUNT] == 2
    assert span.status.status_code.name == "ERROR"
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.attributes[semconv.ERROR_TYPE] == "ThrottlingException"
    client.close()


def test_model_error_is_not_retried_and_reraised_unchanged(otel: Otel, mock_server: MockServer) -> None:
    model = "bedrock-broken-model"
    mock_server.script(model, [Fault.status(424)])
    client = bedrock_client(mock_server)
    with pytest.raises(client.exceptions.ModelErrorException) as info:
        client.converse(modelId=model, messages=MESSAGES)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    a = only_span(otel).attributes or {}
    assert a[semconv.ERROR_TYPE] == "ModelErrorException" and semconv.ATTEMPT_COUNT not in a
    client.close()


def _telemetry_text(otel: Otel) -> str:
    parts = []
    for span in otel.spans():
        parts.append(json.dumps(dict(span.attributes or {}), default=str))
        parts.extend(json.dumps(dict(e.attributes or {}), default=str) for e in span.events)
    data = otel.reader.get_metrics_data()
    parts.append(data.to_json() if data is not None else "")
    return "\n".join(parts)


def test_no_credentials_or_prompt_text_in_telemetry(otel: Otel, client: Any) -> None:
    client.converse(modelId=MODEL, system=[{"text": "SYSTEM-SECRET"}], messages=MESSAGES)
    stream = client.converse_stream(modelId=MODEL, messages=MESSAGES)
    texts = [e["contentBlockDelta"]["delta"]["text"] for e in stream["stream"] if "contentBlockDelta" in e]
    text = _telemetry_text(otel)
    for secret in (ACCESS_KEY, SECRET_KEY, PROMPT, "SYSTEM-SECRET", "".join(texts), "Authorization"):
        assert secret not in text


def test_content_capture_on_records_prompt_and_answer_never_credentials(mock_server: MockServer) -> None:
    otel, instrumentor = instrumented(capture_content=True)
    client = bedrock_client(mock_server)
    try:
        result = client.converse(modelId=MODEL, system=[{"text": "Be brief."}], messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
        client.close()
    a = only_span(otel).attributes or {}
    assert PROMPT in str(a[semconv.GEN_AI_INPUT_MESSAGES])
    assert "Be brief." in str(a[semconv.GEN_AI_SYSTEM_INSTRUCTIONS])
    assert result["output"]["message"]["content"][0]["text"] in str(a[semconv.GEN_AI_OUTPUT_MESSAGES])
    text = _telemetry_text(otel)
    assert ACCESS_KEY not in text and SECRET_KEY not in text


def test_other_services_and_operations_are_untouched(otel: Otel, mock_server: MockServer) -> None:
    s3 = boto3.client("s3", endpoint_url=mock_server.url, region_name="us-east-1")
    with pytest.raises(ClientError):
        s3.list_buckets()  # the mock has no S3: a 404, and no GenAI span
    s3.close()
    assert otel.spans() == []


def test_uninstrument_restores_botocore(mock_server: MockServer) -> None:
    otel, instrumentor = instrumented()
    client = bedrock_client(mock_server)
    client.converse(modelId=MODEL, messages=MESSAGES)
    wrapped = vars(botocore.client.BaseClient)["_make_api_call"]
    instrumentor.uninstrument()
    assert vars(botocore.client.BaseClient)["_make_api_call"] is wrapped.__wrapped__
    # The same client (its event hooks still registered) and a new one record nothing more.
    client.converse(modelId=MODEL, messages=MESSAGES)
    other = bedrock_client(mock_server)
    stream = other.converse_stream(modelId=MODEL, messages=MESSAGES)
    assert type(stream["stream"]).__name__ == "EventStream"
    list(stream["stream"])
    assert len(otel.spans()) == 1
    client.close()
    other.close()


_DEFERRED = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otelbench_instrumentation as oi

exporter = InMemorySpanExporter()
tp = TracerProvider()
tp.add_span_processor(SimpleSpanProcessor(exporter))
out = {"enabled": oi.instrument(tracer_provider=tp, include=["bedrock"])}
out["imported_early"] = [m for m in ("boto3", "botocore") if m in sys.modules]
import boto3
client = boto3.client("bedrock-runtime", endpoint_url=sys.argv[1], region_name="us-east-1")
client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])
out["spans"] = [s.name for s in exporter.get_finished_spans()]
print(json.dumps(out))
"""


def test_botocore_is_wrapped_on_first_import_not_before(mock_server: MockServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DEFERRED, mock_server.bedrock_endpoint_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"enabled": ["bedrock"], "imported_early": [], "spans": ["chat m"]}
