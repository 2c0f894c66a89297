"""Translate Ollama SDK requests, responses and stream records into recorder calls.

Nothing here imports ``ollama``: the SDK's pydantic models are read by attribute, and the
``options`` argument is read from a dict or an ``ollama.Options`` alike.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from ... import semconv
from ...recorder import LLMRecorder, as_count
from ...streams import ending

log = logging.getLogger(__name__)

# (option key, attribute, value type). The conventions' names first, then Ollama's own.
_OPTIONS: tuple[tuple[str, str, type], ...] = (
    ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE, float),
    ("top_p", semconv.GEN_AI_REQUEST_TOP_P, float),
    ("top_k", semconv.GEN_AI_REQUEST_TOP_K, float),
    ("seed", semconv.GEN_AI_REQUEST_SEED, int),
    ("presence_penalty", semconv.GEN_AI_REQUEST_PRESENCE_PENALTY, float),
    ("frequency_penalty", semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, float),
    ("num_ctx", semconv.OLLAMA_REQUEST_NUM_CTX, int),
    ("num_batch", semconv.OLLAMA_REQUEST_NUM_BATCH, int),
    ("num_gpu", semconv.OLLAMA_REQUEST_NUM_GPU, int),
    ("main_gpu", semconv.OLLAMA_REQUEST_MAIN_GPU, int),
    ("num_thread", semconv.OLLAMA_REQUEST_NUM_THREAD, int),
    ("num_keep", semconv.OLLAMA_REQUEST_NUM_KEEP, int),
    ("numa", semconv.OLLAMA_REQUEST_NUMA, bool),
    ("low_vram", semconv.OLLAMA_REQUEST_LOW_VRAM, bool),
    ("use_mmap", semconv.OLLAMA_REQUEST_USE_MMAP, bool),
    ("use_mlock", semconv.OLLAMA_REQUEST_USE_MLOCK, bool),
    ("repeat_penalty", semconv.OLLAMA_REQUEST_REPEAT_PENALTY, float),
    ("repeat_last_n", semconv.OLLAMA_REQUEST_REPEAT_LAST_N, int),
    ("min_p", semconv.OLLAMA_REQUEST_MIN_P, float),
    ("typical_p", semconv.OLLAMA_REQUEST_TYPICAL_P, float),
    ("tfs_z", semconv.OLLAMA_REQUEST_TFS_Z, float),
    ("mirostat", semconv.OLLAMA_REQUEST_MIROSTAT, int),
    ("mirostat_tau", semconv.OLLAMA_REQUEST_MIROSTAT_TAU, float),
    ("mirostat_eta", semconv.OLLAMA_REQUEST_MIROSTAT_ETA, float),
    ("penalize_newline", semconv.OLLAMA_REQUEST_PENALIZE_NEWLINE, bool),
)

# (response field in ns, attribute in s); (count field, attribute).
_DURATIONS = (
    ("total_duration", semconv.OLLAMA_RESPONSE_TOTAL_DURATION),
    ("load_duration", semconv.OLLAMA_RESPONSE_LOAD_DURATION),
    ("prompt_eval_duration", semconv.OLLAMA_RESPONSE_PROMPT_EVAL_DURATION),
    ("eval_duration", semconv.OLLAMA_RESPONSE_EVAL_DURATION),
)
_COUNTS = (
    ("prompt_eval_count", semconv.OLLAMA_RESPONSE_PROMPT_EVAL_COUNT),
    ("eval_count", semconv.OLLAMA_RESPONSE_EVAL_COUNT),
)


def _typed(value: object, kind: type) -> AttributeValue | None:
    """``value`` as an attribute of one fixed type per key (backends dislike mixed types)."""
    if isinstance(value, bool):
        return value if kind is bool else None
    if kind is int:
        return value if isinstance(value, int) else None
    if kind is float and isinstance(value, int | float):
        return float(value)
    return None


def _count(value: object) -> int | None:
    return as_count(value)


def _option_getter(options: object) -> Any:
    # A plain dict, or an ollama.Options model (fields read by attribute; unset ones are None).
    if isinstance(options, Mapping):
        return options.get
    return lambda key: getattr(options, key, None)


def request_attributes(params: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Span attributes for ``options``, ``keep_alive``, ``format``, ``think`` and embed settings."""
    attrs: dict[str, AttributeValue] = {}
    options = params.get("options")
    if options is not None:
        get = _option_getter(options)
        for key, name, kind in _OPTIONS:
            value = _typed(get(key), kind)
            if value is not None:
                attrs[name] = value
        num_predict = _typed(get("num_predict"), int)
        if isinstance(num_predict, int):
            # -1 (no limit) and -2 (fill the context) are not token caps.
            name = (
                semconv.GEN_AI_REQUEST_MAX_TOKENS if num_predict >= 0 else semconv.OLLAMA_REQUEST_NUM_PREDICT
            )
            attrs[name] = num_predict
        stop = get("stop")
        if isinstance(stop, str):
            attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop]
        elif isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
            attrs[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = list(stop)
    keep_alive = params.get("keep_alive")
    if isinstance(keep_alive, str | int | float) and not isinstance(keep_alive, bool) and keep_alive != "":
        # "5m" or a number of seconds: always a string, so the attribute keeps one type.
        attrs[semconv.OLLAMA_REQUEST_KEEP_ALIVE] = str(keep_alive)
    fmt = params.get("format")
    if fmt == "json":
        attrs[semconv.OLLAMA_REQUEST_FORMAT] = semconv.OLLAMA_FORMAT_JSON
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = semconv.OUTPUT_TYPE_JSON
    elif isinstance(fmt, Mapping):
        attrs[semconv.OLLAMA_REQUEST_FORMAT] = semconv.OLLAMA_FORMAT_SCHEMA
        attrs[semconv.GEN_AI_OUTPUT_TYPE] = semconv.OUTPUT_TYPE_JSON
    think = params.get("think")
    if isinstance(think, bool):
        attrs[semconv.OLLAMA_REQUEST_THINK] = "true" if think else "false"
    elif isinstance(think, str) and think:
        attrs[semconv.OLLAMA_REQUEST_THINK] = think
    truncate = params.get("truncate")
    if isinstance(truncate, bool):
        attrs[semconv.OLLAMA_REQUEST_TRUNCATE] = truncate
    dimensions = _count(params.get("dimensions"))
    if dimensions:
        attrs[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
    return attrs


def server_timings(response: Any) -> dict[str, AttributeValue]:
    """Ollama's server timings (seconds), counts, and the prefill/decode rates derived from them."""
    attrs: dict[str, AttributeValue] = {}
    for field, name in _DURATIONS:
        ns = _count(getattr(response, field, None))
        if ns is not None:
            attrs[name] = ns / 1e9
    for field, name in _COUNTS:
        count = _count(getattr(response, field, None))
        if count is not None:
            attrs[name] = count
    for count_field, duration_field, name in (
        ("prompt_eval_count", "prompt_eval_duration", semconv.OLLAMA_RESPONSE_PROMPT_EVAL_RATE),
        ("eval_count", "eval_duration", semconv.OLLAMA_RESPONSE_EVAL_RATE),
    ):
        count = _count(getattr(response, count_field, None))
        ns = _count(getattr(response, duration_field, None))
        if count is not None and ns:  # a zero duration (fully cached prompt) has no rate
            attrs[name] = count / (ns / 1e9)
    return attrs


def _on_final(recorder: LLMRecorder, response: Any) -> None:
    """The final record (``done``): model, done_reason, usage and server timings."""
    reason = getattr(response, "done_reason", None)
    recorder.set_response(
        model=getattr(response, "model", None),
        finish_reasons=[reason] if isinstance(reason, str) and reason else None,
        attributes=server_timings(response),
    )
    recorder.on_usage(
        input_tokens=getattr(response, "prompt_eval_count", None),
        output_tokens=getattr(response, "eval_count", None),
    )


def on_chat_response(recorder: LLMRecorder, response: Any) -> None:
    """A non-streamed ``ChatResponse``."""
    _on_final(recorder, response)
    if recorder.capture_content:
        content = getattr(getattr(response, "message", None), "content", None)
        if isinstance(content, str):
            recorder.add_output_text(content)


def _records(recorder: LLMRecorder, records: Iterable[Any], chat: bool) -> Generator[Any, None, None]:
    """Reads the records of one streamed chat (``chat``) or generate (a streams.StreamReader):
    text, thinking and (chat) tool calls count as content."""
    times, fold_at, clock = recorder.chunk_times, recorder.fold_at, recorder.clock
    arrived = times.append
    capture = recorder.capture_content
    answering = False  # an answer chunk seen
    with ending(recorder, records):
        yield None
        for chunk in records:
            try:
                # getattr: ollama < 0.5 records have no ``thinking``.
                if chat:
                    message = chunk.message
                    text = message.content
                    answer = text or message.tool_calls
                    thought = not answer and getattr(message, "thinking", None)
                else:
                    text = answer = chunk.response
                    thought = not answer and getattr(chunk, "thinking", None)
                if answer or thought:
                    now = clock()
                    arrived(now)
                    if len(times) > fold_at:
                        recorder.fold_chunk_times()
                    if text and capture:
                        recorder.add_output_text(text)
                    if answer and not answering:
                        recorder.first_answer_ns = now
                        answering = True
                if chunk.done:
                    _on_final(recorder, chunk)
                elif not recorder.has_response:
                    recorder.set_response(model=chunk.model)
            except Exception:
                log.debug("could not read an Ollama stream record", exc_info=True)
            yield chunk


def chat_chunks(recorder: LLMRecorder, records: Iterable[Any]) -> Generator[Any, None, None]:
    """Reads the records of one streamed chat (a streams.StreamReader)."""
    return _records(recorder, records, chat=True)


def generate_chunks(recorder: LLMRecorder, records: Iterable[Any]) -> Generator[Any, None, None]:
    """Reads the records of one streamed generate (a streams.StreamReader)."""
    return _records(recorder, records, chat=False)


def on_generate_response(recorder: LLMRecorder, response: Any) -> None:
    """A non-streamed ``GenerateResponse``."""
    _on_final(recorder, response)
    if recorder.capture_content:
        text = getattr(response, "response", None)
        if isinstance(text, str):
            recorder.add_output_text(text)


def on_embed_response(recorder: LLMRecorder, response: Any) -> None:
    """An ``EmbedResponse`` (``/api/embed``): input tokens, dimensions, server timings."""
    embeddings = getattr(response, "embeddings", None)
    attrs = server_timings(response)
    if embeddings and isinstance(embeddings[0], list | tuple):
        attrs[semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(embeddings[0])
    recorder.set_response(model=getattr(response, "model", None), attributes=attrs)
    recorder.on_usage(input_tokens=getattr(response, "prompt_eval_count", None))


def on_embeddings_response(recorder: LLMRecorder, response: Any) -> None:
    """A legacy ``EmbeddingsResponse`` (``/api/embeddings``): only the vector comes back."""
    embedding = getattr(response, "embedding", None)
    if isinstance(embedding, list | tuple):
        recorder.set_response(attributes={semconv.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: len(embedding)})


def _text_message(role: str, text: object) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}] if isinstance(text, str) else []}


def chat_input_messages(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The chat prompt in the conventions' message shape (only built when content capture is on)."""
    messages = []
    for message in params.get("messages") or ():
        if isinstance(message, Mapping):
            role, content = message.get("role"), message.get("content")
        else:  # ollama.Message
            role, content = getattr(message, "role", None), getattr(message, "content", None)
        messages.append(_text_message(role if isinstance(role, str) else "user", content))
    return messages


def generate_input_messages(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The generate ``system`` and ``prompt`` in the conventions' message shape."""
    messages = []
    if isinstance(params.get("system"), str):
        messages.append(_text_message("system", params["system"]))
    if isinstance(params.get("prompt"), str):
        messages.append(_text_message("user", params["prompt"]))
    return messages
