"""Every telemetry name this library emits: attributes, metrics, units, buckets, enum values.

Nothing else in the code base spells these strings. The GenAI names follow the OpenTelemetry
GenAI semantic conventions (Development status); names we add carry the ``otelbench.`` prefix
and are documented in ``docs/metrics.md``.
"""

from __future__ import annotations

from typing import Final

# --- GenAI span and metric attributes -------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
# Deprecated predecessor of gen_ai.provider.name, emitted only in the compatibility mode.
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_OPENAI_REQUEST_SERVICE_TIER: Final = "gen_ai.openai.request.service_tier"
GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: Final = "gen_ai.openai.response.service_tier"
GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT: Final = "gen_ai.openai.response.system_fingerprint"

SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"

# --- enum values ----------------------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"

PROVIDER_OPENAI: Final = "openai"
PROVIDER_ANTHROPIC: Final = "anthropic"
PROVIDER_OLLAMA: Final = "ollama"

TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"

OUTPUT_TYPE_TEXT: Final = "text"
OUTPUT_TYPE_JSON: Final = "json"

# error.type for a stream the caller cancelled (asyncio) before it finished.
ERROR_TYPE_OTHER: Final = "_OTHER"

# --- otelbench additions --------------------------------------------------------------------
# One span event per SDK-internal HTTP attempt, so 429 -> retry -> 200 is not one slow call.
EVENT_ATTEMPT: Final = "otelbench.attempt"
ATTEMPT_NUMBER: Final = "otelbench.attempt.number"
ATTEMPT_RETRY_WAIT: Final = "otelbench.attempt.retry_wait"  # seconds the SDK chose to sleep
ATTEMPT_COUNT: Final = "otelbench.attempt.count"  # span attribute: attempts the call took
STREAM_CHUNK_COUNT: Final = "otelbench.stream.chunk_count"  # content-bearing chunks received
STREAM_CLOSED_EARLY: Final = "otelbench.stream.closed_early"  # caller stopped before the end
TOKEN_DETAIL: Final = "otelbench.token.detail"

TOKEN_DETAIL_CACHE_READ: Final = "cache_read_input"
TOKEN_DETAIL_CACHE_CREATION: Final = "cache_creation_input"
TOKEN_DETAIL_REASONING: Final = "reasoning_output"

# --- metrics --------------------------------------------------------------------------------
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
# Cached-input and reasoning-output tokens: a subset of input/output, so kept out of
# gen_ai.client.token.usage where summing token types must give the billed total.
METRIC_TOKEN_DETAIL: Final = "otelbench.client.token.usage_detail"

UNIT_SECONDS: Final = "s"
UNIT_TOKENS: Final = "{token}"

# Advisory explicit bucket boundaries from the GenAI conventions.
BUCKETS_DURATION: Final[tuple[float, ...]] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
BUCKETS_TIME_PER_CHUNK: Final[tuple[float, ...]] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
BUCKETS_TOKENS: Final[tuple[float, ...]] = tuple(float(4**i) for i in range(14))

DESCRIPTION_OPERATION_DURATION: Final = "GenAI operation duration."
DESCRIPTION_TOKEN_USAGE: Final = "Number of input and output tokens used."
DESCRIPTION_TIME_TO_FIRST_CHUNK: Final = "Time from issuing the request to receiving the first output chunk."
DESCRIPTION_TIME_PER_OUTPUT_CHUNK: Final = "Time between consecutive output chunks after the first one."
DESCRIPTION_TOKEN_DETAIL: Final = "Cached input and reasoning output tokens (subsets of input/output)."

# --- environment variables ------------------------------------------------------------------
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_SEMCONV_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
ENV_CONTENT_MAX_LENGTH: Final = "OTELBENCH_CONTENT_MAX_LENGTH"
ENV_CHUNK_TIMING: Final = "OTELBENCH_CHUNK_TIMING"
SEMCONV_OPT_IN_LATEST: Final = "gen_ai_latest_experimental"
