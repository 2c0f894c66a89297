"""HTTP-level behaviour of the mock: keep-alive, pipelining, limits, errors, faults, lifecycle, records."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from otelbench import rxtime
from otelbench.mock import MAX_HANG_SECONDS, Dist, Fault, MockConfig, MockServer, ModelProfile

from .conftest import OUTPUT_TOKENS, hdrs, record_for, records_for_model, within_attempts

CHAT = {"model": "gpt-raw", "messages": [{"role": "user", "content": "hello"}]}


def post(
    conn: http.client.HTTPConnection,
    path: str,
    body: bytes | dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on an open connection: (status, lower-cased headers, body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path, body=data, headers={"content-type": "application/json", **(headers or {})})
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


@pytest.fixture
def conn(mock: MockServer) -> Any:
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    yield c
    c.close()


def test_keep_alive_serves_many_requests_on_one_connection(conn: http.client.HTTPConnection) -> None:
    for _ in range(3):
        status, headers, body = post(conn, "/v1/chat/completions", CHAT)
        assert status == 200 and headers["connection"] == "keep-alive"
        assert json.loads(body)["object"] == "chat.completion"
    # A streamed (chunked) response also leaves the connection reusable.
    status, headers, body = post(conn, "/v1/chat/completions", {**CHAT, "stream": True})
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body.endswith(b"data: [DONE]\n\n")
    assert post(conn, "/v1/chat/completions", CHAT)[0] == 200


def test_pipelined_requests_are_answered_in_order(mock: MockServer) -> None:
    body = json.dumps(CHAT).encode()
    one = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
    last = b"GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", mock.port), timeout=5) as sock:
        sock.sendall(one + one + last)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 3
    first, second, third = data.split(b"HTTP/1.1 200 OK")[1:]
    assert b"chat.completion" in first and b"chat.completion" in second and b'"object":"list"' in third


def test_chunked_request_body(conn: http.client.HTTPConnection) -> None:
    payload = json.dumps(CHAT).encode()
    conn.request(
        "POST",
        "/v1/chat/completions",
        body=iter([payload[:10], payload[10:]]),
        headers={"content-type": "application/json", "transfer-encoding": "chunked"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["choices"]


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/v1/chat/completions", lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/responses", lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/messages", lambda b: b["type"] == "error" and b["error"]["type"] == "invalid_request_error"),
        ("/api/chat", lambda b: isinstance(b["error"], str)),
    ],
)
def test_malformed_json_gets_provider_400(conn: http.client.HTTPConnection, path: str, check: Any) -> None:
    status, _, body = post(conn, path, b'{"model": "x", ')
    assert status == 400 and check(json.loads(body))
    # The connection survives a 400.
    assert post(conn, "/v1/chat/completions", CHAT)[0] == 200


def test_missing_fields_get_400(conn: http.client.HTTPConnection) -> None:
    status, _, body = post(conn, "/v1/chat/completions", {"messages": []})
    assert status == 400 and json.loads(body)["error"]["param"] == "model"
    status, _, body = post(
        conn, "/v1/messages", {"model": "claude", "messages": [{"role": "user", "content": "x"}]}
    )
    assert status == 400 and "max_tokens" in json.loads(body)["error"]["message"]


def test_unknown_path_and_method(conn: http.client.HTTPConnection) -> None:
    status, _, body = post(conn, "/v1/nope", CHAT)
    assert status == 404 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = post(conn, "/api/nope", CHAT)
    assert status == 404 and isinstance(json.loads(body)["error"], str)
    conn.request("GET", "/v1/chat/completions")
    response = conn.getresponse()
    assert response.status == 405
    response.read()
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b"Ollama is running"


def test_bad_override_header_names_it(conn: http.client.HTTPConnection) -> None:
    status, _, body = post(conn, "/v1/chat/completions", CHAT, hdrs(ttft_ms="soon"))
    assert status == 400 and "x-mock-ttft-ms" in json.loads(body)["error"]["message"]
    status, _, body = post(conn, "/v1/chat/completions", CHAT, hdrs(fault="explode"))
    assert status == 400 and "x-mock-fault" in json.loads(body)["error"]["message"]


def test_oversized_body_gets_413_and_close(mock: MockServer) -> None:
    c = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    try:
        status, headers, body = post(c, "/v1/chat/completions", b"x" * (8 * 1024 * 1024 + 1))
    finally:
        c.close()
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_small_body_limit_and_anthropic_shape() -> None:
    with MockServer(MockConfig(max_body_bytes=1024)) as server:
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            status, _, body = post(c, "/v1/messages", b"{" + b" " * 2048 + b"}")
        finally:
            c.close()
        assert status == 413 and json.loads(body)["error"]["type"] == "request_too_large"
        (record,) = server.records
        assert record.status == 413 and record.protocol == "anthropic"


def test_client_closing_mid_stream_is_recorded(mock: MockServer) -> None:
    with openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as c:
        stream = c.chat.completions.create(
            model="gpt-early-close",
            messages=CHAT["messages"],
            stream=True,
            extra_headers=hdrs(itl_ms=20, output_tokens=50),
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()
        request_id = stream.response.headers["x-request-id"]
    record = record_for(mock, request_id)
    assert record.client_closed and 1 <= record.chunks < 50


def test_non_stream_disconnect_sends_nothing(mock: MockServer) -> None:
    with (
        openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as c,
        pytest.raises(openai.APIConnectionError),
    ):
        c.chat.completions.create(
            model="gpt-vanish", messages=CHAT["messages"], extra_headers=hdrs(fault="disconnect:0")
        )
    (record,) = records_for_model(mock, "gpt-vanish")
    assert record.fault == "disconnect:0" and record.first_byte_ns is None


async def _concurrent_streams(
    base_url: str, n_requests: int, ttft_ms: float, itl_ms: float, tokens: int
) -> list[str]:
    async def one(c: openai.AsyncOpenAI) -> str:
        stream = await c.chat.completions.create(
            model="gpt-concurrent",
            messages=CHAT["messages"],
            stream=True,
            extra_headers=hdrs(ttft_ms=ttft_ms, itl_ms=itl_ms, output_tokens=tokens),
        )
        texts = [
            ch.choices[0].delta.content async for ch in stream if ch.choices and ch.choices[0].delta.content
        ]
        assert len(texts) == tokens
        return stream.response.headers["x-request-id"]

    async with openai.AsyncOpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
        return await asyncio.gather(*(one(c) for _ in range(n_requests)))


def test_concurrent_streams_in_process(mock: MockServer) -> None:
    ids = asyncio.run(_concurrent_streams(mock.openai_base_url, 16, 10, 1, 8))
    records = [record_for(mock, i) for i in ids]
    assert all(r.chunks == 8 and r.status == 200 for r in records)


def test_isolated_server_keeps_schedule_under_concurrency(tmp_path: Path) -> None:
    n_requests, ttft_ms, itl_ms, tokens = 32, 20, 5, 6
    truth = tmp_path / "truth.jsonl"
    with MockServer(MockConfig(ground_truth_path=str(truth)), isolated=True) as server:
        server.script("gpt-concurrent", [Fault.status(503)])
        with pytest.raises(openai.InternalServerError):
            asyncio.run(_concurrent_streams(server.openai_base_url, 1, ttft_ms, itl_ms, tokens))
        bursts = 0

        def check() -> None:
            nonlocal bursts
            server.clear_records()
            ids = asyncio.run(
                _concurrent_streams(server.openai_base_url, n_requests, ttft_ms, itl_ms, tokens)
            )
            bursts += 1
            records = {r.request_id: r for r in server.records}
            assert set(records) == set(ids)
            ttfts = [((r.first_byte_ns or 0) - r.arrival_ns) / 1e6 for r in records.values()]
            spans = [((r.last_byte_ns or 0) - (r.first_byte_ns or 0)) / 1e6 for r in records.values()]
            # In its own process the server keeps its schedule however busy the client is; 32 first
            # chunks due at the same instant are written one after another (~30 us each), and two
            # CPUs are shared with the client, so allow a little spread but no shifted tail.
            assert min(ttfts) >= ttft_ms, ttfts  # never early
            assert abs(statistics.median(ttfts) - ttft_ms) < 1.5, ttfts
            assert sorted(ttfts)[int(0.9 * len(ttfts))] < ttft_ms + 3, ttfts
            assert abs(statistics.median(spans) - (tokens - 1) * itl_ms) < 2.5, spans

        # The client's 32 SDK streams load the machine too: more attempts than usual.
        within_attempts(check, attempts=5)
    assert len(truth.read_text().splitlines()) == 1 + bursts * n_requests


def test_isolated_server_start_failure_is_raised() -> None:
    with MockServer() as running, pytest.raises(OSError):
        MockServer(MockConfig(port=running.port), isolated=True).start()


# -- lifecycle, ground truth, configuration ----------------------------------------------------------------


def test_lifecycle_idempotent_and_port_in_use() -> None:
    server = MockServer()
    server.stop()  # before start: no-op
    server.start()
    server.start()  # already running: no-op
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    assert server.openai_base_url == server.url + "/v1"
    assert server.anthropic_base_url == server.ollama_host == server.url
    with pytest.raises(OSError), MockServer(MockConfig(port=server.port)):
        pass
    server.stop()
    server.stop()


def test_stop_with_streams_in_flight() -> None:
    server = MockServer(
        MockConfig(default_profile=ModelProfile(itl=Dist.fixed(0.05), output_tokens=Dist.fixed(100)))
    )
    server.start()
    try:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0) as c:
            stream = c.chat.completions.create(model="m", messages=CHAT["messages"], stream=True)
            next(iter(stream))
            server.stop()
            with pytest.raises(openai.APIConnectionError):
                list(stream)
    finally:
        server.stop()
    (record,) = server.records
    assert record.chunks < 100


def test_ground_truth_file(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    with MockServer(MockConfig(ground_truth_path=str(path))) as server:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="k") as c:
            before = time.time_ns()
            list(c.chat.completions.create(model="m", messages=CHAT["messages"], stream=True))
            c.chat.completions.create(model="m", messages=CHAT["messages"])
            after = time.time_ns()
        records = server.records
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["request_id"] for r in rows] == [r.request_id for r in records]
    first = rows[0]
    assert first["stream"] is True and first["chunks"] == 32
    assert (
        before
        <= first["arrival_unix_ns"]
        <= first["first_byte_unix_ns"]
        <= first["last_byte_unix_ns"]
        <= after
    )
    assert (
        first["first_byte_unix_ns"] - first["arrival_unix_ns"] == first["first_byte_ns"] - first["arrival_ns"]
    )
    assert rows[1]["headers_unix_ns"] is None


@pytest.mark.skipif(rxtime.SO_TIMESTAMPNS is None, reason="reads are stamped on 64-bit Linux only")
def test_a_request_that_waits_for_a_busy_server_is_recorded_from_its_receipt(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    with MockServer(MockConfig(ground_truth_path=str(path))) as server:
        busy = threading.Event()

        def hold_the_loop() -> None:
            busy.set()
            time.sleep(0.3)

        assert server._loop is not None
        server._loop.call_soon_threadsafe(hold_the_loop)
        assert busy.wait(5)
        # The kernel completes the handshake and buffers the request while the loop is held.
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            assert post(c, "/v1/chat/completions", CHAT)[0] == 200
        finally:
            c.close()
        (record,) = server.records
    assert record.received_ns is not None
    assert record.received_ns <= record.arrival_ns - 200_000_000
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert row["received_unix_ns"] - row["arrival_unix_ns"] == record.received_ns - record.arrival_ns


def test_cpu_seconds_of_the_server_thread() -> None:
    with MockServer() as server:
        before = server.cpu_seconds()
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            for _ in range(20):
                post(c, "/v1/chat/completions", CHAT, hdrs(ttft_ms=0, output_tokens=1))
        finally:
            c.close()
        after = server.cpu_seconds()
    # The server thread's own CPU clock, which answering requests moves.
    assert 0 <= before < after


def test_records_clear(mock: MockServer, conn: http.client.HTTPConnection) -> None:
    post(conn, "/v1/chat/completions", CHAT)
    assert mock.records
    mock.clear_records()
    assert mock.records == []


def test_fault_rates_are_seeded() -> None:
    def outcomes(seed: int) -> list[int]:
        with MockServer(MockConfig(seed=seed, fault_rates={"503": 0.5})) as server:
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                return [post(c, "/v1/embeddings", {"model": "e", "input": "x"})[0] for _ in range(12)]
            finally:
                c.close()

    first = outcomes(5)
    assert first == outcomes(5) and set(first) == {200, 503}


def test_profiles_exact_then_pattern() -> None:
    fast, slow = ModelProfile(ttft=Dist.fixed(0.001)), ModelProfile(ttft=Dist.fixed(0.03))
    config = MockConfig(profiles={"llama3*": slow, "llama3-fast": fast})
    assert config.profile_for("llama3-fast") is fast
    assert config.profile_for("llama3.2:1b") is slow
    assert config.profile_for("gpt-4o") is config.default_profile
    with MockServer(config) as server:
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            for model in ("llama3-fast", "llama3.2"):
                post(c, "/api/chat", {"model": model, "messages": [], "stream": False}, hdrs(output_tokens=1))
        finally:
            c.close()
        fast_rec, slow_rec = server.records
    assert fast_rec.first_byte_ns and slow_rec.first_byte_ns
    assert (
        (fast_rec.first_byte_ns - fast_rec.arrival_ns) < 10e6 < (slow_rec.first_byte_ns - slow_rec.arrival_ns)
    )


def test_ttft_per_input_token_and_sampled_lengths() -> None:
    profile = ModelProfile(
        ttft=Dist.fixed(0.001),
        ttft_per_input_token=0.0001,
        output_tokens=Dist.normal(20, 5),
        itl=Dist.fixed(0),
    )
    with MockServer(MockConfig(seed=1, default_profile=profile), isolated=True) as server:

        def check() -> None:
            server.clear_records()
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                long_prompt = {"model": "m", "messages": [{"role": "user", "content": "x" * 4000}]}
                for _ in range(10):
                    post(c, "/v1/chat/completions", long_prompt)
            finally:
                c.close()
            records = server.records
            assert {r.input_tokens for r in records} == {1000}
            delays = [((r.first_byte_ns or 0) - r.arrival_ns) / 1e9 for r in records]
            # 1 ms + 1000 * 0.1 ms, never early.
            assert all(d >= 0.101 for d in delays) and statistics.median(delays) < 0.1016, delays
            assert len({r.output_tokens for r in records}) > 3

        within_attempts(check)


# -- value types ------------------------------------------------------------------------------------------------


def test_dist_sampling() -> None:
    import random

    rng = random.Random(0)
    assert Dist.fixed(0.05).sample(rng) == 0.05
    normal = [Dist.normal(0.01, 0.05).sample(rng) for _ in range(500)]
    assert min(normal) >= 0.0 and statistics.mean(normal) > 0
    lognormal = [Dist.lognormal(0.02, 0.5).sample(rng) for _ in range(2000)]
    assert min(lognormal) > 0 and abs(statistics.median(lognormal) - 0.02) < 0.003
    assert set(Dist.empirical([1, 2, 3]).sample(rng) for _ in range(100)) == {1, 2, 3}
    a, b = random.Random(9), random.Random(9)
    d = Dist.lognormal(1, 1)
    assert [d.sample(a) for _ in range(5)] == [d.sample(b) for _ in range(5)]
    assert Dist.lognormal(20, 0.3).scaled(1e-3).params == pytest.approx(Dist.lognormal(0.02, 0.3).params)
    assert Dist.empirical([1, 3]).mean == 2 and Dist.fixed(2).scaled(0.5) == Dist.fixed(1)
    for bad in (
        lambda: Dist.fixed(-1),
        lambda: Dist.normal(1, -1),
        lambda: Dist.lognormal(0, 1),
        lambda: Dist.empirical([]),
    ):
        with pytest.raises(ValueError):
            bad()


def test_fault_specs() -> None:
    assert Fault.parse("429") == Fault.status(429)
    assert Fault.parse("429:1.5") == Fault.status(429, retry_after=1.5)
    assert Fault.parse("503", retry_after=2) == Fault.status(503, retry_after=2)
    assert Fault.parse("disconnect:4") == Fault.disconnect(4)
    assert Fault.parse("hang:2") == Fault.hang(2)
    assert Fault.parse("malformed:3") == Fault.malformed(3) and Fault.parse("malformed") == Fault.malformed(0)
    assert Fault.parse("error:2") == Fault.stream_error(2) and Fault.parse("error") == Fault.stream_error(0)
    assert Fault.parse("ok") == Fault.ok()
    assert Fault.hang(10_000).seconds == MAX_HANG_SECONDS
    faults = (Fault.ok(), Fault.status(529), Fault.disconnect(0), Fault.hang(0.5), Fault.malformed(2))
    assert [f.label for f in faults] == [None, "529", "disconnect:0", "hang:0.5", "malformed:2"]
    assert Fault.stream_error(1).label == "error:1"
    bad_specs = (
        "",
        "boom",
        "200",
        "disconnect:x",
        "hang:-1",
        "429:soon",
        "malformed:-1",
        "malformed:x",
        "error:-1",
    )
    for bad in bad_specs:
        with pytest.raises(ValueError):
            Fault.parse(bad)
    with pytest.raises(ValueError):
        MockConfig(fault_rates={"429": 0.8, "503": 0.8})


def test_hang_then_normal_answer(mock: MockServer) -> None:
    with openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as c:
        start = time.perf_counter()
        completion = c.chat.completions.create(
            model="gpt-hang-short", messages=CHAT["messages"], extra_headers=hdrs(fault="hang:0.05")
        )
        elapsed = time.perf_counter() - start
    assert (
        completion.choices[0].message.content
        and len(completion.choices[0].message.content.split()) == OUTPUT_TOKENS
    )
    assert 0.05 < elapsed < 0.5


# -- malformed chunks -----------------------------------------------------------------------------------------


def _sse_events(body: bytes) -> list[bytes]:
    return [event for event in body.split(b"\n\n") if event]


def _is_json(text: bytes) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_malformed_chunk_is_framed_but_cut(conn: http.client.HTTPConnection) -> None:
    # OpenAI SSE: content chunk 1 is an event whose JSON is cut in half; the stream goes on to [DONE].
    status, headers, body = post(
        conn, "/v1/chat/completions", {**CHAT, "stream": True}, hdrs(fault="malformed:1", output_tokens=4)
    )
    events = _sse_events(body)  # http.client has undone the chunked transfer encoding
    assert status == 200 and all(e.startswith(b"data: ") for e in events)
    assert [_is_json(e[6:]) for e in events[:-1]] == [True, True, False, True, True, True]
    assert events[-1] == b"data: [DONE]"
    # Ollama NDJSON: line 2 (content chunk 2) is cut, each line still ends with a newline.
    status, _, body = post(
        conn, "/api/generate", {"model": "m", "prompt": "hi"}, hdrs(fault="malformed:2", output_tokens=4)
    )
    lines = body.split(b"\n")
    assert status == 200 and lines[-1] == b""
    assert [_is_json(line) for line in lines[:-1]] == [True, True, False, True, True]
    # Beyond the last chunk: the last content chunk is the broken one.
    status, _, body = post(
        conn, "/api/generate", {"model": "m", "prompt": "hi"}, hdrs(fault="malformed:99", output_tokens=3)
    )
    assert [_is_json(line) for line in body.split(b"\n")[:-1]] == [True, True, False, True]
    # Non-streamed: a 200 whose body (Content-Length and all) is half a JSON document.
    status, headers, body = post(conn, "/v1/chat/completions", CHAT, hdrs(fault="malformed:0"))
    assert status == 200 and int(headers["content-length"]) == len(body) and not _is_json(body)
    assert body.startswith(b'{"id":"chatcmpl-')
    # The connection is still good.
    assert post(conn, "/v1/chat/completions", CHAT)[0] == 200


def test_malformed_by_script_and_by_rate() -> None:
    with MockServer(MockConfig(fault_rates={"malformed:1": 1.0})) as server:
        server.script("m-scripted", [Fault.malformed(0), Fault.status(429)])
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            outcomes = [post(c, "/v1/chat/completions", {**CHAT, "model": m}) for m in ("m-scripted",) * 2]
            outcomes.append(post(c, "/v1/chat/completions", {**CHAT, "model": "m-rated"}))
        finally:
            c.close()
        records = server.records
    assert [status for status, _, _ in outcomes] == [200, 429, 200]
    assert not _is_json(outcomes[0][2]) and not _is_json(outcomes[2][2])
    assert [r.fault for r in records] == ["malformed:0", "429", "malformed:1"]


# -- fault rates: statistics and seeds ------------------------------------------------------------------------


def _pipelined_faults(seed: int, n: int) -> list[str | None]:
    """Fault labels of `n` requests sent down one pipelined connection, in order."""
    rates = {"429": 0.10, "503": 0.05, "529": 0.02, "malformed:0": 0.03}
    quick = ModelProfile(ttft=Dist.fixed(0), itl=Dist.fixed(0), output_tokens=Dist.fixed(1))
    with MockServer(MockConfig(seed=seed, fault_rates=rates, default_profile=quick)) as server:
        body = json.dumps(CHAT).encode()
        one = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%b" % (
            len(body),
            body,
        )
        marker = b"HTTP/1.1 "  # every response starts with its status line
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            # Sent from a thread: reading only after the last byte is sent could deadlock on full buffers.
            sender = threading.Thread(target=sock.sendall, args=(one * n,), daemon=True)
            sender.start()
            seen, tail = 0, b""
            while seen < n:
                data = sock.recv(1 << 20)
                assert data, "server closed the connection"
                # A status line split across two reads is counted once: the kept tail is one byte too
                # short to hold a whole marker.
                seen += (tail + data).count(marker)
                tail = (tail + data)[-(len(marker) - 1) :]
            sender.join(timeout=10)
        records = server.records
    assert len(records) == n
    return [r.fault for r in sorted(records, key=lambda r: r.arrival_ns)]


def test_fault_rates_hold_and_seeds_repeat() -> None:
    n = 3000
    faults = _pipelined_faults(seed=42, n=n)
    for label, rate in (("429", 0.10), ("503", 0.05), ("529", 0.02), ("malformed:0", 0.03), (None, 0.80)):
        count = faults.count(label)
        sigma = (n * rate * (1 - rate)) ** 0.5
        # Binomial: 4 sigma leaves ~1 in 16 000 for a correct implementation (and the seed is fixed).
        assert abs(count - n * rate) < 4 * sigma, (label, count, n * rate)
    assert _pipelined_faults(seed=42, n=n) == faults  # same seed, same sequence
    assert _pipelined_faults(seed=43, n=n) != faults


# -- pacing and lateness --------------------------------------------------------------------------------------


def test_overdue_chunks_go_out_together_and_lateness_is_recorded(mock: MockServer) -> None:
    with openai.OpenAI(base_url=mock.openai_base_url, api_key="k", max_retries=0) as c:
        burst = c.chat.completions.create(
            model="gpt-pacing",
            messages=CHAT["messages"],
            stream=True,
            extra_headers=hdrs(ttft_ms=0, itl_ms=0, output_tokens=20),
        )
        assert sum(1 for ch in burst if ch.choices and ch.choices[0].delta.content) == 20
        paced = c.chat.completions.create(
            model="gpt-pacing",
            messages=CHAT["messages"],
            stream=True,
            extra_headers=hdrs(ttft_ms=5, itl_ms=3, output_tokens=5),
        )
        assert sum(1 for ch in paced if ch.choices and ch.choices[0].delta.content) == 5
        burst_rec = record_for(mock, burst.response.headers["x-request-id"])
        paced_rec = record_for(mock, paced.response.headers["x-request-id"])
    # With no gaps every chunk is due at once: one write carries them all.
    assert burst_rec.chunks == 20 and burst_rec.first_byte_ns == burst_rec.last_byte_ns
    # Paced chunks are never early (lateness >= 0 is what the record reports).
    assert paced_rec.first_byte_ns is not None and paced_rec.last_byte_ns is not None
    assert paced_rec.first_byte_ns - paced_rec.arrival_ns >= 5_000_000
    assert paced_rec.last_byte_ns - paced_rec.first_byte_ns >= 4 * 3_000_000 - paced_rec.late_ns
    assert 0 <= paced_rec.late_ns < 1_000_000_000 and burst_rec.late_ns >= 0


# -- several worker processes ---------------------------------------------------------------------------------


def test_workers_share_the_port_and_merge_ground_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    with MockServer(MockConfig(workers=2, ground_truth_path=str(truth))) as server:
        assert server.isolated
        # The kernel spreads connections by their address hash: 40 new connections reach both
        # workers except with probability 2 * 2**-40.
        for _ in range(40):
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                request = {"model": "m", "prompt": "hi", "stream": False}
                assert post(c, "/api/generate", request, hdrs(ttft_ms=0, output_tokens=1))[0] == 200
            finally:
                c.close()
        records = server.records
        assert server.cpu_seconds() > 0
        with pytest.raises(RuntimeError, match="single worker"):
            server.script(None, [Fault.status(503)])
        server.clear_records()
        assert server.records == []
    assert len(records) == 40 and {r.worker for r in records} == {0, 1}
    assert len({r.request_id for r in records}) == 40
    assert [r.arrival_ns for r in records] == sorted(r.arrival_ns for r in records)
    # Both processes appended to one file, one whole line per request.
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    assert sorted(row["request_id"] for row in rows) == sorted(r.request_id for r in records)
    assert {row["worker"] for row in rows} == {0, 1}


def test_workers_config_is_validated() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="workers"):
            MockConfig(workers=bad)  # type: ignore[arg-type]
    with MockServer(MockConfig(workers=1)) as server:
        server.script(None, [Fault.status(503)])  # one worker: scripts work as usual
