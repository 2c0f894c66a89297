"""``replay --client http``: the lean HTTP client, against the mock and raw servers on 127.0.0.1.

The parity tests send one prompt through the official SDK (instrumented) and through the lean
client, both recording into real OTel SDK providers, and compare what was recorded: the lean
path claims to produce the instrumentation's own spans and metrics.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otelbench_instrumentation
from otelbench import rxtime
from otelbench.cli import main
from otelbench.datasets import builtin
from otelbench.load import Limits
from otelbench.mock import Dist, Fault, MockConfig, MockServer, ModelProfile
from otelbench.replay import LoadSpec, ReplayConfig, parse_target, run_replay
from otelbench.replay.adapters import ClientOptions, Observation, make_adapter
from otelbench.replay.httpclient import (
    Endpoint,
    HTTPConnectError,
    HTTPProtocolError,
    HTTPStatusError,
    HTTPTimeout,
    Pool,
    read_all,
)
from otelbench_instrumentation import semconv

from ..conftest import MOCK_OUTPUT_TOKENS, MOCK_TTFT_S

SCHEMES = ("openai", "anthropic", "ollama")


class Providers:
    """Real SDK providers with in-memory exporters."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def points(self) -> dict[str, list[Any]]:
        """Histogram data points by metric name."""
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


def _one(
    scheme: str, url: str, stream: bool, kind: str, providers: Providers
) -> tuple[ReadableSpan, Observation]:
    target = parse_target(f"{scheme}:parity@mock", {}).with_mock(url)
    prompt = builtin("chat")[0]
    obs = Observation()

    async def go() -> None:
        adapter = make_adapter(
            target,
            ClientOptions(stream=stream, kind=kind),
            providers.tracer_provider,
            providers.meter_provider,
        )
        try:
            await adapter.request(prompt, obs)
        finally:
            await adapter.aclose()

    if kind == "sdk":
        otelbench_instrumentation.uninstrument()
        otelbench_instrumentation.instrument(
            tracer_provider=providers.tracer_provider,
            meter_provider=providers.meter_provider,
            include=[scheme],
            chunk_timing="each",
        )
        try:
            asyncio.run(go())
        finally:
            otelbench_instrumentation.uninstrument()
    else:
        asyncio.run(go())
    (span,) = providers.spans.get_finished_spans()
    return span, obs


def _fixed(attributes: Any) -> dict[str, Any]:
    """Span attributes without the per-response ones (ids, timings, rates), which always differ."""
    varying = (
        semconv.GEN_AI_RESPONSE_ID,
        semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK,
    )
    return {
        k: v
        for k, v in dict(attributes or {}).items()
        if k not in varying and not k.endswith(("_duration", "_rate"))
    }


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_lean_client_records_what_the_sdk_instrumentation_records(
    scheme: str, stream: bool, mock_server: MockServer
) -> None:
    sdk, lean = Providers(), Providers()
    sdk_span, sdk_obs = _one(scheme, mock_server.url, stream, "sdk", sdk)
    lean_span, lean_obs = _one(scheme, mock_server.url, stream, "http", lean)

    assert lean_span.name == sdk_span.name and lean_span.kind == sdk_span.kind
    assert set(lean_span.attributes or {}) == set(sdk_span.attributes or {})
    assert _fixed(lean_span.attributes) == _fixed(sdk_span.attributes)
    assert (lean_span.attributes or {}).get(semconv.GEN_AI_RESPONSE_ID) or scheme == "ollama"
    assert lean_span.status.status_code == sdk_span.status.status_code

    sdk_points, lean_points = sdk.points(), lean.points()
    assert set(lean_points) == set(sdk_points)
    for name, points in sdk_points.items():
        assert sorted(json.dumps(dict(p.attributes), sort_keys=True) for p in lean_points[name]) == sorted(
            json.dumps(dict(p.attributes), sort_keys=True) for p in points
        ), name
        assert sum(p.count for p in lean_points[name]) == sum(p.count for p in points), name
    tokens = {
        dict(p.attributes)[semconv.GEN_AI_TOKEN_TYPE]: p.sum for p in lean_points[semconv.METRIC_TOKEN_USAGE]
    }
    assert tokens == {
        dict(p.attributes)[semconv.GEN_AI_TOKEN_TYPE]: p.sum for p in sdk_points[semconv.METRIC_TOKEN_USAGE]
    }
    # The client-side view for the raw log, read from the same fields.
    assert (lean_obs.input_tokens, lean_obs.output_tokens, lean_obs.finish_reason) == (
        sdk_obs.input_tokens,
        sdk_obs.output_tokens,
        sdk_obs.finish_reason,
    )
    assert len(lean_obs.chunk_ns) == len(sdk_obs.chunk_ns)


def _config(targets: list[str], mock: MockConfig, **load: Any) -> ReplayConfig:
    from otelbench.replay.adapters import ClientOptions

    spec = {"limits": Limits(requests=24), "concurrency": 4, "warmup": 1, **load}
    return ReplayConfig(
        targets=[parse_target(t, {}) for t in targets],
        prompts=builtin("chat"),
        dataset="chat",
        load=LoadSpec(**spec),
        client=ClientOptions(kind="http"),
        parallel=True,
        mock_config=mock,
    )


def test_replay_over_http_matches_the_mocks_ground_truth() -> None:
    profile = ModelProfile(ttft=Dist.fixed(0.040), itl=Dist.fixed(0.004), output_tokens=Dist.fixed(6))
    outcome = run_replay(
        _config([f"{s}:truth@mock" for s in SCHEMES], MockConfig(seed=2, default_profile=profile))
    )
    for run in outcome.runs:
        served = [r for r in outcome.mock_records if r.protocol == run.target.scheme]
        assert len(served) == len(run.requests) == 25, run.target.id  # 24 + 1 warm-up
        measured = run.measured
        assert all(r.ok for r in measured), [r.error_type for r in measured if not r.ok]
        assert run.metrics is not None and run.metrics.requests == 24
        by_id = {r.request_id: r for r in served}
        assert len(by_id) == 25
        for raw in measured:
            recorded = raw.recorded
            assert recorded is not None
            # Never earlier than the server's own TTFT (the client's clock starts before the send).
            assert recorded.ttft is not None and recorded.duration is not None
            assert 0.040 <= recorded.ttft < recorded.duration
            # The recorder and the raw log read the same stamps: when each event's bytes were read.
            gaps = [(b - a) / 1e9 for a, b in zip(raw.chunk_ns, raw.chunk_ns[1:], strict=False)]
            assert recorded.gaps == pytest.approx(gaps, abs=1e-9)
            assert recorded.ttft >= (raw.chunk_ns[0] - raw.sent_ns) / 1e9
            assert recorded.output_tokens == 6
            assert raw.output_tokens == 6 and len(raw.chunk_ns) == 6


def test_http_errors_are_failed_requests_with_the_status_as_error_type(tmp_path: Path) -> None:
    profile = ModelProfile(ttft=Dist.fixed(0.001), itl=Dist.fixed(0.001), output_tokens=Dist.fixed(3))
    config = _config(
        ["openai:flaky@mock", "anthropic:flaky@mock"],
        MockConfig(seed=4, default_profile=profile, fault_rates={"503": 0.3}),
        limits=Limits(requests=40),
        warmup=0,
    )
    outcome = run_replay(config)
    for run in outcome.runs:
        served = [r for r in outcome.mock_records if r.protocol == run.target.scheme]
        assert len(served) == 40  # no retries: one HTTP request per replayed request
        failed = [r for r in run.measured if not r.ok]
        assert failed and all(r.http_status == 503 and r.error_type == "HTTPStatusError" for r in failed)
        assert len(failed) == sum(1 for r in served if r.status == 503)
        assert run.metrics is not None and run.metrics.errors == {"503": len(failed)}


def test_a_stream_cut_by_the_server_fails_and_its_connection_is_not_reused(mock_server: MockServer) -> None:
    async def go() -> tuple[list[BaseException | None], int]:
        pool = Pool(Endpoint.parse(mock_server.openai_base_url), 10.0, {"x-mock-fault": "disconnect:2"})
        body = json.dumps(
            {"model": "cut", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        ).encode()
        errors: list[BaseException | None] = []
        for _ in range(2):
            conn = await pool.post("/chat/completions", body, accept="text/event-stream", sep=b"\n\n")
            try:
                conn.deliver(lambda event: None)
                await conn.finished()
                errors.append(None)
            except HTTPProtocolError as exc:
                errors.append(exc)
            finally:
                pool.release(conn)
        idle = len(pool._idle)
        pool.close()
        return errors, idle

    errors, idle = asyncio.run(go())
    assert all(isinstance(e, HTTPProtocolError) for e in errors)
    assert idle == 0


def test_unreachable_endpoint_is_one_line_and_bad_combinations_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    code = main(
        [
            "replay",
            "--client",
            "http",
            "--target",
            f"openai:m@http://127.0.0.1:{port}/v1",
            "--requests",
            "2",
            "--output-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert f"cannot reach http://127.0.0.1:{port}/v1" in err and len(err.strip().splitlines()) == 1

    for argv, named in (
        (["--target", "bedrock:m@mock"], "bedrock:m"),
        (["--max-retries", "3"], "--max-retries 3"),
        (["--client", "grpc"], "grpc"),
    ):
        try:
            code = main(["replay", "--client", "http", *argv, "--output-dir", str(tmp_path)])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code  # type: ignore[assignment]
        err = capsys.readouterr().err
        assert code == 2 and named in err and "Traceback" not in err


def test_bare_replay_over_http_runs_the_three_http_providers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "replay",
            "--client",
            "http",
            "--requests",
            "4",
            "--concurrency",
            "2",
            "--warmup",
            "1",
            "--output-dir",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (raw,) = (out / "raw").glob("benchmarks-*.json")
    results = json.loads(raw.read_text())["results"]
    assert {r["target_id"] for r in results} == {
        "replay/openai:mock-fast",
        "replay/anthropic:mock-balanced",
        "replay/ollama:mock-slow",
    }
    for r in results:
        assert r["metrics"]["requests"] == 4 and r["metrics"]["errors"] == 0
        assert r["details"]["load"]["client"] == "http"
        assert r["details"]["mock_ground_truth"]["served"] == 5


# --- the HTTP/1.1 client against raw servers ------------------------------------------------------
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


def _chunked(payload: bytes, sizes: Iterator[int], ext: str = ";ext=1") -> bytes:
    out, pos = b"", 0
    while pos < len(payload):
        n = next(sizes)
        part = payload[pos : pos + n]
        out += f"{len(part):x}{ext}\r\n".encode() + part + b"\r\n"
        pos += n
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


SSE = b'data: {"a": 1}\r\n\r\n: comment\n\ndata: {"b":\ndata: 2}\n\nevent: x\ndata: [DONE]\n\n'


@pytest.mark.parametrize("ext", [";ext=1", ""], ids=["extensions", "plain"])
@pytest.mark.parametrize("write_size", [1, 2, 7, 64, 4096])
def test_chunked_sse_split_anywhere_gives_the_same_events(write_size: int, ext: str) -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + _chunked(SSE, iter([3, 5, 11, 1, 40] * 20), ext)
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # two requests on one keep-alive connection
            await _read_request(reader)
            for i in range(0, len(response), write_size):
                writer.write(response[i : i + write_size])
                await writer.drain()
                await asyncio.sleep(0)
        writer.close()

    async def go() -> tuple[list[list[bytes]], int]:
        server, port = await _serve(handler)
        pool = Pool(Endpoint.parse(f"http://127.0.0.1:{port}"), 10.0, {})
        results = []
        for _ in range(2):
            conn = await pool.post("/x", b"{}", accept="text/event-stream", sep=b"\n\n")
            events: list[bytes] = []
            conn.deliver(events.append)
            await conn.finished()
            assert conn.status == 200 and conn.reused == bool(results)
            pool.release(conn)
            results.append(events)
        pool.close()
        server.close()
        return results, port

    results, _ = asyncio.run(go())
    expected = [b'data: {"a": 1}', b": comment", b'data: {"b":\ndata: 2}', b"event: x\ndata: [DONE]"]
    assert results == [expected, expected]


Respond = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _failure(respond: Respond, sep: bytes | None) -> BaseException:
    """How a request fails when the server answers with ``respond`` (which writes the response and
    returns once the client has dropped the connection)."""

    async def go() -> BaseException:
        done = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            try:
                await respond(reader, writer)
            finally:
                writer.close()
                done.set()

        server, port = await _serve(handler)
        pool = Pool(Endpoint.parse(f"http://127.0.0.1:{port}"), 30.0, {})
        conn = await pool.post("/x", b"{}", accept="text/event-stream", sep=sep)
        with pytest.raises(HTTPProtocolError) as caught:
            if sep is None:
                await read_all(conn)
            else:
                conn.deliver(lambda event: None)
                await conn.finished()
        pool.release(conn)
        pool.close()
        await asyncio.wait_for(done.wait(), 20)  # the server saw the connection dropped
        server.close()
        return caught.value

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"-5\r\nhello\r\n0\r\n\r\n", "bad chunk size b'-5'"),
        (b"zz\r\nhello\r\n0\r\n\r\n", "bad chunk size b'zz'"),
        (b"3\r\nhello\r\n0\r\n\r\n", "chunk data longer than its size"),
    ],
    ids=["negative", "not-hex", "too-long"],
)
def test_a_malformed_chunked_body_fails_the_request(body: bytes, message: str) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        await writer.drain()
        await reader.read()  # until the client drops the connection

    assert message in str(_failure(respond, b"\n\n"))


@pytest.mark.parametrize(
    ("head", "sep", "endless", "message"),
    [
        (
            b"Transfer-Encoding: chunked",
            b"\n\n",
            b"1000\r\n" + b"x" * 4096 + b"\r\n",
            "event (no separator yet) longer than 1 MiB",
        ),
        (b"Content-Length: 99999999", b"\n\n", b"x" * 4096, "event (no separator yet) longer than 1 MiB"),
        (b"Connection: close", None, b"x" * 4096, "response body longer than 2 MiB"),
        (b"Transfer-Encoding: chunked", b"\n\n", b"f" * 4096, "chunk framing line longer than 64 KiB"),
    ],
    ids=["chunked-event", "sized-event", "body-until-close", "endless-size-line"],
)
def test_a_server_that_never_ends_an_event_or_body_is_cut_off(
    monkeypatch: pytest.MonkeyPatch, head: bytes, sep: bytes | None, endless: bytes, message: str
) -> None:
    from otelbench.replay import httpclient

    monkeypatch.setattr(httpclient, "MAX_EVENT", 1024 * 1024)
    monkeypatch.setattr(httpclient, "MAX_BODY", 2 * 1024 * 1024)
    sent: list[int] = []
    writes = 65536

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = b"" if sep is None else b"6\r\ndata: \r\n" if b"chunked" in head else b"data: "
        writer.write(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + start)
        try:
            for _ in range(writes):  # 256 MiB at most: far past the limits, bounded if they failed
                writer.write(endless)
                await writer.drain()
                sent.append(len(endless))
        except (ConnectionError, OSError):
            pass  # the client dropped the connection, as it should

    assert message in str(_failure(respond, sep))
    # Cut off, not at the end of the stream (how far past the limit depends on how much the
    # loopback sockets' autotuned buffers took: up to tcp_rmem's maximum, 32 MiB here).
    assert sum(sent) < writes * len(endless)


def test_a_prompt_object_is_encoded_once_and_the_kept_set_is_bounded() -> None:
    from otelbench.datasets import with_nonce
    from otelbench.replay import lean

    target = parse_target("openai:m@mock", {}).with_mock("http://127.0.0.1:9")
    adapter = make_adapter(target, ClientOptions(stream=True, kind="http"), None, None)
    assert isinstance(adapter, lean.LeanAdapter)
    prompt = builtin("chat")[0]
    payload, attributes = adapter.prepared(prompt)
    assert adapter.prepared(prompt)[0] is payload  # the same object: built once
    body = json.loads(payload)
    assert body["stream"] is True and body["messages"] == list(prompt.messages)
    assert body["model"] == "m" and attributes == {semconv.GEN_AI_REQUEST_MAX_TOKENS: prompt.max_tokens}
    # An equal prompt made anew (as with nonces) is encoded again, to the same bytes.
    again = type(prompt)(prompt.messages, prompt.max_tokens, prompt.id, prompt.tools)
    assert adapter.prepared(again)[0] == payload and adapter.prepared(again)[0] is not payload
    tagged = [with_nonce(prompt, str(i)) for i in range(lean.PREPARED_KEPT + 5)]
    for i, p in enumerate(tagged):
        assert f"[{i}]".encode() in adapter.prepared(p)[0]
    assert len(adapter._prepared) <= lean.PREPARED_KEPT
    asyncio.run(adapter.aclose())


def test_content_length_body_error_status_and_a_server_that_closes_idle_connections() -> None:
    requests_seen: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        requests_seen.append(1)
        body = b'{"error": {"message": "slow down"}}'
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()  # keep-alive announced, then closed while idle: the client must reconnect

    async def go() -> list[BaseException]:
        server, port = await _serve(handler)
        pool = Pool(Endpoint.parse(f"http://127.0.0.1:{port}"), 10.0, {})
        errors = []
        for _ in range(3):
            conn = await pool.post("/x", b"{}", accept="application/json", sep=None)
            try:
                raise HTTPStatusError(conn.status, await read_all(conn))
            except HTTPStatusError as exc:
                errors.append(exc)
            pool.release(conn)
            await asyncio.sleep(0.05)  # the server's close arrives while the connection is idle
        pool.close()
        server.close()
        return errors

    errors = asyncio.run(go())
    assert [getattr(e, "status_code", None) for e in errors] == [429, 429, 429]
    assert "slow down" in str(errors[0])
    assert len(requests_seen) == 3


def test_deadline_and_refused_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await reader.read()  # until the client gives up and closes
        writer.close()

    async def go() -> tuple[type[BaseException], type[BaseException], float]:
        server, port = await _serve(silent)
        pool = Pool(Endpoint.parse(f"http://127.0.0.1:{port}"), 0.2, {})
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(HTTPTimeout) as timeout:
            await pool.post("/x", b"{}", accept="application/json", sep=None)
        elapsed = loop.time() - start
        server.close()
        await server.wait_closed()
        dead = Pool(Endpoint.parse(f"http://127.0.0.1:{port}"), 1.0, {})
        await asyncio.sleep(0.05)
        with pytest.raises(HTTPConnectError) as refused:
            await dead.post("/x", b"{}", accept="application/json", sep=None)
        return timeout.type, refused.type, elapsed

    timeout, refused, elapsed = asyncio.run(go())
    assert timeout is HTTPTimeout and refused is HTTPConnectError
    assert 0.2 <= elapsed < 2.0


def test_two_workers_over_http_serve_every_request_once() -> None:
    profile = ModelProfile(ttft=Dist.fixed(0.005), itl=Dist.fixed(0.001), output_tokens=Dist.fixed(4))
    config = _config(
        ["openai:w@mock"], MockConfig(seed=6, default_profile=profile), limits=Limits(requests=40)
    )
    from dataclasses import replace

    outcome = run_replay(replace(config, workers=2))
    (run,) = outcome.runs
    assert len(run.measured) == 40 and all(r.ok for r in run.measured)
    assert {r.worker for r in run.requests} == {0, 1}
    served = [r for r in outcome.mock_records if r.protocol == "openai"]
    assert len(served) == len(run.requests)


def test_fault_script_mid_stream_error_event_fails_the_request(mock_server: MockServer) -> None:
    mock_server.script("midstream", [Fault.malformed(1)])
    providers = Providers()
    target = parse_target("openai:midstream@mock", {}).with_mock(mock_server.url)

    async def go() -> BaseException | None:
        adapter = make_adapter(
            target, ClientOptions(kind="http"), providers.tracer_provider, providers.meter_provider
        )
        try:
            await adapter.request(builtin("chat")[0], Observation())
        except Exception as exc:
            return exc
        finally:
            await adapter.aclose()
        return None

    exc = asyncio.run(go())
    assert isinstance(exc, json.JSONDecodeError)
    (span,) = providers.spans.get_finished_spans()
    assert (span.attributes or {})[semconv.ERROR_TYPE] == "JSONDecodeError"


def test_a_body_delimited_by_the_close_reaches_a_push_mode_reader() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n{"a":1}\n{"b":2}')
        await writer.drain()
        writer.close()

    async def go() -> tuple[list[bytes], bool]:
        server, port = await _serve(handler)
        pool = Pool(Endpoint.parse(f"http://127.0.0.1:{port}"), 5.0, {})
        conn = await pool.post("/x", b"{}", accept="application/x-ndjson", sep=b"\n")
        seen: list[bytes] = []
        conn.deliver(seen.append)
        await conn.finished()
        keep = conn.keep_alive
        pool.release(conn)
        pool.close()
        server.close()
        return seen, keep

    seen, keep = asyncio.run(go())
    assert seen == [b'{"a":1}', b'{"b":2}'] and not keep


def test_prepared_connections_are_the_ones_the_first_requests_use(mock_server: MockServer) -> None:
    async def go() -> list[bool]:
        pool = Pool(Endpoint.parse(mock_server.openai_base_url), 10.0, {})
        await pool.prepare(5)
        await pool.prepare(5)  # already there: nothing more is opened
        assert len(pool._idle) == 5
        body = json.dumps({"model": "p", "messages": [{"role": "user", "content": "hi"}]}).encode()

        async def one() -> bool:
            conn = await pool.post("/chat/completions", body, accept="application/json", sep=None)
            reused = conn.reused
            await read_all(conn)
            pool.release(conn)
            return reused

        reused = await asyncio.gather(*(one() for _ in range(5)))
        pool.close()
        return list(reused)

    assert asyncio.run(go()) == [True] * 5


def test_https_verifies_the_server_against_the_trusted_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    body = b'{"ok": true}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the untrusted client gives up during the handshake
        finally:
            writer.close()

    async def go() -> tuple[bytes, BaseException | None]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        url = f"https://127.0.0.1:{port}"
        untrusted = Pool(Endpoint.parse(url), 5.0, {})  # the system roots only
        refused: BaseException | None = None
        try:
            await untrusted.post("/x", b"{}", accept="application/json", sep=None)
        except HTTPConnectError as exc:
            refused = exc
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # read when a pool builds its context
        pool = Pool(Endpoint.parse(url), 5.0, {})
        conn = await pool.post("/x", b"{}", accept="application/json", sep=None)
        got = await read_all(conn)
        pool.release(conn)
        pool.close()
        server.close()
        await server.wait_closed()
        return got, refused

    got, refused = asyncio.run(go())
    assert got == body
    assert isinstance(refused, HTTPConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(refused)


def test_histogram_values_wait_for_the_collect_and_none_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    from otelbench.replay import telemetry as replay_telemetry

    t = replay_telemetry.Telemetry()
    histogram = t.instrumented_meter_provider.get_meter("test").create_histogram("h")
    attrs = {"k": "v"}
    for _ in range(10):
        histogram.record(0.1, attrs)
    attrs["k"] = "changed"  # the caller reuses its dict: the queued values keep what it said

    def points() -> list[Any]:
        data = t.collect()
        assert data is not None
        return [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "h"
            for p in m.data.data_points
        ]

    (point,) = points()
    assert point.count == 10 and dict(point.attributes) == {"k": "v"}
    # A long run never holds more than BACKLOG_LIMIT values back.
    monkeypatch.setattr(replay_telemetry, "BACKLOG_LIMIT", 4)
    monkeypatch.setattr(replay_telemetry, "BACKLOG_STEP", 2)
    for i in range(9):
        histogram.record(0.2, attrs)
        assert t._gate.queued <= 3, i
    other = {"k": "other"}
    histogram.record(0.3, other)
    histogram.record(0.5, dict(other))  # another dict with the same contents: the same series
    (first, second) = sorted(points(), key=lambda p: str(dict(p.attributes)))
    assert (dict(first.attributes), first.count, first.sum) == ({"k": "changed"}, 9, pytest.approx(1.8))
    assert (dict(second.attributes), second.count, second.sum) == ({"k": "other"}, 2, 0.8)
    t.shutdown()


def test_queued_histogram_values_keep_their_type_and_odd_ones_are_recorded() -> None:
    from otelbench.replay import telemetry as replay_telemetry

    t = replay_telemetry.Telemetry()
    meter = t.instrumented_meter_provider.get_meter("test")
    tokens, seconds = meter.create_histogram("tokens"), meter.create_histogram("seconds")
    attrs = {"k": "v", "stop": ["a", "b"]}  # a list value: not hashable, still queued
    for n in (3, 4, 5):
        tokens.record(n, attrs)
        seconds.record(n / 10, attrs)  # interleaved with another histogram, same dict
    tokens.record(2**70, attrs)  # past int64: recorded at once, not lost
    queued = t._gate.queued
    data = t.collect()
    assert data is not None
    points = {
        m.name: m.data.data_points[0]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert queued == 6
    assert points["tokens"].count == 4 and points["tokens"].sum == 12 + 2**70
    assert points["seconds"].count == 3 and points["seconds"].sum == pytest.approx(1.2)
    assert dict(points["tokens"].attributes) == {"k": "v", "stop": ("a", "b")}
    t.shutdown()


def test_a_proxy_in_the_environment_is_named_as_ignored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    argv = ["replay", "--target", f"openai:m@http://127.0.0.1:{port}/v1", "--requests", "1"]
    main([*argv, "--client", "http", "--output-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert "--client http ignores HTTP_PROXY; openai:m@http://127.0.0.1:" in err
    assert "Traceback" not in err


@pytest.mark.skipif(
    rxtime.SO_TIMESTAMPNS is None, reason="kernel receive times are read on 64-bit Linux only"
)
def test_a_busy_loop_does_not_delay_the_recorded_chunks(isolated_mock_server: MockServer) -> None:
    # The mock runs in its own process: it writes on time while this loop is blocked.
    providers = Providers()
    target = parse_target("openai:busy-loop@mock", {}).with_mock(isolated_mock_server.url)
    blocked_s = 0.4

    async def go() -> Observation:
        adapter = make_adapter(
            target,
            ClientOptions(stream=True, kind="http"),
            providers.tracer_provider,
            providers.meter_provider,
        )
        try:
            await adapter.prepare(1)
            obs = Observation()
            task = asyncio.create_task(adapter.request(builtin("chat")[0], obs))
            while not obs.sent_ns:
                await asyncio.sleep(0)
            time.sleep(blocked_s)  # the whole response arrives meanwhile, unread
            await task
            return obs
        finally:
            await adapter.aclose()

    obs = asyncio.run(go())
    (record,) = [r for r in isolated_mock_server.records if r.model == "busy-loop"]
    (span,) = providers.spans.get_finished_spans()
    ttft = (span.attributes or {})[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert isinstance(ttft, float) and record.last_byte_ns is not None
    # Read-time stamps would all be past the 0.4 s block. The kernel's are when the bytes came:
    # queued packets are merged under the newest one's time, the last write's (same clock as ours).
    assert len(obs.chunk_ns) == MOCK_OUTPUT_TOKENS
    assert record.last_byte_ns <= obs.chunk_ns[0] == obs.chunk_ns[-1] < record.last_byte_ns + 5_000_000
    assert (obs.chunk_ns[-1] - obs.sent_ns) / 1e9 < blocked_s - 0.2
    assert MOCK_TTFT_S <= ttft < blocked_s - 0.2
    # The operation ends when its last item came, not when the loop got to it.
    (duration,) = providers.points()[semconv.METRIC_OPERATION_DURATION]
    assert duration.count == 1 and ttft <= duration.sum < blocked_s - 0.2
    assert obs.end_ns is not None and obs.end_ns - obs.sent_ns < (blocked_s - 0.2) * 1e9


def test_read_times_come_from_the_kernel_and_fall_back_to_the_clock() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = rxtime.client_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    try:
        client.setblocking(True)
        client.connect(server.getsockname())
        peer, _ = server.accept()
        with peer:
            peer.sendall(b"one")
            time.sleep(0.1)
            assert client.recv(16) == b"one"
            first_read, first_stamp = time.perf_counter_ns(), getattr(client, "rx_ns", None)
            buffer = bytearray(16)
            peer.sendall(b"two")
            time.sleep(0.1)
            assert client.recv_into(buffer, 8) == 3 and buffer[:3] == b"two"
            second_read, second_stamp = time.perf_counter_ns(), getattr(client, "rx_ns", None)
    finally:
        client.close()
        server.close()
    if rxtime.SO_TIMESTAMPNS is None:
        assert not isinstance(client, rxtime.StampedSocket)
    else:
        # The bytes sat in the kernel for 0.1 s before each read: the stamps are that much older.
        assert first_stamp is not None and second_stamp is not None
        assert first_stamp <= first_read - 90_000_000
        assert first_read < second_stamp <= second_read - 90_000_000
    # A control message that is not a timestamp (or none) gives the read time.
    now = time.perf_counter_ns()
    assert rxtime.received_at([]) >= now
    assert rxtime.received_at([(socket.SOL_SOCKET, -1, bytes(16))]) >= now
    # A stamp from the future (a clock step) is not believed either.
    future = time.time_ns() + 5_000_000_000
    stamp = rxtime.TIMESPEC.pack(future // 1_000_000_000, future % 1_000_000_000)
    assert rxtime.received_at([(socket.SOL_SOCKET, rxtime.SO_TIMESTAMPNS or 35, stamp)]) >= now


def test_events_are_parsed_in_slices_with_polls_between_and_none_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otelbench.replay import httpclient

    # Long slices, so that a loaded machine's oversleeping does not change the outcome.
    monkeypatch.setattr(httpclient, "SLICE_NS", 50_000_000)
    turns: list[int] = []
    turn = 0

    class Busy:
        """Stands in for a connection whose events take 0.6 of a slice to parse."""

        def __init__(self, fail: bool = False) -> None:
            self.fail = fail

        def _dispatch(self) -> None:
            turns.append(turn)
            time.sleep(httpclient.SLICE_NS * 0.6 / 1e9)
            if self.fail:
                raise RuntimeError("a parser bug")

    async def go() -> None:
        nonlocal turn
        loop = asyncio.get_running_loop()
        slices = httpclient._Slices(loop)
        for conn in [Busy(), Busy(fail=True), Busy(), Busy(), Busy()]:
            slices.add(conn)  # type: ignore[arg-type]
        loop.set_exception_handler(lambda _loop, _context: None)  # the failing slice is reported there
        while turn < 5:
            turn += 1
            await asyncio.sleep(0)  # one loop turn: the sockets are polled between two slices
        assert not slices.queue and not slices.scheduled

    asyncio.run(go())
    # Two connections per slice (the second one overruns it), one slice per turn; the failure
    # in the second slice does not stall the ones after it.
    assert turns == [1, 1, 2, 2, 3]


def test_decoded_items_read_like_sdk_models_and_stay_dicts() -> None:
    from otelbench.replay.lean import decode

    item = decode(b'{"choices":[{"delta":{"content":"hi"},"finish_reason":null}],"usage":{"x":1}}')
    (choice,) = item.choices
    assert choice.delta.content == "hi" and choice.finish_reason is None
    assert item.usage.x == 1 and item.error is None and item.not_a_field is None
    assert isinstance(item, dict) and json.loads(json.dumps(item)) == item
    assert decode(b' \t{"type": "ping"}\n').type == "ping"  # blanks around a value
    for bad, message in [
        (b'{"a":1} {"b":2}', "Extra data"),
        (b"", "Expecting value"),
        (b'{"a":', "Expecting"),
    ]:
        with pytest.raises(json.JSONDecodeError, match=message):
            decode(bad)


def test_a_wave_of_request_steps_is_spread_over_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    from otelbench.replay import httpclient

    # Long turns and steps, so that a loaded machine's oversleeping cannot add passes to a turn.
    monkeypatch.setattr(httpclient, "TURN_NS", 20_000_000)
    step_s = 0.008  # ending a response and sending the next request, as a busy wait
    passed: list[tuple[int, int]] = []  # (request, loop turn)
    turn = 0

    async def go() -> None:
        nonlocal turn
        slices = httpclient._Slices(asyncio.get_running_loop())

        async def request(i: int) -> None:
            await slices.pace()
            passed.append((i, turn))
            time.sleep(step_s)

        tasks = [asyncio.create_task(request(i)) for i in range(12)]
        await asyncio.sleep(0)
        tasks[7].cancel()  # waiting by now: its cancellation must not disturb the others
        while not all(task.done() for task in tasks):
            turn += 1
            await asyncio.sleep(0)  # one loop turn: where the sockets are polled
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not slices.waiters and not slices.marking  # idle again: no turn marker left running

    asyncio.run(go())
    assert sorted(i for i, _ in passed) == [i for i in range(12) if i != 7]  # each once
    per_turn = [sum(1 for _, t in passed if t == each) for each in sorted({t for _, t in passed})]
    # A turn takes steps while it is younger than TURN_NS: at most 20 // 8 + 1 of them, and the
    # loop polls between turns. Without pacing all eleven would run in the first turn.
    assert max(per_turn) <= 3 and len(per_turn) >= 4


def test_where_reads_are_not_stamped_both_ends_fall_back_to_read_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otelbench.targets._harness_truth import start_ns

    monkeypatch.setattr(rxtime, "SO_TIMESTAMPNS", None)  # as on macOS, Windows or 32-bit Linux
    body = json.dumps(
        {"model": "plain", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()

    async def go(url: str) -> tuple[bool, bytes]:
        pool = Pool(Endpoint.parse(url), 10.0, {})
        conn = await pool.post("/chat/completions", body, accept="text/event-stream", sep=None)
        got = await read_all(conn)
        stamped = conn._stamps is not None
        pool.release(conn)
        pool.close()
        return stamped, got

    with MockServer(MockConfig(seed=5)) as server:  # in this process: it sees the patched module
        stamped, got = asyncio.run(go(server.openai_base_url))
        (record,) = server.records
    assert not stamped and b"data: [DONE]" in got
    assert record.received_ns is None and start_ns(record) == record.arrival_ns
