"""Ollama instrumentation never breaks the app, never leaks content, and undoes itself exactly."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any

import ollama
import pytest
from ollama._client import AsyncClient, Client
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.trace import TracerProvider

import otelbench_instrumentation
from otelbench.mock import MockServer
from otelbench_instrumentation import OllamaInstrumentor, semconv

from ..conftest import Otel, make_providers
from ..test_safety import (
    ProviderOfRaisingMeters,
    ProviderOfRaisingTracers,
    RaisingMeterProvider,
    RaisingTracerProvider,
)
from .conftest import EMBED_MODEL, MODEL, async_client_with, client_with

PROMPT = "my secret prompt about the quarterly numbers"
SYSTEM = "you are a careful accountant"
NAMES = ("chat", "generate", "embed", "embeddings")


def _shape(text: str | None) -> tuple[str, int]:
    # The mock, like a model, words each reply differently; the app must see the same shape.
    return ("str", len(text.split())) if isinstance(text, str) else (type(text).__name__, 0)


def _workload(server: MockServer) -> list[Any]:
    """Every call shape an app might make; returns what the app observed (text as its shape)."""
    seen: list[Any] = []
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    with client_with(server) as c:
        r = c.chat(model=MODEL, messages=messages, options={"temperature": 0.3})
        seen.append((type(r).__name__, _shape(r.message.content), r.eval_count, r.done_reason))
        stream = c.chat(model=MODEL, messages=messages, stream=True)
        # type() of a proxy is the proxy class; isinstance and inspect see the generator.
        seen.append(
            (inspect.isgenerator(stream), [(type(p).__name__, _shape(p.message.content)) for p in stream])
        )
        g = c.generate(model=MODEL, prompt=PROMPT, system=SYSTEM)
        seen.append((type(g).__name__, _shape(g.response), g.eval_count))
        seen.append([_shape(p.response) for p in c.generate(model=MODEL, prompt=PROMPT, stream=True)])
        e = c.embed(model=EMBED_MODEL, input=PROMPT)
        seen.append((type(e).__name__, len(e.embeddings), len(e.embeddings[0])))
        seen.append(len(c.embeddings(model=EMBED_MODEL, prompt=PROMPT).embedding))
    with client_with(server, fault=500) as bad:
        try:
            bad.chat(model=MODEL, messages=messages)
        except ollama.ResponseError as exc:
            seen.append((type(exc).__name__, exc.status_code))

    async def run_async() -> list[Any]:
        async with async_client_with(server) as ac:
            s = await ac.chat(model=MODEL, messages=messages, stream=True)
            shapes: list[Any] = [inspect.isasyncgen(s)]
            shapes += [_shape(p.message.content) async for p in s]
            shapes.append(len((await ac.embed(model=EMBED_MODEL, input=["a", "b"])).embeddings))
            return shapes

    seen.append(asyncio.run(run_async()))
    return seen


@pytest.mark.parametrize(
    ("tracer_provider", "meter_provider"),
    [
        (RaisingTracerProvider(), RaisingMeterProvider()),
        (ProviderOfRaisingTracers(), ProviderOfRaisingMeters()),
        (ProviderOfRaisingTracers(), None),
    ],
    ids=["get-raises", "every-call-raises", "spans-raise"],
)
def test_raising_telemetry_never_reaches_the_app(
    mock_server: MockServer, tracer_provider: TracerProvider, meter_provider: MeterProvider | None
) -> None:
    expected = _workload(mock_server)  # uninstrumented
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        assert instrumentor.is_instrumented_by_opentelemetry
        assert Client.__dict__["chat"] is not None and hasattr(Client.__dict__["chat"], "__wrapped__")
        assert _workload(mock_server) == expected
    finally:
        instrumentor.uninstrument()


def _exported_text(otel: Otel) -> str:
    spans = "\n".join(s.to_json() for s in otel.spans())
    data: MetricsData | None = otel.reader.get_metrics_data()
    return spans + (data.to_json() if data is not None else "")


def test_no_content_by_default(otel: Otel, mock_server: MockServer) -> None:
    _workload(mock_server)
    text = _exported_text(otel)
    assert len(otel.spans()) == 9, "the workload's calls must all be exported"
    assert PROMPT not in text and SYSTEM not in text
    assert semconv.GEN_AI_INPUT_MESSAGES not in text
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in text
    # The completion words are not in the telemetry either.
    with client_with(mock_server) as c:
        reply = c.chat(model=MODEL, messages=[{"role": "user", "content": "x"}]).message.content
    assert reply and reply not in _exported_text(otel)


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    """Ollama instrumentation with content capture switched on through the environment."""
    monkeypatch.setenv(semconv.ENV_CAPTURE_CONTENT, "true")
    exporter, tp, reader, mp = make_providers()
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield Otel(exporter, reader, tp, mp)
    finally:
        instrumentor.uninstrument()


def test_content_captured_when_enabled(capturing: Otel, mock_server: MockServer) -> None:
    messages: list[Any] = [
        {"role": "system", "content": SYSTEM},
        ollama.Message(role="user", content=PROMPT),  # the SDK's own message type too
    ]
    with client_with(mock_server) as c:
        chat = c.chat(model=MODEL, messages=messages)
        streamed = "".join(
            p.message.content or "" for p in c.chat(model=MODEL, messages=messages, stream=True)
        )
        generated = c.generate(model=MODEL, prompt=PROMPT, system=SYSTEM)
        gen_streamed = "".join(p.response or "" for p in c.generate(model=MODEL, prompt=PROMPT, stream=True))
    expected_chat_input = [
        {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
    ]
    spans = capturing.spans()
    assert len(spans) == 4
    completions = (chat.message.content, streamed, generated.response, gen_streamed)
    inputs = (
        expected_chat_input,
        expected_chat_input,
        expected_chat_input,  # generate's system + prompt read as a system and a user message
        [{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}],
    )
    for span, completion, expected_input in zip(spans, completions, inputs, strict=True):
        a = span.attributes or {}
        assert json.loads(str(a[semconv.GEN_AI_INPUT_MESSAGES])) == expected_input
        output = json.loads(str(a[semconv.GEN_AI_OUTPUT_MESSAGES]))
        assert completion and output[0]["parts"][0]["content"] == completion
        assert output[0]["finish_reason"] == "stop"


def test_uninstrument_restores_every_original(otel: Otel, mock_server: MockServer) -> None:
    OllamaInstrumentor().uninstrument()  # the fixture's instrumentation: start from the originals
    originals = (
        [Client.__dict__[n] for n in NAMES]
        + [AsyncClient.__dict__[n] for n in NAMES]
        + [ollama.__dict__[n] for n in NAMES]
    )
    exporter, tp, _, mp = make_providers()
    enabled = otelbench_instrumentation.instrument(tracer_provider=tp, meter_provider=mp, include=["ollama"])
    assert enabled == ["ollama"]
    current = (
        [Client.__dict__[n] for n in NAMES]
        + [AsyncClient.__dict__[n] for n in NAMES]
        + [ollama.__dict__[n] for n in NAMES]
    )
    assert all(now is not before for now, before in zip(current, originals, strict=True))
    otelbench_instrumentation.uninstrument()
    restored = (
        [Client.__dict__[n] for n in NAMES]
        + [AsyncClient.__dict__[n] for n in NAMES]
        + [ollama.__dict__[n] for n in NAMES]
    )
    assert all(now is before for now, before in zip(restored, originals, strict=True))
    with client_with(mock_server) as c:
        c.chat(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert exporter.get_finished_spans() == ()


def test_instrumenting_twice_does_not_double_spans(otel: Otel, mock_server: MockServer) -> None:
    OllamaInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    otelbench_instrumentation.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider, include=["ollama"]
    )
    # The module-level function wraps the SDK's own bound method, not a wrapper of it.
    assert not hasattr(ollama.chat.__wrapped__, "__wrapped__")
    with client_with(mock_server) as c:
        c.chat(model=MODEL, messages=[{"role": "user", "content": "x"}])
        list(c.generate(model=MODEL, prompt="x", stream=True))
    assert len(otel.spans()) == 2
    assert sum(p.count for p in otel.points(semconv.METRIC_OPERATION_DURATION)) == 2


def test_wrapped_methods_look_like_the_sdk_methods(otel: Otel, mock_server: MockServer) -> None:
    sync_client = client_with(mock_server)
    async_client = async_client_with(mock_server)
    assert inspect.iscoroutinefunction(async_client.chat)
    assert inspect.iscoroutinefunction(AsyncClient.generate)
    assert not inspect.iscoroutinefunction(sync_client.chat)
    assert inspect.ismethod(ollama.chat) and ollama.chat.__name__ == "chat"
    assert isinstance(ollama.chat.__self__, Client)
    assert list(inspect.signature(sync_client.chat).parameters)[:3] == ["model", "messages", "tools"]
    assert list(inspect.signature(ollama.embed).parameters)[:2] == ["model", "input"]
    assert Client.chat.__doc__ is not None and "chat response" in Client.chat.__doc__
    sync_client.close()
    asyncio.run(async_client.close())
