"""Benchmark data safety: ``kill -9`` while a replay writes its results leaves the earlier ones intact.

tests/bench/test_cli.py covers Ctrl-C (partial results written) and a write that fails half-way
in process (nothing changed, no temp file). Here a real ``otelbench replay`` process is killed
with SIGKILL at the moment it has a result file half-written (a temp file exists), which no
handler can clean up after.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

OTELBENCH = str(Path(sys.executable).parent / "otelbench")
ARGS = ["replay", "--requests", "30", "--warmup", "0", "--no-progress"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _kill_while_writing(out: Path, deadline_s: float = 120) -> bool:
    """Run a replay into ``out``; SIGKILL it as soon as a temp file appears. True if that happened."""
    proc = subprocess.Popen(
        [OTELBENCH, *ARGS, "--output-dir", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    end = time.monotonic() + deadline_s
    try:
        while proc.poll() is None and time.monotonic() < end:
            for directory in (out, out / "raw"):
                with os.scandir(directory) as entries:
                    if any(e.name.endswith(".tmp") for e in entries):
                        proc.send_signal(signal.SIGKILL)
                        proc.wait(timeout=10)
                        return True
            time.sleep(0.0002)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _check_complete(out: Path) -> None:
    """Every file under its final name is whole: JSON parses, JSONL lines parse, CSV rows are full."""
    for path in out.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        text = path.read_text()
        if path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".jsonl":
            assert text.endswith("\n")
            for line in text.splitlines():
                json.loads(line)
        elif path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(text)))
            assert rows and len({len(r) for r in rows}) == 1, path
        else:
            assert text.endswith("\n"), path


@pytest.mark.slow
def test_kill_9_while_writing_leaves_previous_results_intact(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = subprocess.run(
        [OTELBENCH, *ARGS, "--output-dir", str(out)], capture_output=True, text=True, env=_env(), timeout=180
    )
    assert first.returncode == 0, first.stderr
    before = _files(out)
    assert any(name.startswith("raw/benchmarks-") for name in before)
    time.sleep(1.1)  # a new timestamp: the killed run's files get names of their own
    # The write window is short; a few tries (bounded) to land the kill inside it.
    assert any(_kill_while_writing(out) for _ in range(3)), "never caught the replay writing"
    after = _files(out)
    for name, content in before.items():
        if name == "history.csv":
            # Replaced atomically by a longer version, or not yet: either way it starts as before.
            assert after[name].startswith(content)
        elif name == "summary.md":
            assert after[name] == content or after[name].endswith(b"\n")
        else:
            assert after[name] == content, name
    _check_complete(out)
    leftovers = [name for name in after if name.endswith(".tmp")]
    print(f"\nkilled while writing; earlier files intact; temp files left by SIGKILL: {leftovers}")


def _small_disk() -> None:
    # Runs in the child: a 4 KiB file-size limit stands in for a full disk (EFBIG on write).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


def test_full_disk_is_one_clear_line_and_keeps_earlier_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [OTELBENCH, "replay", "--target", "openai:mock-fast@mock", "--requests", "8", "--warmup", "0"]
    args += ["--no-progress", "--output-dir", str(out)]
    first = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=180)
    assert first.returncode == 0, first.stderr
    before = _files(out)
    time.sleep(1.1)  # a new timestamp: the failing run would write files of its own
    full = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=180,
        preexec_fn=_small_disk,
    )
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert lines[-1].startswith("otelbench: error: File too large: ") and str(out) in lines[-1], lines
    assert "Traceback" not in full.stderr
    assert _files(out) == before  # nothing half-written, nothing replaced, no temp file
