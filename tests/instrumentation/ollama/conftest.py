"""Ollama instrumentation on real OTel SDK providers; the real ``ollama`` SDK talks to the mock.

The ``otel`` fixture here replaces the parent directory's (which turns on OpenAI instead).
Per-request mock settings (``x-mock-*``) are client headers: the Ollama SDK takes headers only
when a client is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ollama
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from otelbench.mock import MockServer
from otelbench_instrumentation import OllamaInstrumentor

from ..conftest import Otel, headers, make_providers

MODEL = "llama3.2:1b"
EMBED_MODEL = "nomic-embed-text"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something about mocks, please."}]


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Ollama instrumentation on, exporting into memory; undone after the test."""
    exporter, tp, reader, mp = make_providers()
    instrumentor = OllamaInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        # Another test left it on (with other providers): start from a clean slate.
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield Otel(exporter, reader, tp, mp)
    finally:
        instrumentor.uninstrument()
        mp.shutdown()
        tp.shutdown()


@pytest.fixture
def client(mock_server: MockServer) -> Iterator[ollama.Client]:
    """A real Ollama client talking to the mock."""
    with ollama.Client(host=mock_server.ollama_host) as c:
        yield c


def client_with(server: MockServer, **mock_settings: object) -> ollama.Client:
    """A client whose every request carries x-mock-* settings, e.g. client_with(s, fault=500)."""
    return ollama.Client(host=server.ollama_host, headers=headers(**mock_settings))


def async_client_with(server: MockServer, **mock_settings: object) -> ollama.AsyncClient:
    """The async counterpart of :func:`client_with`."""
    return ollama.AsyncClient(host=server.ollama_host, headers=headers(**mock_settings))


def attrs(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a plain dict."""
    return dict(span.attributes or {})


def mock_port(server: MockServer) -> int:
    """The mock's TCP port."""
    return int(server.url.rsplit(":", 1)[1])
