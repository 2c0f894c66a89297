"""Streamed Bedrock calls (EventStream) through real boto3 against the mock: timing and early exits."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.eventstream import EventStream

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import semconv

from ...conftest import MOCK_OUTPUT_TOKENS, MOCK_TTFT_S, first_undisturbed
from ..conftest import headers, only_span, timed_stream
from .conftest import MESSAGES, MODEL, PROMPT, Otel, bedrock_client

NOVA = "amazon.nova-micro-v1:0"
# botocore leaves the socket of an abandoned EventStream to the garbage collector, which warns
# (ResourceWarning) with or without instrumentation; the span ending is what these tests check.
_ABANDONED_SOCKET = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _anthropic_body(max_tokens: int = 100) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    )


@pytest.fixture
def isolated_client(isolated_mock_server: MockServer) -> Iterator[Any]:
    """A client of the mock in its own process, so server timings do not share our GIL."""
    client = bedrock_client(isolated_mock_server)
    yield client
    client.close()


def test_converse_stream_ttft_matches_mock_within_2ms_and_all_metrics(
    otel: Otel, isolated_client: Any, isolated_mock_server: MockServer
) -> None:
    client, server = isolated_client, isolated_mock_server
    # Warm up: botocore loads its models and event-stream parser on first use.
    list(client.converse_stream(modelId="bedrock-warm-up", messages=MESSAGES)["stream"])

    def stream() -> tuple[int, int]:
        called_ns = time.perf_counter_ns()
        response = client.converse_stream(modelId=MODEL, messages=MESSAGES)
        assert isinstance(response, dict) and set(response) == {"ResponseMetadata", "stream"}
        assert isinstance(response["stream"], EventStream)
        texts, seen_ns = [], 0
        for event in response["stream"]:
            if "contentBlockDelta" in event:
                seen_ns = seen_ns or time.perf_counter_ns()
                texts.append(event["contentBlockDelta"]["delta"]["text"])
        assert len(texts) == MOCK_OUTPUT_TOKENS
        return called_ns, seen_ns

    # The lower bound counts from the span's own start: the instrumentation starts inside
    # botocore's call, after called_ns (0.6 ms after it once in CI).
    streams = first_undisturbed(lambda: timed_stream(otel, server, stream, from_span_start=True), MOCK_TTFT_S)
    ttfts = [s.ttft for s in streams]
    last, a = streams[-1], streams[-1].attributes
    # TTFT runs from the call; what botocore spends building and signing the request is measured
    # from the mock's ground truth and subtracted, as for the other SDKs.
    assert abs(last.ttft - last.sdk_send_s - MOCK_TTFT_S) < 0.002, last.figures
    assert a[semconv.GEN_AI_REQUEST_STREAM] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == MOCK_OUTPUT_TOKENS
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("end_turn",)  # type: ignore[arg-type]
    assert semconv.STREAM_CLOSED_EARLY not in a

    def measured(name: str) -> list[Any]:
        return [p for p in otel.points(name) if p.attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL]

    (ttft_point,) = measured(semconv.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttft_point.count == len(ttfts)  # one per measured call
    assert ttft_point.sum == pytest.approx(sum(ttfts))
    (chunk_point,) = measured(semconv.METRIC_TIME_PER_OUTPUT_CHUNK)
    assert chunk_point.count == len(ttfts) and 0.0 < chunk_point.sum / chunk_point.count < 0.05
    (duration,) = measured(semconv.METRIC_OPERATION_DURATION)
    assert duration.count == len(ttfts) and duration.sum >= sum(ttfts)
    assert {p.attributes[semconv.GEN_AI_TOKEN_TYPE] for p in measured(semconv.METRIC_TOKEN_USAGE)} == {
        "input",
        "output",
    }


@pytest.mark.parametrize("family", ["anthropic", "nova"])
def test_invoke_with_response_stream(otel: Otel, client: Any, family: str) -> None:
    if family == "anthropic":
        model, body = MODEL, _anthropic_body(max_tokens=5)
    else:
        model = NOVA
        body = json.dumps(
            {"schemaVersion": "messages-v1", "messages": MESSAGES, "inferenceConfig": {"max_new_tokens": 5}}
        )
    response = client.invoke_model_with_response_stream(modelId=model, body=body)
    assert set(response) >= {"ResponseMetadata", "body", "contentType"}
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    assert len(chunks) >= 5
    a = only_span(otel).attributes or {}
    assert a[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 5
    assert a[semconv.STREAM_CHUNK_COUNT] == 5
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert isinstance(a[semconv.GEN_AI_USAGE_INPUT_TOKENS], int)
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("max_tokens",)  # type: ignore[arg-type]
    assert a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert len(otel.points(semconv.METRIC_TIME_PER_OUTPUT_CHUNK)) == 1


@_ABANDONED_SOCKET
def test_break_then_garbage_collection_ends_the_span(otel: Otel, client: Any) -> None:
    response = client.converse_stream(modelId=MODEL, messages=MESSAGES)
    for seen, _event in enumerate(response["stream"]):
        if seen == 3:
            break
    assert otel.spans() == []
    del response, _event
    gc.collect()
    a = only_span(otel).attributes or {}
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == 3  # messageStart carries no content
    assert semconv.ERROR_TYPE not in a


def test_close_ends_the_span_once(otel: Otel, client: Any) -> None:
    response = client.invoke_model_with_response_stream(modelId=MODEL, body=_anthropic_body())
    stream = response["body"]
    next(iter(stream))
    stream.close()
    stream.close()
    a = only_span(otel).attributes or {}
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert len(otel.points(semconv.METRIC_OPERATION_DURATION)) == 1


@_ABANDONED_SOCKET
def test_never_iterated_stream_ends_when_dropped(otel: Otel, client: Any) -> None:
    client.converse_stream(modelId=MODEL, messages=MESSAGES)
    gc.collect()
    a = only_span(otel).attributes or {}
    assert a[semconv.STREAM_CLOSED_EARLY] is True and a[semconv.STREAM_CHUNK_COUNT] == 0


def test_server_disconnect_mid_stream_sets_error_type(otel: Otel, mock_server: MockServer) -> None:
    model = "bedrock-disconnecting-model"
    mock_server.script(model, [Fault.disconnect(2)])
    client = bedrock_client(mock_server)
    response = client.converse_stream(modelId=model, messages=MESSAGES)
    received = []
    with pytest.raises(Exception) as info:
        for event in response["stream"]:
            received.append(event)
    span = only_span(otel)
    a = span.attributes or {}
    assert a[semconv.ERROR_TYPE] == type(info.value).__qualname__
    assert a[semconv.STREAM_CHUNK_COUNT] == 2
    client.close()


def test_throttled_stream_retried_then_timed(otel: Otel, mock_server: MockServer) -> None:
    model = "bedrock-throttled-stream"
    mock_server.script(model, [Fault.status(429), Fault.ok()])
    client = bedrock_client(mock_server)
    response = client.converse_stream(modelId=model, messages=MESSAGES)
    list(response["stream"])
    span = only_span(otel)
    a = span.attributes or {}
    assert a[semconv.ATTEMPT_COUNT] == 2 and a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    events = [dict(e.attributes or {}) for e in span.events]
    assert events[0][semconv.ERROR_TYPE] == "ThrottlingException"
    assert events[1][semconv.HTTP_RESPONSE_STATUS_CODE] == 200
    client.close()


def test_exception_event_mid_stream_sets_error_type(otel: Otel, mock_server: MockServer) -> None:
    # Bedrock reports a failure after the stream began as an exception message
    # (internalServerException); botocore raises it while the app iterates.
    model = "bedrock-stream-error-model"
    mock_server.script(model, [Fault.stream_error(2)])
    client = bedrock_client(mock_server)
    response = client.converse_stream(modelId=model, messages=MESSAGES)
    with pytest.raises(Exception) as info:
        list(response["stream"])
    response["stream"].close()  # botocore leaves the connection to the caller after an error
    assert "internalServerException" in str(info.value)
    a = only_span(otel).attributes or {}
    assert a[semconv.ERROR_TYPE] == type(info.value).__qualname__
    assert a[semconv.STREAM_CHUNK_COUNT] == 2
    client.close()


THINKING = {"type": "enabled", "budget_tokens": 1024}


def _mock_headers(client: Any, **values: Any) -> None:
    """Send the mock's per-request settings (``x-mock-*``) with every call of this boto3 client."""

    def add(request: Any, **_: Any) -> None:
        for name, value in headers(**values).items():
            request.headers[name] = value

    client.meta.events.register("before-sign.bedrock-runtime.*", add)


def _converse_thinking(client: Any) -> tuple[int, int]:
    response = client.converse_stream(
        modelId=MODEL,
        messages=MESSAGES,
        inferenceConfig={"maxTokens": 2048},
        additionalModelRequestFields={"thinking": THINKING},
    )
    deltas = [e["contentBlockDelta"]["delta"] for e in response["stream"] if "contentBlockDelta" in e]
    reasoning = sum(1 for d in deltas if d.get("reasoningContent", {}).get("text"))
    return reasoning, sum(1 for d in deltas if d.get("text"))


def _invoke_thinking(client: Any) -> tuple[int, int]:
    body = json.loads(_anthropic_body(max_tokens=2048))
    response = client.invoke_model_with_response_stream(
        modelId=MODEL, body=json.dumps({**body, "thinking": THINKING})
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    kinds = [c["delta"]["type"] for c in chunks if c["type"] == "content_block_delta"]
    return kinds.count("thinking_delta"), kinds.count("text_delta")


@pytest.mark.parametrize("call", [_converse_thinking, _invoke_thinking], ids=["converse", "invoke"])
def test_extended_thinking_times_the_answer_apart(
    otel: Otel, isolated_mock_server: MockServer, call: Any
) -> None:
    # The mock thinks for 3 of 6 chunks, 40 ms apart: TTFT is the first reasoning chunk's, and
    # the answer's first text delta comes three gaps later.
    client = bedrock_client(isolated_mock_server)
    _mock_headers(client, ttft_ms=20, itl_ms=40, output_tokens=6)
    try:
        assert call(client) == (3, 3)
    finally:
        client.close()
    a = only_span(otel).attributes or {}
    assert a[semconv.STREAM_CHUNK_COUNT] == 6  # the signature delta is not a chunk
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 6
    ttft, answer = (
        a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK],
        a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK],
    )
    assert isinstance(ttft, float) and isinstance(answer, float)
    assert 0.02 <= ttft < 0.06
    assert answer - ttft == pytest.approx(3 * 0.04, abs=0.02)
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(answer)
    (first,) = otel.points(semconv.METRIC_TIME_TO_FIRST_CHUNK)
    assert first.count == 1 and first.sum == pytest.approx(ttft)
