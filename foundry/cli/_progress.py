"""Progress at the command line: each execution and block as it starts and ends, what waits
and the command that unblocks it, and what Ctrl-C is doing (docs/foundry.md, "Progress").

`foundry run` and `foundry reconcile` hand the engine `Console.event`; every event is one line,
written and flushed at once (the engine's `describe` wording), so a terminal, a pipe or a log
collector sees it as it happens. Colour only on a terminal, never with `NO_COLOR` or
`TERM=dumb`; piped, the lines are plain text.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

import click

from foundry.ports import SystemClock
from foundry.progress import Progress, Where, describe, next_step

if TYPE_CHECKING:  # the engine is imported only when something runs
    from foundry.executor import ExecutionResult

_COLOURS = {
    "succeeded": "green",
    "started": "cyan",
    "resumed": "cyan",
    "failed": "red",
    "timeout": "red",
    "indeterminate": "magenta",
    "waiting": "yellow",
    "queued": "yellow",
    "interrupted": "yellow",
    "stopped": "yellow",
    "cancelled": "yellow",
    "skipped": "bright_black",
}


def colour_wanted(stream: IO[str]) -> bool:
    """Colour for `stream`: the CLI's one decision (`foundry.cli._output.rich_wanted`)."""
    from foundry.cli._output import rich_wanted

    return rich_wanted(stream, "text")


class Console:
    """Prints progress events as they come (from the engine's thread), one line each.

    `where` says who judges gates (`run`: no forge; `reconcile`), for what a wait asks of
    whom; `again` is the command that runs the execution again (`foundry run`), `branch` the
    default branch Approvals are merged to (reconcile learns it on its first pass). With
    `err`, every line goes to stderr (stdout is kept for a JSON report)."""

    def __init__(
        self,
        *,
        where: Where,
        again: str | None = None,
        branch: Callable[[], str | None] | None = None,
        err: bool = False,
        end_on_stderr: bool = False,
    ) -> None:
        self.where = where
        self.again = again
        self.branch = branch or (lambda: None)
        self.err = err
        #: `foundry run`: the execution's end is its result line, on stderr.
        self.end_on_stderr = end_on_stderr
        self._lock = threading.RLock()  # a signal handler may ask while a line is written
        self._running: dict[tuple[str, str], str] = {}  # (execution, block) -> its label
        self.labels: dict[str, str] = {}  # execution -> `exe-… (intent, event key)`
        self.shown: set[str] = set()  # executions whose progress was printed
        self.last: dict[str, Progress] = {}  # execution -> its last execution-ended

    def event(self, event: Progress) -> None:
        with self._lock:
            self.labels[event.execution] = event.label
            self.shown.add(event.execution)
            key = (event.execution, event.block or "")
            if event.kind == "block-started":
                self._running[key] = event.block or ""
            elif event.kind == "block-ended":
                self._running.pop(key, None)
            err = self.err
            if event.kind == "execution-ended":
                self.last[event.execution] = event
                err = err or self.end_on_stderr
            self._echo(self._line(event), err=err)
            step = next_step(event, where=self.where, branch=self.branch(), again=self.again)
            if step is not None:
                self._echo(f"  {step.text()}", err=self.err)

    def running(self) -> list[str]:
        """The blocks running now (for what Ctrl-C says)."""
        with self._lock:
            return sorted(set(self._running.values()))

    def result(self, result: ExecutionResult, mask: Callable[[str], str]) -> None:
        """`foundry run`'s last line, on stderr, when the engine told no end (it had nothing to
        run: already finished by an older engine)."""
        if result.execution in self.last:
            return
        label = self.labels.get(result.execution, result.execution)
        tail = f" ({mask(result.reason)})" if result.reason else ""
        self._echo(f"{label}: {self._status(result.status)}{tail}", err=True)

    def _line(self, event: Progress) -> str:
        text = describe(event)
        status = event.status if event.kind != "waiting" else "waiting"
        if status and self._colour(self.err) and f": {status}" in text:
            text = text.replace(f": {status}", f": {self._status(status)}", 1)
        return text

    def _status(self, status: str) -> str:
        colour = _COLOURS.get(status)
        return click.style(status, fg=colour) if colour and self._colour(self.err) else status

    @staticmethod
    def _colour(err: bool) -> bool:
        return colour_wanted(sys.stderr if err else sys.stdout)

    @staticmethod
    def _echo(line: str, *, err: bool) -> None:
        click.echo(line, err=err)  # click.echo flushes: each line is out as it happens


class Interrupts:
    """SIGINT and SIGTERM: the first stops (running blocks get `grace` seconds, nothing new
    starts) and says so at once; the second stops now (running blocks' process groups are
    killed and recorded as interrupted). Either way the command ends with exit 130."""

    def __init__(self, grace: float, console: Console) -> None:
        self.grace = grace
        self.console = console
        self.stop = threading.Event()
        self.halt = threading.Event()
        #: The clock to run with: the first signal also ends its waits (a retry's backoff),
        #: which would otherwise hold the stop up for as long as they last.
        self.clock = SystemClock()

    def install(self) -> Interrupts:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        return self

    @property
    def stopped(self) -> bool:
        return self.stop.is_set()

    def _on_signal(self, _signum: int, _frame: object) -> None:
        if not self.stop.is_set():
            self.stop.set()
            self.clock.stop()
            blocks = self.console.running()
            if blocks:
                waits = f"waiting up to {self.grace:g}s for running blocks ({', '.join(blocks)}); "
            else:  # between blocks, or reading and publishing: that step ends, nothing follows
                waits = "no block is running; "
            _say(f"stopping: {waits}nothing new starts; Ctrl-C again to stop now")
        elif not self.halt.is_set():
            self.halt.set()
            _say(
                "stopping now: running blocks are killed and recorded as interrupted; "
                "Ctrl-C a third time to quit at once"
            )
        else:  # stuck publishing (a remote that hangs): quit; a claim left is taken over later
            _say("quitting at once: what was not published is recovered by the next pass")
            raise KeyboardInterrupt


def _say(message: str) -> None:
    """A line on stderr from a signal handler: one `os.write`, never through Python's buffered
    stream (the interrupted code may be in the middle of writing to it)."""
    with contextlib.suppress(OSError):
        os.write(2, f"foundry: {message}\n".encode())


def again_command() -> str:
    """The command line of this `foundry run`, to run the execution again (`--rerun`, which
    would make a new execution, left out)."""
    import shlex

    return shlex.join(["foundry", *(a for a in sys.argv[1:] if a != "--rerun")])
