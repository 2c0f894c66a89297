"""One CLIENT span per Ollama call, with the conventions' attributes, server timings and metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ollama
import pytest
from opentelemetry.trace import SpanKind

from otelbench.mock import MockServer
from otelbench_instrumentation import semconv
from otelbench_instrumentation.providers.ollama import _extract

from ...conftest import MOCK_ITL_S, MOCK_OUTPUT_TOKENS, first_undisturbed
from ..conftest import Otel, only_span, timed_stream
from .conftest import (
    EMBED_MODEL,
    MESSAGES,
    MODEL,
    async_client_with,
    attrs,
    client_with,
    mock_port,
)

# Ollama's fields (ns) and the attributes (s) they become.
DURATIONS = {
    "total_duration": semconv.OLLAMA_RESPONSE_TOTAL_DURATION,
    "load_duration": semconv.OLLAMA_RESPONSE_LOAD_DURATION,
    "prompt_eval_duration": semconv.OLLAMA_RESPONSE_PROMPT_EVAL_DURATION,
    "eval_duration": semconv.OLLAMA_RESPONSE_EVAL_DURATION,
}


def assert_server_timings(a: dict[str, Any], final: Any) -> None:
    """The span holds the final record's timings in seconds, its counts and the derived rates."""
    for field, name in DURATIONS.items():
        assert type(a[name]) is float
        assert a[name] == pytest.approx(getattr(final, field) / 1e9, rel=1e-12), name
    assert a[semconv.OLLAMA_RESPONSE_PROMPT_EVAL_COUNT] == final.prompt_eval_count
    assert a[semconv.OLLAMA_RESPONSE_EVAL_COUNT] == final.eval_count
    assert type(a[semconv.OLLAMA_RESPONSE_EVAL_COUNT]) is int
    prefill = final.prompt_eval_count / (final.prompt_eval_duration / 1e9)
    decode = final.eval_count / (final.eval_duration / 1e9)
    assert a[semconv.OLLAMA_RESPONSE_PROMPT_EVAL_RATE] == pytest.approx(prefill)
    assert a[semconv.OLLAMA_RESPONSE_EVAL_RATE] == pytest.approx(decode)
    # Usage comes from the same counts.
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == final.prompt_eval_count
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == final.eval_count


def test_chat_span_attributes_and_metrics(otel: Otel, client: ollama.Client, mock_server: MockServer) -> None:
    options = {
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "seed": 3,
        "num_predict": 64,
        "stop": ["END"],
        "presence_penalty": 0.25,
        "frequency_penalty": 0.5,
        "num_ctx": 4096,
        "num_gpu": 1,
        "num_thread": 2,
        "repeat_penalty": 1.1,
    }
    mock_server.clear_records()
    result = client.chat(model=MODEL, messages=MESSAGES, options=options, keep_alive="5m", format="json")
    assert isinstance(result, ollama.ChatResponse)

    span = only_span(otel)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    a = attrs(span)
    assert a[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert a[semconv.GEN_AI_PROVIDER_NAME] == "ollama"
    assert a[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert a[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert a[semconv.SERVER_PORT] == mock_port(mock_server)
    assert type(a[semconv.SERVER_PORT]) is int
    # options -> the conventions' names, with the conventions' value types
    assert a[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert a[semconv.GEN_AI_REQUEST_TOP_P] == 0.9
    assert a[semconv.GEN_AI_REQUEST_TOP_K] == 40.0 and type(a[semconv.GEN_AI_REQUEST_TOP_K]) is float
    assert a[semconv.GEN_AI_REQUEST_SEED] == 3 and type(a[semconv.GEN_AI_REQUEST_SEED]) is int
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert tuple(a[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ("END",)
    assert a[semconv.GEN_AI_REQUEST_PRESENCE_PENALTY] == 0.25
    assert a[semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY] == 0.5
    # ... and to ollama.request.* otherwise
    assert a[semconv.OLLAMA_REQUEST_NUM_CTX] == 4096
    assert a[semconv.OLLAMA_REQUEST_NUM_GPU] == 1
    assert a[semconv.OLLAMA_REQUEST_NUM_THREAD] == 2
    assert a[semconv.OLLAMA_REQUEST_REPEAT_PENALTY] == 1.1
    assert a[semconv.OLLAMA_REQUEST_KEEP_ALIVE] == "5m"
    assert a[semconv.OLLAMA_REQUEST_FORMAT] == "json"
    assert a[semconv.GEN_AI_OUTPUT_TYPE] == "json"
    assert semconv.OLLAMA_REQUEST_NUM_PREDICT not in a
    # response
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == result.model == MODEL
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == (result.done_reason,) == ("stop",)
    assert_server_timings(a, result)
    (record,) = mock_server.records
    assert (a[semconv.GEN_AI_USAGE_INPUT_TOKENS], a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        record.input_tokens,
        record.output_tokens,
    )
    assert semconv.ERROR_TYPE not in a
    assert semconv.GEN_AI_REQUEST_STREAM not in a
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    assert semconv.GEN_AI_RESPONSE_ID not in a  # Ollama has no response id

    metrics = otel.metrics()
    duration = metrics[semconv.METRIC_OPERATION_DURATION]
    assert duration.unit == "s"
    (point,) = duration.data.data_points  # type: ignore[attr-defined]
    assert point.count == 1
    assert tuple(point.explicit_bounds) == semconv.BUCKETS_DURATION
    assert dict(point.attributes) == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "ollama",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: mock_port(mock_server),
    }
    # The call lasts at least as long as the server says it worked on it.
    assert result.total_duration / 1e9 <= point.sum < 5.0

    usage = metrics[semconv.METRIC_TOKEN_USAGE]
    assert usage.unit == "{token}"
    by_type = {p.attributes[semconv.GEN_AI_TOKEN_TYPE]: p for p in usage.data.data_points}  # type: ignore[attr-defined]
    assert by_type["input"].sum == result.prompt_eval_count
    assert by_type["output"].sum == result.eval_count
    assert tuple(by_type["input"].explicit_bounds) == semconv.BUCKETS_TOKENS
    # A non-streamed call has no chunk timing.
    assert semconv.METRIC_TIME_TO_FIRST_CHUNK not in metrics
    assert semconv.METRIC_TIME_PER_OUTPUT_CHUNK not in metrics


def test_options_object_positional_arguments_and_sentinels(otel: Otel, client: ollama.Client) -> None:
    options = ollama.Options(
        temperature=1, num_predict=-1, num_ctx=2048, use_mmap=False, mirostat=2, stop=["a", "b"]
    )
    client.chat(MODEL, MESSAGES, options=options, keep_alive=300, format={"type": "object"}, think=True)
    client.generate(MODEL, "Tell me about mocks.", options={"num_predict": -2, "min_p": 0.05})
    client.embed(EMBED_MODEL, ["alpha"], True, None, "1m", 256)
    chat, generate, embed = (attrs(s) for s in otel.spans())

    assert chat[semconv.GEN_AI_REQUEST_MODEL] == MODEL  # positional model
    assert chat[semconv.GEN_AI_REQUEST_TEMPERATURE] == 1.0
    assert type(chat[semconv.GEN_AI_REQUEST_TEMPERATURE]) is float
    # -1 means "no limit": not a token cap, so it stays an Ollama attribute.
    assert semconv.GEN_AI_REQUEST_MAX_TOKENS not in chat
    assert chat[semconv.OLLAMA_REQUEST_NUM_PREDICT] == -1
    assert chat[semconv.OLLAMA_REQUEST_NUM_CTX] == 2048
    assert chat[semconv.OLLAMA_REQUEST_USE_MMAP] is False
    assert chat[semconv.OLLAMA_REQUEST_MIROSTAT] == 2
    assert tuple(chat[semconv.GEN_AI_REQUEST_STOP_SEQUENCES]) == ("a", "b")
    assert chat[semconv.OLLAMA_REQUEST_KEEP_ALIVE] == "300"  # numbers too: one attribute type
    assert chat[semconv.OLLAMA_REQUEST_FORMAT] == "schema"
    assert chat[semconv.GEN_AI_OUTPUT_TYPE] == "json"
    assert chat[semconv.OLLAMA_REQUEST_THINK] == "true"
    # Options the caller did not set are not recorded.
    assert semconv.GEN_AI_REQUEST_TOP_P not in chat
    assert semconv.OLLAMA_REQUEST_NUM_GPU not in chat

    assert generate[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    assert generate[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert generate[semconv.OLLAMA_REQUEST_NUM_PREDICT] == -2
    assert generate[semconv.OLLAMA_REQUEST_MIN_P] == 0.05

    assert embed[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert embed[semconv.GEN_AI_REQUEST_MODEL] == EMBED_MODEL
    assert embed[semconv.OLLAMA_REQUEST_TRUNCATE] is True
    assert embed[semconv.OLLAMA_REQUEST_KEEP_ALIVE] == "1m"
    assert embed[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 256


def test_generate_and_stream_end_with_the_done_record(otel: Otel, client: ollama.Client) -> None:
    plain = client.generate(model=MODEL, prompt="Tell me about mocks.")
    parts = list(client.generate(model=MODEL, prompt="Tell me about mocks.", stream=True))
    final = parts[-1]
    assert final.done and not parts[0].done

    first, second = otel.spans()
    assert first.name == second.name == f"text_completion {MODEL}"
    a = attrs(first)
    assert a[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    assert_server_timings(a, plain)
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)

    s = attrs(second)
    assert s[semconv.GEN_AI_REQUEST_STREAM] is True
    assert s[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS == sum(1 for p in parts if p.response)
    assert isinstance(s[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    assert tuple(s[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
    assert_server_timings(s, final)
    assert semconv.STREAM_CLOSED_EARLY not in s

    metrics = otel.metrics()
    ttft = metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK]
    assert ttft.unit == "s"
    (ttft_point,) = ttft.data.data_points  # type: ignore[attr-defined]
    assert tuple(ttft_point.explicit_bounds) == semconv.BUCKETS_DURATION
    assert ttft_point.sum == pytest.approx(s[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])
    assert ttft_point.attributes[semconv.GEN_AI_OPERATION_NAME] == "text_completion"
    per_chunk = metrics[semconv.METRIC_TIME_PER_OUTPUT_CHUNK]
    assert per_chunk.unit == "s"
    (chunk_point,) = per_chunk.data.data_points  # type: ignore[attr-defined]
    assert tuple(chunk_point.explicit_bounds) == semconv.BUCKETS_TIME_PER_CHUNK
    assert chunk_point.count == 1 and chunk_point.sum > 0  # default "mean": one value per stream
    (duration,) = metrics[semconv.METRIC_OPERATION_DURATION].data.data_points  # type: ignore[attr-defined]
    assert duration.count == 2


@pytest.mark.parametrize("ttft_ms", [20, 60])
def test_stream_ttft_matches_mock_within_2ms(
    otel: Otel, isolated_mock_server: MockServer, ttft_ms: int
) -> None:
    mock_server = isolated_mock_server
    finals: list[ollama.ChatResponse] = []

    def stream(client: ollama.Client) -> tuple[int, int]:
        called_ns = time.perf_counter_ns()
        texts, seen_ns, final = [], 0, None
        for part in client.chat(model=MODEL, messages=MESSAGES, stream=True):
            if part.message.content:
                seen_ns = seen_ns or time.perf_counter_ns()
                texts.append(part.message.content)
            final = part
        assert len(texts) == MOCK_OUTPUT_TOKENS and final is not None and final.done
        finals.append(final)
        return called_ns, seen_ns

    with client_with(mock_server, ttft_ms=ttft_ms) as client:
        # Warm up: connection and the SDK's first parse are no part of the measured TTFT. Another
        # model name keeps its metric points apart from the measured calls'.
        list(client.chat(model="llama-warm-up", messages=MESSAGES, stream=True))
        streams = first_undisturbed(
            lambda: timed_stream(otel, mock_server, lambda: stream(client)), ttft_ms / 1000
        )
    for timed, final in zip(streams, finals, strict=True):
        a = timed.attributes
        assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
        # The server's own timings describe the same request: load + prompt eval is its TTFT,
        # total runs from arrival to the done record.
        load_s = a[semconv.OLLAMA_RESPONSE_LOAD_DURATION]
        assert abs(load_s + a[semconv.OLLAMA_RESPONSE_PROMPT_EVAL_DURATION] - timed.served_s) < 0.001
        assert timed.record.last_byte_ns is not None
        total_s = (timed.record.last_byte_ns - timed.record.arrival_ns) / 1e9
        assert abs(a[semconv.OLLAMA_RESPONSE_TOTAL_DURATION] - total_s) < 0.001
        assert_server_timings(dict(a), final)
    # With the SDK's request building removed, TTFT is the configured delay within 2 ms.
    last = streams[-1]
    assert abs(last.ttft - last.sdk_send_s - ttft_ms / 1000) < 0.002, last.figures

    metrics = otel.metrics()

    def measured(points: Any) -> list[Any]:
        return [p for p in points if p.attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL]

    (ttft_point,) = measured(metrics[semconv.METRIC_TIME_TO_FIRST_CHUNK].data.data_points)  # type: ignore[attr-defined]
    assert ttft_point.count == len(streams)  # one per measured call
    assert ttft_point.sum == pytest.approx(sum(s.ttft for s in streams))
    (chunk_point,) = measured(metrics[semconv.METRIC_TIME_PER_OUTPUT_CHUNK].data.data_points)  # type: ignore[attr-defined]
    assert chunk_point.count == len(streams)  # default "mean": one value per stream
    assert abs(chunk_point.sum / chunk_point.count - MOCK_ITL_S) < 0.001


def test_tool_call_record_counts_as_content(otel: Otel, client: ollama.Client) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    parts = list(client.chat(model=MODEL, messages=MESSAGES, tools=tools, stream=True))
    calls = [p for p in parts if p.message.tool_calls]
    assert len(calls) == 1 and not calls[0].message.content
    a = attrs(only_span(otel))
    assert a[semconv.STREAM_CHUNK_COUNT] == 1
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a


def test_embed_and_legacy_embeddings(otel: Otel, client: ollama.Client) -> None:
    result = client.embed(model=EMBED_MODEL, input=["alpha", "beta"])
    legacy = client.embeddings(model=EMBED_MODEL, prompt="alpha")
    embed, old = otel.spans()
    assert embed.name == old.name == f"embeddings {EMBED_MODEL}"
    a = attrs(embed)
    assert a[semconv.GEN_AI_OPERATION_NAME] == "embeddings"
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == result.prompt_eval_count
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in a
    assert a[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == len(result.embeddings[0]) == 768
    assert a[semconv.OLLAMA_RESPONSE_TOTAL_DURATION] == pytest.approx(result.total_duration / 1e9)
    assert a[semconv.OLLAMA_RESPONSE_LOAD_DURATION] == pytest.approx(result.load_duration / 1e9)
    assert a[semconv.OLLAMA_RESPONSE_PROMPT_EVAL_COUNT] == result.prompt_eval_count
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == EMBED_MODEL
    o = attrs(old)
    assert o[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == len(legacy.embedding)
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in o  # the legacy endpoint reports no usage
    (usage,) = [p for p in otel.points(semconv.METRIC_TOKEN_USAGE)]
    assert usage.attributes[semconv.GEN_AI_TOKEN_TYPE] == "input"


def test_async_client_every_operation(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> tuple[Any, ...]:
        async with async_client_with(mock_server) as c:
            chat = await c.chat(model=MODEL, messages=MESSAGES, options={"temperature": 0.1})
            stream = await c.chat(model=MODEL, messages=MESSAGES, stream=True)
            chat_parts = [p async for p in stream]
            generated = await c.generate(model=MODEL, prompt="hi")
            gen_stream = await c.generate(model=MODEL, prompt="hi", stream=True)
            gen_parts = [p async for p in gen_stream]
            embedded = await c.embed(model=EMBED_MODEL, input="a")
            legacy = await c.embeddings(model=EMBED_MODEL, prompt="a")
            return chat, chat_parts, generated, gen_parts, embedded, legacy

    chat, chat_parts, generated, gen_parts, embedded, legacy = asyncio.run(run())
    spans = otel.spans()
    assert [s.name for s in spans] == [
        f"chat {MODEL}",
        f"chat {MODEL}",
        f"text_completion {MODEL}",
        f"text_completion {MODEL}",
        f"embeddings {EMBED_MODEL}",
        f"embeddings {EMBED_MODEL}",
    ]
    assert all(s.kind is SpanKind.CLIENT for s in spans)
    a = [attrs(s) for s in spans]
    assert a[0][semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.1
    assert_server_timings(a[0], chat)
    assert a[1][semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert_server_timings(a[1], chat_parts[-1])
    assert_server_timings(a[2], generated)
    assert a[3][semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert_server_timings(a[3], gen_parts[-1])
    assert a[4][semconv.GEN_AI_USAGE_INPUT_TOKENS] == embedded.prompt_eval_count
    assert a[5][semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == len(legacy.embedding)
    assert all(x[semconv.SERVER_PORT] == mock_port(mock_server) for x in a)
    assert all(semconv.ERROR_TYPE not in x for x in a)


def test_zero_and_missing_durations_give_no_rate() -> None:
    cached = ollama.ChatResponse(
        model=MODEL,
        message=ollama.Message(role="assistant", content="x"),
        done=True,
        prompt_eval_count=12,
        prompt_eval_duration=0,  # the whole prompt came from the KV cache
        eval_count=3,
    )
    timings = _extract.server_timings(cached)
    assert timings[semconv.OLLAMA_RESPONSE_PROMPT_EVAL_DURATION] == 0.0
    assert semconv.OLLAMA_RESPONSE_PROMPT_EVAL_RATE not in timings
    assert semconv.OLLAMA_RESPONSE_EVAL_RATE not in timings  # no eval_duration at all
    assert timings[semconv.OLLAMA_RESPONSE_EVAL_COUNT] == 3
    assert _extract.server_timings(ollama.ChatResponse(message=ollama.Message(role="assistant"))) == {}
