"""Every ``otelbench`` sub-command, fed bad flags, values and files: exit 2, one line, no traceback.

The table is generated from ``otelbench.cli.build_parser()``, so a sub-command or option added
later is covered without editing this file: an unknown flag, a stray argument, each option
without its value, each typed option with a value of the wrong type, each choice option with an
unknown choice, and input files that do not exist. tests/bench/test_cli.py holds the hand-written
replay cases whose messages are checked word for word.

All cases run in one child process (a fresh interpreter, as a user would run the command), each
under an alarm, so a bad value that is wrongly accepted shows up as a hang, not a stuck suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otelbench.cli import build_parser

MISSING = "/nonexistent/otelbench-reliability/input"
# Options and positionals that name an input file or spec (an output path may legitimately not exist).
INPUT_FILE_DESTS = frozenset(
    {"config", "mock_config", "pricing", "dataset", "history", "sweep", "files", "results"}
)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _cases() -> list[Any]:
    cases: list[Any] = []
    for name, sub in _subcommands().items():
        cases.append(pytest.param([name, "--no-such-flag"], id=f"{name}-unknown-flag"))
        if not any(not a.option_strings for a in sub._actions):
            cases.append(pytest.param([name, "stray-argument"], id=f"{name}-stray-argument"))
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction) or action.nargs == 0:
                continue
            if not action.option_strings:
                if action.dest in INPUT_FILE_DESTS:
                    cases.append(
                        pytest.param([name, MISSING + ".json"], id=f"{name}-{action.dest}-missing-file")
                    )
                continue
            opt = action.option_strings[-1]
            cases.append(pytest.param([name, opt], id=f"{name}{opt}-without-value"))
            if action.type is not None and action.type is not str:
                cases.append(pytest.param([name, opt, "not-a-number!"], id=f"{name}{opt}-wrong-type"))
            if action.choices:
                cases.append(pytest.param([name, opt, "no-such-choice"], id=f"{name}{opt}-bad-choice"))
            if action.dest in INPUT_FILE_DESTS:
                cases.append(pytest.param([name, opt, MISSING + ".toml"], id=f"{name}{opt}-nonexistent-path"))
    return cases


CASES = _cases()

DRIVER = r"""
import contextlib, io, json, logging, signal, sys, traceback
from otelbench.cli import main

class _CurrentStderr:
    def write(self, text): sys.stderr.write(text)
    def flush(self): sys.stderr.flush()

logging.basicConfig(stream=_CurrentStderr())  # so main()'s own basicConfig keeps this stream

def _hung(*_):
    raise TimeoutError("hung: a bad value was accepted and the command ran")

signal.signal(signal.SIGALRM, _hung)
results = []
for args in json.loads(sys.stdin.read()):
    err, out = io.StringIO(), io.StringIO()
    signal.alarm(20)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        code = "raised " + type(exc).__name__
        err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
    results.append({"args": args, "code": code, "stderr": err.getvalue(), "stdout": out.getvalue()})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run every case once, in one child process started in an empty directory."""
    cwd = tmp_path_factory.mktemp("cli-bad-input")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "OLLAMA_HOST"}
    args = [case.values[0] for case in CASES]
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=20 * len(args) + 60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = {json.dumps(r["args"]): r for r in json.loads(proc.stdout)}
    # A case must not leave files behind (it failed before doing anything).
    assert not list(Path(cwd).iterdir()), list(Path(cwd).iterdir())
    return found


def test_every_subcommand_is_covered() -> None:
    names = _subcommands()
    assert {"replay", "mock", "run"} <= set(names)
    for name in names:
        assert any(case.values[0][0] == name for case in CASES), name


@pytest.mark.parametrize("args", CASES)
def test_bad_input_exits_2_with_one_line(results: dict[str, dict[str, Any]], args: list[str]) -> None:
    result = results[json.dumps(args)]
    err = result["stderr"]
    assert result["code"] == 2, result
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("otelbench"), lines[0]
