"""`otelbench replay`: load generation through the instrumented SDKs, summarised from exported metrics.

Modules: ``targets`` (``SCHEME:MODEL[@URL]`` specs), ``adapters`` (one per SDK), ``telemetry``
(the OTel SDK pipeline the numbers come from), ``runner`` (warm-up, load, Ctrl-C, ground
truth), ``report`` (statistics, BenchmarkResult, tables, files), ``slo``, ``pricing``,
``progress``, ``defaults`` (the embedded mock's four models). The CLI lives in
:mod:`otelbench.cli.replay`; the user guide in ``docs/replay.md``.

The names below are imported on first use: the runner pulls in all four provider SDKs
(seconds of imports), which the CLI must not pay just to reject a bad flag.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .targets import Target, default_mock_targets, parse_target

if TYPE_CHECKING:
    from .runner import LoadSpec, RawRequest, ReplayConfig, ReplayOutcome, TargetRun, run_replay

_FROM_RUNNER = {"LoadSpec", "RawRequest", "ReplayConfig", "ReplayOutcome", "TargetRun", "run_replay"}


def __getattr__(name: str) -> Any:
    if name in _FROM_RUNNER:
        return getattr(importlib.import_module(".runner", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LoadSpec",
    "RawRequest",
    "ReplayConfig",
    "ReplayOutcome",
    "Target",
    "TargetRun",
    "default_mock_targets",
    "parse_target",
    "run_replay",
]
