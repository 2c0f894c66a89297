"""Ollama wire protocol: chat, generate (NDJSON streams), embed, tags, version.

`options` steer the latency model, so sweeps over them have something to find:
    num_predict   caps the output (done_reason "length")
    num_ctx       TTFT x (1 + num_ctx / 8192)
    num_gpu       inter-token latency x (1 + 4 x (1 - min(num_gpu, 32) / 32)); -1 (auto) = x1
    temperature   sampled output length x (0.75 + 0.25 x min(temperature, 2))

`think` (true, or "low" / "medium" / "high" as gpt-oss takes it) makes any model think: the first
half of the output comes as `thinking` (chat: in the message) before the answer, and
`eval_count` counts both, as Ollama's thinking models do.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .core import (
    NDJSON_CT,
    WORDS_JSON,
    ErrorReply,
    Plan,
    ProtocolSpec,
    RequestContext,
    Route,
    dumps,
    estimate_tokens,
    text_of,
    thinking_first,
    word_index,
)
from .http import perf_ns
from .openai_api import embedding_vector, tool_arguments

#: Share of the TTFT reported as `load_duration` (the rest is `prompt_eval_duration`).
LOAD_SHARE = 0.1
#: `options.num_ctx` stretches TTFT by (1 + num_ctx / NUM_CTX_SCALE): something for sweeps to find.
NUM_CTX_SCALE = 8192
#: `options.num_gpu` = layers offloaded to the GPU, out of MODEL_LAYERS; each layer left on the CPU
#: adds CPU_PENALTY / MODEL_LAYERS to the inter-token latency factor (num_gpu 0: 5x slower tokens).
MODEL_LAYERS = 32
CPU_PENALTY = 4.0


def error_body(err: ErrorReply) -> bytes:
    """Ollama's `{"error": "..."}`."""
    return dumps({"error": err.message})


def stream_error(message: str) -> bytes:
    """An error line inside an NDJSON stream (``{"error": ...}``); the client raises ``ResponseError``."""
    return dumps({"error": message}) + b"\n"


OLLAMA = ProtocolSpec("ollama", error_body, stream_error=stream_error)

DEFAULT_MODELS = ("llama3.2:1b", "qwen2.5:0.5b", "nomic-embed-text")

_stamp_second = -1
_stamp_prefix = b""


def iso_now() -> bytes:
    """RFC 3339 UTC timestamp with nanoseconds, as Ollama's `created_at` (seconds part cached)."""
    global _stamp_second, _stamp_prefix
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    if sec != _stamp_second:
        _stamp_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
        _stamp_second = sec
    return b"%b.%09dZ" % (_stamp_prefix, ns)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ErrorReply(400, "model is required")
    return model


@dataclass(frozen=True, slots=True)
class Options:
    """What a request's `options` do to the latency model."""

    #: `num_predict` when positive (-1 / -2 mean unlimited in Ollama).
    cap: int | None = None
    ttft_scale: float = 1.0
    itl_scale: float = 1.0
    length_scale: float = 1.0


def _options(body: dict[str, Any]) -> Options:
    """The latency-model effect of `options` (see the module docstring)."""
    options = body.get("options")
    if options is None:
        return Options()
    if not isinstance(options, dict):
        raise ErrorReply(400, "options must be an object")
    num_predict = options.get("num_predict")
    cap = num_predict if isinstance(num_predict, int) and num_predict > 0 else None
    num_ctx = options.get("num_ctx")
    if num_ctx is not None and (isinstance(num_ctx, bool) or not isinstance(num_ctx, int) or num_ctx < 1):
        raise ErrorReply(400, "options.num_ctx must be a positive integer")
    num_gpu = options.get("num_gpu")
    if num_gpu is not None and (isinstance(num_gpu, bool) or not isinstance(num_gpu, int) or num_gpu < -1):
        raise ErrorReply(400, "options.num_gpu must be an integer >= -1")
    temperature = options.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not temperature >= 0
    ):
        raise ErrorReply(400, "options.temperature must be a number >= 0")
    itl_scale = 1.0
    if num_gpu is not None and num_gpu >= 0:
        # Layers left on the CPU slow every token down: up to CPU_PENALTY + 1 times with none offloaded.
        itl_scale = 1.0 + CPU_PENALTY * (1.0 - min(num_gpu, MODEL_LAYERS) / MODEL_LAYERS)
    length_scale = 1.0 if temperature is None else 0.75 + 0.25 * min(float(temperature), 2.0)
    return Options(cap, 1.0 + (num_ctx or 0) / NUM_CTX_SCALE, itl_scale, length_scale)


def _chars(content: Any) -> int:
    return len(content) if isinstance(content, str) else 0


def _durations(
    plan: Plan, arrival_ns: int, first_ns: int | None, end_ns: int, eval_count: int
) -> dict[str, int]:
    """Server timings consistent with when the bytes really left (ns)."""
    first = first_ns if first_ns is not None else end_ns
    load = int(plan.ttft * LOAD_SHARE * 1e9)
    prompt_eval = max(0, first - arrival_ns - load)
    # The first token is produced by prompt eval; eval covers the remaining gaps plus one.
    gaps = end_ns - first
    per_token = gaps / (eval_count - 1) if eval_count > 1 else plan.itl_mean * 1e9
    return {
        "total_duration": end_ns - arrival_ns,
        "load_duration": load,
        "prompt_eval_duration": prompt_eval,
        "eval_count": eval_count,
        "eval_duration": int(gaps + per_token),
    }


def _tool_call(body: dict[str, Any], salt: int, n: int) -> dict[str, Any] | None:
    tools = body.get("tools")
    msgs = body.get("messages") or []
    if not isinstance(tools, list) or not tools:
        return None
    if msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "tool":
        return None
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            props = params.get("properties") if isinstance(params, dict) else None
            param = str(next(iter(props))) if isinstance(props, dict) and props else "query"
            return {"function": {"name": fn["name"], "arguments": json.loads(tool_arguments(salt, n, param))}}
    return None


_THINK_LEVELS = ("low", "medium", "high")


def _thinks(body: dict[str, Any]) -> bool:
    """Whether ``think`` asks for thinking; an ErrorReply for a value Ollama refuses."""
    think = body.get("think")
    if think is None or think is False:
        return False
    if think is True or think in _THINK_LEVELS:
        return True
    raise ErrorReply(
        400, f"invalid think value: {json.dumps(think)} (must be true, false, low, medium or high)"
    )


async def _generation(ctx: RequestContext, chat: bool) -> None:
    body = ctx.json()
    model = _model(body)
    thinks = _thinks(body)
    if chat:
        msgs = body.get("messages")
        if msgs is not None and not isinstance(msgs, list):
            raise ErrorReply(400, "messages must be an array")
        chars = sum(_chars(m.get("content")) for m in msgs or () if isinstance(m, dict))
    else:
        chars = _chars(body.get("prompt")) + _chars(body.get("system"))
    stream = body.get("stream", True) is not False
    rec = ctx.rec
    rec.stream = stream
    options = _options(body)
    input_tokens = estimate_tokens(chars)
    plan = await ctx.plan(
        model,
        input_tokens,
        options.cap,
        options.ttft_scale,
        itl_scale=options.itl_scale,
        length_scale=options.length_scale,
    )
    n = plan.n
    # Thinking: the first `thought` of the n output tokens are thinking.
    thought = n // 2 if thinks else 0
    rec.output_tokens = n
    rec.reasoning_tokens = thought
    salt = ctx.salt
    done_reason = "length" if plan.capped else "stop"
    tool_call = _tool_call(body, salt, n - thought) if chat else None
    model_json = dumps(model)
    arrival_ns = ctx.req.arrival_ns

    def final(first_ns: int | None, end_ns: int, text: str, thinking: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "created_at": iso_now().decode()}
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if tool_call is not None and not stream:
                message["tool_calls"] = [tool_call]
            out["message"] = message
        else:
            out["response"] = text
            if thinking:
                out["thinking"] = thinking
        out.update(done=True, done_reason=done_reason)
        if not chat:
            out["context"] = list(range(1, 1 + min(16, input_tokens + n)))
        out.update(_durations(plan, arrival_ns, first_ns, end_ns, n))
        out["prompt_eval_count"] = input_tokens
        return out

    if not stream:
        delay = plan.body_delay()
        start_ns = arrival_ns + int((plan.t0 - ctx.req.arrival) * 1e9)  # after a hang fault
        first_ns = start_ns + int(plan.ttft * 1e9)
        text = "" if tool_call is not None else text_of(salt, n, thought)
        thinking = text_of(salt, thought)
        payload = final(first_ns, start_ns + int(delay * 1e9), text, thinking)
        # Replay exactly the delay the reported durations were computed from.
        plan.n, plan.itl, plan.ttft = 1, 0.0, delay
        await ctx.reply_json(plan, dumps(payload))
        return

    chunk: Callable[[int], bytes]
    if tool_call is not None:
        # Ollama streams a tool call as one message once it is complete (after any thinking).
        plan.n = thought + 1
        call_json = dumps([tool_call])

        def chunk(i: int) -> bytes:
            return (
                b'{"model":%b,"created_at":"%b","message":{"role":"assistant","content":"","tool_calls":%b},"done":false}\n'
                % (
                    model_json,
                    iso_now(),
                    call_json,
                )
            )

    elif chat:

        def chunk(i: int) -> bytes:
            return (
                b'{"model":%b,"created_at":"%b","message":{"role":"assistant","content":"%b"},"done":false}\n'
                % (
                    model_json,
                    iso_now(),
                    WORDS_JSON[word_index(salt, i)],
                )
            )

    else:

        def chunk(i: int) -> bytes:
            return b'{"model":%b,"created_at":"%b","response":"%b","done":false}\n' % (
                model_json,
                iso_now(),
                WORDS_JSON[word_index(salt, i)],
            )

    if chat:
        thinking_line = b'{"model":%b,"created_at":"%b","message":{"role":"assistant","content":"","thinking":"%b"},"done":false}\n'
    else:
        thinking_line = b'{"model":%b,"created_at":"%b","response":"","thinking":"%b","done":false}\n'

    def thinking_chunk(i: int) -> bytes:
        return thinking_line % (model_json, iso_now(), WORDS_JSON[word_index(salt, i)])

    chunk = thinking_first(thought, thinking_chunk, chunk)

    def epilogue() -> bytes:
        now = perf_ns()
        return dumps(final(rec.first_byte_ns, now, "")) + b"\n"

    await ctx.stream(plan, NDJSON_CT, b"", chunk, epilogue)


async def chat(ctx: RequestContext) -> None:
    """POST /api/chat."""
    await _generation(ctx, chat=True)


async def generate(ctx: RequestContext) -> None:
    """POST /api/generate."""
    await _generation(ctx, chat=False)


async def embed(ctx: RequestContext) -> None:
    """POST /api/embed (and the legacy /api/embeddings)."""
    body = ctx.json()
    model = _model(body)
    legacy = ctx.req.path == "/api/embeddings"
    raw = body.get("prompt") if legacy else body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ErrorReply(400, "input must be a string or an array of strings")
    dims = body.get("dimensions") or 768
    if not isinstance(dims, int) or not 1 <= dims <= 65536:
        raise ErrorReply(400, "dimensions must be a positive integer")
    input_tokens = sum(estimate_tokens(len(t)) for t in texts)
    plan = await ctx.plan(model, input_tokens, 1, _options(body).ttft_scale)
    plan.n = 1
    vectors = [embedding_vector(t, dims, as_base64=False) for t in texts]
    if legacy:
        payload: dict[str, Any] = {"embedding": vectors[0]}
    else:
        total = int(plan.ttft * 1e9)
        payload = {
            "model": model,
            "embeddings": vectors,
            "total_duration": total,
            "load_duration": int(total * LOAD_SHARE),
            "prompt_eval_count": input_tokens,
        }
    await ctx.reply_json(plan, dumps(payload))


async def tags(ctx: RequestContext) -> None:
    """GET /api/tags."""
    names = [name for name in ctx.app.config.profiles if not any(c in name for c in "*?[")]
    models = []
    for name in names + [m for m in DEFAULT_MODELS if m not in names]:
        digest = hashlib.sha256(name.encode()).hexdigest()
        models.append(
            {
                "name": name,
                "model": name,
                "modified_at": "2025-01-01T00:00:00Z",
                "size": 1_000_000_000,
                "digest": digest,
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": "llama",
                    "families": ["llama"],
                    "parameter_size": "1B",
                    "quantization_level": "Q4_K_M",
                },
            }
        )
    await ctx.reply_json(None, dumps({"models": models}))


async def ps(ctx: RequestContext) -> None:
    """GET /api/ps (no model is ever loaded)."""
    await ctx.reply_json(None, b'{"models":[]}')


async def version(ctx: RequestContext) -> None:
    """GET /api/version."""
    await ctx.reply_json(None, b'{"version":"0.12.0"}')


async def root(ctx: RequestContext) -> None:
    """GET / — Ollama's liveness answer."""
    rec = ctx.rec
    rec.status = 200
    data = ctx.conn.response(200, b"text/plain; charset=utf-8", b"Ollama is running", ctx.headers)
    rec.first_byte_ns = rec.last_byte_ns = perf_ns()
    ctx.app.finish(rec)
    ctx.conn.write(data)


def routes() -> dict[tuple[str, str], tuple[ProtocolSpec, Route]]:
    """Ollama's routes."""
    return {
        ("POST", "/api/chat"): (OLLAMA, chat),
        ("POST", "/api/generate"): (OLLAMA, generate),
        ("POST", "/api/embed"): (OLLAMA, embed),
        ("POST", "/api/embeddings"): (OLLAMA, embed),
        ("GET", "/api/tags"): (OLLAMA, tags),
        ("GET", "/api/ps"): (OLLAMA, ps),
        ("GET", "/api/version"): (OLLAMA, version),
        ("GET", "/"): (OLLAMA, root),
    }
