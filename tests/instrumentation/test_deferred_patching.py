"""Instrumenting before an SDK is imported wraps it on first import, and imports nothing early.

Each case runs in a fresh interpreter: this test process has long imported every SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from otelbench.mock import MockServer

_PRELUDE = """
import json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otelbench_instrumentation as oi

exporter = InMemorySpanExporter()
tp = TracerProvider()
tp.add_span_processor(SimpleSpanProcessor(exporter))
SDKS = ("openai", "anthropic", "ollama")
out = {}
"""


def _run(mock_server: MockServer, body: str) -> dict:  # type: ignore[type-arg]
    code = _PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    env = {
        **os.environ,
        "OPENAI_BASE_URL": mock_server.openai_base_url,
        "OLLAMA_HOST": mock_server.ollama_host,
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_sdks_are_wrapped_on_first_import_not_before(mock_server: MockServer) -> None:
    out = _run(
        mock_server,
        """
        out["enabled"] = oi.instrument(tracer_provider=tp, include=list(SDKS))
        out["imported_early"] = [m for m in SDKS if m in sys.modules]
        import ollama, openai
        openai.OpenAI(api_key="k").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        ollama.chat(model="llama", messages=[{"role": "user", "content": "x"}])  # module-level function
        ollama.Client().generate(model="llama", prompt="x")
        out["spans"] = [s.name for s in exporter.get_finished_spans()]
        oi.uninstrument()
        exporter.clear()
        openai.OpenAI(api_key="k").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        ollama.chat(model="llama", messages=[{"role": "user", "content": "x"}])
        out["after_uninstrument"] = [s.name for s in exporter.get_finished_spans()]
        """,
    )
    assert sorted(out["enabled"]) == ["anthropic", "ollama", "openai"]
    assert out["imported_early"] == []
    # One span per call: the module-level ollama.chat is not counted twice.
    assert out["spans"] == ["chat m", "chat llama", "text_completion llama"]
    assert out["after_uninstrument"] == []


def test_uninstrument_before_import_cancels_the_pending_wrap(mock_server: MockServer) -> None:
    out = _run(
        mock_server,
        """
        oi.instrument(tracer_provider=tp, include=["openai"])
        oi.uninstrument()
        import openai
        from wrapt import ObjectProxy
        create = openai.resources.chat.completions.Completions.create
        out["wrapped"] = isinstance(create, ObjectProxy)
        openai.OpenAI(api_key="k").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        out["spans"] = len(exporter.get_finished_spans())
        oi.instrument(tracer_provider=tp, include=["openai"])  # again, now that it is imported
        openai.OpenAI(api_key="k").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        out["spans_reinstrumented"] = len(exporter.get_finished_spans())
        """,
    )
    assert out == {"wrapped": False, "spans": 0, "spans_reinstrumented": 1}
