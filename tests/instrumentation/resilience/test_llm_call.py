"""llm_call: a custom HTTP client of the mock gets the built-in providers' spans and metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otelbench.mock import MockServer
from otelbench_instrumentation import Usage, llm_call, semconv

from ..conftest import headers, make_providers
from .conftest import API_KEY, Otel, genai_spans

PROVIDER = "acme-gateway"


def usage_of(body: dict[str, Any]) -> Usage | None:
    """The usage extractor a user writes for their gateway's JSON (final chunk for streams)."""
    usage = body.get("usage") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        cache_read_input_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        reasoning_output_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        response_model=body.get("model"),
        response_id=body.get("id"),
        finish_reasons=[c["finish_reason"] for c in body.get("choices", []) if c.get("finish_reason")],
    )


def has_text(chunk: dict[str, Any]) -> bool:
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices", []))


def _payload(model: str, prompt: str, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[len("data: ") :])


class Gateway:
    """A user's own client: plain HTTP, no SDK, four call shapes."""

    def __init__(self, server: MockServer, otel: Otel) -> None:
        self.url = server.openai_base_url + "/chat/completions"
        decorate = llm_call(
            PROVIDER,
            usage=usage_of,
            is_content=has_text,
            server_address=server.host,
            server_port=server.port,
            tracer_provider=otel.tracer_provider,
            meter_provider=otel.meter_provider,
        )
        self.complete = decorate(self._complete)
        self.acomplete = decorate(self._acomplete)
        self.stream = decorate(self._stream)
        self.astream = decorate(self._astream)

    def _complete(self, prompt: str, model: str, fault: str | None = None) -> dict[str, Any]:
        headers = {"x-mock-fault": fault} if fault else {}
        response = httpx.post(self.url, json=_payload(model, prompt), headers=headers)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def _acomplete(self, prompt: str, model: str) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            response = await http.post(self.url, json=_payload(model, prompt))
            body: dict[str, Any] = response.json()
            return body

    def _stream(self, prompt: str, model: str) -> Generator[dict[str, Any], None, None]:
        with httpx.stream("POST", self.url, json=_payload(model, prompt, stream=True)) as response:
            yield from _sse(response.iter_lines())

    async def _astream(self, prompt: str, model: str) -> AsyncIterator[dict[str, Any]]:
        async with (
            httpx.AsyncClient() as http,
            http.stream("POST", self.url, json=_payload(model, prompt, stream=True)) as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line[len("data: ") :])


@pytest.fixture
def otel_pair() -> Iterator[Otel]:
    exporter, tp, reader, mp = make_providers()
    try:
        yield Otel(exporter, reader, tp, mp)
    finally:
        mp.shutdown()
        tp.shutdown()


def _openai_reference(server: MockServer) -> ReadableSpan:
    """The span the built-in OpenAI instrumentation makes for the same request."""
    from otelbench_instrumentation import OpenAIInstrumentor

    exporter, tp, _, mp = make_providers()
    instrumentor = OpenAIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        with openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0) as c:
            c.chat.completions.create(model="m-custom", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
    (span,) = exporter.get_finished_spans()
    return span


def test_sync_call_matches_builtin_provider_telemetry(otel_pair: Otel, fast_mock: MockServer) -> None:
    gateway = Gateway(fast_mock, otel_pair)
    body = gateway._complete("hi", "m-custom")  # undecorated, for comparison
    result = gateway.complete("hi", model="m-custom")
    assert result.keys() == body.keys()

    (span,) = genai_spans(otel_pair)
    assert span.name == "chat m-custom"
    assert span.kind is SpanKind.CLIENT
    a = span.attributes or {}
    assert a[semconv.GEN_AI_PROVIDER_NAME] == PROVIDER
    assert a[semconv.GEN_AI_REQUEST_MODEL] == "m-custom"
    assert a[semconv.GEN_AI_RESPONSE_MODEL] == "m-custom"
    assert a[semconv.GEN_AI_RESPONSE_ID] == result["id"]
    assert a[semconv.GEN_AI_USAGE_INPUT_TOKENS] == result["usage"]["prompt_tokens"]
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == result["usage"]["completion_tokens"]
    assert tuple(a[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]
    # Same attribute names as the OpenAI instrumentation's span for the same request, bar the
    # OpenAI-specific ones.
    reference = set((_openai_reference(fast_mock).attributes or {}).keys())
    openai_only = {k for k in reference if k.startswith("gen_ai.openai.")}
    assert set(a.keys()) == reference - openai_only

    metrics = otel_pair.metrics()
    assert {semconv.METRIC_OPERATION_DURATION, semconv.METRIC_TOKEN_USAGE} <= set(metrics)
    (duration,) = otel_pair.points(semconv.METRIC_OPERATION_DURATION)
    assert duration.count == 1
    assert dict(duration.attributes or {}) == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: PROVIDER,
        semconv.GEN_AI_REQUEST_MODEL: "m-custom",
        semconv.GEN_AI_RESPONSE_MODEL: "m-custom",
        semconv.SERVER_ADDRESS: fast_mock.host,
        semconv.SERVER_PORT: fast_mock.port,
    }
    tokens = {
        (p.attributes or {})[semconv.GEN_AI_TOKEN_TYPE]: p.sum
        for p in otel_pair.points(semconv.METRIC_TOKEN_USAGE)
    }
    assert tokens == {
        "input": result["usage"]["prompt_tokens"],
        "output": result["usage"]["completion_tokens"],
    }


def test_errors_pass_through_unchanged(otel_pair: Otel, fast_mock: MockServer) -> None:
    gateway = Gateway(fast_mock, otel_pair)
    with pytest.raises(httpx.HTTPStatusError) as info:
        gateway.complete("hi", "m-err", fault="503")
    assert info.value.response.status_code == 503
    (span,) = genai_spans(otel_pair)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[semconv.ERROR_TYPE] == "HTTPStatusError"
    (duration,) = otel_pair.points(semconv.METRIC_OPERATION_DURATION)
    assert (duration.attributes or {})[semconv.ERROR_TYPE] == "HTTPStatusError"


def test_async_call(otel_pair: Otel, fast_mock: MockServer) -> None:
    gateway = Gateway(fast_mock, otel_pair)
    assert asyncio.iscoroutinefunction(gateway.acomplete)
    result = asyncio.run(gateway.acomplete("hi", "m-async"))
    (span,) = genai_spans(otel_pair)
    assert span.name == "chat m-async"
    assert (span.attributes or {})[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == result["usage"]["completion_tokens"]


def _check_stream_span(otel: Otel, chunks: list[dict[str, Any]], model: str) -> None:
    (span,) = genai_spans(otel)
    a = span.attributes or {}
    assert span.name == f"chat {model}"
    assert a[semconv.GEN_AI_REQUEST_STREAM] is True
    content = [c for c in chunks if has_text(c)]
    assert a[semconv.STREAM_CHUNK_COUNT] == len(content) > 0
    assert isinstance(a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
    usage = next(c["usage"] for c in chunks if c.get("usage"))
    assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["completion_tokens"]
    (ttft,) = otel.points(semconv.METRIC_TIME_TO_FIRST_CHUNK)
    assert ttft.count == 1


def test_generator_is_a_stream(otel_pair: Otel, fast_mock: MockServer) -> None:
    gateway = Gateway(fast_mock, otel_pair)
    chunks = list(gateway.stream("hi", "m-stream"))
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * len(chunks)
    _check_stream_span(otel_pair, chunks, "m-stream")


def test_async_generator_is_a_stream(otel_pair: Otel, fast_mock: MockServer) -> None:
    gateway = Gateway(fast_mock, otel_pair)

    async def consume() -> list[dict[str, Any]]:
        return [chunk async for chunk in gateway.astream("hi", "m-astream")]

    chunks = asyncio.run(consume())
    _check_stream_span(otel_pair, chunks, "m-astream")


def test_stream_closed_early_ends_the_span(otel_pair: Otel, fast_mock: MockServer) -> None:
    gateway = Gateway(fast_mock, otel_pair)
    stream = gateway.stream("hi", "m-early")
    first = next(stream)
    assert first["object"] == "chat.completion.chunk"
    assert genai_spans(otel_pair) == []  # still open
    stream.close()
    (span,) = genai_spans(otel_pair)
    assert (span.attributes or {})[semconv.STREAM_CLOSED_EARLY] is True


def has_reasoning(chunk: dict[str, Any]) -> bool:
    return any((c.get("delta") or {}).get("reasoning_content") for c in chunk.get("choices", []))


def test_a_stream_tells_its_reasoning_from_its_answer(otel_pair: Otel, fast_mock: MockServer) -> None:
    # A gateway in front of a thinking model (the mock's DeepSeek API: 3 of 6 chunks reasoning,
    # 40 ms apart): reasoning chunks set TTFT, the answer's first chunk comes three gaps later.
    @llm_call(
        PROVIDER,
        is_content=has_text,
        is_reasoning=has_reasoning,
        tracer_provider=otel_pair.tracer_provider,
        meter_provider=otel_pair.meter_provider,
    )
    def think(model: str) -> Iterator[dict[str, Any]]:
        url = f"{fast_mock.url}/deepseek/chat/completions"
        mock = headers(ttft_ms=20, itl_ms=40, output_tokens=6)
        with httpx.stream("POST", url, json=_payload(model, "hi", stream=True), headers=mock) as response:
            yield from _sse(response.iter_lines())

    chunks = list(think("deepseek-v4-flash"))
    assert sum(map(has_reasoning, chunks)) == 3 and sum(map(has_text, chunks)) == 3
    (span,) = genai_spans(otel_pair)
    a = span.attributes or {}
    assert a[semconv.STREAM_CHUNK_COUNT] == 6
    ttft, answer = (
        a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK],
        a[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK],
    )
    assert isinstance(ttft, float) and isinstance(answer, float)
    assert 0.02 <= ttft < 0.06 and 0.02 + 3 * 0.04 <= answer < 0.02 + 4 * 0.04


def test_send_and_return_value_of_generators_pass_through(otel_pair: Otel) -> None:
    @llm_call(
        PROVIDER,
        model="echo",
        tracer_provider=otel_pair.tracer_provider,
        meter_provider=otel_pair.meter_provider,
    )
    def echo() -> Generator[str, str | None, str]:
        received = yield "ready"
        while received is not None:
            received = yield f"got {received}"
        return "finished"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "got a"
    with pytest.raises(StopIteration) as stop:
        gen.send(None)
    assert stop.value.value == "finished"
    (span,) = genai_spans(otel_pair)
    assert (span.attributes or {})[semconv.STREAM_CHUNK_COUNT] == 2
