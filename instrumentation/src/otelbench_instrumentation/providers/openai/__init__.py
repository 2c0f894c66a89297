"""OpenTelemetry instrumentation for the official ``openai`` Python SDK.

Usage::

    from otelbench_instrumentation import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)

Covers ``chat.completions.create``/``parse``/``stream``, ``responses.create``/``parse``/``stream``,
the legacy ``completions.create`` (``text_completion``) and ``embeddings.create`` on ``OpenAI`` and
``AsyncOpenAI`` (and their ``with_raw_response`` / ``with_streaming_response`` variants, each
counted once). ``AzureOpenAI`` clients, and the plain client at an Azure resource's host, report
``gen_ai.provider.name`` ``azure.ai.openai``; the plain client at another provider's
OpenAI-compatible API (``api.deepseek.com``, ``api.groq.com``, ...) reports that provider
(``provider_for_host``). Each SDK-internal retry is a span event
``otelbench.attempt``. Token usage of a stream needs
``stream_options={"include_usage": True}``; we never add it ourselves because it changes the
chunks the application receives.

Configuration: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (default off),
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (drop deprecated duplicates),
``OTELBENCH_CHUNK_TIMING`` (``mean``/``each``), ``OTELBENCH_CONTENT_MAX_LENGTH``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ..._config import load_settings
from ..._patching import Patch, apply, revert
from ...recorder import Telemetry
from ._patch import patches, provider_for_host

_INSTRUMENTS = ("openai >= 2.0",)


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the ``openai`` SDK: spans and GenAI metrics per call."""

    # BaseInstrumentor is a singleton whose __init__ runs on every construction, so the
    # applied patches live on the class-level default until the first _instrument.
    _applied: tuple[Patch, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        """The SDK versions this instrumentor supports."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        telemetry = Telemetry(
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            load_settings(kwargs.get("capture_content"), kwargs.get("chunk_timing")),
        )
        self._applied = tuple(apply(patches(telemetry)))

    def _uninstrument(self, **kwargs: Any) -> None:
        revert(self._applied)
        self._applied = ()


__all__ = ["OpenAIInstrumentor", "provider_for_host"]
