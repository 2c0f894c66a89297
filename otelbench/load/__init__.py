"""Load generation: send prompts through an instrumented async SDK client."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from otelbench.datasets import Prompt

SendFn = Callable[[Prompt], Awaitable[None]]


@dataclass
class LoadResult:
    """What the load loop itself observed (the statistics come from the metrics)."""

    sent: int
    failed: int
    wall_seconds: float


async def closed_loop(send: SendFn, prompts: Sequence[Prompt], requests: int, concurrency: int) -> LoadResult:
    """Keep ``concurrency`` requests in flight until ``requests`` have been sent."""
    cycle = itertools.cycle(prompts)
    remaining = requests
    failed = 0

    async def worker() -> None:
        nonlocal remaining, failed
        while remaining > 0:
            remaining -= 1
            try:
                await send(next(cycle))
            except Exception:
                # The instrumentation recorded the failure (error.type); keep the load going.
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, requests)))))
    return LoadResult(sent=requests, failed=failed, wall_seconds=time.perf_counter() - start)
