"""Translate OpenAI SDK requests, responses and stream chunks into recorder calls."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from ... import semconv
from ...recorder import LLMRecorder
from ...streams import ending

log = logging.getLogger(__name__)

_SCALAR_REQUEST_PARAMS = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", semconv.GEN_AI_REQUEST_SEED),
    ("service_tier", semconv.GEN_AI_OPENAI_REQUEST_SERVICE_TIER),
)
_SCALAR_BY_KEY = dict(_SCALAR_REQUEST_PARAMS)
_OTHER_PARAMS = frozenset(
    {"max_completion_tokens", "max_tokens", "max_output_tokens", "stop", "n", "response_format"}
)
_FINISH_BY_STATUS = {"completed": "stop", "failed": "error", "cancelled": "cancelled"}


def _number(value: object) -> float | int | None:
    # SDK sentinels (omit / NOT_GIVEN) and None are not numbers; bool is excluded on purpose.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def request_attributes(
    kwargs: Mapping[str, Any], max_tokens_keys: tuple[str, ...]
) -> dict[str, AttributeValue]:
    """Span attributes for the request parameters the conventions name."""
    attrs: dict[str, AttributeValue] = {}
    others = False
    # One pass over what the caller passed (usually 3-4 arguments), not a lookup per parameter.
    for key, value in kwargs.items():
        name = _SCALAR_BY_KEY.get(key)
        if name is None:
            others = others or key in _OTHER_PARAMS
        elif isinstance(value, str):
            attrs[name] = value
        elif (number := _number(value)) is not None:
            attrs[name] = number
    if not others:
        return attrs
    for key in max_tokens_keys:
        max_tokens = _number(kwargs.get(key))
        if max_tokens is not None:
            attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] = int(max_tokens)
            break
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
    elif isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
        attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    n = _number(kwargs.get("n"))
    if n is not None and n != 1:
        attrs[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = int(n)
    fmt = kwargs.get("response_format")
    fmt_type = fmt.get("type") if isinstance(fmt, Mapping) else None
    if fmt_type in ("json_object", "json_schema") or isinstance(fmt, type):
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = semconv.OUTPUT_TYPE_JSON
    elif fmt_type == "text":
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = semconv.OUTPUT_TYPE_TEXT
    return attrs


def embeddings_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Span attributes for an embeddings request."""
    fmt = kwargs.get("encoding_format")
    return {semconv.GEN_AI_REQUEST_ENCODING_FORMATS: [fmt]} if isinstance(fmt, str) else {}


def undeclared(obj: Any, name: str) -> Any:
    """Field ``name`` of an SDK model that may not declare it (other providers' additions), or
    of a decoded JSON object; None when absent. A missing attribute costs a pydantic model an
    AttributeError (~2.5 us): the undeclared fields are read from ``__pydantic_extra__``."""
    extra = getattr(obj, "__pydantic_extra__", None)
    if isinstance(extra, dict):
        value = extra.get(name)
        # A newer SDK may declare it: declared fields live in the instance's __dict__.
        return value if value is not None else obj.__dict__.get(name)
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def reasoning_delta(delta: Any) -> Any:
    """Reasoning text streamed before the answer by OpenAI-compatible servers: a chunk of output
    like Anthropic's thinking deltas (``reasoning_content``: DeepSeek, xAI, vLLM, Qwen;
    ``reasoning``: OpenRouter, Groq, Ollama, newer vLLM). Only read when ``content`` is empty."""
    return undeclared(delta, "reasoning_content") or undeclared(delta, "reasoning")


def _usage(recorder: LLMRecorder, usage: Any, *, responses_api: bool) -> None:
    if usage is None:
        return
    if responses_api:
        inp, out = usage.input_tokens, usage.output_tokens
        in_details = getattr(usage, "input_tokens_details", None)
        out_details = getattr(usage, "output_tokens_details", None)
    else:
        inp, out = usage.prompt_tokens, getattr(usage, "completion_tokens", None)
        in_details = getattr(usage, "prompt_tokens_details", None)
        out_details = getattr(usage, "completion_tokens_details", None)
    cached = getattr(in_details, "cached_tokens", None)
    if cached is None and not responses_api:
        cached = undeclared(usage, "prompt_cache_hit_tokens")  # DeepSeek's own field
    recorder.on_usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_input_tokens=cached,
        cache_creation_input_tokens=getattr(in_details, "cache_write_tokens", None),
        reasoning_output_tokens=getattr(out_details, "reasoning_tokens", None),
    )


def _openai_response_attrs(obj: Any) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    tier = getattr(obj, "service_tier", None)
    if isinstance(tier, str):
        attrs[semconv.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER] = tier
    fingerprint = getattr(obj, "system_fingerprint", None)
    if isinstance(fingerprint, str):
        attrs[semconv.GEN_AI_OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint
    return attrs


def _on_choices(recorder: LLMRecorder, result: Any, text_of: Callable[[Any], Any]) -> None:
    """A non-streamed result with ``choices`` and ``usage``; ``text_of(choice)`` is its text."""
    choices = getattr(result, "choices", None) or []
    recorder.set_response(
        response_id=getattr(result, "id", None),
        model=getattr(result, "model", None),
        finish_reasons=[c.finish_reason for c in choices if isinstance(c.finish_reason, str)],
        attributes=_openai_response_attrs(result),
    )
    _usage(recorder, getattr(result, "usage", None), responses_api=False)
    if recorder.capture_content and choices:
        text = text_of(choices[0])
        if isinstance(text, str):
            recorder.add_output_text(text)


def _message_content(choice: Any) -> Any:
    return getattr(getattr(choice, "message", None), "content", None)


def _choice_text(choice: Any) -> Any:
    return getattr(choice, "text", None)


def on_chat_completion(recorder: LLMRecorder, completion: Any) -> None:
    """A non-streamed ``ChatCompletion``."""
    _on_choices(recorder, completion, _message_content)


def chat_chunks(recorder: LLMRecorder, chunks: Iterable[Any]) -> Generator[Any, None, None]:
    """Reads the ``ChatCompletionChunk`` objects of one stream (a streams.StreamReader)."""
    # The hot path of streaming: locals set up once, few attribute reads per chunk (each costs
    # ~40 ns on an SDK model), no calls unless something is there.
    times, fold_at, clock = recorder.chunk_times, recorder.fold_at, recorder.clock
    arrived = times.append
    capture = recorder.capture_content
    responded = recorder.has_response
    answering = False  # an answer chunk seen
    with ending(recorder, chunks):
        yield None
        for chunk in chunks:
            try:
                choices = chunk.choices
                content_seen = thought = finished = False
                for choice in choices or ():
                    delta = choice.delta
                    if delta is not None:
                        text = delta.content
                        if text:
                            content_seen = True
                            if capture:
                                recorder.add_output_text(text)
                        elif delta.tool_calls or getattr(delta, "refusal", None):
                            content_seen = True
                        elif reasoning_delta(delta):
                            thought = True
                    reason = choice.finish_reason
                    if reason:
                        finished = True
                        recorder.add_finish_reason(reason)
                if content_seen or thought:
                    now = clock()
                    arrived(now)
                    if len(times) > fold_at:
                        recorder.fold_chunk_times()
                    if content_seen and not answering:
                        recorder.first_answer_ns = now
                        answering = True
                # Azure opens with a prompt-filter chunk whose id and model are empty.
                if not responded and chunk.id:
                    recorder.set_response(
                        response_id=chunk.id, model=chunk.model, attributes=_openai_response_attrs(chunk)
                    )
                    responded = True
                # Usage comes in a chunk without choices (stream_options.include_usage) or, on
                # some compatible servers, with the finish reason; content chunks carry none.
                if finished or not choices:
                    usage = chunk.usage
                    if usage is not None:
                        _usage(recorder, usage, responses_api=False)
            except Exception:
                log.debug("could not read a chat completion chunk", exc_info=True)
            yield chunk


def on_completion(recorder: LLMRecorder, completion: Any) -> None:
    """A non-streamed legacy ``Completion`` (``completions.create``)."""
    _on_choices(recorder, completion, _choice_text)


def on_completion_chunk(recorder: LLMRecorder, chunk: Any) -> None:
    """One chunk of a streamed legacy ``Completion``: text and finish reason per choice, the
    response identity, and the usage chunk (``stream_options.include_usage``)."""
    choices = chunk.choices
    content_seen = finished = False
    for choice in choices or ():
        text = choice.text
        if text:
            content_seen = True
            recorder.add_output_text(text)  # kept only when content capture is on
        if choice.finish_reason:
            finished = True
            recorder.add_finish_reason(choice.finish_reason)
    if content_seen:
        recorder.on_chunk()
    if not recorder.has_response and chunk.id:
        recorder.set_response(
            response_id=chunk.id, model=chunk.model, attributes=_openai_response_attrs(chunk)
        )
    if (finished or not choices) and chunk.usage is not None:
        _usage(recorder, chunk.usage, responses_api=False)


def on_response(recorder: LLMRecorder, response: Any) -> None:
    """A non-streamed Responses-API ``Response`` (also the payload of its final stream event)."""
    status = getattr(response, "status", None)
    reason = _FINISH_BY_STATUS.get(status) if isinstance(status, str) else None
    if status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        reason = getattr(details, "reason", None) or "incomplete"
    elif status == "failed":
        # A failure reported in the response itself (response.failed): the SDK raises nothing.
        code = getattr(getattr(response, "error", None), "code", None)
        recorder.set_error(code if isinstance(code, str) and code else "failed")
    recorder.set_response(
        response_id=getattr(response, "id", None),
        model=getattr(response, "model", None),
        finish_reasons=[reason] if isinstance(reason, str) else None,
        attributes=_openai_response_attrs(response),
    )
    _usage(recorder, getattr(response, "usage", None), responses_api=True)
    if recorder.capture_content and not recorder.has_output_text:
        text = getattr(response, "output_text", None)
        if isinstance(text, str):
            recorder.add_output_text(text)


# Responses-API stream events. The benchmark's client-side timer reads the same sets.
ANSWER_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.refusal.delta",
        "response.custom_tool_call_input.delta",
    }
)
REASONING_EVENTS = frozenset({"response.reasoning_text.delta", "response.reasoning_summary_text.delta"})
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def on_response_event(recorder: LLMRecorder, event: Any) -> None:
    """One Responses-API stream event."""
    kind = event.type
    if kind in ANSWER_EVENTS:
        recorder.on_chunk()
        if kind == "response.output_text.delta":
            recorder.add_output_text(event.delta)
    elif kind in REASONING_EVENTS:
        recorder.on_reasoning_chunk()
    elif kind in FINAL_EVENTS:
        on_response(recorder, event.response)
    elif kind == "response.created":
        response = event.response
        recorder.set_response(response_id=response.id, model=response.model)


def on_embeddings(recorder: LLMRecorder, result: Any) -> None:
    """A ``CreateEmbeddingResponse``."""
    data = getattr(result, "data", None) or []
    attrs: dict[str, AttributeValue] = {}
    if data and isinstance(getattr(data[0], "embedding", None), list):
        attrs[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(data[0].embedding)
    recorder.set_response(model=getattr(result, "model", None), attributes=attrs)
    usage = getattr(result, "usage", None)
    if usage is not None:
        recorder.on_usage(input_tokens=getattr(usage, "prompt_tokens", None))


def chat_input_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The prompt in the conventions' message shape (only built when content capture is on)."""
    messages = []
    for message in kwargs.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        parts = (
            [{"type": "text", "content": content}]
            if isinstance(content, str)
            else [
                {"type": p.get("type", "text"), "content": p.get("text")}
                for p in content or []
                if isinstance(p, Mapping)
            ]
        )
        messages.append({"role": message.get("role", "user"), "parts": parts})
    return messages


def completion_input_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A legacy Completions ``prompt`` (text or texts; token ids are not text) as user messages."""
    prompt = kwargs.get("prompt")
    texts = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []
    return [{"role": "user", "parts": [{"type": "text", "content": t}]} for t in texts if isinstance(t, str)]


def responses_input_messages(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Responses-API ``input`` (a string or message list) in the conventions' shape."""
    value = kwargs.get("input")
    if isinstance(value, str):
        return [{"role": "user", "parts": [{"type": "text", "content": value}]}]
    return chat_input_messages({"messages": value if isinstance(value, list) else []})
