"""Every way a stream can end, ends its span exactly once; errors keep the SDK's own exceptions."""

from __future__ import annotations

import asyncio
import gc

import openai
import pytest

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import semconv

from ..conftest import MOCK_OUTPUT_TOKENS
from .conftest import API_KEY, Otel, headers

MESSAGES = [{"role": "user", "content": "stream please"}]


def _stream(client: openai.OpenAI, **extra: object) -> openai.Stream:  # type: ignore[type-arg]
    return client.chat.completions.create(model="gpt-mock", messages=MESSAGES, stream=True, **extra)  # type: ignore[call-overload,no-any-return]


def _single(otel: Otel) -> dict:  # type: ignore[type-arg]
    spans = otel.spans()
    assert len(spans) == 1, [s.name for s in spans]
    return dict(spans[0].attributes or {})


def test_stream_keeps_its_type_and_attributes(otel: Otel, client: openai.OpenAI) -> None:
    stream = _stream(client)
    assert isinstance(stream, openai.Stream)
    assert stream.response.status_code == 200  # attribute access passes through
    stream.close()
    assert len(otel.spans()) == 1


def test_iterating_the_call_directly_keeps_the_span_open_to_the_end(
    otel: Otel, client: openai.OpenAI
) -> None:
    # No variable holds the stream: only the loop's iterator keeps it (and its span) alive.
    texts = [c.choices[0].delta.content for c in _stream(client) if c.choices and c.choices[0].delta.content]
    assert len(texts) == MOCK_OUTPUT_TOKENS
    a = _single(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert semconv.STREAM_CLOSED_EARLY not in a


def test_next_and_for_loop_share_one_stream(otel: Otel, client: openai.OpenAI) -> None:
    stream = _stream(client, extra_headers=headers(output_tokens=6))
    first = [next(stream), next(stream)]  # the role chunk and the first content chunk
    rest = list(stream)
    contents = [c.choices[0].delta.content for c in first + rest if c.choices and c.choices[0].delta.content]
    assert len(contents) == 6
    assert _single(otel)[semconv.STREAM_CHUNK_COUNT] == 6


def test_async_iterating_the_call_directly(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> int:
        async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            n = 0
            async for chunk in await c.chat.completions.create(
                model="gpt-mock", messages=MESSAGES, stream=True
            ):  # type: ignore[arg-type]
                n += bool(chunk.choices and chunk.choices[0].delta.content)
            return n

    assert asyncio.run(run()) == MOCK_OUTPUT_TOKENS
    a = _single(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
    assert semconv.STREAM_CLOSED_EARLY not in a


def test_abandoned_after_three_chunks_ends_on_gc(otel: Otel, client: openai.OpenAI) -> None:
    stream = _stream(client, extra_headers=headers(output_tokens=20))
    seen = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
        if seen == 3:
            break
    assert otel.spans() == []  # still open: the caller may resume iterating
    del stream, chunk
    gc.collect()
    a = _single(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == 3
    assert a[semconv.STREAM_CLOSED_EARLY] is True
    assert semconv.ERROR_TYPE not in a


def test_closed_early(otel: Otel, client: openai.OpenAI) -> None:
    stream = _stream(client, extra_headers=headers(output_tokens=20))
    next(stream)
    next(stream)
    stream.close()
    stream.close()  # twice: still one span
    a = _single(otel)
    assert a[semconv.STREAM_CLOSED_EARLY] is True


def test_context_manager_exit(otel: Otel, client: openai.OpenAI) -> None:
    with _stream(client, extra_headers=headers(output_tokens=20)) as stream:
        assert isinstance(stream, openai.Stream)
        first = next(iter(stream))
        assert first is not None
    _single(otel)
    # A fully consumed stream inside a with-block is not "closed early".
    otel.exporter.clear()
    with _stream(client) as stream:
        assert len([c for c in stream]) >= MOCK_OUTPUT_TOKENS
    a = _single(otel)
    assert semconv.STREAM_CLOSED_EARLY not in a
    assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS


def test_async_stream_cancelled_midway(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            stream = await c.chat.completions.create(
                model="gpt-mock",
                messages=MESSAGES,  # type: ignore[arg-type]
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
    a = _single(otel)
    assert a[semconv.ERROR_TYPE] == "CancelledError"
    assert 0 < a[semconv.STREAM_CHUNK_COUNT] < 50


def test_async_stream_closed_and_context_manager(otel: Otel, mock_server: MockServer) -> None:
    async def run() -> None:
        async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            stream = await c.chat.completions.create(model="gpt-mock", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            assert isinstance(stream, openai.AsyncStream)
            await stream.__anext__()
            await stream.close()
            async with await c.chat.completions.create(
                model="gpt-mock", messages=MESSAGES, stream=True
            ) as s2:  # type: ignore[arg-type]
                async for _ in s2:
                    break

    asyncio.run(run())
    spans = otel.spans()
    assert len(spans) == 2
    assert all((s.attributes or {})[semconv.STREAM_CLOSED_EARLY] is True for s in spans)


def test_server_disconnect_mid_stream_sets_error_type(otel: Otel, client: openai.OpenAI) -> None:
    stream = _stream(client, extra_headers=headers(fault="disconnect:3"))
    received = 0
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
    a = _single(otel)
    assert received == 3
    assert a[semconv.ERROR_TYPE] == type(info.value).__qualname__
    assert a[semconv.STREAM_CHUNK_COUNT] == 3


def test_retry_429_then_200_is_one_span_with_two_attempts(
    otel: Otel, client: openai.OpenAI, mock_server: MockServer
) -> None:
    model = "gpt-retry-429"
    mock_server.script(model, [Fault.status(429, retry_after=0.05), Fault.ok()])
    result = client.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    assert result.choices
    spans = otel.spans()
    assert len(spans) == 1
    span = spans[0]
    attempts = [e for e in span.events if e.name == semconv.EVENT_ATTEMPT]
    assert [e.attributes[semconv.ATTEMPT_NUMBER] for e in attempts] == [1, 2]  # type: ignore[index]
    first, second = (dict(e.attributes or {}) for e in attempts)
    assert first[semconv.HTTP_RESPONSE_STATUS_CODE] == 429
    assert first[semconv.ERROR_TYPE]
    # The SDK honours retry-after: the wait it chose is what the server asked for.
    assert first[semconv.ATTEMPT_RETRY_WAIT] == pytest.approx(0.05, abs=0.001)
    assert second[semconv.HTTP_RESPONSE_STATUS_CODE] == 200
    assert semconv.ERROR_TYPE not in second
    assert (span.attributes or {})[semconv.ATTEMPT_COUNT] == 2
    assert semconv.ERROR_TYPE not in (span.attributes or {})
    assert [r.status for r in mock_server.records if r.model == model] == [429, 200]


def test_retry_on_stream_and_async(otel: Otel, mock_server: MockServer) -> None:
    model = "gpt-retry-async"
    mock_server.script(model, [Fault.status(503), Fault.status(429, retry_after=0.01), Fault.ok()])

    async def run() -> int:
        async with openai.AsyncOpenAI(
            base_url=mock_server.openai_base_url, api_key=API_KEY, max_retries=3
        ) as c:
            stream = await c.chat.completions.create(model=model, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            return len([x async for x in stream])

    assert asyncio.run(run()) > 0
    (span,) = otel.spans()
    attempts = [dict(e.attributes or {}) for e in span.events if e.name == semconv.EVENT_ATTEMPT]
    assert [a[semconv.ATTEMPT_NUMBER] for a in attempts] == [1, 2, 3]
    assert [a.get(semconv.HTTP_RESPONSE_STATUS_CODE) for a in attempts] == [503, 429, 200]


def test_retries_exhausted_fail_with_error_type(otel: Otel, mock_server: MockServer) -> None:
    model = "gpt-retry-exhaust"
    mock_server.script(model, [Fault.status(500), Fault.status(500)])
    with (
        openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY, max_retries=1) as c,
        pytest.raises(openai.InternalServerError),
    ):
        c.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    (span,) = otel.spans()
    a = dict(span.attributes or {})
    assert a[semconv.ERROR_TYPE] == "InternalServerError"
    attempts = [dict(e.attributes or {}) for e in span.events if e.name == semconv.EVENT_ATTEMPT]
    assert [x[semconv.ATTEMPT_NUMBER] for x in attempts] == [1, 2]
    assert attempts[1][semconv.HTTP_RESPONSE_STATUS_CODE] == 500


def test_non_retried_400_reraises_sdk_exception_unchanged(otel: Otel, mock_server: MockServer) -> None:
    def call(model: str) -> openai.BadRequestError:
        mock_server.script(model, [Fault.status(400)])
        with (
            openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c,
            pytest.raises(openai.BadRequestError) as info,
        ):
            c.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
        return info.value

    instrumented = call("gpt-bad-request")
    from otelbench_instrumentation import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    plain = call("gpt-bad-request")
    assert type(instrumented) is type(plain) is openai.BadRequestError
    assert instrumented.status_code == plain.status_code == 400
    assert instrumented.body == plain.body
    assert str(instrumented) == str(plain)
    # The traceback ends in the SDK, not in our wrapper.
    tb = instrumented.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None and "openai" in tb.tb_frame.f_code.co_filename

    (span,) = otel.spans()
    a = dict(span.attributes or {})
    assert a[semconv.ERROR_TYPE] == "BadRequestError"
    assert span.status.is_ok is False
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.attributes[semconv.ERROR_TYPE] == "BadRequestError"
    assert [e for e in span.events if e.name == semconv.EVENT_ATTEMPT] == []


def test_error_event_mid_stream_sets_error_type(otel: Otel, client: openai.OpenAI) -> None:
    # OpenAI reports a failure after the stream began as an event carrying an error object; the
    # SDK raises it, and the span and every metric point name it.
    stream = _stream(client, extra_headers=headers(fault="error:2"))
    with pytest.raises(openai.APIError) as info:
        list(stream)
    a = _single(otel)
    assert a[semconv.ERROR_TYPE] == type(info.value).__qualname__ == "APIError"
    assert a[semconv.STREAM_CHUNK_COUNT] == 2
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.attributes[semconv.ERROR_TYPE] == "APIError"


def test_failed_response_event_sets_error_type(otel: Otel, client: openai.OpenAI) -> None:
    # The Responses API ends a failing stream with response.failed and raises nothing: the
    # operation failed all the same, with the error's code as error.type.
    events = list(
        client.responses.create(
            model="gpt-4o-mini", input="hi", stream=True, extra_headers=headers(fault="error:2")
        )
    )
    assert events[-1].type == "response.failed"
    span = otel.spans()[-1]
    a = span.attributes or {}
    assert a[semconv.ERROR_TYPE] == "server_error"
    assert a[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
    assert a[semconv.STREAM_CHUNK_COUNT] == 2
    assert span.status.status_code.name == "ERROR" and span.status.description == "server_error"
    (point,) = otel.points(semconv.METRIC_OPERATION_DURATION)
    assert point.attributes[semconv.ERROR_TYPE] == "server_error"


# A Responses reasoning stream: 3 reasoning deltas then 3 answer deltas, 60 ms apart.
SLOW_THOUGHT = headers(ttft_ms=20, itl_ms=60, output_tokens=6)


@pytest.mark.parametrize(
    ("model", "reasoning"),
    [("o4-mini-reasoning", {"summary": "auto"}), ("gpt-oss-20b", None)],
    ids=["summary", "raw-text"],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_responses_reasoning_deltas_are_chunks_before_the_answer(
    otel: Otel, mock_server: MockServer, model: str, reasoning: object, kind: str
) -> None:
    # A reasoning summary (or gpt-oss's raw reasoning) streams before the answer: TTFT is the
    # first reasoning delta's, the answer's own time three 60 ms gaps later, as with DeepSeek.
    extra: dict[str, object] = {"extra_headers": SLOW_THOUGHT}
    if reasoning:
        extra["reasoning"] = reasoning
    if kind == "sync":
        with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as client:
            events = list(client.responses.create(model=model, input="think", stream=True, **extra))  # type: ignore[call-overload]
    else:

        async def main() -> list[object]:
            async with openai.AsyncOpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as client:
                stream = await client.responses.create(model=model, input="think", stream=True, **extra)  # type: ignore[call-overload]
                return [e async for e in stream]

        events = asyncio.run(main())
    kinds = [getattr(e, "type", None) for e in events]
    assert sum(1 for k in kinds if k and k.startswith("response.reasoning") and k.endswith("text.delta")) == 3
    a = _single(otel)
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0.02 <= ttft < 0.02 + 0.06  # the first reasoning delta, not the answer's
    answer = a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK]
    assert 0.02 + 3 * 0.06 <= answer < 0.02 + 4 * 0.06
    (point,) = otel.points(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK)
    assert point.count == 1 and point.sum == pytest.approx(answer)
    assert a[semconv.STREAM_CHUNK_COUNT] == 6
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 6
    assert a[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 3


def test_responses_hidden_reasoning_answers_with_the_first_chunk(otel: Otel, client: openai.OpenAI) -> None:
    # Without a summary a reasoning model's thinking streams nothing: its reasoning item is no
    # chunk, the first answer delta is both times, and the reasoning tokens still count.
    events = list(
        client.responses.create(
            model="o4-mini-reasoning", input="think", stream=True, extra_headers=SLOW_THOUGHT
        )
    )
    final = events[-1]
    assert final.type == "response.completed"
    assert [o.type for o in final.response.output] == ["reasoning", "message"]
    a = _single(otel)
    assert a[semconv.STREAM_CHUNK_COUNT] == 6
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0.02 <= ttft < 0.02 + 0.06
    assert a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK] == ttft
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert a[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 3
