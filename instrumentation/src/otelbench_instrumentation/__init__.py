"""OpenTelemetry GenAI instrumentation for LLM clients.

Usage::

    import otelbench_instrumentation
    otelbench_instrumentation.instrument()          # every supported SDK that is installed

or zero-code: ``opentelemetry-instrument python app.py``.

Configuration (environment): ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (prompt and
completion text, off by default), ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``,
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, ``OTELBENCH_CHUNK_TIMING``, ``OTELBENCH_CONTENT_MAX_LENGTH``
and the standard ``OTEL_*`` SDK variables.
"""

from __future__ import annotations

from ._instrument import INSTRUMENTORS, instrument, uninstrument
from .decorators import Route, Usage, cached, llm_call, routed
from .providers.anthropic import AnthropicInstrumentor
from .providers.bedrock import BedrockInstrumentor
from .providers.ollama import OllamaInstrumentor
from .providers.openai import OpenAIInstrumentor
from .recorder import LLMRecorder, Telemetry
from .resilience import PyBreakerInstrumentor, TenacityInstrumentor
from .version import __version__

__all__ = [
    "INSTRUMENTORS",
    "AnthropicInstrumentor",
    "BedrockInstrumentor",
    "LLMRecorder",
    "OllamaInstrumentor",
    "OpenAIInstrumentor",
    "PyBreakerInstrumentor",
    "Route",
    "Telemetry",
    "TenacityInstrumentor",
    "Usage",
    "__version__",
    "cached",
    "instrument",
    "llm_call",
    "routed",
    "uninstrument",
]
