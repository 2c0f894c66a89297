"""The benchmark-target framework and the overhead target: correctness only, never timings."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import IO

import pytest

import otelbench.cli
from otelbench.cli import run as run_cli
from otelbench.errors import UsageError
from otelbench.targets import (
    BenchmarkError,
    BenchmarkResult,
    BenchTarget,
    all_targets,
    atomic_write,
    read_results,
    run_all_benchmarks,
    write_results,
)
from otelbench.targets.overhead import InstrumentationOverheadTarget


def tiny_overhead_target(include_async: bool = True) -> InstrumentationOverheadTarget:
    """The overhead target shrunk to a fraction of a second (figures meaningless, paths exercised)."""
    return InstrumentationOverheadTarget(
        rounds=2,
        calls_per_round=3,
        streams_per_round=1,
        chunks=8,
        warmup_calls=1,
        warmup_streams=1,
        isolated_repeats=2,
        time_budget_s=30,
        include_async=include_async,
    )


def sample_result(target_id: str = "sample", **details: object) -> BenchmarkResult:
    return BenchmarkResult(
        target_id=target_id,
        metrics={"per_call_overhead_us": 12.5, "count": 3.0},
        timestamp="2025-01-31T12:00:00+00:00",
        details={"rounds": 7, **details},
    )


# --- registry ---------------------------------------------------------------------------------
def test_registry_ids_are_unique_and_targets_follow_the_protocol() -> None:
    targets = all_targets()
    ids = [t.id for t in targets]
    assert ids, "no targets registered"
    assert len(ids) == len(set(ids))
    assert "instrumentation-overhead" in ids
    for target in targets:
        assert isinstance(target, BenchTarget)


def test_unknown_target_id_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match="nosuch"):
        run_all_benchmarks(["nosuch"])


# --- the overhead target ----------------------------------------------------------------------
@pytest.mark.parametrize("include_async", [False, True])
def test_overhead_target_returns_finite_metrics_and_produced_spans(include_async: bool) -> None:
    result = tiny_overhead_target(include_async).run()

    assert result.target_id == "instrumentation-overhead"
    for name in (
        "per_call_overhead_us",
        "per_chunk_overhead_us",
        "per_chunk_overhead_each_us",
        "per_chunk_isolated_us",
        "histogram_record_us",
    ):
        assert name in result.metrics
    assert ("async_per_chunk_overhead_us" in result.metrics) is include_async
    assert all(math.isfinite(v) for v in result.metrics.values()), result.metrics
    details = result.details
    assert details["spans_exported"] > 0
    # Every instrumented call (warm-up included) became exactly one span ...
    assert details["spans_exported"] == details["spans_expected"]
    # ... every streamed chunk was seen, and "each" mode recorded one value per chunk gap.
    assert details["stream_chunks_recorded"] == details["stream_chunks_expected"] > 0
    assert details["time_per_output_chunk_values"] == details["time_per_output_chunk_values_expected"]
    assert details["warnings"] == []
    assert set(details["rounds_completed"].values()) == {2}
    # One value per round behind each headline metric, for `otelbench compare`'s test.
    samples = details["samples"]
    assert {"per_call_overhead_us", "per_chunk_overhead_us"} <= set(samples) <= set(result.metrics)
    assert all(len(values) == 2 for values in samples.values())
    assert ("async_per_call_overhead_us" in samples) is include_async
    json.dumps(result.to_json(), allow_nan=False)  # details are plain JSON


def test_overhead_target_fails_loudly_when_no_spans_are_produced(monkeypatch: pytest.MonkeyPatch) -> None:
    import otelbench_instrumentation.providers.openai as openai_instrumentation

    # The instrumentor "instruments" but patches nothing, as if the SDK had moved its methods.
    monkeypatch.setattr(openai_instrumentation, "apply", lambda patches: [])
    with pytest.raises(BenchmarkError, match="no spans"):
        tiny_overhead_target().run()


def test_overhead_target_leaves_the_sdk_uninstrumented() -> None:
    from otelbench_instrumentation import OpenAIInstrumentor

    tiny_overhead_target().run()
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry


def test_overhead_target_rejects_empty_configurations() -> None:
    with pytest.raises(ValueError):
        InstrumentationOverheadTarget(rounds=0)
    with pytest.raises(ValueError):
        InstrumentationOverheadTarget(chunks=1)


# --- output -----------------------------------------------------------------------------------
def test_write_then_read_round_trips(tmp_path: Path) -> None:
    results = [sample_result("a"), sample_result("b", spread={"min": 1.0, "max": 2.0})]
    raw, summary = write_results(results, tmp_path)

    assert raw.parent == tmp_path / "raw"
    assert raw.name.startswith("benchmarks-") and raw.suffix == ".json"
    assert summary == tmp_path / "summary.md"
    assert read_results(raw) == results
    text = summary.read_text()
    assert "## a" in text and "| per_call_overhead_us | 12.500 |" in text
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0] == "timestamp,target_id,metric,value,raw_file"
    assert len(history) == 1 + 4


def test_two_writes_in_the_same_second_keep_both_raw_files(tmp_path: Path) -> None:
    first, _ = write_results([sample_result()], tmp_path)
    second, _ = write_results([sample_result()], tmp_path)
    assert first != second and first.exists() and second.exists()
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 2 * 2


def test_non_finite_metrics_are_written_as_valid_json(tmp_path: Path) -> None:
    result = BenchmarkResult("x", {"nan": math.nan, "ok": 1.0}, "2025-01-31T12:00:00+00:00")
    raw, _ = write_results([result], tmp_path)
    assert json.loads(raw.read_text())["results"][0]["metrics"]["nan"] is None
    back = read_results(raw)[0]
    assert math.isnan(back.metrics["nan"]) and back.metrics["ok"] == 1.0


def test_atomic_write_keeps_the_previous_file_when_the_writer_fails(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    atomic_write(path, lambda fh: fh.write("previous\n"))

    def half_then_fail(fh: IO[str]) -> None:
        fh.write("partial")
        raise RuntimeError("serialiser failed")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]  # no temp file left


def test_failing_serialisation_leaves_earlier_output_intact(tmp_path: Path) -> None:
    raw, _ = write_results([sample_result()], tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    unserialisable = sample_result(obj=object())  # json.dump fails part-way through the raw file
    with pytest.raises(TypeError):
        write_results([unserialisable], tmp_path)

    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    assert read_results(raw) == [sample_result()]


def test_read_results_rejects_a_file_that_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(UsageError, match="not a benchmark results file"):
        read_results(path)
    with pytest.raises(UsageError, match="cannot read"):
        read_results(tmp_path / "missing.json")


# --- CLI --------------------------------------------------------------------------------------
def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otelbench")
    run_cli.register(parser.add_subparsers(dest="command"))
    return parser


def test_run_command_rejects_an_unknown_id_before_running_anything(tmp_path: Path) -> None:
    args = _run_parser().parse_args(["run", "--only", "nosuch", "--output-dir", str(tmp_path)])
    with pytest.raises(UsageError, match="'nosuch'"):
        args.func(args)
    assert list(tmp_path.iterdir()) == []


def test_run_command_lists_targets(capsys: pytest.CaptureFixture[str]) -> None:
    args = _run_parser().parse_args(["run", "--list"])
    assert args.func(args) == 0
    assert "instrumentation-overhead" in capsys.readouterr().out


def test_run_command_writes_results_and_prints_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Fake:
        id = "fake"

        def run(self) -> BenchmarkResult:
            return sample_result("fake")

    monkeypatch.setattr("otelbench.targets.all_targets", lambda: [Fake()])
    args = _run_parser().parse_args(["run", "--only", "fake", "--output-dir", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "per_call_overhead_us" in out and "12.500" in out
    (raw,) = (tmp_path / "raw").iterdir()
    assert read_results(raw)[0].target_id == "fake"


def test_cli_unknown_target_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert otelbench.cli.main(["run", "--only", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "nosuch" in err


def test_heavy_targets_run_only_when_named() -> None:
    from otelbench.targets import on_request_only, select_targets

    heavy = {t.id for t in all_targets() if on_request_only(t)}
    assert heavy == {"overhead-instructions", "harness-peers"}
    assert heavy.isdisjoint(t.id for t in select_targets(None))
    assert [t.id for t in select_targets(["harness-peers"])] == ["harness-peers"]
