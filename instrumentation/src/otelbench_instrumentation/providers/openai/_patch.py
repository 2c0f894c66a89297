"""Wrapper factories for the OpenAI SDK and the table that applies them."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from ... import semconv
from ..._patching import Patch, Wrapper
from ...recorder import LLMRecorder, Telemetry, active_recorder
from ...streams import AsyncStreamProxy, StreamReader, SyncStreamProxy, ignore_chunks, per_chunk
from .. import _stainless
from .._server import http_server, remembered
from . import _extract

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Operation:
    """How one SDK method maps onto the conventions."""

    name: str
    request_attributes: Callable[[Mapping[str, Any]], dict[str, AttributeValue]]
    on_result: Callable[[LLMRecorder, Any], None]
    stream_reader: StreamReader
    input_messages: Callable[[Mapping[str, Any]], Any] | None = None


CHAT = Operation(
    semconv.OP_CHAT,
    lambda kw: _extract.request_attributes(kw, ("max_completion_tokens", "max_tokens")),
    _extract.on_chat_completion,
    _extract.chat_chunks,
    _extract.chat_input_messages,
)
RESPONSES = Operation(
    semconv.OP_CHAT,
    lambda kw: _extract.request_attributes(kw, ("max_output_tokens",)),
    _extract.on_response,
    per_chunk(_extract.on_response_event),
    _extract.responses_input_messages,
)
TEXT_COMPLETION = Operation(
    semconv.OP_TEXT_COMPLETION,
    lambda kw: _extract.request_attributes(kw, ("max_tokens",)),
    _extract.on_completion,
    per_chunk(_extract.on_completion_chunk),
    _extract.completion_input_messages,
)
EMBEDDINGS = Operation(
    semconv.OP_EMBEDDINGS,
    _extract.embeddings_request_attributes,
    _extract.on_embeddings,
    ignore_chunks,
)


_server_of = remembered(http_server)
# The OpenAI-compatible APIs of providers the conventions name, by host: the plain client at
# these is that provider, not OpenAI. Anything else (api.openai.com, vLLM, a gateway) is openai.
_PROVIDER_HOSTS = {
    "api.deepseek.com": semconv.PROVIDER_DEEPSEEK,
    "api.groq.com": semconv.PROVIDER_GROQ,
    "api.x.ai": semconv.PROVIDER_X_AI,
    "api.mistral.ai": semconv.PROVIDER_MISTRAL_AI,
    "api.perplexity.ai": semconv.PROVIDER_PERPLEXITY,
    "api.cohere.ai": semconv.PROVIDER_COHERE,
    "api.cohere.com": semconv.PROVIDER_COHERE,
    "generativelanguage.googleapis.com": semconv.PROVIDER_GCP_GEMINI,
    "aiplatform.googleapis.com": semconv.PROVIDER_GCP_VERTEX_AI,
}
# Hosts named per resource or region: an Azure OpenAI resource (its v1 API is the plain client
# at {resource}/openai/v1) and Vertex AI's regional endpoints ({region}-aiplatform...).
_PROVIDER_HOST_SUFFIXES = (
    (".openai.azure.com", semconv.PROVIDER_AZURE_AI_OPENAI),
    (".cognitiveservices.azure.com", semconv.PROVIDER_AZURE_AI_OPENAI),
    ("-aiplatform.googleapis.com", semconv.PROVIDER_GCP_VERTEX_AI),
)
_azure_classes: dict[type, bool] = {}


def _is_azure_class(cls: type) -> bool:
    """Whether ``cls`` is one of the SDK's AzureOpenAI clients (looked up once per class)."""
    found = _azure_classes.get(cls)
    if found is None:
        try:
            from openai.lib.azure import BaseAzureClient

            found = issubclass(cls, BaseAzureClient)
        except Exception:
            found = False
        if len(_azure_classes) >= 64:  # classes made on the fly must not pile up
            _azure_classes.clear()
        _azure_classes[cls] = found
    return found


@functools.lru_cache(maxsize=64)
def provider_for_host(host: str | None) -> str:
    """``gen_ai.provider.name`` of the plain client's calls to ``host``."""
    if not host:
        return semconv.PROVIDER_OPENAI
    host = host.lower().rstrip(".")
    found = _PROVIDER_HOSTS.get(host)
    if found is not None:
        return found
    for suffix, provider in _PROVIDER_HOST_SUFFIXES:
        if host.endswith(suffix):
            return provider
    return semconv.PROVIDER_OPENAI


def provider_of(client_class: type, host: str | None) -> str:
    """``gen_ai.provider.name`` for a call through a client of this class to this host."""
    if _is_azure_class(client_class):
        return semconv.PROVIDER_AZURE_AI_OPENAI
    return provider_for_host(host)


def _endpoint(instance: Any) -> tuple[str | None, int | None, str]:
    """(server.address, server.port, gen_ai.provider.name) of the resource's client."""
    try:
        client = instance._client
        host, port = _server_of(client.base_url)
        return host, port, provider_of(type(client), host)
    except Exception:
        return None, None, semconv.PROVIDER_OPENAI


def _start(
    telemetry: Telemetry, op: Operation, instance: Any, kwargs: Mapping[str, Any]
) -> LLMRecorder | None:
    try:
        model = kwargs.get("model")
        host, port, provider = _endpoint(instance)
        recorder = telemetry.start_llm(
            operation=op.name,
            provider=provider,
            request_model=model if isinstance(model, str) else None,
            server_address=host,
            server_port=port,
            streaming=kwargs.get("stream") is True,
            request_attributes=op.request_attributes(kwargs),
        )
    except Exception:
        log.debug("could not start OpenAI telemetry", exc_info=True)
        return None
    if recorder is not None and op.input_messages is not None and recorder.capture_content:
        # Apart from the start: a recorder already open must be returned, or its span leaks.
        try:
            recorder.set_input_messages(op.input_messages(kwargs))
        except Exception:
            log.debug("could not read OpenAI input messages", exc_info=True)
    return recorder


@functools.cache
def _result_types() -> tuple[Any, Any, Any, tuple[Any, ...]]:
    """(Stream, AsyncStream, LegacyAPIResponse, raw response types), imported once: import
    statements in the wrapper cost microseconds per call even when the module is loaded."""
    from openai import AsyncStream, Stream
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import APIResponse, AsyncAPIResponse

    return Stream, AsyncStream, LegacyAPIResponse, (LegacyAPIResponse, APIResponse, AsyncAPIResponse)


def _stream_proxy(result: Any, recorder: LLMRecorder, op: Operation) -> Any | None:
    """Our proxy of ``result`` if it is an SDK stream; else None."""
    stream, async_stream, _, _ = _result_types()
    if isinstance(result, stream):
        return SyncStreamProxy(result, recorder, op.stream_reader)
    if isinstance(result, async_stream):
        return AsyncStreamProxy(result, recorder, op.stream_reader)
    return None


def _on_result(recorder: LLMRecorder, op: Operation, result: Any) -> Any:
    """Return what the caller gets: the SDK result itself or a transparent proxy of it."""
    try:
        proxy = _stream_proxy(result, recorder, op)
        if proxy is not None:
            return proxy
        _, _, legacy, raw = _result_types()
        if isinstance(result, legacy) and not recorder.streaming:
            # The body is already read; parse() caches, so the caller's own parse() is free.
            op.on_result(recorder, result.parse())
        elif isinstance(result, raw):
            return RawResponseProxy(result, recorder, op)
        else:
            op.on_result(recorder, result)
    except Exception:
        log.debug("could not read OpenAI result", exc_info=True)
    recorder.end()
    return result


def make_wrapper(telemetry: Telemetry, op: Operation, is_async: bool) -> Callable[[], Wrapper]:
    """Factory for the wrapper of one SDK method (sync or async)."""

    def sync_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = _start(telemetry, op, instance, kwargs)
        if recorder is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            recorder.fail(exc)
            raise
        finally:
            recorder.deactivate()
        return _on_result(recorder, op, result)

    async def async_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = _start(telemetry, op, instance, kwargs)
        if recorder is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            recorder.fail(exc)
            raise
        finally:
            recorder.deactivate()
        return _on_result(recorder, op, result)

    return lambda: async_wrapper if is_async else sync_wrapper


class RawResponseProxy(_stainless.RawResponseProxy):
    """A ``with_raw_response``/``with_streaming_response`` result whose ``parse()`` is observed."""

    _SDK = "OpenAI"

    def __init__(self, wrapped: Any, recorder: LLMRecorder, op: Operation) -> None:
        super().__init__(wrapped, recorder)
        self._self_op = op

    def _read(self, parsed: Any) -> Any:
        proxy = _stream_proxy(parsed, self._self_recorder, self._self_op)
        if proxy is None:
            self._self_op.on_result(self._self_recorder, parsed)
        return proxy


def _attempt_outcome(response: Any) -> tuple[int | None, str | None]:
    """Status and error type of the attempt that failed (we are inside the SDK's except block)."""
    status = getattr(response, "status_code", None)
    exc = sys.exc_info()[1]
    if exc is not None:
        return (status if isinstance(status, int) else None), type(exc).__qualname__
    return (status if isinstance(status, int) else None), (str(status) if status else None)


_RETRIES = _stainless.RetryHooks("openai", active_recorder, _attempt_outcome)


def patches(telemetry: Telemetry) -> list[Patch]:
    """Every OpenAI SDK method we wrap; the same list drives instrument and uninstrument."""
    chat = "openai.resources.chat.completions.completions"
    responses = "openai.resources.responses.responses"
    embeddings = "openai.resources.embeddings"
    completions = "openai.resources.completions"
    base = "openai._base_client"
    table = [
        Patch(chat, "Completions.create", make_wrapper(telemetry, CHAT, False)),
        Patch(chat, "AsyncCompletions.create", make_wrapper(telemetry, CHAT, True)),
        Patch(chat, "Completions.parse", make_wrapper(telemetry, CHAT, False)),
        Patch(chat, "AsyncCompletions.parse", make_wrapper(telemetry, CHAT, True)),
        Patch(responses, "Responses.create", make_wrapper(telemetry, RESPONSES, False)),
        Patch(responses, "AsyncResponses.create", make_wrapper(telemetry, RESPONSES, True)),
        Patch(responses, "Responses.parse", make_wrapper(telemetry, RESPONSES, False)),
        Patch(responses, "AsyncResponses.parse", make_wrapper(telemetry, RESPONSES, True)),
        Patch(completions, "Completions.create", make_wrapper(telemetry, TEXT_COMPLETION, False)),
        Patch(completions, "AsyncCompletions.create", make_wrapper(telemetry, TEXT_COMPLETION, True)),
        Patch(embeddings, "Embeddings.create", make_wrapper(telemetry, EMBEDDINGS, False)),
        Patch(embeddings, "AsyncEmbeddings.create", make_wrapper(telemetry, EMBEDDINGS, True)),
        *_RETRIES.patches(base),
    ]
    return table
