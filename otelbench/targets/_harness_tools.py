"""The load generators ``harness-peers`` compares: how each is installed, invoked and read.

Each :class:`Tool` knows its pins, the command line a user would type for one closed-loop run
(:class:`RunSpec`: N requests at concurrency C against an OpenAI-compatible URL), and how to read
that tool's own output file into :class:`Figures`. The parsers are pure functions of the files,
tested on saved outputs (``tests/bench/data/harness/``).

Every tool reports a per-request inter-token figure (GuideLLM "ITL", AIPerf "ITL", inference-perf
and vLLM "TPOT", ours ``tpot``): (latency - TTFT) / (output tokens - 1). That is what
:attr:`Figures.itl` holds, and what is compared with the mock's per-request value. Some tools also
report one value per chunk gap (AIPerf "inter-chunk latency", inference-perf, vLLM and ours
"ITL"): :attr:`Figures.itl_gap`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._harness_truth import Stat
from .peers import env_without_telemetry_settings

# Offline and quiet: nothing of the tools may reach beyond 127.0.0.1 (the hub, usage statistics).
_QUIET_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "NO_COLOR": "1",
    "COLUMNS": "200",
}


# PYTHONDONTWRITEBYTECODE would make every start-up recompile the tool's whole import graph
# (vllm: 22 s instead of 13 s here); a normal install caches the bytecode.
_DROPPED_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")


@dataclass(frozen=True)
class RunSpec:
    """One closed-loop run: ``requests`` chat completions, ``concurrency`` in flight."""

    url: str  # the mock's root, http://127.0.0.1:PORT
    model: str
    concurrency: int
    requests: int
    stream: bool
    output_tokens: int
    tokenizer: Path
    workdir: Path  # empty directory for the tool's output
    input_tokens: int = 16


@dataclass(frozen=True)
class Figures:
    """What a tool reported about one run (seconds)."""

    ttft: Stat | None
    itl: Stat | None  # per request: (latency - TTFT) / (output tokens - 1)
    itl_gap: Stat | None  # per chunk gap, where the tool reports it
    latency: Stat | None
    requests: int  # successful requests the tool counted
    errors: int


class ParseError(Exception):
    """A tool's output file is missing or not in the expected shape."""


@dataclass(frozen=True)
class Tool:
    """One load generator."""

    name: str  # metric prefix
    label: str
    requirements: tuple[str, ...]  # empty: runs from the project environment (ours)
    command: Callable[[Path, RunSpec], list[str]]  # (bin dir, spec) -> argv
    parse: Callable[[Path], Figures]  # workdir -> figures
    min_python: tuple[int, int] = (3, 11)
    warmup_records: int = 0  # requests sent before the measured ones (dropped from the truth)
    offline_hub: bool = True  # HF_HUB_OFFLINE=1 (AIPerf then refuses a local tokenizer path)
    always_streams: bool = False
    min_concurrency: int = 1
    note: str = ""
    env: Mapping[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The tool process's environment: ours minus OTel and virtualenv settings, plus quiet/offline."""
        env = {k: v for k, v in env_without_telemetry_settings().items() if k not in _DROPPED_ENV}
        env.update(_QUIET_ENV)
        if self.offline_hub:
            env["HF_HUB_OFFLINE"] = "1"
        env.update(self.env)
        return env


def _stat(source: Mapping[str, Any], mean: str, p50: str, p99: str, scale: float) -> Stat | None:
    try:
        values = [float(source[mean]), float(source[p50]), float(source[p99])]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return Stat(values[0] * scale, values[1] * scale, values[2] * scale)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ParseError(f"cannot read {path.name}: {exc}") from exc


# --- otelbench replay (ours) ---------------------------------------------------------------------
def ours_command(bin_dir: Path, spec: RunSpec, workers: int = 1, client: str = "sdk") -> list[str]:
    """``otelbench replay`` as a user types it, against the mock's URL."""
    argv = [
        str(bin_dir / "otelbench"),
        "replay",
        "--target",
        f"openai:{spec.model}@{spec.url}/v1",
        "--concurrency",
        str(spec.concurrency),
        "--requests",
        str(spec.requests),
        "--output-dir",
        str(spec.workdir),
        "--no-progress",
    ]
    if not spec.stream:
        argv.append("--no-stream")
    if workers > 1:
        argv += ["--workers", str(workers)]
    if client != "sdk":
        argv += ["--client", client]
    return argv


def parse_ours(workdir: Path) -> Figures:
    """Read ``raw/benchmarks-*.json`` written by ``otelbench replay``."""
    files = sorted((workdir / "raw").glob("benchmarks-*.json"))
    if not files:
        raise ParseError("no raw/benchmarks-*.json written")
    return parse_ours_document(_load(files[-1]))


def parse_ours_document(doc: Any) -> Figures:
    """Figures from an ``otelbench replay`` results document (one target)."""
    try:
        m = doc["results"][0]["metrics"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ParseError(f"not a results document: {exc}") from exc
    return Figures(
        ttft=_stat(m, "ttft_mean_s", "ttft_p50_s", "ttft_p99_s", 1.0),
        itl=_stat(m, "tpot_mean_s", "tpot_p50_s", "tpot_p99_s", 1.0),
        itl_gap=_stat(m, "itl_mean_s", "itl_p50_s", "itl_p99_s", 1.0),
        latency=_stat(m, "duration_mean_s", "duration_p50_s", "duration_p99_s", 1.0),
        requests=int((m.get("requests") or 0) - (m.get("errors") or 0)),
        errors=int(m.get("errors") or 0),
    )


# --- GuideLLM --------------------------------------------------------------------------------------
def guidellm_command(bin_dir: Path, spec: RunSpec) -> list[str]:
    """``guidellm run`` with a concurrent profile and a request-count constraint."""
    backend = (
        f"kind=openai_http,target={spec.url},model={spec.model},request_format=/v1/chat/completions,"
        f"validate_backend=false,stream={'true' if spec.stream else 'false'}"
    )
    return [
        str(bin_dir / "guidellm"),
        "run",
        "--backend",
        backend,
        "--profile",
        f"kind=concurrent,streams={spec.concurrency}",
        "--constraint",
        f"kind=max_requests,count={spec.requests}",
        "--data",
        f"kind=synthetic_text,prompt_tokens={spec.input_tokens},output_tokens={spec.output_tokens}",
        "--tokenizer",
        f"kind=huggingface_auto,model={spec.tokenizer}",
        "--output",
        f"kind=json,path={spec.workdir / 'benchmarks.json'}",
        "--disable-console-interactive",
    ]


def parse_guidellm(workdir: Path) -> Figures:
    """Read GuideLLM's ``benchmarks.json``."""
    return parse_guidellm_document(_load(workdir / "benchmarks.json"))


def parse_guidellm_document(doc: Any) -> Figures:
    """Figures from a GuideLLM report (its last benchmark; successful requests)."""
    try:
        m = doc["benchmarks"][-1]["metrics"]
        totals = m["request_totals"]

        def ok(name: str, scale: float) -> Stat | None:
            s = m[name]["successful"]
            return _stat({"mean": s["mean"], **s["percentiles"]}, "mean", "p50", "p99", scale)

        return Figures(
            ttft=ok("time_to_first_token_ms", 1e-3),
            itl=ok("inter_token_latency_ms", 1e-3),
            itl_gap=None,
            latency=ok("request_latency", 1.0),
            requests=int(totals["successful"]),
            errors=int(totals["errored"]) + int(totals.get("incomplete") or 0),
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise ParseError(f"not a GuideLLM report: {exc!r}") from exc


# --- AIPerf ----------------------------------------------------------------------------------------
def aiperf_command(bin_dir: Path, spec: RunSpec) -> list[str]:
    """``aiperf profile`` at a fixed concurrency and request count."""
    argv = [
        str(bin_dir / "aiperf"),
        "profile",
        "--model",
        spec.model,
        "--url",
        spec.url,
        "--endpoint-type",
        "chat",
        "--concurrency",
        str(spec.concurrency),
        "--request-count",
        str(spec.requests),
        "--isl",
        str(spec.input_tokens),
        "--osl",
        str(spec.output_tokens),
        "--tokenizer",
        str(spec.tokenizer),
        "--artifact-dir",
        str(spec.workdir / "artifacts"),
        "--ui",
        "none",
    ]
    if spec.stream:
        argv.append("--streaming")
    return argv


def parse_aiperf(workdir: Path) -> Figures:
    """Read AIPerf's ``profile_export_aiperf.json``."""
    return parse_aiperf_document(_load(workdir / "artifacts" / "profile_export_aiperf.json"))


def parse_aiperf_document(doc: Any) -> Figures:
    """Figures from an AIPerf export (values in ms, request latency too)."""
    try:

        def metric(name: str) -> Stat | None:
            m = doc.get(name)
            return _stat(m, "avg", "p50", "p99", 1e-3) if isinstance(m, dict) else None

        count = int(doc["request_count"]["avg"])
        errors = sum(int(e.get("count", 1)) for e in doc.get("error_summary") or [] if isinstance(e, dict))
        return Figures(
            ttft=metric("time_to_first_token"),
            itl=metric("inter_token_latency"),
            itl_gap=metric("inter_chunk_latency"),
            latency=metric("request_latency"),
            requests=count,
            errors=errors,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ParseError(f"not an AIPerf export: {exc!r}") from exc


# --- inference-perf ----------------------------------------------------------------------------------
def inference_perf_config(spec: RunSpec) -> dict[str, Any]:
    """The YAML (as JSON, a YAML subset) configuration of one concurrent stage."""
    return {
        "api": {"type": "chat", "streaming": spec.stream},
        "server": {"type": "vllm", "model_name": spec.model, "base_url": spec.url, "ignore_eos": True},
        "tokenizer": {"pretrained_model_name_or_path": str(spec.tokenizer)},
        # The only synthetic data of chat type; the output length is the mock's (capped at 30).
        "data": {"type": "mock"},
        "load": {
            "type": "concurrent",
            "stages": [{"num_requests": spec.requests, "concurrency_level": spec.concurrency}],
            "num_workers": 2,
            # The default cap (100 per worker) would hold 256 below its level.
            "worker_max_concurrency": max(100, spec.concurrency),
        },
        "report": {"request_lifecycle": {"summary": True, "per_stage": False, "percentiles": [50, 99]}},
        "storage": {"local_storage": {"path": str(spec.workdir / "report")}},
    }


def inference_perf_command(bin_dir: Path, spec: RunSpec) -> list[str]:
    """``inference-perf -c config.yml`` (the configuration file is written here)."""
    config = spec.workdir / "config.yml"
    config.write_text(json.dumps(inference_perf_config(spec), indent=2) + "\n")
    return [str(bin_dir / "inference-perf"), "-c", str(config)]


def parse_inference_perf(workdir: Path) -> Figures:
    """Read inference-perf's ``summary_lifecycle_metrics.json``."""
    return parse_inference_perf_document(_load(workdir / "report" / "summary_lifecycle_metrics.json"))


def parse_inference_perf_document(doc: Any) -> Figures:
    """Figures from an inference-perf summary (seconds)."""
    try:
        ok = doc["successes"]
        lat = ok.get("latency") or {}

        def metric(name: str) -> Stat | None:
            m = lat.get(name)
            return _stat(m, "mean", "median", "p99", 1.0) if isinstance(m, dict) else None

        return Figures(
            ttft=metric("time_to_first_token"),
            itl=metric("time_per_output_token"),
            itl_gap=metric("inter_token_latency"),
            latency=metric("request_latency"),
            requests=int(ok["count"]),
            errors=int((doc.get("failures") or {}).get("count") or 0),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ParseError(f"not an inference-perf summary: {exc!r}") from exc


# --- vllm bench serve ------------------------------------------------------------------------------
def vllm_command(bin_dir: Path, spec: RunSpec) -> list[str]:
    """``vllm bench serve`` with the random dataset, a concurrency cap and an unlimited rate."""
    return [
        str(bin_dir / "vllm"),
        "bench",
        "serve",
        "--backend",
        "openai-chat",
        "--base-url",
        spec.url,
        "--endpoint",
        "/v1/chat/completions",
        "--model",
        spec.model,
        "--tokenizer",
        str(spec.tokenizer),
        "--dataset-name",
        "random",
        "--random-input-len",
        str(spec.input_tokens),
        "--random-output-len",
        str(spec.output_tokens),
        "--num-prompts",
        str(spec.requests),
        "--max-concurrency",
        str(spec.concurrency),
        "--request-rate",
        "inf",
        "--ignore-eos",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--save-result",
        "--result-dir",
        str(spec.workdir),
        "--result-filename",
        "result.json",
        "--disable-tqdm",
    ]


def parse_vllm(workdir: Path) -> Figures:
    """Read ``vllm bench serve``'s saved result."""
    return parse_vllm_document(_load(workdir / "result.json"))


def parse_vllm_document(doc: Any) -> Figures:
    """Figures from a ``vllm bench serve`` result (ms)."""
    try:

        def metric(name: str) -> Stat | None:
            return _stat(doc, f"mean_{name}_ms", f"p50_{name}_ms", f"p99_{name}_ms", 1e-3)

        return Figures(
            ttft=metric("ttft"),
            itl=metric("tpot"),
            itl_gap=metric("itl"),
            latency=metric("e2el"),
            requests=int(doc["completed"]),
            errors=int(doc.get("failed") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(f"not a vllm bench serve result: {exc!r}") from exc


# --- the registry ----------------------------------------------------------------------------------
OURS = Tool(
    "otelbench",
    "otelbench replay",
    (),
    ours_command,
    parse_ours,
    warmup_records=4,  # --warmup default: 4 unmeasured requests before the measured ones
    offline_hub=False,
    note="from the project environment; default options (4 warm-up requests, SDK retries 2)",
)
OURS_WORKERS = Tool(
    "otelbench_w2",
    "otelbench replay --workers 2",
    (),
    lambda bin_dir, spec: ours_command(bin_dir, spec, workers=2),
    parse_ours,
    warmup_records=8,  # 4 per worker
    offline_hub=False,
    min_concurrency=2,  # each worker keeps requests in flight
    note="multi-process replay, measured only when `otelbench replay --help` offers --workers",
)
OURS_HTTP = Tool(
    "otelbench_http",
    "otelbench replay --client http",
    (),
    lambda bin_dir, spec: ours_command(bin_dir, spec, client="http"),
    parse_ours,
    warmup_records=4,
    offline_hub=False,
    note="the lean HTTP client instead of the openai SDK (same instrumentation recorder, no retries)",
)
OURS_HTTP_WORKERS = Tool(
    "otelbench_http_w2",
    "otelbench replay --client http --workers 2",
    (),
    lambda bin_dir, spec: ours_command(bin_dir, spec, workers=2, client="http"),
    parse_ours,
    warmup_records=8,
    offline_hub=False,
    min_concurrency=2,
    note="the lean HTTP client on two client processes",
)
#: Our variants, each with the replay options it needs (checked in `otelbench replay --help`).
OURS_ALL: tuple[tuple[Tool, tuple[str, ...]], ...] = (
    (OURS, ()),
    (OURS_WORKERS, ("--workers",)),
    (OURS_HTTP, ("--client",)),
    (OURS_HTTP_WORKERS, ("--client", "--workers")),
)
PEERS: tuple[Tool, ...] = (
    Tool(
        "guidellm",
        "GuideLLM",
        ("guidellm==0.8.1", "transformers==5.23.0"),
        guidellm_command,
        parse_guidellm,
        note="validate_backend=false: its check GETs /health, which an OpenAI-compatible API need not serve",
    ),
    Tool(
        "aiperf",
        "AIPerf",
        ("aiperf==0.13.0", "transformers==5.23.0"),
        aiperf_command,
        parse_aiperf,
        offline_hub=False,  # with HF_HUB_OFFLINE set, AIPerf looks a local tokenizer path up in the hub cache
    ),
    Tool(
        "inference_perf",
        "inference-perf",
        ("inference-perf==0.7.0", "transformers==5.13.0"),
        inference_perf_command,
        parse_inference_perf,
        min_python=(3, 12),
        note="needs Python >= 3.12; `data.type: mock` (its only synthetic chat data) sends max_tokens 30",
    ),
    Tool(
        "vllm",
        "vllm bench serve",
        ("vllm==0.32.0", "transformers==5.19.0"),
        vllm_command,
        parse_vllm,
        always_streams=True,
        note="CUDA build from PyPI; `vllm bench serve` runs without a GPU. Its TTFT is the first SSE "
        "chunk with choices, i.e. the role chunk, not the first content",
    ),
)


def find_python(minimum: tuple[int, int]) -> tuple[str, str] | None:
    """(path, version) of an interpreter of at least ``minimum``: this one, one on PATH, a pyenv
    one, or uv's."""
    if sys.version_info[:2] >= minimum:
        return getattr(sys, "_base_executable", sys.executable), platform.python_version()
    candidates: list[str] = []
    for minor in range(minimum[1], minimum[1] + 4):
        found = shutil.which(f"python{minimum[0]}.{minor}")
        if found:
            candidates.append(found)
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if root.is_dir():
        candidates += [str(p / "bin" / "python3") for p in sorted(root.iterdir(), reverse=True)]
    uv = shutil.which("uv")
    if uv:
        try:
            done = subprocess.run(
                [uv, "python", "find", "--no-python-downloads", f">={minimum[0]}.{minimum[1]}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if done.returncode == 0 and done.stdout.strip():
                candidates.append(done.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    for candidate in candidates:
        try:
            done = subprocess.run(
                [candidate, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = done.stdout.strip()
        parts = version.split(".")
        numeric = done.returncode == 0 and len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit()
        if numeric and (int(parts[0]), int(parts[1])) >= minimum:
            return candidate, version
    return None


def write_tokenizer(directory: Path, words: tuple[str, ...]) -> Path:
    """A local Hugging Face tokenizer (whitespace-split words) the tools load instead of a hub model.

    Its vocabulary is the mock's output words, so a tool that re-tokenizes the reply counts one
    token per streamed chunk, as the mock's usage says.
    """
    directory.mkdir(parents=True, exist_ok=True)
    specials = ["[UNK]", "[PAD]", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate(specials + sorted({w.strip() for w in words if w.strip()}))}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i, t in enumerate(specials)
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "model_max_length": 131072,
        "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}",
    }
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer))
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory
