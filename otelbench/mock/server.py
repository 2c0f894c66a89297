"""`MockServer`: the mock provider server running its own event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import subprocess
import sys
import threading
from types import TracebackType
from typing import IO, Any

from . import anthropic_api, ollama_api, openai_api
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
        ("POST", "/v1/responses"): (oa, openai_api.responses),
        ("POST", "/v1/embeddings"): (oa, openai_api.embeddings),
        ("GET", "/v1/models"): (oa, _models),
    }
    routes.update(anthropic_api.routes())
    routes.update(ollama_api.routes())
    fallbacks = [
        ("/v1/messages", anthropic_api.ANTHROPIC),
        ("/api/", ollama_api.OLLAMA),
        ("", oa),
    ]
    return routes, fallbacks


class MockServer:
    """A protocol-faithful OpenAI / Anthropic / Ollama mock on 127.0.0.1 (see `otelbench.mock`).

    By default the server's event loop runs in a daemon thread of this process, so it shares the
    GIL with the client under test: a busy client (many concurrent streams) delays the server's
    writes by milliseconds. `isolated=True` runs it in a child process instead (same API; records
    and scripts go through a pipe; `perf_counter_ns` is system-wide on Linux and macOS, so the
    records' times stay comparable with the client's).
    """

    def __init__(self, config: MockConfig | None = None, *, isolated: bool = False) -> None:
        self.config = config if config is not None else MockConfig()
        self.isolated = isolated
        self._child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()
        routes, fallbacks = build_routes()
        self._app = App(self.config, routes)
        self._app.fallback_protocols = fallbacks
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._port = 0
        self._conns = ConnectionSet()
        self._ground_truth: IO[str] | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving in a daemon thread (or child process); returns once the socket listens."""
        if self._thread is not None or self._child is not None:
            return
        if self.isolated:
            self._start_child()
            return
        if self.config.ground_truth_path:
            # Line-buffered so a killed process still leaves complete lines behind.
            self._ground_truth = open(self.config.ground_truth_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
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
        """Stop serving, close every connection and join the thread or child (idempotent)."""
        if self._child is not None:
            self._stop_child()
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

    # -- child process (isolated=True) ---------------------------------------------------------------

    def _start_child(self) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", "otelbench.mock._worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._child = child
        try:
            kind, value = self._call(self.config)
        except BaseException:
            self._kill_child()
            raise
        if kind == "error":
            self._kill_child()
            raise value
        self._port = value

    def _call(self, message: Any) -> Any:
        child = self._child
        assert child is not None and child.stdin is not None and child.stdout is not None
        with self._child_lock:
            try:
                pickle.dump(message, child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                child.stdin.flush()
                reply = pickle.load(child.stdout)
            except (BrokenPipeError, EOFError):
                raise RuntimeError("the isolated mock server process died") from None
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _stop_child(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._call(("stop",))
        self._kill_child()

    def _kill_child(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()

    def _close_ground_truth(self) -> None:
        if self._ground_truth is not None:
            self._ground_truth.close()
            self._ground_truth = None
            self._app.ground_truth = None

    def _run(self) -> None:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        app, conns = self._app, self._conns
        max_body = self.config.max_body_bytes

        def factory() -> HttpConnection:
            conn = HttpConnection(app.handle, loop, max_body, conns.discard)
            conns.add(conn)
            return conn

        try:
            server = loop.run_until_complete(
                loop.create_server(
                    factory, self.config.host, self.config.port, backlog=2048, reuse_address=True
                )
            )
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
    def anthropic_base_url(self) -> str:
        """`base_url` for `anthropic.Anthropic` (the SDK appends /v1/messages)."""
        return self.url

    @property
    def ollama_host(self) -> str:
        """`host` for `ollama.Client`."""
        return self.url

    # -- ground truth and scripting --------------------------------------------------------------------

    @property
    def records(self) -> list[RequestRecord]:
        """Snapshot of finished requests, oldest first (thread-safe)."""
        if self._child is not None:
            records: list[RequestRecord] = self._call(("records",))
            return records
        return self._app.records()

    def clear_records(self) -> None:
        """Forget the in-memory records."""
        if self._child is not None:
            self._call(("clear",))
            return
        self._app.clear_records()

    def script(self, model: str | None, steps: list[Fault]) -> None:
        """Queue outcomes for the next requests for `model` (None = any model), then behave normally."""
        if self._child is not None:
            self._call(("script", model, list(steps)))
            return
        self._app.script(model, list(steps))
