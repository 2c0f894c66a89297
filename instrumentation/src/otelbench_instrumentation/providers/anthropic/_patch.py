"""Wrapper factories for the Anthropic SDK and the table that applies them.

Every Messages call of the SDK (``messages.create`` streamed or not, the ``messages.stream``
helper, ``messages.parse``, the ``beta.messages`` twins, their ``with_raw_response`` and
``with_streaming_response`` forms, and the Bedrock/Vertex clients that reuse these resources)
goes through one method, ``SyncAPIClient.request`` / ``AsyncAPIClient.request``, exactly once,
with every retry inside it. Wrapping that method for Messages requests therefore counts each
call once, whatever path the application took, and starts timing where the SDK itself starts
its own call span.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan

from ... import semconv
from ..._config import Settings
from ..._patching import Patch, Wrapper
from ...recorder import LLMRecorder, Telemetry
from .. import _stainless
from .._server import Server, http_server, remembered
from . import _extract

log = logging.getLogger(__name__)

# The SDK names the call span of every Messages create/stream/parse request this way.
_SDK_MESSAGES_SPAN = "anthropic.messages.create"
# SDK versions without span names are recognised by the request itself.
_MESSAGES_URLS = frozenset({"/v1/messages", "/v1/messages?beta=true"})
_PROVIDERS = frozenset(
    {semconv.PROVIDER_ANTHROPIC, semconv.PROVIDER_AWS_BEDROCK, semconv.PROVIDER_GCP_VERTEX_AI}
)


@dataclass(frozen=True, slots=True)
class Config:
    """What the wrappers of one instrumentor share."""

    telemetry: Telemetry
    # The same instruments (a meter hands back existing ones) and no spans of ours: used when
    # the SDK's own span is kept. NoOpTracer passes the parent's context through, so the SDK's
    # span keeps the application's span as its parent.
    metrics_only: Telemetry
    prefer_sdk_spans: bool

    @classmethod
    def create(
        cls, tracer_provider: Any, meter_provider: Any, settings: Settings, prefer_sdk_spans: bool
    ) -> Config:
        """Config for one instrumentor."""
        return cls(
            Telemetry(tracer_provider, meter_provider, settings),
            Telemetry(trace.NoOpTracerProvider(), meter_provider, settings),
            prefer_sdk_spans,
        )


@dataclass(slots=True)
class _Call:
    """The Messages request in flight in this context."""

    recorder: LLMRecorder
    replace_sdk_span: bool
    sdk_span_claimed: bool = False


_CALL: ContextVar[_Call | None] = ContextVar("otelbench_anthropic_call", default=None)


def _is_messages_call(options: Any) -> bool:
    name = getattr(options, "span_name", None)
    if isinstance(name, str):
        return name == _SDK_MESSAGES_SPAN
    method = getattr(options, "method", None)
    return (
        isinstance(method, str)
        and method.lower() == "post"
        and getattr(options, "url", None) in _MESSAGES_URLS
    )


_server_of = remembered(http_server)


def _server(client: Any) -> Server:
    try:
        return _server_of(client.base_url)
    except Exception:
        return None, None


def _provider(client: Any) -> str:
    # Bedrock and Vertex clients name their platform the way the conventions do.
    name = getattr(type(client), "_gen_ai_provider_name", None)
    return name if name in _PROVIDERS else semconv.PROVIDER_ANTHROPIC


def _start(config: Config, client: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _Call | None:
    """Open a recorder if this request is a Messages call; None for anything else."""
    try:
        # request(self, cast_to, options, *, stream, stream_cls); self is bound.
        options = args[1] if len(args) > 1 else kwargs.get("options")
        if not _is_messages_call(options):
            return None
        streaming = kwargs.get("stream") is True
        body = _extract.request_body(options)
        # The SDK makes a call span only when it has a tracer (its tracing is on).
        keep_sdk_span = config.prefer_sdk_spans and getattr(client, "_tracer", None) is not None
        telemetry = config.metrics_only if keep_sdk_span else config.telemetry
        model = body.get("model")
        host, port = _server(client)
        recorder = telemetry.start_llm(
            operation=semconv.OP_CHAT,
            provider=_provider(client),
            request_model=model if isinstance(model, str) else None,
            server_address=host,
            server_port=port,
            streaming=streaming,
            request_attributes=_extract.request_attributes(body),
        )
        if recorder is None:
            return None
    except Exception:
        log.debug("could not start Anthropic telemetry", exc_info=True)
        return None
    if recorder.capture_content:
        try:
            recorder.set_input_messages(_extract.input_messages(body))
            system = _extract.system_instructions(body, telemetry.settings.content_max_length)
            if system is not None:
                recorder.span.set_attribute(semconv.GEN_AI_SYSTEM_INSTRUCTIONS, system)
        except Exception:
            log.debug("could not record the Anthropic prompt", exc_info=True)
    return _Call(recorder, replace_sdk_span=not keep_sdk_span)


def _reset(token: Token[_Call | None]) -> None:
    try:
        _CALL.reset(token)
    except Exception:
        log.debug("could not reset the Anthropic call context", exc_info=True)


def _body_read(response: Any) -> bool:
    http = getattr(response, "http_response", None)
    return getattr(http, "is_closed", False) is True


@functools.cache
def _raw_response_classes() -> tuple[type[Any], ...]:
    """What ``with_raw_response``/``with_streaming_response`` return in this SDK version."""
    classes: list[type[Any]] = []
    for module, name in (
        ("anthropic._response", "BaseAPIResponse"),
        ("anthropic._legacy_response", "LegacyAPIResponse"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            classes.append(getattr(importlib.import_module(module), name))
    return tuple(classes)


@functools.cache
def _stream_classes() -> tuple[Any, Any]:
    """(Stream, AsyncStream), imported once rather than on every call."""
    from anthropic import AsyncStream, Stream

    return Stream, AsyncStream


def _timed(result: Any, recorder: LLMRecorder) -> Any | None:
    """``result`` timed (proxied, or in place) if it is an SDK stream; else None."""
    stream, async_stream = _stream_classes()
    if isinstance(result, stream):
        return _stainless.timed_stream(result, recorder, _extract.stream_events, False)
    if isinstance(result, async_stream):
        return _stainless.timed_stream(result, recorder, _extract.stream_events, True)
    return None


def _on_result(recorder: LLMRecorder, result: Any) -> Any:
    """Return what the caller gets: the SDK result itself or a transparent proxy of it."""
    try:
        timed = _timed(result, recorder)
        if timed is not None:
            return timed
        if isinstance(result, _raw_response_classes()):
            if recorder.streaming or not _body_read(result):
                # with_streaming_response, or a raw stream: the body is read when the app asks.
                return RawResponseProxy(result, recorder)
            # with_raw_response: the body is already here; the app's own parse() is untouched.
            _extract.on_message(recorder, result.http_response.json())
        else:
            _extract.on_message(recorder, result)
    except Exception:
        log.debug("could not read Anthropic result", exc_info=True)
    recorder.end()
    return result


def make_request_wrapper(config: Config, is_async: bool) -> Callable[[], Wrapper]:
    """Factory for the wrapper of ``SyncAPIClient.request`` or ``AsyncAPIClient.request``."""

    def sync_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start(config, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        recorder = call.recorder
        token = _CALL.set(call)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            recorder.fail(exc)
            raise
        finally:
            _reset(token)
            recorder.deactivate()
        return _on_result(recorder, result)

    async def async_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start(config, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        recorder = call.recorder
        token = _CALL.set(call)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            recorder.fail(exc)
            raise
        finally:
            _reset(token)
            recorder.deactivate()
        return _on_result(recorder, result)

    return lambda: async_wrapper if is_async else sync_wrapper


class RawResponseProxy(_stainless.RawResponseProxy):
    """A raw or streaming-response result whose ``parse()``/``json()`` we observe."""

    _SDK = "Anthropic"

    def json(self, *args: Any, **kwargs: Any) -> Any:
        """Decode the body as the SDK does; a Message body is read for usage."""
        decoded = self.__wrapped__.json(*args, **kwargs)
        if inspect.isawaitable(decoded):
            return self._await_then_observe(decoded)
        return self._observe(decoded)

    def _read(self, parsed: Any) -> Any:
        timed = _timed(parsed, self._self_recorder)
        if timed is None:
            _extract.on_message(self._self_recorder, parsed)
        return timed


# --- the SDK's own call span --------------------------------------------------------------------
def _sdk_span_wrapper() -> Wrapper:
    """Hand the SDK a non-recording stand-in for our span instead of a span of its own.

    The stand-in carries our span's context, so the SDK's trace-context propagation (its
    ``propagation`` option) still sends it, and everything the SDK would record on its span is a
    no-op. Applies only to the Messages call we are recording, and only when our span records.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _CALL.get()
        if call is not None and call.replace_sdk_span and not call.sdk_span_claimed:
            call.sdk_span_claimed = True
            try:
                span = call.recorder.span
                if span.is_recording():
                    return NonRecordingSpan(span.get_span_context())
            except Exception:
                log.debug("could not stand in for the Anthropic SDK's span", exc_info=True)
        return wrapped(*args, **kwargs)

    return wrapper


# --- SDK-internal retries -----------------------------------------------------------------------
def _attempt_outcome(response: Any) -> tuple[int | None, str]:
    """Status and error.type of the attempt that failed."""
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status, str(status)
    # No response: a connection error or timeout, retried from inside the SDK's except block.
    exc = sys.exc_info()[1]
    return None, type(exc).__qualname__ if exc is not None else semconv.ERROR_TYPE_OTHER


def _current_recorder() -> LLMRecorder | None:
    call = _CALL.get()
    return call.recorder if call is not None else None


_RETRIES = _stainless.RetryHooks("anthropic", _current_recorder, _attempt_outcome)


def patches(config: Config) -> list[Patch]:
    """Every Anthropic SDK function we wrap; the same list drives instrument and uninstrument."""
    base = "anthropic._base_client"
    return [
        Patch(base, "SyncAPIClient.request", make_request_wrapper(config, False)),
        Patch(base, "AsyncAPIClient.request", make_request_wrapper(config, True)),
        # Imported by name into _base_client, which is where the SDK calls it.
        Patch(base, "start_api_call_span", _sdk_span_wrapper),
        *_RETRIES.patches(base),
    ]
