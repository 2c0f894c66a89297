"""The Anthropic instrumentation never breaks the app, never leaks content or keys, and undoes itself."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import anthropic
import pytest
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.trace import TracerProvider

import otelbench_instrumentation
from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import AnthropicInstrumentor, semconv

from ..test_safety import (
    ProviderOfRaisingMeters,
    ProviderOfRaisingTracers,
    RaisingMeterProvider,
    RaisingTracerProvider,
)
from .conftest import API_KEY, Otel, instrumented

PROMPT = "my secret prompt about the quarterly numbers"
SYSTEM = "you are the secret system prompt"
MESSAGES: Any = [{"role": "user", "content": PROMPT}]


def _shape(text: str) -> tuple[str, int]:
    # The mock words each reply differently; the app must see the same shape and types.
    return type(text).__name__, len(text.split())


def _workload(server: MockServer) -> list[Any]:
    """Every call shape an app might make; returns what the app observed."""
    seen: list[Any] = []
    server.script("claude-safe-400", [Fault.status(400)])
    server.script("claude-safe-529", [Fault.status(529, retry_after=0.01), Fault.ok()])
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=API_KEY) as c:
        m = c.messages.create(model="claude-safe", max_tokens=50, system=SYSTEM, messages=MESSAGES)
        seen.append((type(m).__name__, _shape(m.content[0].text), m.usage.output_tokens, m.stop_reason))  # type: ignore[union-attr]
        stream = c.messages.create(model="claude-safe", max_tokens=50, messages=MESSAGES, stream=True)
        # type() of a proxy is the proxy's class; isinstance() and __class__ are the SDK's.
        seen.append((isinstance(stream, anthropic.Stream), stream.__class__, [type(e) for e in stream]))
        with c.messages.stream(model="claude-safe", max_tokens=50, messages=MESSAGES) as s:
            seen.append(
                (type(s), [_shape(t) for t in s.text_stream], s.get_final_message().usage.output_tokens)
            )
        raw = c.messages.with_raw_response.create(model="claude-safe", max_tokens=50, messages=MESSAGES)
        seen.append((raw.status_code, type(raw.parse()).__name__))
        with c.messages.with_streaming_response.create(
            model="claude-safe", max_tokens=50, messages=MESSAGES, stream=True
        ) as resp:
            seen.append([e.type for e in resp.parse()])
        seen.append(c.messages.count_tokens(model="claude-safe", messages=MESSAGES).input_tokens)
        try:
            c.messages.create(model="claude-safe-400", max_tokens=50, messages=MESSAGES)
        except anthropic.BadRequestError as exc:
            seen.append((type(exc).__name__, exc.status_code))
        seen.append(c.messages.create(model="claude-safe-529", max_tokens=50, messages=MESSAGES).stop_reason)

    async def run_async() -> list[Any]:
        async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key=API_KEY) as ac:
            s = await ac.messages.create(model="claude-safe", max_tokens=50, messages=MESSAGES, stream=True)
            events = [(isinstance(s, anthropic.AsyncStream), type(e)) async for e in s]
            async with ac.messages.stream(model="claude-safe", max_tokens=50, messages=MESSAGES) as h:
                text = await h.get_final_text()
            return [events, _shape(text)]

    seen.append(asyncio.run(run_async()))
    return seen


@pytest.mark.parametrize(
    ("tracer_provider", "meter_provider"),
    [
        (RaisingTracerProvider(), RaisingMeterProvider()),
        (ProviderOfRaisingTracers(), ProviderOfRaisingMeters()),
        (ProviderOfRaisingTracers(), None),
    ],
    ids=["get-raises", "every-call-raises", "spans-raise"],
)
def test_raising_telemetry_never_reaches_the_app(
    mock_server: MockServer, tracer_provider: TracerProvider, meter_provider: MeterProvider | None
) -> None:
    instrumentor = AnthropicInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    expected = _workload(mock_server)  # uninstrumented
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        assert instrumentor.is_instrumented_by_opentelemetry
        assert _workload(mock_server) == expected
    finally:
        instrumentor.uninstrument()


def _exported_text(otel: Otel) -> str:
    spans = "\n".join(s.to_json() for s in otel.spans())
    data: MetricsData | None = otel.reader.get_metrics_data()
    return spans + (data.to_json() if data is not None else "")


def test_no_content_by_default_and_key_never_exported(otel: Otel, mock_server: MockServer) -> None:
    _workload(mock_server)
    text = _exported_text(otel)
    assert len(otel.spans()) == 9, "every model call has its span (count_tokens has none)"
    for secret in (PROMPT, SYSTEM, API_KEY, API_KEY[-12:]):
        assert secret not in text
    for name in (
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    ):
        assert name not in text
    # No completion words either: no long strings at all.
    for span in otel.spans():
        assert all(not isinstance(v, str) or len(v) < 64 for v in (span.attributes or {}).values())


def test_content_captured_when_enabled(mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(semconv.ENV_CAPTURE_CONTENT, "true")
    otel, instrumentor = instrumented()
    try:
        with anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
            message = c.messages.create(model="claude-safe", max_tokens=50, system=SYSTEM, messages=MESSAGES)
            with c.messages.stream(model="claude-safe", max_tokens=50, messages=MESSAGES) as s:
                streamed = "".join(s.text_stream)
    finally:
        instrumentor.uninstrument()
    plain, stream_span = otel.spans()
    completion = message.content[0].text  # type: ignore[union-attr]
    for span, output_text in ((plain, completion), (stream_span, streamed)):
        a = span.attributes or {}
        assert json.loads(str(a[semconv.GEN_AI_INPUT_MESSAGES])) == [
            {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
        ]
        output = json.loads(str(a[semconv.GEN_AI_OUTPUT_MESSAGES]))
        assert output[0]["parts"][0]["content"] == output_text
        assert output[0]["finish_reason"] == "end_turn"
        assert API_KEY not in span.to_json()
    assert json.loads(str((plain.attributes or {})[semconv.GEN_AI_SYSTEM_INSTRUCTIONS])) == [
        {"type": "text", "content": SYSTEM}
    ]


def test_uninstrument_restores_original_methods(mock_server: MockServer) -> None:
    from anthropic import _base_client

    def current() -> list[object]:
        return [
            _base_client.SyncAPIClient.__dict__["request"],
            _base_client.AsyncAPIClient.__dict__["request"],
            _base_client.SyncAPIClient.__dict__["_sleep_for_retry"],
            _base_client.BaseClient.__dict__["_calculate_retry_timeout"],
            _base_client.start_api_call_span,
        ]

    if AnthropicInstrumentor().is_instrumented_by_opentelemetry:
        AnthropicInstrumentor().uninstrument()
    originals = current()
    otel, _ = instrumented()
    assert all(now is not before for now, before in zip(current(), originals, strict=True))
    otelbench_instrumentation.uninstrument()
    assert current() == originals
    with anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
        c.messages.create(model="claude-safe", max_tokens=10, messages=MESSAGES)
    assert otel.spans() == []


def test_instrumenting_twice_does_not_double_spans(mock_server: MockServer) -> None:
    otel, instrumentor = instrumented()
    otelbench_instrumentation.instrument(tracer_provider=otel.tracer_provider, include=["anthropic"])
    AnthropicInstrumentor().instrument(tracer_provider=otel.tracer_provider)
    try:
        with anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
            c.messages.create(model="claude-safe", max_tokens=10, messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert len(otel.spans()) == 1


def test_registered_for_instrument_and_the_disable_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert otelbench_instrumentation.INSTRUMENTORS["anthropic"] is AnthropicInstrumentor
    if AnthropicInstrumentor().is_instrumented_by_opentelemetry:
        AnthropicInstrumentor().uninstrument()
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "anthropic")
    assert otelbench_instrumentation.instrument(include=["anthropic"]) == []
    assert not AnthropicInstrumentor().is_instrumented_by_opentelemetry


def test_package_imports_and_instruments_without_anthropic() -> None:
    # A service without the SDK: `import anthropic` fails, our package must not.
    code = (
        "import sys; sys.modules['anthropic'] = None\n"
        "import otelbench_instrumentation as o\n"
        "o.AnthropicInstrumentor().instrument()\n"
        "o.AnthropicInstrumentor().uninstrument()\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.strip() == "ok", proc.stderr
