"""Child-process side of `MockServer(isolated=True)`: one server, driven by pickled commands on stdin.

Protocol (pickle frames): parent sends (`MockConfig`, {"worker": index, "reuse_port": bool});
child answers ("ready", port) or ("error", exception); then each command tuple gets one reply:
("records",) -> list of records, ("clear",) -> None, ("script", model, steps) -> None,
("cpu",) -> CPU seconds used by this process, ("stop",) -> None (and the child exits).
EOF on stdin (the parent died) also stops the server.
"""

from __future__ import annotations

import gc
import pickle
import signal
import sys
import time
from typing import Any, BinaryIO

from .server import MockServer


def _send(out: BinaryIO, message: Any) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def main() -> int:
    """Serve one mock until told to stop."""
    # Ctrl-C reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    # Nothing else may write to the command channel.
    sys.stdout = sys.stderr
    config, options = pickle.load(stdin)
    server = MockServer(config)
    server._as_worker(int(options.get("worker", 0)), bool(options.get("reuse_port", False)))
    try:
        server.start()
    except Exception as exc:
        _send(stdout, ("error", exc))
        return 1
    # Everything alive now (modules, routes, config) lives as long as the process: keep it out
    # of the collector's full passes, whose pauses would show up as late chunks.
    gc.freeze()
    _send(stdout, ("ready", server.port))
    try:
        while True:
            try:
                command = pickle.load(stdin)
            except EOFError:
                return 0
            name = command[0]
            if name == "records":
                _send(stdout, server.records)
            elif name == "clear":
                server.clear_records()
                _send(stdout, None)
            elif name == "script":
                server.script(command[1], command[2])
                _send(stdout, None)
            elif name == "cpu":
                _send(stdout, time.process_time())
            elif name == "stop":
                server.stop()
                _send(stdout, None)
                return 0
            else:
                _send(stdout, ValueError(f"unknown command {name!r}"))
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
