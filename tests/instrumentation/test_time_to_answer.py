"""Time to the first answer chunk (thinking models stream reasoning first), in every stream reader.

Each reader gets the SDK's own chunk types (or, for Bedrock, the event dicts botocore yields) and
a clock that ticks 1 ms per chunk, so the time from the first chunk (TTFT) to the first answer
chunk is exact: one tick per reasoning chunk before it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from otelbench_instrumentation import semconv
from otelbench_instrumentation._config import Settings
from otelbench_instrumentation.providers.anthropic import _extract as anthropic_extract
from otelbench_instrumentation.providers.bedrock import _extract as bedrock_extract
from otelbench_instrumentation.providers.ollama import _extract as ollama_extract
from otelbench_instrumentation.providers.openai import _extract as openai_extract
from otelbench_instrumentation.recorder import CHUNK_TIMES_KEPT, Telemetry
from otelbench_instrumentation.streams import SyncStreamProxy, per_chunk

from .conftest import Otel, make_providers

TICK_S = 0.001


def run(reader: Any, chunks: Iterable[Any], timing: str = "mean") -> tuple[dict[str, Any], list[Any]]:
    """Stream ``chunks`` through ``reader`` (1 ms per clock read); the span's attributes and the
    time-to-first-answer data points."""
    exporter, tp, metric_reader, mp = make_providers()
    telemetry = Telemetry(tp, mp, Settings(chunk_timing=timing))  # type: ignore[arg-type]
    recorder = telemetry.start_llm(operation="chat", provider="p", request_model="m", streaming=True)
    assert recorder is not None
    recorder.deactivate()
    ticks = itertools.count(time.perf_counter_ns(), int(TICK_S * 1e9))  # after the span's start
    recorder.clock = lambda: next(ticks)
    items = list(chunks)
    assert len(list(SyncStreamProxy(iter(items), recorder, reader))) == len(items)
    otel = Otel(exporter, metric_reader, tp, mp)
    (span,) = otel.spans()
    return dict(span.attributes or {}), otel.points(semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK)


def answer_after_first_chunk(attrs: dict[str, Any], points: list[Any]) -> float | None:
    """Seconds from the first chunk to the first answer chunk (None: not recorded), checking the
    metric agrees with the span."""
    answer = attrs.get(semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK)
    if answer is None:
        assert points == []
        return None
    (point,) = points
    assert point.count == 1 and point.sum == pytest.approx(answer)
    return float(answer) - float(attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])


# --- the chunks of each provider, built from "r" (reasoning), "a" (answer text), "t" (tool call)


def openai_chat(kinds: str, field: str = "reasoning_content") -> list[Any]:
    from openai._models import construct_type
    from openai.types.chat import ChatCompletionChunk

    def chunk(delta: dict[str, Any]) -> Any:
        value = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": []}
        value["choices"] = [{"index": 0, "delta": delta}]
        return construct_type(type_=ChatCompletionChunk, value=value)

    tool = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    deltas = {"r": {"content": None, field: "hm"}, "a": {"content": "hi"}, "t": {"tool_calls": [tool]}}
    return [chunk({"role": "assistant", "content": ""})] + [chunk(deltas[k]) for k in kinds]


def openai_responses(kinds: str) -> list[Any]:
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent

    def event(kind: str) -> Any:
        value = {"type": kind, "sequence_number": 0, "item_id": "i", "output_index": 0, "delta": "x"}
        value.update(content_index=0, summary_index=0, logprobs=[])
        return construct_type(type_=ResponseStreamEvent, value=value)

    names = {
        "r": "response.reasoning_summary_text.delta",
        "a": "response.output_text.delta",
        "t": "response.function_call_arguments.delta",
    }
    return [event(names[k]) for k in kinds]


def anthropic_events(kinds: str) -> list[Any]:
    from anthropic._models import construct_type
    from anthropic.types import RawMessageStreamEvent

    deltas = {
        "r": {"type": "thinking_delta", "thinking": "hm"},
        "a": {"type": "text_delta", "text": "hi"},
        "t": {"type": "input_json_delta", "partial_json": '{"q":'},
    }
    signature = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "s"},
    }
    events = [{"type": "content_block_delta", "index": 0, "delta": deltas[k]} for k in kinds]
    if kinds.startswith("r"):  # the thinking block's signature closes it: not a chunk
        events.insert(kinds.rindex("r") + 1, signature)
    return [construct_type(type_=RawMessageStreamEvent, value=e) for e in events]


def ollama_records(kinds: str) -> list[Any]:
    from ollama import ChatResponse, Message

    def record(k: str) -> Any:
        if k == "r":
            message = Message(role="assistant", content="", thinking="hm")
        elif k == "a":
            message = Message(role="assistant", content="hi")
        else:
            call = Message.ToolCall(function=Message.ToolCall.Function(name="f", arguments={}))
            message = Message(role="assistant", content="", tool_calls=[call])
        return ChatResponse(model="m", message=message, done=False)

    return [record(k) for k in kinds]


def ollama_generate_records(kinds: str) -> list[Any]:
    from ollama import GenerateResponse

    def record(k: str) -> Any:
        if k == "r":
            return GenerateResponse(model="m", response="", thinking="hm", done=False)
        return GenerateResponse(model="m", response="hi", done=False)  # generate has no tool calls

    return [record(k) for k in kinds]


def bedrock_converse(kinds: str) -> list[Any]:
    deltas = {
        "r": {"reasoningContent": {"text": "hm"}},
        "a": {"text": "hi"},
        "t": {"toolUse": {"input": '{"q":'}},
    }
    events = [{"contentBlockDelta": {"delta": deltas[k], "contentBlockIndex": 0}} for k in kinds]
    if kinds.startswith("r"):
        signature = {"contentBlockDelta": {"delta": {"reasoningContent": {"signature": "s"}}}}
        events.insert(kinds.rindex("r") + 1, signature)
    return events


def bedrock_invoke_anthropic(kinds: str) -> list[Any]:
    import json

    return [{"chunk": {"bytes": json.dumps(e.to_dict()).encode()}} for e in anthropic_events(kinds)]


#: Each reader (made fresh per stream, as the patches do) with the chunks its SDK yields.
READERS: dict[str, tuple[Callable[[], Any], Callable[[str], list[Any]]]] = {
    "openai-chat": (lambda: openai_extract.chat_chunks, openai_chat),
    "openai-chat-reasoning": (
        lambda: openai_extract.chat_chunks,
        lambda k: openai_chat(k, field="reasoning"),
    ),
    "openai-responses": (lambda: per_chunk(openai_extract.on_response_event), openai_responses),
    "anthropic": (lambda: anthropic_extract.stream_events, anthropic_events),
    "ollama": (lambda: ollama_extract.chat_chunks, ollama_records),
    "ollama-generate": (lambda: ollama_extract.generate_chunks, ollama_generate_records),
    "bedrock-converse": (lambda: per_chunk(bedrock_extract.ConverseStreamEvents()), bedrock_converse),
    "bedrock-invoke-anthropic": (
        lambda: per_chunk(bedrock_extract.InvokeStreamEvents(bedrock_extract.FAMILY_ANTHROPIC)),
        bedrock_invoke_anthropic,
    ),
}


@pytest.mark.parametrize("name", sorted(READERS))
@pytest.mark.parametrize(
    ("kinds", "ticks"),
    [
        ("rrraaa", 3),  # thinking, then the answer three chunks after TTFT
        ("rtt", 1),  # a tool call answers as text does
        ("raraa", 1),  # thoughts between answer chunks change nothing once the answer began
        ("aaa", 0),  # no thinking: the answer's first chunk is the first chunk
        ("arr", 0),  # the answer came first
        ("rrr", None),  # thinking that never reached an answer (cut off by max_tokens, say)
    ],
)
def test_time_to_the_first_answer_chunk(name: str, kinds: str, ticks: int | None) -> None:
    make_reader, build = READERS[name]
    attrs, points = run(make_reader(), build(kinds))
    assert attrs[semconv.STREAM_CHUNK_COUNT] == len(kinds)  # reasoning chunks are chunks too
    after = answer_after_first_chunk(attrs, points)
    assert after == (None if ticks is None else pytest.approx(ticks * TICK_S))


@pytest.mark.parametrize("timing", ["mean", "each"])
def test_a_long_chain_of_thought_past_the_kept_chunk_times(timing: str) -> None:
    # Mean timing folds chunk_times past CHUNK_TIMES_KEPT; the answer's time is kept apart.
    thoughts = CHUNK_TIMES_KEPT + 10
    attrs, points = run(READERS["openai-chat"][0](), openai_chat("r" * thoughts + "aa"), timing)
    assert attrs[semconv.STREAM_CHUNK_COUNT] == thoughts + 2
    assert answer_after_first_chunk(attrs, points) == pytest.approx(thoughts * TICK_S)
