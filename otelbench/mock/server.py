"""`MockServer`: the mock provider server running its own event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import Any

from .. import rxtime
from . import anthropic_api, azure_api, bedrock_api, deepseek_api, mistral_api, ollama_api, openai_api
from .core import App, ProtocolSpec, RequestContext, Route
from .http import ConnectionSet, HttpConnection, new_event_loop
from .model import Fault, MockConfig, RequestRecord


async def _models(ctx: RequestContext) -> None:
    # OpenAI and Anthropic share GET /v1/models; the Anthropic SDK always sends `anthropic-version`.
    if "anthropic-version" in ctx.req.headers:
        ctx.rec.protocol = "anthropic"
        ctx.spec = anthropic_api.ANTHROPIC
        await anthropic_api.list_models(ctx)
    else:
        await openai_api.list_models(ctx)


def build_routes() -> tuple[
    dict[tuple[str, str], tuple[ProtocolSpec, Route]], list[tuple[str, ProtocolSpec]]
]:
    """The route table and the path-prefix -> protocol fallbacks used for 404s."""
    oa = openai_api.OPENAI
    routes: dict[tuple[str, str], tuple[ProtocolSpec, Route]] = {
        ("POST", "/v1/chat/completions"): (oa, openai_api.chat_completions),
        ("POST", "/v1/completions"): (oa, openai_api.completions),
        ("POST", "/v1/responses"): (oa, openai_api.responses),
        ("POST", "/v1/embeddings"): (oa, openai_api.embeddings),
        ("GET", "/v1/models"): (oa, _models),
        ("POST", "/mistral/v1/chat/completions"): (mistral_api.MISTRAL, mistral_api.chat_completions),
        ("POST", "/deepseek/chat/completions"): (deepseek_api.DEEPSEEK, deepseek_api.chat_completions),
        ("POST", "/deepseek/v1/chat/completions"): (deepseek_api.DEEPSEEK, deepseek_api.chat_completions),
    }
    routes.update(anthropic_api.routes())
    routes.update(ollama_api.routes())
    fallbacks = [
        ("/v1/messages", anthropic_api.ANTHROPIC),
        ("/api/", ollama_api.OLLAMA),
        ("/model/", bedrock_api.BEDROCK),
        ("/openai/", azure_api.AZURE),
        ("/mistral/", mistral_api.MISTRAL),
        ("/deepseek/", deepseek_api.DEEPSEEK),
        ("", oa),
    ]
    return routes, fallbacks


class _Child:
    """One server process of `MockServer(isolated=True)` (or one worker), driven through a pipe."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otelbench.mock._worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.lock = threading.Lock()

    def call(self, message: Any) -> Any:
        """Send one command and return its reply (an exception reply is raised)."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        with self.lock:
            try:
                pickle.dump(message, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.flush()
                reply = pickle.load(proc.stdout)
            except (BrokenPipeError, EOFError):
                raise RuntimeError("the isolated mock server process died") from None
        if isinstance(reply, Exception):
            raise reply
        return reply

    def stop(self) -> None:
        """Ask the process to stop, then reap it (killed if it does not exit within 5 s)."""
        with contextlib.suppress(RuntimeError, OSError):
            self.call(("stop",))
        self.kill()

    def kill(self) -> None:
        """Close the pipe and reap the process."""
        proc = self.proc
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _stamping_listener(host: str, port: int, reuse_port: bool) -> socket.socket | None:
    """A bound socket whose connections stamp their reads with the kernel's receive time, so a
    record's ``received_ns`` is known; None where that is not available or ``host`` names several
    addresses (asyncio then binds them all, unstamped)."""
    if rxtime.SO_TIMESTAMPNS is None:
        return None
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if len({(family, address) for family, _, _, _, address in infos}) != 1:
        return None
    family, kind, proto, _, address = infos[0]
    sock = rxtime.listening_socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class MockServer:
    """A protocol-faithful OpenAI / Anthropic / Ollama / Bedrock mock on 127.0.0.1 (see `otelbench.mock`).

    By default the server's event loop runs in a daemon thread of this process, so it shares the
    GIL with the client under test: a busy client (many concurrent streams) delays the server's
    writes by milliseconds. `isolated=True` runs it in a child process instead (same API; records
    and scripts go through a pipe; `perf_counter_ns` is system-wide on Linux and macOS, so the
    records' times stay comparable with the client's).

    `MockConfig.workers` > 1 starts that many child processes sharing the port (SO_REUSEPORT: the
    kernel spreads *connections* over them). `records` then merges every worker's records (by
    arrival) and `clear_records()` clears them all; `script()` is refused, because which worker
    answers the next request is the kernel's choice, so "fail the next 5" could not hold.
    """

    def __init__(self, config: MockConfig | None = None, *, isolated: bool = False) -> None:
        self.config = config if config is not None else MockConfig()
        self.isolated = isolated or self.config.workers > 1
        self._children: list[_Child] = []
        self._worker = 0
        self._reuse_port = False
        self._app = self._new_app()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._port = 0
        self._conns = ConnectionSet()
        self._ground_truth: int | None = None

    def _new_app(self) -> App:
        routes, fallbacks = build_routes()
        app = App(self.config, routes, self._worker)
        app.fallback_protocols = fallbacks
        app.path_routers = [bedrock_api.path_router, azure_api.path_router]
        return app

    def _as_worker(self, index: int, reuse_port: bool) -> None:
        """Make this (not yet started) server worker `index` of a multi-process server."""
        self._worker = index
        self._reuse_port = reuse_port
        self._app = self._new_app()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving in a daemon thread (or child processes); returns once the socket listens."""
        if self._thread is not None or self._children:
            return
        if self.isolated:
            self._start_children()
            return
        if self.config.ground_truth_path:
            self._ground_truth = os.open(
                self.config.ground_truth_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )
            self._app.ground_truth = self._ground_truth
        self._started.clear()
        self._thread = threading.Thread(target=self._run, name="otelbench-mock", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            self._thread.join()
            self._thread = None
            self._close_ground_truth()
            raise error

    def stop(self) -> None:
        """Stop serving, close every connection and join the thread or children (idempotent)."""
        if self._children:
            children, self._children = self._children, []
            for child in children:
                child.stop()
            return
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already stopped
                loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None
        self._loop = None
        self._close_ground_truth()

    def __enter__(self) -> MockServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- child processes (isolated=True, workers > 1) ----------------------------------------------

    def _start_children(self) -> None:
        workers = self.config.workers
        if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
            raise RuntimeError("MockConfig.workers > 1 needs SO_REUSEPORT, which this platform lacks")
        config = dataclasses.replace(self.config, workers=1)
        try:
            # Start every process first: their imports then overlap.
            for _ in range(workers):
                self._children.append(_Child())
            for index, child in enumerate(self._children):
                kind, value = child.call((config, {"worker": index, "reuse_port": workers > 1}))
                if kind == "error":
                    raise value
                # Port 0: the first worker picks a free port; the others join it.
                config = dataclasses.replace(config, port=value)
                self._port = value
        except BaseException:
            children, self._children = self._children, []
            for child in children:
                child.kill()
            raise

    def _call_all(self, message: Any) -> list[Any]:
        return [child.call(message) for child in self._children]

    def _close_ground_truth(self) -> None:
        if self._ground_truth is not None:
            os.close(self._ground_truth)
            self._ground_truth = None
            self._app.ground_truth = None

    def _run(self) -> None:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app, conns = self._app, self._conns
        max_body, read_timeout = self.config.max_body_bytes, self.config.request_timeout

        def factory() -> HttpConnection:
            conn = HttpConnection(app.handle, loop, max_body, conns.discard, read_timeout)
            conns.add(conn)
            return conn

        try:
            listener = _stamping_listener(self.config.host, self.config.port, self._reuse_port)
            if listener is not None:
                serving = loop.create_server(factory, sock=listener, backlog=2048)
            else:
                serving = loop.create_server(
                    factory,
                    self.config.host,
                    self.config.port,
                    backlog=2048,
                    reuse_address=True,
                    reuse_port=self._reuse_port or None,
                )
            server = loop.run_until_complete(serving)
        except BaseException as exc:
            self._start_error = exc
            loop.close()
            self._started.set()
            return
        self._port = server.sockets[0].getsockname()[1]
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown(server))
            loop.close()

    async def _shutdown(self, server: asyncio.Server) -> None:
        server.close()
        for conn in list(self._conns.live):
            conn.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Let the transports' connection_lost callbacks run so every socket is closed.
        for _ in range(3):
            await asyncio.sleep(0)
        await server.wait_closed()
        await asyncio.get_running_loop().shutdown_asyncgens()

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The bound host."""
        return self.config.host

    @property
    def port(self) -> int:
        """The bound port (known after `start()`)."""
        return self._port

    @property
    def url(self) -> str:
        """`http://HOST:PORT`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """`base_url` for `openai.OpenAI`."""
        return self.url + "/v1"

    @property
    def mistral_base_url(self) -> str:
        """`base_url` for `openai.OpenAI` as a client of Mistral's API (its strict request schema)."""
        return self.url + "/mistral/v1"

    @property
    def deepseek_base_url(self) -> str:
        """`base_url` for `openai.OpenAI` as a client of DeepSeek's API (reasoning, cache fields)."""
        return self.url + "/deepseek"

    @property
    def anthropic_base_url(self) -> str:
        """`base_url` for `anthropic.Anthropic` (the SDK appends /v1/messages)."""
        return self.url

    @property
    def azure_endpoint(self) -> str:
        """`azure_endpoint` for `openai.AzureOpenAI` (the v1 API: `base_url=azure_endpoint + "/openai/v1"`)."""
        return self.url

    @property
    def bedrock_endpoint_url(self) -> str:
        """`endpoint_url` for `boto3.client("bedrock-runtime", ...)`."""
        return self.url

    @property
    def ollama_host(self) -> str:
        """`host` for `ollama.Client`."""
        return self.url

    # -- ground truth and scripting --------------------------------------------------------------------

    @property
    def records(self) -> list[RequestRecord]:
        """Snapshot of finished requests, oldest first (thread-safe)."""
        if self._children:
            per_worker: list[list[RequestRecord]] = self._call_all(("records",))
            if len(per_worker) == 1:
                return per_worker[0]
            return sorted((r for records in per_worker for r in records), key=lambda r: r.arrival_ns)
        return self._app.records()

    def clear_records(self) -> None:
        """Forget the in-memory records."""
        if self._children:
            self._call_all(("clear",))
            return
        self._app.clear_records()

    def script(self, model: str | None, steps: list[Fault]) -> None:
        """Queue outcomes for the next requests for `model` (None = any model), then behave normally."""
        if len(self._children) > 1 or self.config.workers > 1:
            raise RuntimeError(
                "MockServer.script() needs a single worker: with several, the kernel decides which "
                "one answers the next request (use x-mock-fault headers or fault_rates instead)"
            )
        if self._children:
            self._children[0].call(("script", model, list(steps)))
            return
        self._app.script(model, list(steps))

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far: all its processes, or, in-process, its thread
        (NaN where the platform has no per-thread CPU clock). For capacity measurements."""
        if self._children:
            return float(sum(self._call_all(("cpu",))))
        thread = self._thread
        if thread is None or thread.ident is None:
            return 0.0
        if not hasattr(time, "pthread_getcpuclockid"):
            return math.nan
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
