"""The stream proxies' contract, on small fake streams (no SDK, no network)."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from typing import Any

import pytest

from otelbench_instrumentation import semconv
from otelbench_instrumentation.recorder import LLMRecorder, Telemetry
from otelbench_instrumentation.streams import AsyncStreamProxy, SyncStreamProxy, feed_reader, per_chunk

from .conftest import make_providers


class FakeStream:
    """Iterator with the extras SDK streams have (close, context manager, attributes)."""

    def __init__(self, items: list[Any], fail_at: int | None = None) -> None:
        self.items = items
        self.fail_at = fail_at
        self.i = 0
        self.closed = False
        self.response = "the-response"

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.fail_at is not None and self.i == self.fail_at:
            raise ConnectionResetError("peer went away")
        if self.i >= len(self.items):
            raise StopIteration
        self.i += 1
        return self.items[self.i - 1]

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_final(self) -> str:
        return "final"


class FakeAsyncStream:
    def __init__(self, items: list[Any], delay: float = 0.0) -> None:
        self.items = list(items)
        self.delay = delay
        self.closed = False

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        await asyncio.sleep(self.delay)
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)

    async def close(self) -> None:
        self.closed = True


def _count(recorder: LLMRecorder, chunk: Any) -> None:
    if chunk:
        recorder.on_chunk()


count_chunk = per_chunk(_count)


@pytest.fixture
def recorder_factory():  # type: ignore[no-untyped-def]
    exporter, tp, _, mp = make_providers()
    telemetry = Telemetry(tp, mp)

    def make() -> LLMRecorder:
        rec = telemetry.start_llm(operation="chat", provider="openai", request_model="m", streaming=True)
        assert rec is not None
        rec.deactivate()
        return rec

    make.exporter = exporter  # type: ignore[attr-defined]
    return make


def ended(factory: Any) -> list[Any]:
    return list(factory.exporter.get_finished_spans())


def only_point(reader: Any, name: str) -> Any:
    """The single data point of metric ``name``."""
    (point,) = [
        p
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]
    return point


def test_exhaustion_ends_once(recorder_factory: Any) -> None:
    stream = SyncStreamProxy(FakeStream(["", "a", "b"]), recorder_factory(), count_chunk)
    assert list(stream) == ["", "a", "b"]
    with pytest.raises(StopIteration):
        next(stream)
    stream.close()
    (span,) = ended(recorder_factory)
    assert (span.attributes or {})[semconv.STREAM_CHUNK_COUNT] == 2  # the empty chunk is not content


def test_attributes_and_isinstance_pass_through(recorder_factory: Any) -> None:
    inner = FakeStream(["a"])
    stream = SyncStreamProxy(inner, recorder_factory(), count_chunk)
    assert isinstance(stream, FakeStream)
    assert stream.response == "the-response"
    assert stream.get_final() == "final"
    with stream as entered:
        assert entered is stream
    assert inner.closed
    assert len(ended(recorder_factory)) == 1


def test_error_from_stream_is_reraised_and_recorded(recorder_factory: Any) -> None:
    stream = SyncStreamProxy(FakeStream(["a", "b", "c"], fail_at=2), recorder_factory(), count_chunk)
    with pytest.raises(ConnectionResetError, match="peer went away"):
        list(stream)
    (span,) = ended(recorder_factory)
    assert (span.attributes or {})[semconv.ERROR_TYPE] == "ConnectionResetError"


def test_break_then_gc_ends(recorder_factory: Any) -> None:
    stream = SyncStreamProxy(FakeStream(list("abcdef")), recorder_factory(), count_chunk)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    assert ended(recorder_factory) == []
    del stream
    gc.collect()
    (span,) = ended(recorder_factory)
    assert (span.attributes or {})[semconv.STREAM_CLOSED_EARLY] is True


def test_handler_errors_are_swallowed(recorder_factory: Any) -> None:
    def broken(recorder: LLMRecorder, chunk: Any) -> None:
        raise KeyError("bad chunk shape")

    assert list(SyncStreamProxy(FakeStream(["a", "b"]), recorder_factory(), per_chunk(broken))) == ["a", "b"]
    assert len(ended(recorder_factory)) == 1


def test_plain_generator_is_supported(recorder_factory: Any) -> None:
    def gen() -> Iterator[str]:
        yield "x"
        yield "y"

    assert list(SyncStreamProxy(gen(), recorder_factory(), count_chunk)) == ["x", "y"]
    assert len(ended(recorder_factory)) == 1


def test_async_exhaustion_close_and_cancel(recorder_factory: Any) -> None:
    async def run() -> None:
        s1 = AsyncStreamProxy(FakeAsyncStream(["a", "b"]), recorder_factory(), count_chunk)
        assert [x async for x in s1] == ["a", "b"]
        s2 = AsyncStreamProxy(FakeAsyncStream(["a", "b"]), recorder_factory(), count_chunk)
        await s2.__anext__()
        await s2.close()
        assert s2.closed is True
        s3 = AsyncStreamProxy(FakeAsyncStream(list("abcdefgh"), delay=0.02), recorder_factory(), count_chunk)

        async def consume() -> None:
            async for _ in s3:
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def agen() -> AsyncIterator[str]:
            yield "q"
            yield "r"

        s4 = AsyncStreamProxy(agen(), recorder_factory(), count_chunk)
        await s4.__anext__()
        await s4.aclose()

    asyncio.run(run())
    spans = ended(recorder_factory)
    assert len(spans) == 4
    errors = [(s.attributes or {}).get(semconv.ERROR_TYPE) for s in spans]
    assert errors == [None, None, "CancelledError", None]


def test_a_reader_that_cannot_set_itself_up_leaves_the_stream_untouched(recorder_factory: Any) -> None:
    def cannot_start(recorder: LLMRecorder, chunks: Iterable[Any]) -> Generator[Any, None, None]:
        raise RuntimeError("set-up bug")
        yield  # a generator function all the same

    stream = SyncStreamProxy(FakeStream(["a", "b"]), recorder_factory(), cannot_start)
    assert [next(stream), next(stream)] == ["a", "b"]
    with pytest.raises(StopIteration):
        next(stream)
    assert list(_async_items(["c"], recorder_factory(), cannot_start)) == ["c"]
    spans = ended(recorder_factory)
    assert len(spans) == 2 and all((s.attributes or {})[semconv.STREAM_CHUNK_COUNT] == 0 for s in spans)
    assert all(semconv.ERROR_TYPE not in (s.attributes or {}) for s in spans)


def _async_items(items: list[Any], recorder: LLMRecorder, reader: Any) -> list[Any]:
    async def run() -> list[Any]:
        return [x async for x in AsyncStreamProxy(FakeAsyncStream(items), recorder, reader)]

    return asyncio.run(run())


def test_a_loop_over_an_unreferenced_proxy_keeps_the_span_open_until_it_stops(recorder_factory: Any) -> None:
    # `for chunk in client.create(..., stream=True)`: the loop holds only the reader, and the
    # proxy is collected at once; the span must stay open until the loop is done with it.
    open_while_looping = []
    recorder = recorder_factory()
    for i, _ in enumerate(SyncStreamProxy(FakeStream(list("abcdef")), recorder, count_chunk)):
        gc.collect()
        open_while_looping.append(not recorder.ended)
        if i == 2:
            break
    gc.collect()
    whole = recorder_factory()
    for _ in SyncStreamProxy(FakeStream(list("xyz")), whole, count_chunk):
        gc.collect()
        open_while_looping.append(not whole.ended)
    assert open_while_looping == [True] * 6
    early, full = (s.attributes or {} for s in ended(recorder_factory))
    assert early[semconv.STREAM_CLOSED_EARLY] is True and early[semconv.STREAM_CHUNK_COUNT] == 3
    assert semconv.STREAM_CLOSED_EARLY not in full and full[semconv.STREAM_CHUNK_COUNT] == 3


def test_next_and_for_can_be_mixed(recorder_factory: Any) -> None:
    stream = SyncStreamProxy(FakeStream(list("abcd")), recorder_factory(), count_chunk)
    assert next(stream) == "a"
    assert list(stream) == ["b", "c", "d"]
    (span,) = ended(recorder_factory)
    assert (span.attributes or {})[semconv.STREAM_CHUNK_COUNT] == 4


def test_a_fed_reader_never_compares_chunks(recorder_factory: Any) -> None:
    # An SDK chunk's __eq__ runs Python code (pydantic): a comparison per chunk would cost more
    # than the reading itself.
    class Chunk:
        compared = 0

        def __eq__(self, other: object) -> bool:
            Chunk.compared += 1
            return False

        __hash__ = object.__hash__

    recorder = recorder_factory()
    put, take = feed_reader(count_chunk, recorder)
    for chunk in (Chunk(), Chunk()):
        put(chunk)
        assert take() is chunk
    assert Chunk.compared == 0


def test_a_fed_reader_leaves_the_ending_to_its_feeder(recorder_factory: Any) -> None:
    # The raw HTTP client feeds events in and ends (or fails) the recording itself, possibly
    # after it has let go of the reader: the reader's collection must not end it first.
    recorder = recorder_factory()
    put, take = feed_reader(count_chunk, recorder)
    for item in ("", "a", "b"):
        put(item)
        assert take() == item
    del put, take
    gc.collect()
    assert not recorder.ended
    recorder.fail(ConnectionResetError("peer went away"))
    (span,) = ended(recorder_factory)
    attrs = span.attributes or {}
    assert attrs[semconv.ERROR_TYPE] == "ConnectionResetError" and attrs[semconv.STREAM_CHUNK_COUNT] == 2
    assert semconv.STREAM_CLOSED_EARLY not in attrs


def _chat_chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> Any:
    from openai._models import construct_type
    from openai.types.chat import ChatCompletionChunk

    data = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m-1", "choices": choices}
    return construct_type(type_=ChatCompletionChunk, value={**data, "usage": usage})


@pytest.mark.parametrize("usage_in", ["own chunk", "finish chunk"])
def test_openai_chat_reader_reads_usage_where_servers_put_it(recorder_factory: Any, usage_in: str) -> None:
    from otelbench_instrumentation.providers.openai._extract import chat_chunks

    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    content = [_chat_chunk([{"index": 0, "delta": {"content": t}}]) for t in ("hi", " there")]
    if usage_in == "own chunk":  # OpenAI with stream_options.include_usage
        tail = [_chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]), _chat_chunk([], usage)]
    else:  # some compatible servers: with the finish reason
        tail = [_chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}], usage)]
    assert len(list(SyncStreamProxy(iter(content + tail), recorder_factory(), chat_chunks))) == 2 + len(tail)
    (span,) = ended(recorder_factory)
    attrs = span.attributes or {}
    assert attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 7 and attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert attrs[semconv.STREAM_CHUNK_COUNT] == 2
    assert attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[semconv.GEN_AI_RESPONSE_MODEL] == "m-1"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_openai_chat_reader_counts_reasoning_deltas(recorder_factory: Any, field: str) -> None:
    # Reasoning streamed before the answer (DeepSeek/xAI/vLLM name it reasoning_content;
    # OpenRouter, Groq and Ollama reasoning) is output: it counts as chunks and sets TTFT. An
    # empty reasoning field beside the answer's content does not add a chunk.
    from otelbench_instrumentation.providers.openai._extract import chat_chunks

    chunks = [
        _chat_chunk([{"index": 0, "delta": {"role": "assistant", "content": None, field: ""}}]),
        _chat_chunk([{"index": 0, "delta": {"content": None, field: "think"}}]),
        _chat_chunk([{"index": 0, "delta": {"content": "hi", field: None}}]),
        _chat_chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        # DeepSeek's own cache field, without OpenAI's prompt_tokens_details.
        _chat_chunk([], {"prompt_tokens": 9, "completion_tokens": 2, "prompt_cache_hit_tokens": 6}),
    ]
    assert len(list(SyncStreamProxy(iter(chunks), recorder_factory(), chat_chunks))) == 5
    (span,) = ended(recorder_factory)
    attrs = span.attributes or {}
    assert attrs[semconv.STREAM_CHUNK_COUNT] == 2
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs
    assert attrs[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 6


def test_responses_reader_counts_reasoning_summary_deltas(recorder_factory: Any) -> None:
    # With reasoning.summary set, a reasoning model streams its summary before the answer: output,
    # as Anthropic's thinking deltas are. Part boundaries are not chunks.
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent

    from otelbench_instrumentation.providers.openai._extract import on_response_event

    def event(kind: str, **fields: Any) -> Any:
        data = {"type": kind, "sequence_number": 0, "item_id": "rs_1", "output_index": 0, **fields}
        return construct_type(type_=ResponseStreamEvent, value=data)

    part = {"type": "summary_text", "text": ""}
    events = [
        event("response.reasoning_summary_part.added", summary_index=0, part=part),
        event("response.reasoning_summary_text.delta", summary_index=0, delta="Weighing"),
        event("response.reasoning_summary_text.delta", summary_index=0, delta=" options"),
        event("response.reasoning_summary_part.done", summary_index=0, part=part),
        event("response.reasoning_text.delta", content_index=0, delta="raw"),
        event("response.output_text.delta", content_index=0, delta="Answer", logprobs=[]),
    ]
    assert type(events[1]).__name__ == "ResponseReasoningSummaryTextDeltaEvent"
    assert len(list(SyncStreamProxy(iter(events), recorder_factory(), per_chunk(on_response_event)))) == 6
    (span,) = ended(recorder_factory)
    assert (span.attributes or {})[semconv.STREAM_CHUNK_COUNT] == 4


@pytest.mark.parametrize("timing", ["mean", "each"])
def test_long_streams_keep_bounded_chunk_times_in_mean_timing(timing: str) -> None:
    from otelbench_instrumentation._config import Settings
    from otelbench_instrumentation.recorder import CHUNK_TIMES_KEPT

    exporter, tp, reader, mp = make_providers()
    telemetry = Telemetry(tp, mp, Settings(chunk_timing=timing))  # type: ignore[arg-type]
    recorder = telemetry.start_llm(operation="chat", provider="openai", request_model="m", streaming=True)
    assert recorder is not None
    recorder.deactivate()
    ticks = itertools.count(1_000_000_000, 1_000_000)  # one chunk per ms
    recorder.clock = lambda: next(ticks)
    n = 3 * CHUNK_TIMES_KEPT + 7
    peak = 0
    for _ in SyncStreamProxy(FakeStream(["x"] * n), recorder, count_chunk):
        peak = max(peak, len(recorder.chunk_times))
    assert peak <= (CHUNK_TIMES_KEPT + 1 if timing == "mean" else n)
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})[semconv.STREAM_CHUNK_COUNT] == n
    point = only_point(reader, semconv.METRIC_TIME_PER_OUTPUT_CHUNK)
    assert point.count == (1 if timing == "mean" else n - 1)
    assert point.sum == pytest.approx(0.001 * (1 if timing == "mean" else n - 1))


def test_the_caller_may_say_when_the_response_ended() -> None:
    import time

    _, tp, reader, mp = make_providers()
    telemetry = Telemetry(tp, mp)

    def duration(end: Any) -> float:
        recorder = telemetry.start_llm(operation="chat", provider="openai", request_model="m")
        assert recorder is not None
        recorder.deactivate()
        started = time.perf_counter_ns()
        time.sleep(0.05)  # the caller got to the end 50 ms after the response ended
        recorder.end(end_ns=end(started))
        return float(only_point(reader, semconv.METRIC_OPERATION_DURATION).sum)

    # The time given (on the recorder's clock) ends the operation; the reader is cumulative.
    first = duration(lambda started: started + 1_000_000)
    assert first < 0.04
    # None, or a time before the start (a stale clock), means now.
    assert duration(lambda started: None) - first >= 0.05
    assert duration(lambda started: started - 10**12) - first >= 0.1
