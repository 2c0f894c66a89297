"""Enabling the tenacity and pybreaker instrumentors imports neither; both are wrapped on import.

Runs in a fresh interpreter: this test process has long imported both libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CODE = """
import json, sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otelbench_instrumentation as oi

exporter = InMemorySpanExporter()
tp = TracerProvider()
tp.add_span_processor(SimpleSpanProcessor(exporter))
reader = InMemoryMetricReader()
mp = MeterProvider(metric_readers=[reader])
out = {"enabled": oi.instrument(tracer_provider=tp, meter_provider=mp, include=["tenacity", "pybreaker"])}
out["imported_early"] = [m for m in ("tenacity", "pybreaker") if m in sys.modules]

import pybreaker, tenacity

calls = []
def flaky():
    calls.append(1)
    if len(calls) < 2:
        raise OSError("down")
    return "ok"

tenacity.Retrying(stop=tenacity.stop_after_attempt(3))(flaky)
breaker = pybreaker.CircuitBreaker(fail_max=1, name="late")
try:
    breaker.call(lambda: 1 / 0)
except pybreaker.CircuitBreakerError:
    pass
with tp.get_tracer("t").start_as_current_span("app"):
    try:
        breaker.call(lambda: 1)
    except pybreaker.CircuitBreakerError:
        pass
out["spans"] = [(s.name, [e.name for e in s.events]) for s in exporter.get_finished_spans()]
out["listeners"] = [type(l).__name__ for l in breaker.listeners]
oi.uninstrument()
out["after"] = [type(l).__name__ for l in breaker.listeners]
print(json.dumps(out))
"""


def test_libraries_are_wrapped_on_first_import_not_before() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CODE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(out["enabled"]) == ["pybreaker", "tenacity"]
    assert out["imported_early"] == []
    assert out["spans"] == [
        ["retry flaky", ["otelbench.retry.attempt", "otelbench.retry.attempt"]],
        ["app", ["otelbench.circuit_breaker.rejected"]],
    ]
    assert out["listeners"] == ["PyBreakerListener"]
    assert out["after"] == []
