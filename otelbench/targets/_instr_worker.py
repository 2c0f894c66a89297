"""One variant of the ``overhead-instructions`` target, run under callgrind by the variant's python.

Usage (the driver, :mod:`otelbench.targets.instructions`, does this)::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \\
        --toggle-collect=accumulate_next <venv>/bin/python -s -P _instr_worker.py --variant ours ...

The workload and the telemetry setup are those of ``overhead-peers`` (``_peer_worker.py`` and
``_transport.py`` beside this file, loaded by path: ``otelbench`` is not installed in a peer's
virtualenv). Only two loops are counted: the non-streamed calls run inside
``itertools.starmap`` and the streams inside ``itertools.accumulate``, two C iterators nothing
else in these processes uses, so callgrind's toggles collect exactly those calls and everything
they run. Imports, set-up and warm-up are not counted. The last line of stdout is a JSON summary
(spans exported, chunks seen) for the driver's checks.
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def _sibling(name: str) -> ModuleType:
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_otelbench{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Set the variant up, warm up, run the two counted loops, print the summary."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--pricing", default="")
    parser.add_argument("--ballast", type=int, default=0)
    args = parser.parse_args(argv)
    peer = _sibling("_peer_worker")

    exporter = peer.CountingExporter()
    # No export while counting: the batch processor's thread only wakes at the end.
    tp = TracerProvider()
    tp.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=peer.SPAN_QUEUE,
            max_export_batch_size=peer.SPAN_QUEUE,
            schedule_delay_millis=3_600_000,
        )
    )
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    trace.set_tracer_provider(tp)
    metrics.set_meter_provider(mp)
    peer.instrument(args.variant, tp, mp, args.pricing)
    worker = peer.Worker(args.chunks, peer._load_transport())
    worker.sync_call(peer.WARMUP_CALLS)
    worker.sync_stream(peer.WARMUP_STREAMS)
    create: Any = worker.client.chat.completions.create
    seen = 0

    def call() -> None:
        create(model=peer.MODEL, messages=peer.MESSAGES)

    def stream(_total: Any, _item: Any) -> None:
        nonlocal seen
        for _chunk in create(
            model=peer.MODEL, messages=peer.MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            seen += 1

    # Objects of ~35 to ~290 bytes kept alive: a different --ballast starts the loops from a
    # different allocator state (which pools are partly used), one more layout to sample.
    ballast = [b"x" * (1 + i % 256) for i in range(args.ballast)]
    gc.collect()
    gc.freeze()
    collections.deque(itertools.starmap(call, itertools.repeat((), args.calls)), maxlen=0)
    # accumulate calls its function for every item after the first.
    collections.deque(itertools.accumulate(itertools.repeat(None, args.streams + 1), stream), maxlen=0)
    tp.force_flush()
    calls = peer.WARMUP_CALLS + peer.WARMUP_STREAMS + args.calls + args.streams
    print(json.dumps({"spans": sum(exporter.by_name.values()), "calls": calls, "chunks_seen": seen}))
    del ballast
    tp.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
