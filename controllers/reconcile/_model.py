"""What reconcile is told (settings, a dispatched run) and what a pass reports."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controllers.gitops import remote_url
from foundry.progress import one_line, short_key
from foundry.sandbox import RunAs, Sandbox

#: Statuses after which an execution never runs again (the planner's `FINISHED`; a test keeps
#: the two equal).
FINISHED = ("succeeded", "failed", "cancelled", "skipped")

FORGE_REF = "refs/alloy/forge"
DEFAULT_TRACES = "alloy/traces"
#: Executions whose status is one of these are parked: re-evaluated on a later pass.
PARKED = ("waiting", "indeterminate", "planned", "running", "queued", "stopped")
STATE_FILE = "reconcile.json"


@dataclass
class Settings:
    """How to reconcile one repository."""

    repo: str
    branch: str | None = None
    state_dir: Path | None = None
    #: Claim lease: a holder that stops renewing loses the claim after this long.
    lease: float = 60.0
    #: When stopped, how long running blocks may go on before they are killed.
    grace: float = 30.0
    workers: int | None = None
    #: Parked executions (gates, lanes) are re-evaluated at least this often, even when the
    #: remote did not move (time windows open, policy commands change their mind).
    recheck: float = 60.0
    #: A run asked for outside the default branch (a `workflow_dispatch`): planned with the
    #: branch's own requests, as if it were a Request document pinned to the current digest.
    dispatch: Dispatch | None = None
    #: Where each block runs (foundry.sandbox); None: as this user, unconfined. Paths no block
    #: may see (the daemon's config) and paths of the host shown read-only to every block.
    sandbox: Sandbox | None = None
    hidden: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()
    #: The OS user its blocks run as (this process runs as root; docs/security.md): its
    #: state directory becomes of that user's group (readable, never writable, by it) and each
    #: worktree that user's own. None: blocks run as this process's user.
    run_as: RunAs | None = None
    #: The repository's own secrets (name -> value), read by whoever configures it: its blocks
    #: get what they declare from here only. None: from this process's environment.
    secrets: Callable[[], Mapping[str, str]] | None = None


@dataclass(frozen=True)
class Dispatch:
    """A request made by someone the forge vouches for (who started a workflow), not merged."""

    name: str
    intent: str
    requested_by: str
    reason: str
    inputs: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass
class TraceInfo:
    """What the traces index knows of one execution."""

    status: str
    intent: str
    artifact: str
    event: str
    finished_at: float | None
    key: str = ""
    #: The digest of the artifact it runs (an apply or a request of another one is superseded).
    digest: str = ""


@dataclass
class PassReport:
    """What one pass did."""

    repo: str
    moved: bool = False
    started: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    finished: dict[str, str] = field(default_factory=dict)
    not_claimed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    #: Finished executions whose trace or check run this pass published from their claim
    #: (their holder could not: it crashed, or its publication failed).
    repaired: list[str] = field(default_factory=list)
    #: Executions this pass stopped or could not finish; a later pass takes them up again.
    parked: dict[str, str] = field(default_factory=dict)
    #: Executions a pause keeps from starting or going on (`foundry pause`), and why.
    held: dict[str, str] = field(default_factory=dict)
    #: Executions a cancel or a newer artifact or request ended (`cancelled`, `skipped`), and why.
    ended: dict[str, str] = field(default_factory=dict)
    committed: str | None = None
    #: Paths of the trace files this pass committed (or kept in the outbox) on the traces branch.
    traces: list[str] = field(default_factory=list)
    published: int = 0
    delivered: int = 0
    outbox: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Each execution the pass dealt with, with its intent and event: `exe-… (intent, event key)`.
    names: dict[str, dict[str, str]] = field(default_factory=dict)
    #: What each execution that waits waits for, and the command that unblocks it.
    waiting: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def label(self, execution: str) -> str:
        """`exe-… (intent, event key)`: an execution as every line names it."""
        name = self.names.get(execution)
        if name is None:
            return execution
        return f"{execution} ({name['intent']}, {name['eventType']} {short_key(name['eventKey'])})"

    def _waits(self, execution: str) -> list[tuple[str, bool]]:
        out = []
        for wait in self.waiting.get(execution, []):
            step = f"; {wait['next']}" if wait.get("next") else ""
            where = self.label(execution) + (f" {wait['block']}" if wait["block"] else "")
            out.append((f"{where}: {one_line(wait['reason'])}{step}", False))
        return out

    def lines(self) -> list[tuple[str, bool]]:
        """What happened, one line each, with whether the line reports a problem (the CLI prints
        those on stderr; the daemon logs them all)."""
        out = [(f"refused: {line}", True) for line in self.refused]
        for execution, status in self.finished.items():
            verb = "started" if execution in self.started else "resumed"
            out.append((f"{self.label(execution)}: {verb}, {status}", False))
            out += self._waits(execution)
        out += [
            (f"{self.label(e)}: not claimed ({why})", False) for e, why in self.not_claimed.items()
        ]
        out += [
            (f"{self.label(e)}: repaired (trace and check run published from its claim)", False)
            for e in self.repaired
        ]
        out += [
            (f"{self.label(e)}: parked ({why}); a later pass takes it up", True)
            for e, why in self.parked.items()
        ]
        out += [(f"{self.label(e)}: held ({why})", False) for e, why in self.held.items()]
        out += [(f"{self.label(e)}: ended ({why})", False) for e, why in self.ended.items()]
        if self.committed:
            out.append((f"traces committed: {self.committed[:12]}", False))
        if self.published:
            out.append((f"check runs published: {self.published}", False))
        if self.delivered:
            out.append((f"outbox: {self.delivered} delivered", False))
        if self.outbox:
            out.append((f"outbox: {self.outbox} waiting to be delivered", True))
        out += [(f"error: {error}", True) for error in self.errors]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "moved": self.moved,
            "started": self.started,
            "resumed": self.resumed,
            "finished": self.finished,
            "notClaimed": self.not_claimed,
            "skipped": self.skipped,
            "refused": self.refused,
            "repaired": self.repaired,
            "parked": self.parked,
            "held": self.held,
            "ended": self.ended,
            "committed": self.committed,
            "traces": self.traces,
            "published": self.published,
            "delivered": self.delivered,
            "outbox": self.outbox,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "executions": self.names,
            "waiting": self.waiting,
        }


def state_dir_for(repo: str) -> Path:
    """`$FOUNDRY_STATE/<hash>`, else `$XDG_STATE_HOME/foundry/reconcile/<hash of the remote>`."""
    key = hashlib.sha256(remote_url(repo).encode()).hexdigest()[:16]
    explicit = os.environ.get("FOUNDRY_STATE")
    if explicit:
        return Path(explicit) / "reconcile" / key
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "foundry" / "reconcile" / key
