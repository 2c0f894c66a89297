"""The ``overhead-peers`` target: correctness only (every variant accounted for), never timings."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from otelbench.targets import all_targets
from otelbench.targets.peers import (
    VARIANTS,
    PeersOverheadTarget,
    Variant,
    VariantState,
    ensure_venv,
    pins_for,
)

PEERS = [v.name for v in VARIANTS if v.name not in ("baseline", "sdk_floor", "ours")]


def test_registered() -> None:
    assert "overhead-peers" in [t.id for t in all_targets()]


@pytest.mark.slow
def test_every_variant_reports_and_installed_ones_produce_spans() -> None:
    # Tiny sizes: the figures mean nothing, the paths (venvs, workers, checks) are all exercised.
    result = PeersOverheadTarget(rounds=2, calls_per_round=2, streams_per_round=1, chunks=8).run()

    variants = result.details["variants"]
    assert set(variants) == {v.name for v in VARIANTS}
    assert variants["baseline"]["status"] == "ok"
    assert variants["baseline"]["checks"]["spans"] == 0
    for name in ("sdk_floor", "ours", *PEERS):
        status = variants[name]["status"]
        if name not in ("ours", "sdk_floor") and status.startswith("not installable: "):
            assert len(status) > len("not installable: "), "the reason must be given"
            continue
        assert status == "ok", f"{name}: {status}"
        checks = variants[name]["checks"]
        assert checks["spans"] >= checks["calls"] > 0, name
        assert checks["metrics"], f"{name} recorded no metrics"
        assert checks["chunks_per_stream"] == 8 + 3
        for figure in ("per_call", "per_chunk", "async_per_call", "async_per_chunk"):
            assert math.isfinite(result.metrics[f"{name}_{figure}_us"]), (name, figure)
        if name != "sdk_floor":
            # What the library adds beyond the SDK calls it cannot avoid, measured in the same run.
            assert math.isfinite(result.metrics[f"{name}_per_call_above_floor_us"]), name
        if name not in ("ours", "sdk_floor"):
            assert f"ours_to_{name}_per_call" in result.metrics
            assert f"ours_to_{name}_per_call_above_floor" in result.metrics
        assert variants[name]["versions"]["openai"] == variants["baseline"]["versions"]["openai"]
    assert "| ours | ok |" in result.details["note"]
    assert "ours_to_sdk_floor_per_call" not in result.metrics


def test_missing_uv_is_reported_as_not_installable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTELBENCH_PEERS_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    variant = Variant("openllmetry", ("opentelemetry-instrumentation-openai==0.62.4",))

    outcome = ensure_venv(variant, pins_for(variant), timeout_s=30)

    assert outcome.python is None
    assert outcome.error == "uv not found on PATH"


class _StubWorker:
    """Answers ``stats`` like a worker whose instrumentation silently did nothing."""

    def __init__(self, spans: int) -> None:
        self.spans = spans

    def ask(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert command == {"op": "stats"}
        return {
            "calls": 10,
            "streams": 2,
            "stream_chunks_seen": 2 * (8 + 3),
            "spans": self.spans,
            "span_names": {},
            "metrics": {"m": 1.0} if self.spans else {},
        }


def test_a_peer_without_spans_is_reported_as_such_and_gets_no_figures() -> None:
    target = PeersOverheadTarget(chunks=8)
    states = {name: VariantState(name) for name in ("baseline", "ours", "openllmetry")}
    workers: Any = {"baseline": _StubWorker(0), "ours": _StubWorker(10), "openllmetry": _StubWorker(0)}

    target._check(states, workers)
    per_op = {
        f"{p}/{n}": [100.0, 110.0]
        for p in ("sync_call", "sync_stream", "async_call", "async_stream")
        for n in states
    }
    metrics, _ = target._figures(states, per_op)

    assert states["openllmetry"].status == "no spans"
    assert not any(k.startswith("openllmetry_") or k.startswith("ours_to_") for k in metrics)
    assert "| openllmetry | no spans |" in target.table(metrics, states)


# --- overhead-instructions (callgrind) -------------------------------------------------------------

ANNOTATE_SAMPLE = """\
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
120,983,740 (100.0%)  PROGRAM TOTALS

Ir                    file:function
113,887,189 (94.13%)  ???:starmap_next [/usr/bin/python3.11]
 20,130,597 (16.64%)  ???:accumulate_next [/usr/bin/python3.11]
  9,000,000 ( 7.44%)  ???:_PyEval_EvalFrameDefault [/usr/bin/python3.11]
"""


def test_callgrind_inclusive_counts_are_read_per_function() -> None:
    from otelbench.targets.instructions import _inclusive

    assert _inclusive(ANNOTATE_SAMPLE, "starmap_next") == 113_887_189
    assert _inclusive(ANNOTATE_SAMPLE, "accumulate_next") == 20_130_597
    assert _inclusive(ANNOTATE_SAMPLE, "chain_next") is None


def test_instruction_counts_are_medians_over_the_hash_seeds() -> None:
    from otelbench.targets.instructions import _Run

    run = _Run("ours", by_seed={0: [100, 1_000], 1: [300, 2_000], 2: [200, 9_000]})
    run.settle()
    assert (run.calls_instr, run.streams_instr) == (200, 2_000)


def test_instruction_figures_are_medians_of_differences_within_each_layout() -> None:
    from otelbench.targets.instructions import InstructionsTarget, _Run

    def run(name: str, *counts: int) -> _Run:
        return _Run(name, by_seed={seed: [c, c] for seed, c in enumerate(counts)})

    # A layout moves the baseline too: ours is 10, -50 and 60 above it (median 10), while the
    # medians taken apart (250 - 200) would read 50.
    runs = {
        "baseline": run("baseline", 100, 300, 200),
        "sdk_floor": run("sdk_floor", 105, 240, 230),
        "ours": run("ours", 110, 250, 260),
    }
    for r in runs.values():
        r.settle()
    metrics = InstructionsTarget(calls=1, streams=1, chunks=1)._figures(runs)
    assert metrics["ours_kinstr_per_call"] == metrics["ours_kinstr_per_chunk"] == 10 / 1e3
    assert metrics["sdk_floor_kinstr_per_call"] == 5 / 1e3  # 5, -60, 30
    assert metrics["ours_kinstr_per_call_above_floor"] == 10 / 1e3  # 5, 10, 30
    assert metrics["baseline_kinstr_per_call"] == 200 / 1e3
    assert "sdk_floor_kinstr_per_call_above_floor" not in metrics


@pytest.mark.slow
def test_instruction_counts_of_baseline_floor_and_ours() -> None:
    import shutil

    from otelbench.targets.instructions import InstructionsTarget

    if shutil.which("valgrind") is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is missing in CI (.ci/backends.sh installs it)")
        pytest.skip("valgrind not installed")
    # Tiny sizes: checks the counting path end to end, not the figures.
    result = InstructionsTarget(
        calls=10, streams=1, chunks=8, layouts=2, variants=("baseline", "sdk_floor", "ours")
    ).run()
    variants = result.details["variants"]
    assert {v["status"] for v in variants.values()} == {"ok"}, variants
    assert all(sorted(v["by_seed"]) == [0, 1] for v in variants.values()), variants
    assert variants["ours"]["checks"]["spans"] == variants["ours"]["checks"]["calls"] > 0
    assert variants["baseline"]["checks"]["spans"] == 0
    # Instrumented calls execute more instructions than uninstrumented ones; ours more than the
    # bare SDK calls it makes (positive controls: a broken toggle would give equal counts).
    assert result.metrics["sdk_floor_kinstr_per_call"] > 0
    assert result.metrics["ours_kinstr_per_call"] > result.metrics["sdk_floor_kinstr_per_call"]
    assert math.isfinite(result.metrics["ours_kinstr_per_chunk_above_floor"])
