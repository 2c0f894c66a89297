"""Ground truth for ``harness-peers``: what the mock server actually did, from its request records.

Every figure here comes from :class:`otelbench.mock.RequestRecord` times (server
``perf_counter_ns``): ``received_ns`` (the kernel received the request's last bytes),
``first_byte_ns`` (the first content chunk handed to the socket), ``last_byte_ns`` (the last byte
of the response). A load generator's reported figures are then compared with these, request
population against request population (the same requests, since each run sends its own model
name).

Requests start when they reached the server, not when its event loop read them
(``arrival_ns``): a busy mock's read lag is server latency that every client sees, not a client's
error. Where the mock's reads are not stamped, ``arrival_ns`` is the start, and that lag is
counted against the tools.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Record(Protocol):
    """The fields of a mock ``RequestRecord`` this module reads."""

    @property
    def status(self) -> int: ...
    @property
    def arrival_ns(self) -> int: ...
    @property
    def received_ns(self) -> int | None: ...
    @property
    def first_byte_ns(self) -> int | None: ...
    @property
    def last_byte_ns(self) -> int | None: ...
    @property
    def chunks(self) -> int: ...


@dataclass(frozen=True)
class Stat:
    """Mean, median and 99th percentile of one quantity, in seconds."""

    mean: float
    p50: float
    p99: float

    def minus(self, other: Stat) -> Stat:
        """Element-wise difference (self - other): a tool's error against the ground truth."""
        return Stat(self.mean - other.mean, self.p50 - other.p50, self.p99 - other.p99)

    def as_ms(self) -> dict[str, float]:
        """The three values in milliseconds."""
        return {"mean_ms": self.mean * 1e3, "p50_ms": self.p50 * 1e3, "p99_ms": self.p99 * 1e3}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation between order statistics; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def stat_of(values: Sequence[float]) -> Stat | None:
    """The :class:`Stat` of ``values`` (None when there are none)."""
    if not values:
        return None
    return Stat(math.fsum(values) / len(values), percentile(values, 0.5), percentile(values, 0.99))


@dataclass(frozen=True)
class Truth:
    """The mock's view of one run."""

    requests: int  # records with status 200 and a complete response
    failed: int  # other records
    ttft: Stat | None  # first content chunk - start (streams only)
    itl: Stat | None  # per request: (last byte - first content chunk) / (chunks - 1)
    latency: Stat | None  # last byte - start
    inflight_mean: float  # time-weighted requests in flight over the middle 80 % of the run
    inflight_max: int
    rate_per_s: float  # completions per second over the middle 80 % of completions
    span_s: float  # first start to last byte
    #: How long requests waited in the kernel for the mock's loop to read them (None: not stamped).
    read_wait: Stat | None = None


def ok_records(records: Sequence[Record]) -> list[Record]:
    """Records of complete 200 responses."""
    return [r for r in records if r.status == 200 and r.last_byte_ns is not None]


def start_ns(record: Record) -> int:
    """When the request reached the server: the kernel's receive time, else the read time."""
    return record.arrival_ns if record.received_ns is None else record.received_ns


def ground_truth(records: Sequence[Record]) -> Truth:
    """Summarise one run's records (warm-up requests already removed)."""
    ok = ok_records(records)
    ttft = [(r.first_byte_ns - start_ns(r)) / 1e9 for r in ok if r.first_byte_ns is not None and r.chunks > 0]
    itl = [
        (r.last_byte_ns - r.first_byte_ns) / 1e9 / (r.chunks - 1)
        for r in ok
        if r.first_byte_ns is not None and r.last_byte_ns is not None and r.chunks > 1
    ]
    latency = [(r.last_byte_ns - start_ns(r)) / 1e9 for r in ok if r.last_byte_ns is not None]
    intervals = [(start_ns(r), r.last_byte_ns) for r in records if r.last_byte_ns is not None]
    read_wait = [(r.arrival_ns - r.received_ns) / 1e9 for r in records if r.received_ns is not None]
    mean, peak = inflight(intervals)
    span = (max(e for _, e in intervals) - min(s for s, _ in intervals)) / 1e9 if intervals else math.nan
    return Truth(
        requests=len(ok),
        failed=len(records) - len(ok),
        ttft=stat_of(ttft),
        itl=stat_of(itl),
        latency=stat_of(latency),
        inflight_mean=mean,
        inflight_max=peak,
        rate_per_s=completion_rate([e for _, e in intervals]),
        span_s=span,
        read_wait=stat_of(read_wait),
    )


def inflight(intervals: Sequence[tuple[int, int]], trim: float = 0.1) -> tuple[float, int]:
    """Time-weighted mean of requests in flight over the run's span less ``trim`` at each end, and
    the peak; a request is in flight from its arrival to its last byte."""
    if not intervals:
        return math.nan, 0
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    start, end = events[0][0], events[-1][0]
    lo, hi = start + (end - start) * trim, end - (end - start) * trim
    level = peak = 0
    area = 0.0
    prev = start
    for t, step in events:
        a, b = max(prev, lo), min(t, hi)
        if b > a:
            area += level * (b - a)
        level += step
        peak = max(peak, level)
        prev = t
    return (area / (hi - lo) if hi > lo else float(peak)), peak


def completion_rate(finishes_ns: Sequence[int], trim: float = 0.1) -> float:
    """Completions per second between the ``trim`` and ``1 - trim`` quantiles of the finish times,
    so the ramp-up and the drain of a closed loop do not count."""
    if len(finishes_ns) < 3:
        return math.nan
    ordered = sorted(finishes_ns)
    i, j = int(trim * (len(ordered) - 1)), math.ceil((1 - trim) * (len(ordered) - 1))
    seconds = (ordered[j] - ordered[i]) / 1e9
    return (j - i) / seconds if seconds > 0 else math.nan
