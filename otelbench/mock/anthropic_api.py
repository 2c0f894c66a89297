"""Anthropic wire protocol: messages (JSON and SSE), count_tokens, models.

Extended thinking (``"thinking": {"type": "enabled", "budget_tokens": N}``, or ``"adaptive"``) is
validated as Anthropic does (budget at least 1,024 and below ``max_tokens``; no temperature but 1,
no ``top_k``, no forced tool use). The first half of the output is then a ``thinking`` block
(``thinking_delta``s, closed by a ``signature_delta``) before the text or tool-use block, all
counted in ``output_tokens``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from .core import (
    SSE_CT,
    WORDS_JSON,
    ErrorReply,
    ProtocolSpec,
    RequestContext,
    Route,
    dumps,
    estimate_tokens,
    jstr,
    text_of,
    thinking_first,
    word_index,
)
from .openai_api import tool_arguments, tool_fragment

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_body(err: ErrorReply) -> bytes:
    """Anthropic's `{"type": "error", "error": {"type", "message"}}`."""
    kind = _ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else "invalid_request_error")
    return dumps({"type": "error", "error": {"type": kind, "message": err.message}})


def stream_error(message: str) -> bytes:
    """An ``error`` event inside a Messages stream (as Anthropic sends ``overloaded_error``); the SDK
    raises it."""
    data = dumps({"type": "error", "error": {"type": "api_error", "message": message}})
    return b"event: error\ndata: %b\n\n" % data


ANTHROPIC = ProtocolSpec("anthropic", error_body, b"request-id", stream_error=stream_error)

DEFAULT_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")


def _event(kind: bytes, data: bytes) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (kind, data)


def _block_text(block: Any) -> str:
    """The text of one content block as the model would read it."""
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return "".join(_block_text(b) for b in content)
        return str(content or "")
    if kind == "tool_use":
        return json.dumps(block.get("input", {}))
    return ""


def _blocks(content: Any) -> list[Any]:
    return content if isinstance(content, list) else [content]


def prompt_usage(body: dict[str, Any]) -> tuple[int, int, str | None]:
    """(total prompt tokens, tokens up to the last `cache_control` block, digest of that prefix)."""
    digest = hashlib.sha256()
    chars = 0
    cached_chars = 0
    cached_digest: str | None = None
    sources: list[Any] = list(_blocks(body.get("system"))) if body.get("system") is not None else []
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            sources.extend(_blocks(message.get("content")))
    for block in sources:
        text = _block_text(block)
        chars += len(text)
        digest.update(text.encode())
        if isinstance(block, dict) and block.get("cache_control"):
            cached_chars = chars
            cached_digest = digest.hexdigest()
    total = estimate_tokens(chars)
    return total, min(total, cached_chars // 4) if cached_digest else 0, cached_digest


#: Anthropic's smallest thinking budget.
MIN_THINKING_BUDGET = 1024


def extended_thinking(body: dict[str, Any], max_tokens: int) -> bool:
    """Whether the request turns extended thinking on; an ErrorReply for what Anthropic refuses."""
    thinking = body.get("thinking")
    if thinking is None:
        return False
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return False
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_THINKING_BUDGET:
            raise ErrorReply(
                400,
                f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}",
            )
        if max_tokens <= budget:
            raise ErrorReply(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
    elif kind != "adaptive":
        raise ErrorReply(400, "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise ErrorReply(400, "`temperature` may only be set to 1 when thinking is enabled.")
    if body.get("top_k") is not None:
        raise ErrorReply(400, "`top_k` is not supported when thinking is enabled.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise ErrorReply(400, "Thinking may not be enabled when tool_choice forces tool use.")
    return True


def thinking_signature(salt: int) -> str:
    """A thinking block's signature (opaque to clients; deterministic here)."""
    return hashlib.sha256(b"thinking %d" % salt).hexdigest()


def _tool_target(body: dict[str, Any]) -> tuple[str, str] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools:
        return None
    if isinstance(choice, dict) and choice.get("type") == "none":
        return None
    messages = body.get("messages") or []
    last = messages[-1] if messages else None
    if isinstance(last, dict) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in _blocks(last.get("content"))
    ):
        return None
    wanted = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "tool" else None
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            continue
        if tool.get("type") not in (None, "custom") or (wanted is not None and tool["name"] != wanted):
            continue
        schema = tool.get("input_schema")
        props = schema.get("properties") if isinstance(schema, dict) else None
        param = str(next(iter(props))) if isinstance(props, dict) and props else "query"
        return tool["name"], param
    return None


def message_object(
    mid: str, model: str, content: list[Any], stop_reason: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    """A Messages API `message` (also `message_start`'s, with empty content and no stop reason)."""
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


async def messages(ctx: RequestContext) -> None:
    """POST /v1/messages."""
    body = ctx.json()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ErrorReply(400, "model: Field required")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ErrorReply(400, "messages: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ErrorReply(400, "max_tokens: Field required (a positive integer)")
    thinks = extended_thinking(body, max_tokens)
    stream = body.get("stream") is True
    rec = ctx.rec
    rec.stream = stream
    total, cacheable, digest = prompt_usage(body)
    plan = await ctx.plan(model, total, max_tokens)
    cache_read = cache_creation = 0
    if digest is not None and cacheable:
        if ctx.app.anthropic_cache.seen(f"{model}\0{digest}"):
            cache_read = cacheable
        else:
            cache_creation = cacheable
    input_tokens = total - cache_read - cache_creation
    n = plan.n
    # Thinking: the first `thought` of the n output tokens are the thinking block's.
    thought = n // 2 if thinks else 0
    rec.output_tokens = n
    rec.reasoning_tokens = thought
    rec.cache_read_tokens = cache_read
    rec.cache_creation_tokens = cache_creation
    tool = _tool_target(body)
    stop_reason = "max_tokens" if plan.capped else ("tool_use" if tool else "end_turn")
    salt = ctx.salt
    tail_id = rec.request_id[4:]
    mid = f"msg_{tail_id}"
    tool_id = f"toolu_{tail_id}"
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "output_tokens": n,
        "service_tier": "standard",
    }
    answer = n - thought
    if not stream:
        content: list[dict[str, Any]] = []
        if thinks:
            thinking = text_of(salt, thought)
            content.append({"type": "thinking", "thinking": thinking, "signature": thinking_signature(salt)})
        if tool:
            arguments = json.loads(tool_arguments(salt, answer, tool[1]))
            content.append({"type": "tool_use", "id": tool_id, "name": tool[0], "input": arguments})
        else:
            content.append({"type": "text", "text": text_of(salt, n, thought)})
        await ctx.reply_json(plan, dumps(message_object(mid, model, content, stop_reason, usage)))
        return

    start_message = message_object(mid, model, [], None, {**usage, "output_tokens": 1})
    preamble = _event(b"message_start", dumps({"type": "message_start", "message": start_message}))
    # With thinking, block 0 is the thinking and the answer is block 1.
    index = 1 if thinks else 0
    if tool:
        start_block: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": tool[0], "input": {}}
    else:
        start_block = {"type": "text", "text": ""}
    opening = _event(
        b"content_block_start",
        dumps({"type": "content_block_start", "index": index, "content_block": start_block}),
    )
    delta_head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":'
    head = delta_head % index
    ping = _event(b"ping", b'{"type": "ping"}')
    if thinks:
        thinking_start = {"type": "thinking", "thinking": "", "signature": ""}
        block = {"type": "content_block_start", "index": 0, "content_block": thinking_start}
        preamble += _event(b"content_block_start", dumps(block)) + ping
        # The thinking block closes (its signature, then its stop) as the answer's opens.
        opening = (
            b'%b{"type":"signature_delta","signature":"%b"}}\n\n'
            % (delta_head % 0, thinking_signature(salt).encode())
            + _event(b"content_block_stop", b'{"type":"content_block_stop","index":0}')
            + opening
        )
    else:
        opening += ping

    chunk: Callable[[int], bytes]
    if tool:
        param = tool[1]

        def chunk(i: int) -> bytes:
            data = b'%b{"type":"input_json_delta","partial_json":"%b"}}\n\n' % (
                head,
                jstr(tool_fragment(salt, i - thought, answer, param)),
            )
            return opening + data if i == thought else data

    else:

        def chunk(i: int) -> bytes:
            data = b'%b{"type":"text_delta","text":"%b"}}\n\n' % (head, WORDS_JSON[word_index(salt, i)])
            return opening + data if i == thought else data

    thinking_head = delta_head % 0

    def thinking_chunk(i: int) -> bytes:
        return b'%b{"type":"thinking_delta","thinking":"%b"}}\n\n' % (
            thinking_head,
            WORDS_JSON[word_index(salt, i)],
        )

    chunk = thinking_first(thought, thinking_chunk, chunk)

    def epilogue() -> bytes:
        out = _event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % index)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": cache_creation,
                "cache_read_input_tokens": cache_read,
                "output_tokens": n,
            },
        }
        out += _event(b"message_delta", dumps(delta))
        return out + _event(b"message_stop", b'{"type":"message_stop"}')

    await ctx.stream(plan, SSE_CT, preamble, chunk, epilogue)


async def count_tokens(ctx: RequestContext) -> None:
    """POST /v1/messages/count_tokens."""
    body = ctx.json()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ErrorReply(400, "model: Field required")
    total, _, _ = prompt_usage(body)
    ctx.rec.model = model
    ctx.rec.input_tokens = total
    await ctx.reply_json(None, dumps({"input_tokens": total}))


async def list_models(ctx: RequestContext) -> None:
    """GET /v1/models (Anthropic shape)."""
    names = [name for name in ctx.app.config.profiles if not any(c in name for c in "*?[")]
    ids = names + [m for m in DEFAULT_MODELS if m not in names]
    data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in ids]
    payload = {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}
    await ctx.reply_json(None, dumps(payload))


def routes() -> dict[tuple[str, str], tuple[ProtocolSpec, Route]]:
    """Anthropic's routes (GET /v1/models is shared with OpenAI and dispatched by the server)."""
    return {
        ("POST", "/v1/messages"): (ANTHROPIC, messages),
        ("POST", "/v1/messages/count_tokens"): (ANTHROPIC, count_tokens),
    }
