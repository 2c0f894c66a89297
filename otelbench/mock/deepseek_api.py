"""DeepSeek's chat API: OpenAI's bodies at DeepSeek's paths, with its reasoning and cache fields.

    POST /deepseek/chat/completions        base URL {mock}/deepseek, as https://api.deepseek.com
    POST /deepseek/v1/chat/completions     (DeepSeek answers under /v1 too)

What a client written for OpenAI meets there, as DeepSeek answers it:

- in thinking mode (``"thinking": {"type": "enabled"}``, the default of the V4 models and of the
  legacy ``deepseek-reasoner``; the legacy ``deepseek-chat``, here any model named ``*chat*``,
  does not think) the first half of the output is reasoning: streamed as
  ``delta.reasoning_content`` before the answer's ``delta.content``, returned as
  ``message.reasoning_content``, counted in ``completion_tokens`` and in
  ``completion_tokens_details.reasoning_tokens`` (``max_tokens`` caps both together);
- every prompt is cached unasked: usage names the hits as ``prompt_cache_hit_tokens`` /
  ``prompt_cache_miss_tokens`` (and ``prompt_tokens_details.cached_tokens``);
- responses carry no ``service_tier``, and the request id is the ``x-ds-trace-id`` header.
"""

from __future__ import annotations

from . import openai_api
from .core import ProtocolSpec, RequestContext

DEEPSEEK = ProtocolSpec(
    "deepseek",
    openai_api.error_body,
    request_id_header=b"x-ds-trace-id",
    stream_error=openai_api.stream_error,
)


async def chat_completions(ctx: RequestContext) -> None:
    """POST /deepseek/chat/completions."""
    await openai_api.chat_completions(ctx, dialect="deepseek")
