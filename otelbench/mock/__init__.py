"""A fast, protocol-faithful mock of the OpenAI, Anthropic, Ollama and Amazon Bedrock runtime HTTP APIs.

    from otelbench.mock import MockServer, MockConfig, ModelProfile, Dist, Fault

    with MockServer(MockConfig(seed=1)) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="x")
        server.script("gpt-4o-mini", [Fault.status(429, retry_after=0.01), Fault.ok()])
        ...
        server.records        # ground truth, one RequestRecord per finished request

The server is a plain `asyncio.Protocol` + `httptools` HTTP/1.1 server (keep-alive, pipelining,
Content-Length and chunked request bodies, chunked responses) running its own event loop in a
daemon thread. It binds 127.0.0.1 (port 0 = a free port) and never needs the network. In-process,
the server shares the GIL with the client under test, so a busy client (dozens of concurrent
streams) delays the server's writes by milliseconds; `MockServer(config, isolated=True)` runs it in
a child process with the same API (records and scripts go through a pipe) and keeps the schedule
within ~0.2 ms on an idle machine. `MockConfig(workers=N)` runs N such processes on one port
(SO_REUSEPORT, Linux): records are merged, `script()` is refused (see `MockServer`).

Hot paths: a request is handled inline in the protocol callback until it first has to wait (no
Task for an answer that is due at once); stream chunks are paced by one deadline heap per server
(one asyncio timer for the earliest deadline); stream chunks and chat-completion bodies are
spliced into pre-encoded byte templates. Timers use an epoll wrapper with microsecond timeouts
(plain epoll rounds up to whole milliseconds). `python -m otelbench.mock.loadgen` is the load
generator of the `mock-capacity` benchmark target (docs/performance.md).

Endpoints
    OpenAI     POST /v1/chat/completions, /v1/responses, /v1/embeddings; GET /v1/models
    Anthropic  POST /v1/messages (extended thinking), /v1/messages/count_tokens; GET /v1/models
               (with `anthropic-version`)
    Ollama     POST /api/chat, /api/generate (with `think`), /api/embed, /api/embeddings; GET /api/tags,
               /api/version, /
    Bedrock    POST /model/{modelId}/converse, /converse-stream, /invoke, /invoke-with-response-stream
               (streams in AWS event-stream framing; InvokeModel bodies in the Anthropic or Amazon Nova
               format; any SigV4 signature accepted; errors carry `x-amzn-ErrorType`)
    Azure      POST /openai/deployments/{deployment}/..., /openai/v1/... (azure_api.py)
    Mistral    POST /mistral/v1/chat/completions (strict schema; mistral_api.py)
    DeepSeek   POST /deepseek/chat/completions (thinking mode, prompt cache; deepseek_api.py)

Latency model (per model `ModelProfile`: exact name, then fnmatch patterns, then the default)
    * Streams: the response headers (plus role-only / bookkeeping events such as OpenAI's role chunk,
      Anthropic's message_start, Responses' response.created) are written on arrival; content chunk i
      (one output token: a short word and a space) at arrival + ttft + itl_1 + ... + itl_i, on absolute
      `loop.time()` deadlines so sleeps never drift, each with its own write. Chunks already due when
      the server gets to them (zero gaps, or a server behind schedule) go out together in one write.
      The closing events follow the last chunk at once.
    * Non-streamed bodies are written at arrival + ttft + (n-1) * itl. Embeddings: arrival + ttft.
    * "arrival" is when the whole request had been read.
    * n = sampled `output_tokens` (at least 1), capped by the request's `max_tokens`,
      `max_completion_tokens`, `max_output_tokens` or Ollama `options.num_predict`; a capped reply
      has finish reason "length" / stop_reason "max_tokens" / done_reason "length" (Responses API:
      status "incomplete").
    * ttft = sampled ttft + ttft_per_input_token * input_tokens.
    * Ollama `options` give sweeps something to find: TTFT x (1 + num_ctx / 8192); inter-token
      latency x (1 + 4 x (1 - min(num_gpu, 32) / 32)) for num_gpu >= 0; sampled output length
      x (0.75 + 0.25 x min(temperature, 2)) (see `otelbench.mock.ollama_api`).
    * Input tokens are estimated as max(1, characters of message text // 4).

Per-request overrides (request headers; they replace the profile's values)
    x-mock-ttft-ms: FLOAT          time to first token
    x-mock-itl-ms: FLOAT           inter-token latency (fixed)
    x-mock-output-tokens: INT      output tokens before the max-tokens cap
    x-mock-fault: SPEC             429 | 500 | 503 | 529 | any 4xx/5xx code, optionally CODE:RETRY_AFTER;
                                   disconnect:N (close the connection after N content chunks, no
                                   terminating chunk; a non-streamed request gets no response at all);
                                   malformed:N (N good content chunks, then one whose JSON is cut in
                                   half but still framed as an SSE event / NDJSON line, then the rest
                                   of the stream; the last chunk if the stream is shorter; a
                                   non-streamed request gets a 200 with half its JSON body);
                                   hang:SECONDS (wait, at most 300 s, then answer normally); ok
    x-mock-retry-after: SECONDS    `retry-after` (and `retry-after-ms`) on an injected error status
The Ollama SDK can't set per-request headers: pass them as `ollama.Client(headers=...)`.

Faults are chosen in this order: a step queued with `server.script(model, steps)` for the request's
model, then one queued for any model (`script(None, ...)`), then `x-mock-fault`, then a random draw
from `MockConfig.fault_rates` ({spec: probability}); otherwise the request succeeds.

Provider behaviours worth knowing
    * Tool calls: when the request offers function tools (and tool_choice isn't "none") and the last
      message isn't a tool result, the reply is a call to the chosen (or first) function whose
      arguments are `{"<first schema property>": "<words>"}`, streamed as one fragment per token.
    * Reasoning tokens: models whose name contains "reasoning", or starts with "o<digit>" or "gpt-5",
      report reasoning tokens = max(1, n // 2) on top of the n visible tokens (OpenAI only).
    * Cached tokens: OpenAI requests repeating a `prompt_cache_key` (per model) report 3/4 of the
      prompt as cached; Anthropic blocks with `cache_control` write the cache on first use and read
      it afterwards (keyed by the text up to the last marked block).
    * Errors use each provider's own JSON shape; bodies > 8 MiB get 413, malformed JSON 400.
    * Every response carries `x-request-id` (Anthropic: `request-id`) = `RequestRecord.request_id`.

Ground truth: `server.records` (thread-safe snapshot; a record is stored *before* the response's
last bytes are written, so a client that has read a whole response always finds it) and, with
`MockConfig.ground_truth_path`, one JSON line per request (one `write()` on an O_APPEND file, so
worker processes share the file) holding every `RequestRecord` field plus wall-clock `*_unix_ns`
twins of the `perf_counter_ns` times. `RequestRecord.late_ns` says how far the server fell behind
its own schedule for that request; `server.cpu_seconds()` is the server's CPU time so far.
"""

from __future__ import annotations

from .model import MAX_HANG_SECONDS, Dist, Fault, MockConfig, ModelProfile, RequestRecord
from .server import MockServer

__all__ = [
    "MAX_HANG_SECONDS",
    "Dist",
    "Fault",
    "MockConfig",
    "MockServer",
    "ModelProfile",
    "RequestRecord",
]
