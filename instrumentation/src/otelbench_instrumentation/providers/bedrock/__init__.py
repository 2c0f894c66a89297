"""OpenTelemetry instrumentation for Amazon Bedrock runtime calls made with boto3/botocore.

Usage::

    from otelbench_instrumentation import BedrockInstrumentor
    BedrockInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
    client = boto3.client("bedrock-runtime")      # before or after instrument(): both work

Covers ``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream`` of every ``bedrock-runtime`` client. One CLIENT span
``chat {modelId}`` per call with ``gen_ai.provider.name = aws.bedrock``; each botocore retry is a
span event ``otelbench.attempt`` (read from the client's ``before-send`` / ``response-received``
events); ``error.type`` is botocore's error code (``ThrottlingException``, ``ModelErrorException``).
The EventStream of a streaming call is wrapped in place (the result stays the same dict with the
same keys), so time to first chunk and the gaps between chunks are measured as the application
iterates; the span ends when the stream is exhausted, fails, is closed, or is collected.
InvokeModel bodies are read for usage and finish reason for the Anthropic and Amazon Nova
formats; the application gets an unread ``StreamingBody`` with the same bytes.

Token usage: Bedrock's ``inputTokens`` excludes cached tokens, so ``gen_ai.usage.input_tokens``
= ``inputTokens + cacheReadInputTokens + cacheWriteInputTokens``, the cache counts being reported
as ``gen_ai.usage.cache_read.input_tokens`` / ``cache_creation.input_tokens`` (docs/bedrock.md).

Configuration: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (default off),
``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``, ``OTELBENCH_CHUNK_TIMING``,
``OTELBENCH_CONTENT_MAX_LENGTH``; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=bedrock`` turns it off.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from ..._config import load_settings
from ..._patching import Patch, apply, revert
from ._patch import Config, patches

_INSTRUMENTS = ("botocore >= 1.34",)


class BedrockInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments botocore's ``bedrock-runtime`` client: spans and GenAI metrics per call."""

    # BaseInstrumentor is a singleton whose __init__ runs on every construction, so the
    # applied patches live on the class-level default until the first _instrument.
    _applied: tuple[Patch, ...] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        """The botocore versions this instrumentor supports."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        config = Config.create(
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            load_settings(kwargs.get("capture_content"), kwargs.get("chunk_timing")),
        )
        self._applied = tuple(apply(patches(config)))

    def _uninstrument(self, **kwargs: Any) -> None:
        revert(self._applied)
        self._applied = ()
