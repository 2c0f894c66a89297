"""Value types of the mock server: latency distributions, model profiles, faults, config, records."""

from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

#: Upper bound of `Fault.hang` (and `x-mock-fault: hang:S`) so a typo cannot wedge a test run.
MAX_HANG_SECONDS = 300.0
#: Request bodies larger than this are refused with 413.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
#: A request whose headers and body have not all arrived this many seconds after its first byte
#: gets 408 (slow clients cannot hold a connection forever; SDKs send a request at once).
DEFAULT_REQUEST_TIMEOUT = 10.0

_N = TypeVar("_N", int, float)
DistKind = Literal["fixed", "normal", "lognormal", "empirical"]
FaultKind = Literal["ok", "status", "disconnect", "hang", "malformed", "error"]


@dataclass(frozen=True, slots=True)
class Dist:
    """A non-negative random quantity (seconds or counts) drawn from a seeded `random.Random`."""

    kind: DistKind
    params: tuple[float, ...]

    @classmethod
    def fixed(cls, value: float) -> Dist:
        """Always `value`."""
        _check_non_negative("value", value)
        return cls("fixed", (float(value),))

    @classmethod
    def normal(cls, mean: float, std: float) -> Dist:
        """Gaussian truncated at zero."""
        _check_non_negative("std", std)
        return cls("normal", (float(mean), float(std)))

    @classmethod
    def lognormal(cls, median: float, sigma: float) -> Dist:
        """Log-normal with the given median and log-space standard deviation (heavy right tail)."""
        if not median > 0:
            raise ValueError(f"lognormal median must be > 0, got {median!r}")
        _check_non_negative("sigma", sigma)
        return cls("lognormal", (math.log(median), float(sigma)))

    @classmethod
    def empirical(cls, values: Sequence[float]) -> Dist:
        """Uniform choice among observed `values` (e.g. measured TTFTs of a real endpoint)."""
        if not values:
            raise ValueError("empirical distribution needs at least one value")
        for v in values:
            _check_non_negative("empirical value", v)
        return cls("empirical", tuple(float(v) for v in values))

    def sample(self, rng: random.Random) -> float:
        """Draw one value (never negative)."""
        kind, p = self.kind, self.params
        if kind == "fixed":
            return p[0]
        if kind == "normal":
            return max(0.0, rng.gauss(p[0], p[1]))
        if kind == "lognormal":
            return rng.lognormvariate(p[0], p[1])
        return rng.choice(p)

    @property
    def mean(self) -> float:
        """Expected value (used where a representative value is needed, e.g. Ollama's eval rate)."""
        kind, p = self.kind, self.params
        if kind == "fixed":
            return p[0]
        if kind == "normal":
            return max(0.0, p[0])
        if kind == "lognormal":
            return math.exp(p[0] + p[1] * p[1] / 2)
        return sum(p) / len(p)

    def scaled(self, factor: float) -> Dist:
        """The same shape with values multiplied by `factor` (e.g. milliseconds to seconds)."""
        kind, p = self.kind, self.params
        if kind == "lognormal":
            return Dist("lognormal", (p[0] + math.log(factor), p[1]))
        return Dist(kind, tuple(v * factor for v in p))


def _number(text: str, kind: type[_N], what: str) -> _N:
    try:
        return kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ValueError(f"{what} must be {noun}, got {text!r}") from None


def _check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


_DEFAULT_TTFT = Dist.fixed(0.02)
_DEFAULT_ITL = Dist.fixed(0.002)
_DEFAULT_OUTPUT_TOKENS = Dist.fixed(32)


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """Latency and length model of one model: time to first token, inter-token latency, output length."""

    ttft: Dist = _DEFAULT_TTFT
    itl: Dist = _DEFAULT_ITL
    output_tokens: Dist = _DEFAULT_OUTPUT_TOKENS
    #: Extra prefill time per input token (seconds), added to the sampled TTFT.
    ttft_per_input_token: float = 0.0


@dataclass(frozen=True, slots=True)
class Fault:
    """The outcome forced on one request: normal, an error status, a mid-stream disconnect, a hang,
    a malformed chunk, or an in-stream error event."""

    kind: FaultKind = "ok"
    code: int = 200
    retry_after: float | None = None
    body: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    after_chunks: int = 0
    seconds: float = 0.0

    @classmethod
    def ok(cls) -> Fault:
        """A normal response."""
        return cls("ok")

    @classmethod
    def status(cls, code: int, retry_after: float | None = None, body: dict[str, Any] | None = None) -> Fault:
        """An error response with the provider's error JSON (or `body`); `retry-after` when given."""
        if not 400 <= int(code) <= 599:
            raise ValueError(f"fault status must be 400..599, got {code!r}")
        if retry_after is not None:
            _check_non_negative("retry_after", retry_after)
        return cls("status", code=int(code), retry_after=retry_after, body=body)

    @classmethod
    def disconnect(cls, after_chunks: int) -> Fault:
        """Close the connection after `after_chunks` content chunks, without the terminating chunk."""
        if int(after_chunks) < 0:
            raise ValueError(f"after_chunks must be >= 0, got {after_chunks!r}")
        return cls("disconnect", after_chunks=int(after_chunks))

    @classmethod
    def malformed(cls, after_chunks: int) -> Fault:
        """Send `after_chunks` good content chunks, then one whose JSON is cut in half (still framed
        as an SSE event / NDJSON line), then the rest of the stream; a non-streamed reply gets a 200
        whose JSON body is cut in half."""
        if int(after_chunks) < 0:
            raise ValueError(f"after_chunks must be >= 0, got {after_chunks!r}")
        return cls("malformed", after_chunks=int(after_chunks))

    @classmethod
    def stream_error(cls, after_chunks: int) -> Fault:
        """Send `after_chunks` content chunks, then the provider's own in-stream error event, and
        end the stream there (a non-streamed request gets a 500)."""
        if int(after_chunks) < 0:
            raise ValueError(f"after_chunks must be >= 0, got {after_chunks!r}")
        return cls("error", after_chunks=int(after_chunks))

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Wait `seconds` (at most MAX_HANG_SECONDS) before answering normally."""
        _check_non_negative("hang seconds", seconds)
        return cls("hang", seconds=min(float(seconds), MAX_HANG_SECONDS))

    @classmethod
    def parse(cls, spec: str, retry_after: float | None = None) -> Fault:
        """Parse `ok`, `CODE[:RETRY_AFTER]`, `disconnect:N`, `malformed:N`, `error:N` or `hang:SECONDS`
        (the `x-mock-fault` grammar)."""
        text = spec.strip().lower()
        head, _, arg = text.partition(":")
        try:
            if head == "ok":
                return cls.ok()
            if head == "disconnect":
                return cls.disconnect(_number(arg or "0", int, "N (content chunks)"))
            if head == "malformed":
                return cls.malformed(_number(arg or "0", int, "N (content chunks)"))
            if head == "error":
                return cls.stream_error(_number(arg or "0", int, "N (content chunks)"))
            if head == "hang":
                return cls.hang(_number(arg, float, "SECONDS"))
            if head.isdigit():
                return cls.status(int(head), _number(arg, float, "RETRY_AFTER") if arg else retry_after)
        except ValueError as exc:
            raise ValueError(f"bad fault spec {spec!r}: {exc}") from None
        raise ValueError(
            f"bad fault spec {spec!r}: expected CODE[:RETRY_AFTER], disconnect:N, malformed:N, error:N, hang:S or ok"
        )

    @property
    def label(self) -> str | None:
        """The spec string recorded in `RequestRecord.fault` (None for a normal outcome)."""
        if self.kind == "status":
            return str(self.code)
        if self.kind in ("disconnect", "malformed", "error"):
            return f"{self.kind}:{self.after_chunks}"
        if self.kind == "hang":
            return f"hang:{self.seconds:g}"
        return None


@dataclass
class MockConfig:
    """Configuration of a `MockServer`."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 0
    #: Per-model profiles: exact model name first, then `fnmatch` patterns (e.g. "llama3*") in order.
    profiles: dict[str, ModelProfile] = field(default_factory=dict)
    default_profile: ModelProfile = field(default_factory=ModelProfile)
    #: Random faults: `x-mock-fault` spec ("429", "503:1.5", "disconnect:3", "malformed:2", "hang:5")
    #: -> probability.
    fault_rates: dict[str, float] = field(default_factory=dict)
    #: Append one JSON line per finished request here (see `RequestRecord`).
    ground_truth_path: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    #: Records kept in memory (oldest dropped first); the ground-truth file keeps all.
    max_records: int = 1_000_000
    #: Server processes sharing the port (SO_REUSEPORT, Linux); more than 1 implies child processes,
    #: and then `MockServer.script()` is refused (the kernel picks which worker gets a request).
    workers: int = 1

    def __post_init__(self) -> None:
        total = 0.0
        for spec, rate in self.fault_rates.items():
            Fault.parse(spec)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault_rates[{spec!r}] must be within 0..1, got {rate!r}")
            total += rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault_rates add up to {total:g} > 1")
        if (
            isinstance(self.workers, bool)
            or not isinstance(self.workers, int)
            or not 1 <= self.workers <= 256
        ):
            raise ValueError(f"workers must be an integer within 1..256, got {self.workers!r}")

    def profile_for(self, model: str) -> ModelProfile:
        """The profile serving `model`."""
        profile = self.profiles.get(model)
        if profile is not None:
            return profile
        for pattern, candidate in self.profiles.items():
            if fnmatch.fnmatchcase(model, pattern):
                return candidate
        return self.default_profile


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Ground truth of one request as the server saw it (times are server `perf_counter_ns`).

    `arrival_ns` is when the complete request had been read; `first_byte_ns` when the first
    content-bearing chunk (or the whole non-streamed body) was handed to the socket;
    `last_byte_ns` when the last byte was; `headers_ns` when the response headers were.
    `output_tokens` is the count reported in usage (content + reasoning tokens), `chunks`
    the content chunks actually written (a malformed one included). `late_ns` is the largest
    delay of a content chunk (or of a non-streamed body) past its planned time: how far the
    server fell behind its own schedule (a few microseconds when idle; it grows under overload).
    `worker` is the index of the server process that answered (0 unless `MockConfig.workers` > 1).
    `received_ns` is when the kernel received the request's last bytes, before the server's event
    loop read them (None where reads are not stamped, see `otelbench.rxtime`); `arrival_ns` minus
    it is how long the request waited for a busy server.
    """

    request_id: str
    protocol: str
    path: str
    model: str
    stream: bool
    status: int
    fault: str | None
    arrival_ns: int
    first_byte_ns: int | None
    last_byte_ns: int | None
    chunks: int
    input_tokens: int
    output_tokens: int
    headers_ns: int | None = None
    client_closed: bool = False
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    late_ns: int = 0
    worker: int = 0
    received_ns: int | None = None
