"""One CLIENT span per Anthropic Messages call, with the conventions' attributes and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from opentelemetry.trace import SpanKind

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv

from ...conftest import MOCK_ITL_S, MOCK_OUTPUT_TOKENS, first_undisturbed
from ..conftest import timed_stream
from .conftest import API_KEY, MESSAGES, MODEL, Otel, headers, only_span

TOOL: Any = {
    "name": "get_weather",
    "description": "weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_message_span_and_metrics(otel: Otel, client: anthropic.Anthropic, mock_server: MockServer) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=MESSAGES,
        stop_sequences=["END"],
        # anthropic 2.x dropped these keywords; extra_body still sends them.
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},
    )
    assert isinstance(message, anthropic.types.Message)

    span = only_span(otel)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "otelbench_instrumentation"
    a = span.attributes or {}
    assert a[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert a[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert a[semconv.GEN_AI_REQUEST_TOP_P] == 0.9
    assert a[semconv.GEN_AI_REQUEST_TOP_K] == 40
    assert tuple(a[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ("END",)  # type: ignore[arg-type]
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == mock_server.port
    assert a[semconv.GEN_AI_RESPONSE_ID] == message.id
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == message.model
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("end_turn",)  # type: ignore[arg-type]
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == message.usage.input_tokens  # no cache in play
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens
    # Value types matter to backends.
    for name, kind in (
        (semconv.GEN_AI_REQUEST_MAX_TOKENS, int),
        (semconv.GEN_AI_REQUEST_TOP_K, int),
        (semconv.GEN_AI_REQUEST_TEMPERATURE, float),
        (semconv.GEN_AI_USAGE_INPUT_TOKENS, int),
        (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, int),
        (semconv.SERVER_PORT, int),
    ):
        assert type(a[name]) is kind, name
    assert semconv.ERROR_TYPE not in a
    assert semconv.GEN_AI_REQUEST_STREAM not in a
    assert semconv.ATTEMPT_COUNT not in a

    metrics = otel.metrics()
    duration = metrics[semconv.METRIC_OPERATION_DURATION]
    assert duration.unit == "s"
    (point,) = duration.data.data_points  # type: ignore[attr-defined]
    assert point.count == 1
    assert tuple(point.explicit_bounds) == semconv.BUCKETS_DURATION
    assert dict(point.attributes) == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "anthropic",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_MODEL: message.model,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: mock_server.port,
    }
    assert 0.0 < point.sum < 5.0
    usage = metrics[semconv.METRIC_TOKEN_USAGE]
    assert usage.unit == "{token}"
    by_type = {p.attributes[semconv.GEN_AI_TOKEN_TYPE]: p for p in usage.data.data_points}  # type: ignore[attr-defined]
    assert by_type["input"].sum == message.usage.input_tokens
    assert by_type["output"].sum == message.usage.output_tokens
    assert tuple(by_type["input"].explicit_bounds) == semconv.BUCKETS_TOKENS
    # A non-streamed call has no chunk timing.
    assert semconv.METRIC_TIME_TO_FIRST_CHUNK not in metrics
    assert semconv.METRIC_TIME_PER_OUTPUT_CHUNK not in metrics


def test_cache_tokens_are_part_of_input_and_counted_once(
    otel: Otel, client: anthropic.Anthropic, mock_server: MockServer
) -> None:
    model = "claude-cache"
    system: Any = [
        {
            "type": "text",
            "text": f"{time.monotonic_ns()} " + "x" * 4000,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    write = client.messages.create(model=model, max_tokens=10, system=system, messages=MESSAGES)
    with client.messages.stream(model=model, max_tokens=10, system=system, messages=MESSAGES) as stream:
        read = stream.get_final_message()
    created = write.usage.cache_creation_input_tokens
    assert created and created > 1000 and read.usage.cache_read_input_tokens == created

    first, second = (s.attributes or {} for s in otel.spans())
    records = [r for r in mock_server.records if r.model == model]
    # The conventions' total: Anthropic's input_tokens excludes both cache counts.
    for attrs, usage, record in ((first, write.usage, records[0]), (second, read.usage, records[1])):
        total = (
            usage.input_tokens
            + (usage.cache_read_input_tokens or 0)
            + (usage.cache_creation_input_tokens or 0)
        )
        assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == total
        assert total == record.input_tokens  # the mock's own count of the whole prompt
        assert attrs[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == usage.cache_read_input_tokens
        assert attrs[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] == usage.cache_creation_input_tokens

    # Token usage holds each prompt once; the cache counts live only in the detail metric.
    inputs = [
        p.sum
        for p in otel.points(semconv.METRIC_TOKEN_USAGE)
        if p.attributes[semconv.GEN_AI_TOKEN_TYPE] == semconv.TOKEN_TYPE_INPUT
    ]
    assert inputs == [records[0].input_tokens + records[1].input_tokens]
    details = {p.attributes[semconv.TOKEN_DETAIL]: p.sum for p in otel.points(semconv.METRIC_TOKEN_DETAIL)}
    assert details == {semconv.TOKEN_DETAIL_CACHE_CREATION: created, semconv.TOKEN_DETAIL_CACHE_READ: created}


@pytest.fixture
def isolated_client(isolated_mock_server: MockServer) -> Iterator[anthropic.Anthropic]:
    """A client of the mock running in its own process, so server timings do not share our GIL."""
    with anthropic.Anthropic(base_url=isolated_mock_server.anthropic_base_url, api_key=API_KEY) as c:
        yield c


def _measure_stream(client: anthropic.Anthropic, ttft_ms: int) -> tuple[int, int]:
    """One streamed call; returns (perf_counter_ns at the call, when the app saw the first text)."""
    called_ns = time.perf_counter_ns()
    stream = client.messages.create(
        model=MODEL, max_tokens=50, messages=MESSAGES, stream=True, extra_headers=headers(ttft_ms=ttft_ms)
    )
    texts = []
    seen_ns = 0
    for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            seen_ns = seen_ns or time.perf_counter_ns()
            texts.append(event.delta.text)
    assert len(texts) == MOCK_OUTPUT_TOKENS
    return called_ns, seen_ns


@pytest.mark.parametrize("ttft_ms", [20, 60])
def test_stream_ttft_matches_mock_within_2ms(
    otel: Otel, isolated_client: anthropic.Anthropic, isolated_mock_server: MockServer, ttft_ms: int
) -> None:
    client, mock_server = isolated_client, isolated_mock_server
    # Warm up: the SDK's first stream builds its event types, which is no part of the TTFT.
    # Another model name keeps its metric points apart from the measured call's.
    list(client.messages.create(model="claude-warm-up", max_tokens=50, messages=MESSAGES, stream=True))

    # The mock's record: when the request arrived and when the first content_block_delta was
    # written (message_start went out with the headers).
    streams = first_undisturbed(
        lambda: timed_stream(otel, mock_server, lambda: _measure_stream(client, ttft_ms)), ttft_ms / 1000
    )
    ttfts = [s.ttft for s in streams]
    last, a = streams[-1], streams[-1].attributes
    # TTFT runs from the call (semconv: when the client issues the request), so it also holds the
    # SDK's request building; what happens after the request reached the server must match the
    # configured delay within 2 ms.
    assert abs(last.ttft - last.sdk_send_s - ttft_ms / 1000) < 0.002, last.figures
    assert a[semconv.GEN_AI_REQUEST_STREAM] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("end_turn",)  # type: ignore[arg-type]
    assert semconv.STREAM_CLOSED_EARLY not in a

    metrics = otel.metrics()

    def measured(points: Any) -> list[Any]:
        return [p for p in points if p.attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL]

    ttft_metric = metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK]
    (ttft_point,) = measured(ttft_metric.data.data_points)  # type: ignore[attr-defined]
    assert ttft_metric.unit == "s"
    assert tuple(ttft_point.explicit_bounds) == semconv.BUCKETS_DURATION
    assert ttft_point.count == len(ttfts)  # one per measured call
    assert ttft_point.sum == pytest.approx(sum(ttfts))
    assert ttft_point.attributes[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    per_chunk = metrics[semconv.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert per_chunk.unit == "s"
    (chunk_point,) = measured(per_chunk.data.data_points)  # type: ignore[attr-defined]
    assert tuple(chunk_point.explicit_bounds) == semconv.BUCKETS_TIME_PER_CHUNK
    assert chunk_point.count == len(ttfts)  # default "mean" timing: one value per stream
    assert abs(chunk_point.sum / chunk_point.count - MOCK_ITL_S) < 0.001
    by_type = {
        p.attributes[semconv.GEN_AI_TOKEN_TYPE]: p.sum
        for p in measured(metrics[semconv.METRIC_TOKEN_USAGE].data.data_points)  # type: ignore[attr-defined]
    }
    assert by_type == {
        "input": a[semconv.GEN_AI_USAGE_INPUT_TOKENS] * len(ttfts),  # type: ignore[operator]
        "output": MOCK_OUTPUT_TOKENS * len(ttfts),
    }


def _assert_full_stream(otel: Otel, final: anthropic.types.Message | None = None) -> None:
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_REQUEST_STREAM] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS
    assert isinstance(a[semconv.GEN_AI_USAGE_INPUT_TOKENS], int)
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a
    assert semconv.STREAM_CLOSED_EARLY not in a
    assert semconv.ERROR_TYPE not in a
    if final is not None:
        assert a[semconv.GEN_AI_RESPONSE_ID] == final.id
        assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == (final.stop_reason,)  # type: ignore[arg-type]
    otel.exporter.clear()


def test_stream_helper_every_way_of_reading(otel: Otel, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        assert isinstance(stream, anthropic.lib.streaming.MessageStream)
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == final.content[0].text  # type: ignore[union-attr]
    _assert_full_stream(otel, final)

    with client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        assert len(stream.get_final_text().split()) == MOCK_OUTPUT_TOKENS
        final = stream.get_final_message()
    _assert_full_stream(otel, final)

    with client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        kinds = [event.type for event in stream]  # the helper's own events (text, ...) included
        assert stream.response.status_code == 200 and stream.request_id
    assert kinds.count("text") == MOCK_OUTPUT_TOKENS
    _assert_full_stream(otel)


def test_tool_input_json_deltas_are_content(otel: Otel, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES, tools=[TOOL]) as stream:
        deltas = [e for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas and all(d.delta.type == "input_json_delta" for d in deltas)
    a = only_span(otel).attributes or {}
    assert a[semconv.STREAM_CHUNK_COUNT] == len(deltas)
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("tool_use",) == (final.stop_reason,)  # type: ignore[arg-type]
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a


def test_raw_and_streaming_responses_counted_once(otel: Otel, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    assert raw.status_code == 200 and raw.request_id
    message = raw.parse()
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_RESPONSE_ID] == message.id
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens
    otel.exporter.clear()

    raw_stream = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=MESSAGES, stream=True
    )
    events = raw_stream.parse()
    assert raw_stream.parse() is events  # the SDK caches parse(); so do we
    assert isinstance(events, anthropic.Stream)
    assert sum(1 for e in events if e.type == "content_block_delta") == MOCK_OUTPUT_TOKENS
    _assert_full_stream(otel)

    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=50, messages=MESSAGES
    ) as resp:
        assert otel.spans() == []  # the body is not read yet
        message = resp.parse()
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == message.usage.output_tokens
    assert semconv.STREAM_CLOSED_EARLY not in a
    otel.exporter.clear()

    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=50, messages=MESSAGES, stream=True
    ) as resp:
        assert sum(1 for e in resp.parse() if e.type == "content_block_delta") == MOCK_OUTPUT_TOKENS
    _assert_full_stream(otel)

    # Read as bytes, the stream's events are unknown to us: one span, ended by the close.
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=50, messages=MESSAGES, stream=True
    ) as resp:
        assert b"message_stop" in b"".join(resp.iter_bytes())
    assert (only_span(otel).attributes or {})[semconv.STREAM_CLOSED_EARLY] is True


def test_async_create_stream_and_helper(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> tuple[anthropic.types.Message, anthropic.types.Message]:
        async with anthropic.AsyncAnthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
            message = await c.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
            stream = await c.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, stream=True)
            assert isinstance(stream, anthropic.AsyncStream)
            assert len([e async for e in stream]) > MOCK_OUTPUT_TOKENS
            async with c.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as helper:
                text = "".join([t async for t in helper.text_stream])
                final = await helper.get_final_message()
            assert text == final.content[0].text  # type: ignore[union-attr]
            raw = await c.messages.with_raw_response.create(model=MODEL, max_tokens=50, messages=MESSAGES)
            assert (await raw.parse()).id
            return message, final

    message, final = asyncio.run(run())
    plain, streamed, helper, raw = otel.spans()
    assert (plain.attributes or {})[semconv.GEN_AI_RESPONSE_ID] == message.id
    assert (helper.attributes or {})[semconv.GEN_AI_RESPONSE_ID] == final.id
    for span in (streamed, helper):
        a = span.attributes or {}
        assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
        assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS
    assert (raw.attributes or {})[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS


def test_beta_messages_and_parse(otel: Otel, client: anthropic.Anthropic) -> None:
    beta = client.beta.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    with client.beta.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
        beta_final = stream.get_final_message()
    parsed = client.messages.parse(model=MODEL, max_tokens=50, messages=MESSAGES)
    ids = [(s.attributes or {})[semconv.GEN_AI_RESPONSE_ID] for s in otel.spans()]
    assert ids == [beta.id, beta_final.id, parsed.id]
    assert all(s.name == f"chat {MODEL}" for s in otel.spans())


def test_count_tokens_is_left_alone(otel: Otel, client: anthropic.Anthropic) -> None:
    assert client.messages.count_tokens(model=MODEL, messages=MESSAGES).input_tokens > 0
    assert otel.spans() == []
    assert otel.metrics() == {}


def test_vertex_client_reports_its_platform(otel: Otel, mock_server: MockServer) -> None:
    # The Vertex client shares the Messages resource; the mock does not speak Vertex's URLs,
    # so the call fails, which is enough to see whose span it is.
    with (
        anthropic.AnthropicVertex(
            region="us-east5",
            project_id="p",
            access_token="vertex-token-SECRET",
            base_url=mock_server.url + "/v1",
            max_retries=0,
        ) as vertex,
        pytest.raises(anthropic.NotFoundError),
    ):
        vertex.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_PROVIDER_NAME] == semconv.PROVIDER_GCP_VERTEX_AI
    assert a[semconv.ERROR_TYPE] == "NotFoundError"
