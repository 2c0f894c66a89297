"""Wrapper factories for the Ollama SDK and the table that applies them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ... import semconv
from ..._patching import Patch, Wrapper
from ...recorder import LLMRecorder, Telemetry
from ...streams import AsyncStreamProxy, StreamReader, SyncStreamProxy, ignore_chunks
from .._server import Server, remembered
from . import _extract

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Operation:
    """How one SDK method maps onto the conventions."""

    name: str
    # The method's parameters that may be passed positionally, in order.
    positional: tuple[str, ...]
    on_result: Callable[[LLMRecorder, Any], None]
    stream_reader: StreamReader
    input_messages: Callable[[Mapping[str, Any]], Any] | None = None


CHAT = Operation(
    semconv.OP_CHAT,
    ("model", "messages"),
    _extract.on_chat_response,
    _extract.chat_chunks,
    _extract.chat_input_messages,
)
GENERATE = Operation(
    semconv.OP_TEXT_COMPLETION,
    ("model", "prompt", "suffix"),
    _extract.on_generate_response,
    _extract.generate_chunks,
    _extract.generate_input_messages,
)
EMBED = Operation(
    semconv.OP_EMBEDDINGS,
    ("model", "input", "truncate", "options", "keep_alive", "dimensions"),
    _extract.on_embed_response,
    ignore_chunks,
)
EMBEDDINGS = Operation(
    semconv.OP_EMBEDDINGS,
    ("model", "prompt", "options", "keep_alive"),
    _extract.on_embeddings_response,
    ignore_chunks,
)


# The SDK normalises its host to scheme://host:port, so the port is always explicit.
_server_of = remembered(lambda url: (url.host or None, url.port))


def _server(instance: Any) -> Server:
    try:
        return _server_of(instance._client.base_url)
    except Exception:
        return None, None


def _start(
    telemetry: Telemetry, op: Operation, instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> LLMRecorder | None:
    try:
        params = {**dict(zip(op.positional, args, strict=False)), **kwargs} if args else kwargs
        model = params.get("model")
        host, port = _server(instance)
        recorder = telemetry.start_llm(
            operation=op.name,
            provider=semconv.PROVIDER_OLLAMA,
            request_model=model if isinstance(model, str) and model else None,
            server_address=host,
            server_port=port,
            streaming=params.get("stream") is True,
            request_attributes=_extract.request_attributes(params),
        )
    except Exception:
        log.debug("could not start Ollama telemetry", exc_info=True)
        return None
    if recorder is not None and op.input_messages is not None and recorder.capture_content:
        # Apart from the start: a recorder dropped here would leave its span open and current.
        try:
            recorder.set_input_messages(op.input_messages(params))
        except Exception:
            log.debug("could not read the Ollama prompt", exc_info=True)
    return recorder


def _on_result(recorder: LLMRecorder, op: Operation, result: Any) -> Any:
    """Return what the caller gets: the SDK result itself or a transparent proxy of its stream."""
    try:
        # Streams are plain (async) generators; the request is sent on the first iteration.
        if isinstance(result, Iterator):
            return SyncStreamProxy(result, recorder, op.stream_reader)
        if isinstance(result, AsyncIterator):
            return AsyncStreamProxy(result, recorder, op.stream_reader)
        op.on_result(recorder, result)
    except Exception:
        log.debug("could not read Ollama result", exc_info=True)
    recorder.end()
    return result


def _fail(recorder: LLMRecorder, exc: BaseException) -> None:
    """End the span as failed; an ``ollama.ResponseError`` also gives its HTTP status."""
    status = getattr(exc, "status_code", None)
    # ResponseError uses -1 for an error record inside a 200 stream.
    if isinstance(status, int) and not isinstance(status, bool) and status > 0:
        try:
            recorder.span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
        except Exception:
            log.debug("could not record the HTTP status", exc_info=True)
    recorder.fail(exc)


def make_wrapper(telemetry: Telemetry, op: Operation, is_async: bool) -> Callable[[], Wrapper]:
    """Factory for the wrapper of one SDK method (sync or async)."""

    def sync_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = _start(telemetry, op, instance, args, kwargs)
        if recorder is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _fail(recorder, exc)
            raise
        finally:
            recorder.deactivate()
        return _on_result(recorder, op, result)

    async def async_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = _start(telemetry, op, instance, args, kwargs)
        if recorder is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _fail(recorder, exc)
            raise
        finally:
            recorder.deactivate()
        return _on_result(recorder, op, result)

    return lambda: async_wrapper if is_async else sync_wrapper


_METHODS = (("chat", CHAT), ("generate", GENERATE), ("embed", EMBED), ("embeddings", EMBEDDINGS))


def patches(telemetry: Telemetry) -> list[Patch]:
    """Every Ollama SDK callable we wrap; the same list drives instrument and uninstrument."""
    table = []
    for method, op in _METHODS:
        table.append(Patch("ollama._client", f"Client.{method}", make_wrapper(telemetry, op, False)))
        table.append(Patch("ollama._client", f"AsyncClient.{method}", make_wrapper(telemetry, op, True)))
    # ollama.chat & co. are methods of a default Client bound at import time, so they still hold
    # the unpatched functions: wrap those module attributes too (wrapt passes the default client
    # as the instance). Calls through them never reach the class wrappers, so nothing counts twice.
    for method, op in _METHODS:
        table.append(Patch("ollama", method, make_wrapper(telemetry, op, False)))
    return table
