"""Prompt sets for replay. Built-in sets are small and written for this project (licence-clean)."""

from __future__ import annotations

from dataclasses import dataclass

_SHORT_CHAT = (
    "Explain what a circuit breaker does in a distributed system, in two sentences.",
    "Give three tips for writing readable Python functions.",
    "What is the difference between latency and throughput?",
    "Summarise the idea of exponential backoff with jitter.",
    "Name two ways to make an HTTP client resilient to slow servers.",
    "What does p99 latency tell you that the mean does not?",
    "Write a haiku about observability.",
    "How would you explain tracing to a new engineer?",
    "List the parts of an OpenTelemetry span.",
    "Why do streaming APIs report time to first token separately?",
    "Describe a cache hit ratio and why it matters for LLM costs.",
    "What is coordinated omission in load testing?",
)


@dataclass(frozen=True)
class Prompt:
    """One request to replay: chat messages plus the output length to ask for."""

    messages: tuple[dict[str, str], ...]
    max_tokens: int | None = None


def builtin(name: str = "short-chat") -> list[Prompt]:
    """A built-in prompt set by name."""
    if name != "short-chat":
        from otelbench.errors import DatasetError

        raise DatasetError(f"unknown built-in dataset {name!r} (available: short-chat)")
    return [Prompt(({"role": "user", "content": text},)) for text in _SHORT_CHAT]
