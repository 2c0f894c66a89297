"""Translate Anthropic Messages requests, responses and stream events into recorder calls."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from ... import semconv
from ...recorder import LLMRecorder
from ...streams import ending

log = logging.getLogger(__name__)

_NUMERIC_REQUEST_PARAMS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K),
)
# Deltas that carry generated output; signature_delta and citations_delta do not.
_CONTENT_DELTA_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}


def _number(value: object) -> float | int | None:
    # SDK sentinels (omit / NOT_GIVEN), None and bools are not numbers.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _field(obj: Any, name: str) -> Any:
    """A field of a model or of a decoded JSON object; None when absent."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def request_body(options: Any) -> dict[str, Any]:
    """The request body as the application gave it, ``extra_body`` included."""
    body: dict[str, Any] = {}
    for part in (getattr(options, "json_data", None), getattr(options, "extra_json", None)):
        if isinstance(part, Mapping):
            body.update(part)
    return body


def request_attributes(body: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Span attributes for the request parameters the conventions name."""
    attrs: dict[str, AttributeValue] = {}
    max_tokens = _number(body.get("max_tokens"))
    if max_tokens is not None:
        attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] = int(max_tokens)
    for key, name in _NUMERIC_REQUEST_PARAMS:
        value = _number(body.get(key))
        if value is not None:
            attrs[name] = int(value) if name == semconv.GEN_AI_REQUEST_TOP_K else float(value)
    stop = body.get("stop_sequences")
    if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
        attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    output_format = _field(body.get("output_config"), "format") or body.get("output_format")
    if _field(output_format, "type") == "json_schema":
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = semconv.OUTPUT_TYPE_JSON
    return attrs


class Usage:
    """Anthropic's three disjoint input counts, summed into the conventions' total.

    Anthropic's ``input_tokens`` excludes cached tokens; the conventions define
    ``gen_ai.usage.input_tokens`` as ``input_tokens + cache_read + cache_creation``. The cache
    counts are also reported on their own, as subsets of that total, never added twice.
    """

    __slots__ = ("cache_creation", "cache_read", "input")

    def __init__(self) -> None:
        self.input: int | None = None
        self.cache_read: int | None = None
        self.cache_creation: int | None = None

    def update(self, recorder: LLMRecorder, usage: Any, *, with_output: bool) -> None:
        """Merge one usage object (a later one wins field by field) and report the totals."""
        if usage is None:
            return
        for name, field in (
            ("input", "input_tokens"),
            ("cache_read", "cache_read_input_tokens"),
            ("cache_creation", "cache_creation_input_tokens"),
        ):
            value = _field(usage, field)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                setattr(self, name, value)
        total = None
        if self.input is not None:
            total = self.input + (self.cache_read or 0) + (self.cache_creation or 0)
        output = _field(usage, "output_tokens") if with_output else None
        details = _field(usage, "output_tokens_details") if with_output else None
        recorder.on_usage(
            input_tokens=total,
            output_tokens=output,
            cache_read_input_tokens=self.cache_read,
            cache_creation_input_tokens=self.cache_creation,
            reasoning_output_tokens=_field(details, "thinking_tokens"),
        )


def on_message(recorder: LLMRecorder, message: Any) -> None:
    """A complete (non-streamed) ``Message``, as a model or a decoded body."""
    stop_reason = _field(message, "stop_reason")
    recorder.set_response(
        response_id=_field(message, "id"),
        model=_field(message, "model"),
        finish_reasons=[stop_reason] if isinstance(stop_reason, str) else None,
    )
    Usage().update(recorder, _field(message, "usage"), with_output=True)
    if recorder.capture_content:
        for block in _field(message, "content") or ():
            text = _field(block, "text")
            if _field(block, "type") == "text" and isinstance(text, str):
                recorder.add_output_text(text)


def stream_events(recorder: LLMRecorder, events: Iterable[Any]) -> Generator[Any, None, None]:
    """Reads the raw events (stable or beta) of one streamed Message (a streams.StreamReader)."""
    times, fold_at, clock = recorder.chunk_times, recorder.fold_at, recorder.clock
    arrived = times.append
    capture = recorder.capture_content
    usage = Usage()
    answering = False  # an answer chunk seen
    with ending(recorder, events):
        yield None
        for event in events:
            try:
                kind = event.type
                if kind == "content_block_delta":
                    delta = event.delta
                    field = _CONTENT_DELTA_FIELDS.get(delta.type)
                    if field is not None:
                        value = getattr(delta, field, None)
                        if value:
                            now = clock()
                            arrived(now)
                            if len(times) > fold_at:
                                recorder.fold_chunk_times()
                            if field == "text" and capture:
                                recorder.add_output_text(value)
                            if not answering and field != "thinking":
                                recorder.first_answer_ns = now
                                answering = True
                elif kind == "message_start":
                    message = event.message
                    recorder.set_response(response_id=message.id, model=message.model)
                    # message_start's output_tokens is a placeholder; message_delta has the count.
                    usage.update(recorder, message.usage, with_output=False)
                elif kind == "message_delta":
                    stop_reason = getattr(event.delta, "stop_reason", None)
                    if isinstance(stop_reason, str):
                        recorder.add_finish_reason(stop_reason)
                    usage.update(recorder, getattr(event, "usage", None), with_output=True)
            except Exception:
                log.debug("could not read a Messages stream event", exc_info=True)
            yield event


def _part(block: Any) -> dict[str, Any]:
    """One content block in the conventions' message-part shape."""
    if isinstance(block, str):
        return {"type": "text", "content": block}
    kind = _field(block, "type")
    if kind == "text":
        return {"type": "text", "content": _field(block, "text")}
    if kind == "tool_use":
        return {
            "type": "tool_call",
            "id": _field(block, "id"),
            "name": _field(block, "name"),
            "arguments": _field(block, "input"),
        }
    if kind == "tool_result":
        content = _field(block, "content")
        result = (
            content
            if isinstance(content, str)
            else "".join(str(_field(b, "text") or "") for b in content or () if _field(b, "type") == "text")
        )
        return {"type": "tool_call_response", "id": _field(block, "tool_use_id"), "result": result}
    return {"type": str(kind)}


def input_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The prompt in the conventions' message shape (only built when content capture is on)."""
    messages = []
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        blocks = [content] if isinstance(content, str) else list(content or ())
        messages.append({"role": message.get("role", "user"), "parts": [_part(b) for b in blocks]})
    return messages


def system_instructions(body: Mapping[str, Any], limit: int) -> str | None:
    """The ``system`` prompt as the conventions' JSON (only built when content capture is on)."""
    system = body.get("system")
    if isinstance(system, str):
        parts = [_part(system)]
    elif isinstance(system, list | tuple):
        parts = [_part(block) for block in system]
    else:
        return None
    text = json.dumps(parts, default=str, ensure_ascii=False, separators=(",", ":"))
    return text[:limit]
