"""A plain Ollama app with no telemetry code: instrument it with `opentelemetry-instrument`.

    OLLAMA_HOST=http://127.0.0.1:8000 \
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=console OTEL_LOGS_EXPORTER=none \
    opentelemetry-instrument python examples/ollama_chat.py

(`otelbench mock --port 8000` serves that host; without OLLAMA_HOST the SDK uses a local
Ollama on 127.0.0.1:11434. OLLAMA_MODEL picks the model, default llama3.2:1b.)
"""

from __future__ import annotations

import os

import ollama


def main() -> None:
    """Ask one question through the module-level function, then stream a second answer."""
    model = os.environ.get("OLLAMA_MODEL", "llama3.2:1b")
    reply = ollama.chat(model=model, messages=[{"role": "user", "content": "Say hello in five words."}])
    print(reply.message.content)
    with ollama.Client() as client:
        stream = client.chat(
            model=model,
            messages=[{"role": "user", "content": "Count to five."}],
            options={"temperature": 0.2, "num_ctx": 2048},
            stream=True,
        )
        for part in stream:
            print(part.message.content, end="", flush=True)
        print()


if __name__ == "__main__":
    main()
