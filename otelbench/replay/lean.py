"""``replay --client http``: the providers' wire protocols on a lean HTTP client, no SDK.

Through an SDK, one client process spends milliseconds of CPU per streamed request, so past a
few dozen requests in flight its own event loop delays what it measures (see docs/harness.md).
These adapters send the same request bodies as the SDK adapters (shared builders in
:mod:`adapters`) with :mod:`httpclient`, decode each SSE event or NDJSON line into a light
attribute view, and hand it to *the same* recording code the SDK instrumentation uses: an
:class:`~otelbench_instrumentation.recorder.LLMRecorder` and the provider module's extractor
(content chunks, finish reasons, usage, response id and model). The span, its attributes and
the histograms are therefore the instrumentation's, and the summary still comes from the
exported metrics.

What the SDKs do and these do not: retries (a failed request is reported as failed), SDK-side
validation, proxies, HTTP/2. ``error.type`` of an HTTP error is its status code.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from operator import methodcaller
from typing import Any
from urllib.parse import quote

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otelbench.datasets import Prompt
from otelbench_instrumentation import semconv
from otelbench_instrumentation._config import load_settings
from otelbench_instrumentation.providers.anthropic import _extract as anthropic_extract
from otelbench_instrumentation.providers.ollama import _extract as ollama_extract
from otelbench_instrumentation.providers.openai import _extract as openai_extract
from otelbench_instrumentation.recorder import LLMRecorder, Telemetry
from otelbench_instrumentation.streams import feed_reader

from .adapters import (
    ClientOptions,
    Observation,
    anthropic_request,
    observe_anthropic_event,
    observe_anthropic_message,
    observe_ollama_final,
    observe_ollama_part,
    observe_openai_chunk,
    observe_openai_completion,
    observe_response,
    observe_response_event,
    ollama_request,
    openai_request,
    responses_request,
)
from .httpclient import Endpoint, HTTPConnectError, HTTPStatusError, Pool, read_all
from .options import RESPONSES_SCHEMES, options_for
from .targets import COMPATIBLE, DEFAULT_AZURE_API_VERSION, Target
from .telemetry import CHUNK_TIMING

#: The Messages API version sent to Anthropic (the SDKs send the same).
ANTHROPIC_VERSION = "2023-06-01"
_SSE = b"\n\n"
_NDJSON = b"\n"
#: Prepared requests kept per adapter (see :meth:`LeanAdapter.prepared`).
PREPARED_KEPT = 1024


class _Wire(dict[str, Any]):
    """A decoded JSON object whose fields read as attributes, absent ones as None (as on SDK
    models). None of the fields the readers use is named like a dict method."""

    __slots__ = ()
    __getattr__ = dict.get  # only consulted when normal lookup fails: C speed, no exception


# The fields the readers touch on every item are properties: a failed normal lookup (then
# __getattr__) costs ~0.5 us per read, a property calling dict.get in C ~0.1 us. Others still
# read through __getattr__.
for _name in (
    "choices", "delta", "content", "finish_reason", "usage", "error", "tool_calls", "refusal",
    "id", "model", "type", "text", "message", "done", "stop_reason",
):  # fmt: skip
    setattr(_Wire, _name, property(methodcaller("get", _name)))
del _name

# One decoder (json.loads(..., object_hook) builds one per call), called through its C scanner:
# decode() adds two whitespace matches per item.
_DECODER = json.JSONDecoder(object_hook=_Wire)
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]


def decode(data: bytes) -> Any:
    """JSON with every object readable by attribute (what the extractors and observers expect)."""
    text = data.decode()
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        end = -1
    if end == len(text):
        return value
    return _DECODER.decode(text)  # surrounding blanks, or the error naming what is wrong


def sse_data(event: bytes) -> bytes | None:
    """The ``data`` of one SSE event (its lines joined), None for a comment-only event."""
    if event.startswith(b"data:") and b"\n" not in event:
        return event[5:].strip()
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


class StreamError(Exception):
    """The server reported an error inside a stream (an SSE ``error`` event or an error record)."""


def _typed_event(event: bytes) -> Any:
    """The decoded data of one SSE event whose objects carry a ``type`` (Anthropic's, the
    Responses API's), None for an event without data; an ``error`` one raises StreamError with
    its message (in ``error`` for Anthropic, at the top for the Responses API)."""
    data = sse_data(event)
    if not data:
        return None
    item = decode(data)
    if item.type == "error":
        raise StreamError(_message(item.error or item))
    return item


class LeanAdapter:
    """Shared request flow; subclasses name the path, headers, body and readers of one API."""

    provider: str
    path = ""
    sep = _SSE

    def __init__(
        self,
        target: Target,
        options: ClientOptions,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        # gen_ai.provider.name as the SDK instrumentation would report it (an openai target on an
        # Azure resource is azure.ai.openai): the summary finds the target's metrics by it.
        self.provider = target.provider
        self.endpoint = Endpoint.parse(target.endpoint)
        self.model = target.model
        self.stream = options.stream
        self.extra = options_for(target.scheme, options.request, options.api)
        self.fields = dict(options.body.get(target.scheme, {}))
        self.pool = Pool(self.endpoint, options.timeout, self.headers(target))
        # server.address / server.port: the endpoint just parsed (as Target.host_port would say).
        self.server_address, self.server_port = self.endpoint.host, self.endpoint.port
        # The settings the replay gives the SDK instrumentation (instrumented() in telemetry.py).
        self.telemetry = Telemetry(tracer_provider, meter_provider, load_settings(False, CHUNK_TIMING))
        self._prepared: dict[int, tuple[Prompt, bytes, dict[str, Any]]] = {}

    # -- per API -----------------------------------------------------------------------------
    def headers(self, target: Target) -> dict[str, str]:
        """Headers of every request (credentials included; never logged)."""
        return {}

    def body(self, prompt: Prompt) -> dict[str, Any]:
        """The JSON request body."""
        raise NotImplementedError

    def request_attributes(self, body: dict[str, Any]) -> dict[str, Any]:
        """The span's request attributes, as the SDK instrumentation would set them."""
        return {}

    def stream_reader(self, recorder: LLMRecorder, obs: Observation) -> Callable[[bytes], None]:
        """A reader for one stream's events: records one (called as its bytes are read)."""
        raise NotImplementedError

    #: A whole (non-streamed) response's readers: the client-side view, then the recording.
    observe_whole: Callable[[Observation, Any], None]
    record_whole: Callable[[LLMRecorder, Any], None]

    def read_whole(self, recorder: LLMRecorder, obs: Observation, body: bytes) -> None:
        """Record a whole (non-streamed) response."""
        response = decode(body)
        self.observe_whole(obs, response)
        self.record_whole(recorder, response)

    # -- the flow ----------------------------------------------------------------------------
    def prepared(self, prompt: Prompt) -> tuple[bytes, dict[str, Any]]:
        """The request body's bytes and the span's request attributes for ``prompt``, built once
        per prompt object: a replay cycles through its prompts, and building them cost ~5 % of
        a saturated client's time."""
        key = id(prompt)
        cached = self._prepared.get(key)
        if cached is not None and cached[0] is prompt:  # the entry holds prompt: its id is not reused
            return cached[1], cached[2]
        body = self.body(prompt)
        if self.stream:
            body["stream"] = True
        # As the SDK clients' extra_body: sent, but not read into the span's attributes.
        attributes = self.request_attributes(body)
        body.update(self.fields)
        payload = json.dumps(body, separators=(",", ":")).encode()
        if len(self._prepared) >= PREPARED_KEPT:  # prompts made per request (nonces): start over
            self._prepared.clear()
        self._prepared[key] = (prompt, payload, attributes)
        return payload, attributes

    async def request(self, prompt: Prompt, obs: Observation) -> None:
        """See :class:`~otelbench.replay.adapters.Adapter`."""
        payload, attributes = self.prepared(prompt)
        recorder = self.telemetry.start_llm(
            operation=semconv.OP_CHAT,
            provider=self.provider,
            request_model=self.model,
            server_address=self.server_address,
            server_port=self.server_port,
            streaming=self.stream,
            request_attributes=attributes,
        )
        if recorder is not None:
            recorder.deactivate()  # nothing below opens spans; the tee finds the request span
        try:
            await self._exchange(payload, recorder, obs)
        except HTTPStatusError as exc:
            if recorder is not None:
                recorder.fail(exc, str(exc.status_code))
            raise
        except BaseException as exc:
            if recorder is not None:
                recorder.fail(exc)
            raise
        if recorder is not None:
            recorder.end(end_ns=obs.end_ns)  # when the last item arrived, not when we got to it

    async def _exchange(self, payload: bytes, recorder: LLMRecorder | None, obs: Observation) -> None:
        pool = self.pool
        obs.send()
        conn = await pool.post(
            self.path,
            payload,
            accept="text/event-stream" if self.stream and self.sep == _SSE else "application/json",
            sep=self.sep if self.stream else None,
        )
        try:
            if not 200 <= conn.status < 300:
                raise HTTPStatusError(conn.status, await read_all(conn, limit=4096))
            record = _NULL_RECORDER if recorder is None else recorder
            if not self.stream:
                self.read_whole(record, obs, await read_all(conn))
            else:
                # Chunk times are when each event's bytes were read, not when the loop parsed
                # them; events are handled as they are read (push mode), with one wake-up at the end.
                record.clock = obs.clock = conn.event_time
                conn.deliver(self.stream_reader(record, obs))
                await conn.finished()
            # The response is timed (obs.end_ns) and its deadline no longer applies; ending it
            # and sending the next request wait for a turn with room, so that a wave of them
            # does not starve the sockets.
            conn.disarm()
            await pool.pace()
        finally:
            pool.release(conn)

    async def prepare(self, connections: int) -> None:
        """Open ``connections`` keep-alive connections ahead of a closed-loop measurement."""
        await self.pool.prepare(connections)

    def is_connection_error(self, exc: BaseException) -> bool:
        """See :class:`~otelbench.replay.adapters.Adapter`."""
        return isinstance(exc, HTTPConnectError)

    async def aclose(self) -> None:
        """See :class:`~otelbench.replay.adapters.Adapter`."""
        self.pool.close()


class OpenAILean(LeanAdapter):
    """``POST /chat/completions`` (OpenAI and OpenAI-compatible servers), SSE."""

    path = "/chat/completions"
    observe_whole = staticmethod(observe_openai_completion)
    record_whole = staticmethod(openai_extract.on_chat_completion)

    def __init__(self, target: Target, options: ClientOptions, *providers: Any) -> None:
        super().__init__(target, options, *providers)
        self.max_key = target.max_tokens_key
        self.asks_stream_usage = target.asks_stream_usage

    def headers(self, target: Target) -> dict[str, str]:
        """See :class:`LeanAdapter`."""
        return {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}

    def body(self, prompt: Prompt) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        body = openai_request(prompt, self.model, self.max_key, self.extra)
        if self.stream and self.asks_stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def request_attributes(self, body: dict[str, Any]) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        return openai_extract.request_attributes(body, ("max_completion_tokens", "max_tokens"))

    def stream_reader(self, recorder: LLMRecorder, obs: Observation) -> Callable[[bytes], None]:
        """See :class:`LeanAdapter`."""
        put, take = feed_reader(openai_extract.chat_chunks, recorder)

        def read(event: bytes) -> None:
            data = sse_data(event)
            if not data or data == b"[DONE]":
                return
            chunk = decode(data)
            if chunk.error is not None:
                raise StreamError(_message(chunk.error))
            observe_openai_chunk(obs, chunk)
            put(chunk)
            take()

        return read


class AzureLean(OpenAILean):
    """``POST /openai/deployments/{deployment}/chat/completions?api-version=V`` (Azure OpenAI), SSE."""

    def __init__(self, target: Target, options: ClientOptions, *providers: Any) -> None:
        self.path = (
            f"/openai/deployments/{quote(target.model, safe='')}/chat/completions"
            f"?api-version={quote(target.api_version or DEFAULT_AZURE_API_VERSION, safe='')}"
        )
        super().__init__(target, options, *providers)

    def headers(self, target: Target) -> dict[str, str]:
        """See :class:`LeanAdapter`: the key, else the Entra ID token the SDK would read."""
        if target.api_key:
            return {"api-key": target.api_key}
        token = os.environ.get("AZURE_OPENAI_AD_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}


class ResponsesLean(LeanAdapter):
    """``POST /responses`` (OpenAI's Responses API), SSE events."""

    path = "/responses"
    headers = OpenAILean.headers
    observe_whole = staticmethod(observe_response)
    record_whole = staticmethod(openai_extract.on_response)

    def body(self, prompt: Prompt) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        return responses_request(prompt, self.model, self.extra)

    def request_attributes(self, body: dict[str, Any]) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        return openai_extract.request_attributes(body, ("max_output_tokens",))

    def stream_reader(self, recorder: LLMRecorder, obs: Observation) -> Callable[[bytes], None]:
        """See :class:`LeanAdapter`."""
        record = openai_extract.on_response_event

        def read(event: bytes) -> None:
            item = _typed_event(event)
            if item is None:
                return
            observe_response_event(obs, item)
            record(recorder, item)

        return read


class AzureResponsesLean(ResponsesLean):
    """``POST /openai/responses?api-version=V`` (Azure OpenAI's Responses API; the model is the
    deployment), SSE events."""

    headers = AzureLean.headers

    def __init__(self, target: Target, options: ClientOptions, *providers: Any) -> None:
        self.path = (
            f"/openai/responses?api-version={quote(target.api_version or DEFAULT_AZURE_API_VERSION, safe='')}"
        )
        super().__init__(target, options, *providers)


class AnthropicLean(LeanAdapter):
    """``POST /v1/messages``, SSE."""

    path = "/v1/messages"
    observe_whole = staticmethod(observe_anthropic_message)
    record_whole = staticmethod(anthropic_extract.on_message)

    def headers(self, target: Target) -> dict[str, str]:
        """See :class:`LeanAdapter`."""
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if target.api_key:
            headers["x-api-key"] = target.api_key
        return headers

    def body(self, prompt: Prompt) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        return anthropic_request(prompt, self.model, self.extra)

    def request_attributes(self, body: dict[str, Any]) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        return anthropic_extract.request_attributes(body)

    def stream_reader(self, recorder: LLMRecorder, obs: Observation) -> Callable[[bytes], None]:
        """See :class:`LeanAdapter`."""
        put, take = feed_reader(anthropic_extract.stream_events, recorder)

        def read(event: bytes) -> None:
            item = _typed_event(event)
            if item is None:
                return
            observe_anthropic_event(obs, item)
            put(item)
            take()

        return read


class OllamaLean(LeanAdapter):
    """``POST /api/chat``, NDJSON."""

    path = "/api/chat"
    sep = _NDJSON
    observe_whole = staticmethod(observe_ollama_final)
    record_whole = staticmethod(ollama_extract.on_chat_response)

    def body(self, prompt: Prompt) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        body = ollama_request(prompt, self.model, self.extra)
        body["stream"] = self.stream  # Ollama streams unless told not to
        return body

    def request_attributes(self, body: dict[str, Any]) -> dict[str, Any]:
        """See :class:`LeanAdapter`."""
        return ollama_extract.request_attributes(body)

    def stream_reader(self, recorder: LLMRecorder, obs: Observation) -> Callable[[bytes], None]:
        """See :class:`LeanAdapter`."""
        put, take = feed_reader(ollama_extract.chat_chunks, recorder)

        def read(line: bytes) -> None:
            part = decode(line)
            if part.error is not None:
                raise StreamError(_message(part.error))
            observe_ollama_part(obs, part)
            put(part)
            take()

        return read


def _message(error: Any) -> str:
    if isinstance(error, str):
        return error
    message = getattr(error, "message", None)
    return str(message) if message else "error event in the stream"


class _Discard:
    """A sink whose ``append`` keeps nothing."""

    def __len__(self) -> int:
        return 0

    @staticmethod
    def append(item: Any) -> None:
        """Drop ``item``."""


class _NullRecorder:
    """Stands in when telemetry could not start: the extractors still run, nothing is kept."""

    capture_content = False
    has_response = True
    chunk_times = _Discard()
    fold_at = sys.maxsize

    @staticmethod
    def clock() -> int:
        """No time is kept."""
        return 0

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _ignore


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


_NULL_RECORDER: Any = _NullRecorder()

LEAN_ADAPTERS: dict[str, type[LeanAdapter]] = {
    "openai": OpenAILean,
    "azure": AzureLean,
    "anthropic": AnthropicLean,
    "ollama": OllamaLean,
    **dict.fromkeys(COMPATIBLE, OpenAILean),
}
#: The lean clients of ``--api responses``.
RESPONSES_LEAN_ADAPTERS: dict[str, type[LeanAdapter]] = {
    **dict.fromkeys(RESPONSES_SCHEMES, ResponsesLean),
    "azure": AzureResponsesLean,
}
