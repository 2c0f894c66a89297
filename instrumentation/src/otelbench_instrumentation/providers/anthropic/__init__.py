"""OpenTelemetry instrumentation for the official ``anthropic`` Python SDK.

Usage::

    from otelbench_instrumentation import AnthropicInstrumentor
    AnthropicInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)

Covers every Messages call: ``messages.create`` (streamed or not), the ``messages.stream(...)``
helper (``text_stream``, ``get_final_message()``, ``get_final_text()``, event iteration),
``messages.parse``, the ``beta.messages`` versions, their ``with_raw_response`` /
``with_streaming_response`` forms (each call counted once), on ``Anthropic``,
``AsyncAnthropic`` and the SDK's Bedrock and Vertex clients. One CLIENT span ``chat {model}``
per call; each SDK-internal retry (429, 529, 5xx, connection errors) is a span event
``otelbench.attempt``. ``messages.count_tokens`` is not instrumented: it generates nothing, the
conventions define no operation for it, and its latency is not what a benchmark measures.

Token usage follows the Anthropic page of the GenAI conventions: Anthropic's ``input_tokens``
excludes cached tokens, so ``gen_ai.usage.input_tokens = input_tokens +
cache_read_input_tokens + cache_creation_input_tokens``; the two cache counts are also
reported as ``gen_ai.usage.cache_read.input_tokens`` / ``cache_creation.input_tokens``
(subsets of that total, kept out of ``gen_ai.client.token.usage`` so nothing is counted twice).

Coexistence with the SDK's own tracing (anthropic 2.x makes an ``anthropic.messages.create``
span per call unless the client's ``open_telemetry`` option or ``ANTHROPIC_OPEN_TELEMETRY=false``
turns it off): by default our span is the one GenAI span, because only ours carries the
conventions' span name, the chunk timing, the retry events and the metrics' attributes. For the
call we record, the SDK is handed a non-recording stand-in that carries our span's context, so
its spans vanish while its trace-context propagation keeps working; every other SDK span is left
alone. ``prefer_sdk_spans=True`` (or ``OTELBENCH_ANTHROPIC_PREFER_SDK_SPANS=true``) keeps the
SDK's span for clients whose SDK tracing is on and records only our metrics for them; clients
with it off still get our span. ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=anthropic`` leaves the
SDK entirely alone.

Configuration: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (default off),
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (drop deprecated duplicates),
``OTELBENCH_CHUNK_TIMING`` (``mean``/``each``), ``OTELBENCH_CONTENT_MAX_LENGTH``,
``OTELBENCH_ANTHROPIC_PREFER_SDK_SPANS``.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ... import semconv
from ..._config import load_settings
from ..._patching import Patch, apply, revert
from ._patch import Config, patches

_INSTRUMENTS = ("anthropic >= 0.43",)
_TRUE = frozenset({"true", "1", "yes", "on"})


def _prefer_sdk_spans(explicit: object) -> bool:
    if isinstance(explicit, bool):
        return explicit
    return os.environ.get(semconv.ENV_ANTHROPIC_PREFER_SDK_SPANS, "").strip().lower() in _TRUE


class AnthropicInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the ``anthropic`` SDK: spans and GenAI metrics per Messages call."""

    # BaseInstrumentor is a singleton whose __init__ runs on every construction, so the
    # applied patches live on the class-level default until the first _instrument.
    _applied: tuple[Patch, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        """The SDK versions this instrumentor supports."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        config = Config.create(
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            load_settings(kwargs.get("capture_content"), kwargs.get("chunk_timing")),
            _prefer_sdk_spans(kwargs.get("prefer_sdk_spans")),
        )
        self._applied = tuple(apply(patches(config)))

    def _uninstrument(self, **kwargs: Any) -> None:
        revert(self._applied)
        self._applied = ()
