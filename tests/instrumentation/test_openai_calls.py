"""One CLIENT span per logical OpenAI call, with the conventions' attributes and metrics."""

from __future__ import annotations

import asyncio
import itertools

import openai
import pytest
from opentelemetry.trace import SpanKind

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv

from ..conftest import MOCK_ITL_S, MOCK_OUTPUT_TOKENS
from .conftest import API_KEY, Otel, headers

MODEL = "gpt-mock"


def _only_span(otel: Otel):  # type: ignore[no-untyped-def]
    spans = otel.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_chat_completion_span_and_metrics(otel: Otel, client: openai.OpenAI, mock_server: MockServer) -> None:
    result = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello there"}],
        temperature=0.5,
        max_tokens=64,
        seed=3,
        stop=["END"],
    )
    assert isinstance(result, openai.types.chat.ChatCompletion)

    span = _only_span(otel)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    a = span.attributes or {}
    assert a[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert a[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[semconv.GEN_AI_REQUEST_SEED] == 3
    assert tuple(a[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ("END",)  # type: ignore[arg-type]
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == int(mock_server.url.rsplit(":", 1)[1])
    assert a[semconv.GEN_AI_RESPONSE_ID] == result.id
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == result.model
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == (result.choices[0].finish_reason,)  # type: ignore[arg-type]
    assert result.usage is not None
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == result.usage.completion_tokens
    # Value types matter to backends: counts are ints, never floats or strings.
    assert type(a[semconv.GEN_AI_USAGE_INPUT_TOKENS]) is int
    assert type(a[semconv.SERVER_PORT]) is int
    assert semconv.ERROR_TYPE not in a
    assert semconv.GEN_AI_REQUEST_STREAM not in a

    metrics = otel.metrics()
    duration = metrics[semconv.METRIC_OPERATION_DURATION]
    assert duration.unit == "s"
    (point,) = duration.data.data_points  # type: ignore[attr-defined]
    assert point.count == 1
    assert tuple(point.explicit_bounds) == semconv.BUCKETS_DURATION
    assert point.attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert point.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert point.attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert point.attributes[semconv.GEN_AI_RESPONSE_MODEL] == result.model
    assert point.attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert 0.0 < point.sum < 5.0

    usage = metrics[semconv.METRIC_TOKEN_USAGE]
    assert usage.unit == "{token}"
    by_type = {p.attributes[semconv.GEN_AI_TOKEN_TYPE]: p for p in usage.data.data_points}  # type: ignore[attr-defined]
    assert by_type["input"].sum == result.usage.prompt_tokens
    assert by_type["output"].sum == result.usage.completion_tokens
    assert tuple(by_type["input"].explicit_bounds) == semconv.BUCKETS_TOKENS
    # Non-streamed calls have no chunk timing.
    assert semconv.METRIC_TIME_TO_FIRST_CHUNK not in metrics
    assert semconv.METRIC_TIME_PER_OUTPUT_CHUNK not in metrics


@pytest.mark.parametrize("ttft_ms", [20, 60])
def test_stream_ttft_matches_mock_within_2ms(
    otel: Otel, client: openai.OpenAI, mock_server: MockServer, ttft_ms: int
) -> None:
    # Warm up: the SDK's first stream builds its chunk types, which is no part of the TTFT.
    list(
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "w"}], stream=True)
    )
    otel.exporter.clear()
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers(ttft_ms=ttft_ms),
    )
    texts = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(texts) == MOCK_OUTPUT_TOKENS

    span = _only_span(otel)
    a = span.attributes or {}
    assert a[semconv.GEN_AI_REQUEST_STREAM] is True
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttft, float)
    assert abs(ttft - ttft_ms / 1000) < 0.002, ttft
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]
    assert semconv.STREAM_CLOSED_EARLY not in a

    metrics = otel.metrics()
    (ttft_point,) = metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK].data.data_points  # type: ignore[attr-defined]
    assert metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK].unit == "s"
    assert tuple(ttft_point.explicit_bounds) == semconv.BUCKETS_DURATION
    assert ttft_point.sum == pytest.approx(ttft)
    per_chunk = metrics[semconv.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert per_chunk.unit == "s"
    (chunk_point,) = per_chunk.data.data_points  # type: ignore[attr-defined]
    assert tuple(chunk_point.explicit_bounds) == semconv.BUCKETS_TIME_PER_CHUNK
    # Default "mean" timing: one value per stream, the mean gap between content chunks.
    assert chunk_point.count == 1
    assert abs(chunk_point.sum - MOCK_ITL_S) < 0.001
    assert {
        p.attributes[semconv.GEN_AI_TOKEN_TYPE] for p in metrics[semconv.METRIC_TOKEN_USAGE].data.data_points
    } == {  # type: ignore[attr-defined]
        "input",
        "output",
    }
    # The mock's ground truth agrees that the first content byte left at the configured time.
    record = mock_server.records[-1]
    assert record.first_byte_ns is not None
    assert abs((record.first_byte_ns - record.arrival_ns) / 1e9 - ttft_ms / 1000) < 0.002


def test_each_chunk_timing_records_every_gap(mock_server: MockServer) -> None:
    from otelbench_instrumentation import OpenAIInstrumentor

    from .conftest import make_providers

    exporter, tp, reader, mp = make_providers()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp, chunk_timing="each")
    try:
        with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            gaps_client = []
            stream = c.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                extra_headers=headers(itl_ms=5),
            )
            for _ in stream:
                gaps_client.append(1)
    finally:
        instrumentor.uninstrument()
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == semconv.METRIC_TIME_PER_OUTPUT_CHUNK
        for p in m.data.data_points  # type: ignore[attr-defined]
    ]
    (point,) = points
    assert point.count == MOCK_OUTPUT_TOKENS - 1
    assert abs(point.sum / point.count - 0.005) < 0.001
    assert len(exporter.get_finished_spans()) == 1


def test_stream_helper_ends_once_with_usage(otel: Otel, client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream_options={"include_usage": True}
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    span = _only_span(otel)
    a = span.attributes or {}
    assert final.usage is not None
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.completion_tokens
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a


def test_tool_call_deltas_count_as_content(otel: Otel, client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "call"}],
        tools=tools,
        stream=True,  # type: ignore[list-item]
    )
    deltas = [c for c in stream if c.choices and c.choices[0].delta.tool_calls]
    a = _only_span(otel).attributes or {}
    assert deltas, "mock sent no tool-call deltas"
    assert a[semconv.STREAM_CHUNK_COUNT] == len(deltas)
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a


def test_cached_and_reasoning_tokens(otel: Otel, client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "a long shared prefix " * 40}]
    client.chat.completions.create(model="gpt-mock-reasoning", messages=messages, prompt_cache_key="k1")  # type: ignore[arg-type]
    result = client.chat.completions.create(
        model="gpt-mock-reasoning", messages=messages, prompt_cache_key="k1"
    )  # type: ignore[arg-type]
    assert result.usage is not None
    cached = result.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    reasoning = result.usage.completion_tokens_details.reasoning_tokens  # type: ignore[union-attr]
    assert cached and reasoning, "mock should report cached and reasoning tokens here"
    a = otel.spans()[-1].attributes or {}
    assert a[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == cached
    assert a[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == reasoning
    details = {p.attributes[semconv.TOKEN_DETAIL]: p.sum for p in otel.points(semconv.METRIC_TOKEN_DETAIL)}
    assert details[semconv.TOKEN_DETAIL_REASONING] == 2 * reasoning
    assert details[semconv.TOKEN_DETAIL_CACHE_READ] == cached


def test_responses_api_plain_and_streamed(otel: Otel, client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="hello", max_output_tokens=32)
    stream = client.responses.create(model=MODEL, input="hello", stream=True)
    events = list(stream)
    with client.responses.stream(model=MODEL, input="hello") as helper:
        for _ in helper:
            pass
        final = helper.get_final_response()
    spans = otel.spans()
    assert [s.name for s in spans] == [f"chat {MODEL}"] * 3
    plain, streamed, helped = (s.attributes or {} for s in spans)
    assert response.usage is not None
    assert plain[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.output_tokens
    assert plain[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 32
    assert plain[semconv.GEN_AI_RESPONSE_ID] == response.id
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert streamed[semconv.STREAM_CHUNK_COUNT] == len(deltas) > 0
    assert streamed[semconv.GEN_AI_USAGE_INPUT_TOKENS] > 0  # type: ignore[operator]
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in streamed
    assert final.usage is not None
    assert helped[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens


def test_embeddings(otel: Otel, client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-mock", input=["a", "b"], encoding_format="float")
    span = _only_span(otel)
    a = span.attributes or {}
    assert span.name == "embeddings text-embedding-mock"
    assert a[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert a[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == len(result.data[0].embedding)
    assert tuple(a[semconv.GEN_AI_REQUEST_ENCODING_FORMATS]) == ("float",)  # type: ignore[arg-type]


def test_raw_and_streaming_response_paths_count_once(otel: Otel, client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "raw"}]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert raw.headers.get("content-type", "").startswith("application/json")
    parsed = raw.parse()
    assert isinstance(parsed, openai.types.chat.ChatCompletion)

    raw_stream = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, stream=True)  # type: ignore[arg-type]
    chunks = list(raw_stream.parse())
    assert chunks

    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=messages) as response:  # type: ignore[arg-type]
        completion = response.parse()
    with client.chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=messages,
        stream=True,  # type: ignore[arg-type]
    ) as response:
        streamed = list(response.parse())

    spans = otel.spans()
    assert len(spans) == 4
    a0, a1, a2, a3 = (s.attributes or {} for s in spans)
    assert a0[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == parsed.usage.completion_tokens  # type: ignore[union-attr]
    assert a1[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a2[semconv.GEN_AI_RESPONSE_ID] == completion.id
    assert a3[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert len(streamed) >= MOCK_OUTPUT_TOKENS
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.count == 4


def test_async_client_plain_and_streamed(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> tuple[str, list[str]]:
        async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            result = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}])
            stream = await c.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "a"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            texts = [
                ch.choices[0].delta.content
                async for ch in stream
                if ch.choices and ch.choices[0].delta.content
            ]
            return result.id, texts  # type: ignore[return-value]

    response_id, texts = asyncio.run(run())
    assert len(texts) == MOCK_OUTPUT_TOKENS
    plain, streamed = otel.spans()
    assert (plain.attributes or {})[semconv.GEN_AI_RESPONSE_ID] == response_id
    sa = streamed.attributes or {}
    assert sa[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert sa[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS


def test_concurrent_async_streams_keep_their_own_ttft(otel: Otel, mock_server: MockServer) -> None:
    delays = [10, 25, 40, 55, 70, 85]

    async def one(c: openai.AsyncOpenAI, ms: int) -> None:
        stream = await c.chat.completions.create(
            model=f"gpt-conc-{ms}",
            messages=[{"role": "user", "content": "c"}],
            stream=True,
            extra_headers=headers(ttft_ms=ms),
        )
        async for _ in stream:
            pass

    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            await one(c, 1)  # the SDK's first call builds its types: keep that out of the figures
            otel.exporter.clear()
            await asyncio.gather(*(one(c, ms) for ms in delays))

    asyncio.run(run())
    spans = otel.spans()
    assert len(spans) == len(delays)
    measured = {}
    for span in spans:
        a = span.attributes or {}
        delay_ms = int(str(a[semconv.GEN_AI_REQUEST_MODEL]).rsplit("-", 1)[1])
        measured[delay_ms] = float(a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])  # type: ignore[arg-type]
    # Six requests prepared on one event loop queue behind each other, so each TTFT carries
    # some client-side delay; but with server delays 15 ms apart, a span that reported another
    # stream's first chunk would break the order or the spacing.
    assert sorted(measured, key=measured.__getitem__) == delays, measured
    for delay_ms, ttft in measured.items():
        assert delay_ms / 1000 <= ttft < delay_ms / 1000 + 0.030, measured
    gaps = [measured[b] - measured[a] for a, b in itertools.pairwise(delays)]
    assert all(0.005 < g < 0.025 for g in gaps), gaps
