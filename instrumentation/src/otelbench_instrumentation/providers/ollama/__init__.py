"""OpenTelemetry instrumentation for the official ``ollama`` Python SDK.

Usage::

    from otelbench_instrumentation import OllamaInstrumentor
    OllamaInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)

Covers ``chat`` (operation ``chat``), ``generate`` (``text_completion``), ``embed`` and the
legacy ``embeddings`` (``embeddings``) on ``Client`` and ``AsyncClient``, streamed or not, and
the module-level functions ``ollama.chat``/``generate``/``embed``/``embeddings``. Those are
methods of a default client bound when ``ollama`` is imported; we wrap the module attributes,
so instrument before ``from ollama import chat`` copies one into another namespace.

Ollama's server timings of the final (``done``) record become ``ollama.response.*`` attributes
(seconds), plus the derived prefill and decode rates in tokens/s; ``options`` map to
``gen_ai.request.*`` where the conventions name them and to ``ollama.request.*`` otherwise (see
docs/ollama.md). The SDK never retries, so every call is one HTTP attempt. A streamed call
returns a generator that sends its request on the first iteration: TTFT and duration run from
the call.

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
from ._patch import patches

_INSTRUMENTS = ("ollama >= 0.4",)


class OllamaInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the ``ollama`` SDK: spans and GenAI metrics per call."""

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
