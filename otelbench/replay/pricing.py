"""Token prices in US dollars per million tokens, by ``SCHEME:MODEL`` glob; user-overridable.

The built-in list prices are those published at the time of writing and change often: pass
``--pricing FILE`` (TOML or JSON) to override or extend them::

    ["openai:gpt-4o-mini"]
    input = 0.15
    output = 0.60

    ["openai:*@http://127.0.0.1:8000*"]   # a local server: free
    input = 0
    output = 0

Keys are ``fnmatch`` patterns matched against the target id; the user's entries are tried
first, then the built-ins, most specific (longest) pattern first. Unknown models cost NaN
(shown as "-"), never a guess. The mock models' prices are made up so the default run shows
a cost column.
"""

from __future__ import annotations

import fnmatch
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otelbench.errors import ConfigError


@dataclass(frozen=True)
class Price:
    """Dollars per million input and output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Dollars for the given token counts."""
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


BUILTIN_PRICES: dict[str, Price] = {
    "openai:gpt-4o-mini*": Price(0.15, 0.60),
    "openai:gpt-4o*": Price(2.50, 10.00),
    "openai:gpt-4.1-nano*": Price(0.10, 0.40),
    "openai:gpt-4.1-mini*": Price(0.40, 1.60),
    "openai:gpt-4.1*": Price(2.00, 8.00),
    # gpt-5 and its dated snapshots, not gpt-5.x, -pro or -codex (priced apart).
    "openai:gpt-5": Price(1.25, 10.00),
    "openai:gpt-5-20*": Price(1.25, 10.00),
    "openai:gpt-5-mini*": Price(0.25, 2.00),
    "openai:gpt-5-nano*": Price(0.05, 0.40),
    "openai:o3": Price(2.00, 8.00),
    "openai:o3-20*": Price(2.00, 8.00),
    "openai:o3-mini*": Price(1.10, 4.40),
    "openai:o4-mini": Price(1.10, 4.40),  # not o4-mini-deep-research
    "openai:o4-mini-20*": Price(1.10, 4.40),
    "anthropic:claude-3-5-haiku*": Price(0.80, 4.00),
    "anthropic:claude-3-haiku*": Price(0.25, 1.25),
    "anthropic:claude-haiku-4-5*": Price(1.00, 5.00),
    "anthropic:claude-sonnet-4*": Price(3.00, 15.00),
    "anthropic:claude-3-7-sonnet*": Price(3.00, 15.00),
    "anthropic:claude-opus-4*": Price(15.00, 75.00),  # Opus 4 and 4.1
    "anthropic:claude-opus-4-5*": Price(5.00, 25.00),
    "anthropic:claude-opus-4-6*": Price(5.00, 25.00),
    # Local models: no per-token bill.
    "ollama:*": Price(0.0, 0.0),
    # The embedded mock's models (fictional prices).
    "*:mock-fast": Price(0.10, 0.40),
    "*:mock-balanced": Price(0.50, 2.00),
    "*:mock-steady": Price(0.80, 3.20),
    "*:mock-slow": Price(2.00, 8.00),
}


class PriceTable:
    """Looks up the price of a target id."""

    def __init__(self, overrides: dict[str, Price] | None = None) -> None:
        self.overrides = dict(overrides or {})

    def lookup(self, target_id: str) -> Price | None:
        """The price for ``target_id``, or None when unknown."""
        for table in (self.overrides, BUILTIN_PRICES):
            for pattern in sorted(table, key=len, reverse=True):
                if fnmatch.fnmatchcase(target_id, pattern):
                    return table[pattern]
        return None

    def cost(self, target_id: str, input_tokens: int, output_tokens: int) -> float:
        """Dollars for the tokens, NaN when the price is unknown."""
        price = self.lookup(target_id)
        return price.cost(input_tokens, output_tokens) if price else math.nan


def load_prices(path: str | Path) -> PriceTable:
    """A table with the overrides of a TOML or JSON file; a ConfigError names the bad entry."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read pricing file {p}: {reason}") from None
    try:
        data: Any = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"pricing file {p} is not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"pricing file {p}: expected a table of target pattern -> {{input, output}}")
    prices = {}
    for pattern, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise ConfigError(
                f"pricing file {p}: {pattern!r} needs exactly 'input' and 'output' (USD per 1M tokens)"
            )
        values = entry["input"], entry["output"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values):
            raise ConfigError(f"pricing file {p}: {pattern!r} prices must be numbers >= 0")
        prices[str(pattern)] = Price(float(values[0]), float(values[1]))
    return PriceTable(prices)
