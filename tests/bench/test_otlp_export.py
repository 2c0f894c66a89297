"""`otelbench replay --otlp-endpoint` with no Collector: the run completes and says what was lost.

(Export to the real Collector, Jaeger and Prometheus is tested in tests/e2e.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_collector_costs_telemetry_not_results(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",  # each failed export gives up after a second
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    argv = [str(BIN / "otelbench"), "replay", "--target", "openai:mock-fast@mock", "--requests", "6"]
    argv += ["--warmup", "1", "--otlp-endpoint", endpoint, "--output-dir", str(tmp_path / "out")]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"nothing answers at --otlp-endpoint {endpoint}" in proc.stderr
    (raw,) = (tmp_path / "out" / "raw").glob("benchmarks-*.json")
    (result,) = json.loads(raw.read_text())["results"]
    assert result["metrics"]["requests"] == 6
    export = result["details"]["otlp_export"]
    # Every span (7 requests, each a request span and a GenAI span) and every metric export failed.
    assert export["spans"] == export["spans_failed"] == 14, export
    assert export["metric_exports"] >= 1 and export["metric_exports_failed"] == export["metric_exports"]
    assert (
        f"14 of 14 spans ({export['span_batches_failed']} of {export['span_batches']} batches)" in proc.stdout
    )
    service = result["details"]["service"]
    assert service["service.name"] == "otelbench-replay"
    uuid.UUID(service["service.instance.id"])  # one per process: the Prometheus `instance` label


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4318", "ftp://127.0.0.1:4318", "http://"])
def test_bad_otlp_endpoint_is_a_usage_error(endpoint: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "otelbench"), "replay", "--otlp-endpoint", endpoint],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"otelbench: error: --otlp-endpoint {endpoint!r} is not an http(s) URL such as http://127.0.0.1:4318"
    ]
