"""Settings read from the environment once, when an instrumentor is enabled."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from . import semconv

_TRUE_CONTENT_VALUES = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})
DEFAULT_CONTENT_MAX_LENGTH = 16_384
ChunkTiming = Literal["mean", "each"]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the instrumentation records beyond the always-on attributes and metrics."""

    capture_content: bool = False
    content_max_length: int = DEFAULT_CONTENT_MAX_LENGTH
    # False: also emit deprecated names (gen_ai.system) next to the current ones.
    latest_semconv_only: bool = False
    # "mean": one time_per_output_chunk value per stream (the mean gap), because an SDK
    # histogram record costs ~10 us and would dominate a per-chunk budget of ~1 us.
    # "each": one value per chunk gap, as the conventions describe (used by the benchmark).
    chunk_timing: ChunkTiming = "mean"


def capture_content_from_env() -> bool:
    """Whether OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks for prompt/completion text."""
    return os.environ.get(semconv.ENV_CAPTURE_CONTENT, "").strip().lower() in _TRUE_CONTENT_VALUES


def load_settings(capture_content: bool | None = None, chunk_timing: ChunkTiming | None = None) -> Settings:
    """Build settings from explicit arguments, falling back to the environment."""
    if capture_content is None:
        capture_content = capture_content_from_env()
    if chunk_timing is None:
        env_timing = os.environ.get(semconv.ENV_CHUNK_TIMING, "").strip().lower()
        chunk_timing = "each" if env_timing == "each" else "mean"
    try:
        max_length = int(os.environ.get(semconv.ENV_CONTENT_MAX_LENGTH, DEFAULT_CONTENT_MAX_LENGTH))
    except ValueError:
        max_length = DEFAULT_CONTENT_MAX_LENGTH
    opt_in = {v.strip() for v in os.environ.get(semconv.ENV_SEMCONV_OPT_IN, "").split(",")}
    return Settings(
        capture_content=capture_content,
        content_max_length=max(0, max_length),
        latest_semconv_only=semconv.SEMCONV_OPT_IN_LATEST in opt_in,
        chunk_timing=chunk_timing,
    )
