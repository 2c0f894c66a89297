"""The mock's prompt caches hold keys only, and a bounded number of them."""

from __future__ import annotations

from otelbench.mock.core import CACHE_KEYS_KEPT, PromptCache


def test_a_prompt_cache_starts_over_past_its_limit() -> None:
    cache = PromptCache(limit=3)
    assert [cache.seen(k) for k in "abca"] == [False, False, False, True]
    assert not cache.seen("d") and len(cache) == 1  # full: it started over with "d"
    assert not cache.seen("a") and cache.seen("d")
    assert PromptCache().limit == CACHE_KEYS_KEPT == 100_000  # what docs/mock.md says
