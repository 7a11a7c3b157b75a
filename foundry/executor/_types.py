"""What the executor is given and what it answers: options, results, the gate port."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from foundry.boundary import Artifact, Block
from foundry.sandbox import RunAs, Sandbox
from foundry.throttle import LanePort

if TYPE_CHECKING:
    from foundry.progress import Progress

ENV_ALLOWLIST = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
SYNC_EFFECTS = ("reversible", "irreversible")
RETRY_AFTER_CRASH = ("none", "idempotent")
NOT_SUCCEEDED = ("failed", "skipped", "cancelled")
Status = Literal[
    "succeeded", "failed", "waiting", "indeterminate", "cancelled", "queued", "skipped", "stopped"
]
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
#: Seconds between lease renewals while blocks run (at most a third of the lease).
RENEW_EVERY = 1.0


class Cancel(threading.Event):
    """A cancel request that says why, and how the execution ends: `cancelled` (an operator's
    `foundry cancel`, a lane's cancelRunning), or `skipped` (superseded: its artifact or its
    request changed). Set before the run starts, the execution ends at once; set while blocks
    run, they are stopped and nothing more starts. The reason goes into the ledger's
    `execution-finished` record, so into the trace's `reason`."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""
        self.status: Literal["cancelled", "skipped"] = "cancelled"

    def request(self, reason: str, status: Literal["cancelled", "skipped"] = "cancelled") -> None:
        self.reason, self.status = reason, status
        self.set()


@dataclass(frozen=True)
class GateOutcome:
    """What a gate says now."""

    decision: Literal["passed", "waiting", "failed"]
    reason: str


class Gates(Protocol):
    """Evaluates gates and resolves indeterminate blocks (filled by `foundry.gates`)."""

    def evaluate(
        self,
        execution: str,
        artifact: Artifact,
        block: Block,
        index: int,
        *,
        now: float,
        waiting_since: float | None = None,
    ) -> GateOutcome:
        """The gate's decision now; `waiting_since` is when it first waited (for expiry)."""
        ...

    def resolve_indeterminate(
        self, execution: str, artifact: Artifact, block: Block
    ) -> Literal["approve", "reject"] | None: ...


@dataclass
class RunOptions:
    """How to run: where, with what, how wide."""

    workdir: Path
    state_dir: Path
    inputs: Mapping[str, str | int | bool] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    workers: int = max(1, os.cpu_count() or 1)
    dry_run: bool = False
    kill_grace: float = 5.0
    #: When stopped (not cancelled), how long running attempts may go on before they are killed.
    stop_grace: float = 30.0
    base_env: Mapping[str, str] | None = None
    #: Throttle lanes shared by engine processes; None runs without a lane.
    lanes: LanePort | None = None
    #: Called after attempt records are written (and synced, where their effects ask for it)
    #: and before their processes start; a controller publishes the ledger there, so that every
    #: process that starts is on the remote first. If it raises, none of them starts.
    before_start: Callable[[], None] | None = None
    #: Called after the end of such an attempt is in the ledger (a controller publishes the
    #: ledger there, so whoever takes over knows the attempt ended); failures are the
    #: controller's to handle, the run goes on.
    after_effects: Callable[[], None] | None = None
    #: Called after attempts' `attempt-started` records are written (once their processes were
    #: started) and after each attempt's end is in the ledger, for every block whatever its
    #: effects: news for whoever shows the execution while it runs (reconcile publishes the
    #: claim's live trace). It must return at once (reconcile only wakes a thread); whatever
    #: it raises is ignored, the run goes on.
    on_progress: Callable[[], None] | None = None
    #: Called before blocks are taken to start (once per scheduling pass that has a block
    #: ready and a worker free): a controller looks at the operator's stops there (a cancel,
    #: a pause), which set `cancel` or `stop`; nothing starts after a stop it found. Whatever
    #: it raises is ignored (the stops are looked at again before the next start).
    look_before_starting: Callable[[], None] | None = None
    #: Where each block's process runs (foundry.sandbox): None runs it as the engine's user
    #: with the engine's view of the machine (block limits still apply). When the sandbox
    #: cannot run on this host the execution fails with the reason and nothing runs.
    sandbox: Sandbox | None = None
    #: Paths no block may see although the sandbox shows the system (the daemon's config), and
    #: paths of the host shown read-only besides the system (tools the blocks need).
    hidden: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()
    #: The OS user every block runs as (an engine running as root drops to it before the
    #: block starts; the worktree must be the user's): None runs blocks as the engine's user.
    run_as: RunAs | None = None
    #: Called with each `Progress` event (an execution or an attempt started or ended, a gate
    #: waits), in the engine's thread, as it happens: a shell prints it, a daemon logs it. It
    #: must not take long (it holds the run up); whatever it raises is ignored.
    on_event: Callable[[Progress], None] | None = None
    #: Set after `stop` when there is no time left (a second Ctrl-C): running attempts' process
    #: groups are killed at once (SIGKILL) and recorded as interrupted, with no grace period.
    halt: threading.Event | None = None
    #: The claim generation this run holds (a fencing number, DESIGN section 9): stamped on
    #: every ledger record it writes. None outside a claim (`foundry run`).
    generation: int | None = None
    #: Nobody is at a terminal to correct a bad input (reconcile, the daemon, the Action): an
    #: execution whose inputs are wrong is recorded as failed with the reason, instead of the
    #: run raising for a person to fix and retry.
    unattended: bool = False


@dataclass
class ExecutionResult:
    """How far an execution got."""

    execution: str
    status: Status
    blocks: dict[str, str]
    ledger: Path
    reason: str = ""
