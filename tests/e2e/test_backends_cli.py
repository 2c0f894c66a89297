"""`otelbench backends` runs the real stack in the foreground and stops it on Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def test_backends_command_serves_until_ctrl_c(backends_installed: None, tmp_path: Path) -> None:
    check = subprocess.run([str(BIN / "otelbench"), "backends", "--check"], capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.strip() == "all backends installed"
    with subprocess.Popen(
        [str(BIN / "otelbench"), "backends", "--free-ports"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("Ctrl-C"):
                    break
            text = "".join(lines)
            urls = dict(re.findall(r"^(Jaeger|Prometheus)\s+(\S+)", text, re.M))
            assert set(urls) == {"Jaeger", "Prometheus"}, text
            with urllib.request.urlopen(f"{urls['Jaeger']}/api/services", timeout=5) as response:
                assert "data" in json.loads(response.read())
            with urllib.request.urlopen(f"{urls['Prometheus']}/-/ready", timeout=5) as response:
                assert response.status == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()  # a failed check must not leave the stack running
    # Every backend went down with it.
    for url in (f"{urls['Jaeger']}/api/services", f"{urls['Prometheus']}/-/ready"):
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=2)
