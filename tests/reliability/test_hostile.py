"""Hostile responses: the SDK's own behaviour is preserved and telemetry degrades gracefully.

Each case rewrites the mock's real wire bytes (wire.py) into something a broken or malicious
server could send, and feeds it to the real SDKs through their public httpx hooks. Every call
(sync and async, streamed and not, for OpenAI, Anthropic and Ollama) runs uninstrumented and
instrumented: the app must see the same result or the same exception; the telemetry must be one
ended span with attributes of valid types (token counts omitted, never wrong), nothing dropped by
the SDK's attribute validation, and spans and metrics the OTLP encoder accepts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from otelbench.mock import MockServer
from otelbench_instrumentation import AnthropicInstrumentor, OllamaInstrumentor, OpenAIInstrumentor, semconv

from ..instrumentation.conftest import make_providers
from .conftest import uninstrument_everything
from .wire import (
    DROP,
    JSON,
    MESSAGES,
    NDJSON,
    SSE,
    Body,
    Clients,
    Reply,
    by_protocol,
    map_json,
    record_bodies,
    walk,
    with_text,
)

INT64_MAX = 2**63 - 1
TOKEN_KEYS = frozenset(
    {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "prompt_eval_count",
        "eval_count",
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    }
)
USAGE_ATTRIBUTES = (
    semconv.GEN_AI_USAGE_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)


# --- rewriting the wire ---------------------------------------------------------------------


def _tokens(value: Any) -> Callable[[Body], Body]:
    def rewrite(body: Body) -> Body:
        return map_json(body, lambda o: walk(o, lambda k, v: value if k in TOKEN_KEYS else v))

    return rewrite


def _missing_usage(body: Body) -> Body:
    return map_json(body, lambda o: walk(o, lambda k, v: DROP if k in TOKEN_KEYS or k == "usage" else v))


def _unknown_events(body: Body) -> Body:
    body = map_json(
        body, lambda o: {**o, "x_unknown": {"nested": [1, "two", None]}} if isinstance(o, dict) else o
    )
    events = list(body.events)
    if body.content_type == SSE:
        extra = b'event: mystery_event\ndata: {"type":"mystery_event","payload":{"a":[1,2]}}\n\n'
        events.insert(min(2, len(events)), extra)
    elif body.content_type == NDJSON:
        events.insert(min(2, len(events)), b'{"model":"m","x_unknown":true,"done":false}\n')
    return Body(body.content_type, tuple(events))


def _truncated(body: Body) -> Body:
    raw = body.raw
    return Body(body.content_type, (raw[: int(len(raw) * 0.6)],))


def _malformed(body: Body) -> Body:
    """The third document cut in half (the mock's ``malformed:N`` fault, on every protocol)."""
    events = list(body.events)
    i = min(2, len(events) - 1)
    event = events[i]
    if body.content_type == SSE:
        head, _, data = event.partition(b"data: ")
        events[i] = head + b"data: " + data[: len(data) // 2] + b"\n\n"
    else:
        events[i] = event[: len(event) // 2] + (b"\n" if body.content_type == NDJSON else b"")
    return Body(body.content_type, tuple(events))


def _huge(body: Body) -> Body:
    return with_text(body, "x" * (4_000_000 if body.content_type == JSON else 500_000))


CASES: dict[str, Callable[[Body], Body]] = {
    "malformed-json": _malformed,
    "truncated": _truncated,
    "unknown-events": _unknown_events,
    "missing-usage": _missing_usage,
    "negative-tokens": _tokens(-5),
    "absurd-tokens": _tokens(10**30),
    "float-tokens": _tokens(12.5),
    "string-tokens": _tokens("12"),
    "null-tokens": _tokens(None),
    "huge-payload": _huge,
}
#: Cases after which the span must carry no token usage at all.
NO_USAGE = frozenset({"missing-usage", "negative-tokens", "absurd-tokens", "float-tokens", "null-tokens"})


# --- the calls ------------------------------------------------------------------------------


def _outcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


async def _aoutcome(fn: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", await fn())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def _open(c: Clients, provider: str, *, stream: bool) -> Any:
    if provider == "openai":
        return c.openai.chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    if provider == "anthropic":
        return c.anthropic.messages.create(model="m", max_tokens=50, messages=MESSAGES, stream=stream)
    return c.ollama.chat(model="m", messages=MESSAGES, stream=stream)


async def _aopen(c: Clients, provider: str, *, stream: bool) -> Any:
    if provider == "openai":
        return await c.aopenai.chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    if provider == "anthropic":
        return await c.aanthropic.messages.create(model="m", max_tokens=50, messages=MESSAGES, stream=stream)
    return await c.aollama.chat(model="m", messages=MESSAGES, stream=stream)


def _calls(c: Clients, provider: str) -> list[tuple[Any, ...]]:
    """One plain and one streamed call, sync then async; what the app saw of each (as reprs)."""

    def plain() -> Any:
        return repr(_open(c, provider, stream=False))

    def streamed() -> Any:
        return [repr(x) for x in _open(c, provider, stream=True)]

    async def aplain() -> Any:
        return repr(await _aopen(c, provider, stream=False))

    async def astreamed() -> Any:
        return [repr(x) async for x in await _aopen(c, provider, stream=True)]

    async def run_async() -> list[tuple[Any, ...]]:
        return [await _aoutcome(aplain), await _aoutcome(astreamed)]

    return [_outcome(plain), _outcome(streamed), *asyncio.run(run_async())]


@pytest.fixture(scope="module")
def bodies(mock_server: MockServer) -> dict[str, Body]:
    return record_bodies(mock_server)


def _valid_value(value: Any) -> bool:
    if isinstance(value, str | bool | float):
        return True
    if isinstance(value, int):
        return -(2**63) <= value <= INT64_MAX
    if isinstance(value, Sequence):
        kinds = {type(v) for v in value}
        return len(kinds) <= 1 and all(_valid_value(v) for v in value)
    return False


def _check_span(span: ReadableSpan, case: str) -> None:
    attrs = dict(span.attributes or {})
    bad = {k: v for k, v in attrs.items() if not _valid_value(v)}
    assert not bad, bad
    for name in USAGE_ATTRIBUTES:
        if name in attrs:
            value = attrs[name]
            assert type(value) is int and 0 <= value <= INT64_MAX, (name, value)
    if case in NO_USAGE:
        assert not [n for n in USAGE_ATTRIBUTES if n in attrs], attrs
    if case == "string-tokens":
        # Where the SDK parsed "12" into 12 the count is kept; Anthropic's input total adds the
        # cache counts (so 36); where the SDK kept the string, the count is omitted.
        usage = {n: attrs[n] for n in USAGE_ATTRIBUTES if n in attrs}
        assert all(v in (12, 36) for v in usage.values()), usage
    for key, value in attrs.items():
        if key.startswith("ollama."):
            assert isinstance(value, int | float) and value >= 0, (key, value)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_response_keeps_sdk_behaviour_and_sane_telemetry(
    bodies: dict[str, Body], case: str, provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite = CASES[case]
    route = by_protocol({name: Reply(rewrite(body)) for name, body in bodies.items()})
    clients = Clients.build(route)
    try:
        uninstrument_everything()
        expected = _calls(clients, provider)
        exporter, tp, reader, mp = make_providers()
        instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor(), OllamaInstrumentor()]
        for inst in instrumentors:
            inst.instrument(tracer_provider=tp, meter_provider=mp)
        caplog.set_level(logging.WARNING, logger="opentelemetry")
        try:
            observed = _calls(clients, provider)
        finally:
            uninstrument_everything()
    finally:
        clients.close()
    assert observed == expected
    spans = exporter.get_finished_spans()
    assert len(spans) == 4, [s.name for s in spans]  # one per call, each ended
    for span in spans:
        _check_span(span, case)
    # Encode what an OTLP exporter would send (it logs an error for a value it cannot encode,
    # e.g. an int beyond int64, and drops it) ...
    encode_spans(spans)
    data = reader.get_metrics_data()
    assert data is not None
    encode_metrics(data)
    # ... and the SDK logs a warning when it drops an attribute of an invalid type: neither happened.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")], caplog.text
    mp.shutdown()
    tp.shutdown()
    if case in ("malformed-json", "truncated"):
        # The failure reached the app, so at least one call's span says so.
        raised = [o for o in expected if o[0] == "raised"]
        errors = [s for s in spans if semconv.ERROR_TYPE in (s.attributes or {})]
        assert len(errors) == len(raised), (raised, [s.attributes for s in errors])


def test_the_hostile_cases_are_hostile(bodies: dict[str, Body]) -> None:
    """Guard against a rewrite that silently changes nothing (which would make the tests vacuous)."""
    for case, rewrite in CASES.items():
        for name, body in bodies.items():
            assert rewrite(body).raw != body.raw, (case, name)
