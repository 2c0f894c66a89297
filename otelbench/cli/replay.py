"""`otelbench replay`: replay a prompt set through the instrumented SDKs and summarise the metrics.

With no ``--target`` an embedded mock serves three differently-shaped models, so the command
alone runs a meaningful comparison on a fresh machine. Every figure printed is read back from
the OpenTelemetry metrics our instrumentation exported (exponential histograms), not from
timers in the load loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.trace import TracerProvider

from otelbench.datasets import Prompt, builtin
from otelbench.errors import ProviderError, UsageError
from otelbench.load import LoadResult, closed_loop
from otelbench.mock import Dist, MockConfig, MockServer, ModelProfile
from otelbench.summary import TargetStats, summarize
from otelbench_instrumentation import OpenAIInstrumentor

# The embedded mock's three "providers": fast and small, balanced, slow and verbose.
DEFAULT_PROFILES = {
    "mock-fast": ModelProfile(
        ttft=Dist.lognormal(0.060, 0.15), itl=Dist.fixed(0.004), output_tokens=Dist.fixed(32)
    ),
    "mock-balanced": ModelProfile(
        ttft=Dist.lognormal(0.150, 0.20), itl=Dist.fixed(0.008), output_tokens=Dist.fixed(48)
    ),
    "mock-slow": ModelProfile(
        ttft=Dist.lognormal(0.300, 0.25), itl=Dist.fixed(0.015), output_tokens=Dist.fixed(64)
    ),
}
SCHEMES = ("openai",)


@dataclass(frozen=True)
class Target:
    """One provider/model to replay against."""

    scheme: str
    model: str
    base_url: str | None
    api_key: str


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `replay` sub-command."""
    p = sub.add_parser("replay", help="replay prompts against providers (default: embedded mock)")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="SCHEME:MODEL",
        help="e.g. openai:gpt-4o-mini (repeatable); default: three embedded mock models",
    )
    p.add_argument("--base-url", help="OpenAI-compatible base URL for openai: targets (vLLM, llama.cpp, ...)")
    p.add_argument("--requests", type=_positive_int, default=36, help="requests per target (default 36)")
    p.add_argument("--concurrency", type=_positive_int, default=6, help="in-flight requests per target")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedded mock")
    p.set_defaults(func=run)


def _parse_targets(args: argparse.Namespace) -> list[Target]:
    targets = []
    for spec in args.target:
        scheme, sep, model = spec.partition(":")
        if not sep or not model or scheme not in SCHEMES:
            raise UsageError(
                f"bad --target {spec!r}: expected SCHEME:MODEL with SCHEME one of {', '.join(SCHEMES)}"
            )
        key = os.environ.get("OPENAI_API_KEY")
        if not key and not args.base_url:
            raise UsageError(f"--target {spec}: OPENAI_API_KEY is not set")
        targets.append(Target(scheme, model, args.base_url, key or "unused"))
    return targets


@contextmanager
def _embedded_mock(seed: int) -> Iterator[MockServer]:
    with MockServer(MockConfig(seed=seed, profiles=dict(DEFAULT_PROFILES))) as server:
        yield server


def run(args: argparse.Namespace) -> int:
    """Run the replay and print the comparison table."""
    targets = _parse_targets(args)
    prompts = builtin("short-chat")
    reader = InMemoryMetricReader(preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()})
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, chunk_timing="each"
    )
    try:
        if targets:
            results = asyncio.run(_replay(targets, prompts, args.requests, args.concurrency))
        else:
            with _embedded_mock(args.seed) as server:
                mock_targets = [
                    Target("openai", m, server.openai_base_url, "mock-key") for m in DEFAULT_PROFILES
                ]
                print(f"otelbench: no --target given; replaying against the embedded mock at {server.url}")
                results = asyncio.run(_replay(mock_targets, prompts, args.requests, args.concurrency))
                targets = mock_targets
        stats = summarize(reader.get_metrics_data())
    finally:
        instrumentor.uninstrument()
        meter_provider.shutdown()
        tracer_provider.shutdown()
    _check_reachable(targets, results, stats)
    print(render_table(stats, results))
    return 0


async def _replay(
    targets: list[Target], prompts: list[Prompt], requests: int, concurrency: int
) -> dict[str, LoadResult]:
    async def one(target: Target) -> tuple[str, LoadResult]:
        async with openai.AsyncOpenAI(
            base_url=target.base_url, api_key=target.api_key, max_retries=2
        ) as client:

            async def send(prompt: Prompt) -> None:
                messages: Any = list(prompt.messages)
                stream = await client.chat.completions.create(
                    model=target.model,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for _ in stream:
                    pass

            return f"{target.scheme}:{target.model}", await closed_loop(send, prompts, requests, concurrency)

    pairs = await asyncio.gather(*(one(t) for t in targets))
    return dict(pairs)


def _check_reachable(targets: list[Target], results: dict[str, LoadResult], stats: list[TargetStats]) -> None:
    by_key = {s.key: s for s in stats}
    for target in targets:
        key = f"{target.scheme}:{target.model}"
        result = results[key]
        errors = by_key[key].errors if key in by_key else {}
        if result.failed == result.sent and "APIConnectionError" in errors:
            where = target.base_url or "the provider's default endpoint"
            raise ProviderError(f"{key}: cannot reach {where} (every request failed to connect)")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def render_table(stats: list[TargetStats], results: dict[str, LoadResult]) -> str:
    """A plain-text comparison table; every latency comes from the exported histograms."""
    header = (
        "target",
        "reqs",
        "errs",
        "ttft p50",
        "ttft p95",
        "ttft p99",
        "dur p50",
        "dur p95",
        "dur p99",
        "chunk p50",
        "out tok/s",
    )
    rows = []
    for s in stats:
        load = results.get(s.key)
        tps = s.output_tokens / load.wall_seconds if load and load.wall_seconds > 0 else 0.0
        rows.append(
            (
                s.key,
                str(s.requests),
                str(sum(s.errors.values())),
                _ms(s.ttft.q(0.5) if s.ttft else None),
                _ms(s.ttft.q(0.95) if s.ttft else None),
                _ms(s.ttft.q(0.99) if s.ttft else None),
                _ms(s.duration.q(0.5) if s.duration else None),
                _ms(s.duration.q(0.95) if s.duration else None),
                _ms(s.duration.q(0.99) if s.duration else None),
                _ms(s.time_per_chunk.q(0.5) if s.time_per_chunk else None),
                f"{tps:.0f}",
            )
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    lines.append("latencies in ms, read from the exported gen_ai.client.* exponential histograms")
    return "\n".join(lines)
