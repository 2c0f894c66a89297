"""Privacy, property-based: no prompt, completion or API key in any exported telemetry by default;
with content capture on, every content attribute stops at the configured limit.

The completion is derived from each request's prompt (the transport echoes it, wire.py), and a
third call fails with an error body that quotes the prompt and the key, so every path a secret
could take (request, response, stream chunks, the SDK's exception) is exercised for each example.
The fixed-prompt versions of these checks live in tests/instrumentation/*/test_*safety.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelbench.mock import MockServer
from otelbench_instrumentation import AnthropicInstrumentor, OllamaInstrumentor, OpenAIInstrumentor, semconv

from ..instrumentation.conftest import make_providers
from .conftest import uninstrument_everything
from .wire import Body, Clients, Reply, by_protocol, record_bodies, with_text

CONTENT_ATTRIBUTES = (
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
)

# Printable text from every script (no surrogates, no control characters), long enough that
# finding it in the telemetry cannot be a coincidence.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=12, max_size=200).filter(
    lambda s: len(s.strip()) >= 12
)
# Keys as providers issue them: random bytes in URL-safe base64 (they shrink to "sk-AAAA...", which
# no telemetry contains by chance; a key made of words could match an attribute name).
KEYS = st.binary(min_size=18, max_size=33).map(lambda b: "sk-" + base64.urlsafe_b64encode(b).decode())
# Each example runs 15 calls with instrumentation switched on and off around them (~0.3 s).
SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def completion_for(prompt: str) -> str:
    """What the transport answers a prompt with: the prompt itself, turned around."""
    return "answer: " + prompt[::-1]


def _prompt_of(request: Any) -> str:
    payload = json.loads(request.content)
    content = payload["messages"][-1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


def echo_route(bodies: dict[str, Body]) -> Any:
    """Answer with the request's prompt echoed; model "fail" gets a 400 quoting prompt and key."""
    plain = by_protocol({name: Reply(body) for name, body in bodies.items()})

    def route(request: Any) -> Reply:
        prompt = _prompt_of(request)
        payload = json.loads(request.content)
        if payload.get("model") == "fail":
            key = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
            error = {
                "error": {"type": "invalid_request_error", "message": f"bad prompt {prompt!r} for {key}"}
            }
            return Reply(Body("application/json", (json.dumps(error).encode(),)), status=400)
        reply = plain(request)
        return Reply(with_text(reply.body, completion_for(prompt)))

    return route


def _workload(c: Clients, prompt: str, system: str) -> None:
    """Plain, streamed and failing calls of the three SDKs, sync and async."""
    messages: Any = [{"role": "user", "content": prompt}]
    with_system: Any = [{"role": "system", "content": system}, *messages]
    c.openai.chat.completions.create(model="m", messages=with_system)
    list(c.openai.chat.completions.create(model="m", messages=with_system, stream=True))
    c.anthropic.messages.create(model="m", max_tokens=50, system=system, messages=messages)
    with c.anthropic.messages.stream(model="m", max_tokens=50, system=system, messages=messages) as s:
        s.get_final_message()
    c.ollama.chat(model="m", messages=with_system, stream=False)
    list(c.ollama.chat(model="m", messages=with_system, stream=True))
    for fail in (
        lambda: c.openai.chat.completions.create(model="fail", messages=messages),
        lambda: c.anthropic.messages.create(model="fail", max_tokens=50, messages=messages),
        lambda: c.ollama.chat(model="fail", messages=messages),
    ):
        try:
            fail()
        except Exception as exc:
            # The failure really carries the secret: the telemetry must not copy it.
            assert prompt in str(exc) or repr(prompt) in str(exc) or "bad prompt" in str(exc)
        else:
            raise AssertionError("the failing call did not fail")

    async def run_async() -> None:
        s = await c.aopenai.chat.completions.create(model="m", messages=with_system, stream=True)
        [x async for x in s]
        async with c.aanthropic.messages.stream(
            model="m", max_tokens=50, system=system, messages=messages
        ) as a:
            await a.get_final_message()
        [x async for x in await c.aollama.chat(model="m", messages=with_system, stream=True)]

    asyncio.run(run_async())


@contextmanager
def _instrumented(capture_content: bool) -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader]]:
    uninstrument_everything()
    exporter, tp, reader, mp = make_providers()
    for cls in (OpenAIInstrumentor, AnthropicInstrumentor, OllamaInstrumentor):
        cls().instrument(tracer_provider=tp, meter_provider=mp, capture_content=capture_content)
    try:
        yield exporter, reader
    finally:
        uninstrument_everything()
        mp.shutdown()
        tp.shutdown()


class _Records(logging.Handler):
    """Every log record of the instrumentation, at every level, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@contextmanager
def _log_records() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("otelbench_instrumentation")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _forms(secret: str) -> set[str]:
    # As written, and as JSON would escape it (to_json() escapes non-ASCII text).
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


@pytest.fixture(scope="module")
def bodies(mock_server: MockServer) -> dict[str, Body]:
    return record_bodies(mock_server)


#: A JSON string (kept as is) or a JSON number (masked).
_JSON_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


def _numbers_masked(json_text: str) -> str:
    """``json_text`` with its number values replaced by 0: timings such as 0.0042450000000000005
    change from run to run and would "contain" a secret made of digits. Strings stay as they
    are, so a secret in any string value is still found."""
    return _JSON_TOKEN.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "0", json_text)


def _export(bodies: dict[str, Body], prompt: str, system: str, key: str) -> tuple[str, list[Any]]:
    """Everything the workload exports with capture off: spans, metrics, log records (as text)."""
    clients = Clients.build(echo_route(bodies), api_key=key)
    try:
        with _instrumented(capture_content=False) as (exporter, reader), _log_records() as logs:
            _workload(clients, prompt, system)
            spans = exporter.get_finished_spans()
            data = reader.get_metrics_data()
    finally:
        clients.close()
    exported = _numbers_masked("\n".join(s.to_json() for s in spans))
    exported += _numbers_masked(data.to_json()) if data is not None else ""
    exported += "\n".join(logs.texts)
    return exported, list(spans)


@pytest.fixture(scope="module")
def control(bodies: dict[str, Body]) -> str:
    """An export of the same workload with other secrets: text found there is structure (attribute
    names, JSON punctuation), so finding it again says nothing about a leak."""
    return _export(bodies, "control prompt, nothing secret", "control system prompt", "sk-control-key-0")[0]


def _check_nothing_secret_exported(
    bodies: dict[str, Body], control: str, prompt: str, system: str, key: str
) -> None:
    exported, spans = _export(bodies, prompt, system, key)
    assert len(spans) == 12, [s.name for s in spans]  # the test is not vacuous
    secrets = [prompt, system, completion_for(prompt), key, key[-12:]]
    forms = [(secret, form) for secret in secrets for form in _forms(secret)]
    assume(not any(form in control for _, form in forms))
    for secret, form in forms:
        assert form not in exported, f"{secret!r} leaked"
    for span in spans:
        attrs = span.attributes or {}
        assert not [name for name in CONTENT_ATTRIBUTES if name in attrs]


@pytest.mark.parametrize("examples", [15, pytest.param(200, marks=pytest.mark.slow)])
def test_nothing_secret_is_exported_with_capture_off(
    bodies: dict[str, Body], control: str, examples: int
) -> None:
    @settings(SETTINGS, max_examples=examples)
    @given(prompt=TEXT, system=TEXT, key=KEYS)
    def check(prompt: str, system: str, key: str) -> None:
        _check_nothing_secret_exported(bodies, control, prompt, system, key)

    check()


@SETTINGS
@given(prompt=TEXT, limit=st.integers(min_value=0, max_value=300))
def test_captured_content_stops_at_the_configured_limit(
    bodies: dict[str, Body], prompt: str, limit: int
) -> None:
    os.environ[semconv.ENV_CONTENT_MAX_LENGTH] = str(limit)  # restored by tests/conftest.py
    clients = Clients.build(echo_route(bodies))
    try:
        with _instrumented(capture_content=True) as (exporter, _):
            _workload(clients, prompt, "be brief, please, and careful")
            spans = exporter.get_finished_spans()
    finally:
        clients.close()
    captured = {
        name: [str(attrs[name]) for attrs in (s.attributes or {} for s in spans) if name in attrs]
        for name in CONTENT_ATTRIBUTES
    }
    everything = [text for texts in captured.values() for text in texts]
    # Every successful call captured its prompt and completion (else the limit is untested).
    assert len(everything) >= 2 * 9, len(everything)
    assert all(len(text) <= limit for text in everything), (limit, [len(t) for t in everything])
    if limit <= len(prompt):
        # The input messages (JSON around at least the prompt) were longer: cut at exactly the
        # limit. (The system instructions hold only the short system prompt; not so.)
        inputs = captured[semconv.GEN_AI_INPUT_MESSAGES]
        assert inputs and all(len(text) == limit for text in inputs), (limit, [len(t) for t in inputs])
