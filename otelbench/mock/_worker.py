"""Child-process side of `MockServer(isolated=True)`: one server, driven by pickled commands on stdin.

Protocol (pickle frames): parent sends the `MockConfig`; child answers ("ready", port) or
("error", exception); then each command tuple gets one reply: ("records",) -> list of records,
("clear",) -> None, ("script", model, steps) -> None, ("stop",) -> None (and the child exits).
EOF on stdin (the parent died) also stops the server.
"""

from __future__ import annotations

import pickle
import signal
import sys
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
    config = pickle.load(stdin)
    server = MockServer(config)
    try:
        server.start()
    except Exception as exc:
        _send(stdout, ("error", exc))
        return 1
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
