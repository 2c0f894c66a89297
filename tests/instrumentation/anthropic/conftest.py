"""Anthropic instrumentation on real OTel SDK providers, and real Anthropic clients of the mock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelbench.mock import MockServer
from otelbench_instrumentation import AnthropicInstrumentor, semconv

from ..conftest import API_KEY, Otel, headers, instrument_into_memory, instrumented_otel, only_span

__all__ = ["API_KEY", "MESSAGES", "MODEL", "Otel", "genai_spans", "headers", "instrumented", "only_span"]

MODEL = "claude-mock"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something, please."}]


def instrumented(**kwargs: Any) -> tuple[Otel, AnthropicInstrumentor]:
    """Anthropic instrumentation exporting into memory (undo it with ``.uninstrument()``)."""
    instrumentor = AnthropicInstrumentor()
    return instrument_into_memory(instrumentor, **kwargs), instrumentor


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Anthropic instrumentation on, exporting into memory; undone after the test."""
    with instrumented_otel(AnthropicInstrumentor()) as data:
        yield data


@pytest.fixture
def client(mock_server: MockServer) -> Iterator[anthropic.Anthropic]:
    """A real Anthropic client talking to the mock."""
    with anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY, max_retries=2) as c:
        yield c


def genai_spans(spans: Any) -> list[ReadableSpan]:
    """Spans of GenAI model calls (ours and the SDK's), ignoring anything else."""
    return [s for s in spans if semconv.GEN_AI_OPERATION_NAME in (s.attributes or {})]


@pytest.fixture(scope="session")
def _global_exporter() -> InMemorySpanExporter:
    # The SDK's own tracing uses the global provider, which can be set once per process.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another global tracer provider is installed"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def global_spans(_global_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """A real SDK TracerProvider as the global provider; its spans start empty for each test."""
    _global_exporter.clear()
    yield _global_exporter
    _global_exporter.clear()
