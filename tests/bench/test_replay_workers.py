"""`otelbench replay --workers N`: the load split over client processes, merged through the metrics."""

from __future__ import annotations

import itertools
import json
import re
import signal
import time
from pathlib import Path

import pytest

from otelbench.datasets import builtin
from otelbench.errors import ProviderError
from otelbench.load import Limits
from otelbench.mock import Dist, MockConfig, ModelProfile
from otelbench.replay import LoadSpec, ReplayConfig, parse_target
from otelbench.replay.runner import WorkerSlot, run_replay
from otelbench.replay.telemetry import Telemetry
from otelbench.summary import summarize
from otelbench_instrumentation import semconv

from .test_cli import _start, _wait_for, run_main

PROMPT_ATTRS = {
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_PROVIDER_NAME: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "m",
}


def _config(workers: int, **load: object) -> ReplayConfig:
    profile = ModelProfile(ttft=Dist.fixed(0.040), itl=Dist.fixed(0.002), output_tokens=Dist.fixed(8))
    mock = MockConfig(seed=3, profiles={"m": profile})
    spec = LoadSpec(**{"limits": Limits(requests=60), "concurrency": 6, "warmup": 2, **load})  # type: ignore[arg-type]
    return ReplayConfig(
        [parse_target("openai:m@mock", {})],
        builtin("chat"),
        "chat",
        spec,
        mock_config=mock,
        workers=workers,
    )


def test_share_splits_totals_into_parts_one_apart() -> None:
    for total in (1, 2, 7, 64, 257):
        for count in (1, 2, 3, 8):
            parts = [WorkerSlot(i, count, None).share(total) for i in range(count)]
            assert sum(parts) == total and max(parts) - min(parts) <= 1


def test_statistics_of_merged_worker_metrics_equal_those_of_one_process() -> None:
    # Two processes' delta histograms (scales adapt to each one's range) merged by summarize
    # must give what one process recording every value would.
    values = [0.001 * (1.07**i) for i in range(300)]
    one, a, b = Telemetry(), Telemetry(), Telemetry()
    try:
        for t, vals in ((one, values), (a, values[::2]), (b, [v * 40 for v in values[1::2]])):
            h = t.meter_provider.get_meter("x").create_histogram(semconv.METRIC_OPERATION_DURATION)
            for v in vals:
                h.record(v, PROMPT_ATTRS)
        merged_values = values[::2] + [v * 40 for v in values[1::2]]
        single = Telemetry()
        h = single.meter_provider.get_meter("x").create_histogram(semconv.METRIC_OPERATION_DURATION)
        for v in merged_values:
            h.record(v, PROMPT_ATTRS)
        (want,) = summarize(single.collect())
        data_a, data_b = a.collect(), b.collect()
        assert data_a is not None and data_b is not None
        from otelbench.replay.workers import _metrics_data, _metrics_of

        (got,) = summarize(_metrics_data(_metrics_of(data_a) + _metrics_of(data_b)))
    finally:
        for t in (one, a, b, single):
            t.shutdown()
    assert got.requests == want.requests == 300
    assert got.duration is not None and want.duration is not None
    assert got.duration.min == want.duration.min and got.duration.max == want.duration.max
    assert got.duration.mean == pytest.approx(want.duration.mean)
    for q in (0.5, 0.95, 0.99):
        # Both sides re-bucketed to the coarser scale: equal within one bucket (~0.5 % here).
        assert got.duration.q(q) == pytest.approx(want.duration.q(q), rel=0.02)


@pytest.mark.slow
def test_two_workers_split_the_closed_loop_and_the_metrics_count_every_request() -> None:
    outcome = run_replay(_config(2))
    (run,) = outcome.runs
    measured = run.measured
    assert outcome.workers == 2 and not outcome.interrupted
    assert len(measured) == 60 and all(r.ok for r in measured)
    # Interleaved job indices: every prompt index once, each worker half of them.
    assert sorted(r.index for r in measured) == list(range(60))
    assert sorted({r.worker for r in measured}) == [0, 1]
    assert [r.index % 2 for r in measured if r.worker == 1] == [1] * 30
    # The statistics come from the merged metrics of both processes.
    assert run.metrics is not None and run.metrics.requests == 60
    assert run.metrics.output_tokens == sum(r.output_tokens or 0 for r in measured)
    assert run.load is not None and run.load.sent == 60
    # The mock served exactly what both workers sent (warm-up: 2 per worker).
    assert run.ground_truth is not None and run.ground_truth.served == run.ground_truth.sent == 64
    assert run.metrics.ttft is not None
    # Mock TTFT 40 ms + the SDK's send time (a few ms); both processes on the same clock.
    assert 0.040 <= run.metrics.ttft.q(0.5) < 0.060
    assert run.cpu_s is not None and run.cpu_s > 0 and run.peak_rss_mib is not None
    assert run.rss_growth_mib is not None and run.rss_growth_mib >= 0  # the workers' sum


@pytest.mark.slow
def test_two_workers_interleave_one_constant_open_loop_schedule() -> None:
    outcome = run_replay(_config(2, rate=40.0, arrival="constant"))
    (run,) = outcome.runs
    intended = sorted(r.intended_ns for r in run.measured)
    assert len(intended) == 60
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(intended)]
    # 1/40 s apart overall, each worker starting half a period later: at most the start skew
    # of the two processes (milliseconds) away from the common schedule.
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.025, abs=0.005)
    assert run.metrics is not None and run.metrics.requests == 60


@pytest.mark.slow
def test_a_worker_that_cannot_reach_the_endpoint_fails_the_run_with_one_line() -> None:
    config = _config(2)
    config = ReplayConfig(
        [parse_target("openai:m@http://127.0.0.1:9/v1", {"OPENAI_API_KEY": "k"})],
        config.prompts,
        "chat",
        LoadSpec(Limits(requests=4), concurrency=2, warmup=2),
        workers=2,
    )
    started = time.monotonic()
    with pytest.raises(ProviderError, match=re.escape("cannot reach http://127.0.0.1:9/v1")):
        run_replay(config)
    assert time.monotonic() - started < 60  # no worker left waiting for the other


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "0"], "'0'"),
        (["--workers", "two"], "'two'"),
        (["--workers", "65"], "--workers 65"),
        (["--workers", "4", "--concurrency", "2"], "--workers 4"),
        (["--workers", "4", "--requests", "3", "--concurrency", "4"], "--requests 3"),
    ],
)
def test_bad_workers_exit_2_naming_the_value(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run_main(capsys, "replay", *args)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # argparse adds a usage line


@pytest.mark.slow
def test_ctrl_c_reaches_every_worker_and_keeps_their_results(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    proc = _start([
        "--target", "openai:mock-fast@mock", "--workers", "2", "--concurrency", "4",
        "--requests", "2000", "--output-dir", str(out_dir),
    ])  # fmt: skip
    _wait_for(proc, "openai:mock-fast: started")
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.count("interrupted: no new requests") == 1  # said once, not once per worker
    assert "Traceback" not in stderr and "PARTIAL" in stdout
    (log,) = (out_dir / "raw").glob("requests-*.jsonl")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    measured = [r for r in rows if not r["warmup"]]
    assert {r["worker"] for r in measured} == {0, 1}
    assert 0 < len(measured) < 2000 and all(r["status"] == "ok" for r in measured)
    newest = max((out_dir / "raw").glob("benchmarks-*.json"), key=lambda p: p.stat().st_mtime_ns)
    (result,) = json.loads(newest.read_text())["results"]
    assert result["metrics"]["requests"] == len(measured)
    assert result["details"]["load"]["workers"] == 2
