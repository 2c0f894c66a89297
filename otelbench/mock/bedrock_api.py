"""Amazon Bedrock runtime wire protocol: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream.

Streams use AWS event-stream framing (``application/vnd.amazon.eventstream``): each message is a
prelude (total length, headers length, CRC32 of those 8 bytes), string headers (``:event-type``,
``:content-type``, ``:message-type``), a JSON payload and a CRC32 of everything before it. The SigV4
``authorization`` header is accepted unchecked. InvokeModel bodies are understood for the Anthropic
(``anthropic.*``, Messages format with ``anthropic_version``) and Amazon Nova (``amazon.nova*``,
``schemaVersion: messages-v1``) families; Converse works for any model id.

Anthropic models think as on Anthropic's own API (validated by the same rules): InvokeModel bodies
with ``thinking`` get the Messages API's thinking block before the text block at index 1, and
Converse requests with ``additionalModelRequestFields: {"thinking": ...}`` a ``reasoningContent``
block (streamed as ``reasoningContent.text`` deltas closed by a ``reasoningContent.signature``
delta) before the text block at ``contentBlockIndex`` 1. The first half of the output is the
thinking, counted in the output tokens.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from .anthropic_api import extended_thinking, message_object, prompt_usage, thinking_signature
from .core import (
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

EVENTSTREAM_CT = b"application/vnd.amazon.eventstream"
JSON_CT_HEADER = b"application/json"

# Bedrock's error codes by status; botocore reads the code from `x-amzn-ErrorType`.
_ERROR_CODES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def error_code(status: int) -> str:
    """The Bedrock error code the mock answers `status` with."""
    code = _ERROR_CODES.get(status)
    if code is None:
        code = "ServiceUnavailableException" if status >= 500 else "ValidationException"
    return code


def error_body(err: ErrorReply) -> bytes:
    """Bedrock's `{"message": ...}` (the code travels in a header)."""
    return dumps({"message": err.message})


def error_headers(err: ErrorReply) -> bytes:
    """`x-amzn-ErrorType: <Code>:<namespace>`, as the service sends it."""
    return b"x-amzn-ErrorType: %b:http://internal.amazon.com/coral/com.amazon.bedrock/\r\n" % (
        error_code(err.status).encode()
    )


def stream_error(text: str) -> bytes:
    """An ``internalServerException`` exception message inside an event stream; botocore raises
    it as ``EventStreamError``."""
    headers = (
        _header(b":exception-type", b"internalServerException")
        + _header(b":content-type", JSON_CT_HEADER)
        + _header(b":message-type", b"exception")
    )
    return message(headers, dumps({"message": text}))


BEDROCK = ProtocolSpec("bedrock", error_body, b"x-amzn-RequestId", error_headers, stream_error)

# -- event-stream framing ----------------------------------------------------------------------


def _header(name: bytes, value: bytes) -> bytes:
    # Header value type 7 = string (2-byte length).
    return b"%c%b\x07%b%b" % (len(name), name, struct.pack(">H", len(value)), value)


def event_headers(event_type: bytes) -> bytes:
    """The headers block of an `event` message of this type with a JSON payload."""
    return (
        _header(b":event-type", event_type)
        + _header(b":content-type", JSON_CT_HEADER)
        + _header(b":message-type", b"event")
    )


def message(headers: bytes, payload: bytes) -> bytes:
    """One event-stream message: prelude + prelude CRC, headers, payload, message CRC."""
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


_HEADERS: dict[bytes, bytes] = {}


def event(event_type: bytes, payload: bytes) -> bytes:
    """An event message (headers blocks cached per event type)."""
    headers = _HEADERS.get(event_type)
    if headers is None:
        headers = _HEADERS[event_type] = event_headers(event_type)
    return message(headers, payload)


def chunk_event(data: bytes) -> bytes:
    """An InvokeModelWithResponseStream `chunk` carrying the model's own JSON, base64-encoded."""
    return event(b"chunk", b'{"bytes":"%b"}' % base64.b64encode(data))


# Pre-encoded content events, one per vocabulary word (index 0: one text block per answer).
_CONVERSE_DELTAS = tuple(
    event(b"contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"%b"}}' % w) for w in WORDS_JSON
)
_ANTHROPIC_DELTAS = tuple(
    chunk_event(b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%b"}}' % w)
    for w in WORDS_JSON
)
_NOVA_DELTAS = tuple(
    chunk_event(b'{"contentBlockDelta":{"delta":{"text":"%b"},"contentBlockIndex":0}}' % w)
    for w in WORDS_JSON
)


@functools.cache
def _converse_thinking_deltas() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(reasoning deltas of block 0, text deltas of block 1) per word; built on first use, so
    requests without thinking never pay for them."""
    reasoning = tuple(
        event(b"contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"%b"}}}' % w)
        for w in WORDS_JSON
    )
    answer = tuple(
        event(b"contentBlockDelta", b'{"contentBlockIndex":1,"delta":{"text":"%b"}}' % w) for w in WORDS_JSON
    )
    return reasoning, answer


@functools.cache
def _anthropic_thinking_deltas() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(thinking_delta chunks of block 0, text_delta chunks of block 1) per word, built on first use."""
    thinking = tuple(
        chunk_event(
            b'{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"%b"}}' % w
        )
        for w in WORDS_JSON
    )
    answer = tuple(
        chunk_event(b'{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"%b"}}' % w)
        for w in WORDS_JSON
    )
    return thinking, answer


def _thinking_chunks(
    salt: int, thought: int, thinking: tuple[bytes, ...], answer: tuple[bytes, ...], between: bytes
) -> Callable[[int], bytes]:
    """A thinking stream's chunk(i): the word's ``thinking`` frame for the first ``thought`` chunks,
    then its ``answer`` frame, ``between`` (closing the thinking block) before the first of those."""

    def think(i: int) -> bytes:
        return thinking[word_index(salt, i)]

    def speak(i: int) -> bytes:
        data = answer[word_index(salt, i)]
        return between + data if i == thought else data

    return thinking_first(thought, think, speak)


# -- request inspection --------------------------------------------------------------------------

_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")


def family(model_id: str) -> str:
    """`anthropic`, `nova` or `other`, from the model id (cross-region profile prefixes skipped)."""
    base = model_id.rsplit("/", 1)[-1]
    for prefix in _REGION_PREFIXES:
        if base.startswith(prefix):
            base = base[len(prefix) :]
            break
    if base.startswith("anthropic."):
        return "anthropic"
    if base.startswith("amazon.nova"):
        return "nova"
    return "other"


def _text_chars(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    return sum(len(b["text"]) for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))


def converse_prompt(body: dict[str, Any]) -> tuple[int, int, str | None]:
    """(prompt tokens, tokens up to the last `cachePoint`, digest of that prefix) of a Converse/Nova body."""
    digest = hashlib.sha256()
    chars = cached_chars = 0
    cached_digest: str | None = None
    blocks: list[Any] = list(body.get("system") or ()) if isinstance(body.get("system"), list) else []
    for msg in body.get("messages") or ():
        if isinstance(msg, dict) and isinstance(msg.get("content"), list):
            blocks.extend(msg["content"])
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if "cachePoint" in block:
            cached_chars, cached_digest = chars, digest.hexdigest()
        text = block.get("text")
        if isinstance(text, str):
            chars += len(text)
            digest.update(text.encode())
    total = estimate_tokens(chars)
    return total, min(total, cached_chars // 4) if cached_digest else 0, cached_digest


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ErrorReply(400, f"{name} must be a positive integer")
    return value


def _messages(body: dict[str, Any]) -> None:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ErrorReply(400, "messages: at least one message is required")


# Bedrock relays what the model refuses in a Converse request under this prefix.
_MODEL_ERRORS = "The model returned the following errors: "


def _converse_thinks(
    body: dict[str, Any], model: str, config: dict[str, Any], max_tokens: int | None
) -> bool:
    """Whether a Converse request turns an Anthropic model's extended thinking on
    (``additionalModelRequestFields.thinking``), validated as Anthropic validates it.

    Bedrock hands the field to the model: only Anthropic models think here (other families' extra
    fields are ignored, as every other unknown field is). Without ``inferenceConfig.maxTokens`` the
    budget is not compared with it: the cap Bedrock then applies is not documented, so the mock
    does not invent one.
    """
    fields = body.get("additionalModelRequestFields")
    if not isinstance(fields, dict) or "thinking" not in fields or family(model) != "anthropic":
        return False
    tool_config = body.get("toolConfig")
    choice = tool_config.get("toolChoice") if isinstance(tool_config, dict) else None
    forced = None
    if isinstance(choice, dict):  # Converse's {"any": {}} / {"tool": {"name"}} are Anthropic's any / tool
        forced = next((kind for kind in ("any", "tool") if kind in choice), None)
    request = {
        "thinking": fields["thinking"],
        "temperature": config.get("temperature"),
        "top_k": fields.get("top_k"),
        "tool_choice": {"type": forced} if forced else None,
    }
    try:
        return extended_thinking(request, max_tokens if max_tokens is not None else 1 << 62)
    except ErrorReply as err:
        raise ErrorReply(400, _MODEL_ERRORS + err.message) from None


def _cache(ctx: RequestContext, model: str, cacheable: int, digest: str | None) -> tuple[int, int]:
    """(cache read, cache write) tokens: a prefix is written on first use and read afterwards."""
    if digest is None or not cacheable:
        return 0, 0
    return (cacheable, 0) if ctx.app.bedrock_cache.seen(f"{model}\0{digest}") else (0, cacheable)


async def _plan(
    ctx: RequestContext, model: str, total: int, max_tokens: int | None, cacheable: int, digest: str | None
) -> tuple[Plan, int, int, int]:
    """(plan, uncached input tokens, cache read, cache write), with the ground truth filled in."""
    plan = await ctx.plan(model, total, max_tokens)
    read, write = _cache(ctx, model, cacheable, digest)
    rec = ctx.rec
    rec.output_tokens = plan.n
    rec.cache_read_tokens, rec.cache_creation_tokens = read, write
    return plan, total - read - write, read, write


def _usage(input_tokens: int, output_tokens: int, read: int, write: int) -> dict[str, int]:
    usage = {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens + read + write,
    }
    if read or write:
        usage["cacheReadInputTokens"] = read
        usage["cacheWriteInputTokens"] = write
    return usage


def _elapsed_ms(ctx: RequestContext) -> int:
    return (perf_ns() - ctx.rec.arrival_ns) // 1_000_000


# -- Converse ------------------------------------------------------------------------------------


async def converse(ctx: RequestContext, model: str, stream: bool) -> None:
    """POST /model/{modelId}/converse and /converse-stream."""
    body = ctx.json()
    _messages(body)
    config = body.get("inferenceConfig") or {}
    if not isinstance(config, dict):
        raise ErrorReply(400, "inferenceConfig must be an object")
    max_tokens = _positive_int(config.get("maxTokens"), "inferenceConfig.maxTokens")
    thinks = _converse_thinks(body, model, config, max_tokens)
    ctx.rec.stream = stream
    total, cacheable, digest = converse_prompt(body)
    plan, input_tokens, read, write = await _plan(ctx, model, total, max_tokens, cacheable, digest)
    n = plan.n
    # Thinking: the first `thought` of the n output tokens are the reasoning block's.
    thought = n // 2 if thinks else 0
    ctx.rec.reasoning_tokens = thought
    stop = "max_tokens" if plan.capped else "end_turn"
    usage = _usage(input_tokens, n, read, write)
    salt = ctx.salt
    if not stream:
        if thinks:
            thoughts = {
                "reasoningText": {"text": text_of(salt, thought), "signature": thinking_signature(salt)}
            }
            content: list[dict[str, Any]] = [
                {"reasoningContent": thoughts},
                {"text": text_of(salt, n, thought)},
            ]
        else:
            content = [{"text": text_of(salt, n)}]
        payload = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": round(plan.body_delay() * 1000)},
        }
        await ctx.reply_json(plan, dumps(payload))
        return
    preamble = event(b"messageStart", b'{"role":"assistant"}')
    chunk: Callable[[int], bytes]
    last_block = b'{"contentBlockIndex":0}'
    if thinks:
        # Block 0 is the reasoning (no contentBlockStart, as for text); its signature and stop go
        # out with the first answer chunk, whose text is block 1.
        last_block = b'{"contentBlockIndex":1}'
        closing = event(
            b"contentBlockDelta",
            b'{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"%b"}}}'
            % thinking_signature(salt).encode(),
        ) + event(b"contentBlockStop", b'{"contentBlockIndex":0}')
        chunk = _thinking_chunks(salt, thought, *_converse_thinking_deltas(), closing)
    else:

        def chunk(i: int) -> bytes:
            return _CONVERSE_DELTAS[word_index(salt, i)]

    def epilogue() -> bytes:
        metadata = {"usage": usage, "metrics": {"latencyMs": _elapsed_ms(ctx)}}
        return (
            event(b"contentBlockStop", last_block)
            + event(b"messageStop", b'{"stopReason":"%b"}' % stop.encode())
            + event(b"metadata", dumps(metadata))
        )

    await ctx.stream(plan, EVENTSTREAM_CT, preamble, chunk, epilogue)


# -- InvokeModel ---------------------------------------------------------------------------------


def _invocation_metrics(ctx: RequestContext, input_tokens: int, output_tokens: int) -> dict[str, int]:
    rec = ctx.rec
    first = rec.first_byte_ns if rec.first_byte_ns is not None else perf_ns()
    return {
        "inputTokenCount": input_tokens,
        "outputTokenCount": output_tokens,
        "invocationLatency": _elapsed_ms(ctx),
        "firstByteLatency": (first - rec.arrival_ns) // 1_000_000,
    }


async def invoke(ctx: RequestContext, model: str, stream: bool) -> None:
    """POST /model/{modelId}/invoke and /invoke-with-response-stream."""
    body = ctx.json()
    kind = family(model)
    if kind == "other":
        kind = "anthropic" if "anthropic_version" in body else "nova" if "schemaVersion" in body else kind
    if kind == "other":
        raise ErrorReply(400, f"the mock understands Anthropic and Amazon Nova bodies, not {model!r}")
    _messages(body)
    rec = ctx.rec
    rec.stream = stream
    if kind == "anthropic":
        max_tokens = _positive_int(body.get("max_tokens"), "max_tokens")
        if max_tokens is None:
            raise ErrorReply(400, "max_tokens: Field required")
        # The body is Anthropic's own: its refusals come back in Anthropic's words.
        thinks = extended_thinking(body, max_tokens)
        total, cacheable, digest = prompt_usage(body)
    else:
        thinks = False
        config = body.get("inferenceConfig") or {}
        if not isinstance(config, dict):
            raise ErrorReply(400, "inferenceConfig must be an object")
        max_tokens = _positive_int(
            config.get("max_new_tokens", config.get("maxTokens")), "inferenceConfig.max_new_tokens"
        )
        total, cacheable, digest = converse_prompt(body)
    plan, input_tokens, read, write = await _plan(ctx, model, total, max_tokens, cacheable, digest)
    n = plan.n
    # Thinking (Anthropic only): the first `thought` of the n output tokens are the thinking block's.
    thought = n // 2 if thinks else 0
    rec.reasoning_tokens = thought
    stop = "max_tokens" if plan.capped else "end_turn"
    mid = f"msg_bdrk_{rec.request_id[4:]}"
    salt = ctx.salt

    def anthropic_usage(output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
            "output_tokens": output_tokens,
        }

    if not stream:
        if kind == "anthropic":
            if thinks:
                content = [
                    {
                        "type": "thinking",
                        "thinking": text_of(salt, thought),
                        "signature": thinking_signature(salt),
                    },
                    {"type": "text", "text": text_of(salt, n, thought)},
                ]
            else:
                content = [{"type": "text", "text": text_of(salt, n)}]
            payload = message_object(mid, model, content, stop, anthropic_usage(n))
        else:
            payload = {
                "output": {"message": {"role": "assistant", "content": [{"text": text_of(salt, n)}]}},
                "stopReason": stop,
                "usage": {
                    "inputTokens": input_tokens,
                    "outputTokens": n,
                    "totalTokens": input_tokens + n + read + write,
                    "cacheReadInputTokenCount": read,
                    "cacheWriteInputTokenCount": write,
                },
            }
        latency = round(plan.body_delay() * 1000)
        headers = b"x-amzn-bedrock-input-token-count: %d\r\nx-amzn-bedrock-output-token-count: %d\r\n" % (
            total,
            n,
        )
        headers += b"x-amzn-bedrock-invocation-latency: %d\r\n" % latency
        await ctx.reply_json(plan, dumps(payload), headers)
        return

    # InvokeModelWithResponseStream's `contentType`: the type of the chunks' decoded bytes.
    ctx.headers += b"x-amzn-bedrock-content-type: application/json\r\n"
    chunk: Callable[[int], bytes]
    if thinks:
        # Anthropic's thinking stream: block 0 is the thinking, closed (signature, then stop) as
        # the text block opens at index 1.
        opening = (
            chunk_event(
                b'{"type":"content_block_delta","index":0,'
                b'"delta":{"type":"signature_delta","signature":"%b"}}' % thinking_signature(salt).encode()
            )
            + chunk_event(b'{"type":"content_block_stop","index":0}')
            + chunk_event(
                b'{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}'
            )
        )
        chunk = _thinking_chunks(salt, thought, *_anthropic_thinking_deltas(), opening)
    else:
        deltas = _ANTHROPIC_DELTAS if kind == "anthropic" else _NOVA_DELTAS

        def chunk(i: int) -> bytes:
            return deltas[word_index(salt, i)]

    if kind == "anthropic":
        start = {"type": "message_start", "message": message_object(mid, model, [], None, anthropic_usage(1))}
        if thinks:
            first_block = (
                b'{"type":"content_block_start","index":0,'
                b'"content_block":{"type":"thinking","thinking":"","signature":""}}'
            )
            last_block = b'{"type":"content_block_stop","index":1}'
        else:
            first_block = (
                b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
            )
            last_block = b'{"type":"content_block_stop","index":0}'
        preamble = chunk_event(dumps(start)) + chunk_event(first_block)

        def epilogue() -> bytes:
            delta = {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": n},
            }
            last = {
                "type": "message_stop",
                "amazon-bedrock-invocationMetrics": _invocation_metrics(ctx, total, n),
            }
            return chunk_event(last_block) + chunk_event(dumps(delta)) + chunk_event(dumps(last))

    else:
        preamble = chunk_event(b'{"messageStart":{"role":"assistant"}}')

        def epilogue() -> bytes:
            metadata = {
                "metadata": {
                    "usage": {
                        "inputTokens": input_tokens,
                        "outputTokens": n,
                        "cacheReadInputTokenCount": read,
                        "cacheWriteInputTokenCount": write,
                    },
                    "metrics": {},
                    "trace": {},
                },
                "amazon-bedrock-invocationMetrics": _invocation_metrics(ctx, total, n),
            }
            return (
                chunk_event(b'{"contentBlockStop":{"contentBlockIndex":0}}')
                + chunk_event(b'{"messageStop":{"stopReason":"%b"}}' % stop.encode())
                + chunk_event(dumps(metadata))
            )

    await ctx.stream(plan, EVENTSTREAM_CT, preamble, chunk, epilogue)


# -- routing -------------------------------------------------------------------------------------

_OPERATIONS: dict[str, Callable[[RequestContext, str], Any]] = {
    "converse": lambda ctx, model: converse(ctx, model, False),
    "converse-stream": lambda ctx, model: converse(ctx, model, True),
    "invoke": lambda ctx, model: invoke(ctx, model, False),
    "invoke-with-response-stream": lambda ctx, model: invoke(ctx, model, True),
}


def _route_for(operation: Callable[[RequestContext, str], Any], model: str) -> Route:
    async def route(ctx: RequestContext) -> None:
        await operation(ctx, model)

    return route


def path_router(method: str, path: str) -> tuple[ProtocolSpec, Route] | None:
    """`POST /model/{modelId}/{operation}` (model ids arrive percent-encoded: `:` is `%3A`)."""
    if method != "POST" or not path.startswith("/model/"):
        return None
    model, _, name = path[7:].rpartition("/")
    operation = _OPERATIONS.get(name)
    if operation is None or not model:
        return None
    return BEDROCK, _route_for(operation, unquote(model))
