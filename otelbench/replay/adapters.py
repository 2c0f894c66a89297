"""One adapter per official SDK: send a prompt, note what the client saw, raise the SDK's errors.

The request bodies and the per-item readers are module functions, shared with the lean HTTP
client's adapters (:mod:`otelbench.replay.lean`, ``replay --client http``).

The adapters never time anything for the summary (the instrumentation does that); they record
the client-side view for the raw log: when each content-bearing chunk arrived (text, tool-call
or thinking deltas; role-only and bookkeeping chunks don't count, as in the instrumentation),
when the last stream item arrived, and the token usage the provider reported.

The end of a request is the arrival of its last stream item, not the moment the ``async for``
loop finishes: the instrumentation stops its clock at the end of the stream and then records
its histograms (one value per chunk gap with ``chunk_timing="each"``, ~10-30 us each) before
the loop sees the end, so a later timestamp would add the instrumentation's own recording
time to the client's duration.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from otelbench.datasets import Prompt
from otelbench_instrumentation.providers.openai._extract import (
    ANSWER_EVENTS,
    FINAL_EVENTS,
    REASONING_EVENTS,
    reasoning_delta,
)

from .options import RESPONSES_SCHEMES, BodyFields, Options, options_for
from .targets import COMPATIBLE, Target, aws_region

#: ``max_tokens`` sent to Anthropic (which requires one) when the prompt names none.
DEFAULT_MAX_TOKENS = 1024
#: Connections per SDK client. httpx's pool scans every connection each time it assigns a
#: request, so one pool of 1 000 costs O(n^2) CPU; above this, requests rotate over several
#: clients.
POOL_SIZE = 50


@dataclass
class Observation:
    """The client-side view of one request."""

    #: When the SDK method was called (after the request arguments were built).
    sent_ns: int = 0
    chunk_ns: list[int] = field(default_factory=list)
    #: When the last item of the response (usage chunk, final event or done record) arrived.
    end_ns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    #: Set when the provider reported a failure inside a 200 response (Responses API's
    #: ``response.failed``): its error code. The runner then counts the request failed.
    error_type: str | None = None
    #: Where chunk and end times are read (the lean client: when the bytes were read).
    clock: Callable[[], int] = time.perf_counter_ns

    def send(self) -> None:
        """The SDK method is being called now."""
        self.sent_ns = time.perf_counter_ns()

    def chunk(self) -> None:
        """A content-bearing chunk arrived now."""
        self.chunk_ns.append(self.clock())

    def seen(self) -> None:
        """Any stream item (content or not) arrived now."""
        self.end_ns = self.clock()

    def done(self) -> None:
        """The whole (non-streamed) response arrived now."""
        self.end_ns = self.clock()


class Adapter(Protocol):
    """Sends prompts through one SDK client."""

    provider: str

    async def request(self, prompt: Prompt, obs: Observation) -> None:
        """Send ``prompt``, consume the reply, fill ``obs``; raise the SDK's exception on failure."""
        ...

    def is_connection_error(self, exc: BaseException) -> bool:
        """True if ``exc`` means the endpoint could not be reached at all."""
        ...

    async def aclose(self) -> None:
        """Close the client and its connections."""
        ...


@dataclass(frozen=True)
class ClientOptions:
    """How the SDK clients are built."""

    connections: int = 100
    stream: bool = True
    #: "sdk": the provider's official SDK; "http": the lean HTTP client (lean.py), no SDK.
    kind: str = "sdk"
    max_retries: int = 2
    timeout: float = 600.0
    #: Request options (temperature, num_ctx, ...); each adapter sends those its SDK accepts.
    request: Options = field(default_factory=dict)
    #: Provider-specific body fields per scheme (``--param SCHEME:FIELD=JSON``), sent as given.
    body: BodyFields = field(default_factory=dict)
    #: OpenAI's API for openai: and azure: targets: "chat" (Chat Completions) or "responses".
    api: str = "chat"

    @property
    def clients(self) -> int:
        """SDK clients to rotate over (each holds at most ~POOL_SIZE busy connections)."""
        return max(1, math.ceil(self.connections / POOL_SIZE))


#: The targets ``--client http`` speaks (Bedrock's requests are SigV4-signed: SDK only).
LEAN_SCHEMES = frozenset({"openai", "azure", "anthropic", "ollama", *COMPATIBLE})


def make_adapter(
    target: Target, options: ClientOptions, tracer_provider: Any = None, meter_provider: Any = None
) -> Adapter:
    """The adapter for ``target``'s SDK (or, with ``options.kind == "http"``, its lean client,
    which records through ``tracer_provider`` / ``meter_provider`` itself)."""
    if options.kind == "http":
        from .lean import LEAN_ADAPTERS, RESPONSES_LEAN_ADAPTERS

        lean = RESPONSES_LEAN_ADAPTERS if options.api == "responses" else {}
        adapter = lean.get(target.scheme) or LEAN_ADAPTERS.get(target.scheme)
        if adapter is None:
            raise ValueError(f"the http client does not speak {target.scheme}")
        return adapter(target, options, tracer_provider, meter_provider)
    if target.scheme == "azure":
        return AzureOpenAIAdapter(target, options)
    if target.sdk == "openai":
        return OpenAIAdapter(target, options)
    if target.scheme == "anthropic":
        return AnthropicAdapter(target, options)
    if target.scheme == "bedrock":
        return BedrockAdapter(target, options)
    return OllamaAdapter(target, options)


def _json_schema(tool: Any) -> dict[str, Any]:
    params = tool.get("parameters")
    return dict(params) if isinstance(params, dict) else {"type": "object", "properties": {}}


def _function_tools(prompt: Prompt) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": _json_schema(t),
            },
        }
        for t in prompt.tools
    ]


# The request bodies and the per-item reading are shared with the lean client (lean.py): the
# SDKs' models and its decoded JSON have the same field names.
def split_by_signature(method: Callable[..., Any], options: Options) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` split into those ``method`` (an SDK's ``create``) names as keyword arguments and
    the rest, for the request body: an SDK release that stops naming an option (anthropic 2.x
    dropped temperature, top_p and top_k) must not turn every request into a TypeError."""
    parameters = inspect.signature(method).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(options), {}
    named = {p.name for p in parameters}
    return {k: v for k, v in options.items() if k in named}, {
        k: v for k, v in options.items() if k not in named
    }


async def exchange(
    obs: Observation,
    create: Callable[..., Awaitable[Any]],
    kwargs: dict[str, Any],
    streaming: dict[str, Any] | None,
    whole: Callable[[Observation, Any], None],
    item: Callable[[Observation, Any], None],
) -> None:
    """One request through an async SDK's ``create(**kwargs)``, read into ``obs``: the whole reply
    by ``whole``, or, with the ``streaming`` arguments, each streamed item by ``item``."""
    obs.send()
    if streaming is None:
        whole(obs, await create(**kwargs))
        return
    stream = await create(**kwargs, **streaming)
    try:
        async for piece in stream:
            item(obs, piece)
    finally:
        await stream.close()  # frees the connection when cancelled mid-stream


def openai_request(prompt: Prompt, model: str, max_key: str, extra: Options) -> dict[str, Any]:
    """Chat Completions arguments (= JSON body) for ``prompt``, without the stream settings."""
    kwargs: dict[str, Any] = {"model": model, "messages": list(prompt.messages), **extra}
    if prompt.max_tokens:
        kwargs[max_key] = prompt.max_tokens
    if prompt.tools:
        kwargs["tools"] = _function_tools(prompt)
    return kwargs


def observe_openai_completion(obs: Observation, response: Any) -> None:
    """A whole (non-streamed) ``ChatCompletion`` arrived now."""
    obs.chunk()  # the whole body arrived at once
    obs.done()
    if response.usage:
        obs.input_tokens = response.usage.prompt_tokens
        obs.output_tokens = response.usage.completion_tokens
    if response.choices:
        obs.finish_reason = response.choices[0].finish_reason


def observe_openai_chunk(obs: Observation, chunk: Any) -> None:
    """One ``ChatCompletionChunk`` arrived now."""
    obs.seen()
    for choice in chunk.choices:
        delta = choice.delta
        if delta is not None and (
            delta.content
            or delta.tool_calls
            or delta.refusal
            # Reasoning text streamed before the answer (DeepSeek, xAI, vLLM, OpenRouter...).
            or reasoning_delta(delta)
        ):
            obs.chunk()
        if choice.finish_reason:
            obs.finish_reason = choice.finish_reason
    if chunk.usage:
        obs.input_tokens = chunk.usage.prompt_tokens
        obs.output_tokens = chunk.usage.completion_tokens


#: The smallest ``max_output_tokens`` the Responses API accepts.
RESPONSES_MIN_OUTPUT_TOKENS = 16
#: Responses-API events that carry output: the instrumentation's answer and reasoning deltas.
RESPONSE_CONTENT_EVENTS = ANSWER_EVENTS | REASONING_EVENTS


def responses_request(prompt: Prompt, model: str, extra: Options) -> dict[str, Any]:
    """Responses API arguments (= JSON body) for ``prompt``, without ``stream``: the messages,
    system ones included, are the input items."""
    kwargs: dict[str, Any] = {"model": model, "input": list(prompt.messages), **extra}
    if prompt.max_tokens:
        kwargs["max_output_tokens"] = prompt.max_tokens
    if prompt.tools:
        kwargs["tools"] = [
            {
                "type": "function",
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": _json_schema(t),
            }
            for t in prompt.tools
        ]
    return kwargs


def _observe_response_end(obs: Observation, response: Any) -> None:
    usage = response.usage
    if usage:
        obs.input_tokens = usage.input_tokens
        obs.output_tokens = usage.output_tokens
    obs.finish_reason = response.status
    if response.status == "failed":
        obs.error_type = getattr(response.error, "code", None) or "failed"


def observe_response(obs: Observation, response: Any) -> None:
    """A whole (non-streamed) Responses-API ``Response`` arrived now."""
    obs.chunk()
    obs.done()
    _observe_response_end(obs, response)


def observe_response_event(obs: Observation, event: Any) -> None:
    """One Responses-API stream event arrived now."""
    obs.seen()
    kind = event.type
    if kind in RESPONSE_CONTENT_EVENTS:
        obs.chunk()
    elif kind in FINAL_EVENTS:
        _observe_response_end(obs, event.response)


def anthropic_request(prompt: Prompt, model: str, extra: Options) -> dict[str, Any]:
    """Messages API arguments (= JSON body) for ``prompt``, without ``stream``."""
    system = "\n\n".join(m["content"] for m in prompt.messages if m["role"] == "system")
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": prompt.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": [m for m in prompt.messages if m["role"] != "system"],
        **extra,
    }
    if system:
        kwargs["system"] = system
    if prompt.tools:
        kwargs["tools"] = [
            {"name": t["name"], "description": t.get("description", ""), "input_schema": _json_schema(t)}
            for t in prompt.tools
        ]
    return kwargs


def observe_anthropic_message(obs: Observation, message: Any) -> None:
    """A whole (non-streamed) ``Message`` arrived now."""
    obs.chunk()
    obs.done()
    obs.input_tokens = message.usage.input_tokens
    obs.output_tokens = message.usage.output_tokens
    obs.finish_reason = message.stop_reason


def observe_anthropic_event(obs: Observation, event: Any) -> None:
    """One stream event arrived now."""
    obs.seen()
    kind = event.type
    if kind == "content_block_delta":
        obs.chunk()
    elif kind == "message_start":
        obs.input_tokens = event.message.usage.input_tokens
    elif kind == "message_delta":
        obs.output_tokens = event.usage.output_tokens
        obs.finish_reason = event.delta.stop_reason


def ollama_request(prompt: Prompt, model: str, extra: Options) -> dict[str, Any]:
    """``/api/chat`` arguments (= JSON body) for ``prompt``, without ``stream``."""
    kwargs: dict[str, Any] = {"model": model, "messages": list(prompt.messages)}
    options = dict(extra)
    if prompt.max_tokens:
        options["num_predict"] = prompt.max_tokens
    if options:
        kwargs["options"] = options
    if prompt.tools:
        kwargs["tools"] = _function_tools(prompt)
    return kwargs


def observe_ollama_final(obs: Observation, response: Any) -> None:
    """A whole (non-streamed) chat response arrived now."""
    obs.chunk()
    obs.done()
    obs.input_tokens = response.prompt_eval_count
    obs.output_tokens = response.eval_count
    obs.finish_reason = response.done_reason


def observe_ollama_part(obs: Observation, part: Any) -> None:
    """One streamed record arrived now."""
    obs.seen()
    message = part.message
    if message.content or message.tool_calls or message.thinking:
        obs.chunk()
    if part.done:
        obs.input_tokens = part.prompt_eval_count
        obs.output_tokens = part.eval_count
        obs.finish_reason = part.done_reason


class OpenAIAdapter:
    """Chat Completions through ``openai.AsyncOpenAI`` (also any OpenAI-compatible server)."""

    provider = "openai"

    def __init__(self, target: Target, options: ClientOptions) -> None:
        # The SDK is imported when a target needs it: all four cost seconds of start-up.
        import openai

        # DEFAULT_CONNECTION_LIMITS' own class, so the limits match whichever httpx the SDK uses.
        # A pool never smaller than the concurrency: requests must not queue inside the client.
        limits = type(openai.DEFAULT_CONNECTION_LIMITS)(
            max_connections=options.connections, max_keepalive_connections=options.connections
        )
        self.clients = [
            self._client(openai, target, options, openai.DefaultAsyncHttpxClient(limits=limits))
            for _ in range(options.clients)
        ]
        # Resolve the lazily built resources now: the first access imports modules (~0.1 s),
        # which must not land inside the first measured request.
        self.completions = itertools.cycle([c.chat.completions for c in self.clients])
        self.responses = (
            itertools.cycle([c.responses for c in self.clients])
            if options.api == "responses" and target.scheme in RESPONSES_SCHEMES
            else None
        )
        self.model = target.model
        self.max_key = target.max_tokens_key
        # The streaming arguments of create() (None: whole replies); only Chat Completions
        # has stream_options.
        usage = {"stream_options": {"include_usage": True}} if target.asks_stream_usage else {}
        chat = {"stream": True, **usage} if self.responses is None else {"stream": True}
        self.streaming: dict[str, Any] | None = chat if options.stream else None
        resource = (
            self.clients[0].responses if self.responses is not None else self.clients[0].chat.completions
        )
        self.extra, body = split_by_signature(
            type(resource).create, options_for(target.scheme, options.request, options.api)
        )
        body.update(options.body.get(target.scheme, {}))
        self.extra_body: dict[str, Any] = {"extra_body": body} if body else {}

    @staticmethod
    def _client(openai: Any, target: Target, options: ClientOptions, http_client: Any) -> Any:
        return openai.AsyncOpenAI(
            base_url=target.base_url,
            api_key=target.api_key,
            max_retries=options.max_retries,
            timeout=options.timeout,
            http_client=http_client,
        )

    async def request(self, prompt: Prompt, obs: Observation) -> None:
        """See :class:`Adapter`."""
        if self.responses is not None:
            await self._respond(prompt, obs, next(self.responses))
            return
        kwargs = openai_request(prompt, self.model, self.max_key, self.extra)
        await exchange(
            obs,
            next(self.completions).create,
            {**kwargs, **self.extra_body},
            self.streaming,
            observe_openai_completion,
            observe_openai_chunk,
        )

    async def _respond(self, prompt: Prompt, obs: Observation, responses: Any) -> None:
        kwargs = {**responses_request(prompt, self.model, self.extra), **self.extra_body}
        await exchange(
            obs, responses.create, kwargs, self.streaming, observe_response, observe_response_event
        )

    def is_connection_error(self, exc: BaseException) -> bool:
        """See :class:`Adapter`."""
        import openai

        return isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)

    async def aclose(self) -> None:
        """See :class:`Adapter`."""
        for client in self.clients:
            await client.close()


class AzureOpenAIAdapter(OpenAIAdapter):
    """Chat Completions through ``openai.AsyncAzureOpenAI``: the model is the deployment."""

    provider = "azure"

    @staticmethod
    def _client(openai: Any, target: Target, options: ClientOptions, http_client: Any) -> Any:
        return openai.AsyncAzureOpenAI(
            azure_endpoint=target.base_url,
            api_key=target.api_key,  # None: the SDK reads AZURE_OPENAI_AD_TOKEN
            api_version=target.api_version,
            max_retries=options.max_retries,
            timeout=options.timeout,
            http_client=http_client,
        )


class AnthropicAdapter:
    """Messages API through ``anthropic.AsyncAnthropic``."""

    provider = "anthropic"

    def __init__(self, target: Target, options: ClientOptions) -> None:
        # The SDK is imported when a target needs it: all four cost seconds of start-up.
        import anthropic

        limits = type(anthropic.DEFAULT_CONNECTION_LIMITS)(
            max_connections=options.connections, max_keepalive_connections=options.connections
        )
        self.clients = [
            anthropic.AsyncAnthropic(
                base_url=target.base_url,
                api_key=target.api_key,
                max_retries=options.max_retries,
                timeout=options.timeout,
                http_client=anthropic.DefaultAsyncHttpxClient(limits=limits),
            )
            for _ in range(options.clients)
        ]
        # Built lazily by the SDK; see OpenAIAdapter.
        self.messages = itertools.cycle([c.messages for c in self.clients])
        self.model = target.model
        self.streaming: dict[str, Any] | None = {"stream": True} if options.stream else None
        self.extra, body = split_by_signature(
            type(self.clients[0].messages).create, options_for("anthropic", options.request)
        )
        body.update(options.body.get("anthropic", {}))
        self.extra_body: dict[str, Any] = {"extra_body": body} if body else {}

    async def request(self, prompt: Prompt, obs: Observation) -> None:
        """See :class:`Adapter`."""
        kwargs = {**anthropic_request(prompt, self.model, self.extra), **self.extra_body}
        await exchange(
            obs,
            next(self.messages).create,
            kwargs,
            self.streaming,
            observe_anthropic_message,
            observe_anthropic_event,
        )

    def is_connection_error(self, exc: BaseException) -> bool:
        """See :class:`Adapter`."""
        import anthropic

        return isinstance(exc, anthropic.APIConnectionError) and not isinstance(
            exc, anthropic.APITimeoutError
        )

    async def aclose(self) -> None:
        """See :class:`Adapter`."""
        for client in self.clients:
            await client.close()


class OllamaAdapter:
    """``/api/chat`` through ``ollama.AsyncClient`` (no SDK retries: Ollama's client has none)."""

    provider = "ollama"

    def __init__(self, target: Target, options: ClientOptions) -> None:
        # The SDK is imported when a target needs it: all four cost seconds of start-up.
        import httpx
        import ollama

        # The Ollama client passes extra keyword arguments to its httpx.AsyncClient.
        self.clients = [
            ollama.AsyncClient(
                host=target.base_url,
                timeout=options.timeout,
                limits=httpx.Limits(
                    max_connections=options.connections, max_keepalive_connections=options.connections
                ),
            )
            for _ in range(options.clients)
        ]
        self._next = itertools.cycle(self.clients)
        self.model = target.model
        self.stream = options.stream
        self.extra = options_for("ollama", options.request)
        self.fields = dict(options.body.get("ollama", {}))  # think, format, keep_alive

    async def request(self, prompt: Prompt, obs: Observation) -> None:
        """See :class:`Adapter`."""
        kwargs = {**ollama_request(prompt, self.model, self.extra), **self.fields}
        client = next(self._next)
        obs.send()
        if not self.stream:
            observe_ollama_final(obs, await client.chat(**kwargs, stream=False))
            return
        parts = await client.chat(**kwargs, stream=True)
        try:
            async for part in parts:
                observe_ollama_part(obs, part)
        finally:
            # An async generator (behind the instrumentation's proxy): close it if cut short.
            closer = getattr(parts, "aclose", None)
            if closer is not None:
                await closer()

    def is_connection_error(self, exc: BaseException) -> bool:
        """See :class:`Adapter`."""
        import httpx

        # The SDK turns httpx.ConnectError into the built-in ConnectionError.
        return isinstance(exc, ConnectionError | httpx.ConnectError)

    async def aclose(self) -> None:
        """See :class:`Adapter`."""
        for client in self.clients:
            await client.close()  # type: ignore[no-untyped-call]


class BedrockAdapter:
    """The Converse API through a boto3 ``bedrock-runtime`` client, on a bounded thread pool.

    boto3 is synchronous: each request (the call and, when streaming, the whole EventStream) runs
    in one worker thread of a pool as large as the concurrency, so requests never queue for a
    thread; the context is copied in, so the instrumentation's span keeps the harness's span as
    its parent. botocore retries in its ``standard`` mode with ``max_retries`` retries.
    """

    provider = "bedrock"

    def __init__(self, target: Target, options: ClientOptions) -> None:
        # The SDK is imported when a target needs it: all four cost seconds of start-up.
        import boto3
        import botocore.config

        config = botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": options.max_retries + 1},
            max_pool_connections=options.connections,
            read_timeout=options.timeout,
            connect_timeout=min(options.timeout, 60.0),
        )
        # Against the embedded mock, dummy credentials; elsewhere the standard AWS chain.
        credentials = {"aws_access_key_id": "mock", "aws_secret_access_key": "mock"} if target.is_mock else {}
        self.client = boto3.session.Session().client(
            "bedrock-runtime",
            endpoint_url=target.base_url,
            region_name=aws_region(os.environ),
            config=config,
            **credentials,
        )
        self.executor = ThreadPoolExecutor(max_workers=options.connections, thread_name_prefix="bedrock")
        self.model = target.model
        self.stream = options.stream
        extra = options_for("bedrock", options.request)
        self.inference: dict[str, Any] = {
            {"top_p": "topP"}.get(key, key): value for key, value in extra.items()
        }
        # The model's own parameters (reasoning_config, top_k...) travel in Converse's
        # additionalModelRequestFields.
        self.model_fields = dict(options.body.get("bedrock", {}))

    async def request(self, prompt: Prompt, obs: Observation) -> None:
        """See :class:`Adapter`."""
        system = [{"text": m["content"]} for m in prompt.messages if m["role"] == "system"]
        kwargs: dict[str, Any] = {
            "modelId": self.model,
            "messages": [
                {"role": m["role"], "content": [{"text": m["content"]}]}
                for m in prompt.messages
                if m["role"] != "system"
            ],
        }
        inference = dict(self.inference)
        if prompt.max_tokens:
            inference["maxTokens"] = prompt.max_tokens
        if inference:
            kwargs["inferenceConfig"] = inference
        if system:
            kwargs["system"] = system
        if self.model_fields:
            kwargs["additionalModelRequestFields"] = self.model_fields
        if prompt.tools:
            kwargs["toolConfig"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": t["name"],
                            "description": t.get("description") or t["name"],
                            "inputSchema": {"json": _json_schema(t)},
                        }
                    }
                    for t in prompt.tools
                ]
            }
        stop = threading.Event()
        context = contextvars.copy_context()
        future = asyncio.get_running_loop().run_in_executor(
            self.executor, context.run, self._call, kwargs, obs, stop
        )
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()  # the worker closes the stream at its next event
            raise

    def _call(self, kwargs: dict[str, Any], obs: Observation, stop: threading.Event) -> None:
        obs.send()
        if not self.stream:
            result = self.client.converse(**kwargs)
            obs.chunk()
            obs.done()
            self._usage(obs, result.get("usage"))
            obs.finish_reason = result.get("stopReason")
            return
        stream = self.client.converse_stream(**kwargs)["stream"]
        try:
            for event in stream:
                obs.seen()
                if "contentBlockDelta" in event:
                    obs.chunk()
                elif "messageStop" in event:
                    obs.finish_reason = event["messageStop"].get("stopReason")
                elif "metadata" in event:
                    self._usage(obs, event["metadata"].get("usage"))
                if stop.is_set():
                    break
        finally:
            stream.close()  # frees the connection when cut short

    @staticmethod
    def _usage(obs: Observation, usage: Any) -> None:
        if isinstance(usage, dict):
            cached = (usage.get("cacheReadInputTokens") or 0) + (usage.get("cacheWriteInputTokens") or 0)
            obs.input_tokens = usage.get("inputTokens", 0) + cached
            obs.output_tokens = usage.get("outputTokens")

    def is_connection_error(self, exc: BaseException) -> bool:
        """See :class:`Adapter`."""
        import botocore.exceptions

        return isinstance(exc, botocore.exceptions.EndpointConnectionError)

    async def aclose(self) -> None:
        """See :class:`Adapter`."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.client.close()
