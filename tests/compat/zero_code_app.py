"""An app with no telemetry code, run under ``opentelemetry-instrument`` in the lowest-versions
virtualenv: one call per provider SDK against the mock at ``sys.argv[1]``."""

from __future__ import annotations

import sys

import anthropic
import ollama
import openai

BASE = sys.argv[1]
KEY = "sk-zero-code-compat-SECRET"
MESSAGES = [{"role": "user", "content": "hello there"}]

with openai.OpenAI(base_url=f"{BASE}/v1", api_key=KEY) as client:
    client.chat.completions.create(model="zero-openai", messages=MESSAGES)
    for _ in client.chat.completions.create(
        model="zero-openai-stream", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        pass
with anthropic.Anthropic(base_url=BASE, api_key=KEY) as client:
    client.messages.create(model="zero-anthropic", max_tokens=64, messages=MESSAGES)
for _ in ollama.Client(host=BASE).chat(model="zero-ollama-stream", messages=MESSAGES, stream=True):
    pass
