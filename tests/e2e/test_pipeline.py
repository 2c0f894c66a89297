"""Instrumented SDK calls reach the real Jaeger and Prometheus through the real Collector."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otelbench.backends import Stack
from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import OpenAIInstrumentor, semconv

from .helpers import get_json, poll, prom

pytestmark = pytest.mark.slow

MODEL = "gpt-e2e"
CALLS = 6  # 3 plain + 3 streamed; the first plain one is retried once after a 429


@pytest.fixture(scope="module")
def exported_run(stack: Stack, mock_server: MockServer) -> Iterator[str]:
    """Make CALLS instrumented calls exporting over OTLP/HTTP; yield the run's service name."""
    service = f"otelbench-e2e-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{stack.otlp_http_endpoint}/v1/traces"))
    )
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{stack.otlp_http_endpoint}/v1/metrics"),
                export_interval_millis=1000,
            )
        ],
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        mock_server.script(MODEL, [Fault.status(429, retry_after=0.05), Fault.ok()])
        with openai.OpenAI(base_url=mock_server.openai_base_url, api_key="sk-e2e-SECRET") as client:
            for i in range(CALLS):
                messages = [{"role": "user", "content": f"e2e {i}"}]
                if i % 2 == 0:
                    client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
                else:
                    stream = client.chat.completions.create(
                        model=MODEL,
                        messages=messages,  # type: ignore[arg-type]
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    for _ in stream:
                        pass
        assert tracer_provider.force_flush(10_000)
        assert meter_provider.force_flush(10_000)
        yield service
    finally:
        instrumentor.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()


def test_jaeger_has_one_genai_span_per_call(stack: Stack, exported_run: str) -> None:
    url = f"{stack.jaeger_url}/api/traces?service={exported_run}&limit=100"
    traces = poll(lambda: get_json(url)["data"], lambda data: len(data) >= CALLS)
    assert len(traces) == CALLS, stack.log("otelcol")[-2000:]
    retried = 0
    for trace in traces:
        spans = trace["spans"]
        assert [s["operationName"] for s in spans] == [f"chat {MODEL}"]
        tags = {t["key"]: t["value"] for t in spans[0]["tags"]}
        assert tags[semconv.GEN_AI_PROVIDER_NAME] == "openai"
        assert tags[semconv.GEN_AI_REQUEST_MODEL] == MODEL
        assert tags["span.kind"] == "client"
        assert tags[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
        assert "sk-e2e-SECRET" not in json.dumps(trace)
        if tags.get(semconv.GEN_AI_REQUEST_STREAM):
            assert tags[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
        attempts = [
            log
            for log in spans[0]["logs"]
            if {"key": "event", "type": "string", "value": semconv.EVENT_ATTEMPT} in log["fields"]
        ]
        if attempts:
            retried += 1
            statuses = [
                next(f["value"] for f in log["fields"] if f["key"] == semconv.HTTP_RESPONSE_STATUS_CODE)
                for log in attempts
            ]
            assert statuses == [429, 200]
    assert retried == 1


def test_prometheus_has_the_genai_histograms(stack: Stack, exported_run: str) -> None:
    job = f'job="{exported_run}"'
    count = f"sum(gen_ai_client_operation_duration_seconds_count{{{job}}})"
    result = poll(lambda: prom(stack, count), lambda r: bool(r) and float(r[0]["value"][1]) >= CALLS)
    assert result and float(result[0]["value"][1]) == CALLS, stack.log("prometheus")[-2000:]
    ttft = prom(stack, f"sum(gen_ai_client_operation_time_to_first_chunk_seconds_count{{{job}}})")
    assert float(ttft[0]["value"][1]) == CALLS // 2
    tokens = prom(stack, f"sum by (gen_ai_token_type) (gen_ai_client_token_usage_count{{{job}}})")
    assert {r["metric"]["gen_ai_token_type"] for r in tokens} == {"input", "output"}
    p95 = prom(
        stack,
        f"histogram_quantile(0.95, sum by (le) (gen_ai_client_operation_duration_seconds_bucket{{{job}}}))",
    )
    assert 0 < float(p95[0]["value"][1]) < 10
