"""Reconcile: the default branch of a remote -> executions -> traces on the traces branch
(DESIGN sections 5, 6, 8 and 9).

One `Reconciler` per repository keeps what it learnt between passes (the remote's heads, parsed
documents by blob id, the traces index), so a pass with nothing new costs one `git ls-remote`.
Everything that decides what runs and what happened is read from the remote; what the state
directory keeps is a cache and a write-ahead copy, never a vote. A pass:

1. takes in the remote's outbox (what any host could not deliver) and delivers it;
2. asks the remote where the default branch, the traces branch, the forge ref and the outbox
   are (one `git ls-remote`); when none moved, no schedule slot is due and nothing parked or
   held elsewhere is due for a look, it stops there;
3. fetches what moved, reads `.alloy/` of the default branch, the traces index, and the
   history of the default branch for push events (`_history`);
4. plans with Foundry's planner (`_planning`: executions with a trace are subtracted) and adds
   the claims no plan covers any more that need a hand: a finished one without its trace, an
   expired one whose holder died (`_scan`);
5. claims and runs each execution (`_running`): its own failure is its own report line;
6. publishes check runs, then traces (`_publishing`), and shares what it could not deliver.

Modules: `_model` (settings, report), `_work` (what the steps hand each other: `Work`,
`Done`), `_passing` (the pass, its steps in order), `_memory` (what a pass remembers for the
next, the next schedule slot included), `_reading`, `_history`, `_planning` (what the planner is
told, and what its items run with), `_scan`, `_publishing`; running one execution: `_running`
(under its claim), `_lease` (its claim kept and let go), `_stops` (the operator's, and the
reconciler's), `_gating` (what its gates ask), `_fenced_lanes`, `_telling` (its events),
`_files` (its ledger and worktrees), `_live_trace`, `_finishing` (what it leaves to publish,
also from a finished claim) and `_check_runs`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from controllers import control as controls
from controllers.claims import Claims
from controllers.forge import Forge, Identity, LocalForge
from controllers.gitops import Mirror, holder_id, remote_url
from controllers.outbox import Outbox
from controllers.reconcile._model import (
    DEFAULT_TRACES,
    FINISHED,
    FORGE_REF,
    PARKED,
    STATE_FILE,
    Dispatch,
    PassReport,
    Settings,
    TraceInfo,
    state_dir_for,
)
from controllers.reconcile._passing import OWN_NEWS_ROUNDS, Passing
from controllers.reconcile._work import Done, Work
from foundry.ports import Clock, SystemClock
from foundry.state import private

# The engine (boundary models, planner, executor, traces) is imported when a pass has something
# to read: a pass that finds nothing new, and `foundry reconcile --once` with nothing to do,
# never pay for importing it (most of a no-op command's time otherwise).
if TYPE_CHECKING:
    from foundry.progress import Progress


class Reconciler(Passing):
    """Reconciles one repository, pass after pass (the daemon keeps one per repository)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        holder: str | None = None,
        forge: Forge | None = None,
        progress: Callable[[Progress], None] | None = None,
        halt: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.url = remote_url(settings.repo)
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        #: Told each execution and block as it starts and ends, and each wait (a CLI prints
        #: them, the daemon logs them); `halt` after `stop`: running blocks are killed now.
        self.progress = progress
        self.halt = halt
        # Absolute: git runs in the mirror, and a relative worktree path would land inside it.
        self.state = (settings.state_dir or state_dir_for(settings.repo)).absolute()
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Its ledgers, worktrees and logs are this repository's only (its blocks' user may
        # read them, to reach its worktrees: never write them).
        private(self.state, settings.run_as.gid if settings.run_as is not None else None)
        if settings.run_as is not None:
            from foundry.errors import UserError
            from foundry.sandbox import blocked_on_the_way

            blocked = blocked_on_the_way(self.state, settings.run_as)
            if blocked is not None:
                raise UserError(
                    f"its blocks run as {settings.run_as.describe()}, who cannot reach its state "
                    f"directory {self.state}: {blocked} does not let that user pass (chmod o+x "
                    f"{blocked}, or choose a state directory under one it can pass)"
                )
        self.mirror = Mirror(self.url, self.state / "mirror.git")
        self.claims = Claims(self.mirror, holder or holder_id(), self.clock, settings.lease)
        self.forge: Forge = forge if forge is not None else LocalForge(self.mirror)
        self._identities: dict[str, Identity | None] = {}
        self._landed: tuple[str, dict[str, list[tuple[float, str | None]]]] = ("", {})
        self._authors: dict[str, tuple[str, ...]] = {}
        self._requesters: dict[str, str | None] = {}
        self.outbox = Outbox(self.state / "outbox")
        self.branch = settings.branch
        self.traces_branch = DEFAULT_TRACES
        self._parsed: dict[str, Any] = {}
        self._history_parsed: dict[str, Any] = {}
        self._artifact_bytes: dict[str, bytes] = {}
        self._traces: dict[str, TraceInfo] = {}
        self._trace_blobs: dict[str, str] = {}
        self._shared: set[str] = set()
        self._control = controls.Control()
        self._memory = self._load_memory()
        self.claims.seen = {k: float(v) for k, v in self._memory.get("claimsSeen", {}).items()}

    def close(self) -> None:
        self.mirror.close()


def reconcile_once(settings: Settings, *, clock: Clock | None = None) -> PassReport:
    """One pass over one repository (`foundry reconcile --once`)."""
    reconciler = Reconciler(settings, clock=clock)
    try:
        return reconciler.pass_once()
    finally:
        reconciler.close()


__all__ = [
    "DEFAULT_TRACES",
    "FINISHED",
    "FORGE_REF",
    "OWN_NEWS_ROUNDS",
    "PARKED",
    "STATE_FILE",
    "Dispatch",
    "Done",
    "PassReport",
    "Reconciler",
    "Settings",
    "TraceInfo",
    "Work",
    "reconcile_once",
    "state_dir_for",
]
