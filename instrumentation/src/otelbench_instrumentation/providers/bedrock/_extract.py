"""Translate Bedrock runtime requests, responses and stream events into recorder calls.

Converse and ConverseStream have one shape for every model. InvokeModel bodies are the model's
own format: Anthropic Messages (``anthropic.*`` model ids, or a body with ``anthropic_version``)
and Amazon Nova (``amazon.nova*``, or a body with ``schemaVersion``) are understood; other
families still get a span, the duration metric and Bedrock's token-count response headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from ... import semconv
from ...recorder import LLMRecorder, as_count
from ..anthropic import _extract as anthropic

FAMILY_ANTHROPIC = "anthropic"
FAMILY_NOVA = "nova"
FAMILY_OTHER = "other"
# Cross-region inference profiles prefix the model id with a geography.
_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")
# Bedrock's own token counts of an InvokeModel response (any model family).
_HEADER_INPUT_TOKENS = "x-amzn-bedrock-input-token-count"
_HEADER_OUTPUT_TOKENS = "x-amzn-bedrock-output-token-count"
_INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"


def _number(value: object) -> float | int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def family(model_id: str, body: Mapping[str, Any] | None = None) -> str:
    """Which InvokeModel body format ``model_id`` speaks."""
    base = model_id.rsplit("/", 1)[-1]
    for prefix in _REGION_PREFIXES:
        if base.startswith(prefix):
            base = base[len(prefix) :]
            break
    if base.startswith("anthropic."):
        return FAMILY_ANTHROPIC
    if base.startswith("amazon.nova"):
        return FAMILY_NOVA
    if body is not None:
        if "anthropic_version" in body:
            return FAMILY_ANTHROPIC
        if "schemaVersion" in body:
            return FAMILY_NOVA
    return FAMILY_OTHER


def invoke_body(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The decoded JSON request body of an InvokeModel call, if it is bytes or text JSON."""
    raw = params.get("body")
    if isinstance(raw, bytes | bytearray | str):
        decoded = json.loads(raw)
        return decoded if isinstance(decoded, dict) else None
    return None  # a file-like body is the application's to read, not ours


def _inference_attributes(config: Any, names: Mapping[str, str]) -> dict[str, AttributeValue]:
    """Request attributes from an inference config (Converse camelCase or Nova snake_case)."""
    attrs: dict[str, AttributeValue] = {}
    if not isinstance(config, Mapping):
        return attrs
    for key, name in names.items():
        value = _number(config.get(key))
        if value is None:
            continue
        integer = name in (semconv.GEN_AI_REQUEST_MAX_TOKENS, semconv.GEN_AI_REQUEST_TOP_K)
        attrs[name] = int(value) if integer else float(value)
    stop = config.get("stopSequences")
    if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
        attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    return attrs


_CONVERSE_PARAMS = {
    "maxTokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "topP": semconv.GEN_AI_REQUEST_TOP_P,
}
_NOVA_PARAMS = {
    "max_new_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "maxTokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "topP": semconv.GEN_AI_REQUEST_TOP_P,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
}


def converse_request_attributes(params: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Span attributes from a Converse request's ``inferenceConfig``."""
    return _inference_attributes(params.get("inferenceConfig"), _CONVERSE_PARAMS)


def invoke_request_attributes(kind: str, body: Mapping[str, Any] | None) -> dict[str, AttributeValue]:
    """Span attributes from an InvokeModel body of a known family."""
    if body is None:
        return {}
    if kind == FAMILY_ANTHROPIC:
        return anthropic.request_attributes(body)
    if kind == FAMILY_NOVA:
        return _inference_attributes(body.get("inferenceConfig"), _NOVA_PARAMS)
    return {}


class Usage:
    """Bedrock's disjoint input counts (uncached, cache read, cache write) summed like Anthropic's.

    Bedrock's ``inputTokens`` excludes the cached prompt (``totalTokens`` = input + output + cache
    read + cache write), so ``gen_ai.usage.input_tokens`` is the sum of the three, and the cache
    counts are reported as subsets of it.
    """

    __slots__ = ("cache_read", "cache_write", "input")

    def __init__(self) -> None:
        self.input: int | None = None
        self.cache_read: int | None = None
        self.cache_write: int | None = None

    def update(self, recorder: LLMRecorder, usage: Any, read_key: str, write_key: str) -> None:
        """Merge a Converse (``cacheReadInputTokens``) or Nova (``cacheReadInputTokenCount``) usage."""
        if not isinstance(usage, Mapping):
            return
        for name, key in (("input", "inputTokens"), ("cache_read", read_key), ("cache_write", write_key)):
            value = as_count(usage.get(key))
            if value is not None:
                setattr(self, name, value)
        total = None
        if self.input is not None:
            total = self.input + (self.cache_read or 0) + (self.cache_write or 0)
        recorder.on_usage(
            input_tokens=total,
            output_tokens=usage.get("outputTokens"),
            cache_read_input_tokens=self.cache_read,
            cache_creation_input_tokens=self.cache_write,
        )


def _converse_usage(recorder: LLMRecorder, usage: Any) -> None:
    Usage().update(recorder, usage, "cacheReadInputTokens", "cacheWriteInputTokens")


def on_converse(recorder: LLMRecorder, result: Mapping[str, Any]) -> None:
    """A complete Converse response."""
    stop = result.get("stopReason")
    recorder.set_response(finish_reasons=[stop] if isinstance(stop, str) else None)
    _converse_usage(recorder, result.get("usage"))
    if recorder.capture_content:
        output = result.get("output")
        message = output.get("message") if isinstance(output, Mapping) else None
        _add_text_blocks(recorder, message.get("content") if isinstance(message, Mapping) else None)


def _add_text_blocks(recorder: LLMRecorder, blocks: Any) -> None:
    for block in blocks or ():
        text = block.get("text") if isinstance(block, Mapping) else None
        if isinstance(text, str):
            recorder.add_output_text(text)


def _on_delta(recorder: LLMRecorder, delta: Any) -> None:
    """A Converse/Nova delta: an answer chunk (text or a tool-use fragment), a reasoning chunk
    (reasoning text), or neither (a signature)."""
    if not isinstance(delta, Mapping):
        return
    if delta.get("text") or delta.get("toolUse"):
        recorder.on_chunk()
        text = delta.get("text")
        if isinstance(text, str):
            recorder.add_output_text(text)
        return
    reasoning = delta.get("reasoningContent")
    if isinstance(reasoning, Mapping) and reasoning.get("text"):
        recorder.on_reasoning_chunk()


def _converse_event(
    recorder: LLMRecorder, event: Mapping[str, Any], usage: Usage, read: str, write: str
) -> None:
    """One Converse-shaped stream event (also the payload shape of Nova's InvokeModel chunks)."""
    delta_event = event.get("contentBlockDelta")
    if delta_event is not None:
        _on_delta(recorder, delta_event.get("delta"))
        return
    stop = event.get("messageStop")
    if stop is not None:
        reason = stop.get("stopReason")
        if isinstance(reason, str):
            recorder.add_finish_reason(reason)
        return
    metadata = event.get("metadata")
    if isinstance(metadata, Mapping):
        usage.update(recorder, metadata.get("usage"), read, write)


class ConverseStreamEvents:
    """Reads the events of one ConverseStream; one instance per stream."""

    __slots__ = ("usage",)

    def __init__(self) -> None:
        self.usage = Usage()

    def __call__(self, recorder: LLMRecorder, event: Any) -> None:
        """One event dict (``{"contentBlockDelta": {...}}`` ...)."""
        _converse_event(recorder, event, self.usage, "cacheReadInputTokens", "cacheWriteInputTokens")


class InvokeStreamEvents:
    """Reads the ``chunk`` events of one InvokeModelWithResponseStream; one instance per stream."""

    __slots__ = ("anthropic_usage", "kind", "reported", "usage")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.usage = Usage()
        self.anthropic_usage = anthropic.Usage()
        self.reported = False

    def __call__(self, recorder: LLMRecorder, event: Any) -> None:
        """One event dict: ``{"chunk": {"bytes": b"<the model's JSON>"}}``."""
        chunk = event.get("chunk")
        if chunk is None:
            return
        payload = json.loads(chunk["bytes"])
        if not isinstance(payload, dict):
            return
        if self.kind == FAMILY_ANTHROPIC:
            self._anthropic(recorder, payload)
        elif self.kind == FAMILY_NOVA:
            _converse_event(
                recorder, payload, self.usage, "cacheReadInputTokenCount", "cacheWriteInputTokenCount"
            )
            self.reported = self.reported or "metadata" in payload
        metrics = payload.get(_INVOCATION_METRICS)
        if isinstance(metrics, Mapping) and not self.reported:
            # Bedrock's own counts (every family) when the model's events had none.
            recorder.on_usage(
                input_tokens=metrics.get("inputTokenCount"), output_tokens=metrics.get("outputTokenCount")
            )

    def _anthropic(self, recorder: LLMRecorder, payload: Mapping[str, Any]) -> None:
        kind = payload.get("type")
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, Mapping):
                field = _ANTHROPIC_DELTA_FIELDS.get(delta.get("type"))  # type: ignore[arg-type]
                value = delta.get(field) if field else None
                if value and field == "thinking":
                    recorder.on_reasoning_chunk()
                elif value:
                    recorder.on_chunk()
                    if field == "text":
                        recorder.add_output_text(value)
        elif kind == "message_start":
            message = payload.get("message")
            if isinstance(message, Mapping):
                recorder.set_response(response_id=message.get("id"), model=message.get("model"))
                self.anthropic_usage.update(recorder, message.get("usage"), with_output=False)
                self.reported = True
        elif kind == "message_delta":
            delta = payload.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
            if isinstance(reason, str):
                recorder.add_finish_reason(reason)
            self.anthropic_usage.update(recorder, payload.get("usage"), with_output=True)


_ANTHROPIC_DELTA_FIELDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}


def on_invoke(recorder: LLMRecorder, kind: str, body: bytes, headers: Mapping[str, Any]) -> None:
    """A complete InvokeModel response: the model's JSON body plus Bedrock's token-count headers."""
    recorder.on_usage(
        input_tokens=_header_count(headers, _HEADER_INPUT_TOKENS),
        output_tokens=_header_count(headers, _HEADER_OUTPUT_TOKENS),
    )
    if kind == FAMILY_OTHER:
        return
    decoded = json.loads(body)
    if not isinstance(decoded, dict):
        return
    if kind == FAMILY_ANTHROPIC:
        anthropic.on_message(recorder, decoded)
        return
    stop = decoded.get("stopReason")
    recorder.set_response(finish_reasons=[stop] if isinstance(stop, str) else None)
    Usage().update(recorder, decoded.get("usage"), "cacheReadInputTokenCount", "cacheWriteInputTokenCount")
    if recorder.capture_content:
        output = decoded.get("output")
        message = output.get("message") if isinstance(output, Mapping) else None
        _add_text_blocks(recorder, message.get("content") if isinstance(message, Mapping) else None)


def _header_count(headers: Mapping[str, Any], name: str) -> int | None:
    raw = headers.get(name)
    return as_count(int(raw)) if isinstance(raw, str) and raw.isdigit() else None


def _converse_parts(content: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, Mapping):
            continue
        if isinstance(block.get("text"), str):
            parts.append({"type": "text", "content": block["text"]})
        elif isinstance(block.get("toolUse"), Mapping):
            use = block["toolUse"]
            parts.append(
                {
                    "type": "tool_call",
                    "id": use.get("toolUseId"),
                    "name": use.get("name"),
                    "arguments": use.get("input"),
                }
            )
        elif isinstance(block.get("toolResult"), Mapping):
            parts.append({"type": "tool_call_response", "id": block["toolResult"].get("toolUseId")})
    return parts


def converse_input_messages(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A Converse (or Nova) prompt in the conventions' message shape (content capture only)."""
    return [
        {"role": m.get("role", "user"), "parts": _converse_parts(m.get("content"))}
        for m in params.get("messages") or ()
        if isinstance(m, Mapping)
    ]


def converse_system(params: Mapping[str, Any], limit: int) -> str | None:
    """A Converse ``system`` list as the conventions' JSON (content capture only)."""
    parts = _converse_parts(params.get("system"))
    if not parts:
        return None
    return json.dumps(parts, default=str, ensure_ascii=False, separators=(",", ":"))[:limit]


def prompt(
    kind: str, params: Mapping[str, Any], body: Mapping[str, Any] | None, limit: int
) -> tuple[Any, str | None]:
    """(input messages, system instructions) of a call, for content capture."""
    if body is None:
        return converse_input_messages(params), converse_system(params, limit)
    if kind == FAMILY_ANTHROPIC:
        return anthropic.input_messages(body), anthropic.system_instructions(body, limit)
    if kind == FAMILY_NOVA:
        return converse_input_messages(body), converse_system(body, limit)
    return None, None
