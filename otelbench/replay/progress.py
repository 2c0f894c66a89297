"""Progress reporting behind a small interface: rich bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as RichBars,
)


class Progress(Protocol):
    """What the runner reports while it works."""

    def start(self, label: str, total: int | None, duration: float | None = None) -> None:
        """A phase began (``total`` requests and/or ``duration`` seconds, when known)."""
        ...

    def advance(self, label: str, ok: bool) -> None:
        """One request of phase ``label`` finished."""
        ...

    def finish(self, label: str) -> None:
        """Phase ``label`` ended."""
        ...

    def message(self, text: str) -> None:
        """Show a one-line notice (always shown, even when progress is off)."""
        ...

    def close(self) -> None:
        """Remove any live display."""
        ...


class NullProgress:
    """No progress display; notices still go to stderr."""

    def start(self, label: str, total: int | None, duration: float | None = None) -> None:
        """See :class:`Progress`."""

    def advance(self, label: str, ok: bool) -> None:
        """See :class:`Progress`."""

    def finish(self, label: str) -> None:
        """See :class:`Progress`."""

    def message(self, text: str) -> None:
        """See :class:`Progress`."""
        print(f"otelbench: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """See :class:`Progress`."""


class LineProgress(NullProgress):
    """One stderr line per phase start and end (for logs and pipes)."""

    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}
        self._started: dict[str, float] = {}

    def start(self, label: str, total: int | None, duration: float | None = None) -> None:
        """See :class:`Progress`."""
        self._counts[label] = [0, 0]
        self._started[label] = time.monotonic()
        limit = " / ".join(
            x for x in (f"{total} requests" if total else "", f"{duration:g} s" if duration else "") if x
        )
        self.message(f"{label}: started ({limit})")

    def advance(self, label: str, ok: bool) -> None:
        """See :class:`Progress`."""
        counts = self._counts.setdefault(label, [0, 0])
        counts[0 if ok else 1] += 1

    def finish(self, label: str) -> None:
        """See :class:`Progress`."""
        ok, failed = self._counts.get(label, [0, 0])
        took = time.monotonic() - self._started.get(label, time.monotonic())
        self.message(f"{label}: {ok + failed} requests in {took:.1f} s ({failed} failed)")


class BarProgress(NullProgress):
    """rich progress bars on stderr, removed when done."""

    def __init__(self, console: Console | None = None) -> None:
        self._bars = RichBars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._failed: dict[str, int] = {}
        self._bars.start()

    def start(self, label: str, total: int | None, duration: float | None = None) -> None:
        """See :class:`Progress`."""
        self._failed[label] = 0
        self._tasks[label] = self._bars.add_task(label, total=total, failed=0)

    def advance(self, label: str, ok: bool) -> None:
        """See :class:`Progress`."""
        task = self._tasks.get(label)
        if task is None:
            return
        if not ok:
            self._failed[label] += 1
        self._bars.update(task, advance=1, failed=self._failed[label])

    def finish(self, label: str) -> None:
        """See :class:`Progress`."""
        task = self._tasks.pop(label, None)
        if task is not None:
            self._bars.remove_task(task)

    def message(self, text: str) -> None:
        """See :class:`Progress`."""
        self._bars.console.print(f"otelbench: {text}", markup=False, highlight=False)

    def close(self) -> None:
        """See :class:`Progress`."""
        self._bars.stop()
