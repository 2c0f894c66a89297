"""Request options (sampling and runtime parameters) and how each SDK receives them.

One table, read by the CLI to validate ``--sweep KEY=...`` and by the adapters to build requests:

    key                 ollama (``options``)   openai (chat.completions)   anthropic (messages)   bedrock (converse)
    temperature         options.temperature    temperature                 temperature            inferenceConfig.temperature
    top_p               options.top_p          top_p                       top_p                  inferenceConfig.topP
    top_k               options.top_k          -                           top_k                  -
    seed                options.seed           seed                        -
    presence_penalty    options.presence_...   presence_penalty            -
    frequency_penalty   options.frequency_...  frequency_penalty           -
    num_ctx, num_gpu,   options.<key>          -                           -
    num_thread, ...

Azure and the OpenAI-compatible schemes (deepseek, groq, xai, gemini, mistral) take openai's
keys, except that Mistral's schema refuses ``seed`` (its own is ``random_seed``).

``max_tokens`` is not in the table: it sets every prompt's output limit (``--max-tokens``),
which each adapter already maps (``num_predict``, ``max_tokens`` / ``max_completion_tokens``).
A key that an SDK has no parameter for is not sent to that SDK's targets.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Value type of every request option (validated before anything is sent).
OPTION_TYPES: dict[str, type] = {
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "min_p": float,
    "typical_p": float,
    "seed": int,
    "presence_penalty": float,
    "frequency_penalty": float,
    "repeat_penalty": float,
    "repeat_last_n": int,
    "num_ctx": int,
    "num_gpu": int,
    "num_thread": int,
    "num_batch": int,
    "num_keep": int,
    "mirostat": int,
    "mirostat_tau": float,
    "mirostat_eta": float,
}

#: Which options each SDK takes as a request parameter (Ollama takes them all, in ``options``).
_OPENAI_KEYS = frozenset({"temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"})
SDK_OPTIONS: dict[str, frozenset[str]] = {
    "ollama": frozenset(OPTION_TYPES),
    "openai": _OPENAI_KEYS,
    "azure": _OPENAI_KEYS,
    "deepseek": _OPENAI_KEYS,
    "groq": _OPENAI_KEYS,
    "xai": _OPENAI_KEYS,
    "gemini": _OPENAI_KEYS,
    "mistral": _OPENAI_KEYS - {"seed"},
    "anthropic": frozenset({"temperature", "top_p", "top_k"}),
    "bedrock": frozenset({"temperature", "top_p"}),
}

Options = Mapping[str, int | float]


def options_for(scheme: str, options: Options) -> dict[str, int | float]:
    """The subset of ``options`` that ``scheme``'s SDK accepts."""
    accepted = SDK_OPTIONS.get(scheme, frozenset())
    return {k: v for k, v in options.items() if k in accepted}


__all__ = ["OPTION_TYPES", "SDK_OPTIONS", "Options", "options_for"]
