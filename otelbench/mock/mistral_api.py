"""Mistral AI's chat API: OpenAI's path and bodies, Mistral's strict request schema.

    POST /mistral/v1/chat/completions      base URL {mock}/mistral/v1, as https://api.mistral.ai/v1

What a client written for OpenAI meets there, as Mistral answers it:

- a request field outside Mistral's schema (``stream_options``, ``max_completion_tokens``,
  ``seed``, ...) is a 422 naming the field in pydantic's ``extra_forbidden`` detail;
- a stream carries its usage unasked, in the chunk with the finish reason (there is no separate
  usage chunk).
"""

from __future__ import annotations

from . import openai_api
from .core import ErrorReply, ProtocolSpec, RequestContext, dumps

#: The chat-completion request fields Mistral's schema accepts; any other is a 422.
ACCEPTED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "prompt_mode",
        "safe_prompt",
    }
)


def error_body(err: ErrorReply) -> bytes:
    """``{"object": "error", "message": ..., "type": ..., "param": null, "code": null}``."""
    kind = "invalid_request_error" if err.status < 500 else "internal_error"
    return dumps({"object": "error", "message": err.message, "type": kind, "param": None, "code": None})


MISTRAL = ProtocolSpec(
    "mistral", error_body, request_id_header=b"mistral-correlation-id", stream_error=openai_api.stream_error
)


async def chat_completions(ctx: RequestContext) -> None:
    """POST /mistral/v1/chat/completions."""
    body = ctx.json()
    extra = [key for key in body if key not in ACCEPTED_FIELDS]
    if extra:
        detail = [
            {
                "type": "extra_forbidden",
                "loc": ["body", key],
                "msg": "Extra inputs are not permitted",
                "input": body[key],
            }
            for key in extra
        ]
        reply = {
            "object": "error",
            "message": {"detail": detail},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        raise ErrorReply(422, f"extra inputs are not permitted: {', '.join(extra)}", body=reply)
    await openai_api.chat_completions(ctx, dialect="mistral")
