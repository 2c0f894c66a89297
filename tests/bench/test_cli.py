"""The `otelbench` command line: a real replay, and clear one-line errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

OTELBENCH = str(Path(sys.executable).parent / "otelbench")


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    full_env.update(env or {})
    return subprocess.run([OTELBENCH, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def test_default_replay_prints_a_three_model_comparison() -> None:
    proc = run_cli("replay", "--requests", "6", "--concurrency", "3")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("openai:mock-")]
    assert [r[0] for r in rows] == ["openai:mock-balanced", "openai:mock-fast", "openai:mock-slow"]
    for row in rows:
        assert row[1] == "6" and row[2] == "0"  # requests and errors, counted from the metrics
        ttft_p50 = float(row[3])
        assert 30.0 < ttft_p50 < 1000.0
    p50 = {r[0]: float(r[3]) for r in rows}
    # The profiles' TTFT medians are 60, 150 and 300 ms: the ordering must come through.
    assert p50["openai:mock-fast"] < p50["openai:mock-balanced"] < p50["openai:mock-slow"]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["replay", "--requests", "0"], {}, "'0'"),
        (["replay", "--concurrency", "x"], {}, "'x'"),
        (["replay", "--target", "foo:bar"], {}, "'foo:bar'"),
        (["replay", "--target", "openai"], {}, "'openai'"),
        (["replay", "--target", "openai:gpt-4o-mini"], {}, "OPENAI_API_KEY"),
        (["replay", "--bogus"], {}, "--bogus"),
        (["nosuchcommand"], {}, "nosuchcommand"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], env: dict[str, str], needle: str) -> None:
    proc = run_cli(*args, env=env, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_unreachable_endpoint_is_a_one_line_runtime_error() -> None:
    proc = run_cli(
        "replay",
        "--target",
        "openai:gpt-x",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--requests",
        "2",
        env={"OPENAI_API_KEY": "sk-unreachable-SECRET"},
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()
    assert "cannot reach http://127.0.0.1:9/v1" in line
    assert "sk-unreachable-SECRET" not in proc.stdout + proc.stderr
