"""Load scheduling: closed loop (fixed concurrency) and open loop (constant or Poisson rate).

The scheduler knows nothing about providers: it hands :class:`Job` values to a ``send``
coroutine, which must catch its own request errors (a raised exception is counted as failed,
and the load goes on). Each job carries its *intended* send time; ``send`` records the actual
one, so a client that falls behind an open-loop schedule shows up as send lag instead of
silently lowering the rate (coordinated omission).

Stopping: ``stop`` (an ``asyncio.Event``, e.g. set by Ctrl-C) ends sending at once; requests in
flight then get ``drain_timeout`` seconds (cut short by ``abort``) to finish before they are
cancelled. Reaching the request or duration limit ends sending too, but in-flight requests are
always awaited.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from otelbench.datasets import Prompt

Arrival = Literal["constant", "poisson"]


@dataclass(frozen=True)
class Job:
    """One request to send: its sequence number, prompt and intended send time (perf_counter ns)."""

    index: int
    prompt: Prompt
    intended_ns: int


SendFn = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """When to stop sending: after ``requests`` jobs and/or ``duration`` seconds (None = no limit)."""

    requests: int | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        if self.requests is None and self.duration is None:
            raise ValueError("Limits needs a request count or a duration")


@dataclass
class LoadResult:
    """What the scheduler did (the statistics come from the metrics and the raw log)."""

    sent: int
    failed: int
    started_ns: int
    ended_ns: int
    interrupted: bool = False
    #: Jobs still in flight when the drain timeout expired (cancelled).
    cancelled: int = 0

    @property
    def wall_seconds(self) -> float:
        """Seconds from the first send to the last completion."""
        return max(0.0, (self.ended_ns - self.started_ns) / 1e9)


class _Counter:
    """Hands out job indices until the request or duration limit is reached.

    ``first`` and ``step`` interleave several processes' jobs over one prompt sequence: worker
    ``w`` of ``n`` hands out ``w, w + n, w + 2n, ...`` (its request limit counts its own jobs).
    """

    def __init__(self, limits: Limits, start_ns: int, first: int = 0, step: int = 1) -> None:
        self.next = 0
        self.first = first
        self.step = step
        self.failed = 0
        self.requests = limits.requests
        self.deadline_ns = start_ns + int(limits.duration * 1e9) if limits.duration is not None else math.inf

    def take(self, now_ns: int) -> int | None:
        if (self.requests is not None and self.next >= self.requests) or now_ns >= self.deadline_ns:
            return None
        index = self.first + self.step * self.next
        self.next += 1
        return index


async def _guarded(send: SendFn, job: Job, counter: _Counter) -> None:
    try:
        await send(job)
    except asyncio.CancelledError:
        raise
    except Exception:
        # `send` records its own failures; this only keeps one bad request from ending the load.
        counter.failed += 1


async def closed_loop(
    send: SendFn,
    prompts: Sequence[Prompt],
    *,
    concurrency: int,
    limits: Limits,
    stop: asyncio.Event | None = None,
    drain_timeout: float = 10.0,
    abort: asyncio.Event | None = None,
    first: int = 0,
    step: int = 1,
) -> LoadResult:
    """Keep ``concurrency`` requests in flight until a limit is reached or ``stop`` is set."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    stop = stop or asyncio.Event()
    start = time.perf_counter_ns()
    counter = _Counter(limits, start, first, step)

    async def worker() -> None:
        while not stop.is_set():
            now = time.perf_counter_ns()
            index = counter.take(now)
            if index is None:
                return
            # In a closed loop a request is due the moment a slot frees: intended == now.
            await _guarded(send, Job(index, prompts[index % len(prompts)], now), counter)

    slots = concurrency if limits.requests is None else min(concurrency, limits.requests)
    workers = [asyncio.create_task(worker()) for _ in range(max(1, slots))]
    interrupted, cancelled = await _supervise(workers, set(), stop, drain_timeout, abort=abort)
    return LoadResult(counter.next, counter.failed, start, time.perf_counter_ns(), interrupted, cancelled)


def arrival_offsets(rate: float, arrival: Arrival = "constant", seed: int = 0) -> Iterator[float]:
    """Intended send times in seconds after the start: ``i / rate``, or a Poisson process of ``rate``."""
    if not rate > 0 or math.isinf(rate):
        raise ValueError(f"rate must be a positive number, got {rate!r}")
    if arrival == "constant":
        return (i / rate for i in itertools.count())
    rng = random.Random(seed)

    def poisson() -> Iterator[float]:
        t = 0.0
        while True:
            yield t
            t += rng.expovariate(rate)

    return poisson()


async def open_loop(
    send: SendFn,
    prompts: Sequence[Prompt],
    *,
    rate: float,
    limits: Limits,
    arrival: Arrival = "constant",
    seed: int = 0,
    stop: asyncio.Event | None = None,
    drain_timeout: float = 10.0,
    abort: asyncio.Event | None = None,
    first: int = 0,
    step: int = 1,
    phase: float = 0.0,
) -> LoadResult:
    """Start requests at absolute times ``start + phase + offset_i`` regardless of how many are
    in flight (``phase`` staggers the workers of one constant-rate schedule)."""
    stop = stop or asyncio.Event()
    start = time.perf_counter_ns()
    counter = _Counter(limits, start, first, step)
    in_flight: set[asyncio.Task[None]] = set()
    offsets = arrival_offsets(rate, arrival, seed)

    async def dispatch() -> None:
        for offset in offsets:
            intended = start + int((phase + offset) * 1e9)
            if intended >= counter.deadline_ns:
                return
            delay = (intended - time.perf_counter_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            # Absolute schedule: when behind, send at once and keep the intended time; never
            # stretch the schedule (that would hide the client's lag).
            index = counter.take(intended)
            if index is None:
                return
            task = asyncio.create_task(
                _guarded(send, Job(index, prompts[index % len(prompts)], intended), counter)
            )
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    dispatcher = asyncio.create_task(dispatch())
    interrupted, cancelled = await _supervise(
        [dispatcher], in_flight, stop, drain_timeout, cancel_on_stop=[dispatcher], abort=abort
    )
    return LoadResult(counter.next, counter.failed, start, time.perf_counter_ns(), interrupted, cancelled)


async def _supervise(
    senders: list[asyncio.Task[None]],
    in_flight: set[asyncio.Task[None]],
    stop: asyncio.Event,
    drain_timeout: float,
    *,
    cancel_on_stop: Sequence[asyncio.Task[None]] = (),
    abort: asyncio.Event | None = None,
) -> tuple[bool, int]:
    """Wait for the senders and the requests they started; on ``stop``, drain then cancel.

    ``senders`` are the tasks that start requests (a closed-loop worker carries its request
    inside; the open-loop dispatcher leaves them in ``in_flight``); ``cancel_on_stop`` are
    senders that only wait between sends and can be cancelled at once. Returns
    (interrupted, number of requests cancelled after the drain timeout).
    """
    stopper = asyncio.create_task(stop.wait())
    try:
        # One gather per phase, not asyncio.wait in a loop: that re-registers callbacks on every
        # task after each completion, quadratic at 1 000 requests in flight.
        for group in (senders, in_flight):
            await _first(asyncio.gather(*group, return_exceptions=True), stopper)
            if stop.is_set():
                break
        if not stop.is_set():
            return False, 0
        for task in cancel_on_stop:
            task.cancel()
        drain = {t for t in (*senders, *in_flight) if not t.done() and t not in cancel_on_stop}
        if drain:
            aborter = asyncio.create_task((abort or asyncio.Event()).wait())
            await _first(asyncio.gather(*drain, return_exceptions=True), aborter, timeout=drain_timeout)
            aborter.cancel()
        late = {t for t in drain if not t.done()}
        for task in late:
            task.cancel()
        await asyncio.gather(*late, *cancel_on_stop, return_exceptions=True)
        return True, len(late)
    finally:
        stopper.cancel()


async def _first(*futures: asyncio.Future[Any], timeout: float | None = None) -> None:
    """Wait until one of ``futures`` is done (or ``timeout`` passes)."""
    await asyncio.wait(set(futures), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)


__all__ = ["Arrival", "Job", "Limits", "LoadResult", "SendFn", "arrival_offsets", "closed_loop", "open_loop"]
