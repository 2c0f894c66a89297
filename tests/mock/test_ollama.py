"""The official Ollama SDK against the mock (per-request headers go on the client)."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from otelbench.mock import Fault, MockServer

from .conftest import ITL_S, OUTPUT_TOKENS, TTFT_S, hdrs, records_for_model, wait_for_records, within_attempts

MODEL = "llama3.2:1b"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something about mocks, please."}]  # 8 tokens


@pytest.fixture
def client(mock: MockServer) -> Iterator[ollama.Client]:
    with ollama.Client(host=mock.ollama_host) as c:
        yield c


def test_chat_json(client: ollama.Client, mock: MockServer) -> None:
    response = client.chat(model=MODEL, messages=MESSAGES, stream=False)
    assert response.done and response.done_reason == "stop" and response.model == MODEL
    assert response.message.role == "assistant"
    assert response.message.content and len(response.message.content.split()) == OUTPUT_TOKENS
    assert (response.prompt_eval_count, response.eval_count) == (8, OUTPUT_TOKENS)
    assert response.total_duration and response.eval_duration and response.prompt_eval_duration
    assert response.load_duration is not None
    record = records_for_model(mock, MODEL)[-1]
    assert (record.protocol, record.path, record.stream, record.status) == ("ollama", "/api/chat", False, 200)
    assert record.first_byte_ns is not None
    # Reported durations are the planned ones; the body leaves at that time (or a little later).
    written = record.first_byte_ns - record.arrival_ns
    # Later only by as much as the server says it fell behind (in-process, the SDK's thread can
    # hold the GIL for milliseconds).
    assert response.total_duration - 200_000 < written < response.total_duration + record.late_ns + 1_000_000


def test_chat_stream(client: ollama.Client, mock: MockServer) -> None:
    parts = list(client.chat(model=MODEL, messages=MESSAGES, stream=True))
    content = [p.message.content for p in parts if not p.done]
    assert len(content) == OUTPUT_TOKENS and all(content)
    final = parts[-1]
    assert final.done and final.done_reason == "stop" and final.message.content == ""
    assert final.eval_count == OUTPUT_TOKENS and final.prompt_eval_count == 8
    assert all(p.created_at for p in parts)
    record = records_for_model(mock, MODEL)[-1]
    assert record.stream and record.chunks == OUTPUT_TOKENS
    assert record.first_byte_ns is not None and record.last_byte_ns is not None
    assert final.total_duration is not None and final.prompt_eval_duration is not None
    assert abs(final.total_duration - (record.last_byte_ns - record.arrival_ns)) < 1_000_000
    assert final.load_duration is not None
    ttft_ns = record.first_byte_ns - record.arrival_ns
    assert abs(final.load_duration + final.prompt_eval_duration - ttft_ns) < 1_000_000


def test_generate_json_and_stream(client: ollama.Client) -> None:
    response = client.generate(model=MODEL, prompt="Tell me about mocks.")
    assert response.done and len(response.response.split()) == OUTPUT_TOKENS
    assert response.context and response.prompt_eval_count == 5
    parts = list(client.generate(model=MODEL, prompt="hi", stream=True))
    assert "".join(p.response for p in parts).split() and parts[-1].done
    assert sum(1 for p in parts if not p.done) == OUTPUT_TOKENS


def test_num_predict_caps_and_num_ctx_scales_ttft(timing_mock: MockServer) -> None:
    mock = timing_mock
    with ollama.Client(host=mock.ollama_host) as client:
        response = client.chat(
            model=MODEL, messages=MESSAGES, options={"num_predict": 2, "num_ctx": 8192}, stream=False
        )
        assert response.done_reason == "length" and response.eval_count == 2

        def check() -> None:
            ttfts = []
            for _ in range(5):
                parts = list(
                    client.chat(model=MODEL, messages=MESSAGES, options={"num_ctx": 8192}, stream=True)
                )
                assert parts[-1].done
                record = records_for_model(mock, MODEL)[-1]
                assert record.first_byte_ns is not None
                ttfts.append((record.first_byte_ns - record.arrival_ns) / 1e9)
            # ttft doubles at num_ctx = 8192.
            assert abs(statistics.median(ttfts) - 2 * TTFT_S) < 0.0006, ttfts

        within_attempts(check)


def test_num_gpu_slows_tokens_and_temperature_scales_length(timing_mock: MockServer) -> None:
    with ollama.Client(host=timing_mock.ollama_host) as client:
        lengths = [
            client.chat(model=MODEL, messages=MESSAGES, options={"temperature": t}).eval_count
            for t in (0.0, 1.0, 2.0)
        ]
        assert lengths == [4, OUTPUT_TOKENS, 8]  # round(6 x 0.75), 6, round(6 x 1.25)

        def check() -> None:
            spans = {}
            for layers in (0, 32):
                parts = list(
                    client.chat(
                        model="llama-gpu", messages=MESSAGES, options={"num_gpu": layers}, stream=True
                    )
                )
                assert parts[-1].eval_count == OUTPUT_TOKENS
                record = records_for_model(timing_mock, "llama-gpu")[-1]
                assert record.first_byte_ns is not None and record.last_byte_ns is not None
                spans[layers] = (record.last_byte_ns - record.arrival_ns) / 1e6
            # All layers on the CPU: 5 x the 1 ms inter-token latency (the last chunk is never early).
            assert spans[0] >= (TTFT_S + (OUTPUT_TOKENS - 1) * 5 * ITL_S) * 1000, spans
            assert spans[32] < (TTFT_S + (OUTPUT_TOKENS - 1) * 3 * ITL_S) * 1000, spans

        within_attempts(check)
    for options in ({"num_gpu": "all"}, {"temperature": -1}, {"num_ctx": 0}):
        with (
            ollama.Client(host=timing_mock.ollama_host) as client,
            pytest.raises(ollama.ResponseError) as info,
        ):
            client.chat(model=MODEL, messages=MESSAGES, options=options)
        assert info.value.status_code == 400 and "options." in str(info.value.error)


def test_async_client(mock: MockServer) -> None:
    async def main() -> tuple[str, int, int]:
        async with ollama.AsyncClient(host=mock.ollama_host) as c:
            response = await c.chat(model=MODEL, messages=MESSAGES)
            stream = await c.generate(model=MODEL, prompt="hi", stream=True)
            parts = [p async for p in stream]
            embedded = await c.embed(model="nomic-embed-text", input=["a", "b", "c"])
            return response.message.content or "", len(parts), len(embedded.embeddings)

    content, parts, embeddings = asyncio.run(main())
    assert len(content.split()) == OUTPUT_TOKENS and parts == OUTPUT_TOKENS + 1 and embeddings == 3


def test_embed_and_legacy_embeddings(client: ollama.Client, mock: MockServer) -> None:
    response = client.embed(model="nomic-embed-text", input=["alpha", "beta"])
    assert len(response.embeddings) == 2 and len(response.embeddings[0]) == 768
    assert response.prompt_eval_count == 2 and response.total_duration
    assert response.embeddings[0] != response.embeddings[1]
    legacy = client.embeddings(model="nomic-embed-text", prompt="alpha")
    assert list(legacy.embedding) == pytest.approx(list(response.embeddings[0]), abs=1e-6)
    assert records_for_model(mock, "nomic-embed-text")[-1].path == "/api/embeddings"


def test_list_models(client: ollama.Client) -> None:
    assert MODEL in [m.model for m in client.list().models]


def test_tool_call(client: ollama.Client) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    response = client.chat(model=MODEL, messages=MESSAGES, tools=tools)
    calls = response.message.tool_calls
    assert calls and calls[0].function.name == "get_weather" and calls[0].function.arguments["city"]
    streamed = [
        p for p in client.chat(model=MODEL, messages=MESSAGES, tools=tools, stream=True) if not p.done
    ]
    assert len(streamed) == 1 and streamed[0].message.tool_calls


THOUGHT = OUTPUT_TOKENS // 2  # with `think`, the mock thinks for the first half of its output


@pytest.mark.parametrize("think", [True, "high"])
def test_think_streams_thinking_before_the_answer(
    client: ollama.Client, mock: MockServer, think: Any
) -> None:
    parts = [p for p in client.chat(model=MODEL, messages=MESSAGES, stream=True, think=think) if not p.done]
    assert [bool(p.message.thinking) for p in parts] == [True] * THOUGHT + [False] * (OUTPUT_TOKENS - THOUGHT)
    assert all(not p.message.content for p in parts[:THOUGHT]) and all(
        p.message.content for p in parts[THOUGHT:]
    )
    record = records_for_model(mock, MODEL)[-1]
    assert record.chunks == OUTPUT_TOKENS and record.reasoning_tokens == THOUGHT
    generated = [p for p in client.generate(model=MODEL, prompt="hi", stream=True, think=think) if not p.done]
    assert [bool(p.thinking) for p in generated] == [True] * THOUGHT + [False] * (OUTPUT_TOKENS - THOUGHT)


def test_think_in_whole_responses_and_tool_calls(client: ollama.Client) -> None:
    response = client.chat(model=MODEL, messages=MESSAGES, think=True)
    assert response.message.thinking and len(response.message.thinking.split()) == THOUGHT
    assert response.message.content and len(response.message.content.split()) == OUTPUT_TOKENS - THOUGHT
    assert response.eval_count == OUTPUT_TOKENS  # thinking included
    generated = client.generate(model=MODEL, prompt="hi", think=True)
    assert generated.thinking and len(generated.thinking.split()) == THOUGHT
    assert len(generated.response.split()) == OUTPUT_TOKENS - THOUGHT
    plain = client.chat(model=MODEL, messages=MESSAGES, think=False)
    assert not plain.message.thinking and len(plain.message.content.split()) == OUTPUT_TOKENS
    # A tool call comes, complete, after the thinking.
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    streamed = [p for p in client.chat(model=MODEL, messages=MESSAGES, tools=tools, stream=True, think=True)]
    kinds = [
        "thinking" if p.message.thinking else "call" if p.message.tool_calls else "final" for p in streamed
    ]
    assert kinds == ["thinking"] * THOUGHT + ["call", "final"]


def test_an_invalid_think_value_is_refused(mock: MockServer) -> None:
    response = httpx.post(
        f"{mock.ollama_host}/api/chat",
        json={"model": MODEL, "messages": MESSAGES, "think": "max"},
        timeout=10,
    )
    assert response.status_code == 400 and "invalid think value" in response.json()["error"]


@pytest.mark.parametrize("code", [429, 500, 503])
def test_error_status(mock: MockServer, code: int) -> None:
    with (
        ollama.Client(host=mock.ollama_host, headers=hdrs(fault=code)) as c,
        pytest.raises(ollama.ResponseError) as info,
    ):
        c.chat(model=MODEL, messages=MESSAGES)
    assert info.value.status_code == code and "injected" in str(info.value.error)


def test_scripted_fault_and_disconnect(client: ollama.Client, mock: MockServer) -> None:
    model = "llama-scripted"
    mock.script(model, [Fault.status(503), Fault.disconnect(2), Fault.ok()])
    with pytest.raises(ollama.ResponseError):
        client.chat(model=model, messages=MESSAGES)
    seen: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):  # the Ollama SDK doesn't wrap transport errors
        seen.extend(p.message.content or "" for p in client.chat(model=model, messages=MESSAGES, stream=True))
    assert len(seen) == 2
    assert client.chat(model=model, messages=MESSAGES).done
    assert [(r.status, r.fault) for r in records_for_model(mock, model)] == [
        (503, "503"),
        (200, "disconnect:2"),
        (200, None),
    ]


def test_malformed_chunk_raises_json_error_from_the_sdk(mock: MockServer) -> None:
    model = "llama-malformed"
    seen: list[str] = []
    # The SDK json.loads each NDJSON line itself: the cut line's error comes through unwrapped.
    with ollama.Client(host=mock.ollama_host, headers=hdrs(fault="malformed:2")) as c:
        with pytest.raises(json.JSONDecodeError):
            seen.extend(p.message.content or "" for p in c.chat(model=model, messages=MESSAGES, stream=True))
        with pytest.raises(json.JSONDecodeError):
            c.generate(model=model, prompt="hi")

    async def main() -> None:
        async with ollama.AsyncClient(host=mock.ollama_host, headers=hdrs(fault="malformed:0")) as c:
            with pytest.raises(json.JSONDecodeError):
                await c.chat(model=model, messages=MESSAGES)

    asyncio.run(main())
    assert len(seen) == 2
    assert [(r.path, r.fault) for r in wait_for_records(mock, model, 3)] == [
        ("/api/chat", "malformed:2"),
        ("/api/generate", "malformed:2"),
        ("/api/chat", "malformed:0"),
    ]


def test_stream_timing(timing_mock: MockServer) -> None:
    mock = timing_mock

    def check() -> None:
        server_ttft, gaps = [], []
        with ollama.Client(host=mock.ollama_host, headers=hdrs(ttft_ms=20, itl_ms=2, output_tokens=12)) as c:
            for _ in range(6):
                seen = [
                    time.perf_counter_ns()
                    for p in c.chat(model="llama-timing", messages=MESSAGES, stream=True)
                    if not p.done
                ]
                record = records_for_model(mock, "llama-timing")[-1]
                assert record.first_byte_ns is not None and len(seen) == 12
                server_ttft.append((record.first_byte_ns - record.arrival_ns) / 1e6)
                gaps.extend((b - a) / 1e6 for a, b in itertools.pairwise(seen))
        assert abs(statistics.median(server_ttft) - 20) < 0.6, server_ttft
        assert abs(statistics.median(gaps) - 2) < 0.5, gaps

    within_attempts(check)
