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
# The openai SDK's AzureOpenAI clients, and the plain client pointed at an Azure OpenAI resource.
PROVIDER_AZURE_AI_OPENAI: Final = "azure.ai.openai"
# The anthropic SDK's Bedrock and Vertex clients, and BedrockInstrumentor (boto3 bedrock-runtime).
PROVIDER_AWS_BEDROCK: Final = "aws.bedrock"
PROVIDER_GCP_VERTEX_AI: Final = "gcp.vertex_ai"
# Providers the conventions name whose OpenAI-compatible APIs the openai SDK reaches (by host).
PROVIDER_GCP_GEMINI: Final = "gcp.gemini"
PROVIDER_DEEPSEEK: Final = "deepseek"
PROVIDER_GROQ: Final = "groq"
PROVIDER_X_AI: Final = "x_ai"
PROVIDER_MISTRAL_AI: Final = "mistral_ai"
PROVIDER_PERPLEXITY: Final = "perplexity"
PROVIDER_COHERE: Final = "cohere"

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
# Thinking models stream their reasoning before the answer, and the conventions' TTFT ends at the
# first reasoning chunk: this ends at the first answer chunk (text, tool call or refusal). Recorded
# for every stream that answered (equal to TTFT without reasoning), so models compare as they are.
METRIC_TIME_TO_FIRST_ANSWER_CHUNK: Final = "otelbench.client.operation.time_to_first_answer_chunk"
RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK: Final = "otelbench.response.time_to_first_answer_chunk"

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
DESCRIPTION_TIME_TO_FIRST_ANSWER_CHUNK: Final = (
    "Time from issuing the request to receiving the first answer (not reasoning) chunk."
)
DESCRIPTION_TOKEN_DETAIL: Final = "Cached input and reasoning output tokens (subsets of input/output)."

# --- environment variables ------------------------------------------------------------------
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_SEMCONV_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
ENV_CONTENT_MAX_LENGTH: Final = "OTELBENCH_CONTENT_MAX_LENGTH"
ENV_CHUNK_TIMING: Final = "OTELBENCH_CHUNK_TIMING"
SEMCONV_OPT_IN_LATEST: Final = "gen_ai_latest_experimental"

# --- Ollama ---------------------------------------------------------------------------------
# Provider-specific names in the style of the conventions' ``openai.*`` attributes; every one
# is documented in docs/ollama.md. Request options the conventions name map to gen_ai.request.*.
OLLAMA_REQUEST_NUM_CTX: Final = "ollama.request.num_ctx"
OLLAMA_REQUEST_NUM_BATCH: Final = "ollama.request.num_batch"
OLLAMA_REQUEST_NUM_GPU: Final = "ollama.request.num_gpu"
OLLAMA_REQUEST_MAIN_GPU: Final = "ollama.request.main_gpu"
OLLAMA_REQUEST_NUM_THREAD: Final = "ollama.request.num_thread"
OLLAMA_REQUEST_NUM_KEEP: Final = "ollama.request.num_keep"
OLLAMA_REQUEST_NUMA: Final = "ollama.request.numa"
OLLAMA_REQUEST_LOW_VRAM: Final = "ollama.request.low_vram"
OLLAMA_REQUEST_USE_MMAP: Final = "ollama.request.use_mmap"
OLLAMA_REQUEST_USE_MLOCK: Final = "ollama.request.use_mlock"
OLLAMA_REQUEST_REPEAT_PENALTY: Final = "ollama.request.repeat_penalty"
OLLAMA_REQUEST_REPEAT_LAST_N: Final = "ollama.request.repeat_last_n"
OLLAMA_REQUEST_MIN_P: Final = "ollama.request.min_p"
OLLAMA_REQUEST_TYPICAL_P: Final = "ollama.request.typical_p"
OLLAMA_REQUEST_TFS_Z: Final = "ollama.request.tfs_z"
OLLAMA_REQUEST_MIROSTAT: Final = "ollama.request.mirostat"
OLLAMA_REQUEST_MIROSTAT_TAU: Final = "ollama.request.mirostat_tau"
OLLAMA_REQUEST_MIROSTAT_ETA: Final = "ollama.request.mirostat_eta"
OLLAMA_REQUEST_PENALIZE_NEWLINE: Final = "ollama.request.penalize_newline"
# Only the negative sentinels (-1 unlimited, -2 fill the context); others are gen_ai.request.max_tokens.
OLLAMA_REQUEST_NUM_PREDICT: Final = "ollama.request.num_predict"
OLLAMA_REQUEST_KEEP_ALIVE: Final = "ollama.request.keep_alive"
OLLAMA_REQUEST_FORMAT: Final = "ollama.request.format"
OLLAMA_REQUEST_THINK: Final = "ollama.request.think"
OLLAMA_REQUEST_TRUNCATE: Final = "ollama.request.truncate"
OLLAMA_FORMAT_JSON: Final = "json"
OLLAMA_FORMAT_SCHEMA: Final = "schema"
# Server timings of the final (done) record, converted from Ollama's nanoseconds to seconds.
OLLAMA_RESPONSE_TOTAL_DURATION: Final = "ollama.response.total_duration"
OLLAMA_RESPONSE_LOAD_DURATION: Final = "ollama.response.load_duration"
OLLAMA_RESPONSE_PROMPT_EVAL_COUNT: Final = "ollama.response.prompt_eval_count"
OLLAMA_RESPONSE_PROMPT_EVAL_DURATION: Final = "ollama.response.prompt_eval_duration"
OLLAMA_RESPONSE_EVAL_COUNT: Final = "ollama.response.eval_count"
OLLAMA_RESPONSE_EVAL_DURATION: Final = "ollama.response.eval_duration"
# Derived server-side throughput in tokens/s, named as `ollama run --verbose` prints them:
# prompt eval rate = prefill speed, eval rate = decode speed.
OLLAMA_RESPONSE_PROMPT_EVAL_RATE: Final = "ollama.response.prompt_eval_rate"
OLLAMA_RESPONSE_EVAL_RATE: Final = "ollama.response.eval_rate"

# --- Anthropic ------------------------------------------------------------------------------
# "true": where a client's own SDK tracing is on, its span is the GenAI span and we add only
# metrics (docs/anthropic.md). Default: our span, with the SDK's span for that call suppressed.
ENV_ANTHROPIC_PREFER_SDK_SPANS: Final = "OTELBENCH_ANTHROPIC_PREFER_SDK_SPANS"

# --- Resilience, cache, router --------------------------------------------------------------
# The tenacity and pybreaker instrumentors (resilience/) and the decorators (decorators.py);
# every name is documented in docs/resilience.md. No OTel convention covers these, hence the
# otelbench. prefix; error.type is the conventions' own.

# tenacity: one INTERNAL span "retry {otelbench.retry.name}" per retried operation, one event per attempt.
SPAN_RETRY: Final = "retry"
RETRY_NAME: Final = "otelbench.retry.name"  # qualified name of the retried function (or Retrying name)
RETRY_OUTCOME: Final = "otelbench.retry.outcome"
RETRY_ATTEMPT_COUNT: Final = "otelbench.retry.attempt.count"
RETRY_SLEEP_TOTAL: Final = "otelbench.retry.sleep.total"  # seconds tenacity chose to sleep, all attempts
EVENT_RETRY_ATTEMPT: Final = "otelbench.retry.attempt"
RETRY_ATTEMPT_NUMBER: Final = "otelbench.retry.attempt.number"
RETRY_ATTEMPT_OUTCOME: Final = "otelbench.retry.attempt.outcome"
RETRY_ATTEMPT_WILL_RETRY: Final = "otelbench.retry.attempt.will_retry"
RETRY_ATTEMPT_SLEEP: Final = "otelbench.retry.attempt.sleep"  # seconds before the next attempt
RETRY_OUTCOME_SUCCESS: Final = "success"
RETRY_OUTCOME_GAVE_UP: Final = "gave_up"  # the stop condition ended it (RetryError, reraise, callback)
RETRY_OUTCOME_ERROR: Final = "error"  # an exception tenacity does not retry (or a failing hook)
RETRY_OUTCOME_ABANDONED: Final = "abandoned"  # a `for attempt in Retrying()` loop left early
ATTEMPT_OUTCOME_SUCCESS: Final = "success"
ATTEMPT_OUTCOME_ERROR: Final = "error"
ATTEMPT_OUTCOME_REJECTED_RESULT: Final = "rejected_result"  # returned, but retry_if_result said retry
METRIC_RETRY_ATTEMPTS: Final = "otelbench.retry.attempts"
METRIC_RETRY_OPERATIONS: Final = "otelbench.retry.operations"
METRIC_RETRY_SLEEP: Final = "otelbench.retry.sleep.duration"
UNIT_ATTEMPTS: Final = "{attempt}"
UNIT_OPERATIONS: Final = "{operation}"
BUCKETS_RETRY_SLEEP: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
DESCRIPTION_RETRY_ATTEMPTS: Final = "Attempts made by tenacity, by attempt outcome."
DESCRIPTION_RETRY_OPERATIONS: Final = "Operations retried by tenacity, by final outcome."
DESCRIPTION_RETRY_SLEEP: Final = "Sleep tenacity chose before the next attempt."

# pybreaker: events on the current span, metrics by breaker name.
BREAKER_NAME: Final = "otelbench.circuit_breaker.name"
BREAKER_FROM_STATE: Final = "otelbench.circuit_breaker.from_state"
BREAKER_TO_STATE: Final = "otelbench.circuit_breaker.to_state"
BREAKER_OUTCOME: Final = "otelbench.circuit_breaker.outcome"
EVENT_BREAKER_STATE_CHANGE: Final = "otelbench.circuit_breaker.state_change"
EVENT_BREAKER_REJECTED: Final = "otelbench.circuit_breaker.rejected"
BREAKER_STATE_CLOSED: Final = "closed"  # pybreaker's own state names
BREAKER_STATE_HALF_OPEN: Final = "half-open"
BREAKER_STATE_OPEN: Final = "open"
# Gauge values: worse is larger, so several breakers sharing a name report the worst state.
BREAKER_STATE_VALUES: Final[dict[str, int]] = {
    BREAKER_STATE_CLOSED: 0,
    BREAKER_STATE_HALF_OPEN: 1,
    BREAKER_STATE_OPEN: 2,
}
BREAKER_UNNAMED: Final = "_unnamed"  # name of a breaker created without one
BREAKER_OUTCOME_SUCCESS: Final = "success"
BREAKER_OUTCOME_FAILURE: Final = "failure"
METRIC_BREAKER_TRANSITIONS: Final = "otelbench.circuit_breaker.transitions"
METRIC_BREAKER_STATE: Final = "otelbench.circuit_breaker.state"
METRIC_BREAKER_CALLS: Final = "otelbench.circuit_breaker.calls"
METRIC_BREAKER_REJECTED: Final = "otelbench.circuit_breaker.rejected_calls"
UNIT_TRANSITIONS: Final = "{transition}"
UNIT_STATE: Final = "{state}"
UNIT_CALLS: Final = "{call}"
DESCRIPTION_BREAKER_TRANSITIONS: Final = "Circuit breaker state transitions, by from/to state."
DESCRIPTION_BREAKER_STATE: Final = "Current circuit breaker state: 0 closed, 1 half-open, 2 open."
DESCRIPTION_BREAKER_CALLS: Final = "Calls a circuit breaker let through, by outcome as the breaker judged it."
DESCRIPTION_BREAKER_REJECTED: Final = "Calls a circuit breaker rejected while open (CircuitBreakerError)."

# Cache decorator: one INTERNAL span "cache {otelbench.cache.name}" per decorated call.
SPAN_CACHE: Final = "cache"
CACHE_NAME: Final = "otelbench.cache.name"
CACHE_RESULT: Final = "otelbench.cache.result"
CACHE_KEY_HASH: Final = "otelbench.cache.key.hash"  # truncated SHA-256 of the key, never the key
CACHE_LOOKUP_TIME: Final = "otelbench.cache.lookup_time"  # span attribute, seconds
CACHE_RESULT_HIT: Final = "hit"
CACHE_RESULT_MISS: Final = "miss"
METRIC_CACHE_LOOKUPS: Final = "otelbench.cache.lookups"
METRIC_CACHE_LOOKUP_DURATION: Final = "otelbench.cache.lookup.duration"
UNIT_LOOKUPS: Final = "{lookup}"
BUCKETS_CACHE_LOOKUP: Final[tuple[float, ...]] = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
DESCRIPTION_CACHE_LOOKUPS: Final = "Cache lookups, by result (hit ratio = hit / all)."
DESCRIPTION_CACHE_LOOKUP_DURATION: Final = "Time one cache lookup took."

# Router decorator: INTERNAL span "router {otelbench.router.name}", a child "route {route}" per route tried.
SPAN_ROUTER: Final = "router"
SPAN_ROUTE: Final = "route"
ROUTER_NAME: Final = "otelbench.router.name"
ROUTER_STRATEGY: Final = "otelbench.router.strategy"
ROUTER_CHOSEN_ROUTE: Final = "otelbench.router.chosen_route"  # the strategy's first choice
ROUTER_FINAL_ROUTE: Final = "otelbench.router.final_route"  # the route that answered
ROUTER_ROUTES_TRIED: Final = "otelbench.router.routes_tried"  # string[], in order
ROUTER_FALLBACK_COUNT: Final = "otelbench.router.fallback_count"
ROUTER_OUTCOME: Final = "otelbench.router.outcome"
ROUTER_ROUTE: Final = "otelbench.router.route"
ROUTER_ROUTE_INDEX: Final = "otelbench.router.route.index"
ROUTER_ROUTE_MODEL: Final = "otelbench.router.route.model"
ROUTER_ROUTE_PROVIDER: Final = "otelbench.router.route.provider"
ROUTER_ROUTE_OUTCOME: Final = "otelbench.router.route.outcome"
ROUTER_OUTCOME_SUCCESS: Final = "success"
ROUTER_OUTCOME_EXHAUSTED: Final = "exhausted"  # every route failed with a fallback-eligible error
ROUTER_OUTCOME_ERROR: Final = "error"  # an error that does not fall back propagated
ROUTE_OUTCOME_SUCCESS: Final = "success"
ROUTE_OUTCOME_FALLBACK: Final = "fallback"  # failed; the next route was tried
ROUTE_OUTCOME_ERROR: Final = "error"  # failed; no route left or the error does not fall back
METRIC_ROUTER_REQUESTS: Final = "otelbench.router.requests"
METRIC_ROUTER_ROUTE_ATTEMPTS: Final = "otelbench.router.route.attempts"
UNIT_REQUESTS: Final = "{request}"
DESCRIPTION_ROUTER_REQUESTS: Final = "Routed requests, by final route and outcome."
DESCRIPTION_ROUTER_ROUTE_ATTEMPTS: Final = "Routes tried, by route and outcome."
