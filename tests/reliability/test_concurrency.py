"""Concurrency: 1 000 concurrent async streams and 64 threads of sync streams, each span about its
own stream only.

Every request asks the mock (in its own process) for its own output length and TTFT class, so a
span that picked up another stream's chunks, usage or timing shows a value that is not its own.
Each span is joined to the mock's ground-truth record of its request through the response id
(``chatcmpl-<n>`` is the record ``req_<n>``).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile
from otelbench_instrumentation import OpenAIInstrumentor, semconv

from ..instrumentation.conftest import Otel, make_providers
from .conftest import uninstrument_everything

ASYNC_STREAMS = 1_000
THREADS = 64
STREAMS_PER_THREAD = 4
CLIENTS = 10
#: TTFT classes are this far apart.
TTFT_STEP_MS = 200
MESSAGES: Any = [{"role": "user", "content": "hello"}]
#: (response id, request index, content chunks the app read, TTFT the app timed in seconds)
Seen = tuple[str, int, int, float]


def wanted(i: int) -> tuple[int, int]:
    """Output tokens and TTFT (ms) that request i asks for."""
    return 1 + i % 37, 600 + (i % 4) * TTFT_STEP_MS


def _request(i: int) -> dict[str, Any]:
    """The keyword arguments of request i's streamed chat completion."""
    tokens, ttft_ms = wanted(i)
    return {
        "model": "conc",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "extra_headers": {
            "x-mock-output-tokens": str(tokens),
            "x-mock-ttft-ms": str(ttft_ms),
            "x-mock-itl-ms": "2",
        },
    }


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    profile = ModelProfile(ttft=Dist.fixed(0.01), itl=Dist.fixed(0.002), output_tokens=Dist.fixed(4))
    with MockServer(MockConfig(seed=5, default_profile=profile), isolated=True) as s:
        yield s


@pytest.fixture
def otel() -> Iterator[Otel]:
    uninstrument_everything()
    exporter, tp, reader, mp = make_providers()
    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield Otel(exporter, reader, tp, mp)
    finally:
        uninstrument_everything()
        mp.shutdown()
        tp.shutdown()


def _check(otel: Otel, server: MockServer, results: list[Seen]) -> str:
    """Every span against its own request and stream; returns the TTFT differences as text."""
    seen = {response_id: (i, chunks, ttft) for response_id, i, chunks, ttft in results}
    assert len(seen) == len(results)
    records = {r.request_id: r for r in server.records}
    spans = [s for s in otel.spans() if (s.attributes or {}).get(semconv.GEN_AI_RESPONSE_ID) in seen]
    assert len(spans) == len(seen), (len(spans), len(seen))
    to_app, to_server = [], []
    for span in spans:
        a = span.attributes or {}
        response_id = str(a[semconv.GEN_AI_RESPONSE_ID])
        i, content_chunks, app_ttft = seen[response_id]
        tokens, _ = wanted(i)
        # Attribution: the usage, chunk count and response id are this stream's own.
        assert content_chunks == tokens
        assert a[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == tokens, (i, dict(a))
        assert a[semconv.STREAM_CHUNK_COUNT] == tokens, (i, dict(a))
        record = records["req_" + response_id.removeprefix("chatcmpl-")]
        assert record.output_tokens == tokens and record.first_byte_ns is not None
        span_ttft = float(a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK])  # type: ignore[arg-type]
        server_ttft = (record.first_byte_ns - record.arrival_ns) / 1e9
        # TTFT, bracketed by its own stream's two ground truths (one monotonic clock): not before
        # its server wrote the first chunk, not after its app read it (the span starts after the
        # app's t0 and stamps the chunk before handing it over).
        assert server_ttft - 0.001 <= span_ttft <= app_ttft + 0.0005, (i, server_ttft, span_ttft, app_ttft)
        to_app.append((app_ttft - span_ttft) * 1e3)
        to_server.append((span_ttft - server_ttft) * 1e3)
    # And typically the app's own figure: only a thread switch between the two stamps separates them.
    assert statistics.median(to_app) < 5, _summary(to_app)
    return f"app - span TTFT {_summary(to_app)}; span - server TTFT {_summary(to_server)}"


def _summary(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:.2f} / p99 {q[98]:.2f} / max {max(values):.2f} ms"


@pytest.mark.slow
def test_1000_concurrent_async_streams_each_span_is_its_own(otel: Otel, server: MockServer) -> None:
    server.clear_records()
    in_flight = peak = 0

    async def one(client: openai.AsyncOpenAI, i: int) -> Seen:
        nonlocal in_flight, peak
        # Started over ~1 s, all still waiting for their first token (TTFT >= 600 ms) by then.
        await asyncio.sleep(i / ASYNC_STREAMS)
        in_flight += 1
        peak = max(peak, in_flight)
        t0 = time.perf_counter()
        stream = await client.chat.completions.create(**_request(i))
        response_id, chunks, ttft = "", 0, 0.0
        async for chunk in stream:
            response_id = chunk.id
            if chunk.choices and chunk.choices[0].delta.content:
                chunks += 1
                ttft = ttft or time.perf_counter() - t0
        in_flight -= 1
        return response_id, i, chunks, ttft

    async def main() -> list[Seen]:
        # Ten clients of 100 connections: one httpx pool of 1 000 connections spends its time
        # scanning its own connection list (seconds of client lag, not the instrumentation's).
        per_client = ASYNC_STREAMS // CLIENTS
        limits = httpx.Limits(max_connections=per_client + 10, max_keepalive_connections=per_client + 10)
        clients = [
            openai.AsyncOpenAI(
                base_url=server.openai_base_url,
                api_key="k",
                max_retries=0,
                timeout=60,
                http_client=httpx.AsyncClient(limits=limits, timeout=60),
            )
            for _ in range(CLIENTS)
        ]
        try:
            calls = (one(clients[i % CLIENTS], i) for i in range(ASYNC_STREAMS))
            return await asyncio.wait_for(asyncio.gather(*calls), 120)
        finally:
            for client in clients:
                await client.close()

    results = asyncio.run(main())
    assert peak >= ASYNC_STREAMS * 0.9, peak
    figures = _check(otel, server, results)
    print(f"\n{ASYNC_STREAMS} async streams (peak {peak} in flight): {figures}")


@pytest.mark.slow
def test_64_threads_of_sync_streams_each_span_is_its_own(otel: Otel, server: MockServer) -> None:
    server.clear_records()
    barrier = threading.Barrier(THREADS)

    def worker(t: int) -> list[Seen]:
        out = []
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0, timeout=60) as client:
            barrier.wait(timeout=60)  # all threads stream at the same time
            for k in range(STREAMS_PER_THREAD):
                i = t * STREAMS_PER_THREAD + k
                t0 = time.perf_counter()
                stream = client.chat.completions.create(**_request(i))
                response_id, chunks, ttft = "", 0, 0.0
                for chunk in stream:
                    response_id = chunk.id
                    if chunk.choices and chunk.choices[0].delta.content:
                        chunks += 1
                        ttft = ttft or time.perf_counter() - t0
                out.append((response_id, i, chunks, ttft))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        results = [r for rs in pool.map(worker, range(THREADS), timeout=120) for r in rs]
    assert len(results) == THREADS * STREAMS_PER_THREAD
    figures = _check(otel, server, results)
    print(f"\n{THREADS} threads x {STREAMS_PER_THREAD} sync streams: {figures}")
