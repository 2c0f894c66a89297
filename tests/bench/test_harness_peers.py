"""The ``harness-peers`` target: output parsers on saved tool outputs, the ground truth, the
command lines and the bookkeeping. Correctness only, never timings."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from otelbench.mock.core import WORDS
from otelbench.targets import all_targets
from otelbench.targets._harness_tools import (
    OURS,
    OURS_ALL,
    OURS_HTTP,
    OURS_HTTP_WORKERS,
    OURS_WORKERS,
    PEERS,
    ParseError,
    RunSpec,
    inference_perf_config,
    parse_aiperf_document,
    parse_guidellm_document,
    parse_inference_perf_document,
    parse_ours_document,
    parse_vllm_document,
    write_tokenizer,
)
from otelbench.targets._harness_truth import Stat, completion_rate, ground_truth, inflight, percentile
from otelbench.targets.harness_peers import (
    ALL_TOOLS,
    HarnessPeersTarget,
    RunOutcome,
    ToolState,
    measured_records,
)

DATA = Path(__file__).parent / "data" / "harness"


def _doc(name: str) -> object:
    return json.loads((DATA / name).read_text())


def _close(stat: Stat | None, mean: float, p50: float, p99: float) -> None:
    assert stat is not None
    assert stat.mean == pytest.approx(mean, rel=1e-6)
    assert stat.p50 == pytest.approx(p50, rel=1e-6)
    assert stat.p99 == pytest.approx(p99, rel=1e-6)


# --- parsers (outputs saved from real runs against the mock: TTFT 50 ms, ITL 10 ms, 32 tokens) ----
def test_guidellm_report() -> None:
    f = parse_guidellm_document(_doc("guidellm-0.8.1-benchmarks.json"))
    _close(f.ttft, 0.05170053243637085, 0.05137300491333008, 0.054074764251708984)
    _close(f.itl, 0.010006475833154495, 0.01000994251620385, 0.010026801017022901)
    _close(f.latency, 0.362563419342041, 0.3623051643371582, 0.36543869972229004)
    assert f.itl_gap is None
    assert (f.requests, f.errors) == (20, 0)


def test_aiperf_export() -> None:
    f = parse_aiperf_document(_doc("aiperf-0.13.0-profile_export_aiperf.json"))
    _close(f.ttft, 0.0534099636, 0.0529474185, 0.06481836693999999)
    _close(f.itl, 0.010041593574193548, 0.010011862596774193, 0.010211544236451612)
    assert f.itl_gap is not None and f.itl_gap.p99 > f.itl.p99  # per gap, wider than per request
    assert f.latency is not None and 0.36 < f.latency.p50 < 0.37
    assert (f.requests, f.errors) == (20, 0)


def test_inference_perf_summary() -> None:
    f = parse_inference_perf_document(_doc("inference-perf-0.7.0-summary_lifecycle_metrics.json"))
    _close(f.ttft, 0.051612310499695016, 0.05110247899938258, 0.05502789511941955)
    _close(f.itl, 0.010009768444822462, 0.0100080339483423, 0.010073121721040386)
    _close(f.itl_gap, 0.010009768444822462, 0.010000497502915096, 0.010793180208711419)
    assert (f.requests, f.errors) == (20, 0)


def test_vllm_result() -> None:
    f = parse_vllm_document(_doc("vllm-0.32.0-bench-serve.json"))
    # vllm bench serve takes the role chunk (sent on arrival) as the first token: TTFT ~1.5 ms.
    _close(f.ttft, 0.003086945600443869, 0.0015088540021679364, 0.008892568137962371)
    _close(f.itl, 0.011618046774216756, 0.011619652080680094, 0.011650247279683224)
    assert f.itl_gap is not None and f.itl_gap.p99 == pytest.approx(0.05002295402904565)
    assert (f.requests, f.errors) == (20, 0)


def test_ours_results() -> None:
    f = parse_ours_document(_doc("otelbench-replay-benchmarks.json"))
    _close(f.ttft, 0.06295187315, 0.06082015736393628, 0.079778225)
    _close(f.itl, 0.010206146003225808, 0.01006959802178824, 0.011079676193548387)
    assert f.itl_gap is not None and f.latency is not None
    assert (f.requests, f.errors) == (20, 0)


@pytest.mark.parametrize(
    "parse",
    [
        parse_guidellm_document,
        parse_aiperf_document,
        parse_inference_perf_document,
        parse_vllm_document,
        parse_ours_document,
    ],
)
def test_parsers_reject_foreign_documents(parse: object) -> None:
    with pytest.raises(ParseError):
        parse({"something": "else"})  # type: ignore[operator]


def test_missing_output_file_is_a_parse_error(tmp_path: Path) -> None:
    for tool in (OURS, *PEERS):
        with pytest.raises(ParseError):
            tool.parse(tmp_path)


# --- ground truth ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rec:
    arrival_ns: int
    first_byte_ns: int | None
    last_byte_ns: int | None
    chunks: int
    status: int = 200
    model: str = "m"
    received_ns: int | None = None


MS = 1_000_000


def test_ground_truth_of_fixed_plans() -> None:
    # Two streams of 5 chunks: TTFT 50 ms, then 4 gaps of 10 ms; one 500 with no content.
    records = [
        Rec(0, 50 * MS, 90 * MS, 5),
        Rec(10 * MS, 62 * MS, 106 * MS, 5),  # TTFT 52 ms, gaps 11 ms
        Rec(20 * MS, 21 * MS, 21 * MS, 0, status=500),
    ]
    truth = ground_truth(records)
    assert (truth.requests, truth.failed) == (2, 1)
    _close(truth.ttft, 0.051, 0.051, 0.05 + 0.002 * 0.99)
    _close(truth.itl, 0.0105, 0.0105, 0.010 + 0.001 * 0.99)
    _close(truth.latency, 0.093, 0.093, 0.090 + 0.006 * 0.99)
    assert truth.inflight_max == 3  # the failed one counts while it is in flight
    assert truth.span_s == pytest.approx(0.106)
    assert truth.read_wait is None  # the reads were not stamped


def test_ground_truth_starts_when_the_request_reached_the_server() -> None:
    # The second request waited 8 ms in the kernel before the busy mock read it.
    records = [
        Rec(0, 50 * MS, 90 * MS, 5, received_ns=0),
        Rec(10 * MS, 60 * MS, 100 * MS, 5, received_ns=2 * MS),
    ]
    truth = ground_truth(records)
    assert truth.ttft is not None and truth.latency is not None and truth.read_wait is not None
    assert (truth.ttft.p50, truth.ttft.p99) == (pytest.approx(0.054), pytest.approx(0.05 + 0.008 * 0.99))
    assert truth.latency.mean == pytest.approx((0.090 + 0.098) / 2)
    assert (truth.read_wait.mean, truth.read_wait.p99) == (pytest.approx(0.004), pytest.approx(0.008 * 0.99))
    assert truth.span_s == pytest.approx(0.100)


def test_inflight_is_time_weighted_over_the_middle() -> None:
    # Four requests in flight over [0, 100], one more only in the first tenth (trimmed away).
    intervals = [(0, 100)] * 4 + [(0, 10)]
    mean, peak = inflight(intervals)
    assert peak == 5
    assert mean == pytest.approx(4.0)
    # Back to back, one at a time: exactly one in flight.
    mean, peak = inflight([(i * 10, i * 10 + 10) for i in range(10)])
    assert (mean, peak) == (pytest.approx(1.0), 1)
    assert math.isnan(inflight([])[0])


def test_completion_rate_ignores_ramp_and_drain() -> None:
    finishes = [i * 10 * MS for i in range(101)]  # one per 10 ms
    assert completion_rate(finishes) == pytest.approx(100.0)
    assert math.isnan(completion_rate([1, 2]))


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0
    assert math.isnan(percentile([], 0.5))


def test_stat_minus_is_the_error() -> None:
    err = Stat(0.06, 0.055, 0.08).minus(Stat(0.05, 0.05, 0.051))
    assert err.as_ms() == pytest.approx({"mean_ms": 10.0, "p50_ms": 5.0, "p99_ms": 29.0})


def test_measured_records_keep_the_runs_model_and_drop_warmup() -> None:
    records = [Rec(t, t + 1, t + 2, 1, model="a") for t in (30, 10, 20, 40)] + [Rec(5, 6, 7, 1, model="b")]
    kept = measured_records(records, "a", warmup=2)  # type: ignore[arg-type]
    assert [r.arrival_ns for r in kept] == [30, 40]


# --- commands and set-up --------------------------------------------------------------------------
def _spec(tmp_path: Path, stream: bool = True) -> RunSpec:
    return RunSpec(
        url="http://127.0.0.1:9999",
        model="acc-x-c64",
        concurrency=64,
        requests=256,
        stream=stream,
        output_tokens=32,
        tokenizer=tmp_path / "tok",
        workdir=tmp_path,
    )


def test_commands_target_the_mock_with_the_runs_load(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    for tool in (*(t for t, _ in OURS_ALL), *PEERS):
        argv = tool.command(tmp_path / "bin", spec)
        assert argv[0].startswith(str(tmp_path / "bin")), tool.name
        if tool.name == "inference_perf":
            continue  # everything is in its configuration file, checked below
        text = " ".join(argv)
        for expected in ("127.0.0.1:9999", "acc-x-c64", "64", "256"):
            assert expected in text, (tool.name, expected)
    assert "--workers" in OURS_WORKERS.command(tmp_path, spec)
    assert "--workers" not in OURS.command(tmp_path, spec)
    assert "--client" not in " ".join(OURS.command(tmp_path, spec) + OURS_WORKERS.command(tmp_path, spec))
    assert " --client http" in " ".join(OURS_HTTP.command(tmp_path, spec))
    http_w2 = " ".join(OURS_HTTP_WORKERS.command(tmp_path, spec))
    assert "--workers 2" in http_w2 and "--client http" in http_w2
    assert "--no-stream" in OURS.command(tmp_path, _spec(tmp_path, stream=False))
    config = json.loads((tmp_path / "config.yml").read_text())  # written by inference-perf's command
    assert config == inference_perf_config(spec)
    assert config["load"]["stages"] == [{"num_requests": 256, "concurrency_level": 64}]
    assert config["server"]["base_url"] == "http://127.0.0.1:9999"


def test_tool_environment_is_offline_and_free_of_otel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "x")
    monkeypatch.setenv("VIRTUAL_ENV", "/somewhere")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    for tool in (OURS, *PEERS):
        env = tool.environment()
        assert not {"OTEL_SERVICE_NAME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"} & set(env)
        assert env["HF_HUB_DISABLE_TELEMETRY"] == "1"
        assert ("HF_HUB_OFFLINE" in env) == tool.offline_hub


def test_tokenizer_covers_the_mocks_words(tmp_path: Path) -> None:
    directory = write_tokenizer(tmp_path / "tok", WORDS)
    tokenizer = json.loads((directory / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    assert all(w.strip() in vocab for w in WORDS)
    assert sorted(vocab.values()) == list(range(len(vocab)))
    config = json.loads((directory / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_registered_and_config_checked() -> None:
    assert "harness-peers" in [t.id for t in all_targets()]
    with pytest.raises(ValueError, match="unknown tool"):
        HarnessPeersTarget(tools=("locust",))
    with pytest.raises(ValueError):
        HarnessPeersTarget(concurrencies=(0,))
    assert set(ALL_TOOLS) == {t.name for t, _ in OURS_ALL} | {t.name for t in PEERS}
    assert len(ALL_TOOLS) == len(set(ALL_TOOLS))


def test_tool_subset_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTELBENCH_HARNESS_TOOLS", "otelbench, aiperf")
    assert HarnessPeersTarget().config.tools == ("otelbench", "aiperf")
    assert HarnessPeersTarget(tools=("vllm",)).config.tools == ("vllm",)


def test_table_shows_failures_without_figures() -> None:
    target = HarnessPeersTarget()
    states = {"aiperf": ToolState("aiperf", "AIPerf"), "vllm": ToolState("vllm", "vllm bench serve")}
    states["vllm"].status = "not installable: no wheel"
    failed = RunOutcome("aiperf", "c64", "failed: exit 1: boom", [], 1.0, 64, 256)
    table = target.table([failed], states)
    assert "| AIPerf | 64 | failed: exit 1: boom | - | - | - |" in table
    assert "vllm bench serve: not installable: no wheel" in table
    assert target._figures([failed]) == {}


@pytest.mark.slow
def test_runs_ours_and_reports_every_tool_it_was_given() -> None:
    # Tiny sizes: the figures mean nothing; the paths (mock, subprocess, parsing, truth) run.
    result = HarnessPeersTarget(
        tools=("otelbench", "otelbench_w2", "otelbench_http", "inference_perf"),
        concurrencies=(1, 4),
        requests_per_slot=2,
        min_requests=4,
        capacity_concurrency=4,
        capacity_requests=40,
        output_tokens=4,
        ttft_ms=5,
        itl_ms=1,
    ).run()
    tools = result.details["tools"]
    assert set(tools) == {"otelbench", "otelbench_w2", "otelbench_http", "inference_perf"}
    assert tools["otelbench"]["status"] == tools["otelbench_http"]["status"] == "ok"
    for state in tools.values():
        status = state["status"]
        if status.startswith(("not installable: ", "not available: ")):
            assert len(status.split(": ", 1)[1]) > 0, "the reason must be given"
    for run in result.details["runs"]:
        if run["tool"] in ("otelbench", "otelbench_http"):
            assert run["status"] == "ok", run
            assert run["mock_records"] == run["requests"]
            assert run["tool_reported"]["requests"] == run["requests"]
    for key in ("c1_ttft_p50_err_ms", "c4_itl_p99_err_ms", "max_rps", "mock_cores_busy"):
        for tool in ("otelbench", "otelbench_http"):
            assert math.isfinite(result.metrics[f"{tool}_{key}"]), (tool, key)
    for run in result.details["runs"]:
        assert run["mock_cpu_s"] > 0, run  # the mock served every run's requests
    assert result.metrics["otelbench_c1_inflight_ratio"] > 0


def test_rounds_report_medians_with_their_range(monkeypatch: pytest.MonkeyPatch) -> None:
    from otelbench.targets._harness_tools import Figures
    from otelbench.targets._harness_truth import Truth

    def outcome(rnd: int, ttft_err_s: float, rate: float) -> list[RunOutcome]:
        truth_ttft = Stat(0.050, 0.050, 0.051)
        tool_ttft = Stat(0.050 + ttft_err_s, 0.050 + ttft_err_s, 0.051 + 2 * ttft_err_s)
        accuracy = RunOutcome("otelbench_http", "c64", "ok", [], 1.0, 64, 256, round=rnd)
        accuracy.figures = Figures(tool_ttft, None, None, None, 256, 0)
        accuracy.truth = Truth(256, 0, truth_ttft, None, None, 60.0 + rnd, 64, 500.0, 1.0)
        # The mock used 0.1 s of CPU for 1,000 requests: 100 us each, 0.15-0.25 cores at 1,500-2,500/s.
        capacity = RunOutcome(
            "otelbench_http", "capacity", "ok", [], 1.0, 64, 1000, round=rnd, mock_cpu_s=0.1
        )
        latency = Stat(0.001, 0.001, 0.001)
        capacity.figures = Figures(None, None, None, latency, 1000, 0)
        capacity.truth = Truth(1000, 0, None, None, latency, 60.0, 64, rate, 1.0)
        capacity.records = 1000
        return [accuracy, capacity]

    runs = outcome(0, 0.001, 2000.0) + outcome(1, 0.003, 1500.0) + outcome(2, 0.002, 2500.0)
    target = HarnessPeersTarget(tools=("otelbench_http",), rounds=3)
    m = target._figures(runs)
    assert m["otelbench_http_c64_ttft_p50_err_ms"] == pytest.approx(2.0)
    assert (m["otelbench_http_c64_ttft_p50_err_ms_min"], m["otelbench_http_c64_ttft_p50_err_ms_max"]) == (
        pytest.approx(1.0),
        pytest.approx(3.0),
    )
    assert m["otelbench_http_c64_ttft_p99_err_ms"] == pytest.approx(4.0)
    assert (
        m["otelbench_http_max_rps"],
        m["otelbench_http_max_rps_min"],
        m["otelbench_http_max_rps_max"],
    ) == (
        2000.0,
        1500.0,
        2500.0,
    )
    assert m["otelbench_http_c64_inflight_ratio"] == pytest.approx(61 / 64)
    assert "otelbench_http_c64_ttft_mean_err_ms_min" not in m  # ranges for the headline figures only
    table = target.table(runs, {"otelbench_http": ToolState("otelbench_http", "ours http")})
    assert "| ours http (round 3) | 64 | ok |" in table
    assert "| ours http | 64 | +2.00 [+1.00, +3.00] | +4.00 [+2.00, +6.00] |" in table
    assert "| ours http | 2,000 [1,500, 2,500] | 0.20 [0.15, 0.25] |" in table
    assert m["otelbench_http_mock_cores_busy"] == pytest.approx(0.2)
    assert "| 100 | 0.25 |" in table  # round 3: mock CPU per request, cores busy
    # One round: no ranges, plain labels.
    single = HarnessPeersTarget(tools=("otelbench_http",))._figures(outcome(0, 0.001, 2000.0))
    assert not [k for k in single if k.endswith(("_min", "_max"))]
    monkeypatch.setenv("OTELBENCH_HARNESS_ROUNDS", "3")
    assert HarnessPeersTarget().config.rounds == 3
    monkeypatch.setenv("OTELBENCH_HARNESS_ROUNDS", "many")
    with pytest.raises(ValueError, match="OTELBENCH_HARNESS_ROUNDS"):
        HarnessPeersTarget()
