"""A plain Azure OpenAI app with no telemetry code: instrument it with `opentelemetry-instrument`.

    AZURE_OPENAI_ENDPOINT=http://127.0.0.1:8000 AZURE_OPENAI_API_KEY=anything \
    OPENAI_API_VERSION=2024-10-21 AZURE_OPENAI_DEPLOYMENT=my-gpt-4o-mini \
    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=console OTEL_LOGS_EXPORTER=none \
    opentelemetry-instrument python examples/azure_openai_chat.py

(`otelbench mock --port 8000` serves that endpoint as an Azure OpenAI resource.)
"""

from __future__ import annotations

import os

import openai


def main() -> None:
    """Ask one question, then stream a second answer, from one deployment."""
    deployment = os.environ.get("AZURE_OPENAI_DEPLOYMENT", "gpt-4o-mini")
    client = openai.AzureOpenAI()  # endpoint, key and API version from the environment
    reply = client.chat.completions.create(
        model=deployment, messages=[{"role": "user", "content": "Say hello in five words."}]
    )
    print(reply.choices[0].message.content)
    stream = client.chat.completions.create(
        model=deployment,
        messages=[{"role": "user", "content": "Count to five."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        # Azure's annotation chunks have no choices, or a choice without a delta.
        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()
    client.close()


if __name__ == "__main__":
    main()
