"""The instrumentation at the lowest versions instrumentation/pyproject.toml declares, and at the
newest ones the registry has today.

The lock file tests one set of versions (the newest when it was made). Here two virtualenvs are
built from the registry: "lowest" with every declared lower bound pinned (provider SDKs,
tenacity, pybreaker, wrapt, opentelemetry-api/-instrumentation, and the SDK matching that API),
"newest" with nothing pinned, which is what ``pip install otelbench-instrumentation[...]`` gives a
user today (a provider SDK released since the lock was made is tested here first). ``probe.py``
runs in each against the session's mock: every provider's calls and streams, a retry and a
breaker, with ``instrument()`` on. Nothing may be weaker at those versions than the main suite
expects: same spans, same usage, TTFT from the stream, SDK types intact; and
``opentelemetry-instrument`` finds our entry points. Two more virtualenvs hold the package alone
(it needs nothing beyond its run-time dependencies) and anthropic just below its bound (left
alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from otelbench.mock import MockServer
from otelbench_instrumentation import INSTRUMENTORS, semconv
from tests.conftest import MOCK_OUTPUT_TOKENS, MOCK_TTFT_S, console_spans

INSTRUMENTATION = Path(__file__).resolve().parents[2] / "instrumentation"
PROBE = Path(__file__).with_name("probe.py")
ZERO_CODE_APP = Path(__file__).with_name("zero_code_app.py")
#: Tests that build the virtualenv (from the package registry).
slow = pytest.mark.slow


PROJECT = tomllib.loads((INSTRUMENTATION / "pyproject.toml").read_text())["project"]
#: The run-time dependencies (every other requirement is optional).
RUNTIME = {canonicalize_name(Requirement(text).name) for text in PROJECT["dependencies"]}


def declared_lowest() -> dict[str, Version]:
    """Every requirement of the instrumentation (run time and extras) at its ``>=`` bound."""
    texts = [
        *PROJECT["dependencies"],
        *(r for group in PROJECT["optional-dependencies"].values() for r in group),
    ]
    lowest: dict[str, Version] = {}
    for text in texts:
        requirement = Requirement(text)
        bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert len(bounds) == 1, f"{text!r}: one '>=' lower bound expected"
        name = canonicalize_name(requirement.name)
        assert lowest.setdefault(name, bounds[0]) == bounds[0], f"{name} has two lower bounds"
    return lowest


def pins() -> dict[str, Version]:
    """What the virtualenv installs: the declared bounds, and the OpenTelemetry SDK of the API's."""
    lowest = declared_lowest()
    return {**lowest, "opentelemetry-sdk": lowest["opentelemetry-api"]}


def test_instrumentors_declare_the_pyproject_bounds() -> None:
    """opentelemetry-instrument skips an instrumentor whose library is older than it declares:
    each must declare what pyproject.toml does, which is what the probe below tests."""
    lowest = declared_lowest()
    declared = {}
    for name, instrumentor in INSTRUMENTORS.items():
        (text,) = instrumentor().instrumentation_dependencies()
        requirement = Requirement(text)
        (spec,) = requirement.specifier
        assert spec.operator == ">=", f"{name}: {text!r}"
        declared[canonicalize_name(requirement.name)] = Version(spec.version)
    # Bedrock's instrumentor wraps botocore (the bedrock extra installs it through boto3).
    assert declared == {k: v for k, v in lowest.items() if k in declared}
    assert set(declared) == {"openai", "anthropic", "ollama", "botocore", "tenacity", "pybreaker"}


def make_venv(tmp_path_factory: pytest.TempPathFactory, name: str, requirements: list[str]) -> Path:
    """A fresh virtualenv (this interpreter's Python) with the instrumentation and
    ``requirements`` installed from the registry; returns its interpreter."""
    # `uv run` names itself in UV; otherwise the uv on PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH (the README's commands install it)")
    venv = tmp_path_factory.mktemp(name) / "venv"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], 120)
    python = venv / "bin" / "python"
    # A fresh machine downloads them once into uv's cache.
    run([uv, "pip", "install", "--quiet", "--python", str(python), str(INSTRUMENTATION), *requirements], 900)
    return python


def run(args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``args``, which must succeed. None of this process's OpenTelemetry or Python settings
    reach it (a probe would pick them up), only ``env``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "VIRTUAL_ENV", "PYTHON"))}
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env={**inherited, **env}, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{args[:3]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def locked() -> dict[str, Version]:
    """The versions uv.lock holds, by distribution."""
    lock = tomllib.loads((INSTRUMENTATION.parent / "uv.lock").read_text())
    return {canonicalize_name(p["name"]): Version(p["version"]) for p in lock["package"] if "version" in p}


#: The virtualenvs the probe runs in.
VERSION_SETS = ["lowest", "newest"]


@pytest.fixture(scope="module", params=VERSION_SETS)
def version_set(request: pytest.FixtureRequest) -> str:
    """Which virtualenv: "lowest" or "newest"."""
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def probe_python(version_set: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv's interpreter with the instrumentation and either the lowest declared versions
    or the newest ones; both with ``opentelemetry-instrument`` (from ``opentelemetry-distro``)."""
    wanted = pins()
    if version_set == "lowest":
        # The distro of the lowest instrumentation release.
        wanted["opentelemetry-distro"] = wanted["opentelemetry-instrumentation"]
        return make_venv(tmp_path_factory, "lowest", [f"{n}=={v}" for n, v in sorted(wanted.items())])
    return make_venv(tmp_path_factory, "newest", [*sorted(wanted), "opentelemetry-distro"])


@pytest.fixture(scope="module")
def outcome(probe_python: Path, mock_server: MockServer) -> dict[str, Any]:
    """probe.py's JSON, run once in each virtualenv."""
    result: dict[str, Any] = json.loads(run([str(probe_python), str(PROBE), mock_server.url], 300).stdout)
    return result


@slow
def test_the_virtualenv_has_the_versions_it_names(outcome: dict[str, Any], version_set: str) -> None:
    """ "lowest" has exactly the declared bounds; "newest" nothing older than the lock (else the
    registry's newest was not what got installed)."""
    installed: dict[str, Version] = {canonicalize_name(k): Version(v) for k, v in outcome["versions"].items()}
    wanted = pins()
    if version_set == "lowest":
        assert {k: installed[k] for k in wanted} == wanted
    else:
        lock = locked()
        older = {k: (str(installed[k]), str(lock[k])) for k in wanted if installed[k] < lock[k]}
        assert not older, f"older than uv.lock (installed, locked): {older}"
    assert outcome["enabled"] == sorted(INSTRUMENTORS)


def _points(outcome: Mapping[str, Any], metric: str, **attributes: Any) -> list[dict[str, Any]]:
    return [
        p
        for p in outcome["metrics"]
        if p["name"] == metric and all(p["attributes"].get(k) == v for k, v in attributes.items())
    ]


def model_of(scenario: str) -> str:
    """probe.py's request model for a scenario: ``compat-`` + its name, dashed."""
    return "compat-" + scenario.replace("_", "-")


def genai(
    scenario: str, provider: str, streamed: bool, *, whole: bool = True, operation: str = semconv.OP_CHAT
) -> Any:
    """One GenAI scenario of probe.py (``whole``: read to the end). Bedrock's models carry the
    ``anthropic.`` prefix and version suffix its model ids need."""
    model = model_of(scenario)
    if provider == semconv.PROVIDER_AWS_BEDROCK:
        model = f"anthropic.{model}-v1:0"
    return pytest.param(scenario, operation, provider, model, streamed, whole, id=scenario)


OPENAI, ANTHROPIC, OLLAMA = semconv.PROVIDER_OPENAI, semconv.PROVIDER_ANTHROPIC, semconv.PROVIDER_OLLAMA
GENAI = [
    genai("openai_create", OPENAI, False),
    genai("openai_stream", OPENAI, True),
    genai("openai_responses", OPENAI, False),
    genai("openai_raw", OPENAI, False),
    genai("openai_async_stream", OPENAI, True),
    genai("openai_completion_stream", OPENAI, True, operation=semconv.OP_TEXT_COMPLETION),
    genai("azure_stream", semconv.PROVIDER_AZURE_AI_OPENAI, True),
    genai("anthropic_create", ANTHROPIC, False),
    genai("anthropic_stream_helper", ANTHROPIC, True),
    genai("anthropic_stream_closed_early", ANTHROPIC, True, whole=False),
    genai("anthropic_raw_stream", ANTHROPIC, True),
    genai("anthropic_async_stream", ANTHROPIC, True),
    genai("anthropic_async_stream_helper", ANTHROPIC, True),
    genai("anthropic_async_closed_early", ANTHROPIC, True, whole=False),
    genai("ollama_chat", OLLAMA, False),
    genai("ollama_stream", OLLAMA, True),
    genai("ollama_async_generate_stream", OLLAMA, True, operation=semconv.OP_TEXT_COMPLETION),
    genai("bedrock_invoke", semconv.PROVIDER_AWS_BEDROCK, False),
    genai("bedrock_invoke_stream", semconv.PROVIDER_AWS_BEDROCK, True),
]


@slow
@pytest.mark.parametrize(("scenario", "operation", "provider", "model", "streamed", "whole"), GENAI)
def test_genai_call(
    outcome: dict[str, Any],
    scenario: str,
    operation: str,
    provider: str,
    model: str,
    streamed: bool,
    whole: bool,
) -> None:
    """One span with the conventions' attributes and the usage the app saw; streams timed from
    their first chunk; the metrics agree with the span; the app still gets the SDK's types."""
    run = outcome["scenarios"][scenario]
    assert run["error"] is None, run["error"]
    app = run["app"]
    assert app["is_sdk_type"], f"{scenario}: the app got a {app['type']}, not the SDK's type"
    (span,) = run["spans"]
    a = span["attributes"]
    assert span["name"] == f"{operation} {model}" and span["kind"] == "CLIENT" and span["status"] == "UNSET"
    assert a[semconv.GEN_AI_OPERATION_NAME] == operation and a[semconv.GEN_AI_PROVIDER_NAME] == provider
    assert a[semconv.GEN_AI_REQUEST_MODEL] == model
    assert a.get(semconv.GEN_AI_RESPONSE_MODEL) == model, a
    for key, seen in (
        (semconv.GEN_AI_USAGE_INPUT_TOKENS, "input_tokens"),
        (semconv.GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens"),
    ):
        if app[seen] is not None:
            assert a.get(key) == app[seen] > 0, (key, a.get(key), app[seen])
        elif whole:
            assert a.get(key, 0) > 0, (key, a)

    metric = {semconv.GEN_AI_REQUEST_MODEL: model}
    (duration,) = _points(outcome, semconv.METRIC_OPERATION_DURATION, **metric)
    assert duration["count"] == 1 and duration["unit"] == "s"
    for token_type, key in (
        (semconv.TOKEN_TYPE_INPUT, semconv.GEN_AI_USAGE_INPUT_TOKENS),
        (semconv.TOKEN_TYPE_OUTPUT, semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
    ):
        points = _points(
            outcome, semconv.METRIC_TOKEN_USAGE, **metric, **{semconv.GEN_AI_TOKEN_TYPE: token_type}
        )
        assert [p["sum"] for p in points] == ([a[key]] if key in a else [])

    ttft_points = _points(outcome, semconv.METRIC_TIME_TO_FIRST_CHUNK, **metric)
    if not streamed:
        assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a and ttft_points == []
        return
    ttft = a[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    # Not before the mock's first content (its configured delay); well before the stream's end.
    assert MOCK_TTFT_S - 0.0005 <= ttft < duration["sum"], (ttft, duration["sum"])
    (ttft_point,) = ttft_points
    assert ttft_point["count"] == 1 and ttft_point["sum"] == pytest.approx(ttft)
    if whole:
        assert a[semconv.STREAM_CHUNK_COUNT] == MOCK_OUTPUT_TOKENS
        assert semconv.STREAM_CLOSED_EARLY not in a
    else:
        assert a[semconv.STREAM_CHUNK_COUNT] == 1 and a[semconv.STREAM_CLOSED_EARLY] is True


@slow
@pytest.mark.parametrize(
    "scenario", ["anthropic_stream_dropped_unread", "anthropic_async_stream_dropped_unread"]
)
def test_stream_dropped_unread_ends_its_span(outcome: dict[str, Any], scenario: str) -> None:
    """A stream the app never reads, once collected, leaves no open span: it ends as closed
    early, with no chunks and no TTFT."""
    model = model_of(scenario)
    run = outcome["scenarios"][scenario]
    assert run["error"] is None, run["error"]
    assert run["app"]["is_sdk_type"]
    (span,) = run["spans"]
    a = span["attributes"]
    assert span["name"] == f"{semconv.OP_CHAT} {model}"
    assert a[semconv.STREAM_CLOSED_EARLY] is True and a[semconv.STREAM_CHUNK_COUNT] == 0
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a
    (duration,) = _points(outcome, semconv.METRIC_OPERATION_DURATION, **{semconv.GEN_AI_REQUEST_MODEL: model})
    assert duration["count"] == 1


@slow
def test_tenacity_retry(outcome: dict[str, Any]) -> None:
    run = outcome["scenarios"]["tenacity_retry"]
    assert run["error"] is None, run["error"]
    assert run["app"] == {"result": "ok", "attempts": 3}
    (span,) = run["spans"]
    assert span["name"].startswith(f"{semconv.SPAN_RETRY} ")
    assert span["attributes"][semconv.RETRY_OUTCOME] == semconv.RETRY_OUTCOME_SUCCESS
    events = [e for e in span["events"] if e["name"] == semconv.EVENT_RETRY_ATTEMPT]
    assert [e["attributes"][semconv.RETRY_ATTEMPT_NUMBER] for e in events] == [1, 2, 3]
    (operations,) = _points(outcome, semconv.METRIC_RETRY_OPERATIONS)
    assert operations["value"] == 1
    assert sum(p["value"] for p in _points(outcome, semconv.METRIC_RETRY_ATTEMPTS)) == 3


@slow
def test_pybreaker_transitions(outcome: dict[str, Any]) -> None:
    run = outcome["scenarios"]["pybreaker_transitions"]
    assert run["error"] is None, run["error"]
    assert run["app"]["states"] == ["closed", "closed", "open", "rejected", "ok", "closed"]
    name = {semconv.BREAKER_NAME: "compat-breaker"}
    transitions = {
        (p["attributes"][semconv.BREAKER_FROM_STATE], p["attributes"][semconv.BREAKER_TO_STATE]): p["value"]
        for p in _points(outcome, semconv.METRIC_BREAKER_TRANSITIONS, **name)
    }
    assert transitions == {
        (semconv.BREAKER_STATE_CLOSED, semconv.BREAKER_STATE_OPEN): 1,
        (semconv.BREAKER_STATE_OPEN, semconv.BREAKER_STATE_HALF_OPEN): 1,
        (semconv.BREAKER_STATE_HALF_OPEN, semconv.BREAKER_STATE_CLOSED): 1,
    }
    (rejected,) = _points(outcome, semconv.METRIC_BREAKER_REJECTED, **name)
    assert rejected["value"] == 1


@slow
def test_zero_code(probe_python: Path, mock_server: MockServer) -> None:
    """``opentelemetry-instrument`` (of the lowest release, and of the newest) loads our entry
    points: an app with no telemetry code gets one GenAI span per call, and its API key appears
    nowhere."""
    instrument = str(probe_python.parent / "opentelemetry-instrument")
    done = run(
        [instrument, str(probe_python), str(ZERO_CODE_APP), mock_server.url],
        180,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="zero-code-compat",
    )
    genai = [s for s in console_spans(done.stdout) if semconv.GEN_AI_OPERATION_NAME in s["attributes"]]
    found = {
        s["name"]: (
            s["attributes"][semconv.GEN_AI_PROVIDER_NAME],
            s["attributes"].get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        )
        for s in genai
    }
    assert len(genai) == 4 and found == {
        f"{semconv.OP_CHAT} zero-openai": (semconv.PROVIDER_OPENAI, MOCK_OUTPUT_TOKENS),
        f"{semconv.OP_CHAT} zero-openai-stream": (semconv.PROVIDER_OPENAI, MOCK_OUTPUT_TOKENS),
        f"{semconv.OP_CHAT} zero-anthropic": (semconv.PROVIDER_ANTHROPIC, MOCK_OUTPUT_TOKENS),
        f"{semconv.OP_CHAT} zero-ollama-stream": (semconv.PROVIDER_OLLAMA, MOCK_OUTPUT_TOKENS),
    }, done.stdout[-4000:]
    assert "zero-code-compat-SECRET" not in done.stdout + done.stderr


BARE_PROBE = """
import importlib.metadata, json
import otelbench_instrumentation as o

@o.llm_call("custom", model="m")
def ask(prompt):
    return prompt.upper()

out = {"enabled": o.instrument(), "answer": ask("hi")}
o.uninstrument()
out["dists"] = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions())
print(json.dumps(out))
"""


@slow
def test_bare_install_needs_no_sdk_and_instruments_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Installed alone, the package brings only its run-time dependencies (no OpenTelemetry SDK,
    no provider SDK, no tenacity or pybreaker); it imports, instrument() enables nothing and
    says so, and the decorators run on the API's no-op providers."""
    python = make_venv(tmp_path_factory, "bare", [])
    out = json.loads(run([str(python), "-c", BARE_PROBE], 120).stdout)
    assert out["enabled"] == [] and out["answer"] == "HI"
    dists = set(out["dists"])
    assert dists >= RUNTIME
    optional = set(declared_lowest()) - RUNTIME
    assert not dists & (optional | {"opentelemetry-sdk"}), dists


TOO_OLD_PROBE = """
import json, sys
import anthropic
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import otelbench_instrumentation as o

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
enabled = o.instrument(tracer_provider=provider)
with anthropic.Anthropic(base_url=sys.argv[1], api_key="k") as client:
    m = client.messages.create(model="too-old", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
print(json.dumps({"enabled": enabled, "output_tokens": m.usage.output_tokens, "spans": len(exporter.get_finished_spans())}))
"""
#: The anthropic release just below the declared bound (0.42 rebuilt the helper's stream).
TOO_OLD_ANTHROPIC = Version("0.42.0")


@slow
def test_a_library_older_than_declared_is_left_alone(
    tmp_path_factory: pytest.TempPathFactory, mock_server: MockServer
) -> None:
    """Below its bound a library is not instrumented at all (not half-instrumented): the app's
    calls work and make no span, and instrument() does not name it."""
    assert declared_lowest()["anthropic"] > TOO_OLD_ANTHROPIC
    python = make_venv(tmp_path_factory, "too-old", [f"anthropic=={TOO_OLD_ANTHROPIC}", "opentelemetry-sdk"])
    out = json.loads(run([str(python), "-c", TOO_OLD_PROBE, mock_server.url], 120).stdout)
    assert out == {"enabled": [], "output_tokens": MOCK_OUTPUT_TOKENS, "spans": 0}
