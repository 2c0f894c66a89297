"""Reading the shell commands the docs show, so tests can run them as written."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```(?:bash|console)\n(.*?)^```", re.S | re.M)
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# The local addresses the docs show a mock at (8000, 8765, 8931 ...).
_LOCAL_URL = re.compile(r"http://127\.0\.0\.1:\d+")
# Variables a developer's shell may hold that would change what a command does.
_SCRUBBED = re.compile(r"^(OTEL_|OPENAI_|ANTHROPIC_|AZURE_OPENAI_|OLLAMA_|AWS_)")


def shell_blocks(path: Path) -> list[str]:
    """The ``bash`` and ``console`` code blocks of a Markdown file."""
    return [m.group(1) for m in _BLOCK.finditer(path.read_text(encoding="utf-8"))]


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, source) of each ``python`` code block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _PYTHON.finditer(text)]


def transcript(text: str) -> list[tuple[str, list[str]]]:
    """(command, the output lines shown after it) for each command of a block: a console block's
    ``$`` lines, or every line of a block without prompts; a command goes on over a trailing
    backslash or an open quote."""
    lines = text.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    steps: list[tuple[str, list[str]]] = []
    current: list[str] = []
    for line in lines:
        if current:
            current.append(line)
        elif prompted and not line.startswith("$ "):
            if steps:
                steps[-1][1].append(line)
            continue
        else:
            current = [line[2:] if prompted else line]
        joined = "\n".join(current)
        if not line.rstrip().endswith("\\") and _complete(joined):
            steps.append((joined, []))
            current = []
    return steps


def _complete(command: str) -> bool:
    """Whether every quote of ``command`` is closed (else the next line continues it)."""
    try:
        shlex.split(command, comments=True)
    except ValueError:
        return False
    return True


def at_mock(text: str, url: str) -> str:
    """``text`` with every local address it shows replaced by the running mock's ``url``."""
    return _LOCAL_URL.sub(url, text)


def as_run_here(command: str) -> str:
    """``command`` for this checkout's virtualenv: ``uv run X`` becomes ``X`` (see shell_env)."""
    return command.replace("uv run ", "")


def shell_env() -> dict[str, str]:
    """This environment without provider and OTel settings, the virtualenv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not _SCRUBBED.match(k)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
