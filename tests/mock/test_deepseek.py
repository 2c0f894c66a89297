"""The official OpenAI SDK against the mock's DeepSeek API: thinking mode and the prompt cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from otelbench.mock import MockServer

from .conftest import OUTPUT_TOKENS, wait_for_records

MESSAGES: list[Any] = [{"role": "user", "content": "Say something about mocks, please."}]  # 8 tokens
NO_THINKING = {"thinking": {"type": "disabled"}}
TOOLS: Any = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"properties": {"city": {}}}}}
]


@pytest.fixture
def deepseek(mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.deepseek_base_url, api_key="ds-test-key", max_retries=0) as c:
        yield c


def _extra(model: Any) -> dict[str, Any]:
    return model.model_extra or {}


def test_thinking_streams_reasoning_before_the_answer(deepseek: openai.OpenAI, mock: MockServer) -> None:
    stream = deepseek.chat.completions.with_raw_response.create(
        model="ds-think", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    request_id = stream.headers["x-ds-trace-id"]
    chunks = list(stream.parse())
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = [_extra(d).get("reasoning_content") for d in deltas]
    content = [d.content for d in deltas]
    half = OUTPUT_TOKENS // 2
    # A role chunk, the reasoning, then the answer: never both in one chunk.
    assert reasoning[0] == "" and content[0] is None
    assert all(reasoning[1 : 1 + half]) and content[1 : 1 + half] == [None] * half
    assert all(content[1 + half : 1 + OUTPUT_TOKENS]) and not any(reasoning[1 + half :])
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == OUTPUT_TOKENS
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == half
    assert _extra(usage)["prompt_cache_miss_tokens"] == usage.prompt_tokens
    (record,) = wait_for_records(mock, "ds-think", 1)
    assert (record.protocol, record.path, record.request_id) == (
        "deepseek",
        "/deepseek/chat/completions",
        request_id,
    )
    assert (record.chunks, record.output_tokens, record.reasoning_tokens) == (
        OUTPUT_TOKENS,
        OUTPUT_TOKENS,
        half,
    )


def test_whole_reply_carries_its_reasoning(deepseek: openai.OpenAI) -> None:
    thinking = deepseek.chat.completions.create(model="ds-whole", messages=MESSAGES, max_tokens=4)
    message = thinking.choices[0].message
    assert message.content and _extra(message)["reasoning_content"]
    assert len(message.content.split()) == len(_extra(message)["reasoning_content"].split()) == 2
    plain = deepseek.chat.completions.create(model="ds-whole", messages=MESSAGES, extra_body=NO_THINKING)
    assert "reasoning_content" not in _extra(plain.choices[0].message)
    assert plain.usage is not None and plain.usage.completion_tokens_details is None
    # The legacy deepseek-chat alias does not think.
    chat = deepseek.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    assert "reasoning_content" not in _extra(chat.choices[0].message)


def test_a_repeated_prompt_reads_the_cache_unasked(deepseek: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "a prompt only this test sends " * 8}]
    first, again = (
        deepseek.chat.completions.create(model="ds-cache", messages=messages, extra_body=NO_THINKING)  # type: ignore[arg-type]
        for _ in range(2)
    )
    assert first.usage is not None and again.usage is not None
    assert _extra(first.usage)["prompt_cache_hit_tokens"] == 0
    hits = _extra(again.usage)["prompt_cache_hit_tokens"]
    assert hits == again.usage.prompt_tokens * 3 // 4 > 0
    assert _extra(again.usage)["prompt_cache_miss_tokens"] == again.usage.prompt_tokens - hits
    assert again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details.cached_tokens == hits


def test_thinking_then_a_tool_call(deepseek: openai.OpenAI) -> None:
    # The arguments, after the reasoning, still join into one JSON object.
    chunks = list(
        deepseek.chat.completions.create(model="ds-tool", messages=MESSAGES, tools=TOOLS, stream=True)
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert sum(1 for d in deltas if _extra(d).get("reasoning_content")) == OUTPUT_TOKENS // 2
    arguments = "".join(
        call.function.arguments or "" for d in deltas for call in d.tool_calls or () if call.function
    )
    assert list(json.loads(arguments)) == ["city"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    whole = deepseek.chat.completions.create(model="ds-tool", messages=MESSAGES, tools=TOOLS)
    (call,) = whole.choices[0].message.tool_calls or ()
    assert list(json.loads(call.function.arguments)) == ["city"]  # type: ignore[union-attr]


def test_errors_are_openai_shaped_with_deepseeks_request_id(deepseek: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        deepseek.chat.completions.create(model="ds-bad", messages=[])
    assert raised.value.response.headers["x-ds-trace-id"].startswith("req_")
    body: Any = raised.value.body
    assert body["param"] == "messages"
