"""The one lifecycle API for GenAI telemetry: a recorder per logical LLM operation.

Provider modules translate SDK objects into recorder calls and never touch spans or
instruments themselves. Every public method of :class:`LLMRecorder` swallows its own failures
(logged at debug level), so telemetry can never raise into the instrumented application, and
the recorder finishes exactly once whatever path ends it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from . import semconv
from ._config import Settings
from .version import __version__

log = logging.getLogger(__name__)

SCOPE_NAME = "otelbench_instrumentation"

_now = time.perf_counter_ns

#: In the default (mean) chunk timing, chunk_times is folded past this many entries.
CHUNK_TIMES_KEPT = 4096

_ACTIVE: ContextVar[LLMRecorder | None] = ContextVar("otelbench_active_recorder", default=None)


def active_recorder() -> LLMRecorder | None:
    """The recorder of the LLM call running in this context, if any (used by retry hooks)."""
    return _ACTIVE.get()


class Telemetry:
    """Tracer, instruments and settings shared by all recorders of one instrumentor."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        try:
            self.tracer: trace.Tracer = trace.get_tracer(SCOPE_NAME, __version__, tracer_provider)
        except Exception:
            log.debug("tracer unavailable; spans disabled", exc_info=True)
            self.tracer = trace.NoOpTracer()
        try:
            meter = metrics.get_meter(SCOPE_NAME, __version__, meter_provider)
            self.duration = _histogram(
                meter,
                semconv.METRIC_OPERATION_DURATION,
                semconv.UNIT_SECONDS,
                semconv.DESCRIPTION_OPERATION_DURATION,
                semconv.BUCKETS_DURATION,
            )
            self.token_usage = _histogram(
                meter,
                semconv.METRIC_TOKEN_USAGE,
                semconv.UNIT_TOKENS,
                semconv.DESCRIPTION_TOKEN_USAGE,
                semconv.BUCKETS_TOKENS,
            )
            self.time_to_first_chunk = _histogram(
                meter,
                semconv.METRIC_TIME_TO_FIRST_CHUNK,
                semconv.UNIT_SECONDS,
                semconv.DESCRIPTION_TIME_TO_FIRST_CHUNK,
                semconv.BUCKETS_DURATION,
            )
            self.time_per_output_chunk = _histogram(
                meter,
                semconv.METRIC_TIME_PER_OUTPUT_CHUNK,
                semconv.UNIT_SECONDS,
                semconv.DESCRIPTION_TIME_PER_OUTPUT_CHUNK,
                semconv.BUCKETS_TIME_PER_CHUNK,
            )
            self.token_detail = _histogram(
                meter,
                semconv.METRIC_TOKEN_DETAIL,
                semconv.UNIT_TOKENS,
                semconv.DESCRIPTION_TOKEN_DETAIL,
                semconv.BUCKETS_TOKENS,
            )
            self.time_to_first_answer_chunk = _histogram(
                meter,
                semconv.METRIC_TIME_TO_FIRST_ANSWER_CHUNK,
                semconv.UNIT_SECONDS,
                semconv.DESCRIPTION_TIME_TO_FIRST_ANSWER_CHUNK,
                semconv.BUCKETS_DURATION,
            )
        except Exception:
            log.debug("meter unavailable; metrics disabled", exc_info=True)
            noop = metrics.NoOpMeter(SCOPE_NAME)
            self.duration = self.token_usage = self.time_to_first_chunk = noop.create_histogram("noop")
            self.time_per_output_chunk = self.token_detail = self.duration
            self.time_to_first_answer_chunk = self.duration

    def start_llm(
        self,
        *,
        operation: str,
        provider: str,
        request_model: str | None,
        server_address: str | None = None,
        server_port: int | None = None,
        streaming: bool = False,
        request_attributes: Mapping[str, AttributeValue] | None = None,
    ) -> LLMRecorder | None:
        """Open a recorder (and its span, made current) for one call; None if telemetry failed."""
        try:
            return LLMRecorder(
                self,
                operation=operation,
                provider=provider,
                request_model=request_model,
                server_address=server_address,
                server_port=server_port,
                streaming=streaming,
                request_attributes=request_attributes,
            )
        except Exception:
            log.debug("could not start GenAI telemetry", exc_info=True)
            return None


def _histogram(
    meter: metrics.Meter, name: str, unit: str, description: str, buckets: Sequence[float]
) -> Histogram:
    return meter.create_histogram(
        name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
    )


class LLMRecorder:
    """Span + metrics of one logical LLM operation (all retries of it included)."""

    __slots__ = (
        "_attempts",
        "_cache_creation",
        "_cache_read",
        "_closed_early",
        "_context_token",
        "_each_gap",
        "_failure",
        "_final_attempt_recorded",
        "_finish_reasons",
        "_folded_chunks",
        "_input_tokens",
        "_metric_attrs",
        "_output_parts",
        "_output_tokens",
        "_reasoning",
        "_recorder_token",
        "_response_attrs",
        "_response_model",
        "_span",
        "_start_ns",
        "_telemetry",
        "capture_content",
        "chunk_times",
        "clock",
        "ended",
        "first_answer_ns",
        "fold_at",
        "has_response",
        "streaming",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        *,
        operation: str,
        provider: str,
        request_model: str | None,
        server_address: str | None,
        server_port: int | None,
        streaming: bool,
        request_attributes: Mapping[str, AttributeValue] | None,
    ) -> None:
        self._telemetry = telemetry
        self.streaming = streaming
        # Plain attributes, not properties: stream chunk handlers read them on every chunk.
        #: True once the span has been ended.
        self.ended = False
        #: True once response identity (id/model) has been recorded.
        self.has_response = False
        #: Whether prompt and completion text may be recorded.
        self.capture_content = telemetry.settings.capture_content
        #: Where chunk times are read (perf_counter_ns). A client that stamps bytes as they are
        #: read from the socket sets its own, so parsing delays stay out of TTFT; before the
        #: stream's reader starts, as readers look it up once.
        self.clock: Callable[[], int] = _now
        #: When each content-bearing chunk arrived (``clock`` ns; ~40 bytes each). Stream readers
        #: append ``clock()`` here themselves: a method call per chunk would cost them about as
        #: much as all their other work. (An ``array`` would be 8 bytes, but its append converts
        #: through the argument parser: several times a list append.)
        self.chunk_times: list[int] = []
        self._each_gap = telemetry.settings.chunk_timing == "each"
        #: Past this many chunk_times, the stream proxy calls fold_chunk_times() (mean timing
        #: only: "each" needs every gap until the end, when the metric attributes are known).
        self.fold_at = sys.maxsize if self._each_gap else CHUNK_TIMES_KEPT
        self._folded_chunks = 0
        #: When the first answer chunk (not reasoning) arrived (``clock`` ns; 0: none yet).
        #: Readers that tell reasoning from answer themselves set it; else on_chunk() does.
        self.first_answer_ns = 0
        self._attempts = 1
        self._final_attempt_recorded = False
        self._finish_reasons: list[str] = []
        self._response_model: str | None = None
        # Response attributes wait for the end: one set_attributes call instead of several
        # (each takes the span's lock and cleans its values).
        self._response_attrs: dict[str, AttributeValue] = {}
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._cache_read: int | None = None
        self._cache_creation: int | None = None
        self._reasoning: int | None = None
        self._closed_early = False
        self._failure: str | None = None
        self._output_parts: list[str] | None = [] if telemetry.settings.capture_content else None

        metric_attrs: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: operation,
            semconv.GEN_AI_PROVIDER_NAME: provider,
        }
        if request_model:
            metric_attrs[semconv.GEN_AI_REQUEST_MODEL] = request_model
        if server_address:
            metric_attrs[semconv.SERVER_ADDRESS] = server_address
        if server_port:
            metric_attrs[semconv.SERVER_PORT] = server_port
        self._metric_attrs = metric_attrs

        span_attrs = dict(metric_attrs)
        if not telemetry.settings.latest_semconv_only:
            span_attrs[semconv.GEN_AI_SYSTEM] = provider
        if streaming:
            span_attrs[semconv.GEN_AI_REQUEST_STREAM] = True
        if request_attributes:
            span_attrs.update(request_attributes)
        name = f"{operation} {request_model}" if request_model else operation
        self._span: Span = telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
        self._start_ns = time.perf_counter_ns()
        self._context_token: object | None = otel_context.attach(trace.set_span_in_context(self._span))
        self._recorder_token: Token[LLMRecorder | None] | None = _ACTIVE.set(self)

    # --- context ------------------------------------------------------------------------
    def deactivate(self) -> None:
        """Stop being the current span/recorder; called when the SDK call returns or raises."""
        try:
            if self._recorder_token is not None:
                _ACTIVE.reset(self._recorder_token)
                self._recorder_token = None
            if self._context_token is not None:
                otel_context.detach(self._context_token)  # type: ignore[arg-type]
                self._context_token = None
        except Exception:
            # A token reset from another context (e.g. a generator resumed elsewhere) is harmless.
            log.debug("could not deactivate GenAI span context", exc_info=True)

    @property
    def span(self) -> Span:
        """The span of this operation (for provider-specific attributes)."""
        return self._span

    @property
    def has_output_text(self) -> bool:
        """True if completion text has been captured already (streams)."""
        return bool(self._output_parts)

    # --- events from the provider modules -----------------------------------------------
    @property
    def attempts(self) -> int:
        """HTTP attempts made so far (1 + SDK-internal retries)."""
        return self._attempts

    def on_retry(
        self,
        status_code: int | None,
        error_type: str | None,
        wait_s: float | None,
        *,
        timestamp_ns: int | None = None,
    ) -> None:
        """An SDK-internal attempt failed and will be retried after ``wait_s`` seconds."""
        try:
            attrs: dict[str, AttributeValue] = {semconv.ATTEMPT_NUMBER: self._attempts}
            if status_code is not None:
                attrs[semconv.HTTP_RESPONSE_STATUS_CODE] = status_code
            if error_type:
                attrs[semconv.ERROR_TYPE] = error_type
            if wait_s is not None:
                attrs[semconv.ATTEMPT_RETRY_WAIT] = float(wait_s)
            self._span.add_event(semconv.EVENT_ATTEMPT, attrs, timestamp=timestamp_ns)
            self._attempts += 1
        except Exception:
            log.debug("could not record retry attempt", exc_info=True)

    def on_final_attempt(self, status_code: int | None, error_type: str | None = None) -> None:
        """The last attempt of a retried call finished (only called when attempts > 1)."""
        if self._final_attempt_recorded:
            return
        self._final_attempt_recorded = True
        try:
            attrs: dict[str, AttributeValue] = {semconv.ATTEMPT_NUMBER: self._attempts}
            if isinstance(status_code, int):
                attrs[semconv.HTTP_RESPONSE_STATUS_CODE] = status_code
            if error_type:
                attrs[semconv.ERROR_TYPE] = error_type
            self._span.add_event(semconv.EVENT_ATTEMPT, attrs)
        except Exception:
            log.debug("could not record final attempt", exc_info=True)

    def on_chunk(self) -> None:
        """An answer chunk (text, tool-call or refusal delta) arrived; the first chunk of any
        kind sets TTFT."""
        now = self.clock()
        times = self.chunk_times
        times.append(now)
        if len(times) > self.fold_at:
            self.fold_chunk_times()
        if not self.first_answer_ns:
            self.first_answer_ns = now

    def on_reasoning_chunk(self) -> None:
        """A reasoning chunk (a thinking model's thoughts, streamed before its answer) arrived."""
        times = self.chunk_times
        times.append(self.clock())
        if len(times) > self.fold_at:
            self.fold_chunk_times()

    def fold_chunk_times(self) -> None:
        """Keep only the first and last chunk times, and the count (what mean timing needs), so
        a long stream's memory stays bounded."""
        times = self.chunk_times
        if not self._each_gap and len(times) > 2:
            self._folded_chunks += len(times) - 2
            del times[1:-1]

    def add_output_text(self, text: str) -> None:
        """Keep completion text for the span, only when content capture is on."""
        parts = self._output_parts
        if parts is not None and text:
            parts.append(text)

    def set_response(
        self,
        *,
        response_id: str | None = None,
        model: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        """Record response identity, model, finish reasons and provider-specific attributes."""
        try:
            self.has_response = True
            pending = self._response_attrs
            if response_id:
                pending[semconv.GEN_AI_RESPONSE_ID] = response_id
            if model:
                self._response_model = model
                pending[semconv.GEN_AI_RESPONSE_MODEL] = model
            if finish_reasons:
                self._finish_reasons.extend(finish_reasons)
            if attributes:
                pending.update(attributes)
        except Exception:
            log.debug("could not record response attributes", exc_info=True)

    def add_finish_reason(self, reason: str) -> None:
        """Append one choice's finish reason (streams report them chunk by chunk)."""
        self._finish_reasons.append(reason)

    def on_usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        reasoning_output_tokens: int | None = None,
    ) -> None:
        """Token usage as reported by the provider; non-integers and negatives are dropped."""
        self._input_tokens = _count(input_tokens, self._input_tokens)
        self._output_tokens = _count(output_tokens, self._output_tokens)
        self._cache_read = _count(cache_read_input_tokens, self._cache_read)
        self._cache_creation = _count(cache_creation_input_tokens, self._cache_creation)
        self._reasoning = _count(reasoning_output_tokens, self._reasoning)

    def set_input_messages(self, messages: Any) -> None:
        """Record the prompt as gen_ai.input.messages, only when content capture is on."""
        if self._output_parts is None:
            return
        try:
            self._span.set_attribute(semconv.GEN_AI_INPUT_MESSAGES, self._truncate(_to_json(messages)))
        except Exception:
            log.debug("could not record input messages", exc_info=True)

    # --- ending ---------------------------------------------------------------------------
    def fail(self, exc: BaseException, error_type: str | None = None) -> None:
        """End the operation as failed; ``error.type`` is ``error_type`` or the exception's class."""
        self._finish(error_type or type(exc).__qualname__, exc)

    def set_error(self, error_type: str) -> None:
        """The provider said the operation failed without the SDK raising (a Responses-API
        ``response.failed`` event): it ends as failed, with this ``error.type``."""
        self._failure = error_type

    def end(self, *, closed_early: bool = False, end_ns: int | None = None) -> None:
        """End the operation (``closed_early``: the caller stopped a stream; ``end_ns``: when the
        response ended on the ``clock``, if the caller knows it better than now): successfully,
        unless :meth:`set_error` said otherwise."""
        self._closed_early = closed_early
        self._finish(self._failure, None, end_ns)

    def _finish(self, error_type: str | None, exc: BaseException | None, end_ns: int | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            self._record(error_type, exc, end_ns)
        except Exception:
            log.debug("could not finish GenAI telemetry", exc_info=True)
        finally:
            try:
                self._span.end()
            except Exception:
                log.debug("could not end GenAI span", exc_info=True)

    def _record(self, error_type: str | None, exc: BaseException | None, end_ns: int | None) -> None:
        if end_ns is None or end_ns < self._start_ns:
            end_ns = time.perf_counter_ns()
        t = self._telemetry
        span = self._span
        attrs = self._metric_attrs
        if self._response_model:
            attrs[semconv.GEN_AI_RESPONSE_MODEL] = self._response_model
        if error_type:
            attrs[semconv.ERROR_TYPE] = error_type

        span_attrs = self._response_attrs
        if self._finish_reasons:
            span_attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = self._finish_reasons
        if self._input_tokens is not None:
            span_attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = self._input_tokens
        if self._output_tokens is not None:
            span_attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = self._output_tokens
        if self._cache_read is not None:
            span_attrs[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self._cache_read
        if self._cache_creation is not None:
            span_attrs[semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = self._cache_creation
        if self._reasoning is not None:
            span_attrs[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self._reasoning
        if self._attempts > 1:
            span_attrs[semconv.ATTEMPT_COUNT] = self._attempts
            if not self._final_attempt_recorded:
                self.on_final_attempt(getattr(exc, "status_code", None), error_type)
        times = self.chunk_times
        chunks = len(times) + self._folded_chunks
        if self.streaming:
            span_attrs[semconv.STREAM_CHUNK_COUNT] = chunks
            if self._closed_early:
                span_attrs[semconv.STREAM_CLOSED_EARLY] = True
        if chunks:
            ttft = (times[0] - self._start_ns) / 1e9
            span_attrs[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft
        if self.first_answer_ns:
            time_to_answer = (self.first_answer_ns - self._start_ns) / 1e9
            span_attrs[semconv.RESPONSE_TIME_TO_FIRST_ANSWER_CHUNK] = time_to_answer
        if self._output_parts:
            span_attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = self._truncate(
                _to_json(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "".join(self._output_parts)}],
                            "finish_reason": self._finish_reasons[0] if self._finish_reasons else "",
                        }
                    ]
                )
            )
        if error_type:
            span_attrs[semconv.ERROR_TYPE] = error_type
            span.set_status(Status(StatusCode.ERROR, _short(exc) if exc is not None else error_type))
        if span_attrs:
            span.set_attributes(span_attrs)

        t.duration.record((end_ns - self._start_ns) / 1e9, attrs)
        if chunks:
            t.time_to_first_chunk.record(ttft, attrs)
            if self.first_answer_ns:
                t.time_to_first_answer_chunk.record(time_to_answer, attrs)
            if chunks > 1:
                per_chunk = t.time_per_output_chunk
                if self._each_gap:
                    previous = times[0]
                    for now in times[1:]:
                        per_chunk.record((now - previous) / 1e9, attrs)
                        previous = now
                else:
                    per_chunk.record((times[-1] - times[0]) / (chunks - 1) / 1e9, attrs)
        if self._input_tokens is not None:
            t.token_usage.record(
                self._input_tokens, {**attrs, semconv.GEN_AI_TOKEN_TYPE: semconv.TOKEN_TYPE_INPUT}
            )
        if self._output_tokens is not None:
            t.token_usage.record(
                self._output_tokens, {**attrs, semconv.GEN_AI_TOKEN_TYPE: semconv.TOKEN_TYPE_OUTPUT}
            )
        if self._cache_read or self._cache_creation or self._reasoning:
            for detail, value in (
                (semconv.TOKEN_DETAIL_CACHE_READ, self._cache_read),
                (semconv.TOKEN_DETAIL_CACHE_CREATION, self._cache_creation),
                (semconv.TOKEN_DETAIL_REASONING, self._reasoning),
            ):
                if value:
                    t.token_detail.record(value, {**attrs, semconv.TOKEN_DETAIL: detail})

    def _truncate(self, text: str) -> str:
        limit = self._telemetry.settings.content_max_length
        return text if len(text) <= limit else text[:limit]


@contextmanager
def suppress_telemetry_errors(what: str) -> Iterator[None]:
    """Log and swallow any failure of telemetry code (never of the application's code)."""
    try:
        yield
    except Exception:
        log.debug("otelbench telemetry failed: %s", what, exc_info=True)


#: OTLP carries integer attributes as int64: a larger count from a hostile or broken server cannot be
#: exported (the OTLP exporter logs an error with a traceback for every such span), so it is dropped.
INT64_MAX = 2**63 - 1


def as_count(value: object) -> int | None:
    """``value`` if it is a plausible count (an int, not a bool, within 0..int64 max), else None."""
    # bool is an int subclass; a provider sending true/false as a count is ignored.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX:
        return value
    return None


def _count(value: object, previous: int | None) -> int | None:
    if value is None:  # the common case for the optional counts
        return previous
    count = as_count(value)
    return previous if count is None else count


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    # The exception message may echo the request (and so the prompt): keep only its class.
    return type(exc).__qualname__


def _to_json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
