"""Instrumentation never breaks the app, never leaks content or keys, and undoes itself."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from opentelemetry.metrics import Meter, MeterProvider, NoOpMeter
from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.trace import NoOpTracer, Tracer, TracerProvider

import otelbench_instrumentation
from otelbench.mock import MockServer
from otelbench_instrumentation import OpenAIInstrumentor, semconv

from .conftest import API_KEY, Otel, make_providers

PROMPT = "my secret prompt about the quarterly numbers"


class Boom(RuntimeError):
    pass


class RaisingTracerProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        raise Boom("get_tracer")


class TracerWhoseSpansRaise(NoOpTracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise Boom("start_span")


class ProviderOfRaisingTracers(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return TracerWhoseSpansRaise()


class RaisingMeterProvider(MeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Meter:
        raise Boom("get_meter")


class MeterWhoseRecordsRaise(NoOpMeter):
    def create_histogram(self, *args: Any, **kwargs: Any) -> Any:
        class H:
            def record(self, *a: Any, **k: Any) -> None:
                raise Boom("record")

        return H()


class ProviderOfRaisingMeters(MeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Meter:
        return MeterWhoseRecordsRaise("x")


def _shape(text: str | None) -> tuple[str, int]:
    # The mock, like a model, words each reply differently; the app must see the same shape.
    return ("str", len(text.split())) if isinstance(text, str) else (type(text).__name__, 0)


def _workload(server: MockServer) -> list[Any]:
    """Every call shape the app might make; returns what the app observed (text as its shape)."""
    seen: list[Any] = []
    with openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY) as c:
        r = c.chat.completions.create(model="gpt-safe", messages=[{"role": "user", "content": PROMPT}])
        seen.append(
            (
                type(r).__name__,
                _shape(r.choices[0].message.content),
                r.usage.completion_tokens if r.usage else None,
            )
        )
        stream = c.chat.completions.create(
            model="gpt-safe", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        seen.append([(type(ch).__name__, _shape(ch.choices[0].delta.content)) for ch in stream if ch.choices])
        with c.chat.completions.stream(model="gpt-safe", messages=[{"role": "user", "content": PROMPT}]) as s:
            seen.append(_shape(s.get_final_completion().choices[0].message.content))
        e = c.embeddings.create(model="emb", input="x", encoding_format="float")
        seen.append(len(e.data[0].embedding))
        server.script("gpt-safe-400", [openai_fault(400)])
        try:
            c.chat.completions.create(model="gpt-safe-400", messages=[{"role": "user", "content": PROMPT}])
        except openai.BadRequestError as exc:
            seen.append((type(exc).__name__, exc.status_code))

    async def run_async() -> list[tuple[str, int]]:
        async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=API_KEY) as ac:
            s = await ac.chat.completions.create(
                model="gpt-safe", messages=[{"role": "user", "content": PROMPT}], stream=True
            )
            return [_shape(ch.choices[0].delta.content) async for ch in s if ch.choices]

    seen.append(asyncio.run(run_async()))
    return seen


def openai_fault(code: int) -> Any:
    from otelbench.mock import Fault

    return Fault.status(code)


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
    expected = _workload(mock_server)  # uninstrumented
    instrumentor = OpenAIInstrumentor()
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
    assert otel.spans(), "nothing exported: the test would pass vacuously"
    assert PROMPT not in text
    assert API_KEY not in text
    assert API_KEY[-12:] not in text
    assert semconv.GEN_AI_INPUT_MESSAGES not in text
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in text
    # The mock's completion words are not in the telemetry either.
    first_completion = next(s for s in otel.spans() if s.name.startswith("chat"))
    assert all(not isinstance(v, str) or len(v) < 64 for v in (first_completion.attributes or {}).values())


def test_content_captured_when_enabled(mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(semconv.ENV_CAPTURE_CONTENT, "true")
    monkeypatch.setenv(semconv.ENV_CONTENT_MAX_LENGTH, "4096")
    exporter, tp, _, mp = make_providers()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            result = c.chat.completions.create(
                model="gpt-safe", messages=[{"role": "user", "content": PROMPT}]
            )
            stream = c.chat.completions.create(
                model="gpt-safe", messages=[{"role": "user", "content": PROMPT}], stream=True
            )
            streamed = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    finally:
        instrumentor.uninstrument()
    plain, stream_span = exporter.get_finished_spans()
    for span, completion in ((plain, result.choices[0].message.content), (stream_span, streamed)):
        a = span.attributes or {}
        messages = json.loads(str(a[semconv.GEN_AI_INPUT_MESSAGES]))
        assert messages == [{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]
        output = json.loads(str(a[semconv.GEN_AI_OUTPUT_MESSAGES]))
        assert output[0]["parts"][0]["content"] == completion
        assert API_KEY not in span.to_json()


def test_content_truncated_at_limit(mock_server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(semconv.ENV_CONTENT_MAX_LENGTH, "20")
    exporter, tp, _, mp = make_providers()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp, meter_provider=mp, capture_content=True)
    try:
        with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            c.chat.completions.create(model="gpt-safe", messages=[{"role": "user", "content": PROMPT * 5}])
    finally:
        instrumentor.uninstrument()
    (span,) = exporter.get_finished_spans()
    assert len(str((span.attributes or {})[semconv.GEN_AI_INPUT_MESSAGES])) == 20


def test_uninstrument_restores_original_methods(mock_server: MockServer) -> None:
    from openai._base_client import SyncAPIClient
    from openai.resources.chat.completions.completions import AsyncCompletions, Completions
    from openai.resources.embeddings import Embeddings

    originals = [
        Completions.__dict__["create"],
        AsyncCompletions.__dict__["create"],
        Embeddings.__dict__["create"],
        SyncAPIClient.__dict__["_sleep_for_retry"],
    ]
    exporter, tp, _, mp = make_providers()
    enabled = otelbench_instrumentation.instrument(tracer_provider=tp, meter_provider=mp)
    assert "openai" in enabled
    assert Completions.__dict__["create"] is not originals[0]
    otelbench_instrumentation.uninstrument()
    assert [
        Completions.__dict__["create"],
        AsyncCompletions.__dict__["create"],
        Embeddings.__dict__["create"],
        SyncAPIClient.__dict__["_sleep_for_retry"],
    ] == originals
    with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
        c.chat.completions.create(model="gpt-safe", messages=[{"role": "user", "content": "x"}])
    assert exporter.get_finished_spans() == ()


def test_instrumenting_twice_does_not_double_spans(mock_server: MockServer) -> None:
    exporter, tp, _, mp = make_providers()
    otelbench_instrumentation.instrument(tracer_provider=tp, meter_provider=mp)
    otelbench_instrumentation.instrument(tracer_provider=tp, meter_provider=mp)
    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    try:
        with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
            c.chat.completions.create(model="gpt-safe", messages=[{"role": "user", "content": "x"}])
    finally:
        otelbench_instrumentation.uninstrument()
    assert len(exporter.get_finished_spans()) == 1


def test_include_exclude_and_disabled_env(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = sorted(otelbench_instrumentation.INSTRUMENTORS)
    assert "openai" in everything
    with pytest.raises(ValueError, match="nosuch"):
        otelbench_instrumentation.instrument(include=["nosuch"])
    try:
        assert otelbench_instrumentation.instrument(include=["openai"]) == ["openai"]
        otelbench_instrumentation.uninstrument()
        others = [name for name in everything if name != "openai"]
        assert otelbench_instrumentation.instrument(exclude=["openai"]) == others
        assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
        otelbench_instrumentation.uninstrument()
        monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", ",".join(everything))
        assert otelbench_instrumentation.instrument() == []
    finally:
        otelbench_instrumentation.uninstrument()


def test_latest_semconv_opt_in_drops_deprecated_names(
    mock_server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def system_attr() -> object:
        exporter, tp, _, mp = make_providers()
        inst = OpenAIInstrumentor()
        inst.instrument(tracer_provider=tp, meter_provider=mp)
        try:
            with openai.OpenAI(base_url=mock_server.openai_base_url, api_key=API_KEY) as c:
                c.chat.completions.create(model="gpt-safe", messages=[{"role": "user", "content": "x"}])
        finally:
            inst.uninstrument()
        (span,) = exporter.get_finished_spans()
        return (span.attributes or {}).get(semconv.GEN_AI_SYSTEM)

    assert system_attr() == "openai"
    monkeypatch.setenv(semconv.ENV_SEMCONV_OPT_IN, "http,gen_ai_latest_experimental")
    assert system_attr() is None
