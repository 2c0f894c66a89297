"""Every zero-code command the docs and the examples show runs as written and exports telemetry.

The commands are read from the files themselves (``bash`` and ``console`` blocks in docs/*.md,
the module docstrings of examples/*.py), so a doc cannot drift from what works: only the mock's
address is swapped for the session mock's, and a line starting the mock is left out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otelbench.mock import MockServer

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```(?:bash|console)\n(.*?)^```", re.S | re.M)
_MOCK_URL = re.compile(r"http://127\.0\.0\.1:\d+")
# Variables a developer's shell may hold that would change what the command does.
_SCRUBBED = re.compile(r"^(OTEL_|OPENAI_|ANTHROPIC_|AZURE_OPENAI_|OLLAMA_)")


def _commands(text: str) -> list[str]:
    """Shell commands in ``text`` (a console block's ``$`` lines, or every line of a bash block)
    with their ``\\`` continuations, skipping output lines."""
    lines = text.splitlines()
    prompted = any(line.startswith("$ ") for line in lines)
    commands: list[str] = []
    current: list[str] = []
    for line in lines:
        if current:
            current.append(line)
        elif prompted and not line.startswith("$ "):
            continue
        else:
            current = [line[2:] if prompted else line]
        joined = "\n".join(current)
        # Continued by a trailing backslash, or inside a quoted multi-line argument.
        if not line.rstrip().endswith("\\") and joined.count('"') % 2 == 0:
            commands.append(joined)
            current = []
    return commands


def _documented() -> list[Any]:
    sources = [
        (p, m.group(1)) for p in sorted((ROOT / "docs").glob("*.md")) for m in _BLOCK.finditer(p.read_text())
    ]
    for example in sorted((ROOT / "examples").glob("*.py")):
        docstring = example.read_text().split('"""')[1]
        sources.append((example, "\n".join(line.strip() for line in docstring.splitlines())))
    found: list[Any] = []
    for path, text in sources:
        for command in _commands(text):
            if "opentelemetry-instrument" in command and "python examples/" in command:
                n = 1 + sum(str(p.id).startswith(f"{path.name}-") for p in found)
                found.append(pytest.param(command, id=f"{path.name}-{n}"))
    return found


DOCUMENTED = _documented()


def test_the_docs_show_zero_code_commands_for_every_example() -> None:
    shown = {str(p.values[0]).split("python examples/")[1].split()[0] for p in DOCUMENTED}
    assert shown == {p.name for p in (ROOT / "examples").glob("*.py")}


@pytest.mark.parametrize("command", DOCUMENTED)
def test_documented_zero_code_command_exports_telemetry(command: str, mock_server: MockServer) -> None:
    script = _MOCK_URL.sub(mock_server.url, command).replace("uv run ", "")
    env = {k: v for k, v in os.environ.items() if not _SCRUBBED.match(k)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    report = f"$ {script}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, report
    assert "Traceback" not in proc.stderr, report
    # Spans or metrics of ours, from the console exporter (or the docs' own reading of it).
    assert re.search(r"gen_ai\.client\.|\"gen_ai\.operation\.name\"", proc.stdout), report
