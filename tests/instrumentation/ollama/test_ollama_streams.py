"""Ollama streams are plain (async) generators: they stay generators, and every way one can end
ends its span exactly once; HTTP errors keep the SDK's own exception."""

from __future__ import annotations

import asyncio
import collections.abc
import gc
import inspect
import types
from typing import Any

import httpx
import ollama
import pytest

from otelbench.mock import MockServer
from otelbench_instrumentation import OllamaInstrumentor, semconv

from ...conftest import MOCK_OUTPUT_TOKENS
from ..conftest import Otel, only_span
from .conftest import MESSAGES, MODEL, async_client_with, attrs, client_with


def _single(otel: Otel) -> dict[str, Any]:
    return attrs(only_span(otel))


def test_stream_is_still_a_generator(otel: Otel, client: ollama.Client) -> None:
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
    assert isinstance(stream, types.GeneratorType)
    assert isinstance(stream, collections.abc.Generator)
    assert inspect.isgenerator(stream)
    assert inspect.getgeneratorstate(stream) == inspect.GEN_CREATED
    assert stream.gi_frame is not None  # generator attributes pass through
    assert iter(stream) is stream
    first = next(stream)
    assert isinstance(first, ollama.ChatResponse)
    assert inspect.getgeneratorstate(stream) == inspect.GEN_SUSPENDED
    rest = list(stream)
    assert len(rest) == MOCK_OUTPUT_TOKENS and rest[-1].done
    assert inspect.getgeneratorstate(stream) == inspect.GEN_CLOSED
    a = _single(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert semconv.STREAM_CLOSED_EARLY not in a
    with pytest.raises(StopIteration):
        next(stream)  # an exhausted generator stays exhausted; still one span
    assert len(otel.spans()) == 1


def test_break_then_gc_ends_once(otel: Otel, mock_server: MockServer) -> None:
    with client_with(mock_server, output_tokens=20) as client:
        stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
        seen = 0
        for part in stream:
            seen += bool(part.message.content)
            if seen == 3:
                break
        assert otel.spans() == []  # still open: the caller may resume iterating
        del stream, part
        gc.collect()
    a = _single(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == 3
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert semconv.ERROR_TYPE not in a
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in a  # the done record never came


def test_close_ends_once_and_closes_the_generator(otel: Otel, mock_server: MockServer) -> None:
    with client_with(mock_server, output_tokens=20) as client:
        stream = client.generate(model=MODEL, prompt="hi", stream=True)
        next(stream)
        next(stream)
        stream.close()
        stream.close()  # twice: still one span
        assert inspect.getgeneratorstate(stream) == inspect.GEN_CLOSED
        with pytest.raises(StopIteration):
            next(stream)
    a = _single(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == 2


def test_stream_never_iterated_sends_nothing_and_ends_on_gc(
    otel: Otel, client: ollama.Client, mock_server: MockServer
) -> None:
    mock_server.clear_records()
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
    del stream
    gc.collect()
    a = _single(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == 0
    assert mock_server.records == []  # the SDK sends the request on the first iteration


def test_async_stream_is_still_an_async_generator_and_aclose_ends_once(
    otel: Otel, mock_server: MockServer
) -> None:
    async def run() -> None:
        async with async_client_with(mock_server, output_tokens=20) as c:
            stream = await c.chat(model=MODEL, messages=MESSAGES, stream=True)
            assert isinstance(stream, types.AsyncGeneratorType)
            assert isinstance(stream, collections.abc.AsyncGenerator)
            assert inspect.isasyncgen(stream)
            assert stream.__aiter__() is stream
            first = await stream.__anext__()
            assert isinstance(first, ollama.ChatResponse)
            await stream.aclose()
            await stream.aclose()
            assert stream.ag_frame is None  # closed, as the SDK's own generator would be
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()

    asyncio.run(run())
    a = _single(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == 1


def test_async_break_then_gc_ends_once(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> None:
        async with async_client_with(mock_server, output_tokens=20) as c:
            stream = await c.generate(model=MODEL, prompt="hi", stream=True)
            async for part in stream:
                if part.response:
                    break
            del stream, part
            gc.collect()
            assert len(otel.spans()) == 1  # ended by the abandoned proxy, before the loop closes

    asyncio.run(run())
    a = _single(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert a[semconv.STREAM_CHUNK_COUNT] == 1


def test_async_stream_cancelled_midway(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> None:
        async with async_client_with(mock_server, output_tokens=50, itl_ms=20) as c:
            stream = await c.chat(model=MODEL, messages=MESSAGES, stream=True)

            async def consume() -> None:
                async for _ in stream:
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.15)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await stream.aclose()

    asyncio.run(run())
    a = _single(otel)
    assert a[semconv.ERROR_TYPE] == "CancelledError"
    assert 0 < a[semconv.STREAM_CHUNK_COUNT] < 50


def test_server_disconnect_mid_stream_sync_and_async(otel: Otel, mock_server: MockServer) -> None:
    received = 0
    with (
        client_with(mock_server, fault="disconnect:3", output_tokens=20) as client,
        pytest.raises(httpx.RemoteProtocolError),  # the SDK does not wrap transport errors
    ):
        for part in client.chat(model=MODEL, messages=MESSAGES, stream=True):
            received += bool(part.message.content)
    assert received == 3

    async def run() -> int:
        got = 0
        async with async_client_with(mock_server, fault="disconnect:3", output_tokens=20) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                async for part in await c.generate(model=MODEL, prompt="hi", stream=True):
                    got += bool(part.response)
        return got

    assert asyncio.run(run()) == 3
    spans = otel.spans()
    assert len(spans) == 2
    for span in spans:
        a = attrs(span)
        assert a[semconv.ERROR_TYPE] == "RemoteProtocolError"
        assert a[semconv.STREAM_CHUNK_COUNT] == 3
        assert span.status.is_ok is False


def _response_error(server: MockServer, code: int, stream: bool) -> ollama.ResponseError:
    with client_with(server, fault=code) as client, pytest.raises(ollama.ResponseError) as info:
        if stream:
            list(client.chat(model=MODEL, messages=MESSAGES, stream=True))
        else:
            client.chat(model=MODEL, messages=MESSAGES)
    return info.value


@pytest.mark.parametrize("code", [404, 500])
def test_http_error_reraises_the_sdk_exception_unchanged(
    otel: Otel, mock_server: MockServer, code: int
) -> None:
    instrumented = _response_error(mock_server, code, stream=False)
    streamed = _response_error(mock_server, code, stream=True)
    OllamaInstrumentor().uninstrument()
    plain = _response_error(mock_server, code, stream=False)
    plain_streamed = _response_error(mock_server, code, stream=True)
    for ours, theirs in ((instrumented, plain), (streamed, plain_streamed)):
        assert type(ours) is type(theirs) is ollama.ResponseError
        assert ours.status_code == theirs.status_code == code
        assert ours.error == theirs.error
        assert str(ours) == str(theirs)
        # The traceback still ends in the SDK, not in our wrapper.
        tb = ours.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        assert tb is not None and "ollama" in tb.tb_frame.f_code.co_filename

    plain_span, stream_span = otel.spans()
    for span in (plain_span, stream_span):
        assert attrs(span)[semconv.ERROR_TYPE] == "ResponseError"
        assert span.status.is_ok is False
    # A non-streamed call raises inside our wrapper, so its HTTP status is known; a stream
    # raises it from inside the SDK's generator.
    assert attrs(plain_span)[semconv.HTTP_RESPONSE_STATUS_CODE] == code
    assert attrs(stream_span)[semconv.STREAM_CHUNK_COUNT] == 0
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.count == 2
    assert point.attributes[semconv.ERROR_TYPE] == "ResponseError"


def test_async_http_error_reraises_unchanged(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> ollama.ResponseError:
        async with async_client_with(mock_server, fault=503) as c:
            with pytest.raises(ollama.ResponseError) as info:
                await c.generate(model=MODEL, prompt="hi")
            return info.value

    error = asyncio.run(run())
    assert error.status_code == 503
    a = _single(otel)
    assert a[semconv.ERROR_TYPE] == "ResponseError"
    assert a[semconv.HTTP_RESPONSE_STATUS_CODE] == 503


def test_error_line_mid_stream_sets_error_type(otel: Otel, mock_server: MockServer) -> None:
    # Ollama reports a failure after the stream began (the runner died, out of memory...) as an
    # {"error": ...} line; the client raises it as ResponseError.
    received = 0
    with client_with(mock_server, fault="error:2") as client, pytest.raises(ollama.ResponseError):
        for part in client.chat(model=MODEL, messages=MESSAGES, stream=True):
            received += bool(part.message.content)
    assert received == 2
    span = only_span(otel)
    a = attrs(span)
    assert a[semconv.ERROR_TYPE] == "ResponseError" and a[semconv.STREAM_CHUNK_COUNT] == 2
    assert span.status.is_ok is False


def test_think_times_the_answer_apart(otel: Otel, mock_server: MockServer) -> None:
    # With `think`, the mock's first 3 of 6 records are thinking, 40 ms apart: TTFT is the first
    # thinking record's, and the answer's first record comes three gaps later.
    with client_with(mock_server, ttft_ms=20, itl_ms=40, output_tokens=6) as client:
        parts = list(client.chat(model=MODEL, messages=MESSAGES, stream=True, think=True))
    assert sum(1 for p in parts if p.message.thinking) == 3
    a = _single(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == 6
    ttft, answer = (
        a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK],
        a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK],
    )
    assert 0.02 <= ttft < 0.06 and 0.02 + 3 * 0.04 <= answer < 0.02 + 4 * 0.04
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(answer)
