"""Request handling shared by the protocols: routing, faults, latency plans, pacing, ground truth."""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import os
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from .http import LAST_CHUNK, HttpConnection, Request, frame, log, perf_ns
from .model import Dist, Fault, MockConfig, RequestRecord

JSON_CT = b"application/json"
SSE_CT = b"text/event-stream; charset=utf-8"
NDJSON_CT = b"application/x-ndjson"

# The mock "language": every output token is one of these words plus a space (JSON-safe ASCII).
_VOCAB = (
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "small",
    "clouds",
    "drift",
    "past",
    "green",
    "hills",
    "and",
    "one",
    "river",
    "runs",
    "to",
    "the",
    "sea",
    "under",
    "blue",
    "light",
    "so",
    "every",
    "token",
    "here",
    "is",
    "short",
    "plain",
    "text",
    "for",
    "mock",
    "replies",
    "in",
    "benchmark",
    "runs",
    "with",
    "spans",
    "metrics",
    "and",
    "traces",
    "that",
    "show",
    "time",
    "to",
    "first",
    "chunk",
    "per",
    "output",
    "token",
)
WORDS: tuple[str, ...] = tuple(w + " " for w in _VOCAB[:64])
WORDS_JSON: tuple[bytes, ...] = tuple(w.encode() for w in WORDS)
NWORDS = len(WORDS)


def word_index(salt: int, i: int) -> int:
    """Index into WORDS of output token `i` of the request salted with `salt` (hot loops inline it)."""
    return (salt + i * 7) % NWORDS


def text_of(salt: int, n: int, start: int = 0) -> str:
    """The text of output tokens `start` to `n` (by default all `n`)."""
    return "".join([WORDS[(salt + i * 7) % NWORDS] for i in range(start, n)])


def thinking_first(
    thought: int, thinking: Callable[[int], bytes], answer: Callable[[int], bytes]
) -> Callable[[int], bytes]:
    """A stream's chunk(i) for a thinking model: ``thinking(i)`` for the first ``thought`` chunks,
    ``answer(i)`` after them (``answer`` itself when there is nothing to think)."""
    if not thought:
        return answer

    def chunk(i: int) -> bytes:
        return thinking(i) if i < thought else answer(i)

    return chunk


def estimate_tokens(chars: int) -> int:
    """Input-token estimate from a character count (~4 characters per token, at least 1)."""
    return max(1, chars // 4)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (one shared encoder: `json.dumps` with options builds a new one per call)."""
    return _ENCODER.encode(obj).encode()


def malform(payload: bytes) -> bytes:
    """`payload` with its last JSON document cut in half, keeping the SSE event / NDJSON line end,
    so the client's framing still hands the broken JSON to its parser."""
    body = payload.rstrip(b"\n")
    end = payload[len(body) :]
    start = body.rfind(b"data: ")
    start = start + 6 if start >= 0 else body.rfind(b"\n") + 1
    cut = start + max(1, (len(body) - start) // 2)
    return body[:cut] + end


def jstr(text: str) -> bytes:
    """`text` as the inside of a JSON string literal (no quotes), for splicing into templates."""
    return json.dumps(text, ensure_ascii=False)[1:-1].encode()


class ErrorReply(Exception):
    """Abort the request with an error response in the protocol's own error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retry_after: float | None = None,
        body: Mapping[str, Any] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.body = body
        self.param = param


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """How one provider frames errors and names its request-id header."""

    name: str
    error_body: Callable[[ErrorReply], bytes]
    request_id_header: bytes = b"x-request-id"
    #: Extra header lines of an error response (Bedrock names its error code in a header).
    error_headers: Callable[[ErrorReply], bytes] | None = None
    #: The bytes of an error event in one of its streams (the `error:N` fault), after which the
    #: stream ends; None: such a fault drops the connection instead.
    stream_error: Callable[[str], bytes] | None = None


Route = Callable[["RequestContext"], Awaitable[None]]
#: Resolves a path with parameters in it (Bedrock's /model/{modelId}/...) to its route, or None.
PathRouter = Callable[[str, str], "tuple[ProtocolSpec, Route] | None"]


class Rec:
    """Mutable twin of `RequestRecord` filled while a request runs."""

    __slots__ = (
        "arrival_ns",
        "cache_creation_tokens",
        "cache_read_tokens",
        "chunks",
        "client_closed",
        "done",
        "fault",
        "first_byte_ns",
        "headers_ns",
        "input_tokens",
        "last_byte_ns",
        "late_ns",
        "model",
        "output_tokens",
        "path",
        "protocol",
        "reasoning_tokens",
        "received_ns",
        "request_id",
        "status",
        "stream",
        "worker",
    )

    def __init__(
        self,
        request_id: str,
        protocol: str,
        path: str,
        arrival_ns: int,
        worker: int = 0,
        received_ns: int | None = None,
    ) -> None:
        self.request_id = request_id
        self.protocol = protocol
        self.path = path
        self.arrival_ns = arrival_ns
        self.received_ns = received_ns
        self.model = ""
        self.stream = False
        self.status = 0
        self.fault: str | None = None
        self.first_byte_ns: int | None = None
        self.last_byte_ns: int | None = None
        self.headers_ns: int | None = None
        self.chunks = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.client_closed = False
        self.cache_read_tokens = 0
        self.cache_creation_tokens = 0
        self.reasoning_tokens = 0
        self.late_ns = 0
        self.worker = worker
        self.done = False

    def freeze(self) -> RequestRecord:
        """The immutable record."""
        return RequestRecord(*[getattr(self, name) for name in RECORD_FIELDS])

    def note_late(self, due: float, now: float) -> None:
        """Remember how far behind its plan (loop times) a write was."""
        late = int((now - due) * 1e9)
        if late > self.late_ns:
            self.late_ns = late


RECORD_FIELDS = tuple(RequestRecord.__dataclass_fields__)


@dataclass(slots=True)
class Plan:
    """The sampled fate of one generation request."""

    #: Content chunks (output tokens) to produce, after the cap by the request's max tokens.
    n: int
    #: Whether `n` was cut by the request's max tokens (finish reason "length").
    capped: bool
    #: Loop time the latencies count from (arrival, or arrival + hang).
    t0: float
    ttft: float
    #: Fixed inter-token latency, or None to sample `itl_dist` per token.
    itl: float | None
    itl_sample: Callable[[], float]
    fault: Fault
    #: Mean inter-token latency (for server-side timings such as Ollama's eval_duration).
    itl_mean: float

    def next_itl(self) -> float:
        """The gap before the next token."""
        return self.itl if self.itl is not None else self.itl_sample()

    def body_delay(self) -> float:
        """Seconds from t0 until a non-streamed body is due: ttft + (n-1) gaps."""
        if self.itl is not None:
            return self.ttft + (self.n - 1) * self.itl
        return self.ttft + sum(self.itl_sample() for _ in range(self.n - 1))


#: Prompt keys a provider's cache remembers (then it starts over).
CACHE_KEYS_KEPT = 100_000


class PromptCache:
    """The keys (never the prompts) a provider's prompt cache holds, at most ``limit``: past it the
    cache starts over, as a provider's evicts, so a long load test does not grow the mock."""

    __slots__ = ("_keys", "limit")

    def __init__(self, limit: int = CACHE_KEYS_KEPT) -> None:
        self._keys: set[str | bytes] = set()
        self.limit = limit

    def seen(self, key: str | bytes) -> bool:
        """Whether ``key`` was cached before; it is cached from now on either way."""
        keys = self._keys
        if key in keys:
            return True
        if len(keys) >= self.limit:
            keys.clear()
        keys.add(key)
        return False

    def __len__(self) -> int:
        return len(self._keys)


class App:
    """State shared by all connections of one server (used from the server's loop thread only,
    except the lock-protected records and scripts)."""

    def __init__(
        self,
        config: MockConfig,
        routes: dict[tuple[str, str], tuple[ProtocolSpec, Route]],
        worker: int = 0,
    ) -> None:
        self.config = config
        self.routes = routes
        self.worker = worker
        # Worker w of a multi-process server draws from its own seeded stream.
        self.rng = random.Random(config.seed if worker == 0 else f"{config.seed}/{worker}")
        self._lock = threading.Lock()
        self._scripts: dict[str | None, deque[Fault]] = {}
        # Finished `Rec`s (never changed after `finish`), frozen when read: freezing costs more
        # than the rest of the bookkeeping of a request.
        self._records: deque[Rec] = deque(maxlen=max(1, config.max_records))
        self.seq = 0
        self._tag = secrets.token_hex(3)
        #: File descriptor (O_APPEND) of the ground-truth JSONL file, or None.
        self.ground_truth: int | None = None
        self.scheduler: ChunkScheduler | None = None
        # Provider-side prompt caches (keys only) so repeated prompts report cached tokens.
        self.openai_cache = PromptCache()
        self.deepseek_cache = PromptCache()
        self.anthropic_cache = PromptCache()
        self.bedrock_cache = PromptCache()
        self._fault_table = [
            (Fault.parse(spec), rate) for spec, rate in config.fault_rates.items() if rate > 0
        ]
        self.fallback_protocols: list[tuple[str, ProtocolSpec]] = []
        #: Tried in order when no fixed route matches.
        self.path_routers: list[PathRouter] = []

    # -- scripts, records (thread-safe) ------------------------------------------------------

    def script(self, model: str | None, steps: list[Fault]) -> None:
        """Queue outcomes for the next requests for `model` (None = any model)."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(steps)

    def records(self) -> list[RequestRecord]:
        """Snapshot of the records."""
        with self._lock:
            recs = list(self._records)
        return [rec.freeze() for rec in recs]

    def record_count(self) -> int:
        """How many records are held."""
        return len(self._records)

    def clear_records(self) -> None:
        """Forget the in-memory records (the ground-truth file is kept)."""
        with self._lock:
            self._records.clear()

    def finish(self, rec: Rec) -> None:
        """Store the record (once). Called *before* the last bytes are written, so a client that
        has read the whole response always finds its record."""
        if rec.done:
            return
        rec.done = True
        with self._lock:
            self._records.append(rec)
        if self.ground_truth is not None:
            offset = time.time_ns() - perf_ns()
            row: dict[str, Any] = {name: getattr(rec, name) for name in RECORD_FIELDS}
            for name in ("arrival_ns", "received_ns", "first_byte_ns", "last_byte_ns", "headers_ns"):
                value = row[name]
                row[name.replace("_ns", "_unix_ns")] = None if value is None else value + offset
            # One write() per line on an O_APPEND descriptor: lines from several worker processes
            # never interleave, and a killed process leaves only whole lines behind.
            os.write(self.ground_truth, (json.dumps(row, separators=(",", ":")) + "\n").encode())

    # -- faults ----------------------------------------------------------------------------------

    def next_fault(self, model: str, headers: Mapping[str, str]) -> Fault:
        """Scripted step for the model, else for any model, else `x-mock-fault`, else a random fault."""
        if self._scripts:
            with self._lock:
                for key in (model, None):
                    queue = self._scripts.get(key)
                    if queue:
                        step = queue.popleft()
                        if not queue:
                            del self._scripts[key]
                        return step
        spec = headers.get("x-mock-fault")
        if spec is not None:
            retry_after = _header_float(headers, "x-mock-retry-after", 1.0)
            try:
                return Fault.parse(spec, retry_after)
            except ValueError as exc:
                raise ErrorReply(400, f"x-mock-fault: {exc}", param="x-mock-fault") from None
        if self._fault_table:
            u = self.rng.random()
            for fault, rate in self._fault_table:
                u -= rate
                if u < 0:
                    return fault
        return Fault.ok()

    # -- dispatch --------------------------------------------------------------------------------

    async def handle(self, conn: HttpConnection, request: Request) -> None:
        """Answer one request (the connection's handler)."""
        self.seq += 1
        request_id = f"req_{self._tag}{self.seq:010d}"
        route = self.routes.get((request.method, request.path))
        if route is None:
            for router in self.path_routers:
                route = router(request.method, request.path)
                if route is not None:
                    break
        spec = route[0] if route is not None else self._protocol_for_path(request.path)
        rec = Rec(request_id, spec.name, request.path, request.arrival_ns, self.worker, request.received_ns)
        ctx = RequestContext(self, conn, request, rec, spec)
        try:
            if request.too_large:
                raise ErrorReply(413, f"request body exceeds {self.config.max_body_bytes} bytes")
            if route is None:
                known = any(path == request.path for _, path in self.routes)
                if known:
                    raise ErrorReply(405, f"method {request.method} not allowed on {request.path}")
                raise ErrorReply(404, f"unknown path {request.path}")
            await route[1](ctx)
        except ErrorReply as err:
            if not conn.headers_sent:
                ctx.send_error(err)
        except asyncio.CancelledError:
            if not rec.done:
                rec.client_closed = conn.closed
            raise
        except Exception as exc:
            log.exception("mock handler error on %s", request.path)
            if conn.headers_sent:
                conn.abort()
            else:
                ctx.send_error(ErrorReply(500, f"mock server error: {exc!r}"))
        finally:
            self.finish(rec)

    def _protocol_for_path(self, path: str) -> ProtocolSpec:
        for prefix, spec in self.fallback_protocols:
            if path.startswith(prefix):
                return spec
        return self.fallback_protocols[-1][1]


def _scaled_sample(dist: Dist, rng: random.Random, scale: float) -> float:
    return dist.sample(rng) * scale


def _header_float(headers: Mapping[str, str], name: str, scale: float) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw) * scale
    except ValueError:
        raise ErrorReply(400, f"header {name} must be a number, got {raw!r}", param=name) from None
    if not value >= 0:
        raise ErrorReply(400, f"header {name} must be >= 0, got {raw!r}", param=name)
    return value


class RequestContext:
    """One request being answered: parsed input, the record, and the writing helpers."""

    __slots__ = ("app", "conn", "headers", "loop", "rec", "req", "salt", "spec")

    def __init__(self, app: App, conn: HttpConnection, req: Request, rec: Rec, spec: ProtocolSpec) -> None:
        self.app = app
        self.conn = conn
        self.req = req
        self.rec = rec
        self.spec = spec
        #: Varies the generated words between requests.
        self.salt = app.seq
        self.loop = asyncio.get_running_loop()
        self.headers = b"%b: %b\r\n" % (spec.request_id_header, rec.request_id.encode())

    def json(self) -> dict[str, Any]:
        """The request body as a JSON object, or a 400 in the provider's shape."""
        try:
            body = json.loads(self.req.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ErrorReply(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ErrorReply(400, "request body must be a JSON object")
        return body

    def send_error(self, err: ErrorReply) -> None:
        """Write the error response now."""
        body = json.dumps(err.body).encode() if err.body is not None else self.spec.error_body(err)
        headers = self.headers
        if self.spec.error_headers is not None:
            headers += self.spec.error_headers(err)
        if err.retry_after is not None:
            # Both forms: `retry-after-ms` is what the Stainless SDKs prefer (sub-second precision).
            headers += b"retry-after: %s\r\nretry-after-ms: %d\r\n" % (
                f"{err.retry_after:g}".encode(),
                round(err.retry_after * 1000),
            )
        data = self.conn.response(err.status, JSON_CT, body, headers)
        self._final_write(data, err.status)

    def _final_write(self, data: bytes, status: int, due: float | None = None) -> None:
        rec = self.rec
        rec.status = status
        rec.first_byte_ns = rec.last_byte_ns = perf_ns()
        if due is not None:
            rec.note_late(due, self.loop.time())
        self.app.finish(rec)
        self.conn.write(data)

    async def plan(
        self,
        model: str,
        input_tokens: int,
        max_tokens: int | None,
        ttft_scale: float = 1.0,
        *,
        itl_scale: float = 1.0,
        length_scale: float = 1.0,
    ) -> Plan:
        """Resolve the fault (raising ErrorReply for an error status, waiting out a hang) and sample
        latencies; the scales stretch the profile's TTFT, inter-token latency and sampled length
        (a length set by `x-mock-output-tokens` is kept as given)."""
        app, req, rec = self.app, self.req, self.rec
        rec.model = model
        rec.input_tokens = input_tokens
        headers = req.headers
        fault = app.next_fault(model, headers)
        rec.fault = fault.label
        if fault.kind == "status":
            raise ErrorReply(
                fault.code, _status_message(fault.code), retry_after=fault.retry_after, body=fault.body
            )
        if fault.kind == "error" and not rec.stream:
            raise ErrorReply(500, _status_message(500))  # a whole reply has no stream to fail in
        t0 = req.arrival
        if fault.kind == "hang":
            t0 += fault.seconds
            await self.sleep_until(t0)
        profile = app.config.profile_for(model)
        rng = app.rng
        ttft = _header_float(headers, "x-mock-ttft-ms", 1e-3)
        if ttft is None:
            ttft = profile.ttft.sample(rng) + profile.ttft_per_input_token * input_tokens
        ttft *= ttft_scale
        itl = _header_float(headers, "x-mock-itl-ms", 1e-3)
        if itl is None and profile.itl.kind == "fixed":
            itl = profile.itl.params[0]
        if itl is not None:
            itl *= itl_scale
        tokens = _header_float(headers, "x-mock-output-tokens", 1.0)
        if tokens is None:
            tokens = profile.output_tokens.sample(rng) * length_scale
        n = max(1, round(tokens))
        capped = max_tokens is not None and n > max_tokens
        if capped:
            n = max(1, int(max_tokens or 1))
        itl_dist = profile.itl
        itl_mean = itl if itl is not None else itl_dist.mean * itl_scale
        sample: Callable[[], float] = partial(itl_dist.sample, rng)
        if itl_scale != 1.0:
            sample = partial(_scaled_sample, itl_dist, rng, itl_scale)
        return Plan(n, capped, t0, ttft, itl, sample, fault, itl_mean)

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until loop time `deadline` (absolute, so delays never accumulate drift)."""
        delay = deadline - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def reply_json(self, plan: Plan | None, body: bytes, extra_headers: bytes = b"") -> None:
        """Send a JSON body at t0 + ttft + (n-1)*itl (or now when `plan` is None)."""
        if plan is None:
            self._final_write(self.conn.response(200, JSON_CT, body, self.headers + extra_headers), 200)
            return
        kind = plan.fault.kind
        if kind == "malformed":
            body = malform(body)
        data = self.conn.response(200, JSON_CT, body, self.headers + extra_headers)
        due = plan.t0 + plan.body_delay()
        if due > self.loop.time():
            await asyncio.sleep(due - self.loop.time())
        if kind == "disconnect":
            # A non-streamed request that "dies": no response at all.
            self.app.finish(self.rec)
            self.conn.abort()
            return
        self._final_write(data, 200, due)

    async def stream(
        self,
        plan: Plan,
        content_type: bytes,
        preamble: bytes,
        chunk: Callable[[int], bytes],
        epilogue: Callable[[], bytes],
        failure: Callable[[str], bytes] | None = None,
    ) -> None:
        """Write headers (+ preamble) now, then chunk(i) at t0+ttft+sum(itl), then epilogue + last chunk.
        ``failure(message)``: this stream's error event for an `error:N` fault (default: the
        protocol's)."""
        rec = self.rec
        rec.stream = True
        rec.status = 200
        data = self.conn.stream_head(200, content_type, self.headers, preamble)
        rec.headers_ns = rec.last_byte_ns = perf_ns()
        self.conn.write(data)
        app = self.app
        scheduler = app.scheduler
        if scheduler is None or scheduler.loop is not self.loop:
            scheduler = app.scheduler = ChunkScheduler(self.loop)
        pacer = _Pacer(self, scheduler, plan, chunk, epilogue, failure or self.spec.stream_error)
        scheduler.add(pacer.deadline, pacer)
        try:
            await pacer.done
        finally:
            pacer.cancelled = True


class ChunkScheduler:
    """Calls `tick()` of stream pacers at their deadlines (absolute `loop.time()` values).

    One asyncio timer for the earliest deadline instead of one `TimerHandle` per chunk: a heap of
    plain tuples compares in C, and every pacer due when the timer fires is served in one callback.
    """

    __slots__ = ("_heap", "_seq", "_timer", "_timer_at", "firing", "loop")

    #: Deadlines this close count as due: a timer can fire a hair before its float deadline, and
    #: re-arming for a microsecond would only cost another wake-up.
    _SLACK = 1e-6

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, _Pacer]] = []
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.firing = False

    def add(self, deadline: float, pacer: _Pacer) -> None:
        """Tick `pacer` at `deadline`."""
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, pacer))
        if not self.firing and deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        heap, time_ = self._heap, self.loop.time
        self.firing = True
        try:
            # Only what was due on entry: the loop must get back to reading sockets, or requests
            # waiting there would be stamped as arrived late and hide the overload.
            limit = time_() + self._SLACK
            while heap and heap[0][0] <= limit:
                pacer = heapq.heappop(heap)[2]
                if not pacer.cancelled:
                    pacer.tick(time_())
        finally:
            self.firing = False
            if heap:
                self._timer_at = heap[0][0]
                self._timer = self.loop.call_at(self._timer_at, self._fire)


#: Most chunks one stream writes per loop turn: a long stream with no gaps (or far behind schedule)
#: would otherwise be rendered in one pass and stall every other connection (200 000 zero-gap
#: chunks took 3 s).
_MAX_BATCH = 256
#: Past the scheduler's slack, so a resumed batch waits for the next pass (a loop turn).
_RESUME_AFTER_S = 2 * ChunkScheduler._SLACK


class _Pacer:
    """The state of one stream between its chunk deadlines (driven by a `ChunkScheduler`).

    Each content chunk is written at its own deadline with its own write. Chunks whose deadlines
    have already passed when the pacer runs (zero gaps, or a server behind schedule) go out
    together in one write, up to `_MAX_BATCH` of them per loop turn: they would only be later
    written one by one.
    """

    __slots__ = (
        "app",
        "cancelled",
        "chunk",
        "conn",
        "deadline",
        "done",
        "epilogue",
        "failure",
        "i",
        "malformed_at",
        "plan",
        "rec",
        "scheduler",
        "stop_at",
    )

    def __init__(
        self,
        ctx: RequestContext,
        scheduler: ChunkScheduler,
        plan: Plan,
        chunk: Callable[[int], bytes],
        epilogue: Callable[[], bytes],
        failure: Callable[[str], bytes] | None,
    ) -> None:
        self.app = ctx.app
        self.conn = ctx.conn
        self.rec = ctx.rec
        self.scheduler = scheduler
        self.plan = plan
        self.chunk = chunk
        self.epilogue = epilogue
        self.i = 0
        self.deadline = plan.t0 + plan.ttft
        fault = plan.fault
        # The chunk after which a disconnect or an error event ends the stream.
        self.stop_at = fault.after_chunks if fault.kind in ("disconnect", "error") else None
        self.failure = failure if fault.kind == "error" else None
        self.malformed_at = min(fault.after_chunks, plan.n - 1) if fault.kind == "malformed" else -1
        self.done: asyncio.Future[None] = ctx.loop.create_future()
        self.cancelled = False

    def _end(self) -> None:
        self.cancelled = True
        if not self.done.done():
            self.done.set_result(None)

    def tick(self, now: float) -> None:
        """Write every chunk due by `now` (loop time), then wait for the next deadline."""
        conn, rec = self.conn, self.rec
        if conn.closed:
            rec.client_closed = True
            self._end()
            return
        deadline = self.deadline
        # The first chunk written is the most overdue one (deadlines only grow).
        late = int((now - deadline) * 1e9)
        if late > rec.late_ns:
            rec.late_ns = late
        plan, i = self.plan, self.i
        itl = plan.itl
        if (
            itl is not None
            and deadline + itl > now
            and i + 1 < plan.n
            and self.stop_at is None
            and i != self.malformed_at
        ):
            # The common case, kept lean: one ordinary chunk, more to come.
            payload = self.chunk(i)
            self.i = i + 1
            self.deadline = deadline + itl
            t = perf_ns()
            if i == 0:
                rec.first_byte_ns = t
            rec.last_byte_ns = t
            rec.chunks = i + 1
            conn.write(b"%x\r\n%b\r\n" % (len(payload), payload))
            self.scheduler.add(deadline + itl, self)
            return
        self._tick_general(now, deadline)

    def _tick_general(self, now: float, deadline: float) -> None:
        conn, rec, plan = self.conn, self.rec, self.plan
        n, stop_at, first, chunk, itl = plan.n, self.stop_at, self.i, self.chunk, plan.itl
        i = first
        parts: list[bytes] = []
        dropped = False
        while True:
            if stop_at is not None and i >= stop_at:
                dropped = True
                break
            payload = chunk(i)
            if i == self.malformed_at:
                payload = malform(payload)
            parts.append(b"%x\r\n%b\r\n" % (len(payload), payload))
            i += 1
            if i == n:
                break
            deadline += itl if itl is not None else plan.itl_sample()
            if deadline > now or i - first >= _MAX_BATCH:
                break
        self.deadline = deadline
        self.i = i
        if i > first:
            t = perf_ns()
            if first == 0:
                rec.first_byte_ns = t
            rec.last_byte_ns = t
            rec.chunks = i
        if i == n and stop_at is None:
            # Epilogue after the times are set: Ollama's final record reports them.
            parts.append(frame(self.epilogue()) + LAST_CHUNK)
        if self.failure is not None and (dropped or i == n):
            # The provider's error event, then a proper end of the chunked body.
            parts.append(frame(self.failure(_status_message(500))) + LAST_CHUNK)
            stop_at = None
        if dropped or i == n:
            self.app.finish(rec)
            if parts:
                conn.write(b"".join(parts))
            if stop_at is not None:
                conn.abort()
            self._end()
            return
        conn.write(parts[0] if len(parts) == 1 else b"".join(parts))
        # A capped batch leaves chunks that are due already: resume them on the next loop turn
        # (just past the scheduler's current pass), after the loop has served everyone else.
        self.scheduler.add(max(deadline, now + _RESUME_AFTER_S), self)


_MESSAGES = {
    400: "Bad request (injected by the mock)",
    401: "Invalid API key (injected by the mock)",
    403: "Permission denied (injected by the mock)",
    404: "Not found (injected by the mock)",
    408: "Request timeout (injected by the mock)",
    409: "Conflict (injected by the mock)",
    429: "Rate limit reached (injected by the mock)",
    500: "The server had an error while processing your request (injected by the mock)",
    502: "Bad gateway (injected by the mock)",
    503: "The engine is currently overloaded (injected by the mock)",
    504: "Gateway timeout (injected by the mock)",
    529: "Overloaded (injected by the mock)",
}


def _status_message(code: int) -> str:
    return _MESSAGES.get(code, f"Error {code} (injected by the mock)")
