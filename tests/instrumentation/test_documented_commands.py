"""Every zero-code command the docs and the examples show runs as written and exports telemetry.

The commands are read from the files themselves (``bash`` and ``console`` blocks in docs/*.md,
the module docstrings of examples/*.py), so a doc cannot drift from what works: only the mock's
address is swapped for the session mock's, and a line starting the mock is left out.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from otelbench.mock import MockServer

from ..docs import ROOT, as_run_here, at_mock, shell_blocks, shell_env, transcript


def _documented() -> list[Any]:
    sources = [(p, text) for p in sorted((ROOT / "docs").glob("*.md")) for text in shell_blocks(p)]
    for example in sorted((ROOT / "examples").glob("*.py")):
        docstring = example.read_text().split('"""')[1]
        sources.append((example, "\n".join(line.strip() for line in docstring.splitlines())))
    found: list[Any] = []
    for path, text in sources:
        for command, _ in transcript(text):
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
    script = as_run_here(at_mock(command, mock_server.url))
    proc = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=shell_env(), capture_output=True, text=True, timeout=120
    )
    report = f"$ {script}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, report
    assert "Traceback" not in proc.stderr, report
    # Spans or metrics of ours, from the console exporter (or the docs' own reading of it).
    assert re.search(r"gen_ai\.client\.|\"gen_ai\.operation\.name\"", proc.stdout), report
