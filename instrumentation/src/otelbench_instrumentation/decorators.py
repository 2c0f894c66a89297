"""Decorators that make an application's own LLM calls, caches and routers visible.

Usage::

    from otelbench_instrumentation.decorators import Route, Usage, cached, llm_call, routed

    @llm_call("my-gateway", usage=lambda r: Usage(input_tokens=r["in"], output_tokens=r["out"]))
    def complete(prompt: str, model: str) -> dict: ...

    @cached(my_lru, name="prompt")
    def answer(prompt: str) -> str: ...

    @routed([Route("primary", model="gpt-a"), Route("backup", model="gpt-b")], name="chat")
    def ask(prompt: str, *, route: Route) -> str: ...

Each decorator works on plain functions, coroutine functions, generator functions and async
generator functions (the wrapper is of the same kind, so decorators stack, e.g. with tenacity's
``@retry``). While the decorated code runs, the decorator's span is the current span, so spans of
the calls it makes (an instrumented SDK call, a retry) nest under it. Telemetry goes to the global
tracer/meter providers unless ``tracer_provider=``/``meter_provider=`` are given; the providers are
resolved at the first call, so decorating at import time before the SDK is configured is fine.

What the decorated code observes never changes: arguments, return values, yielded items and
exceptions pass through untouched (a cache hit returns the stored value, which is the point of
``cached``; a router tries routes in order, which is the point of ``routed``). Telemetry failures
are logged at debug level and swallowed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from . import semconv
from ._config import load_settings
from .recorder import LLMRecorder, Telemetry, suppress_telemetry_errors
from .resilience import _telemetry as tm

__all__ = ["Route", "Usage", "cached", "llm_call", "routed"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
_UNSET: Any = object()


# --- shared machinery --------------------------------------------------------------------------
class _Lazy(Generic[T]):
    """Build a value at first use (so providers set after decoration are honoured)."""

    __slots__ = ("_factory", "_value")

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    def get(self) -> T:
        value = self._value
        if value is None:
            value = self._value = self._factory()
        return value


def _kind(fn: Callable[..., Any]) -> str:
    if inspect.isasyncgenfunction(fn):
        return "async_gen"
    if inspect.isgeneratorfunction(fn):
        return "gen"
    if inspect.iscoroutinefunction(fn):
        return "async"
    return "sync"


def _start_span(
    tracer: trace.Tracer,
    name: str,
    attributes: Mapping[str, AttributeValue],
    parent: Span | None = None,
) -> Span:
    try:
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(name, context=ctx, kind=SpanKind.INTERNAL, attributes=attributes)
    except Exception:
        log.debug("could not start span %s", name, exc_info=True)
        return trace.INVALID_SPAN


def _end_span(span: Span, attributes: Mapping[str, AttributeValue], exc: BaseException | None) -> None:
    with suppress_telemetry_errors("end span"):
        if exc is not None:
            attributes = {**attributes, semconv.ERROR_TYPE: tm.error_type(exc)}
            # The class only: an exception message may echo a prompt.
            span.set_status(Status(StatusCode.ERROR, tm.error_type(exc)))
        if attributes:
            span.set_attributes(attributes)
    with suppress_telemetry_errors("end span"):
        span.end()


def _attach(span: Span) -> object | None:
    try:
        return otel_context.attach(trace.set_span_in_context(span))
    except Exception:
        log.debug("could not make a span current", exc_info=True)
        return None


def _detach(token: object | None) -> None:
    if token is not None:
        with suppress_telemetry_errors("detach context"):
            otel_context.detach(token)  # type: ignore[arg-type]


@contextmanager
def _current(span: Span) -> Iterator[None]:
    """Make ``span`` current for the block (the block's own exceptions pass through)."""
    token = _attach(span)
    try:
        yield
    finally:
        _detach(token)


class _StreamHooks:
    """What a decorator does with each item and at the end of a stream; hooks never raise."""

    def item(self, item: Any) -> None:
        """An item is about to reach the consumer."""

    def done(self) -> None:
        """The stream was exhausted."""

    def error(self, exc: BaseException) -> None:
        """The stream raised."""

    def closed(self) -> None:
        """The consumer closed (or abandoned) the stream before its end."""


def _safe(what: str, hook: Callable[..., None], *args: Any) -> None:
    with suppress_telemetry_errors(what):
        hook(*args)


@dataclass(slots=True)
class _Stream:
    """A generator to drive, the span current while it runs, and what to do with its items."""

    inner: Any  # Generator or AsyncGenerator
    span: Span
    hooks: _StreamHooks
    first: Any = _UNSET  # an item already taken from ``inner`` (a router's committed route)
    # Application work at exhaustion (storing a cache entry): not telemetry, so its errors propagate.
    on_complete: Callable[[Any], None] | None = None


def _untraced(inner: Any) -> _Stream:
    return _Stream(inner, trace.INVALID_SPAN, _StreamHooks())


def _complete(stream: _Stream, result: Any) -> None:
    if stream.on_complete is not None:
        try:
            stream.on_complete(result)
        except BaseException as exc:
            _safe("stream error", stream.hooks.error, exc)
            raise
    _safe("stream end", stream.hooks.done)


def _gen_wrapper(
    fn: Callable[..., Any], begin: Callable[[tuple[Any, ...], dict[str, Any]], _Stream]
) -> Callable[..., Generator[Any, Any, Any]]:
    """A generator function like ``fn`` that delegates to the stream ``begin`` returns, as
    ``yield from`` would (send, throw, close), with the stream's span current only while the
    inner generator runs, never while the consumer does."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        stream = begin(args, kwargs)  # runs at the first next(): the stream's work starts there
        inner, span, hooks = stream.inner, stream.span, stream.hooks
        send_value: Any = None
        throw_exc: BaseException | None = None
        item = stream.first
        while True:
            if item is _UNSET:
                token = _attach(span)
                try:
                    if throw_exc is not None:
                        exc, throw_exc = throw_exc, None
                        item = inner.throw(exc)
                    else:
                        item = inner.send(send_value)
                except StopIteration as stop:
                    _complete(stream, stop.value)
                    return stop.value
                except BaseException as exc:
                    _safe("stream error", hooks.error, exc)
                    raise
                finally:
                    _detach(token)
            _safe("stream item", hooks.item, item)
            try:
                send_value = yield item
            except GeneratorExit:
                try:
                    with _current(span):
                        inner.close()
                finally:
                    _safe("stream close", hooks.closed)
                raise
            except BaseException as exc:
                throw_exc = exc
                send_value = None
            item = _UNSET

    return wrapper


def _agen_wrapper(
    fn: Callable[..., Any], begin: Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[_Stream]]
) -> Callable[..., AsyncGenerator[Any, Any]]:
    """The async twin of :func:`_gen_wrapper` (asend, athrow, aclose)."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        stream = await begin(args, kwargs)
        inner, span, hooks = stream.inner, stream.span, stream.hooks
        send_value: Any = None
        throw_exc: BaseException | None = None
        item = stream.first
        while True:
            if item is _UNSET:
                token = _attach(span)
                try:
                    if throw_exc is not None:
                        exc, throw_exc = throw_exc, None
                        item = await inner.athrow(exc)
                    else:
                        item = await inner.asend(send_value)
                except StopAsyncIteration:
                    _complete(stream, None)
                    return
                except BaseException as exc:
                    # asyncio.CancelledError included: a cancelled stream ends as failed.
                    _safe("stream error", hooks.error, exc)
                    raise
                finally:
                    _detach(token)
            _safe("stream item", hooks.item, item)
            try:
                send_value = yield item
            except GeneratorExit:
                try:
                    with _current(span):
                        await inner.aclose()
                finally:
                    _safe("stream close", hooks.closed)
                raise
            except BaseException as exc:
                throw_exc = exc
                send_value = None
            item = _UNSET

    return wrapper


def _bind(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    if signature is None:
        return dict(kwargs)
    try:
        return dict(signature.bind_partial(*args, **kwargs).arguments)
    except TypeError:
        return dict(kwargs)


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


# --- llm_call ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Usage:
    """What a usage extractor reports about one response (or stream item); None = unknown."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: Sequence[str] | None = None


def _apply_usage(recorder: LLMRecorder, extractor: Callable[[Any], Usage | None] | None, value: Any) -> None:
    if extractor is None:
        return
    with suppress_telemetry_errors("usage extractor"):
        info = extractor(value)
        if info is None:
            return
        recorder.on_usage(
            input_tokens=info.input_tokens,
            output_tokens=info.output_tokens,
            cache_read_input_tokens=info.cache_read_input_tokens,
            cache_creation_input_tokens=info.cache_creation_input_tokens,
            reasoning_output_tokens=info.reasoning_output_tokens,
        )
        if info.response_model or info.response_id or info.finish_reasons:
            recorder.set_response(
                response_id=info.response_id,
                model=info.response_model,
                finish_reasons=list(info.finish_reasons) if info.finish_reasons else None,
            )


class _LLMStreamHooks(_StreamHooks):
    __slots__ = ("extractor", "is_content", "is_reasoning", "recorder")

    def __init__(
        self,
        recorder: LLMRecorder,
        extractor: Callable[[Any], Usage | None] | None,
        is_content: Callable[[Any], bool] | None,
        is_reasoning: Callable[[Any], bool] | None,
    ) -> None:
        self.recorder = recorder
        self.extractor = extractor
        self.is_content = is_content
        self.is_reasoning = is_reasoning

    def item(self, item: Any) -> None:
        if self.is_reasoning is not None and self.is_reasoning(item):
            self.recorder.on_reasoning_chunk()
        elif self.is_content is None or self.is_content(item):
            self.recorder.on_chunk()
        _apply_usage(self.recorder, self.extractor, item)

    def done(self) -> None:
        self.recorder.end()

    def error(self, exc: BaseException) -> None:
        self.recorder.fail(exc)

    def closed(self) -> None:
        self.recorder.end(closed_early=True)


def llm_call(
    provider: str,
    *,
    model: str | None = None,
    model_param: str = "model",
    operation: str = semconv.OP_CHAT,
    usage: Callable[[Any], Usage | None] | None = None,
    is_content: Callable[[Any], bool] | None = None,
    is_reasoning: Callable[[Any], bool] | None = None,
    request_attributes: Callable[[Mapping[str, Any]], Mapping[str, AttributeValue]] | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Callable[[F], F]:
    """Make each call of a custom client function a GenAI span with the built-in providers' metrics.

    ``provider`` becomes ``gen_ai.provider.name``; the request model is ``model`` or else the
    decorated function's ``model_param`` argument. ``usage`` turns the return value (or, for
    a generator function, each yielded item) into :class:`Usage`. A generator function is a
    stream: every item (or every one ``is_content`` accepts) is a chunk, the first sets TTFT;
    items ``is_reasoning`` accepts are a thinking model's reasoning chunks, before its answer.
    ``request_attributes`` maps the bound arguments to extra span attributes (no content!).
    """

    def decorate(fn: F) -> F:
        kind = _kind(fn)
        signature = _signature(fn)
        telemetry = _Lazy(lambda: Telemetry(tracer_provider, meter_provider, load_settings(False)))

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> LLMRecorder | None:
            try:
                bound = _bind(signature, args, kwargs) if model is None or request_attributes else {}
                request_model = model if model is not None else bound.get(model_param)
                return telemetry.get().start_llm(
                    operation=operation,
                    provider=provider,
                    request_model=request_model if isinstance(request_model, str) else None,
                    server_address=server_address,
                    server_port=server_port,
                    streaming=kind in ("gen", "async_gen"),
                    request_attributes=request_attributes(bound) if request_attributes else None,
                )
            except Exception:
                log.debug("could not start llm_call telemetry", exc_info=True)
                return None

        def finish(recorder: LLMRecorder, result: Any) -> None:
            _apply_usage(recorder, usage, result)
            recorder.end()

        def begin_stream(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Stream:
            inner = fn(*args, **kwargs)
            recorder = start(args, kwargs)
            if recorder is None:
                return _untraced(inner)
            # Current only while the generator runs (see _gen_wrapper), not between items.
            recorder.deactivate()
            return _Stream(inner, recorder.span, _LLMStreamHooks(recorder, usage, is_content, is_reasoning))

        async def abegin_stream(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Stream:
            return begin_stream(args, kwargs)

        if kind == "gen":
            return cast(F, _gen_wrapper(fn, begin_stream))
        if kind == "async_gen":
            return cast(F, _agen_wrapper(fn, abegin_stream))
        if kind == "async":

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                recorder = start(args, kwargs)
                if recorder is None:
                    return await fn(*args, **kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    recorder.fail(exc)
                    raise
                finally:
                    recorder.deactivate()
                finish(recorder, result)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            recorder = start(args, kwargs)
            if recorder is None:
                return fn(*args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                recorder.fail(exc)
                raise
            finally:
                recorder.deactivate()
            finish(recorder, result)
            return result

        return cast(F, sync_wrapper)

    return decorate


# --- cached --------------------------------------------------------------------------------------
class CacheStore(Protocol):
    """What ``cached`` needs of a cache: ``dict``, an OrderedDict LRU, cachetools caches ..."""

    def get(self, key: Any, default: Any, /) -> Any:
        """The value stored under ``key``, or ``default``."""

    def __setitem__(self, key: Any, value: Any, /) -> None:
        """Store ``value`` under ``key``."""


@dataclass(frozen=True, slots=True)
class _StoredStream:
    """What ``cached`` stores for a generator function: its items and its return value."""

    items: tuple[Any, ...]
    result: Any = None


_MISS: Any = object()
_UNCACHEABLE: Any = object()


def _default_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    key: Any = args[0] if len(args) == 1 and not kwargs else (args, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:
        return _UNCACHEABLE  # unhashable arguments: call through, as without the decorator
    return key


def key_hash(key: Any) -> str:
    """The ``otelbench.cache.key.hash`` of a key: 16 hex digits of its SHA-256, never the key."""
    if isinstance(key, bytes):
        data = key
    elif isinstance(key, str):
        data = key.encode("utf-8", "surrogatepass")
    else:
        data = repr(key).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:16]


class _CacheTelemetry:
    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
        self.tracer = tm.get_tracer(tracer_provider)
        meter = tm.get_meter(meter_provider)
        self.lookups = tm.counter(
            meter, semconv.METRIC_CACHE_LOOKUPS, semconv.UNIT_LOOKUPS, semconv.DESCRIPTION_CACHE_LOOKUPS
        )
        self.duration = tm.histogram(
            meter,
            semconv.METRIC_CACHE_LOOKUP_DURATION,
            semconv.UNIT_SECONDS,
            semconv.DESCRIPTION_CACHE_LOOKUP_DURATION,
            semconv.BUCKETS_CACHE_LOOKUP,
        )


class _CacheCall(_StreamHooks):
    """Telemetry of one call of a ``cached`` function: its span and the lookup result."""

    __slots__ = ("attrs", "key", "name", "span", "telemetry")

    def __init__(self, telemetry: _CacheTelemetry, name: str, key: Any, hash_keys: bool) -> None:
        self.telemetry = telemetry
        self.name = name
        self.key = key
        self.attrs: dict[str, AttributeValue] = {semconv.CACHE_NAME: name}
        if hash_keys:
            with suppress_telemetry_errors("cache key hash"):
                self.attrs[semconv.CACHE_KEY_HASH] = key_hash(key)
        self.span = _start_span(telemetry.tracer, f"{semconv.SPAN_CACHE} {name}", self.attrs)

    def lookup(self, store: CacheStore) -> Any:
        """``store.get(key)``, timed; the store's own exceptions end the span and propagate."""
        start = time.perf_counter_ns()
        try:
            value = store.get(self.key, _MISS)
        except BaseException as exc:
            _end_span(self.span, {}, exc)
            raise
        elapsed = (time.perf_counter_ns() - start) / 1e9
        with suppress_telemetry_errors("cache lookup"):
            result = semconv.CACHE_RESULT_MISS if value is _MISS else semconv.CACHE_RESULT_HIT
            metric_attrs = {semconv.CACHE_NAME: self.name, semconv.CACHE_RESULT: result}
            tm.add(self.telemetry.lookups, 1, metric_attrs)
            tm.record(self.telemetry.duration, elapsed, metric_attrs)
            self.attrs = {semconv.CACHE_RESULT: result, semconv.CACHE_LOOKUP_TIME: elapsed}
        return value

    def end(self, exc: BaseException | None = None) -> None:
        _end_span(self.span, self.attrs, exc)

    # Stream hooks of a hit (the replay of stored items).
    def done(self) -> None:
        self.end()

    def error(self, exc: BaseException) -> None:
        self.end(exc)

    def closed(self) -> None:
        self.end()


def _replay(stored: _StoredStream) -> Generator[Any, Any, Any]:
    yield from stored.items
    return stored.result


async def _areplay(stored: _StoredStream) -> AsyncGenerator[Any, Any]:
    for item in stored.items:
        yield item


def cached(
    store: CacheStore,
    *,
    name: str = "default",
    key: Callable[..., Any] | None = None,
    hash_keys: bool = True,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Callable[[F], F]:
    """Memoize a function in ``store`` and record every lookup: hit or miss, latency, key hash.

    ``key(*args, **kwargs)`` gives the cache key (default: the only positional argument, else
    all arguments; unhashable arguments bypass the cache). The span ``cache {name}`` covers the
    lookup and, on a miss, the call that fills the cache, so its LLM span nests under it. The key
    itself is never recorded: only 16 hex digits of its SHA-256 (``hash_keys=False``: not even
    that; a short, guessable prompt can be recovered from its hash by trying candidates).
    Coroutine results are stored once awaited; a generator's items once it is exhausted (a
    stream the consumer stops early is not stored), and a hit replays them.
    """

    def decorate(fn: F) -> F:
        kind = _kind(fn)
        telemetry = _Lazy(lambda: _CacheTelemetry(tracer_provider, meter_provider))

        def make_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return key(*args, **kwargs) if key is not None else _default_key(args, kwargs)

        def open_call(cache_key: Any) -> _CacheCall | None:
            try:
                return _CacheCall(telemetry.get(), name, cache_key, hash_keys)
            except Exception:
                log.debug("could not start cache telemetry", exc_info=True)
                return None

        def plain_lookup(cache_key: Any) -> Any:
            return store.get(cache_key, _MISS)

        if kind in ("gen", "async_gen"):
            is_async = kind == "async_gen"

            def begin_stream(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Stream:
                cache_key = make_key(args, kwargs)
                if cache_key is _UNCACHEABLE:
                    return _untraced(fn(*args, **kwargs))
                call = open_call(cache_key)
                stored = call.lookup(store) if call is not None else plain_lookup(cache_key)
                if isinstance(stored, _StoredStream):
                    inner = _areplay(stored) if is_async else _replay(stored)
                    return _Stream(inner, call.span, call) if call is not None else _untraced(inner)
                filler = _StreamFiller(store, cache_key, call)
                inner = fn(*args, **kwargs)
                span = call.span if call is not None else trace.INVALID_SPAN
                return _Stream(inner, span, filler, on_complete=filler.complete)

            async def abegin_stream(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Stream:
                return begin_stream(args, kwargs)

            if is_async:
                return cast(F, _agen_wrapper(fn, abegin_stream))
            return cast(F, _gen_wrapper(fn, begin_stream))

        if kind == "async":

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                cache_key = make_key(args, kwargs)
                if cache_key is _UNCACHEABLE:
                    return await fn(*args, **kwargs)
                call = open_call(cache_key)
                if call is None:
                    value = plain_lookup(cache_key)
                    if value is _MISS:
                        value = await fn(*args, **kwargs)
                        store[cache_key] = value
                    return value
                value = call.lookup(store)
                if value is not _MISS:
                    call.end()
                    return value
                try:
                    with _current(call.span):
                        value = await fn(*args, **kwargs)
                    store[cache_key] = value
                except BaseException as exc:
                    call.end(exc)
                    raise
                call.end()
                return value

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            cache_key = make_key(args, kwargs)
            if cache_key is _UNCACHEABLE:
                return fn(*args, **kwargs)
            call = open_call(cache_key)
            if call is None:
                value = plain_lookup(cache_key)
                if value is _MISS:
                    value = fn(*args, **kwargs)
                    store[cache_key] = value
                return value
            value = call.lookup(store)
            if value is not _MISS:
                call.end()
                return value
            try:
                with _current(call.span):
                    value = fn(*args, **kwargs)
                store[cache_key] = value
            except BaseException as exc:
                call.end(exc)
                raise
            call.end()
            return value

        return cast(F, sync_wrapper)

    return decorate


class _StreamFiller(_StreamHooks):
    """A cache miss on a generator: collect the items, store them once the stream completes."""

    __slots__ = ("cache_key", "call", "items", "store")

    def __init__(self, store: CacheStore, cache_key: Any, call: _CacheCall | None) -> None:
        self.store = store
        self.cache_key = cache_key
        self.call = call
        self.items: list[Any] = []

    def item(self, item: Any) -> None:
        self.items.append(item)

    def complete(self, result: Any) -> None:
        """Store the finished stream (an incomplete one never is)."""
        self.store[self.cache_key] = _StoredStream(tuple(self.items), result)

    def done(self) -> None:
        if self.call is not None:
            self.call.end()

    def error(self, exc: BaseException) -> None:
        if self.call is not None:
            self.call.end(exc)

    def closed(self) -> None:
        if self.call is not None:
            self.call.end()


# --- routed --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Route:
    """One destination a router can send a request to (``model``/``provider`` are recorded)."""

    name: str
    model: str | None = None
    provider: str | None = None


RouteLike = Route | str


def _route_name(route: RouteLike) -> str:
    return route.name if isinstance(route, Route) else str(route)


class _RouterTelemetry:
    def __init__(self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
        self.tracer = tm.get_tracer(tracer_provider)
        meter = tm.get_meter(meter_provider)
        self.requests = tm.counter(
            meter, semconv.METRIC_ROUTER_REQUESTS, semconv.UNIT_REQUESTS, semconv.DESCRIPTION_ROUTER_REQUESTS
        )
        self.route_attempts = tm.counter(
            meter,
            semconv.METRIC_ROUTER_ROUTE_ATTEMPTS,
            semconv.UNIT_ATTEMPTS,
            semconv.DESCRIPTION_ROUTER_ROUTE_ATTEMPTS,
        )


class _RouterCall:
    """Telemetry of one routed request: the router span and one child span per route tried."""

    __slots__ = ("name", "span", "strategy", "telemetry", "tried")

    def __init__(
        self, telemetry: _RouterTelemetry, name: str, strategy: str, routes: Sequence[RouteLike]
    ) -> None:
        self.telemetry = telemetry
        self.name = name
        self.strategy = strategy
        self.tried: list[str] = []
        attrs: dict[str, AttributeValue] = {
            semconv.ROUTER_NAME: name,
            semconv.ROUTER_STRATEGY: strategy,
            semconv.ROUTER_CHOSEN_ROUTE: _route_name(routes[0]),
        }
        self.span = _start_span(telemetry.tracer, f"{semconv.SPAN_ROUTER} {name}", attrs)

    def start_route(self, index: int, route: RouteLike) -> Span:
        """Open the span of one route attempt (a child of the router span)."""
        route_name = _route_name(route)
        self.tried.append(route_name)
        attrs: dict[str, AttributeValue] = {
            semconv.ROUTER_NAME: self.name,
            semconv.ROUTER_ROUTE: route_name,
            semconv.ROUTER_ROUTE_INDEX: index,
        }
        if isinstance(route, Route):
            if route.model:
                attrs[semconv.ROUTER_ROUTE_MODEL] = route.model
            if route.provider:
                attrs[semconv.ROUTER_ROUTE_PROVIDER] = route.provider
        return _start_span(self.telemetry.tracer, f"{semconv.SPAN_ROUTE} {route_name}", attrs, self.span)

    def end_route(self, span: Span, route: RouteLike, outcome: str, exc: BaseException | None) -> None:
        """Close a route attempt with its outcome (success, fallback, error)."""
        with suppress_telemetry_errors("route attempt"):
            metric_attrs: dict[str, Any] = {
                semconv.ROUTER_NAME: self.name,
                semconv.ROUTER_ROUTE: _route_name(route),
                semconv.ROUTER_ROUTE_OUTCOME: outcome,
            }
            if exc is not None:
                metric_attrs[semconv.ERROR_TYPE] = tm.error_type(exc)
            tm.add(self.telemetry.route_attempts, 1, metric_attrs)
        _end_span(span, {semconv.ROUTER_ROUTE_OUTCOME: outcome}, exc)

    def finish(self, outcome: str, final: RouteLike | None, exc: BaseException | None) -> None:
        """Close the router span: routes tried in order, final route, outcome."""
        attrs: dict[str, AttributeValue] = {
            semconv.ROUTER_OUTCOME: outcome,
            semconv.ROUTER_ROUTES_TRIED: list(self.tried),
            semconv.ROUTER_FALLBACK_COUNT: max(0, len(self.tried) - 1),
        }
        metric_attrs: dict[str, Any] = {
            semconv.ROUTER_NAME: self.name,
            semconv.ROUTER_STRATEGY: self.strategy,
            semconv.ROUTER_OUTCOME: outcome,
        }
        if final is not None:
            attrs[semconv.ROUTER_FINAL_ROUTE] = metric_attrs[semconv.ROUTER_FINAL_ROUTE] = _route_name(final)
        if exc is not None:
            metric_attrs[semconv.ERROR_TYPE] = tm.error_type(exc)
        tm.add(self.telemetry.requests, 1, metric_attrs)
        _end_span(self.span, attrs, exc)


class _NoRouterCall(_RouterCall):
    """Stands in when telemetry could not start: same calls, nothing recorded."""

    def __init__(self) -> None:
        self.tried = []

    def start_route(self, index: int, route: RouteLike) -> Span:
        return trace.INVALID_SPAN

    def end_route(self, span: Span, route: RouteLike, outcome: str, exc: BaseException | None) -> None:
        return None

    def finish(self, outcome: str, final: RouteLike | None, exc: BaseException | None) -> None:
        return None


class _RouteStreamHooks(_StreamHooks):
    """The committed route of a routed generator: ends both spans with the stream."""

    __slots__ = ("call", "route", "span")

    def __init__(self, call: _RouterCall, span: Span, route: RouteLike) -> None:
        self.call = call
        self.span = span
        self.route = route

    def done(self) -> None:
        self.call.end_route(self.span, self.route, semconv.ROUTE_OUTCOME_SUCCESS, None)
        self.call.finish(semconv.ROUTER_OUTCOME_SUCCESS, self.route, None)

    def error(self, exc: BaseException) -> None:
        # Items were delivered already: too late to fall back.
        self.call.end_route(self.span, self.route, semconv.ROUTE_OUTCOME_ERROR, exc)
        self.call.finish(semconv.ROUTER_OUTCOME_ERROR, None, exc)

    def closed(self) -> None:
        self.done()


def _empty(result: Any) -> Generator[Any, Any, Any]:
    return result
    yield  # a generator that returns ``result`` at once


async def _aempty() -> AsyncGenerator[Any, Any]:
    return
    yield


def routed(
    routes: Sequence[RouteLike] | Callable[..., Sequence[RouteLike]],
    *,
    name: str = "default",
    strategy: str = "priority",
    route_param: str = "route",
    fallback_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Try ``routes`` in order, passing each as the keyword argument ``route_param``, until one works.

    ``routes`` is a list of :class:`Route` (or names), or a callable that receives the call's
    arguments and returns the list in the order the strategy chose (``strategy`` names it in the
    telemetry: e.g. ``priority``, ``least_latency``, ``cost``). An exception matching
    ``fallback_on`` moves on to the next route; any other, or the last route's, propagates
    unchanged. Span ``router {name}`` records the chosen route, the routes tried in order and
    the final one; each try is a child span ``route {route}``, current while it runs, so the
    provider span of that try nests under it. A generator function falls back only until its
    first item; after that the route is committed. Callers do not pass ``route_param``, so the
    decorated function's type is ``Callable[..., T]``.
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        call_fn: Callable[..., Any] = fn  # results are awaited/iterated per kind below
        kind = _kind(fn)
        telemetry = _Lazy(lambda: _RouterTelemetry(tracer_provider, meter_provider))

        def candidates(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[RouteLike]:
            chosen = list(routes(*args, **kwargs) if callable(routes) else routes)
            if not chosen:
                raise ValueError(f"router {name!r} has no route to try")
            return chosen

        def open_call(chosen: Sequence[RouteLike]) -> _RouterCall:
            try:
                return _RouterCall(telemetry.get(), name, strategy, chosen)
            except Exception:
                log.debug("could not start router telemetry", exc_info=True)
                return _NoRouterCall()

        def failed(call: _RouterCall, span: Span, route: RouteLike, exc: BaseException, last: bool) -> bool:
            """Record a failed route; True if the next route should be tried."""
            if isinstance(exc, fallback_on) and not last:
                call.end_route(span, route, semconv.ROUTE_OUTCOME_FALLBACK, exc)
                return True
            call.end_route(span, route, semconv.ROUTE_OUTCOME_ERROR, exc)
            outcome = (
                semconv.ROUTER_OUTCOME_EXHAUSTED
                if isinstance(exc, fallback_on)
                else semconv.ROUTER_OUTCOME_ERROR
            )
            call.finish(outcome, None, exc)
            return False

        def succeeded(call: _RouterCall, span: Span, route: RouteLike) -> None:
            call.end_route(span, route, semconv.ROUTE_OUTCOME_SUCCESS, None)
            call.finish(semconv.ROUTER_OUTCOME_SUCCESS, route, None)

        if kind == "gen":

            def begin_stream(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Stream:
                chosen = candidates(args, kwargs)
                call = open_call(chosen)
                for index, route in enumerate(chosen):
                    span = call.start_route(index, route)
                    inner = call_fn(*args, **{**kwargs, route_param: route})
                    try:
                        with _current(span):
                            first = next(inner)
                    except StopIteration as stop:
                        succeeded(call, span, route)
                        return _untraced(_empty(stop.value))
                    except BaseException as exc:
                        if failed(call, span, route, exc, index == len(chosen) - 1):
                            continue
                        raise
                    return _Stream(inner, span, _RouteStreamHooks(call, span, route), first)
                raise AssertionError("unreachable: the last route returns or raises")

            return cast(Callable[..., T], _gen_wrapper(fn, begin_stream))

        if kind == "async_gen":

            async def abegin_stream(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Stream:
                chosen = candidates(args, kwargs)
                call = open_call(chosen)
                for index, route in enumerate(chosen):
                    span = call.start_route(index, route)
                    inner = call_fn(*args, **{**kwargs, route_param: route})
                    try:
                        with _current(span):
                            first = await inner.__anext__()
                    except StopAsyncIteration:
                        succeeded(call, span, route)
                        return _untraced(_aempty())
                    except BaseException as exc:
                        if failed(call, span, route, exc, index == len(chosen) - 1):
                            continue
                        raise
                    return _Stream(inner, span, _RouteStreamHooks(call, span, route), first)
                raise AssertionError("unreachable: the last route returns or raises")

            return cast(Callable[..., T], _agen_wrapper(fn, abegin_stream))

        if kind == "async":

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                chosen = candidates(args, kwargs)
                call = open_call(chosen)
                for index, route in enumerate(chosen):
                    span = call.start_route(index, route)
                    try:
                        with _current(span):
                            result = await call_fn(*args, **{**kwargs, route_param: route})
                    except BaseException as exc:
                        if failed(call, span, route, exc, index == len(chosen) - 1):
                            continue
                        raise
                    succeeded(call, span, route)
                    return result
                raise AssertionError("unreachable: the last route returns or raises")

            return cast(Callable[..., T], async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            chosen = candidates(args, kwargs)
            call = open_call(chosen)
            for index, route in enumerate(chosen):
                span = call.start_route(index, route)
                try:
                    with _current(span):
                        result = fn(*args, **{**kwargs, route_param: route})
                except BaseException as exc:
                    if failed(call, span, route, exc, index == len(chosen) - 1):
                        continue
                    raise
                succeeded(call, span, route)
                return result
            raise AssertionError("unreachable: the last route returns or raises")

        return cast(Callable[..., T], sync_wrapper)

    return decorate
