"""The error transcripts in the docs are what the commands print, word for word.

Each ``console`` block of docs/*.md that shows an ``otelbench: error:`` line is run as one shell
session in an empty directory (``uv run X`` as ``X`` from this checkout's virtualenv, provider
keys and OTel settings unset), and its output must match the block's output lines: a line
``...`` stands for any lines, and a UTC timestamp in a file name for any other.
"""

from __future__ import annotations

import difflib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..docs import ROOT, as_run_here, shell_blocks, shell_env, transcript


def _blocks() -> list[Any]:
    found = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        shown = [b for b in shell_blocks(path) if "\notelbench: error:" in f"\n{b}"]
        found += [pytest.param(b, id=f"{path.name}-{i}") for i, b in enumerate(shown, 1)]
    return found


def _pattern(lines: list[str]) -> re.Pattern[str]:
    parts = []
    for line in lines:
        if line == "...":
            parts.append(r"(?:.*\n)*?")
        else:
            parts.append(re.sub(r"\\?\d{8}T\d{6}Z", r"\\d{8}T\\d{6}Z", re.escape(line)) + r"\n")
    return re.compile("".join(parts))


def test_the_docs_show_error_transcripts() -> None:
    assert len(_blocks()) >= 5


@pytest.mark.parametrize("block", _blocks())
def test_documented_error_transcript(block: str, tmp_path: Path) -> None:
    steps = transcript(block)
    script = "exec 2>&1\n" + "\n".join(as_run_here(command) for command, _ in steps)
    expected = [line for _, output in steps for line in output]
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=shell_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if not _pattern(expected).fullmatch(proc.stdout):
        diff = "\n".join(difflib.ndiff(expected, proc.stdout.splitlines()))
        pytest.fail(f"the docs' transcript (-) differs from the output (+) of\n{script}\n{diff}")
