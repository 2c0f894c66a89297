"""The real telemetry backends on 127.0.0.1: OpenTelemetry Collector, Jaeger v2, Prometheus.

`.ci/backends.sh` builds or installs the binaries into ``~/.cache/otelbench`` (reused when
present); :class:`Stack` starts them with the configuration in ``collector-config/`` on free
ports, waits until each answers, and stops them by PID. ``otelbench backends`` runs a stack in
the foreground for people who want to look at a replay in Jaeger and Prometheus.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from otelbench.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "collector-config"
CACHE_DIR = Path(os.environ.get("OTELBENCH_CACHE", Path.home() / ".cache" / "otelbench"))

_ENV = {"otelcol": "OTELBENCH_OTELCOL", "jaeger": "OTELBENCH_JAEGER", "prometheus": "OTELBENCH_PROMETHEUS"}
_PATH_NAMES = {"otelcol": "otelcol-otelbench", "jaeger": "jaeger", "prometheus": "prometheus"}
_CACHE_GLOBS = {
    "otelcol": "otelcol-*/otelcol-otelbench",
    "jaeger": "bin/jaeger-*",
    "prometheus": "bin/prometheus",
}


def find_binary(name: str) -> str | None:
    """Path of backend ``name`` (otelcol, jaeger, prometheus): env override, cache, then PATH."""
    explicit = os.environ.get(_ENV[name])
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    cached = sorted(glob.glob(str(CACHE_DIR / _CACHE_GLOBS[name])), key=os.path.getmtime)
    cached = [p for p in cached if os.access(p, os.X_OK) and not p.endswith(".tmp")]
    if cached:
        return cached[-1]
    return shutil.which(_PATH_NAMES[name])


def missing_binaries() -> list[str]:
    """Names of the backends that cannot be found."""
    return [name for name in _ENV if find_binary(name) is None]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Ports:
    """Every port a stack listens on, all on 127.0.0.1."""

    otlp_grpc: int = field(default_factory=free_port)
    otlp_http: int = field(default_factory=free_port)
    prometheus_exporter: int = field(default_factory=free_port)
    jaeger_otlp_grpc: int = field(default_factory=free_port)
    jaeger_query_http: int = field(default_factory=free_port)
    jaeger_query_grpc: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)


class Stack:
    """Jaeger, the Collector and Prometheus as child processes; a context manager."""

    def __init__(
        self, ports: Ports | None = None, workdir: str | None = None, scrape_interval: str | None = None
    ) -> None:
        self.ports = ports or Ports()
        #: Overrides the config's 5 s (tests scrape every second, so short runs span several scrapes).
        self.scrape_interval = scrape_interval
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="otelbench-backends-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- addresses ---------------------------------------------------------------------------
    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL for OTLP/HTTP exporters (``/v1/traces`` and ``/v1/metrics`` below it)."""
        return f"http://127.0.0.1:{self.ports.otlp_http}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        """Address for OTLP/gRPC exporters."""
        return f"http://127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def jaeger_url(self) -> str:
        """Jaeger's query API and UI."""
        return f"http://127.0.0.1:{self.ports.jaeger_query_http}"

    @property
    def prometheus_url(self) -> str:
        """Prometheus's HTTP API."""
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def collector_metrics_url(self) -> str:
        """The Collector's Prometheus exporter (what Prometheus scrapes)."""
        return f"http://127.0.0.1:{self.ports.prometheus_exporter}/metrics"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        """Start Jaeger, then the Collector, then Prometheus; wait until each answers."""
        missing = missing_binaries()
        if missing:
            raise ConfigError(
                f"backend binaries not found: {', '.join(missing)} (run `bash .ci/backends.sh` or set "
                + ", ".join(_ENV[m] for m in missing)
                + ")"
            )
        try:
            self.start_jaeger()
            self._wait_http(f"{self.jaeger_url}/api/services", "jaeger", timeout)
            self.start_collector()
            self._wait_http(self.collector_metrics_url, "otelcol", timeout)
            self.start_prometheus()
            self._wait_http(f"{self.prometheus_url}/-/ready", "prometheus", timeout)
        except BaseException:
            self.stop()
            raise

    def start_jaeger(self) -> None:
        """Start (or restart) Jaeger."""
        p = self.ports
        self._spawn(
            "jaeger",
            [_binary("jaeger"), "--config", str(CONFIG_DIR / "jaeger.yaml")],
            {
                "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_grpc}",
                "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{p.jaeger_query_http}",
                "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_query_grpc}",
            },
        )

    def start_collector(self) -> None:
        """Start (or restart) the Collector."""
        p = self.ports
        self._spawn(
            "otelcol",
            [_binary("otelcol"), "--config", str(CONFIG_DIR / "otelcol.yaml")],
            {
                "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.otlp_grpc}",
                "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p.otlp_http}",
                "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{p.prometheus_exporter}",
                "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_grpc}",
            },
        )

    def start_prometheus(self) -> None:
        """Start Prometheus scraping this stack's Collector (config copied with its port)."""
        template = (CONFIG_DIR / "prometheus.yml").read_text()
        config = self.workdir / "prometheus.yml"
        text = template.replace("127.0.0.1:8889", f"127.0.0.1:{self.ports.prometheus_exporter}")
        if self.scrape_interval:
            text = text.replace("scrape_interval: 5s", f"scrape_interval: {self.scrape_interval}")
        config.write_text(text)
        self._spawn(
            "prometheus",
            [
                _binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
            ],
            {},
        )

    def kill(self, name: str) -> None:
        """Kill one backend at once (SIGKILL): no flush, as a crash would."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart_collector(self, timeout: float = 60.0) -> None:
        """Start the Collector again on the same ports and wait until it answers."""
        self.start_collector()
        self._wait_http(self.collector_metrics_url, "otelcol", timeout)

    def stop_one(self, name: str, timeout: float = 10.0) -> None:
        """Stop one backend by PID: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def stop(self) -> None:
        """Stop every backend (the Collector first, so it can flush to the others)."""
        for name in ("otelcol", "prometheus", "jaeger"):
            self.stop_one(name)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self, name: str) -> str:
        """What a backend wrote to stdout/stderr so far (for failure messages)."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.stop_one(name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )

    def _wait_http(self, url: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise ConfigError(f"{name} exited with status {proc.returncode}:\n{self.log(name)[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ConfigError(f"{name} did not answer at {url} within {timeout:.0f} s")
            time.sleep(0.2)


def _binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        raise ConfigError(f"backend binary not found: {name}")
    return path
