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

``--param KEY=VALUE`` sets one of these keys for every run, ``--sweep`` varies it; ``--param
SCHEME:FIELD=JSON`` sends a provider's own body field to that scheme's targets as given (the
SDKs' ``extra_body``; Ollama's ``think``, ``format``, ``keep_alive``; Bedrock's
``additionalModelRequestFields``).

``max_tokens`` is not in the table: it sets every prompt's output limit (``--max-tokens``),
which each adapter already maps (``num_predict``, ``max_tokens`` / ``max_completion_tokens``).
A key that an SDK has no parameter for is not sent to that SDK's targets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from otelbench.errors import UsageError

from .targets import COMPATIBLE

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

#: Targets ``--api responses`` sends through the Responses API (the rest keep their own API):
#: OpenAI's and Azure's, and the compatible APIs that serve it too (Groq, xAI).
RESPONSES_SCHEMES = frozenset({"openai", "azure", *(s for s, api in COMPATIBLE.items() if api.responses)})
#: The options the Responses API takes (``--api responses``): no seed or penalties.
RESPONSES_OPTIONS = frozenset({"temperature", "top_p"})

Options = Mapping[str, int | float]
#: Provider-specific request-body fields per scheme (``--param SCHEME:FIELD=JSON``), sent as given.
BodyFields = Mapping[str, Mapping[str, Any]]

#: Fields replay builds itself from the prompt and flags; a ``--param SCHEME:FIELD`` may not
#: replace them.
RESERVED_FIELDS = frozenset(
    {"model", "messages", "system", "prompt", "input", "stream", "stream_options", "max_tokens",
     "max_completion_tokens", "max_output_tokens", "options", "tools"}
)  # fmt: skip
#: The top-level fields of an Ollama chat request replay does not set: the ollama client's
#: ``chat()`` takes no others.
OLLAMA_FIELDS = frozenset({"think", "format", "keep_alive"})


def accepted_options(scheme: str, api: str = "chat") -> frozenset[str]:
    """The options ``scheme``'s targets take through OpenAI's ``api`` ("chat" or "responses";
    only ``RESPONSES_SCHEMES`` targets go through the Responses API)."""
    if api == "responses" and scheme in RESPONSES_SCHEMES:
        return RESPONSES_OPTIONS
    return SDK_OPTIONS.get(scheme, frozenset())


def options_for(scheme: str, options: Options, api: str = "chat") -> dict[str, int | float]:
    """The subset of ``options`` that ``scheme``'s targets take (through ``api``)."""
    accepted = accepted_options(scheme, api)
    return {k: v for k, v in options.items() if k in accepted}


def parse_params(
    specs: Sequence[str], schemes: Iterable[str]
) -> tuple[dict[str, int | float], dict[str, dict[str, Any]]]:
    """Parse every ``--param [SCHEME:]KEY=VALUE``: request options (typed, sent to each SDK that
    takes them) and per-scheme body fields (VALUE as JSON, else a string). ``schemes``: those of
    the targets; a UsageError names the bad parameter."""
    used = set(schemes)
    options: dict[str, int | float] = {}
    fields: dict[str, dict[str, Any]] = {}
    for spec in specs:
        head, sep, text = spec.partition("=")
        scheme, colon, key = head.strip().rpartition(":")
        if not sep or not key or (colon and not scheme):
            raise UsageError(f"bad --param {spec!r}: expected [SCHEME:]KEY=VALUE")
        if key in (fields.get(scheme, {}) if colon else options):
            raise UsageError(f"--param {head.strip()} is given twice")
        if not colon:
            options[key] = _option_value(spec, key, text.strip())
            if not any(key in SDK_OPTIONS.get(s, frozenset()) for s in used):
                sdks = ", ".join(s for s, keys in SDK_OPTIONS.items() if key in keys)
                raise UsageError(f"bad --param {spec!r}: no target's SDK takes {key} (only {sdks})")
            continue
        if scheme not in used:
            raise UsageError(f"bad --param {spec!r}: no --target uses the scheme {scheme!r}")
        if key in RESERVED_FIELDS:
            raise UsageError(f"bad --param {spec!r}: replay sets {key!r} itself")
        if scheme == "ollama" and key not in OLLAMA_FIELDS:
            raise UsageError(
                f"bad --param {spec!r}: ollama targets take {', '.join(sorted(OLLAMA_FIELDS))} "
                "(model options such as num_ctx go without a scheme)"
            )
        try:
            value = json.loads(text)
        except ValueError:
            value = text  # a bare word: low, auto, 5m
        fields.setdefault(scheme, {})[key] = value
    return options, fields


def parse_number(text: str, kind: type) -> int | float | None:
    """``text`` as an ``int`` or a finite ``float`` (per ``kind``); None if it is not one."""
    try:
        value: int | float = int(text) if kind is int else float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def number_kind(kind: type) -> str:
    """How an error names what ``parse_number`` expected."""
    return "an integer" if kind is int else "a number"


def _option_value(spec: str, key: str, text: str) -> int | float:
    kind = OPTION_TYPES.get(key)
    if kind is None:
        raise UsageError(
            f"bad --param {spec!r}: {key!r} is not a request option ({', '.join(sorted(OPTION_TYPES))}); "
            f"a provider's own field goes as SCHEME:{key}=VALUE"
        )
    value = parse_number(text, kind)
    if value is None:
        raise UsageError(f"bad --param {spec!r}: expected {number_kind(kind)}")
    return value


__all__ = [
    "OLLAMA_FIELDS",
    "OPTION_TYPES",
    "RESERVED_FIELDS",
    "RESPONSES_OPTIONS",
    "RESPONSES_SCHEMES",
    "SDK_OPTIONS",
    "BodyFields",
    "Options",
    "accepted_options",
    "number_kind",
    "options_for",
    "parse_number",
    "parse_params",
]
