"""The `otelbench replay` command line: bad input, run-time failures, Ctrl-C, secrets, atomic output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otelbench.cli import main
from otelbench.datasets import Prompt
from otelbench.load import Limits, LoadResult
from otelbench.mock import MockServer
from otelbench.replay import LoadSpec, RawRequest, ReplayConfig, ReplayOutcome, TargetRun, parse_target
from otelbench.replay.pricing import PriceTable
from otelbench.replay.report import build_report, compare, render_markdown, write_outputs
from otelbench.summary import TargetStats

OTELBENCH = str(Path(sys.executable).parent / "otelbench")
SECRET = "sk-test-SECRET-0123456789"


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "OLLAMA_HOST",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_AD_TOKEN",
        "OPENAI_API_VERSION",
        "DEEPSEEK_API_KEY",
        "GROQ_API_KEY",
        "XAI_API_KEY",
        "MISTRAL_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in process; argparse errors (SystemExit) count as their exit code."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--target", "foo:bar"], "'foo:bar'"),
        (["--target", "openai"], "'openai'"),
        (["--target", "openai:gpt-4o-mini"], "OPENAI_API_KEY"),
        (["--target", "anthropic:claude-3-5-haiku-latest"], "ANTHROPIC_API_KEY"),
        (["--target", "azure:my-deployment"], "AZURE_OPENAI_ENDPOINT"),
        (["--target", "azure:my-deployment@https://res.openai.azure.com"], "AZURE_OPENAI_API_KEY"),
        (["--client", "http", "--target", "bedrock:mock-steady@mock"], "but bedrock (SigV4-signed"),
        (["--target", "openai:m@ftp://host/v1"], "ftp://host/v1"),
        (
            ["--parallel", "--target", "deepseek:mock-fast@mock", "--target", "openai:mock-fast@mock"],
            "deepseek:mock-fast and --target openai:mock-fast report the same provider, model and endpoint",
        ),
        (["--target", "openai:m@mock", "--target", "openai:m@mock"], "given twice"),
        (["--dataset", "/nonexistent/prompts.jsonl"], "/nonexistent/prompts.jsonl"),
        (["--dataset", "nosuchset"], "'nosuchset'"),
        (["--slo", "ttft_p95=fast"], "'ttft_p95=fast'"),
        (["--slo", "ttft=500ms"], "'ttft=500ms'"),
        (["--shape", "1000"], "'1000'"),
        (["--requests", "0"], "'0'"),
        (["--concurrency", "x"], "'x'"),
        (["--duration", "soon"], "'soon'"),
        (["--rate", "-3"], "'-3'"),
        (["--pricing", "/nonexistent/prices.toml"], "/nonexistent/prices.toml"),
        (["--mock-config", "/nonexistent/mock.toml"], "/nonexistent/mock.toml"),
        (["--base-url", "http://127.0.0.1:1/v1"], "--base-url"),
        (["--param", "temperature"], "bad --param 'temperature': expected [SCHEME:]KEY=VALUE"),
        (["--param", "temperature=hot"], "bad --param 'temperature=hot': expected a number"),
        (["--param", "seed=1.5"], "bad --param 'seed=1.5': expected an integer"),
        (["--param", "reasoning_effort=low"], "a provider's own field goes as SCHEME:reasoning_effort"),
        (["--param", "deepseek:thinking=x"], "no --target uses the scheme 'deepseek'"),
        (["--param", "temperature=0", "--param", "temperature=1"], "--param temperature is given twice"),
        (
            ["--target", "openai:m@mock", "--param", "top_k=5"],
            "no target's SDK takes top_k (only ollama, anthropic)",
        ),
        (["--param", "openai:model=gpt-5"], "replay sets 'model' itself"),
        (["--param", "ollama:num_ctx=4096"], "ollama targets take format, keep_alive, think"),
        (["--sweep", "temperature=0,1", "--param", "temperature=0.5"], "--param temperature is also swept"),
        (
            ["--api", "responses", "--target", "anthropic:m@mock"],
            "--api responses: no target with a Responses API (azure:, groq:, openai:, xai:;",
        ),
        (["--api", "messages"], "'messages'"),
        (
            ["--api", "responses", "--target", "openai:m@mock", "--max-tokens", "8"],
            "the Responses API takes max_output_tokens of 16 or more, but 36 prompts ask for fewer (the smallest 8)",
        ),
        (["--api", "responses", "--shape", "100:4"], "set --max-tokens 16 or more"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, out, err = run_main(capsys, "replay", *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_unreadable_dataset_contents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    code, _, err = run_main(capsys, "replay", "--dataset", str(bad))
    assert code == 2 and "broken.json" in err and len(err.strip().splitlines()) == 1


def test_unreachable_endpoint_is_a_one_line_runtime_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    code, out, err = run_main(
        capsys,
        "replay",
        "--target",
        "openai:gpt-x@http://127.0.0.1:9/v1",
        "--max-retries",
        "0",
        "--requests",
        "2",
        "--no-progress",
        "--output-dir",
        str(tmp_path),
    )
    assert code == 1, (out, err)
    (line,) = err.strip().splitlines()
    assert "cannot reach http://127.0.0.1:9/v1" in line and "openai:gpt-x" in line
    assert SECRET not in out + err
    assert not (tmp_path / "raw").exists()  # nothing measured, nothing written


def test_every_request_failing_is_a_runtime_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mock.toml"
    config.write_text('[faults]\n"401" = 1.0\n')
    code, out, err = run_main(
        capsys, "replay", "--target", "openai:m@mock", "--mock-config", str(config), "--no-progress",
        "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1, (out, err)
    assert "every warm-up request" in err and "AuthenticationError (HTTP 401)" in err
    assert err.rstrip().endswith("(HTTP 401)")  # an auth failure's message is not repeated
    assert "Traceback" not in err


@pytest.mark.parametrize("client", ["sdk", "http"])
def test_a_refused_request_is_explained_in_the_providers_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], client: str
) -> None:
    # Anthropic refuses a thinking budget that max_tokens (here the prompts' own) does not exceed.
    code, out, err = run_main(
        capsys, "replay", "--client", client, "--target", "anthropic:mock-fast@mock",
        "--param", 'anthropic:thinking={"type":"enabled","budget_tokens":1024}',
        "--no-progress", "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1, (out, err)
    error = err.strip().splitlines()[-1]
    assert "every warm-up request" in error, err
    assert error.endswith("(HTTP 400): `max_tokens` must be greater than `thinking.budget_tokens`."), error


def test_console_script_bad_input_and_debug() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.run(
        [OTELBENCH, "replay", "--slo", "ttft_p95=soon"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "otelbench: error: invalid --slo 'ttft_p95=soon': expected METRIC_pQ=VALUE with METRIC "
        "ttft|ttfa|duration|tpot|itl and unit us|ms|s, e.g. ttft_p95=500ms"
    ]
    debug = subprocess.run(
        [OTELBENCH, "--debug", "replay", "--slo", "ttft_p95=soon"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_keys_never_reach_output(
    isolated_mock_server: MockServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET + "-ant")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", SECRET + "-azure")
    monkeypatch.setenv("MISTRAL_API_KEY", SECRET + "-mistral")
    out_dir = tmp_path / "out"
    code, out, err = run_main(
        capsys,
        "replay",
        "--target",
        f"openai:keyed@{isolated_mock_server.openai_base_url}",
        "--target",
        f"anthropic:keyed@{isolated_mock_server.anthropic_base_url}",
        "--target",
        f"azure:keyed@{isolated_mock_server.azure_endpoint}",
        "--target",
        f"mistral:keyed@{isolated_mock_server.mistral_base_url}",
        "--requests",
        "3",
        "--warmup",
        "1",
        "--output-dir",
        str(out_dir),
    )
    assert code == 0, err
    written = "".join(p.read_text() for p in out_dir.rglob("*") if p.is_file())
    assert SECRET not in out + err + written
    # The endpoints are named, the keys are not.
    assert "openai:keyed@http://127.0.0.1" in out and "azure:keyed@http://127.0.0.1" in out
    assert "mistral:keyed@http://127.0.0.1" in out
    # Azure and Mistral go through the openai SDK, whose instrumentation is on.
    assert "No instrumentation active" not in out


def test_base_url_from_the_sdks_environment(
    isolated_mock_server: MockServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDKs send to OPENAI_BASE_URL / ANTHROPIC_BASE_URL: the metrics the summary looks for
    # must be those of that endpoint, not of api.openai.com.
    monkeypatch.setenv("OPENAI_BASE_URL", isolated_mock_server.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", isolated_mock_server.anthropic_base_url)
    out_dir = tmp_path / "out"
    code, out, err = run_main(
        capsys, "replay", "--target", "openai:gw-model", "--target", "anthropic:gw-model",
        "--requests", "3", "--warmup", "1", "--no-progress", "--output-dir", str(out_dir),
    )  # fmt: skip
    assert code == 0, err
    results = {r["target_id"]: r for r in _latest(out_dir)["results"]}
    for target in ("openai:gw-model", "anthropic:gw-model"):
        assert results[f"replay/{target}"]["metrics"]["requests"] == 3, out
    assert "Metrics counted" not in out


def test_dataset_shape_nonce_slo_and_no_stream_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        '{"prompt": "hello", "max_tokens": 3}\n{"messages": [{"role": "user", "content": "hi"}]}\n'
    )
    out_dir = tmp_path / "out"
    common = ["--requests", "4", "--warmup", "1", "--no-progress", "--output-dir", str(out_dir)]
    code, out, err = run_main(
        capsys, "replay", "--target", "anthropic:mock-balanced@mock", "--dataset", str(prompts), "--nonce",
        "--slo", "ttft_p95=10s", "--slo", "duration_p50=1ms", *common,
    )  # fmt: skip
    assert code == 0, err
    assert "SLO ttft_p95=10s" in out and "MISSED" in out  # a 1 ms median duration cannot be met
    (result,) = _latest(out_dir)["results"]
    assert result["metrics"]["goodput_rps"] == 0 and result["metrics"]["slo_attainment"] == 0
    assert [s["met"] for s in result["details"]["slo"]] == [True, False]
    # --shape: synthetic prompts; max_tokens caps the mock's replies.
    code, _, err = run_main(
        capsys, "replay", "--target", "openai:mock-slow@mock", "--shape", "200:5", *common
    )
    assert code == 0, err
    (result,) = _latest(out_dir)["results"]
    assert result["metrics"]["output_tokens"] == 4 * 5
    assert result["metrics"]["input_tokens"] == pytest.approx(4 * 200, rel=0.01)  # the mock: chars / 4
    # --no-stream: no chunks, so no TTFT; durations still come from the metrics.
    code, out, err = run_main(capsys, "replay", "--target", "ollama:mock-fast@mock", "--no-stream", *common)
    assert code == 0, err
    (result,) = _latest(out_dir)["results"]
    assert "ttft_p50_s" not in result["metrics"] and result["metrics"]["duration_p50_s"] > 0


def test_a_thinking_model_reports_when_its_answer_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    common = ["--requests", "6", "--warmup", "1", "--no-progress", "--output-dir", str(out_dir)]
    code, out, err = run_main(
        capsys, "replay", "--target", "deepseek:mock-fast@mock", "--target", "openai:mock-balanced@mock",
        "--slo", "ttfa_p95=10s", *common,
    )  # fmt: skip
    assert code == 0, err
    assert "first answer chunk p50" in out and "SLO ttfa_p95=10s" in out and "MISSED" not in out
    assert "time to first answer chunk: median of row / median of column" in out  # compared too
    results = {r["target_id"]: r["metrics"] for r in _latest(out_dir)["results"]}
    thinking, plain = results["replay/deepseek:mock-fast"], results["replay/openai:mock-balanced"]
    # The mock's DeepSeek reasons for the first half of its ~20 chunks, 10 ms apart.
    assert thinking["ttfa_p50_s"] - thinking["ttft_p50_s"] > 0.05
    assert plain["ttfa_p50_s"] == plain["ttft_p50_s"]
    assert thinking["goodput_rps"] > 0 and plain["goodput_rps"] > 0
    # Without a thinking model the row would repeat TTFT's (for one request as for several).
    for requests in ("6", "1"):
        code, out, err = run_main(
            capsys, "replay", "--target", "openai:mock-balanced@mock", *common, "--requests", requests
        )
        assert code == 0, err
        assert "TTFT p50" in out and "first answer chunk" not in out


def _latest(out_dir: Path) -> dict:  # type: ignore[type-arg]
    newest = max((out_dir / "raw").glob("benchmarks-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_text())  # type: ignore[no-any-return]


# --- Ctrl-C -----------------------------------------------------------------------------------


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.Popen(
        [OTELBENCH, "replay", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for(proc: subprocess.Popen[str], needle: str, timeout: float = 90) -> list[str]:
    """Read stderr lines until one contains ``needle``."""
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return seen
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"never saw {needle!r}: {seen}")


@pytest.mark.slow
def test_ctrl_c_stops_sending_drains_and_writes_partial_results(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    proc = _start(["--requests", "500", "--output-dir", str(out_dir)])
    _wait_for(proc, "openai:mock-fast: started")
    time.sleep(1.0)
    sent_sigint = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent_sigint < 30  # drained (requests take < 1 s) and wrote, no hang
    assert "interrupted: no new requests" in stderr and "partial results written" in stderr
    assert "not started: anthropic:mock-balanced, bedrock:mock-steady, ollama:mock-slow" in stderr
    assert "Traceback" not in stderr
    assert "PARTIAL" in stdout
    document = _latest(out_dir)
    (result,) = document["results"]  # the targets never started are not reported
    assert result["target_id"] == "replay/openai:mock-fast"
    assert result["details"]["partial"] is True and result["metrics"]["partial"] == 1
    assert 0 < result["metrics"]["requests"] < 500
    (log,) = (out_dir / "raw").glob("requests-*.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    measured = [r for r in rows if r["target"] == "openai:mock-fast" and not r["warmup"]]
    # Requests in flight at Ctrl-C finished (drained), none was cut off.
    assert measured and all(r["status"] == "ok" for r in measured)
    assert len(measured) == result["metrics"]["requests"]
    assert "Partial" in (out_dir / "summary.md").read_text()
    assert not [p for p in out_dir.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_ctrl_c_drain_is_bounded(tmp_path: Path) -> None:
    config = tmp_path / "mock.toml"
    config.write_text('[models."stuck"]\nttft_ms = 60000\n')
    out_dir = tmp_path / "out"
    proc = _start([
        "--target", "openai:stuck@mock", "--mock-config", str(config), "--warmup", "0", "--requests", "8",
        "--drain-timeout", "0.5", "--output-dir", str(out_dir),
    ])  # fmt: skip
    _wait_for(proc, "openai:stuck: started")
    time.sleep(0.5)
    sent_sigint = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent_sigint < 20  # 0.5 s drain, then cancelled: not the 60 s TTFT
    (log,) = (out_dir / "raw").glob("requests-*.jsonl")
    statuses = [json.loads(line)["status"] for line in log.read_text().splitlines()]
    assert statuses and set(statuses) == {"cancelled"}
    assert "Traceback" not in stderr


# --- atomic output -----------------------------------------------------------------------------


def _fake_outcome(n: int = 5) -> ReplayOutcome:
    target = parse_target("openai:m@mock", {})
    requests = [
        RawRequest(target.id, i, False, "p", 1_000_000 * i, 1_000_000 * i, 1_000_000 * i + 50_000_000)
        for i in range(n)
    ]
    run = TargetRun(target, requests, LoadResult(n, 0, 0, 60_000_000 * n))
    config = ReplayConfig(
        [target], [Prompt(({"role": "user", "content": "x"},))], "fake", LoadSpec(Limits(requests=n))
    )
    return ReplayOutcome(config, [run], False, [], 0)


def test_output_files_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _fake_outcome()
    reports = [build_report(r, [], PriceTable()) for r in outcome.runs]
    first = write_outputs(outcome, reports, compare(reports), tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {p.name for p in before} >= {first[0].name, "summary.md", first[2].name, "history.csv"}

    # A failure half-way through writing the request log (e.g. a full disk) must leave every
    # existing file as it was and no partial or temporary file behind.
    calls = {"n": 0}
    real = RawRequest.to_json

    def failing(self: RawRequest, origin_ns: int) -> dict:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, origin_ns)

    monkeypatch.setattr(RawRequest, "to_json", failing)
    time.sleep(1.1)  # a new timestamp, so the new files would not overwrite the old ones
    with pytest.raises(OSError, match="disk full"):
        write_outputs(outcome, reports, compare(reports), tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize(
    ("scheme", "client", "suggests_http"),
    [("openai", "sdk", True), ("openai", "http", False), ("bedrock", "sdk", False)],
)
def test_a_busy_client_loop_is_named_with_what_helps(scheme: str, client: str, suggests_http: bool) -> None:
    from otelbench.replay.adapters import LEAN_SCHEMES
    from otelbench.replay.lean import LEAN_ADAPTERS

    assert set(LEAN_ADAPTERS) == LEAN_SCHEMES
    (run,) = _fake_outcome().runs
    run.target = parse_target(f"{scheme}:m@mock", {})
    run.loop_lag = [0.001] * 50 + [0.05] * 5  # p99 50 ms: the client, not the provider, was slow
    report = build_report(run, [], PriceTable())
    (note,) = report.warnings(None, client)
    assert "event loop was busy (lag p99 50 ms)" in note and "add --workers" in note
    assert ("--client http" in note) == suggests_http
    run.loop_lag = [0.001] * 55
    assert build_report(run, [], PriceTable()).warnings(None, client) == []


def test_metrics_that_missed_every_request_are_named() -> None:
    # The instrumentation was on, the requests went out, yet no metric matched the target: the
    # summary must say so rather than print an empty column as if nothing had been sent.
    outcome = _fake_outcome()
    reports = [build_report(r, [], PriceTable()) for r in outcome.runs]
    assert "Metrics counted" not in render_markdown(outcome, reports, [])  # not instrumented
    outcome.instrumented.append("openai")
    text = render_markdown(outcome, reports, [])
    assert (
        "Metrics counted none of the 5 requests of openai:m: none reported provider openai, model m" in text
    )
    run = outcome.runs[0]
    host, port = run.target.host_port
    run.metrics = TargetStats("openai", "m", host, port, requests=5)
    assert "Metrics counted" not in render_markdown(outcome, [build_report(run, [], PriceTable())], [])


@pytest.mark.parametrize(
    ("args", "note"),
    [
        (
            ["--target", "openai:mock-n@mock", "--target", "anthropic:mock-n@mock", "--param", "top_k=5"],
            "note: --param top_k is not sent to openai:mock-n (no such request parameter)",
        ),
        (
            [
                "--api",
                "responses",
                "--target",
                "openai:mock-n@mock",
                "--target",
                "ollama:mock-n@mock",
                "--param",
                "seed=3",
            ],
            "note: --param seed is not sent to openai:mock-n (no such request parameter)",
        ),
    ],
)
def test_a_param_some_targets_cannot_take_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], note: str
) -> None:
    code, _, err = run_main(
        capsys,
        "replay",
        *args,
        "--requests",
        "1",
        "--warmup",
        "0",
        "--no-progress",
        "--output-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert note in err and err.count("note: --param") == 1


def test_the_responses_api_is_named_for_the_targets_that_take_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # groq: goes through the Responses API, anthropic: keeps its own: the title and each
    # result's "api" say which.
    out_dir = tmp_path / "out"
    code, out, err = run_main(
        capsys, "replay", "--api", "responses", "--target", "groq:mock-fast@mock",
        "--target", "anthropic:mock-fast@mock", "--requests", "4", "--no-progress",
        "--output-dir", str(out_dir),
    )  # fmt: skip
    assert code == 0, (out, err)
    assert out.splitlines()[0].endswith("concurrency 4, groq through the Responses API"), out
    apis = {r["details"]["target"]: r["details"]["load"]["api"] for r in _latest(out_dir)["results"]}
    assert apis == {"groq:mock-fast": "responses", "anthropic:mock-fast": None}
