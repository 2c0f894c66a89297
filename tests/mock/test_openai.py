"""The official OpenAI SDK against the mock: every payload parses, timings match the latency model."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from typing import Any

import openai
import pytest

from otelbench.mock import Fault, MockServer

from .conftest import OUTPUT_TOKENS, hdrs, record_for, records_for_model, wait_for_records, within_attempts

MESSAGES: list[Any] = [
    {"role": "user", "content": "Say something about mocks, please."}
]  # 35 chars -> 8 tokens
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def client(mock: MockServer) -> Any:
    with openai.OpenAI(base_url=mock.openai_base_url, api_key="sk-test", max_retries=0) as c:
        yield c


# -- chat completions ----------------------------------------------------------------------------------


def test_chat_json(client: openai.OpenAI, mock: MockServer) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    choice = completion.choices[0]
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content and len(choice.message.content.split()) == OUTPUT_TOKENS
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        8,
        OUTPUT_TOKENS,
        8 + OUTPUT_TOKENS,
    )
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0

    record = record_for(mock, completion._request_id)
    assert (record.protocol, record.path, record.model, record.stream) == (
        "openai",
        "/v1/chat/completions",
        "gpt-4o-mini",
        False,
    )
    assert (record.status, record.fault, record.chunks) == (200, None, 0)
    assert (record.input_tokens, record.output_tokens) == (8, OUTPUT_TOKENS)
    assert record.first_byte_ns == record.last_byte_ns
    assert record.first_byte_ns is not None and record.first_byte_ns > record.arrival_ns


def test_chat_stream_chunk_sequence(client: openai.OpenAI, mock: MockServer) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    request_id = stream.response.headers["x-request-id"]
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert chunks[0].choices[0].delta.role == "assistant" and not chunks[0].choices[0].delta.content
    content = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert len(content) == OUTPUT_TOKENS and all(content)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == OUTPUT_TOKENS
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)

    record = record_for(mock, request_id)
    assert record.stream and record.chunks == OUTPUT_TOKENS and record.status == 200
    assert (
        record.headers_ns is not None and record.first_byte_ns is not None and record.last_byte_ns is not None
    )
    # Equal when the server fell behind and wrote the overdue chunks together.
    assert record.arrival_ns < record.headers_ns < record.first_byte_ns <= record.last_byte_ns


def test_chat_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_chat_async_json_and_stream(mock: MockServer) -> None:
    async def main() -> tuple[str | None, list[str]]:
        async with openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as c:
            completion = await c.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            stream = await c.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            texts = [
                ch.choices[0].delta.content
                async for ch in stream
                if ch.choices and ch.choices[0].delta.content
            ]
            return completion.choices[0].message.content, texts

    content, texts = asyncio.run(main())
    assert content is not None and len(content.split()) == OUTPUT_TOKENS
    assert len(texts) == OUTPUT_TOKENS


def test_chat_stream_helper_final_completion(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "".join(deltas)
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens == OUTPUT_TOKENS


def test_chat_stream_helper_async(mock: MockServer) -> None:
    async def main() -> str | None:
        async with (
            openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="k") as c,
            c.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream,
        ):
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
            return final.choices[0].message.content

    text = asyncio.run(main())
    assert text is not None and len(text.split()) == OUTPUT_TOKENS


def test_max_tokens_caps_output_with_length(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=3, extra_headers=hdrs(output_tokens=50)
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=2,
            stream=True,
            extra_headers=hdrs(output_tokens=50),
        )
    )
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 2
    assert chunks[-1].choices[0].finish_reason == "length"


def test_tool_call_json_and_stream(client: openai.OpenAI, mock: MockServer) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=[WEATHER_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls and calls[0].type == "function" and calls[0].function.name == "get_weather"
    assert set(json.loads(calls[0].function.arguments)) == {"city"}

    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
    )
    deltas = [c.choices[0].delta.tool_calls for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert len(deltas) == OUTPUT_TOKENS
    first = deltas[0][0]
    assert first.index == 0 and first.id and first.type == "function" and first.function
    assert first.function.name == "get_weather"
    arguments = "".join((d[0].function.arguments or "") for d in deltas if d[0].function)
    assert json.loads(arguments)["city"]

    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as helper:
        final = helper.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    tool_calls = final.choices[0].message.tool_calls
    assert tool_calls and json.loads(tool_calls[0].function.arguments)["city"]

    # After the tool result the model answers in text.
    follow_up = [
        *MESSAGES,
        {"role": "assistant", "tool_calls": [calls[0].model_dump()]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=follow_up, tools=[WEATHER_TOOL])
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content


def test_reasoning_and_cached_tokens(client: openai.OpenAI, mock: MockServer) -> None:
    reasoning = client.chat.completions.create(model="o4-mini-reasoning", messages=MESSAGES)
    assert reasoning.usage and reasoning.usage.completion_tokens_details
    assert reasoning.usage.completion_tokens_details.reasoning_tokens == OUTPUT_TOKENS // 2
    assert reasoning.usage.completion_tokens == OUTPUT_TOKENS + OUTPUT_TOKENS // 2

    key = f"cache-{time.monotonic_ns()}"
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, prompt_cache_key=key)
    second = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, prompt_cache_key=key)
    assert (
        first.usage
        and first.usage.prompt_tokens_details
        and first.usage.prompt_tokens_details.cached_tokens == 0
    )
    assert second.usage and second.usage.prompt_tokens_details
    assert second.usage.prompt_tokens_details.cached_tokens == 8 * 3 // 4
    assert record_for(mock, second._request_id).cache_read_tokens == 6


# -- responses ---------------------------------------------------------------------------------------------


def test_responses_create(client: openai.OpenAI, mock: MockServer) -> None:
    response = client.responses.create(
        model="gpt-4o-mini", input="Tell me about mocks.", instructions="Be brief."
    )
    assert response.object == "response" and response.status == "completed"
    assert len(response.output_text.split()) == OUTPUT_TOKENS
    assert response.output[0].type == "message"
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        7,
        OUTPUT_TOKENS,
        7 + OUTPUT_TOKENS,
    )
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    record = record_for(mock, response._request_id)
    assert record.path == "/v1/responses" and record.input_tokens == 7


def _message_events(deltas: int) -> list[str]:
    """The event types of a streamed message output item with ``deltas`` text deltas."""
    return [
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]


def test_responses_raw_stream_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        *_message_events(OUTPUT_TOKENS),
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage and completed.response.usage.output_tokens == OUTPUT_TOKENS
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert completed.response.output_text == deltas


def test_responses_stream_helper_sync_and_async(client: openai.OpenAI, mock: MockServer) -> None:
    with client.responses.stream(model="gpt-4o-mini", input="hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == text and final.status == "completed"

    async def main() -> str:
        async with (
            openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="k") as c,
            c.responses.stream(model="gpt-4o-mini", input="hi") as s,
        ):
            async for _ in s:
                pass
            return (await s.get_final_response()).output_text

    assert len(asyncio.run(main()).split()) == OUTPUT_TOKENS


def test_responses_function_call(client: openai.OpenAI) -> None:
    tool: Any = {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"term": {"type": "string"}}},
    }
    response = client.responses.create(model="gpt-4o-mini", input="look it up", tools=[tool])
    call = response.output[0]
    assert call.type == "function_call" and call.name == "lookup"
    assert json.loads(call.arguments)["term"]
    with client.responses.stream(model="gpt-4o-mini", input="look it up", tools=[tool]) as stream:
        final = stream.get_final_response()
    streamed = final.output[0]
    assert streamed.type == "function_call" and json.loads(streamed.arguments)["term"]


def test_responses_max_output_tokens_is_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4o-mini", input="hi", max_output_tokens=16, extra_headers=hdrs(output_tokens=40)
    )
    assert response.status == "incomplete"
    assert response.incomplete_details and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage and response.usage.output_tokens == 16


@pytest.mark.parametrize(
    ("kwargs", "param", "code"),
    [
        ({"extra_body": {"seed": 3}}, "seed", "unknown_parameter"),
        ({"max_output_tokens": 8}, "max_output_tokens", "integer_below_min_value"),
    ],
)
def test_responses_refuses_what_openai_refuses(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str, code: str
) -> None:
    # Chat Completions' seed has no Responses field, and 16 is its smallest output limit.
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-4o-mini", input="hi", **kwargs)
    body: Any = raised.value.body
    assert (body["param"], body["code"], body["type"]) == (param, code, "invalid_request_error")
    assert param in body["message"]


# -- responses: reasoning --------------------------------------------------------------------------------

THOUGHT = OUTPUT_TOKENS // 2  # a reasoning stream's first half is reasoning


def test_responses_reasoning_model_has_a_hidden_reasoning_item(client: openai.OpenAI) -> None:
    # Without a summary the reasoning is hidden: an item without text before the answer, and
    # OUTPUT_TOKENS // 2 reasoning tokens on top of the answer's.
    response = client.responses.create(model="o4-mini-reasoning", input="hi")
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.summary == [] and reasoning.encrypted_content
    assert message.type == "message" and len(response.output_text.split()) == OUTPUT_TOKENS
    assert response.reasoning and (response.reasoning.effort, response.reasoning.summary) == ("medium", None)
    usage = response.usage
    assert usage and usage.output_tokens == OUTPUT_TOKENS + THOUGHT
    assert usage.output_tokens_details.reasoning_tokens == THOUGHT
    events = list(client.responses.create(model="o4-mini-reasoning", input="hi", stream=True))
    assert [e.type for e in events][:6] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == OUTPUT_TOKENS and {e.output_index for e in deltas} == {1}


@pytest.mark.parametrize(
    ("model", "reasoning", "kind"),
    [
        ("o4-mini-reasoning", {"effort": "low", "summary": "auto"}, "summary"),
        ("gpt-oss-120b", None, "text"),
    ],
)
def test_responses_reasoning_streams_before_the_answer(
    client: openai.OpenAI, mock: MockServer, model: str, reasoning: Any, kind: str
) -> None:
    # A summary (asked for) or gpt-oss's raw chain of thought streams first: the first half of the
    # output, counted in it, in a reasoning item at output_index 0; the answer is item 1.
    extra: Any = {"reasoning": reasoning} if reasoning else {}
    stream = client.responses.with_raw_response.create(model=model, input="hi", stream=True, **extra)
    events = list(stream.parse())
    types = [e.type for e in events]
    if kind == "summary":
        part = "response.reasoning_summary_part"
        opening = [f"{part}.added", *["response.reasoning_summary_text.delta"] * THOUGHT]
        closing = ["response.reasoning_summary_text.done", f"{part}.done"]
    else:
        opening = ["response.content_part.added", *["response.reasoning_text.delta"] * THOUGHT]
        closing = ["response.reasoning_text.done", "response.content_part.done"]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        *opening,
        *closing,
        "response.output_item.done",
        *_message_events(OUTPUT_TOKENS - THOUGHT),
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1]
    assert final.type == "response.completed"
    item, message = final.response.output
    assert item.type == "reasoning" and message.type == "message"
    thought = "".join(
        e.delta for e in events if e.type.startswith("response.reasoning") and e.type.endswith(".delta")
    )
    assert len(thought.split()) == THOUGHT
    assert (item.summary[0].text if kind == "summary" else (item.content or [])[0].text) == thought
    answer = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.response.output_text == answer and len(answer.split()) == OUTPUT_TOKENS - THOUGHT
    usage = final.response.usage
    assert usage and usage.output_tokens == OUTPUT_TOKENS
    assert usage.output_tokens_details.reasoning_tokens == THOUGHT
    record = record_for(mock, stream.headers["x-request-id"])
    assert (record.output_tokens, record.reasoning_tokens, record.chunks) == (
        OUTPUT_TOKENS,
        THOUGHT,
        OUTPUT_TOKENS,
    )
    # The whole response holds the same two items; the stream helper rebuilds them.
    whole = client.responses.create(model=model, input="hi", **extra)
    assert [o.type for o in whole.output] == ["reasoning", "message"]
    assert len(whole.output_text.split()) == OUTPUT_TOKENS - THOUGHT
    with client.responses.stream(model=model, input="hi", **extra) as helper:
        rebuilt = helper.get_final_response()
    assert [o.type for o in rebuilt.output] == ["reasoning", "message"]


def test_responses_reasoning_then_a_function_call(client: openai.OpenAI) -> None:
    tool: Any = {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"term": {"type": "string"}}},
    }
    summary: Any = {"summary": "detailed"}
    events = list(
        client.responses.create(
            model="o4-mini-reasoning", input="look", tools=[tool], reasoning=summary, stream=True
        )
    )
    arguments = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(arguments) == OUTPUT_TOKENS - THOUGHT and {e.output_index for e in arguments} == {1}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1]
    assert final.type == "response.completed"
    call = final.response.output[1]
    assert call.type == "function_call" and json.loads(call.arguments)["term"]
    assert "".join(e.delta for e in arguments) == call.arguments


@pytest.mark.parametrize(
    ("model", "reasoning", "param", "code"),
    [
        ("gpt-4o-mini", {"effort": "low"}, "reasoning.effort", "unsupported_parameter"),
        ("o4-mini-reasoning", {"effort": "maximal"}, "reasoning.effort", "invalid_value"),
        ("o4-mini-reasoning", {"summary": "brief"}, "reasoning.summary", "invalid_value"),
    ],
)
def test_responses_refuses_reasoning_it_cannot_do(
    client: openai.OpenAI, model: str, reasoning: Any, param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=model, input="hi", reasoning=reasoning)
    body: Any = raised.value.body
    assert (body["param"], body["code"]) == (param, code)


def test_responses_effort_none_does_not_reason(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-5.1", input="hi", reasoning={"effort": "none"})
    assert [o.type for o in response.output] == ["message"]
    assert response.usage and response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.reasoning and response.reasoning.effort == "none"


@pytest.mark.parametrize("after", [2, OUTPUT_TOKENS + 5])
def test_error_fault_ends_the_stream_with_an_error_event(
    client: openai.OpenAI, mock: MockServer, after: int
) -> None:
    # After min(N, all) content chunks comes OpenAI's error event, on a properly ended stream.
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-err", messages=MESSAGES, stream=True, extra_headers=hdrs(fault=f"error:{after}")
    )
    contents: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                contents.append(chunk.choices[0].delta.content)
    assert len(contents) == min(after, OUTPUT_TOKENS)
    assert "injected by the mock" in raised.value.message
    record = record_for(mock, raw.headers["x-request-id"])
    assert (record.status, record.fault, record.chunks) == (200, f"error:{after}", len(contents))
    assert not record.client_closed
    # A whole reply has no stream to fail in: a 500.
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-err", messages=MESSAGES, extra_headers=hdrs(fault="error:0")
        )


# -- legacy completions ----------------------------------------------------------------------------------------


def test_completion_json_defaults_to_16_tokens(client: openai.OpenAI, mock: MockServer) -> None:
    capped = client.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say something about mocks, please.",
        extra_headers=hdrs(output_tokens=40),
    )
    assert capped.object == "text_completion" and capped.id.startswith("cmpl-")
    assert capped.choices[0].finish_reason == "length" and len(capped.choices[0].text.split()) == 16
    assert capped.usage is not None and (capped.usage.prompt_tokens, capped.usage.completion_tokens) == (
        8,
        16,
    )
    whole = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=[1, 2, 3], max_tokens=100)
    assert whole.choices[0].finish_reason == "stop" and len(whole.choices[0].text.split()) == OUTPUT_TOKENS
    assert whole.usage is not None and whole.usage.prompt_tokens == 3  # token ids count as themselves
    record = record_for(mock, whole._request_id)
    assert (record.protocol, record.path, record.output_tokens) == (
        "openai",
        "/v1/completions",
        OUTPUT_TOKENS,
    )


def test_completion_stream_chunk_sequence(client: openai.OpenAI, mock: MockServer) -> None:
    stream = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="hi", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    texts = [c.choices[0].text for c in chunks[:-2]]
    assert len(texts) == OUTPUT_TOKENS and all(texts)  # no role chunk: text from the first chunk
    assert (chunks[-2].choices[0].text, chunks[-2].choices[0].finish_reason) == ("", "stop")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == OUTPUT_TOKENS
    assert {c.id for c in chunks} == {chunks[0].id} and {c.object for c in chunks} == {"text_completion"}
    record = record_for(mock, stream.response.headers["x-request-id"])
    assert record.stream and record.chunks == OUTPUT_TOKENS


def test_completion_rejects_a_missing_or_malformed_prompt(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.completions.create(model="m", prompt=None)  # type: ignore[arg-type]
    assert missing.value.param == "prompt"
    with pytest.raises(openai.BadRequestError) as malformed:
        client.completions.create(model="m", prompt=[{"text": "x"}])  # type: ignore[list-item]
    assert malformed.value.param == "prompt"


# -- embeddings, models ----------------------------------------------------------------------------------------


def test_embeddings_default_base64_and_float(client: openai.OpenAI, mock: MockServer) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert [d.index for d in default.data] == [0, 1]
    assert all(len(d.embedding) == 1536 for d in default.data)
    assert default.usage.prompt_tokens == 2 and default.usage.total_tokens == 2
    norm = sum(v * v for v in default.data[0].embedding)
    assert abs(norm - 1.0) < 1e-3

    floats = client.embeddings.create(
        model="text-embedding-3-small", input="alpha", encoding_format="float", dimensions=64
    )
    assert len(floats.data[0].embedding) == 64 and isinstance(floats.data[0].embedding[0], float)
    again = client.embeddings.create(model="text-embedding-3-small", input=["alpha"], dimensions=64)
    assert again.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert record_for(mock, default._request_id).path == "/v1/embeddings"


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids


# -- errors and retries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (403, openai.PermissionDeniedError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (422, openai.UnprocessableEntityError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_error_statuses_map_to_sdk_errors(
    client: openai.OpenAI,
    mock: MockServer,
    code: int,
    error_class: type[openai.APIStatusError],
    error_type: str,
) -> None:
    with pytest.raises(error_class) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_headers=hdrs(fault=code))
    err = info.value
    assert err.status_code == code and err.type == error_type
    assert isinstance(err.body, dict) and "injected" in err.body["message"]
    record = record_for(mock, err.request_id)
    assert (record.status, record.fault) == (code, str(code))


def test_429_with_retry_after_is_retried(mock: MockServer) -> None:
    model = "gpt-retry-429"
    mock.script(model, [Fault.status(429, retry_after=0.01), Fault.ok()])
    with openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=2) as c:
        start = time.perf_counter()
        completion = c.chat.completions.create(model=model, messages=MESSAGES)
        elapsed = time.perf_counter() - start
    assert completion.choices[0].message.content
    assert [r.status for r in records_for_model(mock, model)] == [429, 200]
    # The SDK honoured retry-after (10 ms) instead of its 0.5 s default backoff.
    assert elapsed < 0.3


def test_retry_after_header_is_sent(mock: MockServer) -> None:
    with (
        openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=1) as c,
        pytest.raises(openai.RateLimitError) as info,
    ):
        c.chat.completions.create(
            model="gpt-429", messages=MESSAGES, extra_headers=hdrs(fault=429, retry_after=0.02)
        )
    headers = info.value.response.headers
    assert headers["retry-after"] == "0.02" and headers["retry-after-ms"] == "20"
    assert [r.status for r in records_for_model(mock, "gpt-429")][-2:] == [429, 429]


def test_script_for_any_model_then_normal(client: openai.OpenAI, mock: MockServer) -> None:
    mock.script(None, [Fault.status(503)])
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-any-1", messages=MESSAGES)
    assert client.chat.completions.create(model="gpt-any-1", messages=MESSAGES).choices


def test_stream_disconnect_after_n_chunks(client: openai.OpenAI, mock: MockServer) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=hdrs(fault="disconnect:3")
    )
    request_id = stream.response.headers["x-request-id"]
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen.append(chunk.choices[0].delta.content)
    assert len(seen) == 3
    record = record_for(mock, request_id)
    assert record.fault == "disconnect:3" and record.chunks == 3 and not record.client_closed


def test_malformed_chunk_raises_json_error_from_the_sdk(client: openai.OpenAI, mock: MockServer) -> None:
    model = "gpt-malformed"
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, extra_headers=hdrs(fault="malformed:2")
    )
    seen: list[str] = []
    # The SDK hands the broken SSE event to json.loads and lets its error through unwrapped.
    with stream, pytest.raises(json.JSONDecodeError):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen.append(chunk.choices[0].delta.content)
    assert len(seen) == 2
    with pytest.raises(json.JSONDecodeError):
        client.chat.completions.create(
            model=model, messages=MESSAGES, extra_headers=hdrs(fault="malformed:0")
        )
    with (
        client.responses.create(
            model=model, input="hi", stream=True, extra_headers=hdrs(fault="malformed:1")
        ) as events,
        pytest.raises(json.JSONDecodeError),
    ):
        for _ in events:
            pass
    faults = [(r.status, r.fault) for r in wait_for_records(mock, model, 3)]
    assert faults == [(200, "malformed:2"), (200, "malformed:0"), (200, "malformed:1")]


def test_malformed_chunk_async(mock: MockServer) -> None:
    async def main() -> int:
        async with openai.AsyncOpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as c:
            stream = await c.chat.completions.create(
                model="gpt-malformed-async",
                messages=MESSAGES,
                stream=True,
                extra_headers=hdrs(fault="malformed:3"),
            )
            seen = 0
            async with stream:
                with pytest.raises(json.JSONDecodeError):
                    async for chunk in stream:
                        seen += bool(chunk.choices and chunk.choices[0].delta.content)
            return seen

    assert asyncio.run(main()) == 3


def test_hang_triggers_client_timeout(mock: MockServer) -> None:
    with (
        openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0, timeout=0.2) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.chat.completions.create(model="gpt-hang", messages=MESSAGES, extra_headers=hdrs(fault="hang:5"))
    deadline = time.monotonic() + 2
    while not records_for_model(mock, "gpt-hang") and time.monotonic() < deadline:
        time.sleep(0.01)
    (record,) = records_for_model(mock, "gpt-hang")
    assert record.fault == "hang:5" and record.client_closed and record.first_byte_ns is None


# -- latency fidelity ---------------------------------------------------------------------------------------------


@pytest.fixture
def timing_client(timing_mock: MockServer) -> Any:
    with openai.OpenAI(base_url=timing_mock.openai_base_url, api_key="sk-test", max_retries=0) as c:
        yield c


def test_stream_ttft_and_itl_match_configuration(
    timing_client: openai.OpenAI, timing_mock: MockServer
) -> None:
    client, mock = timing_client, timing_mock
    ttft_ms, itl_ms, tokens = 30.0, 2.0, 20
    client.models.list()  # warm the keep-alive connection

    def check() -> None:
        rows: list[tuple[float, float, float, float]] = []  # client ttft, arrival->seen, server ttft
        gaps: list[float] = []
        for _ in range(12):
            start = time.perf_counter_ns()
            stream = client.chat.completions.create(
                model="gpt-timing",
                messages=MESSAGES,
                stream=True,
                extra_headers=hdrs(ttft_ms=ttft_ms, itl_ms=itl_ms, output_tokens=tokens),
            )
            seen: list[int] = []
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(time.perf_counter_ns())
            record = record_for(mock, stream.response.headers["x-request-id"])
            assert record.first_byte_ns is not None and len(seen) == tokens
            rows.append(
                (
                    (seen[0] - start) / 1e6,
                    (seen[0] - record.arrival_ns) / 1e6,
                    (record.first_byte_ns - record.arrival_ns) / 1e6,
                    (record.arrival_ns - start) / 1e6,
                )
            )
            gaps.extend((b - a) / 1e6 for a, b in itertools.pairwise(seen))
        client_ttft, seen_ttft, server_ttft, _ = (statistics.median(col) for col in zip(*rows, strict=True))
        # What the server did: first content chunk handed to the socket at arrival + ttft.
        assert abs(server_ttft - ttft_ms) < 0.6, rows
        # What the client saw from the request's arrival (the SDK needs ~0.5-1 ms to parse a chunk).
        assert abs(seen_ttft - ttft_ms) < 2.0, rows
        # End to end it can only be later (the SDK spends a few ms before the request is on the wire).
        assert client_ttft >= ttft_ms
        assert abs(statistics.median(gaps) - itl_ms) < 0.5, gaps

    within_attempts(check)


def test_json_body_arrives_after_ttft_plus_itls(
    timing_client: openai.OpenAI, timing_mock: MockServer
) -> None:
    client, mock = timing_client, timing_mock

    def check() -> None:
        delays = []
        for _ in range(5):
            completion = client.chat.completions.create(
                model="gpt-timing-json",
                messages=MESSAGES,
                extra_headers=hdrs(ttft_ms=20, itl_ms=1, output_tokens=11),
            )
            record = record_for(mock, completion._request_id)
            assert record.first_byte_ns is not None
            delays.append((record.first_byte_ns - record.arrival_ns) / 1e6)
        assert min(delays) >= 30.0, delays  # never early
        assert abs(statistics.median(delays) - 30.0) < 0.6, delays

    within_attempts(check)
