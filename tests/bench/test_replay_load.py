"""The load scheduler with fake senders: counts, concurrency, absolute schedules, stop and drain."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from otelbench.datasets import Prompt
from otelbench.load import Job, Limits, LoadResult, arrival_offsets, closed_loop, open_loop

PROMPTS = [Prompt(({"role": "user", "content": f"p{i}"},), id=str(i)) for i in range(3)]


class Recorder:
    """A fake ``send`` that sleeps and remembers what it was given."""

    def __init__(self, seconds: float = 0.001, block: float = 0.0) -> None:
        self.seconds = seconds
        self.block = block  # synchronous work per send: a client too slow for its schedule
        self.jobs: list[Job] = []
        self.sent_ns: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self.finished = 0

    async def __call__(self, job: Job) -> None:
        self.sent_ns.append(time.perf_counter_ns())
        self.jobs.append(job)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.block:
            time.sleep(self.block)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.in_flight -= 1
        self.finished += 1


def test_closed_loop_sends_exactly_n_with_bounded_concurrency() -> None:
    rec = Recorder(seconds=0.002)
    result = asyncio.run(closed_loop(rec, PROMPTS, concurrency=7, limits=Limits(requests=50)))
    assert result.sent == 50 and rec.finished == 50 and result.failed == 0
    assert sorted(j.index for j in rec.jobs) == list(range(50))
    assert rec.peak == 7
    assert [j.prompt.id for j in sorted(rec.jobs, key=lambda j: j.index)][:4] == ["0", "1", "2", "0"]
    assert not result.interrupted


def test_closed_loop_duration_limit_and_failures() -> None:
    calls = itertools.count()

    async def flaky(job: Job) -> None:
        await asyncio.sleep(0.005)
        if next(calls) % 2:
            raise RuntimeError("boom")  # a send that does not catch its own error

    result = asyncio.run(closed_loop(flaky, PROMPTS, concurrency=2, limits=Limits(duration=0.2)))
    assert 10 <= result.sent <= 100
    assert result.failed == result.sent // 2
    assert 0.2 <= result.wall_seconds < 1.0


def test_open_loop_keeps_the_absolute_schedule() -> None:
    rec = Recorder(seconds=0.01)
    result = asyncio.run(open_loop(rec, PROMPTS, rate=200, arrival="constant", limits=Limits(requests=40)))
    assert result.sent == 40 and rec.finished == 40
    jobs = sorted(rec.jobs, key=lambda j: j.index)
    start = jobs[0].intended_ns
    # Intended times are exactly i / rate after the start, whatever happened in between.
    assert [round((j.intended_ns - start) / 1e6, 3) for j in jobs] == [i * 5.0 for i in range(40)]
    # Sends are not serialised behind each other: 10 ms requests at 5 ms spacing overlap.
    assert rec.peak >= 2


def test_open_loop_that_cannot_keep_up_reports_lag_instead_of_slowing_down() -> None:
    # Each send blocks the event loop for 2 ms: 1 000 req/s is impossible (at most ~500/s).
    rec = Recorder(seconds=0.0, block=0.002)
    asyncio.run(open_loop(rec, PROMPTS, rate=1000, arrival="constant", limits=Limits(requests=200)))
    jobs = sorted(zip(rec.jobs, rec.sent_ns, strict=True), key=lambda p: p[0].index)
    start = jobs[0][0].intended_ns
    assert (jobs[-1][0].intended_ns - start) / 1e9 == pytest.approx(0.199)  # schedule unchanged
    lags = [(sent - job.intended_ns) / 1e9 for job, sent in jobs]
    # ~2 ms of work per 1 ms of schedule: the last send is ~0.2 s late (only more on a busy machine).
    assert lags[-1] > 0.15
    assert lags[0] < 0.05  # the lag builds up; it is not a constant offset


def test_poisson_offsets_have_the_requested_rate() -> None:
    offsets = list(itertools.islice(arrival_offsets(50.0, "poisson", seed=3), 20_000))
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 50, rel=0.03)
    # Exponential gaps: the coefficient of variation is 1 (a constant schedule has 0).
    mean = sum(gaps) / len(gaps)
    std = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    assert std / mean == pytest.approx(1.0, abs=0.05)
    assert list(itertools.islice(arrival_offsets(4.0), 3)) == [0.0, 0.25, 0.5]
    with pytest.raises(ValueError):
        arrival_offsets(0.0)


def _stop_after(stop: asyncio.Event, seconds: float) -> None:
    asyncio.get_running_loop().call_later(seconds, stop.set)


def test_stop_drains_requests_in_flight() -> None:
    rec = Recorder(seconds=0.2)

    async def main() -> LoadResult:
        stop = asyncio.Event()
        _stop_after(stop, 0.05)
        return await closed_loop(
            rec, PROMPTS, concurrency=4, limits=Limits(requests=1000), stop=stop, drain_timeout=5
        )

    result = asyncio.run(main())
    assert result.interrupted and result.cancelled == 0
    assert result.sent == 4 and rec.finished == 4


def test_drain_timeout_cancels_what_is_left() -> None:
    rec = Recorder(seconds=30)

    async def main() -> LoadResult:
        stop = asyncio.Event()
        _stop_after(stop, 0.05)
        return await open_loop(
            rec,
            PROMPTS,
            rate=100,
            arrival="constant",
            limits=Limits(requests=1000),
            stop=stop,
            drain_timeout=0.1,
        )

    began = time.monotonic()
    result = asyncio.run(main())
    assert time.monotonic() - began < 5
    assert result.interrupted and result.cancelled == result.sent >= 3
    assert rec.finished == 0


def test_abort_cuts_the_drain_short() -> None:
    rec = Recorder(seconds=30)

    async def main() -> LoadResult:
        stop, abort = asyncio.Event(), asyncio.Event()
        _stop_after(stop, 0.05)
        _stop_after(abort, 0.1)
        return await closed_loop(
            rec, PROMPTS, concurrency=3, limits=Limits(requests=10), stop=stop, drain_timeout=60, abort=abort
        )

    began = time.monotonic()
    result = asyncio.run(main())
    assert time.monotonic() - began < 5
    assert result.cancelled == 3
