"""Run inside a virtualenv of the lowest or the newest versions (see test_versions.py).

Uses only the instrumentation, the OpenTelemetry SDK and the libraries it instruments (no
otelbench, no pytest): every scenario calls the mock at ``sys.argv[1]`` through the official
SDK with ``otelbench_instrumentation.instrument()`` on, and the whole outcome goes to stdout as
one JSON object: what the app saw, the spans each scenario made, and every metric point.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otelbench_instrumentation

BASE = sys.argv[1]
KEY = "sk-compat-probe-key"
MESSAGES = [{"role": "user", "content": "hello there"}]
DISTRIBUTIONS = (
    "openai",
    "anthropic",
    "ollama",
    "boto3",
    "botocore",
    "tenacity",
    "pybreaker",
    "wrapt",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
)

exporter = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
reader = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[reader])
enabled = otelbench_instrumentation.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

# Imported after instrument(): the SDKs are patched on import as well as before it.
import anthropic  # noqa: E402
import boto3  # noqa: E402
import ollama  # noqa: E402
import openai  # noqa: E402
import pybreaker  # noqa: E402
import tenacity  # noqa: E402

Seen = dict[str, Any]


def seen(result: Any, sdk_type: type[Any], input_tokens: Any = None, output_tokens: Any = None) -> Seen:
    """What the app got back: whether the result is still the SDK's type, and the usage the
    provider reported."""
    return {
        "type": type(result).__name__,
        "is_sdk_type": isinstance(result, sdk_type),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }


# --- OpenAI ---------------------------------------------------------------------------------------
def openai_create() -> Seen:
    with openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY) as client:
        r = client.chat.completions.create(model="compat-openai-create", messages=MESSAGES)
    return seen(r, openai.types.chat.ChatCompletion, r.usage.prompt_tokens, r.usage.completion_tokens)


def openai_stream() -> Seen:
    usage = None
    with openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY) as client:
        stream = client.chat.completions.create(
            model="compat-openai-stream",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        with stream:
            for chunk in stream:
                usage = chunk.usage or usage
    return seen(stream, openai.Stream, usage.prompt_tokens, usage.completion_tokens)


def openai_responses() -> Seen:
    with openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY) as client:
        r = client.responses.create(model="compat-openai-responses", input="hello there")
    return seen(r, openai.types.responses.Response, r.usage.input_tokens, r.usage.output_tokens)


def openai_raw() -> Seen:
    with openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY) as client:
        raw = client.chat.completions.with_raw_response.create(model="compat-openai-raw", messages=MESSAGES)
        r = raw.parse()
    return seen(r, openai.types.chat.ChatCompletion, r.usage.prompt_tokens, r.usage.completion_tokens)


def openai_completion_stream() -> Seen:
    usage = None
    with openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY) as client:
        stream = client.completions.create(
            model="compat-openai-completion-stream",
            prompt="hello there",
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            usage = chunk.usage or usage
    return seen(stream, openai.Stream, usage.prompt_tokens, usage.completion_tokens)


def azure_stream() -> Seen:
    # AzureOpenAI: Azure's paths, and a stream that opens with its prompt-filter chunk.
    usage = None
    with openai.AzureOpenAI(azure_endpoint=BASE, api_key=KEY, api_version="2024-10-21") as client:
        stream = client.chat.completions.create(
            model="compat-azure-stream",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            usage = chunk.usage or usage
    return seen(stream, openai.Stream, usage.prompt_tokens, usage.completion_tokens)


async def _openai_async_stream() -> Seen:
    usage = None
    async with openai.AsyncOpenAI(base_url=f"{BASE}/v1", api_key=KEY) as client:
        stream = await client.chat.completions.create(
            model="compat-openai-async-stream",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            usage = chunk.usage or usage
    return seen(stream, openai.AsyncStream, usage.prompt_tokens, usage.completion_tokens)


# --- Anthropic ------------------------------------------------------------------------------------
def anthropic_create() -> Seen:
    with anthropic.Anthropic(base_url=BASE, api_key=KEY) as client:
        m = client.messages.create(model="compat-anthropic-create", max_tokens=64, messages=MESSAGES)
    return seen(m, anthropic.types.Message, m.usage.input_tokens, m.usage.output_tokens)


def anthropic_stream_helper() -> Seen:
    with (
        anthropic.Anthropic(base_url=BASE, api_key=KEY) as client,
        client.messages.stream(
            model="compat-anthropic-stream-helper", max_tokens=64, messages=MESSAGES
        ) as stream,
    ):
        "".join(stream.text_stream)
        m = stream.get_final_message()
    return seen(stream, anthropic.MessageStream, m.usage.input_tokens, m.usage.output_tokens)


def anthropic_stream_closed_early() -> Seen:
    with anthropic.Anthropic(base_url=BASE, api_key=KEY) as client:
        stream = client.messages.create(
            model="compat-anthropic-stream-closed-early", max_tokens=64, messages=MESSAGES, stream=True
        )
        with stream:
            for event in stream:
                if event.type == "content_block_delta":
                    break
    return seen(stream, anthropic.Stream)


def anthropic_raw_stream() -> Seen:
    output = None
    with anthropic.Anthropic(base_url=BASE, api_key=KEY) as client:
        raw = client.messages.with_raw_response.create(
            model="compat-anthropic-raw-stream", max_tokens=64, messages=MESSAGES, stream=True
        )
        stream = raw.parse()
        for event in stream:
            if event.type == "message_delta":
                output = event.usage.output_tokens
    return seen(stream, anthropic.Stream, None, output)


async def _anthropic_async_stream() -> Seen:
    input_tokens = output = None
    async with anthropic.AsyncAnthropic(base_url=BASE, api_key=KEY) as client:
        stream = await client.messages.create(
            model="compat-anthropic-async-stream", max_tokens=64, messages=MESSAGES, stream=True
        )
        async for event in stream:
            if event.type == "message_start":
                input_tokens = event.message.usage.input_tokens
            elif event.type == "message_delta":
                output = event.usage.output_tokens
    return seen(stream, anthropic.AsyncStream, input_tokens, output)


async def _anthropic_async_closed_early() -> Seen:
    async with anthropic.AsyncAnthropic(base_url=BASE, api_key=KEY) as client:
        stream = await client.messages.create(
            model="compat-anthropic-async-closed-early", max_tokens=64, messages=MESSAGES, stream=True
        )
        async with stream:
            async for event in stream:
                if event.type == "content_block_delta":
                    break
    return seen(stream, anthropic.AsyncStream)


async def _anthropic_async_stream_helper() -> Seen:
    async with (
        anthropic.AsyncAnthropic(base_url=BASE, api_key=KEY) as client,
        client.messages.stream(
            model="compat-anthropic-async-stream-helper", max_tokens=64, messages=MESSAGES
        ) as stream,
    ):
        async for _ in stream.text_stream:
            pass
        m = await stream.get_final_message()
    return seen(m, anthropic.types.Message, m.usage.input_tokens, m.usage.output_tokens)


def anthropic_stream_dropped_unread() -> Seen:
    with anthropic.Anthropic(base_url=BASE, api_key=KEY) as client:
        stream = client.messages.create(
            model="compat-anthropic-stream-dropped-unread", max_tokens=64, messages=MESSAGES, stream=True
        )
        result = seen(stream, anthropic.Stream)
        del stream
        gc.collect()
    return result


async def _anthropic_async_stream_dropped_unread() -> Seen:
    async with anthropic.AsyncAnthropic(base_url=BASE, api_key=KEY) as client:
        stream = await client.messages.create(
            model="compat-anthropic-async-stream-dropped-unread",
            max_tokens=64,
            messages=MESSAGES,
            stream=True,
        )
        result = seen(stream, anthropic.AsyncStream)
        del stream
        gc.collect()
    return result


# --- Ollama ---------------------------------------------------------------------------------------
def ollama_chat() -> Seen:
    r = ollama.Client(host=BASE).chat(model="compat-ollama-chat", messages=MESSAGES)
    return seen(r, ollama.ChatResponse, r.prompt_eval_count, r.eval_count)


def ollama_stream() -> Seen:
    stream = ollama.Client(host=BASE).chat(model="compat-ollama-stream", messages=MESSAGES, stream=True)
    last = None
    for part in stream:
        last = part
    return seen(last, ollama.ChatResponse, last.prompt_eval_count, last.eval_count)


async def _ollama_async_stream() -> Seen:
    stream = await ollama.AsyncClient(host=BASE).generate(
        model="compat-ollama-async-generate-stream", prompt="hello there", stream=True
    )
    last = None
    async for part in stream:
        last = part
    return seen(last, ollama.GenerateResponse, last.prompt_eval_count, last.eval_count)


# --- Bedrock --------------------------------------------------------------------------------------


def _bedrock() -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=BASE,
        region_name="us-east-1",
        aws_access_key_id="AKIDCOMPATPROBE",
        aws_secret_access_key="compat-probe-secret",
    )


def _bedrock_body() -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": MESSAGES})


def bedrock_invoke() -> Seen:
    r = _bedrock().invoke_model(modelId="anthropic.compat-bedrock-invoke-v1:0", body=_bedrock_body())
    body = json.loads(r["body"].read())
    return seen(r, dict, body["usage"]["input_tokens"], body["usage"]["output_tokens"])


def bedrock_invoke_stream() -> Seen:
    r = _bedrock().invoke_model_with_response_stream(
        modelId="anthropic.compat-bedrock-invoke-stream-v1:0", body=_bedrock_body()
    )
    input_tokens = output = None
    for event in r["body"]:
        decoded = json.loads(event["chunk"]["bytes"])
        if decoded["type"] == "message_start":
            input_tokens = decoded["message"]["usage"]["input_tokens"]
        elif decoded["type"] == "message_delta":
            output = decoded["usage"]["output_tokens"]
    return seen(r, dict, input_tokens, output)


# --- tenacity and pybreaker -----------------------------------------------------------------------
def tenacity_retry() -> Seen:
    calls = []

    @tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none(), reraise=True)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "ok"

    return {"result": flaky(), "attempts": len(calls)}


def pybreaker_transitions() -> Seen:
    breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=0.05, name="compat-breaker")
    states = [breaker.current_state]

    def fail() -> None:
        raise ValueError("down")

    for _ in range(2):
        with contextlib.suppress(ValueError, pybreaker.CircuitBreakerError):
            breaker.call(fail)
        states.append(breaker.current_state)
    try:
        breaker.call(lambda: "rejected")
    except pybreaker.CircuitBreakerError:
        states.append("rejected")
    time.sleep(0.06)
    states.append(breaker.call(lambda: "ok"))
    states.append(breaker.current_state)
    return {"states": states}


SCENARIOS: dict[str, Callable[[], Seen]] = {
    "openai_create": openai_create,
    "openai_stream": openai_stream,
    "openai_responses": openai_responses,
    "openai_raw": openai_raw,
    "openai_async_stream": lambda: asyncio.run(_openai_async_stream()),
    "openai_completion_stream": openai_completion_stream,
    "azure_stream": azure_stream,
    "anthropic_create": anthropic_create,
    "anthropic_stream_helper": anthropic_stream_helper,
    "anthropic_stream_closed_early": anthropic_stream_closed_early,
    "anthropic_raw_stream": anthropic_raw_stream,
    "anthropic_async_stream": lambda: asyncio.run(_anthropic_async_stream()),
    "anthropic_async_closed_early": lambda: asyncio.run(_anthropic_async_closed_early()),
    "anthropic_async_stream_helper": lambda: asyncio.run(_anthropic_async_stream_helper()),
    "anthropic_stream_dropped_unread": anthropic_stream_dropped_unread,
    "anthropic_async_stream_dropped_unread": lambda: asyncio.run(_anthropic_async_stream_dropped_unread()),
    "ollama_chat": ollama_chat,
    "ollama_stream": ollama_stream,
    "ollama_async_generate_stream": lambda: asyncio.run(_ollama_async_stream()),
    "bedrock_invoke": bedrock_invoke,
    "bedrock_invoke_stream": bedrock_invoke_stream,
    "tenacity_retry": tenacity_retry,
    "pybreaker_transitions": pybreaker_transitions,
}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind.name,
        "status": span.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {"name": e.name, "attributes": {k: _plain(v) for k, v in (e.attributes or {}).items()}}
            for e in span.events
        ],
    }


def _metrics() -> list[dict[str, Any]]:
    points = []
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    points.append(
                        {
                            "name": metric.name,
                            "unit": metric.unit,
                            "attributes": {k: _plain(v) for k, v in (point.attributes or {}).items()},
                            "count": getattr(point, "count", None),
                            "sum": getattr(point, "sum", None),
                            "value": getattr(point, "value", None),
                        }
                    )
    return points


def main() -> None:
    """Run every scenario, then print the JSON outcome."""
    outcome: dict[str, Any] = {
        "versions": {name: importlib.metadata.version(name) for name in DISTRIBUTIONS},
        "enabled": enabled,
        "scenarios": {},
    }
    for name, scenario in SCENARIOS.items():
        exporter.clear()
        try:
            app: Seen | None = scenario()
            error = None
        except Exception:
            app, error = None, traceback.format_exc()
        outcome["scenarios"][name] = {
            "app": app,
            "error": error,
            "spans": [_span(s) for s in exporter.get_finished_spans()],
        }
    outcome["metrics"] = _metrics()
    json.dump(outcome, sys.stdout)


if __name__ == "__main__":
    main()
