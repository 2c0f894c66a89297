"""With the SDK's own OpenTelemetry tracing on or off: exactly one GenAI span per call, and our metrics.

anthropic 2.x traces each call itself, through the *global* tracer provider, unless the client's
``open_telemetry`` option or ``ANTHROPIC_OPEN_TELEMETRY=false`` turns that off. So these tests
install a real SDK TracerProvider globally and give our instrumentation that same provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otelbench.mock import Fault, MockServer
from otelbench_instrumentation import AnthropicInstrumentor, semconv

from ..test_safety import RaisingTracerProvider
from .conftest import API_KEY, MESSAGES, MODEL, genai_spans

SDK_SPAN = "anthropic.messages.create"  # the name the SDK gives its own call span
SDK_TRACING = ["on", "off-by-option", "off-by-env"]
CALLS = 7  # what _workload makes
STREAMED_CALLS = 3


@dataclass
class Exported:
    """The global provider's spans and our metrics."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def genai(self) -> list[ReadableSpan]:
        """Every exported span of a GenAI model call, ours or the SDK's."""
        return genai_spans(self.spans.get_finished_spans())

    def counts(self, metric: str) -> int:
        """How many values a histogram of ours received, over all attribute sets."""
        data = self.reader.get_metrics_data()
        return sum(
            p.count
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == metric
            for p in m.data.data_points  # type: ignore[attr-defined]
        )


@pytest.fixture
def setup(global_spans: InMemorySpanExporter) -> Iterator[Callable[..., Exported]]:
    """Call it to turn our instrumentation on with the global tracer provider."""
    instrumentor = AnthropicInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    meter_providers: list[MeterProvider] = []

    def on(*, instrumented: bool = True, **kwargs: Any) -> Exported:
        reader = InMemoryMetricReader()
        meter_providers.append(MeterProvider(metric_readers=[reader]))
        if instrumented:
            instrumentor.instrument(
                tracer_provider=trace.get_tracer_provider(), meter_provider=meter_providers[-1], **kwargs
            )
        return Exported(global_spans, reader)

    yield on
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    for provider in meter_providers:
        provider.shutdown()


def _client_options(sdk_tracing: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if sdk_tracing == "off-by-env":
        monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    return {"open_telemetry": False} if sdk_tracing == "off-by-option" else {}


def _workload(server: MockServer, tag: str, **options: Any) -> None:
    """CALLS Messages calls of every shape: plain, streamed, helper, raw, async, failed, retried."""
    server.script(f"{tag}-400", [Fault.status(400)])
    server.script(f"{tag}-529", [Fault.status(529, retry_after=0.01), Fault.ok()])
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=API_KEY, **options) as c:
        c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
        for _ in c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES, stream=True):
            pass
        with c.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
            stream.get_final_text()
        c.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=MESSAGES).parse()
        with pytest.raises(anthropic.BadRequestError):
            c.messages.create(model=f"{tag}-400", max_tokens=20, messages=MESSAGES)
        c.messages.create(model=f"{tag}-529", max_tokens=20, messages=MESSAGES)
        # Not a model call: neither side makes a GenAI span for it.
        c.messages.count_tokens(model=MODEL, messages=MESSAGES)

    async def run() -> None:
        async with (
            anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key=API_KEY, **options) as ac,
            ac.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream,
        ):
            await stream.get_final_message()

    asyncio.run(run())


@pytest.mark.parametrize("sdk_tracing", SDK_TRACING)
def test_one_genai_span_per_call_ours_by_default(
    setup: Callable[..., Exported], mock_server: MockServer, monkeypatch: pytest.MonkeyPatch, sdk_tracing: str
) -> None:
    exported = setup()
    tag = f"default-{sdk_tracing}"
    _workload(mock_server, tag, **_client_options(sdk_tracing, monkeypatch))
    spans = exported.genai()
    assert len(spans) == CALLS, [s.name for s in spans]
    assert {s.name for s in spans} == {f"chat {MODEL}", f"chat {tag}-400", f"chat {tag}-529"}
    assert [s.instrumentation_scope.name for s in spans if s.instrumentation_scope] == [
        "otelbench_instrumentation"
    ] * CALLS
    assert not [s for s in exported.spans.get_finished_spans() if s.name == SDK_SPAN]
    retried = next(s for s in spans if s.name.endswith("-529"))
    assert (retried.attributes or {})[semconv.ATTEMPT_COUNT] == 2
    # Our metrics, whatever the SDK does.
    assert exported.counts(semconv.METRIC_OPERATION_DURATION) == CALLS
    assert exported.counts(semconv.METRIC_TIME_TO_FIRST_CHUNK) == STREAMED_CALLS
    assert exported.counts(semconv.METRIC_TIME_PER_OUTPUT_CHUNK) == STREAMED_CALLS
    assert exported.counts(semconv.METRIC_TOKEN_USAGE) == 2 * (CALLS - 1)  # the 400 has no usage


@pytest.mark.parametrize("sdk_tracing", ["on", "off-by-option"])
def test_uninstrumented_baseline_shows_the_sdk_spans(
    setup: Callable[..., Exported], mock_server: MockServer, monkeypatch: pytest.MonkeyPatch, sdk_tracing: str
) -> None:
    # Proof that the setup above would see the SDK's spans if we did not replace them.
    exported = setup(instrumented=False)
    _workload(mock_server, f"baseline-{sdk_tracing}", **_client_options(sdk_tracing, monkeypatch))
    names = [s.name for s in exported.genai()]
    assert names == ([SDK_SPAN] * CALLS if sdk_tracing == "on" else [])


@pytest.mark.parametrize("sdk_tracing", SDK_TRACING)
def test_prefer_sdk_spans_keeps_the_sdks_span_and_our_metrics(
    setup: Callable[..., Exported], mock_server: MockServer, monkeypatch: pytest.MonkeyPatch, sdk_tracing: str
) -> None:
    monkeypatch.setenv(semconv.ENV_ANTHROPIC_PREFER_SDK_SPANS, "true")
    exported = setup()
    _workload(mock_server, f"prefer-{sdk_tracing}", **_client_options(sdk_tracing, monkeypatch))
    names = {s.name for s in exported.genai()}
    assert len(exported.genai()) == CALLS
    if sdk_tracing == "on":
        assert names == {SDK_SPAN}
    else:  # the SDK makes no span, so we do
        assert all(name.startswith("chat ") for name in names)
    assert exported.counts(semconv.METRIC_OPERATION_DURATION) == CALLS
    assert exported.counts(semconv.METRIC_TIME_TO_FIRST_CHUNK) == STREAMED_CALLS


def test_prefer_sdk_spans_keyword_and_parenting(
    setup: Callable[..., Exported], mock_server: MockServer
) -> None:
    exported = setup(prefer_sdk_spans=True)
    tracer = trace.get_tracer("app")
    with (
        tracer.start_as_current_span("app-request") as parent,
        anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c,
    ):
        c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    (span,) = exported.genai()
    assert span.name == SDK_SPAN
    # Our span-less recorder keeps the application's span as the SDK span's parent.
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


def test_sdk_span_stays_when_ours_cannot_record(
    setup: Callable[..., Exported], mock_server: MockServer
) -> None:
    # Our tracer provider is broken: rather than no span at all, the SDK keeps its own.
    exported = setup()
    AnthropicInstrumentor().uninstrument()
    AnthropicInstrumentor().instrument(tracer_provider=RaisingTracerProvider())
    with anthropic.Anthropic(base_url=mock_server.anthropic_base_url, api_key=API_KEY) as c:
        c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    assert [s.name for s in exported.genai()] == [SDK_SPAN]


def _traceparents(server: MockServer, **options: Any) -> list[str]:
    """The traceparent header of each request the SDK sent for one call."""
    seen: list[str] = []

    def hook(request: httpx2.Request) -> None:
        seen.append(request.headers.get("traceparent", ""))

    http = httpx2.Client(event_hooks={"request": [hook]})
    with anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key=API_KEY, http_client=http, **options
    ) as c:
        c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    return seen


@pytest.mark.parametrize("propagation", [True, False])
def test_sdk_propagation_carries_our_span(
    setup: Callable[..., Exported], mock_server: MockServer, propagation: bool
) -> None:
    exported = setup()
    options: dict[str, Any] = {} if propagation else {"open_telemetry": {"propagation": False}}
    (header,) = _traceparents(mock_server, **options)
    (span,) = exported.genai()
    if propagation:
        context = span.get_span_context()
        assert context is not None
        assert header.split("-")[1:3] == [f"{context.trace_id:032x}", f"{context.span_id:016x}"]
    else:
        assert header == ""
