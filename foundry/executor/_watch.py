"""Watching running attempts: their output read as it comes, their exits reaped, and their
process groups signalled when a cancel, a stop (after its grace period), a halt, a timeout or a
CPU limit ends them."""

from __future__ import annotations

import os
import select
import selectors
import signal
import threading
import time
from collections.abc import Mapping

from foundry._process import kill_group
from foundry.executor._attempt import _Attempt
from foundry.executor._types import RunOptions
from foundry.faults import crash_point


class Watch:
    """Watches the running attempts of one run. A stop (not a cancel) gives them `stop_grace`
    seconds from when it is first seen; a halt, none."""

    def __init__(self, options: RunOptions, cancel: threading.Event, stop: threading.Event):
        self._opts = options
        self._cancel = cancel
        self._stop = stop
        self._stop_at: float | None = None

    def wait(self, running: Mapping[str, _Attempt], selector: selectors.BaseSelector) -> None:
        """Wait a little for output or exits (at most until the next deadline, and never long,
        to notice a cancel request promptly), then signal the attempts that must end."""
        now = time.monotonic()
        horizon = [a.term_at if a.term_at is not None else a.deadline for a in running.values()]
        timeout = max(0.0, min(horizon) - now)
        if any(a.proc.pidfd < 0 for a in running.values()):
            timeout = min(timeout, 0.01)
        timeout = min(timeout, 0.2)  # notice a cancel request promptly
        for key, _ in selector.select(timeout):
            what, att = key.data
            if what == "out":
                _read(att, selector)
            elif att.exit_code is None:
                _reap(att, selector)
        for att in list(running.values()):  # no pidfd: ask the kernel
            if att.exit_code is None and att.proc.pidfd < 0 and att.proc.poll() is not None:
                _reap(att, selector)
        now = time.monotonic()
        for att in list(running.values()):
            if att.exit_code is not None:
                continue
            self._signal(att, now)

    def _signal(self, att: _Attempt, now: float) -> None:
        pid = att.proc.pid
        opts = self._opts
        if self._stop.is_set() and self._stop_at is None:
            self._stop_at = now + opts.stop_grace
        if opts.halt is not None and opts.halt.is_set() and not att.halted:
            att.stopped = att.halted = True  # no time left: killed now, recorded interrupted
            self._stop.set()
            kill_group(pid, signal.SIGKILL)
            att.term_at = now
            return
        if self._cancel.is_set() and not att.cancelled:
            att.cancelled = True
            kill_group(pid, signal.SIGTERM)
            att.term_at = now + opts.kill_grace
        elif (
            self._stop_at is not None
            and now >= self._stop_at
            and not att.stopped
            and att.term_at is None
        ):
            att.stopped = True
            kill_group(pid, signal.SIGTERM)
            att.term_at = now + opts.kill_grace
        elif att.term_at is None and now >= att.deadline:
            att.timed_out = True
            kill_group(pid, signal.SIGTERM)
            att.term_at = now + opts.kill_grace
        elif att.term_at is None and att.launch is not None and att.launch.over_cpu():
            # Its processes together used its CPU time: a limit, ended at once (whatever
            # left the group goes when its cgroups are closed).
            kill_group(pid, signal.SIGKILL)
            att.term_at = now
        elif att.term_at is not None and now >= att.term_at:
            kill_group(pid, signal.SIGKILL)


def _read(att: _Attempt, selector: selectors.BaseSelector) -> None:
    """Read what the attempt's output has now; at its end, stop watching it."""
    proc = att.proc
    if not att.out_open:  # closed while draining, earlier in this same batch of events
        return
    try:
        chunk = os.read(proc.out_fd, 65536)
    except BlockingIOError:
        return
    if chunk:
        att.capture.feed(chunk)
        crash_point("mid-block", att.block.id)  # the block runs and has said something
        return
    selector.unregister(proc.out_fd)
    proc.close_output()
    att.out_open = False


def _reap(att: _Attempt, selector: selectors.BaseSelector) -> None:
    """The attempt's main process exited: its exit code, what it left behind stopped, and the
    rest of its output read (for two seconds at most)."""
    proc = att.proc
    if att.exit_code is not None:
        return
    code = proc.wait()
    att.exit_code = code if code >= 0 else 128 - code
    if proc.pidfd >= 0:
        selector.unregister(proc.pidfd)
        os.close(proc.pidfd)
    # The block is over when its main process is: stop what it left behind, then drain.
    kill_group(proc.pid)
    if att.out_open:
        # Usually the end of the output is already there: read it without waiting.
        _read(att, selector)
    if att.out_open:
        poller = select.poll()
        poller.register(proc.out_fd, select.POLLIN)
        deadline = time.monotonic() + 2.0
        while att.out_open:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if poller.poll(min(left, 0.05) * 1000):
                _read(att, selector)
        if att.out_open:
            selector.unregister(proc.out_fd)
            proc.close_output()
            att.out_open = False
