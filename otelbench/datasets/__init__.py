"""Prompt sets for replay: built-in sets, ShareGPT JSON and JSONL loaders, synthetic shapes.

Built-in sets (``data/*.json``, written for this project, licence-clean, ~45 KB together):

    chat        36 short questions about software and operations
    summarize   24 summarisation requests over 12 original ~550-token documents
    code        30 short programming tasks
    tools       24 requests that should call one of five function tools

Files (``load_dataset(path)``):

    *.json      ShareGPT style: ``[{"conversations": [{"from": "human", "value": ...}, ...]}, ...]``;
                the turns up to the first human one are the prompt, the reply that follows sets
                ``max_tokens`` (characters / 4, like the mock's token estimate). A file in the
                built-in format (an object with ``prompts``) is read too.
    *.jsonl     one request per line: ``{"messages": [...]}``, ``{"prompt": "..."}`` or a JSON
                string; optional ``max_tokens`` and ``id``.

Synthetic prompts (``synthetic(input_tokens, output_tokens)``, the CLI's ``--shape IN:OUT``) are
word salad of about IN tokens (4 characters a token) with ``max_tokens = OUT``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from otelbench.errors import DatasetError, UsageError

BUILTIN = ("chat", "summarize", "code", "tools")
#: Characters per token assumed by synthetic prompts and ShareGPT output lengths (and the mock).
CHARS_PER_TOKEN = 4
#: ShareGPT reference replies longer than this are capped (a benchmark request, not an essay).
MAX_SHAREGPT_OUTPUT = 2048

Message = dict[str, str]


@dataclass(frozen=True)
class Prompt:
    """One request to replay: chat messages, the output length to ask for, optional tools."""

    messages: tuple[Message, ...]
    max_tokens: int | None = None
    id: str = ""
    #: Function tools in a provider-neutral shape: ``{"name", "description", "parameters"}``.
    tools: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Dataset:
    """A named list of prompts."""

    name: str
    prompts: tuple[Prompt, ...]
    description: str = ""


def builtin(name: str = "chat") -> list[Prompt]:
    """The prompts of a built-in set by name."""
    return list(load_builtin(name).prompts)


def load_builtin(name: str) -> Dataset:
    """A built-in prompt set (see the module docstring)."""
    if name not in BUILTIN:
        raise DatasetError(f"unknown built-in dataset {name!r} (available: {', '.join(BUILTIN)})")
    text = resources.files(__package__).joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    return _from_native(json.loads(text), name)


def load_dataset(spec: str) -> Dataset:
    """A built-in set by name, or a ShareGPT ``.json`` / ``.jsonl`` file by path."""
    if spec in BUILTIN:
        return load_builtin(spec)
    path = Path(spec)
    if not path.exists() and path.suffix not in (".json", ".jsonl"):
        raise DatasetError(
            f"unknown dataset {spec!r}: not a built-in set ({', '.join(BUILTIN)}) and no such file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DatasetError(f"cannot read dataset {spec}: {reason}") from None
    if path.suffix == ".jsonl":
        prompts = _from_jsonl(text, spec)
        return Dataset(path.stem, tuple(prompts), f"{len(prompts)} prompts from {path.name}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DatasetError(f"dataset {spec} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "prompts" in data:
        return _from_native(data, spec)
    prompts = _from_sharegpt(data, spec)
    return Dataset(path.stem, tuple(prompts), f"{len(prompts)} ShareGPT conversations from {path.name}")


def _from_native(data: Any, source: str) -> Dataset:
    try:
        default_max = data.get("max_tokens")
        tools = tuple(data.get("tools") or ())
        documents = data.get("documents") or {}
        prompts = []
        for item in data["prompts"]:
            if "messages" in item:
                messages = tuple(_message(m, source) for m in item["messages"])
            else:
                text = str(item["text"]) if "text" in item else str(item["instruction"])
                if "document" in item:
                    text = f"{text}\n\n{documents[item['document']]}"
                messages = ({"role": "user", "content": text},)
            prompts.append(
                Prompt(messages, item.get("max_tokens", default_max), str(item.get("id", "")), tools)
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"dataset {source} is malformed: missing or bad field {exc}") from None
    if not prompts:
        raise DatasetError(f"dataset {source} has no prompts")
    return Dataset(str(data.get("name", source)), tuple(prompts), str(data.get("description", "")))


def _message(raw: Any, source: str) -> Message:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), str):
        raise DatasetError(f"dataset {source}: a message must be an object with string 'content'")
    role = raw.get("role", "user")
    if role not in ("system", "user", "assistant"):
        raise DatasetError(f"dataset {source}: unsupported message role {role!r}")
    return {"role": str(role), "content": raw["content"]}


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def _from_sharegpt(data: Any, source: str) -> list[Prompt]:
    if not isinstance(data, list):
        raise DatasetError(f"dataset {source}: expected a ShareGPT list of conversations")
    prompts = []
    for n, item in enumerate(data):
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list):
            raise DatasetError(f"dataset {source}: conversation {n} has no 'conversations' list")
        messages: list[Message] = []
        reply: str | None = None
        for turn in turns:
            if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
                raise DatasetError(f"dataset {source}: conversation {n} has a turn without a string 'value'")
            who = turn.get("from")
            if who == "system":
                messages.append({"role": "system", "content": turn["value"]})
                continue
            role = _SHAREGPT_ROLES.get(str(who))
            if role is None:
                raise DatasetError(f"dataset {source}: conversation {n} has an unknown speaker {who!r}")
            if role == "assistant":
                if any(m["role"] == "user" for m in messages):
                    reply = turn["value"]
                    break
                continue  # an assistant greeting before the first question carries no request
            messages.append({"role": "user", "content": turn["value"]})
        if not any(m["role"] == "user" for m in messages):
            continue  # nothing to ask
        max_tokens = None
        if reply is not None:
            max_tokens = min(MAX_SHAREGPT_OUTPUT, max(1, len(reply) // CHARS_PER_TOKEN))
        ident = str(item.get("id", n)) if isinstance(item, dict) else str(n)
        prompts.append(Prompt(tuple(messages), max_tokens, ident))
    if not prompts:
        raise DatasetError(f"dataset {source} has no conversation with a human turn")
    return prompts


def _from_jsonl(text: str, source: str) -> list[Prompt]:
    prompts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise DatasetError(f"{source}:{lineno}: invalid JSON: {exc}") from None
        if isinstance(item, str):
            item = {"prompt": item}
        if not isinstance(item, dict):
            raise DatasetError(f"{source}:{lineno}: expected an object or a string")
        if "messages" in item:
            if not isinstance(item["messages"], list) or not item["messages"]:
                raise DatasetError(f"{source}:{lineno}: 'messages' must be a non-empty list")
            messages = tuple(_message(m, f"{source}:{lineno}") for m in item["messages"])
        elif isinstance(item.get("prompt"), str):
            messages = ({"role": "user", "content": item["prompt"]},)
        else:
            raise DatasetError(f"{source}:{lineno}: needs 'messages' or a string 'prompt'")
        max_tokens = item.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise DatasetError(f"{source}:{lineno}: max_tokens must be a positive integer")
        prompts.append(Prompt(messages, max_tokens, str(item.get("id", lineno))))
    if not prompts:
        raise DatasetError(f"dataset {source} is empty")
    return prompts


# --- synthetic shapes -------------------------------------------------------------------------
# Pseudo-words from syllables: varied text, no copyrighted corpus, no tokenizer-friendly repeats.
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "du", "ga", "pe", "zo", "fi")


def parse_shape(text: str) -> tuple[int, int]:
    """``"IN:OUT"`` token counts, e.g. ``"1000:200"``; a UsageError names a bad value."""
    head, sep, tail = text.partition(":")
    try:
        if not sep:
            raise ValueError
        shape = int(head), int(tail)
    except ValueError:
        raise UsageError(f"bad --shape {text!r}: expected IN:OUT token counts, e.g. 1000:200") from None
    if shape[0] < 1 or shape[1] < 1:
        raise UsageError(f"bad --shape {text!r}: token counts must be >= 1")
    return shape


def synthetic(input_tokens: int, output_tokens: int, count: int = 32, seed: int = 0) -> Dataset:
    """``count`` distinct prompts of about ``input_tokens`` tokens asking for ``output_tokens``."""
    rng = random.Random(seed)
    chars = input_tokens * CHARS_PER_TOKEN
    prompts = []
    for i in range(count):
        head = f"Request {i}. Continue this text: "
        words: list[str] = []
        size = len(head)
        while size < chars:
            word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
            words.append(word)
            size += len(word) + 1
        text = (head + " ".join(words))[: max(chars, 1)]
        prompts.append(Prompt(({"role": "user", "content": text},), output_tokens, f"shape-{i}"))
    return Dataset(
        f"shape-{input_tokens}:{output_tokens}",
        tuple(prompts),
        f"{count} synthetic prompts of ~{input_tokens} tokens, max_tokens {output_tokens}",
    )


# --- per-request variation --------------------------------------------------------------------
def new_run_tag() -> str:
    """A short random tag identifying one replay run (part of every nonce)."""
    return uuid.uuid4().hex[:8]


def with_nonce(prompt: Prompt, nonce: str) -> Prompt:
    """``prompt`` with ``nonce`` prepended to its first message, so no two requests share a prefix
    (providers cache prompt prefixes, which would flatter TTFT and cost)."""
    first, *rest = prompt.messages
    tagged = {**first, "content": f"[{nonce}] {first['content']}"}
    return replace(prompt, messages=(tagged, *rest))


def with_max_tokens(prompts: Sequence[Prompt], max_tokens: int) -> list[Prompt]:
    """Every prompt asking for ``max_tokens`` output tokens."""
    return [replace(p, max_tokens=max_tokens) for p in prompts]


__all__ = [
    "BUILTIN",
    "Dataset",
    "Prompt",
    "builtin",
    "load_builtin",
    "load_dataset",
    "new_run_tag",
    "parse_shape",
    "synthetic",
    "with_max_tokens",
    "with_nonce",
]
