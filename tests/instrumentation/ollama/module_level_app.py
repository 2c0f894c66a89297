"""Run by test_ollama_safety in a fresh interpreter: the module-level ``ollama.chat`` & co. use a
default client built at import time from OLLAMA_HOST, so only a new process can point them at
the mock without touching SDK internals. Prints one JSON document on stdout."""

from __future__ import annotations

import json
from typing import Any

import ollama
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelbench_instrumentation import OllamaInstrumentor

NAMES = ("chat", "generate", "embed", "embeddings")
MODEL = "llama3.2:1b"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something about mocks, please."}]


def main() -> None:
    """Call every module-level function instrumented, then once more uninstrumented."""
    originals = {name: getattr(ollama, name) for name in NAMES}
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    wrapped = {name: getattr(ollama, name) is not originals[name] for name in NAMES}

    reply = ollama.chat(model=MODEL, messages=MESSAGES)
    chat_parts = list(ollama.chat(model=MODEL, messages=MESSAGES, stream=True))
    generated = ollama.generate(model=MODEL, prompt="Tell me about mocks.")
    gen_parts = list(ollama.generate(model=MODEL, prompt="Tell me about mocks.", stream=True))
    embedded = ollama.embed(model="nomic-embed-text", input=["a", "b"])
    legacy = ollama.embeddings(model="nomic-embed-text", prompt="a")
    instrumentor.uninstrument()
    restored = {name: getattr(ollama, name) is originals[name] for name in NAMES}
    ollama.chat(model=MODEL, messages=MESSAGES)  # after uninstrument: no span

    print(
        json.dumps(
            {
                "wrapped": wrapped,
                "restored": restored,
                "observed": {
                    "chat": reply.model_dump(exclude={"message", "created_at"}),
                    "chat_stream_final": chat_parts[-1].model_dump(exclude={"message", "created_at"}),
                    "generate": generated.model_dump(exclude={"response", "context", "created_at"}),
                    "generate_stream_final": gen_parts[-1].model_dump(
                        exclude={"response", "context", "created_at"}
                    ),
                    "embed_input_tokens": embedded.prompt_eval_count,
                    "embeddings_dimensions": len(legacy.embedding),
                },
                "spans": [
                    {"name": s.name, "kind": str(s.kind), "attributes": dict(s.attributes or {})}
                    for s in exporter.get_finished_spans()
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
