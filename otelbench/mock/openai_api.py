"""OpenAI wire protocol: chat completions, responses, embeddings, models (JSON and SSE)."""

from __future__ import annotations

import array
import base64
import hashlib
import math
import random
import re
import time
import zlib
from collections.abc import Callable
from typing import Any

from .core import (
    NWORDS,
    SSE_CT,
    WORDS,
    WORDS_JSON,
    ErrorReply,
    ProtocolSpec,
    RequestContext,
    dumps,
    estimate_tokens,
    jstr,
    text_of,
    thinking_first,
    word_index,
)

_ERROR_KINDS = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
}


def error_body(err: ErrorReply) -> bytes:
    """OpenAI's `{"error": {message, type, param, code}}`."""
    kind, code = _ERROR_KINDS.get(
        err.status, ("server_error" if err.status >= 500 else "invalid_request_error", None)
    )
    return dumps({"error": {"message": err.message, "type": kind, "param": err.param, "code": code}})


def stream_error(message: str) -> bytes:
    """An error inside a Chat Completions (or Completions) stream: an event whose data is OpenAI's
    error object, which the SDK raises as ``APIError``."""
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return b"data: %b\n\n" % dumps({"error": error})


OPENAI = ProtocolSpec("openai", error_body, stream_error=stream_error)

_DONE = b"data: [DONE]\n\n"
_REASONING_MODEL = re.compile(r"reasoning|^o\d|^gpt-5")


# -- request inspection ----------------------------------------------------------------------


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ErrorReply(400, "you must provide a model parameter", param="model")
    return model


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += len(text)
            elif isinstance(part, str):
                total += len(part)
        return total
    return 0


def _max_tokens(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ErrorReply(400, f"{name} must be a positive integer", param=name)
            return value
    return None


def _chunk_end(body: dict[str, Any]) -> tuple[bool, bytes]:
    """Whether a stream ends with a usage chunk (``stream_options.include_usage``), and the end of
    every other chunk then (``"usage":null`` in each, as OpenAI sends)."""
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return include_usage, b',"usage":null}\n\n' if include_usage else b"}\n\n"


def _is_reasoning(model: str) -> bool:
    return _REASONING_MODEL.search(model) is not None


def _reasoning_tokens(model: str, n: int) -> int:
    # Deterministic: "reasoning" models think half as many tokens as they answer with.
    return max(1, n // 2) if _is_reasoning(model) else 0


def _thinks(model: str, body: dict[str, Any]) -> bool:
    """DeepSeek's thinking mode: ``thinking.type`` "enabled" / "disabled", else on by default
    (V4 models, the legacy deepseek-reasoner) but for the legacy deepseek-chat alias."""
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind in ("enabled", "disabled"):
        return bool(kind == "enabled")
    return "chat" not in model


def _deepseek_cached_tokens(ctx: RequestContext, body: dict[str, Any], input_tokens: int) -> int:
    # DeepSeek caches every prompt unasked: the same model and messages again hit the cache for
    # three quarters of the prompt.
    digest = hashlib.blake2b(dumps([body.get("model"), body.get("messages")]), digest_size=16).digest()
    return max(1, input_tokens * 3 // 4) if ctx.app.deepseek_cache.seen(digest) else 0


def _cached_tokens(ctx: RequestContext, body: dict[str, Any], input_tokens: int) -> int:
    # A prompt_cache_key seen before hits the cache for three quarters of the prompt.
    key = body.get("prompt_cache_key")
    if not isinstance(key, str) or not key:
        return 0
    full_key = f"{body.get('model')}\0{key}"
    return max(1, input_tokens * 3 // 4) if ctx.app.openai_cache.seen(full_key) else 0


def _tool_target(tools: Any, tool_choice: Any, *, nested: bool) -> tuple[str, str] | None:
    """(function name, first parameter name) of the tool to call, or None for a text answer."""
    if not isinstance(tools, list) or not tools or tool_choice == "none":
        return None
    wanted = None
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function") if nested else tool_choice
        if isinstance(fn, dict):
            wanted = fn.get("name")
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        fn = tool.get("function") if nested else tool
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        if wanted is not None and fn["name"] != wanted:
            continue
        return fn["name"], _first_param(fn.get("parameters"))
    return None


def _first_param(schema: Any) -> str:
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict) and props:
            return str(next(iter(props)))
    return "query"


def tool_fragment(salt: int, i: int, n: int, param: str) -> str:
    """Argument fragment `i` of `n`: together they form `{"<param>": "<words>"}`."""
    text = WORDS[word_index(salt, i)]
    if i == 0:
        text = '{"' + param + '": "' + text
    if i == n - 1:
        text += '"}'
    return text


def tool_arguments(salt: int, n: int, param: str) -> str:
    """All argument fragments joined."""
    return "".join(tool_fragment(salt, i, n, param) for i in range(n))


# -- chat completions ------------------------------------------------------------------------------

# Pre-encoded JSON (the same bytes `dumps` of the equivalent dicts gives, at a fraction of the cost).
_CHAT_USAGE = (
    b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
    b'"prompt_tokens_details":{"cached_tokens":%d,"audio_tokens":0},'
    b'"completion_tokens_details":{"reasoning_tokens":%d,"audio_tokens":0,'
    b'"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)
# DeepSeek's: its own cache fields beside OpenAI's cached_tokens; completion details only when
# the model thought.
_DEEPSEEK_USAGE = (
    b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
    b'"prompt_tokens_details":{"cached_tokens":%d}%b,'
    b'"prompt_cache_hit_tokens":%d,"prompt_cache_miss_tokens":%d}'
)
_DEEPSEEK_REASONING_DETAILS = b',"completion_tokens_details":{"reasoning_tokens":%d}'
# Usage without details: the legacy Completions API's, and Mistral's.
_COMPLETION_USAGE = b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}'
_CHAT_TEXT_MESSAGE = b'{"role":"assistant","content":"%b","refusal":null,"annotations":[]}'
_CHAT_TOOL_MESSAGE = b'{"role":"assistant","content":null,"refusal":null,"annotations":[],"tool_calls":%b}'
_CHAT_COMPLETION = (
    b'{"id":"%b","object":"chat.completion","created":%d,"model":%b,'
    b'"choices":[{"index":0,"message":%b,"logprobs":null,"finish_reason":"%b"}],'
    b'"usage":%b,"service_tier":"default","system_fingerprint":"fp_mock"}'
)
_DEEPSEEK_COMPLETION = (
    b'{"id":"%b","object":"chat.completion","created":%d,"model":%b,'
    b'"choices":[{"index":0,"message":%b,"logprobs":null,"finish_reason":"%b"}],'
    b'"usage":%b,"system_fingerprint":"fp_mock"}'
)


# Azure OpenAI's content-filter annotations (every category passed), as its default filter
# sends them: on the prompt, on each completion choice and on each streamed content chunk.
AZURE_FILTER = (
    b'{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},'
    b'"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}'
)
_AZURE_PROMPT_FILTER = (
    b'"prompt_filter_results":[{"prompt_index":0,"content_filter_results":%b}]' % AZURE_FILTER
)
# Azure's first stream chunk: the prompt's annotations, no choices, an empty id and model.
_AZURE_PROMPT_CHUNK = b'data: {"choices":[],"created":0,"id":"","model":"","object":"",%b}\n\n' % (
    _AZURE_PROMPT_FILTER
)
_AZURE_ANNOTATION_CHUNK = (
    b'data: {"choices":[{"index":0,"finish_reason":null,"content_filter_results":'
    + AZURE_FILTER
    + b',"content_filter_offsets":{"check_offset":0,"start_offset":0,"end_offset":%d}}],'
    b'"created":0,"id":"","model":"","object":"","usage":null}\n\n'
)
_AZURE_COMPLETION = (
    b'{"id":"%b","object":"chat.completion","created":%d,"model":%b,'
    b'"choices":[{"index":0,"message":%b,"logprobs":null,"finish_reason":"%b",'
    b'"content_filter_results":' + AZURE_FILTER + b"}],"
    b'"usage":%b,"system_fingerprint":"fp_mock",' + _AZURE_PROMPT_FILTER + b"}"
)


async def chat_completions(
    ctx: RequestContext, deployment: str | None = None, dialect: str = "openai"
) -> None:
    """POST /v1/chat/completions in OpenAI's shape, or in ``dialect`` "azure" (its model the
    ``deployment``'s), "mistral" (usage in the finish chunk) or "deepseek" (reasoning streamed
    before the answer, automatic prompt cache)."""
    azure = dialect == "azure"
    mistral = dialect == "mistral"
    deepseek = dialect == "deepseek"
    body = ctx.json()
    model = deployment or _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ErrorReply(400, "messages must be a non-empty array", param="messages")
    stream = body.get("stream") is True
    ctx.rec.stream = stream
    chars = 0
    for message in messages:
        if isinstance(message, dict):
            chars += _content_chars(message.get("content"))
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    chars += len(str(call["function"].get("arguments", "")))
    input_tokens = estimate_tokens(chars)
    plan = await ctx.plan(model, input_tokens, _max_tokens(body, "max_completion_tokens", "max_tokens"))
    last_role = messages[-1].get("role") if isinstance(messages[-1], dict) else None
    tool = (
        None if last_role == "tool" else _tool_target(body.get("tools"), body.get("tool_choice"), nested=True)
    )
    n = plan.n
    rec = ctx.rec
    if deepseek:
        # The reasoning is output like the answer: the first `thought` of the n chunks, counted in
        # completion_tokens (max_tokens caps both together).
        thinks = _thinks(model, body)
        thought = n // 2 if thinks else 0
        cached = _deepseek_cached_tokens(ctx, body, input_tokens)
        rec.output_tokens = n
        rec.reasoning_tokens = thought
        details = _DEEPSEEK_REASONING_DETAILS % thought if thinks else b""
        usage = _DEEPSEEK_USAGE % (
            input_tokens, n, input_tokens + n, cached, details, cached, input_tokens - cached,
        )  # fmt: skip
    else:
        thinks, thought = False, 0
        reasoning = _reasoning_tokens(model, n)
        cached = _cached_tokens(ctx, body, input_tokens)
        rec.output_tokens = n + reasoning
        rec.reasoning_tokens = reasoning
        if mistral:
            usage = _COMPLETION_USAGE % (input_tokens, n + reasoning, input_tokens + n + reasoning)
        else:
            usage = _CHAT_USAGE % (
                input_tokens,
                n + reasoning,
                input_tokens + n + reasoning,
                cached,
                reasoning,
            )
    rec.cache_read_tokens = cached
    answer = n - thought  # chunks of text or tool-call arguments
    finish = "length" if plan.capped else ("tool_calls" if tool else "stop")
    salt = ctx.salt
    cid = b"chatcmpl-" + rec.request_id[4:].encode()
    created = int(time.time())
    call_id = f"call_{rec.request_id[4:]}"
    model_json = dumps(model)
    if not stream:
        if tool:
            arguments = tool_arguments(salt, answer, tool[1])
            calls = [
                {"id": call_id, "type": "function", "function": {"name": tool[0], "arguments": arguments}}
            ]
            message = _CHAT_TOOL_MESSAGE % dumps(calls)
        else:
            message = _CHAT_TEXT_MESSAGE % b"".join(
                [WORDS_JSON[word_index(salt, i)] for i in range(thought, n)]
            )
        if deepseek:
            # DeepSeek's message: no refusal or annotations; the reasoning when the model thought.
            message = message.replace(b',"refusal":null,"annotations":[]', b"")
            if thinks:
                words = b"".join([WORDS_JSON[word_index(salt, i)] for i in range(thought)])
                message = message[:-1] + b',"reasoning_content":"%b"}' % words
        template = _AZURE_COMPLETION if azure else _DEEPSEEK_COMPLETION if deepseek else _CHAT_COMPLETION
        await ctx.reply_json(plan, template % (cid, created, model_json, message, finish.encode(), usage))
        return

    include_usage, end = _chunk_end(body)
    head = b'data: {"id":"%b","object":"chat.completion.chunk","created":%d,"model":%b,' % (
        cid,
        created,
        model_json,
    )
    # Azure's asynchronous filter (opted into per request here) annotates the text after it
    # streamed, in chunks with an empty id and model and a choice without a delta.
    async_filter = azure and ctx.req.headers.get("x-mock-content-filter") == "async"
    filtered = b""
    if azure or deepseek:
        head += b'"system_fingerprint":"fp_mock","choices":[{"index":0,"delta":'
        if azure and not async_filter:
            filtered = b',"content_filter_results":' + AZURE_FILTER
    elif mistral:
        head += b'"choices":[{"index":0,"delta":'
    else:
        head += b'"service_tier":"default","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":'
    tail = b',"logprobs":null,"finish_reason":null%b}]%b' % (filtered, end)
    if deepseek and thinks:
        opening = b'{"role":"assistant","content":null,"reasoning_content":""}'
    elif deepseek:
        opening = b'{"role":"assistant","content":""}'
    else:
        opening = b'{"role":"assistant","content":"","refusal":null}'
    preamble = head + opening + b',"logprobs":null,"finish_reason":null}]' + end
    if azure:
        preamble = _AZURE_PROMPT_CHUNK + preamble

    def thinking(i: int) -> bytes:
        return b'%b{"content":null,"reasoning_content":"%b"}%b' % (
            head,
            WORDS_JSON[(salt + 7 * i) % NWORDS],
            tail,
        )

    answering: Callable[[int], bytes]
    if tool:
        name, param = tool
        first_open = (
            b'{"tool_calls":[{"index":0,"id":"%b","type":"function","function":{"name":%b,"arguments":"'
            % (
                call_id.encode(),
                dumps(name),
            )
        )
        next_open = b'{"tool_calls":[{"index":0,"function":{"arguments":"'

        def answering(i: int) -> bytes:
            j = i - thought
            opener = first_open if j == 0 else next_open
            return b'%b%b%b"}}]}%b' % (head, opener, jstr(tool_fragment(salt, j, answer, param)), tail)

    else:

        def answering(i: int) -> bytes:
            return b'%b{"content":"%b"}%b' % (head, WORDS_JSON[(salt + 7 * i) % NWORDS], tail)

    chunk = thinking_first(thought, thinking, answering)

    def epilogue() -> bytes:
        out = b'%b{},"logprobs":null,"finish_reason":"%b"}]' % (head, finish.encode())
        if async_filter:
            out = (_AZURE_ANNOTATION_CHUNK % n) + out
        out += b',"usage":%b}\n\n' % usage if mistral else end
        if include_usage:
            out += head.split(b'"choices"')[0] + b'"choices":[],"usage":' + usage + b"}\n\n"
        return out + _DONE

    await ctx.stream(plan, SSE_CT, preamble, chunk, epilogue)


# -- legacy completions ----------------------------------------------------------------------------

#: What the Completions API generates when the request names no max_tokens.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
_COMPLETION = (
    b'{"id":"%b","object":"text_completion","created":%d,"model":%b,"system_fingerprint":"fp_mock",'
    b'"choices":[{"text":"%b","index":0,"logprobs":null,"finish_reason":"%b"}],"usage":%b}'
)


def _prompt_tokens(prompt: Any) -> int:
    """Input tokens of a Completions ``prompt``: text, texts, token ids or lists of token ids."""
    if isinstance(prompt, str):
        return estimate_tokens(len(prompt))
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return estimate_tokens(sum(len(p) for p in prompt))
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return len(prompt)
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return max(1, sum(len(p) for p in prompt))
    raise ErrorReply(400, "prompt must be a string, an array of strings or of token ids", param="prompt")


async def completions(ctx: RequestContext) -> None:
    """POST /v1/completions (the legacy text-completion API; one choice per request)."""
    body = ctx.json()
    model = _model(body)
    if "prompt" not in body:
        raise ErrorReply(400, "missing required parameter: 'prompt'", param="prompt")
    input_tokens = _prompt_tokens(body["prompt"])
    stream = body.get("stream") is True
    ctx.rec.stream = stream
    max_tokens = _max_tokens(body, "max_tokens") or COMPLETIONS_DEFAULT_MAX_TOKENS
    plan = await ctx.plan(model, input_tokens, max_tokens)
    n = plan.n
    rec = ctx.rec
    rec.output_tokens = n
    finish = b"length" if plan.capped else b"stop"
    usage = _COMPLETION_USAGE % (input_tokens, n, input_tokens + n)
    salt = ctx.salt
    cid = b"cmpl-" + rec.request_id[4:].encode()
    created = int(time.time())
    model_json = dumps(model)
    if not stream:
        text = b"".join([WORDS_JSON[word_index(salt, i)] for i in range(n)])
        await ctx.reply_json(plan, _COMPLETION % (cid, created, model_json, text, finish, usage))
        return

    include_usage, end = _chunk_end(body)
    head = (
        b'data: {"id":"%b","object":"text_completion","created":%d,"model":%b,"system_fingerprint":"fp_mock",'
        % (
            cid,
            created,
            model_json,
        )
    )

    def chunk(i: int) -> bytes:
        word = WORDS_JSON[(salt + 7 * i) % NWORDS]
        return b'%b"choices":[{"text":"%b","index":0,"logprobs":null,"finish_reason":null}]%b' % (
            head,
            word,
            end,
        )

    def epilogue() -> bytes:
        out = b'%b"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"%b"}]%b' % (
            head,
            finish,
            end,
        )
        if include_usage:
            out += b'%b"choices":[],"usage":%b}\n\n' % (head, usage)
        return out + _DONE

    await ctx.stream(plan, SSE_CT, b"", chunk, epilogue)


# -- responses ---------------------------------------------------------------------------------------


def _responses_input_chars(body: dict[str, Any]) -> int:
    chars = _content_chars(body.get("instructions"))
    items = body.get("input")
    if isinstance(items, str):
        return chars + len(items)
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            chars += _content_chars(item.get("content"))
            for key in ("output", "arguments"):
                value = item.get(key)
                if isinstance(value, str):
                    chars += len(value)
    return chars


def _response_object(
    body: dict[str, Any],
    rid: str,
    created: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    reasoning: dict[str, Any],
) -> dict[str, Any]:
    incomplete = status == "incomplete"
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": reasoning,
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


#: The request fields of the Responses API (those of the openai SDK's ResponseCreateParams, as
#: of openai 3.54); OpenAI refuses any other by name.
RESPONSES_FIELDS = frozenset(
    {
        "access_programs", "background", "background_options", "context_management", "conversation",
        "image", "include", "input", "instructions", "max_output_tokens", "max_tool_calls", "metadata",
        "model", "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
        "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning",
        "safety_identifier", "service_tier", "store", "stream", "stream_options", "temperature", "text",
        "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    }
)  # fmt: skip
#: The smallest ``max_output_tokens`` the Responses API takes.
RESPONSES_MIN_OUTPUT_TOKENS = 16
#: The values of ``reasoning.effort`` and ``reasoning.summary`` that the Responses API takes.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
REASONING_SUMMARIES = ("auto", "concise", "detailed")


def _invalid(message: str, param: str, code: str) -> ErrorReply:
    """A 400 ``invalid_request_error`` with OpenAI's ``code`` for it."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return ErrorReply(400, message, param=param, body={"error": error})


def _one_of(value: Any, allowed: tuple[str, ...], param: str) -> None:
    if value is not None and value not in allowed:
        listed = ", ".join(f"'{v}'" for v in allowed[:-1]) + f", and '{allowed[-1]}'"
        raise _invalid(f"Invalid value: '{value}'. Supported values are: {listed}.", param, "invalid_value")


def _responses_reasoning(body: dict[str, Any], model: str) -> tuple[str | None, dict[str, Any]]:
    """How the model's reasoning shows in the response: None (no reasoning item), "hidden" (an
    item without text), "summary" (``reasoning.summary`` streams a summary) or "text" (gpt-oss
    streams its raw chain of thought); and the response's ``reasoning`` object."""
    requested = body.get("reasoning")
    if requested is None:
        requested = {}
    if not isinstance(requested, dict):
        raise _invalid(
            f"Invalid type for 'reasoning': expected an object, but got {type(requested).__name__} instead.",
            "reasoning",
            "invalid_type",
        )
    effort, summary = requested.get("effort"), requested.get("summary")
    _one_of(effort, REASONING_EFFORTS, "reasoning.effort")
    _one_of(summary, REASONING_SUMMARIES, "reasoning.summary")
    raw = "gpt-oss" in model
    if not raw and not _is_reasoning(model):
        if effort is not None:
            raise _invalid(
                "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                "reasoning.effort",
                "unsupported_parameter",
            )
        return None, {"effort": None, "summary": None}
    effort = effort or "medium"
    shown = None if effort == "none" else "text" if raw else "summary" if summary else "hidden"
    return shown, {"effort": effort, "summary": summary}


def _encrypted_reasoning(salt: int) -> str:
    """A reasoning item's ``encrypted_content`` (opaque to clients; deterministic here)."""
    return "gAAAAA" + base64.b64encode(hashlib.sha256(b"reasoning %d" % salt).digest()).decode()


async def responses(ctx: RequestContext) -> None:
    """POST /v1/responses."""
    body = ctx.json()
    for key in body:
        if key not in RESPONSES_FIELDS:
            raise _invalid(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit < RESPONSES_MIN_OUTPUT_TOKENS:
        raise _invalid(
            "Invalid 'max_output_tokens': integer below minimum value. "
            f"Expected a value >= {RESPONSES_MIN_OUTPUT_TOKENS}, but got {limit} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    model = _model(body)
    if body.get("input") is None and body.get("previous_response_id") is None:
        raise ErrorReply(400, "missing required parameter: 'input'", param="input")
    shown, reasoning_echo = _responses_reasoning(body, model)
    stream = body.get("stream") is True
    ctx.rec.stream = stream
    input_tokens = estimate_tokens(_responses_input_chars(body))
    plan = await ctx.plan(model, input_tokens, _max_tokens(body, "max_output_tokens"))
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else None
    answered = isinstance(last, dict) and last.get("type") == "function_call_output"
    tool = None if answered else _tool_target(body.get("tools"), body.get("tool_choice"), nested=False)
    n = plan.n
    if shown in ("summary", "text") and n < 2:
        shown = "hidden"  # no room for both reasoning and an answer
    # Reasoning that streams is output like the answer: the first `thought` of the n chunks, in
    # output_tokens (max_output_tokens caps both together). Hidden reasoning is n // 2 more tokens.
    thought = n // 2 if shown in ("summary", "text") else 0
    reasoning = thought or (max(1, n // 2) if shown == "hidden" else 0)
    output_tokens = n if thought else n + reasoning
    answer = n - thought
    cached = _cached_tokens(ctx, body, input_tokens)
    rec = ctx.rec
    rec.output_tokens = output_tokens
    rec.reasoning_tokens = reasoning
    rec.cache_read_tokens = cached
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }
    status = "incomplete" if plan.capped else "completed"
    salt = ctx.salt
    tail_id = rec.request_id[4:]
    rid = f"resp_{tail_id}"
    item_id = f"fc_{tail_id}" if tool else f"msg_{tail_id}"
    rs_id = f"rs_{tail_id}"
    created = int(time.time())

    def final_item() -> dict[str, Any]:
        if tool:
            return {
                "id": item_id,
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_{tail_id}",
                "name": tool[0],
                "arguments": tool_arguments(salt, answer, tool[1]),
            }
        return {
            "id": item_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": text_of(salt, n, thought), "annotations": [], "logprobs": []}
            ],
        }

    def reasoning_item(done: bool) -> dict[str, Any]:
        text = text_of(salt, thought) if done else ""
        item: dict[str, Any] = {"id": rs_id, "type": "reasoning", "summary": []}
        if shown == "summary" and done:
            item["summary"] = [{"type": "summary_text", "text": text}]
        elif shown == "text":
            item["content"] = [{"type": "reasoning_text", "text": text}] if done else []
        item["encrypted_content"] = _encrypted_reasoning(salt)
        return item

    def response(status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
        return _response_object(body, rid, created, model, status, output, usage, reasoning_echo)

    def outputs() -> list[dict[str, Any]]:
        return [reasoning_item(True), final_item()] if shown else [final_item()]

    if not stream:
        await ctx.reply_json(plan, dumps(response(status, outputs(), usage)))
        return

    def event(kind: str, seq: int, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": seq, **fields}
        return b"event: %b\ndata: %b\n\n" % (kind.encode(), dumps(data))

    shell = response("in_progress", [], None)
    preamble = event("response.created", 0, response=shell) + event("response.in_progress", 1, response=shell)
    # Sequence numbers: `seq` is the first thinking chunk's; `after` the first event after them.
    seq = 2
    closing = b""
    # Streamed reasoning goes into summary part 0 (a summary) or content part 0 (raw text).
    if shown == "summary":
        part_kind, text_kind, where, part_type = (
            "response.reasoning_summary_part", "response.reasoning_summary_text", "summary_index", "summary_text"
        )  # fmt: skip
    else:
        part_kind, text_kind, where, part_type = (
            "response.content_part", "response.reasoning_text", "content_index", "reasoning_text"
        )  # fmt: skip
    place: dict[str, Any] = {"item_id": rs_id, "output_index": 0, where: 0}
    if shown:
        preamble += event("response.output_item.added", 2, output_index=0, item=reasoning_item(False))
        seq = 3
        if thought:
            preamble += event(f"{part_kind}.added", 3, **place, part={"type": part_type, "text": ""})
            seq = 4
    after = seq + thought
    if shown:
        if thought:
            thinking_text = text_of(salt, thought)
            closing += event(f"{text_kind}.done", after, **place, text=thinking_text)
            closing += event(
                f"{part_kind}.done", after + 1, **place, part={"type": part_type, "text": thinking_text}
            )
            after += 2
        closing += event("response.output_item.done", after, output_index=0, item=reasoning_item(True))
        after += 1
    index = 1 if shown else 0  # the answer's output_index
    if tool:
        added_item: dict[str, Any] = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "call_id": f"call_{tail_id}",
            "name": tool[0],
            "arguments": "",
        }
    else:
        added_item = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
    opening = closing + event("response.output_item.added", after, output_index=index, item=added_item)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    if not tool:
        opening += event(
            "response.content_part.added",
            after + 1,
            item_id=item_id,
            output_index=index,
            content_index=0,
            part=part,
        )
    # Chunk i's delta has sequence number first_seq + i.
    first_seq = after + (1 if tool else 2) - thought
    chunk: Callable[[int], bytes]
    if tool:
        param = tool[1]
        delta_head = (
            b'event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta","item_id":"%b","output_index":%d,"sequence_number":'
            % (item_id.encode(), index)
        )

        def chunk(i: int) -> bytes:
            data = b'%b%d,"delta":"%b"}\n\n' % (
                delta_head,
                first_seq + i,
                jstr(tool_fragment(salt, i - thought, answer, param)),
            )
            return opening + data if i == thought else data

    else:
        delta_head = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":"%b","output_index":%d,"content_index":0,"logprobs":[],"sequence_number":'
            % (item_id.encode(), index)
        )

        def chunk(i: int) -> bytes:
            data = b'%b%d,"delta":"%b"}\n\n' % (delta_head, first_seq + i, WORDS_JSON[word_index(salt, i)])
            return opening + data if i == thought else data

    if thought:
        kind = f"{text_kind}.delta".encode()
        thinking_head = (
            b'event: %b\ndata: {"type":"%b","item_id":"%b","output_index":0,"%b":0,"sequence_number":'
            % (
                kind,
                kind,
                rs_id.encode(),
                where.encode(),
            )
        )

        def thinking(i: int) -> bytes:
            return b'%b%d,"delta":"%b"}\n\n' % (thinking_head, seq + i, WORDS_JSON[word_index(salt, i)])

        chunk = thinking_first(thought, thinking, chunk)

    def epilogue() -> bytes:
        seq = first_seq + n
        item = final_item()
        out = b""
        if tool:
            out += event(
                "response.function_call_arguments.done",
                seq,
                item_id=item_id,
                output_index=index,
                arguments=item["arguments"],
            )
            seq += 1
        else:
            text = item["content"][0]["text"]
            common = {"item_id": item_id, "output_index": index, "content_index": 0}
            out += event("response.output_text.done", seq, **common, text=text, logprobs=[])
            out += event("response.content_part.done", seq + 1, **common, part={**part, "text": text})
            seq += 2
        out += event("response.output_item.done", seq, output_index=index, item=item)
        return out + event(f"response.{status}", seq + 1, response=response(status, outputs(), usage))

    def failure(message: str) -> bytes:
        # The Responses API ends a stream that fails with response.failed (no exception).
        failed = response("failed", [], None)
        failed["error"] = {"code": "server_error", "message": message}
        return event("response.failed", first_seq + min(plan.fault.after_chunks, n), response=failed)

    await ctx.stream(plan, SSE_CT, preamble, chunk, epilogue, failure)


# -- embeddings ----------------------------------------------------------------------------------------

_BASE_VECTORS: dict[int, tuple[list[float], bytes]] = {}


def _base_vector(dims: int) -> tuple[list[float], bytes]:
    cached = _BASE_VECTORS.get(dims)
    if cached is None:
        rng = random.Random(dims)
        values = [rng.gauss(0.0, 1.0) for _ in range(dims)]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        floats = array.array("f", [v / norm for v in values])
        cached = _BASE_VECTORS[dims] = (floats.tolist(), floats.tobytes())
    return cached


def embedding_vector(text: str, dims: int, as_base64: bool) -> list[float] | str:
    """A deterministic unit vector for `text`: the base vector rotated by a hash of the text."""
    values, raw = _base_vector(dims)
    k = zlib.crc32(text.encode()) % dims
    if as_base64:
        # float32 little-endian, as the API (and the SDK's default decoding) expects.
        return base64.b64encode(raw[4 * k :] + raw[: 4 * k]).decode()
    return values[k:] + values[:k]


def embedding_inputs(value: Any) -> tuple[list[str], int]:
    """(texts to embed, input tokens) from an embeddings `input`."""
    if isinstance(value, str):
        return [value], estimate_tokens(len(value))
    if isinstance(value, list) and value:
        if all(isinstance(v, int) for v in value):
            return [repr(value)], len(value)
        texts, tokens = [], 0
        for v in value:
            if isinstance(v, str):
                texts.append(v)
                tokens += estimate_tokens(len(v))
            elif isinstance(v, list):
                texts.append(repr(v))
                tokens += max(1, len(v))
            else:
                raise ErrorReply(
                    400, "input must be a string or an array of strings or tokens", param="input"
                )
        return texts, tokens
    raise ErrorReply(400, "input must be a non-empty string or array", param="input")


async def embeddings(ctx: RequestContext, deployment: str | None = None) -> None:
    """POST /v1/embeddings (on Azure, the model is the ``deployment``'s)."""
    body = ctx.json()
    model = deployment or _model(body)
    texts, input_tokens = embedding_inputs(body.get("input"))
    dims = body.get("dimensions")
    if dims is None:
        dims = 3072 if "large" in model else 1536
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 65536:
        raise ErrorReply(400, "dimensions must be a positive integer", param="dimensions")
    as_base64 = body.get("encoding_format") == "base64"
    plan = await ctx.plan(model, input_tokens, 1)
    plan.n = 1  # only the TTFT applies to an embedding
    data = [
        {"object": "embedding", "index": i, "embedding": embedding_vector(text, dims, as_base64)}
        for i, text in enumerate(texts)
    ]
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": input_tokens, "total_tokens": input_tokens},
    }
    await ctx.reply_json(plan, dumps(payload))


# -- models --------------------------------------------------------------------------------------------

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "o4-mini-reasoning", "text-embedding-3-small")


def model_ids(ctx: RequestContext) -> list[str]:
    """Profile names that are not patterns, then a few defaults."""
    names = [name for name in ctx.app.config.profiles if not any(c in name for c in "*?[")]
    return names + [m for m in DEFAULT_MODELS if m not in names]


async def list_models(ctx: RequestContext) -> None:
    """GET /v1/models (OpenAI shape)."""
    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "otelbench-mock"}
        for m in model_ids(ctx)
    ]
    await ctx.reply_json(None, dumps({"object": "list", "data": data}))
