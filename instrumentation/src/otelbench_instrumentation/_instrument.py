"""The one-line API: enable every instrumentor whose library is installed."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from .providers.anthropic import AnthropicInstrumentor
from .providers.bedrock import BedrockInstrumentor
from .providers.ollama import OllamaInstrumentor
from .providers.openai import OpenAIInstrumentor
from .resilience import PyBreakerInstrumentor, TenacityInstrumentor

log = logging.getLogger(__name__)

# Names match the opentelemetry_instrumentor entry points (and OTEL_PYTHON_DISABLED_INSTRUMENTATIONS).
INSTRUMENTORS: dict[str, type[BaseInstrumentor]] = {
    "openai": OpenAIInstrumentor,
    "anthropic": AnthropicInstrumentor,
    "ollama": OllamaInstrumentor,
    "bedrock": BedrockInstrumentor,
    "tenacity": TenacityInstrumentor,
    "pybreaker": PyBreakerInstrumentor,
}


def _disabled_from_env() -> set[str]:
    raw = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def instrument(
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    **kwargs: Any,
) -> list[str]:
    """Instrument every supported library that is installed; return the names enabled.

    ``capture_content=None`` defers to ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
    """
    wanted = set(include) if include is not None else set(INSTRUMENTORS)
    unknown = wanted - set(INSTRUMENTORS)
    if unknown:
        raise ValueError(f"unknown instrumentation(s): {', '.join(sorted(unknown))}")
    skipped = set(exclude or ()) | _disabled_from_env()
    enabled = []
    for name in sorted(wanted - skipped):
        instrumentor = INSTRUMENTORS[name]()
        try:
            instrumentor.instrument(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                capture_content=capture_content,
                **kwargs,
            )
        except Exception:
            log.debug("could not instrument %s", name, exc_info=True)
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            enabled.append(name)
    return enabled


def uninstrument() -> None:
    """Undo :func:`instrument` for every instrumentor that is active."""
    for cls in INSTRUMENTORS.values():
        instrumentor = cls()
        if instrumentor.is_instrumented_by_opentelemetry:
            try:
                instrumentor.uninstrument()
            except Exception:
                log.debug("could not uninstrument %s", cls.__name__, exc_info=True)
