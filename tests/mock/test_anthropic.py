"""The official Anthropic SDK against the mock."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from typing import Any

import anthropic
import httpx2
import pytest

from otelbench.mock import Fault, MockServer

from .conftest import OUTPUT_TOKENS, hdrs, record_for, records_for_model, wait_for_records, within_attempts

MODEL = "claude-haiku-4-5"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something about mocks, please."}]  # 8 tokens
TOOL: Any = {
    "name": "get_weather",
    "description": "weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def client(mock: MockServer) -> Any:
    with anthropic.Anthropic(base_url=mock.anthropic_base_url, api_key="sk-ant", max_retries=0) as c:
        yield c


def test_messages_create(client: anthropic.Anthropic, mock: MockServer) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.stop_reason == "end_turn"
    block = message.content[0]
    assert block.type == "text" and len(block.text.split()) == OUTPUT_TOKENS
    assert (message.usage.input_tokens, message.usage.output_tokens) == (8, OUTPUT_TOKENS)
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0
    record = record_for(mock, raw.headers["request-id"])
    assert (record.protocol, record.path, record.model, record.stream, record.status) == (
        "anthropic",
        "/v1/messages",
        MODEL,
        False,
        200,
    )


def test_raw_stream_event_sequence(client: anthropic.Anthropic, mock: MockServer) -> None:
    stream = client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
    events = list(stream)
    types = [e.type for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * OUTPUT_TOKENS,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]
    assert start.type == "message_start" and start.message.usage.input_tokens == 8
    delta = events[-2]
    assert delta.type == "message_delta" and delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == OUTPUT_TOKENS
    record = record_for(mock, stream.response.headers["request-id"])
    assert record.stream and record.chunks == OUTPUT_TOKENS


def test_stream_helper_text_stream_and_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) == OUTPUT_TOKENS
    assert final.content[0].type == "text" and final.content[0].text == "".join(texts)
    assert final.usage.output_tokens == OUTPUT_TOKENS and final.stop_reason == "end_turn"


def test_async_create_and_stream(mock: MockServer) -> None:
    async def main() -> tuple[str, str]:
        async with anthropic.AsyncAnthropic(base_url=mock.anthropic_base_url, api_key="k") as c:
            message = await c.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
            async with c.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            assert final.content[0].type == "text" and final.content[0].text == text
            block = message.content[0]
            assert block.type == "text"
            return block.text, text

    json_text, stream_text = asyncio.run(main())
    assert len(json_text.split()) == len(stream_text.split()) == OUTPUT_TOKENS


def test_max_tokens_stop_reason(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=3, messages=MESSAGES, extra_headers=hdrs(output_tokens=40)
    )
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_tool_use_json_and_stream(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, tools=[TOOL])
    block = message.content[0]
    assert message.stop_reason == "tool_use"
    assert block.type == "tool_use" and block.name == "get_weather" and block.input["city"]
    with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES, tools=[TOOL]) as stream:
        deltas = [e for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert len(deltas) == OUTPUT_TOKENS and all(d.delta.type == "input_json_delta" for d in deltas)
    streamed = final.content[0]
    assert streamed.type == "tool_use" and streamed.input == {"city": streamed.input["city"]}

    follow_up = [
        *MESSAGES,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]},
    ]
    answer = client.messages.create(model=MODEL, max_tokens=100, messages=follow_up, tools=[TOOL])
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"


def test_prompt_cache_write_then_read(client: anthropic.Anthropic, mock: MockServer) -> None:
    system: Any = [
        {
            "type": "text",
            "text": f"{time.monotonic_ns()} " + "x" * 4000,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    first = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=MESSAGES)
    second = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=MESSAGES)
    assert first.usage.cache_creation_input_tokens and first.usage.cache_creation_input_tokens > 1000
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert (
        second.usage.cache_creation_input_tokens == 0
        and second.usage.input_tokens == first.usage.input_tokens
    )
    record = records_for_model(mock, MODEL)[-1]
    assert record.cache_read_tokens == second.usage.cache_read_input_tokens
    assert record.input_tokens == second.usage.input_tokens + record.cache_read_tokens


def test_count_tokens_and_models(client: anthropic.Anthropic) -> None:
    assert client.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens == 8
    assert MODEL in [m.id for m in client.models.list()]


@pytest.mark.parametrize(
    ("code", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_statuses(
    client: anthropic.Anthropic, code: int, error_class: type[anthropic.APIStatusError], error_type: str
) -> None:
    with pytest.raises(error_class) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES, extra_headers=hdrs(fault=code))
    body = info.value.body
    assert info.value.status_code == code
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == error_type


def test_529_overloaded_is_retried(mock: MockServer) -> None:
    model = "claude-retry-529"
    mock.script(model, [Fault.status(529, retry_after=0.01), Fault.ok()])
    with anthropic.Anthropic(base_url=mock.anthropic_base_url, api_key="k", max_retries=2) as c:
        start = time.perf_counter()
        with c.messages.stream(model=model, max_tokens=50, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
        elapsed = time.perf_counter() - start
    assert len(text.split()) == OUTPUT_TOKENS
    assert [r.status for r in records_for_model(mock, model)] == [529, 200]
    assert elapsed < 0.3


def test_stream_disconnect(client: anthropic.Anthropic, mock: MockServer) -> None:
    texts: list[str] = []
    # Unlike openai's, this SDK lets the transport's error through unwrapped.
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)),
        client.messages.stream(
            model=MODEL, max_tokens=50, messages=MESSAGES, extra_headers=hdrs(fault="disconnect:2")
        ) as stream,
    ):
        texts.extend(stream.text_stream)
    assert len(texts) == 2
    assert records_for_model(mock, MODEL)[-1].fault == "disconnect:2"


def test_malformed_chunk_raises_json_error_from_the_sdk(
    client: anthropic.Anthropic, mock: MockServer
) -> None:
    model = "claude-malformed"
    texts: list[str] = []
    # The stream helper, the raw event stream and the JSON body all hit json.loads, unwrapped.
    with (
        client.messages.stream(
            model=model, max_tokens=50, messages=MESSAGES, extra_headers=hdrs(fault="malformed:2")
        ) as stream,
        pytest.raises(json.JSONDecodeError),
    ):
        texts.extend(stream.text_stream)
    assert len(texts) == 2
    events: list[str] = []
    with (
        client.messages.create(
            model=model,
            max_tokens=50,
            messages=MESSAGES,
            stream=True,
            extra_headers=hdrs(fault="malformed:0"),
        ) as raw,
        pytest.raises(json.JSONDecodeError),
    ):
        events.extend(e.type for e in raw)
    # The first content chunk also carries content_block_start and ping; only its delta is cut.
    assert events == ["message_start", "content_block_start"]
    with pytest.raises(json.JSONDecodeError):
        client.messages.create(
            model=model, max_tokens=50, messages=MESSAGES, extra_headers=hdrs(fault="malformed:0")
        )
    assert [r.fault for r in wait_for_records(mock, model, 3)] == [
        "malformed:2",
        "malformed:0",
        "malformed:0",
    ]


def test_stream_timing(timing_mock: MockServer) -> None:
    mock = timing_mock

    def check() -> None:
        server_ttft, gaps = [], []
        with anthropic.Anthropic(base_url=mock.anthropic_base_url, api_key="sk-ant", max_retries=0) as client:
            for _ in range(6):
                with client.messages.stream(
                    model="claude-timing",
                    max_tokens=100,
                    messages=MESSAGES,
                    extra_headers=hdrs(ttft_ms=25, itl_ms=3, output_tokens=10),
                ) as stream:
                    seen = [time.perf_counter_ns() for _ in stream.text_stream]
                record = records_for_model(mock, "claude-timing")[-1]
                assert record.first_byte_ns is not None and len(seen) == 10
                server_ttft.append((record.first_byte_ns - record.arrival_ns) / 1e6)
                gaps.extend((b - a) / 1e6 for a, b in itertools.pairwise(seen))
        assert abs(statistics.median(server_ttft) - 25) < 0.6, server_ttft
        assert abs(statistics.median(gaps) - 3) < 0.5, gaps

    within_attempts(check)


THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
THOUGHT = OUTPUT_TOKENS // 2  # the mock thinks for the first half of its output


def test_extended_thinking_streams_its_thinking_block_first(
    client: anthropic.Anthropic, mock: MockServer
) -> None:
    stream = client.messages.create(
        model=MODEL, max_tokens=2048, messages=MESSAGES, thinking=THINKING, stream=True
    )
    events = list(stream)
    blocks = [(e.index, e.content_block.type) for e in events if e.type == "content_block_start"]
    assert blocks == [(0, "thinking"), (1, "text")]
    deltas = [(e.index, e.delta.type) for e in events if e.type == "content_block_delta"]
    assert deltas == [(0, "thinking_delta")] * THOUGHT + [(0, "signature_delta")] + [(1, "text_delta")] * (
        OUTPUT_TOKENS - THOUGHT
    )
    assert [e.index for e in events if e.type == "content_block_stop"] == [0, 1]
    # The signature_delta closes the thinking block just before the answer's block opens.
    types = [e.type for e in events]
    signature = types.index("content_block_delta") + THOUGHT
    assert types[signature + 1 : signature + 3] == ["content_block_stop", "content_block_start"]
    final = events[-2]
    assert final.type == "message_delta" and final.usage.output_tokens == OUTPUT_TOKENS  # thinking included
    record = record_for(mock, stream.response.headers["request-id"])
    assert record.chunks == OUTPUT_TOKENS and record.reasoning_tokens == THOUGHT


def test_extended_thinking_in_whole_messages_and_the_stream_helper(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=2048, messages=MESSAGES, thinking=THINKING)
    thinking, text = message.content
    assert thinking.type == "thinking" and len(thinking.thinking.split()) == THOUGHT and thinking.signature
    assert text.type == "text" and len(text.text.split()) == OUTPUT_TOKENS - THOUGHT
    assert message.usage.output_tokens == OUTPUT_TOKENS
    with client.messages.stream(model=MODEL, max_tokens=2048, messages=MESSAGES, thinking=THINKING) as stream:
        streamed = "".join(stream.text_stream)  # the thinking is not text
        final = stream.get_final_message()
    assert len(streamed.split()) == OUTPUT_TOKENS - THOUGHT
    streamed_thinking, streamed_text = final.content
    assert streamed_thinking.type == "thinking" and len(streamed_thinking.thinking.split()) == THOUGHT
    assert streamed_thinking.signature  # the helper rebuilt it from the signature_delta
    assert streamed_text.type == "text" and streamed_text.text == streamed
    # Adaptive thinking (newer models) has no budget; "disabled" is no thinking.
    adaptive = client.messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, thinking={"type": "adaptive"}
    )
    assert [b.type for b in adaptive.content] == ["thinking", "text"]
    plain = client.messages.create(
        model=MODEL, max_tokens=100, messages=MESSAGES, thinking={"type": "disabled"}
    )
    assert [b.type for b in plain.content] == ["text"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
        (
            {"thinking": THINKING, "max_tokens": 1024},
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        # anthropic 2.x's create() names neither: they travel in extra_body.
        ({"thinking": THINKING, "extra_body": {"temperature": 0.5}}, "`temperature` may only be set to 1"),
        ({"thinking": THINKING, "extra_body": {"top_k": 5}}, "`top_k` is not supported"),
        ({"thinking": THINKING, "tools": [TOOL], "tool_choice": {"type": "any"}}, "forces tool use"),
    ],
)
def test_extended_thinking_is_refused_as_anthropic_refuses_it(
    client: anthropic.Anthropic, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(**{"model": MODEL, "max_tokens": 2048, "messages": MESSAGES, **extra})
    assert info.value.status_code == 400 and message in str(info.value)
