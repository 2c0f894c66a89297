"""Request handling shared by the three protocols: routing, faults, latency plans, pacing, ground truth."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from .http import LAST_CHUNK, HttpConnection, Request, frame, log, perf_ns
from .model import Fault, MockConfig, RequestRecord

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
_NWORDS = len(WORDS)


def word_index(salt: int, i: int) -> int:
    """Index into WORDS of output token `i` of the request salted with `salt`."""
    return (salt + i * 7) % _NWORDS


def text_of(salt: int, n: int) -> str:
    """The full text of `n` output tokens."""
    return "".join([WORDS[(salt + i * 7) % _NWORDS] for i in range(n)])


def estimate_tokens(chars: int) -> int:
    """Input-token estimate from a character count (~4 characters per token, at least 1)."""
    return max(1, chars // 4)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


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


Route = Callable[["RequestContext"], Awaitable[None]]


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
        "model",
        "output_tokens",
        "path",
        "protocol",
        "reasoning_tokens",
        "request_id",
        "status",
        "stream",
    )

    def __init__(self, request_id: str, protocol: str, path: str, arrival_ns: int) -> None:
        self.request_id = request_id
        self.protocol = protocol
        self.path = path
        self.arrival_ns = arrival_ns
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
        self.done = False

    def freeze(self) -> RequestRecord:
        """The immutable record."""
        return RequestRecord(**{name: getattr(self, name) for name in RECORD_FIELDS})


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


class App:
    """State shared by all connections of one server (used from the server's loop thread only,
    except the lock-protected records and scripts)."""

    def __init__(self, config: MockConfig, routes: dict[tuple[str, str], tuple[ProtocolSpec, Route]]) -> None:
        self.config = config
        self.routes = routes
        self.rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._scripts: dict[str | None, deque[Fault]] = {}
        self._records: deque[RequestRecord] = deque(maxlen=max(1, config.max_records))
        self.seq = 0
        self._tag = secrets.token_hex(3)
        self.ground_truth: IO[str] | None = None
        # Provider-side prompt caches (keys only) so repeated prompts report cached tokens.
        self.openai_cache_keys: set[str] = set()
        self.anthropic_cache_keys: set[str] = set()
        self._fault_table = [
            (Fault.parse(spec), rate) for spec, rate in config.fault_rates.items() if rate > 0
        ]
        self.fallback_protocols: list[tuple[str, ProtocolSpec]] = []

    # -- scripts, records (thread-safe) ------------------------------------------------------

    def script(self, model: str | None, steps: list[Fault]) -> None:
        """Queue outcomes for the next requests for `model` (None = any model)."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(steps)

    def records(self) -> list[RequestRecord]:
        """Snapshot of the records."""
        with self._lock:
            return list(self._records)

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
        record = rec.freeze()
        with self._lock:
            self._records.append(record)
        if self.ground_truth is not None:
            offset = time.time_ns() - perf_ns()
            row: dict[str, Any] = {name: getattr(record, name) for name in RECORD_FIELDS}
            for name in ("arrival_ns", "first_byte_ns", "last_byte_ns", "headers_ns"):
                value = row[name]
                row[name.replace("_ns", "_unix_ns")] = None if value is None else value + offset
            self.ground_truth.write(json.dumps(row, separators=(",", ":")) + "\n")

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
        spec = route[0] if route is not None else self._protocol_for_path(request.path)
        rec = Rec(request_id, spec.name, request.path, request.arrival_ns)
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
        if err.retry_after is not None:
            # Both forms: `retry-after-ms` is what the Stainless SDKs prefer (sub-second precision).
            headers += b"retry-after: %s\r\nretry-after-ms: %d\r\n" % (
                f"{err.retry_after:g}".encode(),
                round(err.retry_after * 1000),
            )
        data = self.conn.response(err.status, JSON_CT, body, headers)
        self._final_write(data, err.status)

    def _final_write(self, data: bytes, status: int) -> None:
        rec = self.rec
        rec.status = status
        rec.first_byte_ns = rec.last_byte_ns = perf_ns()
        self.app.finish(rec)
        self.conn.write(data)

    async def plan(
        self, model: str, input_tokens: int, max_tokens: int | None, ttft_scale: float = 1.0
    ) -> Plan:
        """Resolve the fault (raising ErrorReply for an error status, waiting out a hang) and sample latencies."""
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
        tokens = _header_float(headers, "x-mock-output-tokens", 1.0)
        n = max(1, round(tokens if tokens is not None else profile.output_tokens.sample(rng)))
        capped = max_tokens is not None and n > max_tokens
        if capped:
            n = max(1, int(max_tokens or 1))
        itl_dist = profile.itl
        itl_mean = itl if itl is not None else itl_dist.mean
        return Plan(n, capped, t0, ttft, itl, lambda: itl_dist.sample(rng), fault, itl_mean)

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until loop time `deadline` (absolute, so delays never accumulate drift)."""
        delay = deadline - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def reply_json(self, plan: Plan | None, body: bytes, extra_headers: bytes = b"") -> None:
        """Send a JSON body at t0 + ttft + (n-1)*itl (or now when `plan` is None)."""
        data = self.conn.response(200, JSON_CT, body, self.headers + extra_headers)
        if plan is not None:
            await self.sleep_until(plan.t0 + plan.body_delay())
            if plan.fault.kind == "disconnect":
                # A non-streamed request that "dies": no response at all.
                self.app.finish(self.rec)
                self.conn.abort()
                return
        self._final_write(data, 200)

    async def stream(
        self,
        plan: Plan,
        content_type: bytes,
        preamble: bytes,
        chunk: Callable[[int], bytes],
        epilogue: Callable[[], bytes],
    ) -> None:
        """Write headers (+ preamble) now, then chunk(i) at t0+ttft+sum(itl), then epilogue + last chunk."""
        rec = self.rec
        rec.stream = True
        rec.status = 200
        data = self.conn.stream_head(200, content_type, self.headers, preamble)
        rec.headers_ns = rec.last_byte_ns = perf_ns()
        self.conn.write(data)
        pacer = _Pacer(self, plan, chunk, epilogue)
        await pacer.run()


class _Pacer:
    """Writes a stream's content chunks from `loop.call_at` callbacks on absolute deadlines.

    Callbacks instead of a coroutine per chunk: one TimerHandle per chunk, no futures or task steps.
    """

    __slots__ = (
        "chunk",
        "conn",
        "ctx",
        "deadline",
        "done",
        "epilogue",
        "handle",
        "i",
        "loop",
        "plan",
        "stop_at",
    )

    def __init__(
        self, ctx: RequestContext, plan: Plan, chunk: Callable[[int], bytes], epilogue: Callable[[], bytes]
    ) -> None:
        self.ctx = ctx
        self.conn = ctx.conn
        self.loop = ctx.loop
        self.plan = plan
        self.chunk = chunk
        self.epilogue = epilogue
        self.i = 0
        self.deadline = plan.t0 + plan.ttft
        self.stop_at = plan.fault.after_chunks if plan.fault.kind == "disconnect" else None
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.handle: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        self.handle = self.loop.call_at(self.deadline, self._tick)
        try:
            await self.done
        finally:
            if self.handle is not None:
                self.handle.cancel()

    def _tick(self) -> None:
        self.handle = None
        conn, rec, i = self.conn, self.ctx.rec, self.i
        if conn.closed:
            rec.client_closed = True
            self.done.set_result(None)
            return
        if self.stop_at is not None and i >= self.stop_at:
            self.ctx.app.finish(rec)
            conn.abort()
            self.done.set_result(None)
            return
        data = frame(self.chunk(i))
        last = i + 1 == self.plan.n
        if last and self.stop_at is None:
            data += frame(self.epilogue()) + LAST_CHUNK
        t = perf_ns()
        if i == 0:
            rec.first_byte_ns = t
        rec.last_byte_ns = t
        rec.chunks = i + 1
        if last:
            self.ctx.app.finish(rec)
            conn.write(data)
            if self.stop_at is not None:
                conn.abort()
            self.done.set_result(None)
            return
        conn.write(data)
        self.i = i + 1
        self.deadline += self.plan.next_itl()
        self.handle = self.loop.call_at(self.deadline, self._tick)


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
