"""`otelbench mock`: serve the mock OpenAI / Anthropic / Ollama / Bedrock API until interrupted."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
from types import FrameType
from typing import Any

from otelbench.errors import ConfigError, UsageError
from otelbench.mock import Dist, MockConfig, MockServer
from otelbench.mock.config import check_workers, load_config


def register(subparsers: Any) -> None:
    """Add the `mock` sub-command."""
    parser = subparsers.add_parser(
        "mock",
        help="serve a mock OpenAI/Anthropic/Ollama/Bedrock API",
        description=__doc__,
    )
    parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to bind; 0 picks a free one (default 0)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the latency/fault random draws (default 0)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port via SO_REUSEPORT (Linux; default 1)",
    )
    parser.add_argument(
        "--ttft-ms",
        type=float,
        default=None,
        help="fixed time to first token of the default profile (default 20)",
    )
    parser.add_argument(
        "--itl-ms",
        type=float,
        default=None,
        help="fixed inter-token latency of the default profile (default 2)",
    )
    parser.add_argument(
        "--output-tokens",
        type=int,
        default=None,
        help="fixed output length of the default profile (default 32)",
    )
    parser.add_argument(
        "--config", metavar="FILE", default=None, help="TOML config (see docs/mock.md); flags override it"
    )
    parser.add_argument(
        "--ground-truth", metavar="FILE", default=None, help="append one JSON line per request"
    )
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> MockConfig:
    """The config file (if any) with the command-line flags applied on top."""
    config = load_config(args.config) if args.config else MockConfig()
    changes: dict[str, Any] = {}
    if args.host is not None:
        changes["host"] = args.host
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be within 0..65535, got {args.port}")
        changes["port"] = args.port
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.workers is not None:
        check_workers(args.workers, "--workers")
        changes["workers"] = args.workers
    if args.ground_truth is not None:
        changes["ground_truth_path"] = args.ground_truth
    profile = config.default_profile
    try:
        if args.ttft_ms is not None:
            profile = dataclasses.replace(profile, ttft=Dist.fixed(args.ttft_ms / 1000))
        if args.itl_ms is not None:
            profile = dataclasses.replace(profile, itl=Dist.fixed(args.itl_ms / 1000))
        if args.output_tokens is not None:
            if args.output_tokens < 1:
                raise ValueError(f"must be >= 1, got {args.output_tokens}")
            profile = dataclasses.replace(profile, output_tokens=Dist.fixed(args.output_tokens))
    except ValueError as exc:
        raise ConfigError(f"--ttft-ms/--itl-ms/--output-tokens: {exc}") from None
    changes["default_profile"] = profile
    return dataclasses.replace(config, **changes)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; prints the URLs first."""
    server = MockServer(build_config(args))
    try:
        server.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {server.config.host}:{server.config.port}: {exc.strerror or exc}"
        ) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        workers = server.config.workers
        suffix = f" ({workers} worker processes)" if workers > 1 else ""
        print(f"otelbench mock listening on {server.url}{suffix}", flush=True)
        print(f"  OpenAI:    base_url={server.openai_base_url}", flush=True)
        print(f"  Anthropic: base_url={server.anthropic_base_url}", flush=True)
        print(f"  Ollama:    host={server.ollama_host}", flush=True)
        print(f"  Bedrock:   endpoint_url={server.bedrock_endpoint_url}", flush=True)
        print(f"  Azure:     azure_endpoint={server.azure_endpoint}", flush=True)
        print(f"  Mistral:   base_url={server.mistral_base_url}", flush=True)
        print(f"  DeepSeek:  base_url={server.deepseek_base_url}", flush=True)
        # wait() with a timeout so signals are handled promptly on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    return 0
