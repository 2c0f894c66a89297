"""A plain Anthropic app with no telemetry code: instrument it with `opentelemetry-instrument`.

    ANTHROPIC_BASE_URL=http://127.0.0.1:8000 ANTHROPIC_API_KEY=sk-ant-anything \
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=console OTEL_LOGS_EXPORTER=none \
    opentelemetry-instrument python examples/anthropic_chat.py

(`otelbench mock --port 8000` serves that base URL.)
"""

from __future__ import annotations

import anthropic


def main() -> None:
    """Ask one question, then stream a second answer with the SDK's stream helper."""
    client = anthropic.Anthropic()
    reply = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "Say hello in five words."}],
    )
    print("".join(block.text for block in reply.content if block.type == "text"))
    with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "Count to five."}],
    ) as stream:
        for text in stream.text_stream:
            print(text, end="", flush=True)
    print()
    client.close()


if __name__ == "__main__":
    main()
