"""The legacy Completions API (``client.completions.create``), which vLLM and other servers still
serve: one ``text_completion`` span per call, streamed or not, with the conventions' metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from otelbench.mock import MockServer
from otelbench_instrumentation import OpenAIInstrumentor, semconv

from ..conftest import MOCK_OUTPUT_TOKENS, MOCK_TTFT_S
from .conftest import API_KEY, Otel, instrumented_otel, only_span

MODEL = "gpt-3.5-turbo-instruct"
PROMPT = "Write a haiku about telemetry."


def test_completion_span_attributes_and_metrics(otel: Otel, client: openai.OpenAI) -> None:
    result = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=5, temperature=0.2, stop=["\n"])
    assert isinstance(result, openai.types.Completion)
    span = only_span(otel)
    a = span.attributes or {}
    assert span.name == f"text_completion {MODEL}"
    assert a[semconv.GEN_AI_OPERATION_NAME] == semconv.OP_TEXT_COMPLETION
    assert a[semconv.GEN_AI_PROVIDER_NAME] == semconv.PROVIDER_OPENAI
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 5 and a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert tuple(a[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ("\n",)  # type: ignore[arg-type]
    assert a[semconv.GEN_AI_RESPONSE_ID] == result.id and result.id.startswith("cmpl-")
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == result.model
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("length",)  # type: ignore[arg-type]
    assert result.usage is not None
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens == 5
    assert semconv.GEN_AI_INPUT_MESSAGES not in a and semconv.GEN_AI_OUTPUT_MESSAGES not in a
    (duration,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert duration.attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OP_TEXT_COMPLETION
    usage = {p.attributes[semconv.GEN_AI_TOKEN_TYPE]: p.sum for p in otel.points(semconv.METRIC_TOKEN_USAGE)}
    assert usage == {"input": result.usage.prompt_tokens, "output": 5}
    assert otel.points(semconv.METRIC_TIME_TO_FIRST_CHUNK) == []


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_streamed_completion_is_timed_from_its_first_text(
    otel: Otel, mock_server: MockServer, is_async: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": 64,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    def sync_run() -> list[Any]:
        with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            stream = c.completions.create(**kwargs)
            assert isinstance(stream, openai.Stream)
            return list(stream)

    async def async_run() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            stream = await c.completions.create(**kwargs)
            assert isinstance(stream, openai.AsyncStream)
            return [chunk async for chunk in stream]

    chunks = asyncio.run(async_run()) if is_async else sync_run()
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert len(texts) == MOCK_OUTPUT_TOKENS
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_REQUEST_STREAM] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[semconv.GEN_AI_RESPONSE_ID] == chunks[0].id
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens == MOCK_OUTPUT_TOKENS
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttft, float) and ttft >= MOCK_TTFT_S
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_CHUNK)
    assert point.sum == pytest.approx(ttft)
    (per_chunk,) = otel.points(semconv.METRIC_TIME_PER_OUTPUT_CHUNK)
    assert per_chunk.count == 1  # the stream's mean gap (chunk timing "mean")


def test_stream_closed_early_and_raw_response_count_once(otel: Otel, client: openai.OpenAI) -> None:
    stream = client.completions.create(model=MODEL, prompt=PROMPT, stream=True)
    next(iter(stream))
    stream.close()
    raw = client.completions.with_raw_response.create(model=MODEL, prompt=PROMPT, max_tokens=3)
    parsed = raw.parse()
    spans = otel.spans()
    assert [s.name for s in spans] == [f"text_completion {MODEL}"] * 2
    early, whole = (s.attributes or {} for s in spans)
    assert early[semconv.STREAM_CLOSED_EARLY] is True and early[semconv.STREAM_CHUNK_COUNT] == 1
    assert whole[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == parsed.usage.completion_tokens == 3  # type: ignore[union-attr]


def test_prompt_and_completion_text_when_capture_is_on(mock_server: MockServer) -> None:
    with (
        instrumented_otel(OpenAIInstrumentor(), capture_content=True) as otel,
        openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c,
    ):
        result = c.completions.create(model=MODEL, prompt=[PROMPT, "and another"], max_tokens=4)
        stream = c.completions.create(model=MODEL, prompt=PROMPT, stream=True)
        streamed = "".join(ch.choices[0].text for ch in stream if ch.choices)
        plain, stream_span = otel.spans()
    prompts = json.loads(str((plain.attributes or {})[semconv.GEN_AI_INPUT_MESSAGES]))
    assert prompts == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]},
        {"role": "user", "parts": [{"type": "text", "content": "and another"}]},
    ]
    for span, text in ((plain, result.choices[0].text), (stream_span, streamed)):
        output = json.loads(str((span.attributes or {})[semconv.GEN_AI_OUTPUT_MESSAGES]))
        assert output[0]["parts"][0]["content"] == text
        assert API_KEY not in span.to_json()
