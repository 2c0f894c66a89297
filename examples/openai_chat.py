"""A plain OpenAI app with no telemetry code: instrument it with `opentelemetry-instrument`.

    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-anything \
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=console OTEL_LOGS_EXPORTER=none \
    opentelemetry-instrument python examples/openai_chat.py

(`otelbench mock --port 8000` serves that base URL.)
"""

from __future__ import annotations

import openai


def main() -> None:
    """Ask one question, then stream a second answer."""
    client = openai.OpenAI()
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello in five words."}]
    )
    print(reply.choices[0].message.content)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Count to five."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    client.close()


if __name__ == "__main__":
    main()
