"""The Python examples in the docs run as written, against the mock.

Each Markdown file's ``python`` blocks run in order in one fresh interpreter, sharing one
namespace as a reader's session would, with the mock's address swapped in for the one shown.
Blocks that are not Python (signatures) and excerpts of a named file (a first line
``# path/to/file.py``) are read, not run. ``tp``/``tracer_provider`` and ``mp``/``meter_provider``,
which the fragments pass to ``instrument()``, are real SDK providers exporting to memory.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otelbench.mock import MockServer

from ..docs import ROOT, at_mock, python_blocks, shell_env

_EXCERPT = re.compile(r"#\s*\S+\.py\b")
_RUNNER = """
import json, sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

tp = tracer_provider = TracerProvider()
mp = meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
namespace = dict(globals())
for label, source in json.load(sys.stdin):
    exec(compile(source, label, "exec"), namespace)
"""


def _runnable(source: str) -> bool:
    if _EXCERPT.match(source):
        return False
    try:
        compile(source, "<doc>", "exec")
    except SyntaxError:
        return False
    return True


def _documents() -> list[Any]:
    found = []
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        blocks = [(line, source) for line, source in python_blocks(path) if _runnable(source)]
        if blocks:
            found.append(pytest.param(path.relative_to(ROOT).as_posix(), blocks, id=path.name))
    return found


DOCUMENTS = _documents()


def test_python_examples_are_found() -> None:
    assert {p.id for p in DOCUMENTS} >= {
        "README.md",
        "instrumentation.md",
        "mock.md",
        "replay.md",
        "ollama.md",
    }


@pytest.mark.parametrize(("name", "blocks"), DOCUMENTS)
def test_documented_python_runs(
    name: str, blocks: list[tuple[int, str]], mock_server: MockServer, tmp_path: Path
) -> None:
    labelled = [
        [f"{name}, python block at line {line}", at_mock(src, mock_server.url)] for line, src in blocks
    ]
    env = {
        **shell_env(),
        # boto3 reaches the mock through its standard variables; any credentials will do.
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": mock_server.url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "docs-example",
        "AWS_SECRET_ACCESS_KEY": "docs-example",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(labelled),
        cwd=tmp_path,  # whatever an example writes stays out of the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout[-2000:] + proc.stderr[-4000:]
