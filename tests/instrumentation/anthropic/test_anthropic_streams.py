"""Every way an Anthropic stream can end, ends its span once; errors keep the SDK's own exceptions."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import httpx2
import pytest

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import AnthropicInstrumentor, semconv

from ...conftest import MOCK_OUTPUT_TOKENS
from .conftest import API_KEY, MESSAGES, MODEL, Otel, headers, only_span

LONG = headers(output_tokens=20)


def _attrs(otel: Otel) -> dict[str, Any]:
    return dict(only_span(otel).attributes or {})


def _raw(client: anthropic.Anthropic, **extra: Any) -> anthropic.Stream[Any]:
    return client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, stream=True, **extra)


def _is_text(event: Any) -> bool:
    return event.type == "content_block_delta" and event.delta.type == "text_delta"


def test_raw_stream_keeps_its_type_and_attributes(otel: Otel, client: anthropic.Anthropic) -> None:
    stream = _raw(client)
    assert isinstance(stream, anthropic.Stream)
    assert stream.response.status_code == 200  # attribute access passes through
    assert stream.response.headers["request-id"]
    stream.close()
    assert len(otel.spans()) == 1


def test_raw_stream_abandoned_after_three_chunks_ends_on_gc(otel: Otel, client: anthropic.Anthropic) -> None:
    stream = _raw(client, extra_headers=LONG)
    seen = 0
    for event in stream:
        seen += _is_text(event)
        if seen == 3:
            break
    assert otel.spans() == []  # still open: the caller may resume iterating
    del stream, event
    gc.collect()
    a = _attrs(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == 3
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert semconv.ERROR_TYPE not in a
    # Input usage came with message_start; output usage never arrived and is not guessed.
    assert isinstance(a[semconv.GEN_AI_USAGE_INPUT_TOKENS], int)
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in a


def test_raw_stream_closed_early_twice(otel: Otel, client: anthropic.Anthropic) -> None:
    stream = _raw(client, extra_headers=LONG)
    next(stream)
    next(stream)
    stream.close()
    stream.close()
    assert _attrs(otel)[semconv.STREAM_CLOSED_EARLY] is True


def test_raw_stream_context_manager_exit(otel: Otel, client: anthropic.Anthropic) -> None:
    with _raw(client, extra_headers=LONG) as stream:
        assert isinstance(stream, anthropic.Stream)
        next(iter(stream))
    assert _attrs(otel)[semconv.STREAM_CLOSED_EARLY] is True
    otel.exporter.clear()
    with _raw(client) as stream:
        assert sum(map(_is_text, stream)) == MOCK_OUTPUT_TOKENS
    a = _attrs(otel)
    assert semconv.STREAM_CLOSED_EARLY not in a  # read to the end inside the block
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS


def test_helper_left_early_by_break_and_exit(otel: Otel, client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES, extra_headers=LONG) as stream:
        for i, _ in enumerate(stream.text_stream):
            if i == 1:
                break
        assert otel.spans() == []
    a = _attrs(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == 2
    otel.exporter.clear()

    with client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES, extra_headers=LONG) as stream:
        for event in stream:
            if event.type == "text":
                break
        stream.close()  # explicit close inside the block, then the exit: still one span
    assert _attrs(otel)[semconv.STREAM_CHUNK_COUNT] == 1


def test_helper_entered_without_with_then_dropped(otel: Otel, client: anthropic.Anthropic) -> None:
    manager = client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES, extra_headers=LONG)
    stream = manager.__enter__()
    next(iter(stream.text_stream))
    assert otel.spans() == []
    del manager, stream
    gc.collect()
    a = _attrs(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == 1


def test_helper_error_inside_the_block(otel: Otel, client: anthropic.Anthropic) -> None:
    with (
        pytest.raises(KeyError),
        client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream,
    ):
        next(iter(stream))
        raise KeyError("the app's own error")
    # The app failed, not the call: the span records an early close, not an error.
    a = _attrs(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert semconv.ERROR_TYPE not in a


def test_async_raw_stream_cancelled_midway(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> None:
        async with anthropic.AsyncAnthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
            stream = await c.messages.create(
                model=MODEL,
                max_tokens=100,
                messages=MESSAGES,
                stream=True,
                extra_headers=headers(output_tokens=50, itl_ms=20),
            )

            async def consume() -> None:
                async for _ in stream:
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.15)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await stream.close()

    asyncio.run(run())
    a = _attrs(otel)
    assert a[semconv.ERROR_TYPE] == "CancelledError"
    assert 0 < a[semconv.STREAM_CHUNK_COUNT] < 50


def test_async_helper_cancelled_midway(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> None:
        async with anthropic.AsyncAnthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:

            async def consume() -> None:
                async with c.messages.stream(
                    model=MODEL,
                    max_tokens=100,
                    messages=MESSAGES,
                    extra_headers=headers(output_tokens=50, itl_ms=20),
                ) as stream:
                    async for _ in stream.text_stream:
                        pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.15)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    a = _attrs(otel)
    assert a[semconv.ERROR_TYPE] == "CancelledError"
    assert 0 < a[semconv.STREAM_CHUNK_COUNT] < 50


def test_async_close_break_and_context_manager(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> None:
        async with anthropic.AsyncAnthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
            stream = await c.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, stream=True)
            assert isinstance(stream, anthropic.AsyncStream)
            await stream.__anext__()
            await stream.close()
            async with await c.messages.create(
                model=MODEL, max_tokens=50, messages=MESSAGES, stream=True
            ) as s2:
                async for _ in s2:
                    break
            async with c.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as s3:
                async for _ in s3:
                    break

    asyncio.run(run())
    spans = otel.spans()
    assert len(spans) == 3
    assert all((s.attributes or {})[semconv.STREAM_CLOSED_EARLY] is True for s in spans)


@pytest.mark.parametrize("shape", ["raw", "helper", "async"])
def test_server_disconnect_mid_stream_sets_error_type(
    otel: Otel, mock_server: MockServer, shape: str
) -> None:
    cut = headers(fault="disconnect:3")
    received: list[Any] = []
    # The SDK lets the transport's error through unwrapped (see tests/mock/test_anthropic.py).
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)) as info:
        if shape == "async":

            async def run() -> None:
                async with anthropic.AsyncAnthropic(
                    base_url=mock_server.anthropic_base_url, api_key=API_KEY
                ) as c:
                    stream = await c.messages.create(
                        model=MODEL, max_tokens=50, messages=MESSAGES, stream=True, extra_headers=cut
                    )
                    async for event in stream:
                        if _is_text(event):
                            received.append(event)

            asyncio.run(run())
        else:
            with anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
                if shape == "raw":
                    received.extend(e for e in _raw(c, extra_headers=cut) if _is_text(e))
                else:
                    with c.messages.stream(
                        model=MODEL, max_tokens=50, messages=MESSAGES, extra_headers=cut
                    ) as s:
                        received.extend(s.text_stream)
    a = _attrs(otel)
    assert len(received) == 3
    assert a[semconv.ERROR_TYPE] == type(info.value).__qualname__
    assert a[semconv.STREAM_CHUNK_COUNT] == 3
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in a


def _attempts(otel: Otel) -> list[dict[str, Any]]:
    (span,) = otel.spans()
    return [dict(e.attributes or {}) for e in span.events if e.name == semconv.EVENT_ATTEMPT]


@pytest.mark.parametrize("status", [429, 529])
def test_retry_then_200_is_one_span_with_attempt_events(
    otel: Otel, client: anthropic.Anthropic, mock_server: MockServer, status: int
) -> None:
    model = f"claude-retry-{status}"
    mock_server.script(model, [Fault.status(status, retry_after=0.05), Fault.ok()])
    message = client.messages.create(model=model, max_tokens=50, messages=MESSAGES)
    assert message.content
    first, second = _attempts(otel)
    assert (first[semconv.ATTEMPT_NUMBER], second[semconv.ATTEMPT_NUMBER]) == (1, 2)
    assert first[semconv.HTTP_RESPONSE_STATUS_CODE] == status
    assert first[semconv.ERROR_TYPE] == str(status)
    # The SDK honours retry-after: the wait it chose is what the server asked for.
    assert first[semconv.ATTEMPT_RETRY_WAIT] == pytest.approx(0.05, abs=0.001)
    assert second[semconv.HTTP_RESPONSE_STATUS_CODE] == 200
    assert semconv.ERROR_TYPE not in second
    a = _attrs(otel)
    assert a[semconv.ATTEMPT_COUNT] == 2
    assert semconv.ERROR_TYPE not in a
    assert a[semconv.GEN_AI_RESPONSE_ID] == message.id
    assert [r.status for r in mock_server.records if r.model == model] == [status, 200]


def test_retry_on_stream_helper_and_async(otel: Otel, mock_server: MockServer) -> None:
    model = "claude-retry-async"
    mock_server.script(
        model, [Fault.status(529, retry_after=0.02), Fault.status(429, retry_after=0.01), Fault.ok()]
    )

    async def run() -> str:
        async with (
            anthropic.AsyncAnthropic(
                base_url=mock_server.anthropic_base_url, api_key=API_KEY, max_retries=3
            ) as c,
            c.messages.stream(model=model, max_tokens=50, messages=MESSAGES) as stream,
        ):
            return await stream.get_final_text()

    assert len(asyncio.run(run()).split()) == MOCK_OUTPUT_TOKENS
    attempts = _attempts(otel)
    assert [x[semconv.ATTEMPT_NUMBER] for x in attempts] == [1, 2, 3]
    assert [x[semconv.HTTP_RESPONSE_STATUS_CODE] for x in attempts] == [529, 429, 200]
    assert [x.get(semconv.ATTEMPT_RETRY_WAIT) for x in attempts] == [
        pytest.approx(0.02, abs=0.001),
        pytest.approx(0.01, abs=0.001),
        None,  # the last attempt did not need a retry
    ]
    assert _attrs(otel)[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS


def test_retries_exhausted_fail_with_error_type(otel: Otel, mock_server: MockServer) -> None:
    model = "claude-retry-exhaust"
    mock_server.script(model, [Fault.status(529, retry_after=0.01), Fault.status(529)])
    with (
        anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY, max_retries=1) as c,
        pytest.raises(anthropic.OverloadedError),
    ):
        c.messages.create(model=model, max_tokens=50, messages=MESSAGES)
    attempts = _attempts(otel)
    assert [x[semconv.ATTEMPT_NUMBER] for x in attempts] == [1, 2]
    assert attempts[1][semconv.HTTP_RESPONSE_STATUS_CODE] == 529
    assert _attrs(otel)[semconv.ERROR_TYPE] == "OverloadedError"


def test_non_retried_400_reraises_sdk_exception_unchanged(otel: Otel, mock_server: MockServer) -> None:
    def call(model: str) -> anthropic.BadRequestError:
        mock_server.script(model, [Fault.status(400)])
        with (
            anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c,
            pytest.raises(anthropic.BadRequestError) as info,
        ):
            c.messages.create(model=model, max_tokens=50, messages=MESSAGES)
        return info.value

    instrumented = call("claude-bad-request")
    AnthropicInstrumentor().uninstrument()
    plain = call("claude-bad-request")
    assert type(instrumented) is type(plain) is anthropic.BadRequestError
    assert instrumented.status_code == plain.status_code == 400
    assert instrumented.body == plain.body
    assert str(instrumented).split("'request_id'")[0] == str(plain).split("'request_id'")[0]
    # The traceback ends in the SDK, not in our wrapper.
    tb = instrumented.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None and "anthropic" in tb.tb_frame.f_code.co_filename

    span = only_span(otel)
    a = dict(span.attributes or {})
    assert a[semconv.ERROR_TYPE] == "BadRequestError"
    assert span.status.is_ok is False
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.attributes[semconv.ERROR_TYPE] == "BadRequestError"
    assert [e for e in span.events if e.name == semconv.EVENT_ATTEMPT] == []


def test_error_event_mid_stream_sets_error_type(otel: Otel, client: anthropic.Anthropic) -> None:
    # Anthropic reports a failure after the stream began (an overloaded model, typically) as an
    # `error` event; the SDK raises it.
    with pytest.raises(anthropic.APIError) as info:
        list(_raw(client, extra_headers=headers(fault="error:2")))
    a = _attrs(otel)
    assert a[semconv.ERROR_TYPE] == type(info.value).__qualname__
    assert a[semconv.STREAM_CHUNK_COUNT] == 2
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.attributes[semconv.ERROR_TYPE] == type(info.value).__qualname__


def test_extended_thinking_times_the_answer_apart(otel: Otel, client: anthropic.Anthropic) -> None:
    # The mock thinks for 3 of 6 chunks, 40 ms apart: TTFT is the first thinking_delta's, and the
    # answer's first text_delta comes three gaps later.
    with client.messages.stream(
        model="thinker",
        max_tokens=2048,
        messages=MESSAGES,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_headers=headers(ttft_ms=20, itl_ms=40, output_tokens=6),
    ) as stream:
        text = "".join(stream.text_stream)
    assert len(text.split()) == 3
    a = only_span(otel).attributes or {}
    assert a[semconv.STREAM_CHUNK_COUNT] == 6  # the signature_delta is not a chunk
    ttft, answer = (
        a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK],
        a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK],
    )
    assert isinstance(ttft, float) and isinstance(answer, float)
    assert 0.02 <= ttft < 0.06 and 0.02 + 3 * 0.04 <= answer < 0.02 + 4 * 0.04
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(answer)
