"""Stops that reach a running execution: the operator's (`refs/alloy/control`: a cancel, a
pause of its intent), looked at by its holder while it runs, and the reconciler's own, passed
on to it."""

from __future__ import annotations

import threading
from typing import Any

from controllers import control as controls
from controllers.gitops import GitError, Mirror
from controllers.reconcile._work import Work
from foundry.ports import Clock


class Watching:
    """The operator's stops, watched for a running execution of a `Reconciler` (its state lives
    there)."""

    mirror: Mirror
    clock: Clock

    def _watch_control(
        self,
        work: Work,
        cancel: Any,
        stop: threading.Event,
        options: Any,
        watched: dict[str, Any],
    ) -> None:
        """The holder of a running execution looks at the operator's stops whenever it renews
        its claim or a block starts or ends (one `git ls-remote`; a fetch when they moved): a
        cancel of this execution stops its blocks and ends it `cancelled`; a pause of its intent
        starts nothing more — running blocks finish, or stop at once (`--stop-running`) — and
        the execution waits, parked, until the pause ends."""
        try:
            sha = self.mirror.heads([controls.REF]).get(controls.REF)
            if sha == watched.get("sha"):
                return
            if sha is not None and self.mirror.rev(controls.REF) != sha:
                self.mirror.fetch([controls.REF])
            control = controls.read(self.mirror, sha)
        except GitError:
            return  # the remote is away: the next renewal looks again
        watched["sha"] = sha
        order = control.cancel_for(work.execution)
        if order is not None:
            cancel.request(order.describe())
            return
        pause = control.pause_for(work.artifact.spec.intent.name, self.clock.now())
        if pause is not None and not stop.is_set():
            watched["pause"] = pause.describe()
            options.stop_grace = 0.0 if pause.stop_running else float("inf")
            stop.set()


def _relay(source: threading.Event, target: threading.Event) -> None:
    """Pass the reconciler's stop on to one execution (until the execution is over)."""
    while not target.is_set():
        if source.wait(0.2):
            target.set()
            return
