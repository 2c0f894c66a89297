"""The official OpenAI SDK against the mock's Mistral API: Mistral's strict schema and its streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from otelbench.mock import MockServer

from .conftest import OUTPUT_TOKENS, wait_for_records

MESSAGES: list[Any] = [{"role": "user", "content": "Say something about mocks, please."}]  # 8 tokens


@pytest.fixture
def mistral(mock: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=mock.mistral_base_url, api_key="mistral-test-key", max_retries=0) as c:
        yield c


def test_chat_json(mistral: openai.OpenAI, mock: MockServer) -> None:
    completion = mistral.chat.completions.create(model="mistral-json", messages=MESSAGES, max_tokens=4)
    assert completion.model == "mistral-json"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    (record,) = wait_for_records(mock, "mistral-json", 1)
    assert (record.protocol, record.path, record.status) == ("mistral", "/mistral/v1/chat/completions", 200)


def test_stream_carries_usage_with_the_finish_reason_unasked(mistral: openai.OpenAI) -> None:
    chunks = list(mistral.chat.completions.create(model="mistral-stream", messages=MESSAGES, stream=True))
    # Every chunk has its choice: no separate usage chunk, and no usage before the end.
    assert all(len(c.choices) == 1 for c in chunks)
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (8, OUTPUT_TOKENS)
    assert sum(1 for c in chunks if c.choices[0].delta.content) == OUTPUT_TOKENS
    assert {c.id for c in chunks} == {chunks[0].id}


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("stream_options", {"stream": True, "stream_options": {"include_usage": True}}),
        ("max_completion_tokens", {"max_completion_tokens": 8}),
        ("seed", {"seed": 7}),
    ],
)
def test_openai_only_fields_are_refused_by_name(
    mistral: openai.OpenAI, field: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        mistral.chat.completions.create(model="mistral-strict", messages=MESSAGES, **kwargs)
    body: Any = raised.value.body
    (detail,) = body["message"]["detail"]
    assert detail["type"] == "extra_forbidden"
    assert detail["loc"] == ["body", field]
    assert body["type"] == "invalid_request_error"


def test_mistral_own_fields_pass(mistral: openai.OpenAI) -> None:
    completion = mistral.chat.completions.create(
        model="mistral-own",
        messages=MESSAGES,
        temperature=0.2,
        extra_body={"random_seed": 7, "safe_prompt": False},
    )
    assert completion.choices[0].finish_reason == "stop"


def test_the_openai_api_is_not_strict(mock: MockServer) -> None:
    # The same request the Mistral API refuses is fine on the mock's OpenAI API.
    with openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as c:
        c.chat.completions.create(model="openai-lenient", messages=MESSAGES, seed=7, max_completion_tokens=8)
