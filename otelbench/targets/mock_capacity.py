"""Target ``mock-capacity``: how much load the mock server takes on this machine.

The mock runs in its own process (``MockServer(isolated=True)``, or ``workers`` processes); the
load comes from one or more *other* processes running :mod:`otelbench.mock.loadgen`, a lean
epoll client that sends pre-encoded requests over keep-alive connections and counts responses
and content chunks by searching the received bytes. Everything binds 127.0.0.1.

Phases (each: ``warmup_s`` of load, then a ``duration_s`` measurement window, then the requests
still in flight are drained):

* ``requests/<protocol>``: non-streamed generation requests (OpenAI chat completions, Anthropic
  messages, Ollama chat) from ``connections`` connections with one request in flight each, as SDK
  clients do (no pipelining), and no configured latency (TTFT = ITL = 0), so the server is busy
  all the time. Figure: responses completed per second.
* ``streams/<C>``: a sweep over C concurrent streams (OpenAI chat SSE, ``stream_tokens`` content
  chunks each, TTFT 0, inter-token latency ``itl_ms``, back to back on each connection). Each
  content chunk is due at its own time, so the server makes one write per chunk while it keeps
  up. Per step: content chunks per second and how late the streams ended against the plan
  (last byte - arrival - (n-1) x ITL, p50/p99 over the window's streams; a late wake-up of the
  process does not accumulate there, since overdue chunks go out together, but a server short
  of CPU does). A step is behind when its median stream ends more than ``late_limit_ms`` late;
  the sweep stops once a step is behind with the server saturated, or after two steps behind in
  a row. Figure: the highest chunk rate of a step that kept the schedule (a rate reached while
  behind says little about a replay), and the chunks per server-CPU second.

Honesty checks, per phase:

* CPU time of the server (all workers) and of the generators inside the window, hence each
  side's utilisation and CPU µs per request / chunk; ``limited_by`` says which side was saturated
  (>= 85 % of a core per process), or "neither" when both had idle time - on a shared VM that
  means other processes took the CPU, so the absolute rate understates the mock.
* ``*_per_core`` = window count / server CPU seconds: the rate one fully used core sustains,
  independent of how much CPU the machine left to the server.
* The generator's totals must equal the server's ground truth (records and their chunk counts)
  once the in-flight requests are drained; the window counts are compared too (they may differ
  by the requests in flight at the window's edges).

Metrics: ``requests_per_s`` and ``requests_per_s_per_core`` (first protocol, OpenAI by default;
``anthropic_*`` / ``ollama_*`` for the others), ``server_cpu_util``, ``generator_cpu_util``,
``server_cpu_us_per_request``, ``generator_cpu_us_per_request``; for the sweep ``chunks_per_s``,
``chunks_per_s_per_core``, ``stream_concurrency``, ``stream_end_late_p50_ms`` / ``_p99_ms``,
``stream_server_cpu_util`` and ``server_cpu_us_per_chunk`` at the best step that kept the schedule
(NaN if none did), ``chunks_per_s_max`` and ``chunks_per_s_per_core_max`` over all steps. The raw
result's ``details.phases`` holds every phase's counts, CPU times, lateness and verdict.

Aim (issue 4): >= 5 000 non-streamed requests/s and >= 100 000 chunks/s per core.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile, RequestRecord
from otelbench.mock.loadgen import LoadSpec

from . import BenchmarkError, BenchmarkResult, utc_now_iso

TARGET_ID = "mock-capacity"
REQUEST_AIM_PER_CORE = 5_000.0
CHUNK_AIM_PER_CORE = 100_000.0
#: A process using at least this share of a core during the window counts as saturated.
SATURATED = 0.85

JSON_MODEL = "capacity-json"
STREAM_MODEL = "capacity-stream"
_PROMPT = [{"role": "user", "content": "Say something about mock servers, please."}]


@dataclass(frozen=True)
class _Protocol:
    path: str
    headers: bytes
    #: Occurs once per streamed content chunk.
    chunk_marker: bytes

    def body(self, name: str, model: str, stream: bool) -> dict[str, Any]:
        if name == "anthropic":
            return {"model": model, "max_tokens": 1024, "messages": _PROMPT, "stream": stream}
        return {"model": model, "messages": _PROMPT, "stream": stream}


PROTOCOLS = {
    "openai": _Protocol("/v1/chat/completions", b"authorization: Bearer sk-bench\r\n", b'{"content":"'),
    "anthropic": _Protocol(
        "/v1/messages", b"x-api-key: sk-bench\r\nanthropic-version: 2023-06-01\r\n", b'"type":"text_delta"'
    ),
    "ollama": _Protocol("/api/chat", b"", b'"done":false}'),
}
#: Marks the end of every chunked (streamed) response: its terminating zero-size chunk.
_STREAM_END = b"\r\n0\r\n\r\n"


def build_request(protocol: str, stream: bool) -> bytes:
    """The pre-encoded HTTP/1.1 request of a phase."""
    proto = PROTOCOLS[protocol]
    body = json.dumps(proto.body(protocol, STREAM_MODEL if stream else JSON_MODEL, stream)).encode()
    return (
        b"POST %b HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n%bcontent-length: %d\r\n\r\n%b"
        % (
            proto.path.encode(),
            proto.headers,
            len(body),
            body,
        )
    )


@dataclass(frozen=True)
class CapacityConfig:
    """Knobs of the target (the defaults are what `otelbench run` uses)."""

    duration_s: float = 3.0
    warmup_s: float = 1.0
    #: Connections of the non-streamed phases (one request in flight on each).
    connections: int = 64
    protocols: tuple[str, ...] = ("openai", "anthropic", "ollama")
    json_output_tokens: int = 16
    stream_protocol: str = "openai"
    stream_steps: tuple[int, ...] = (32, 64, 96, 128, 192, 256, 384, 512)
    stream_tokens: int = 64
    itl_ms: float = 1.0
    #: A sweep step keeps the schedule while its median stream ends at most this late.
    late_limit_ms: float = 1.0
    #: Server processes (MockConfig.workers) and load-generator processes.
    workers: int = 1
    generators: int = 1
    #: In-flight requests still unanswered this long after the window are abandoned.
    drain_s: float = 10.0
    #: No new phase starts after this much time; the sweep is cut short instead.
    time_budget_s: float = 120.0


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    protocol: str
    stream: bool
    connections: int
    window_s: float = 0.0
    #: Successful responses / content chunks the generators counted inside the window.
    requests: int = 0
    chunks: int = 0
    server_cpu_s: float = 0.0
    generator_cpu_s: float = 0.0
    #: Whole-phase totals, generator side and server side (ground truth).
    received: int = 0
    received_chunks: int = 0
    server_records: int = 0
    server_chunks: int = 0
    server_window_records: int = -1
    errors: int = 0
    connection_errors: int = 0
    unanswered: int = 0
    #: Streams: how much later than planned the last chunk was written (ms), over the window's
    #: complete streams. Falling behind accumulates here; a late wake-up does not (the mock writes
    #: overdue chunks together and is back on schedule).
    end_late_p50_ms: float = math.nan
    end_late_p99_ms: float = math.nan
    #: The largest lateness of any chunk of a request (`RequestRecord.late_ns`), p50/p99 (ms);
    #: for non-streamed requests: from arrival to the body's write.
    late_p50_ms: float = math.nan
    late_p99_ms: float = math.nan
    #: Chunks/s if every stream kept its schedule exactly and requests cost nothing (streams only).
    schedule_chunks_per_s: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Requests (non-streamed) or chunks (streamed) per second in the window."""
        count = self.chunks if self.stream else self.requests
        return count / self.window_s if self.window_s > 0 else math.nan

    @property
    def per_core(self) -> float:
        """The same per second of server CPU."""
        count = self.chunks if self.stream else self.requests
        return count / self.server_cpu_s if self.server_cpu_s > 0 else math.nan

    def utilisation(self, workers: int, generators: int) -> tuple[float, float]:
        """(server, generator) share of one core per process during the window."""
        if self.window_s <= 0:
            return math.nan, math.nan
        return (
            self.server_cpu_s / self.window_s / workers,
            self.generator_cpu_s / self.window_s / generators,
        )

    def limited_by(self, workers: int, generators: int) -> str:
        """Which side was saturated: "server", "generator", "both" or "neither"."""
        server, generator = self.utilisation(workers, generators)
        saturated = [name for name, u in (("server", server), ("generator", generator)) if u >= SATURATED]
        return "both" if len(saturated) == 2 else (saturated[0] if saturated else "neither")

    def on_schedule(self, limit_ms: float) -> bool:
        """Whether the streams kept their schedule: the median stream ended within `limit_ms` of plan."""
        return self.end_late_p50_ms <= limit_ms

    def summary(self, workers: int, generators: int) -> dict[str, Any]:
        """A JSON-ready row for the details."""
        server, generator = self.utilisation(workers, generators)
        count = self.chunks if self.stream else self.requests
        row = asdict(self)
        row.update(
            rate_per_s=self.rate,
            per_core=self.per_core,
            server_cpu_util=server,
            generator_cpu_util=generator,
            server_cpu_us_per_item=self.server_cpu_s / count * 1e6 if count else None,
            generator_cpu_us_per_item=self.generator_cpu_s / count * 1e6 if count else None,
            limited_by=self.limited_by(workers, generators),
        )
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _clocks_shared() -> bool:
    """Whether `perf_counter_ns` (the records) and `monotonic` (the generator) are one clock."""
    perf, mono = time.get_clock_info("perf_counter"), time.get_clock_info("monotonic")
    return perf.implementation == mono.implementation


class MockCapacityTarget:
    """Non-streamed requests/s and streamed chunks/s of the mock, loaded from other processes."""

    id = TARGET_ID
    description = "mock server capacity: non-streamed requests/s and streamed chunks/s (per core too)"

    def __init__(self, config: CapacityConfig | None = None, **overrides: Any) -> None:
        config = config or CapacityConfig()
        if overrides:
            config = CapacityConfig(**{**asdict(config), **overrides})
        for name in ("connections", "json_output_tokens", "workers", "generators"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if config.stream_tokens < 2 or config.itl_ms <= 0 or config.duration_s <= 0:
            raise ValueError("stream_tokens >= 2, itl_ms > 0 and duration_s > 0 required")
        unknown = [p for p in (*config.protocols, config.stream_protocol) if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocol {unknown[0]!r} (known: {', '.join(PROTOCOLS)})")
        self.config = config

    def run(self) -> BenchmarkResult:
        """Run every phase and return the figures."""
        cfg = self.config
        timestamp = utc_now_iso()
        started = time.monotonic()
        load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
        profiles = {
            JSON_MODEL: ModelProfile(
                ttft=Dist.fixed(0), itl=Dist.fixed(0), output_tokens=Dist.fixed(cfg.json_output_tokens)
            ),
            STREAM_MODEL: ModelProfile(
                ttft=Dist.fixed(0),
                itl=Dist.fixed(cfg.itl_ms / 1000),
                output_tokens=Dist.fixed(cfg.stream_tokens),
            ),
        }
        mock_config = MockConfig(seed=0, profiles=profiles, workers=cfg.workers, max_records=2_000_000)
        phases: list[Phase] = []
        skipped: list[str] = []
        with MockServer(mock_config, isolated=True) as server:
            for protocol in cfg.protocols:
                if time.monotonic() - started > cfg.time_budget_s:
                    skipped.append(f"requests/{protocol}")
                    continue
                phases.append(self._phase(server, f"requests/{protocol}", protocol, False, cfg.connections))
            behind = 0
            for streams in cfg.stream_steps:
                if time.monotonic() - started > cfg.time_budget_s:
                    skipped.append(f"streams/{streams}")
                    continue
                phase = self._phase(server, f"streams/{streams}", cfg.stream_protocol, True, streams)
                phases.append(phase)
                behind = 0 if phase.on_schedule(cfg.late_limit_ms) else behind + 1
                server_util = phase.utilisation(cfg.workers, cfg.generators)[0]
                # Past the knee (behind with a saturated server, or twice running: one late step
                # can be another process's doing), more streams would only be later.
                if behind and (server_util >= SATURATED or behind == 2):
                    break
        if not any(p.requests or p.chunks for p in phases):
            raise BenchmarkError("the load generator completed no request: no capacity figure")
        metrics, warnings = self._figures(phases)
        workers, generators = cfg.workers, cfg.generators
        rows = [p.summary(workers, generators) for p in phases]
        details: dict[str, Any] = {
            "config": asdict(cfg),
            "phases": rows,
            "skipped_phases": skipped,
            "warnings": warnings,
            "machine": _machine(load_before),
            "elapsed_s": time.monotonic() - started,
            "aims": {
                "requests_per_s_per_core": REQUEST_AIM_PER_CORE,
                "chunks_per_s_per_core": CHUNK_AIM_PER_CORE,
            },
            "note": self._note(phases),
        }
        return BenchmarkResult(target_id=self.id, metrics=metrics, timestamp=timestamp, details=details)

    # --- one phase ----------------------------------------------------------------------------
    def _phase(self, server: MockServer, name: str, protocol: str, stream: bool, connections: int) -> Phase:
        cfg = self.config
        phase = Phase(name=name, protocol=protocol, stream=stream, connections=connections)
        server.clear_records()
        request = build_request(protocol, stream)
        # Time for the generator processes to start and connect before the warm-up begins.
        start_at = time.monotonic() + 0.5
        window_start = start_at + cfg.warmup_s
        window_end = window_start + cfg.duration_s
        deadline_s = cfg.warmup_s + cfg.duration_s + cfg.drain_s + 5.0
        split = [
            connections // cfg.generators + (i < connections % cfg.generators) for i in range(cfg.generators)
        ]
        procs = []
        for share in (s for s in split if s > 0):
            spec = LoadSpec(
                host="127.0.0.1",
                port=server.port,
                request=request,
                connections=share,
                depth=1,
                stream=stream,
                response_marker=_STREAM_END if stream else b"HTTP/1.1 ",
                chunk_marker=PROTOCOLS[protocol].chunk_marker if stream else b"",
                start_at=start_at,
                warmup_s=cfg.warmup_s,
                duration_s=cfg.duration_s,
                drain_s=cfg.drain_s,
                deadline_s=deadline_s,
            )
            proc = subprocess.Popen(
                [sys.executable, "-m", "otelbench.mock.loadgen", json.dumps(spec.to_json())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
        try:
            _sleep_until(window_start)
            cpu0 = server.cpu_seconds()
            _sleep_until(window_end)
            phase.server_cpu_s = server.cpu_seconds() - cpu0
            results = []
            for proc in procs:
                out, err = proc.communicate(timeout=deadline_s + 10)
                if proc.returncode != 0:
                    raise BenchmarkError(
                        f"load generator failed ({name}, exit {proc.returncode}): {err.strip()[-300:]}"
                    )
                results.append(json.loads(out))
        except subprocess.TimeoutExpired:
            raise BenchmarkError(f"load generator overran its deadline ({name})") from None
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        records = server.records
        phase.window_s = statistics.fmean(r["window_end"] - r["window_start"] for r in results)
        phase.requests = sum(r["window_ok"] for r in results)
        phase.chunks = sum(r["window_chunks"] for r in results)
        phase.generator_cpu_s = sum(r["window_cpu_s"] for r in results)
        phase.received = sum(r["received"] for r in results)
        phase.received_chunks = sum(r["chunks"] for r in results)
        phase.errors = sum(r["received"] - r["ok"] for r in results)
        phase.connection_errors = sum(r["connection_errors"] for r in results)
        phase.unanswered = sum(r["unanswered"] for r in results)
        phase.server_records = len(records)
        phase.server_chunks = sum(r.chunks for r in records)
        self._check(phase, records, results)
        return phase

    def _check(self, phase: Phase, records: list[RequestRecord], results: list[dict[str, Any]]) -> None:
        """Compare the generator's counts with the server's ground truth."""
        if phase.received != phase.server_records:
            phase.notes.append(
                f"generator counted {phase.received} responses, the server recorded {phase.server_records}"
            )
        if phase.stream and phase.received_chunks != phase.server_chunks:
            phase.notes.append(
                f"generator counted {phase.received_chunks} chunks, the server wrote {phase.server_chunks}"
            )
        if phase.errors or phase.connection_errors or phase.unanswered:
            phase.notes.append(
                f"{phase.errors} error responses, {phase.connection_errors} dropped connections, "
                f"{phase.unanswered} requests unanswered"
            )
        start = min(r["window_start"] for r in results)
        end = max(r["window_end"] for r in results)
        if _clocks_shared():
            lo, hi = int(start * 1e9), int(end * 1e9)
            in_window = [r for r in records if r.last_byte_ns is not None and lo <= r.last_byte_ns < hi]
            phase.server_window_records = len(in_window)
            late = [r.late_ns / 1e6 for r in in_window if r.status == 200]
            phase.late_p50_ms = _percentile(late, 0.5)
            phase.late_p99_ms = _percentile(late, 0.99)
            if phase.stream:
                planned_ms = (self.config.stream_tokens - 1) * self.config.itl_ms
                end_late = [
                    (r.last_byte_ns - r.arrival_ns) / 1e6 - planned_ms
                    for r in in_window
                    if r.last_byte_ns is not None and r.chunks == self.config.stream_tokens
                ]
                phase.end_late_p50_ms = _percentile(end_late, 0.5)
                phase.end_late_p99_ms = _percentile(end_late, 0.99)
        if phase.stream:
            itl = self.config.itl_ms / 1000
            tokens = self.config.stream_tokens
            phase.schedule_chunks_per_s = phase.connections * tokens / ((tokens - 1) * itl)

    # --- figures --------------------------------------------------------------------------------
    def _figures(self, phases: list[Phase]) -> tuple[dict[str, float], list[str]]:
        cfg = self.config
        workers, generators = cfg.workers, cfg.generators
        metrics: dict[str, float] = {}
        warnings = [f"{p.name}: {note}" for p in phases for note in p.notes]
        for phase in (p for p in phases if not p.stream):
            prefix = "" if phase.protocol == cfg.protocols[0] else f"{phase.protocol}_"
            server, generator = phase.utilisation(workers, generators)
            metrics[f"{prefix}requests_per_s"] = phase.rate
            metrics[f"{prefix}requests_per_s_per_core"] = phase.per_core
            if not prefix:
                metrics["server_cpu_util"] = server
                metrics["generator_cpu_util"] = generator
                metrics["server_cpu_us_per_request"] = (
                    phase.server_cpu_s / phase.requests * 1e6 if phase.requests else math.nan
                )
                metrics["generator_cpu_us_per_request"] = (
                    phase.generator_cpu_s / phase.requests * 1e6 if phase.requests else math.nan
                )
        sweep = [p for p in phases if p.stream]
        if sweep:
            kept = [p for p in sweep if p.on_schedule(cfg.late_limit_ms)]
            best = max(kept, key=lambda p: p.rate) if kept else None
            if best is None:
                warnings.append(
                    f"no stream step kept its schedule (median stream end <= {cfg.late_limit_ms} ms late)"
                )
            metrics["chunks_per_s"] = best.rate if best else math.nan
            metrics["chunks_per_s_per_core"] = best.per_core if best else math.nan
            metrics["stream_concurrency"] = float(best.connections) if best else math.nan
            metrics["stream_end_late_p50_ms"] = best.end_late_p50_ms if best else math.nan
            metrics["stream_end_late_p99_ms"] = best.end_late_p99_ms if best else math.nan
            metrics["stream_server_cpu_util"] = best.utilisation(workers, generators)[0] if best else math.nan
            metrics["server_cpu_us_per_chunk"] = (
                best.server_cpu_s / best.chunks * 1e6 if best and best.chunks else math.nan
            )
            metrics["chunks_per_s_max"] = max(p.rate for p in sweep)
            # At saturation (possibly past the knee, where overdue chunks share writes).
            metrics["chunks_per_s_per_core_max"] = max(p.per_core for p in sweep)
        return metrics, warnings

    def _note(self, phases: list[Phase]) -> str:
        cfg = self.config
        parts = []
        for phase in phases:
            server, generator = phase.utilisation(cfg.workers, cfg.generators)
            unit = "chunks" if phase.stream else "req"
            late = (
                f", streams end {phase.end_late_p50_ms:.2f} ms late (p50), {phase.end_late_p99_ms:.2f} ms (p99)"
                if phase.stream
                else ""
            )
            parts.append(
                f"{phase.name}: {phase.rate:,.0f} {unit}/s ({phase.per_core:,.0f}/s per server core; "
                f"server {server:.0%}, generator {generator:.0%} of a core{late}; "
                f"limited by {phase.limited_by(cfg.workers, cfg.generators)})"
            )
        return "Phases: " + "; ".join(parts) + "."


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _machine(load_before: tuple[float, float, float] | None) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "clocks_shared": _clocks_shared(),
    }
