"""``otelbench backends``: run the Collector, Jaeger and Prometheus of ``collector-config/`` locally.

The binaries come from ``.ci/backends.sh`` (cached under ``~/.cache/otelbench``). The stack
runs in the foreground until Ctrl-C; see ``docs/pipeline.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from typing import Any

from otelbench.backends import Ports, Stack, missing_binaries
from otelbench.errors import ConfigError, UsageError

#: The ports the configs in collector-config/ default to.
STANDARD_PORTS = Ports(
    otlp_grpc=4317,
    otlp_http=4318,
    prometheus_exporter=8889,
    jaeger_otlp_grpc=14317,
    jaeger_query_http=16686,
    jaeger_query_grpc=16685,
    prometheus=9090,
)


def register(sub: Any) -> None:
    """Add the ``backends`` sub-command."""
    p = sub.add_parser(
        "backends",
        help="run the OpenTelemetry Collector, Jaeger and Prometheus on 127.0.0.1 until Ctrl-C",
        description="Start the pipeline of collector-config/ (binaries from .ci/backends.sh) on "
        "127.0.0.1, print its addresses and keep it running until Ctrl-C. See docs/pipeline.md.",
    )
    p.add_argument(
        "--free-ports",
        action="store_true",
        help="pick free ports instead of the standard ones (4317/4318, 16686, 9090, 8889)",
    )
    p.add_argument("--check", action="store_true", help="only report which binaries are installed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the stack and wait for Ctrl-C (or report what is installed with ``--check``)."""
    missing = missing_binaries()
    if args.check:
        print("missing: " + ", ".join(missing) if missing else "all backends installed")
        return 1 if missing else 0
    if missing:
        raise ConfigError(f"backend binaries not found: {', '.join(missing)}; run `bash .ci/backends.sh`")
    ports = Ports() if args.free_ports else STANDARD_PORTS
    if not args.free_ports:
        _check_free(ports)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with Stack(ports) as stack:
        print(f"OTLP/HTTP   {stack.otlp_http_endpoint}   (gRPC {stack.otlp_grpc_endpoint})")
        print(f"Jaeger      {stack.jaeger_url}")
        print(f"Prometheus  {stack.prometheus_url}")
        print(f"logs        {stack.workdir}")
        print(f"\n  otelbench replay --otlp-endpoint {stack.otlp_http_endpoint}")
        print(f"  otelbench summarize --prometheus {stack.prometheus_url}\n")
        print("Ctrl-C stops the stack.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    print("stopped", file=sys.stderr)
    return 0


def _check_free(ports: Ports) -> None:
    for name, port in vars(ports).items():
        with socket.socket() as s:
            # As the Go servers do: connections in TIME_WAIT must not count as "in use".
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise UsageError(
                    f"port {port} ({name}) on 127.0.0.1 is in use; stop what holds it or pass --free-ports"
                ) from None
