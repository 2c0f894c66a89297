"""The wrapper of botocore's operation dispatch and the client event hooks that time retries.

boto3 builds client classes at run time, but every operation of every client goes through
``botocore.client.BaseClient._make_api_call(operation_name, api_params)`` exactly once, with all
of botocore's retries inside it. Wrapping that one method for the four Bedrock runtime
operations counts each call once. Retries are read from the client's own event system:
``before-send`` fires before every HTTP attempt and ``response-received`` after it, so the
attempt events need nothing private from botocore's retry handlers.
"""

from __future__ import annotations

import io
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ... import semconv
from ..._config import Settings
from ..._patching import Patch, Wrapper
from ...recorder import LLMRecorder, Telemetry, suppress_telemetry_errors
from ...streams import SyncStreamProxy, per_chunk
from .._server import Server, remembered
from . import _extract

log = logging.getLogger(__name__)

SERVICE = "bedrock-runtime"
CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
INVOKE = "InvokeModel"
INVOKE_STREAM = "InvokeModelWithResponseStream"
OPERATIONS = frozenset({CONVERSE, CONVERSE_STREAM, INVOKE, INVOKE_STREAM})
# The key of the result dict that holds the EventStream.
_STREAM_KEYS = {CONVERSE_STREAM: "stream", INVOKE_STREAM: "body"}
_HOOK_PREFIX = "otelbench-bedrock-"


@dataclass(frozen=True, slots=True)
class Config:
    """What the wrapper of one instrumentor shares."""

    telemetry: Telemetry

    @classmethod
    def create(cls, tracer_provider: Any, meter_provider: Any, settings: Settings) -> Config:
        """Config for one instrumentor."""
        return cls(Telemetry(tracer_provider, meter_provider, settings))


@dataclass(slots=True)
class _Call:
    """The Bedrock operation in flight in this context, and the outcome of its last attempt."""

    recorder: LLMRecorder
    operation: str
    kind: str
    sends: int = 0
    status: int | None = None
    error_type: str | None = None
    ended_ns: int = 0  # perf_counter_ns when the last attempt's response was parsed
    ended_wall_ns: int = 0


_CALL: ContextVar[_Call | None] = ContextVar("otelbench_bedrock_call", default=None)


# --- client event hooks (attempts) ---------------------------------------------------------------
def _before_send(**kwargs: Any) -> None:
    """Every HTTP attempt; from the second one on, the previous attempt was a retried failure."""
    call = _CALL.get()
    if call is None:
        return
    try:
        call.sends += 1
        if call.sends > 1:
            # What botocore slept (and re-signed) between the failed response and this send.
            wait = (time.perf_counter_ns() - call.ended_ns) / 1e9 if call.ended_ns else None
            call.recorder.on_retry(
                call.status, call.error_type, wait, timestamp_ns=call.ended_wall_ns or None
            )
    except Exception:
        log.debug("could not record a Bedrock retry", exc_info=True)


def _response_received(
    response_dict: Any = None, parsed_response: Any = None, exception: Any = None, **kwargs: Any
) -> None:
    """The outcome of one HTTP attempt (status and Bedrock error code, or the connection error)."""
    call = _CALL.get()
    if call is None:
        return
    try:
        status = response_dict.get("status_code") if isinstance(response_dict, Mapping) else None
        error = parsed_response.get("Error") if isinstance(parsed_response, Mapping) else None
        code = error.get("Code") if isinstance(error, Mapping) else None
        if exception is not None:
            code = type(exception).__qualname__
        elif not code and isinstance(status, int) and status >= 400:
            code = str(status)
        call.status = status if isinstance(status, int) else None
        call.error_type = code if isinstance(code, str) and code else None
        call.ended_ns = time.perf_counter_ns()
        call.ended_wall_ns = time.time_ns()
    except Exception:
        log.debug("could not read a Bedrock attempt", exc_info=True)


_HOOKS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("before-send", _before_send),
    ("response-received", _response_received),
)
# Emitters that have our hooks; unique_id would also dedupe, but this skips even the call.
_HOOKED: weakref.WeakSet[Any] = weakref.WeakSet()


def _ensure_hooks(client: Any) -> None:
    events = client.meta.events
    if events in _HOOKED:
        return
    # Module-level handlers that read the context: registering them outlives an uninstrument
    # harmlessly (no call in flight means they do nothing), and a re-instrument reuses them.
    for event, handler in _HOOKS:
        events.register(f"{event}.{SERVICE}", handler, unique_id=_HOOK_PREFIX + event)
    _HOOKED.add(events)


# --- the operation ------------------------------------------------------------------------------
def _split(endpoint_url: str) -> Server:
    url = urlsplit(endpoint_url)
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


_server_of = remembered(_split)


def _server(client: Any) -> Server:
    try:
        return _server_of(client.meta.endpoint_url)
    except Exception:
        return None, None


def _start(config: Config, client: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _Call | None:
    """Open a recorder if this is one of the four Bedrock runtime operations; None otherwise."""
    operation = args[0] if args else kwargs.get("operation_name")
    if operation not in OPERATIONS:
        return None
    try:
        if client.meta.service_model.service_name != SERVICE:
            return None
        params = args[1] if len(args) > 1 else kwargs.get("api_params")
        if not isinstance(params, Mapping):
            return None
        model = params.get("modelId")
        model = model if isinstance(model, str) and model else None
        body = None
        if operation in (CONVERSE, CONVERSE_STREAM):
            kind = _extract.FAMILY_OTHER
            attributes = _extract.converse_request_attributes(params)
        else:
            try:
                body = _extract.invoke_body(params)
            except ValueError:
                body = None  # not JSON: Bedrock will say so
            kind = _extract.family(model or "", body)
            attributes = _extract.invoke_request_attributes(kind, body)
        _ensure_hooks(client)
        host, port = _server(client)
        telemetry = config.telemetry
        recorder = telemetry.start_llm(
            operation=semconv.OP_CHAT,
            provider=semconv.PROVIDER_AWS_BEDROCK,
            request_model=model,
            server_address=host,
            server_port=port,
            streaming=operation in _STREAM_KEYS,
            request_attributes=attributes,
        )
        if recorder is None:
            return None
    except Exception:
        log.debug("could not start Bedrock telemetry", exc_info=True)
        return None
    if recorder.capture_content:
        try:
            messages, system = _extract.prompt(kind, params, body, telemetry.settings.content_max_length)
            if messages is not None:
                recorder.set_input_messages(messages)
            if system is not None:
                recorder.span.set_attribute(semconv.GEN_AI_SYSTEM_INSTRUCTIONS, system)
        except Exception:
            log.debug("could not record the Bedrock prompt", exc_info=True)
    return _Call(recorder, operation, kind)


def _error_code(exc: BaseException) -> str | None:
    """botocore's error code (``ThrottlingException``) for a ClientError; None for anything else."""
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    code = error.get("Code") if isinstance(error, Mapping) else None
    return code if isinstance(code, str) and code else None


def _final_attempt(call: _Call) -> None:
    if call.sends > 1:
        call.recorder.on_final_attempt(call.status, call.error_type)


def _on_result(call: _Call, result: Any) -> Any:
    """Record the response; hand back the same dict, its EventStream wrapped in a timing proxy."""
    recorder = call.recorder
    data = None
    if call.operation == INVOKE:
        try:
            data = _take_body(result)
        except BaseException as exc:
            # The application would have met the same error reading the body.
            recorder.fail(exc, _error_code(exc))
            raise
    try:
        _final_attempt(call)
        key = _STREAM_KEYS.get(call.operation)
        if key is not None:
            stream = result.get(key)
            if stream is not None:
                handler = (
                    _extract.ConverseStreamEvents()
                    if call.operation == CONVERSE_STREAM
                    else _extract.InvokeStreamEvents(call.kind)
                )
                # Decoding the event stream costs far more per event than a call: plain handlers.
                result[key] = SyncStreamProxy(stream, recorder, per_chunk(handler))
                return result
        elif call.operation == CONVERSE:
            _extract.on_converse(recorder, result)
        elif data is not None:
            metadata = result.get("ResponseMetadata")
            headers = metadata.get("HTTPHeaders") if isinstance(metadata, Mapping) else None
            _extract.on_invoke(recorder, call.kind, data, headers if isinstance(headers, Mapping) else {})
    except Exception:
        log.debug("could not read the Bedrock result", exc_info=True)
    recorder.end()
    return result


def _take_body(result: Any) -> bytes | None:
    """Read InvokeModel's (small, JSON) body and put an unread ``StreamingBody`` copy back."""
    body = result.get("body") if isinstance(result, Mapping) else None
    read = getattr(body, "read", None)
    if read is None:
        return None
    data = read()
    if not isinstance(data, bytes):
        return None
    from botocore.response import StreamingBody

    result["body"] = StreamingBody(io.BytesIO(data), len(data))
    return data


def make_api_call_wrapper(config: Config) -> Callable[[], Wrapper]:
    """Factory for the wrapper of ``BaseClient._make_api_call``."""

    def wrapper(
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
            try:
                _final_attempt(call)
                code = _error_code(exc)
            except Exception:
                code = None
            recorder.fail(exc, code)
            raise
        finally:
            with suppress_telemetry_errors("reset the Bedrock call context"):
                _CALL.reset(token)
            recorder.deactivate()
        return _on_result(call, result)

    return lambda: wrapper


def patches(config: Config) -> list[Patch]:
    """Every botocore function we wrap; the same list drives instrument and uninstrument."""
    return [Patch("botocore.client", "BaseClient._make_api_call", make_api_call_wrapper(config))]
