"""Canned OpenAI chat.completions answers served from memory through ``httpx2.MockTransport``.

Shared by the in-process overhead target and the peer-comparison worker, which runs in other
virtualenvs and loads this file by path: it must import nothing but the standard library and
``httpx2`` (what the ``openai`` SDK itself depends on).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2


def completion_body() -> bytes:
    """A typical non-streamed ChatCompletion as the API returns it."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_bench",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20},
        }
    ).encode()


def stream_body(chunks: int) -> bytes:
    """An SSE body: a role chunk, ``chunks`` content chunks, a finish chunk, a usage chunk, [DONE]."""

    def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        data = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_bench",
            "choices": choices,
            "usage": usage,
        }
        return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    parts = [event(choice({"role": "assistant", "content": ""}))]
    parts += [event(choice({"content": f" tok{i}"})) for i in range(chunks)]
    parts.append(event(choice({}, "stop")))
    parts.append(event([], {"prompt_tokens": 11, "completion_tokens": chunks, "total_tokens": 11 + chunks}))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def make_handler(chunks: int) -> Callable[[httpx2.Request], httpx2.Response]:
    """A MockTransport handler answering chat.completions (streamed or not) from memory."""
    completion = completion_body()
    stream = stream_body(chunks)
    json_headers = {"content-type": "application/json"}
    sse_headers = {"content-type": "text/event-stream"}

    def handler(request: httpx2.Request) -> httpx2.Response:
        # A substring test instead of json.loads keeps the handler's own cost small and constant.
        if b'"stream":true' in request.content.replace(b" ", b""):
            return httpx2.Response(200, content=stream, headers=sse_headers)
        return httpx2.Response(200, content=completion, headers=json_headers)

    return handler
