"""What a run tells whoever watches it, as it happens: progress events, in plain words.

The engine calls `RunOptions.on_event` with a `Progress` when an execution starts (or resumes)
and ends, when a block's attempt starts and ends (or a block ends without one: skipped, a gate
failed), and when a gate makes it wait. Every event names the execution, its intent and its
event, so a line of output, or of a log, says what it is about on its own. How an event is
shown is the shell's business (`foundry/cli/_progress.py`; the daemon's log); `describe` is the
plain one-line wording both start from, `next_step` what to do about a wait.

Light on purpose (the standard library only): `foundry reconcile` and the daemon name executions
with it on passes that never import the engine.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from foundry.boundary._models import Gate

Kind = Literal["execution-started", "execution-ended", "block-started", "block-ended", "waiting"]
#: Where the execution is judged, for `next_step`: `foundry run` (no forge) or a reconciler
#: (`foundry reconcile`, the daemon, the Action).
Where = Literal["run", "reconcile"]


@dataclass(frozen=True)
class Progress:
    """One thing that happened to an execution."""

    kind: Kind
    execution: str
    intent: str
    event_type: str
    event_key: str
    #: When (Unix time, the engine's clock).
    at: float
    block: str | None = None
    attempt: int | None = None
    #: execution-started: `started` or `resumed`; the ends: the status or the attempt's outcome.
    status: str | None = None
    #: The ends: how long the attempt (or this run of the execution) took, in seconds.
    seconds: float | None = None
    reason: str = ""
    #: waiting: the gate's index in the block (-1: an indeterminate block waits for an owner).
    gate_index: int | None = None
    gate: Gate | None = None
    #: waiting: on whom or what it waits, in words.
    waits_on: str = ""

    @property
    def label(self) -> str:
        """`exe-… (intent, event key)`: the execution with its intent and event."""
        return f"{self.execution} ({self.intent}, {self.event_type} {short_key(self.event_key)})"

    def to_json(self) -> dict[str, Any]:
        """The stable fields of the event (JSON log lines: docs/daemon.md, "Logs")."""
        return {
            "event": self.kind,
            "execution": self.execution,
            "intent": self.intent,
            "eventType": self.event_type,
            "eventKey": self.event_key,
            "block": self.block,
            "attempt": self.attempt,
            "status": self.status,
            "seconds": round(self.seconds, 3) if self.seconds is not None else None,
            "reason": self.reason or None,
            "gate": None
            if self.kind != "waiting"
            else {
                "index": self.gate_index,
                "kind": self.gate.kind if self.gate is not None else "indeterminate",
            },
            "waitingOn": self.waits_on or None,
        }


def short_key(key: str) -> str:
    """An event key short enough for a line: digests and commits to 12 hex digits."""
    name, at, rest = key.rpartition("@")
    if at:
        return f"{name}@{short_key(rest)}"
    if key.startswith("sha256:"):
        return key[:19]
    if len(key) == 40 and all(c in "0123456789abcdef" for c in key):
        return key[:12]
    return key


def one_line(text: str) -> str:
    """`text` on one line: a reason with line breaks (an error's, a policy command's) never
    starts a line of its own in a log (where `::` could start a CI workflow command)."""
    return " ".join(text.split())


def duration(seconds: float) -> str:
    """`0.41s`, `12.3s`, `4m05s`, `2h03m`."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def describe(event: Progress) -> str:
    """The event as one plain line, e.g.
    `exe-84c6… (report, apply sha256:1a2b…) make: succeeded in 0.41s`."""
    where = event.label + (f" {event.block}" if event.block is not None else "")
    reason = one_line(event.reason)
    tail = f" ({reason})" if reason else ""
    took = f" in {duration(event.seconds)}" if event.seconds is not None else ""
    if event.kind == "execution-started":
        return f"{where}: {event.status or 'started'}"
    if event.kind == "block-started":
        again = f" (attempt {event.attempt})" if event.attempt and event.attempt > 1 else ""
        return f"{where}: started{again}"
    if event.kind == "waiting":
        if event.gate is None:
            return f"{where}: indeterminate; {reason}"
        return f"{where}: waiting on gate {event.gate_index} ({event.gate.kind}): {reason}"
    return f"{where}: {event.status}{took}{tail}"


@dataclass(frozen=True)
class NextStep:
    """What unblocks a waiting execution: who, and the exact command where there is one."""

    who: str
    command: str | None = None
    #: What to do with what the command wrote, or when to look again.
    then: str = ""

    def text(self) -> str:
        """On one line (see `one_line`)."""
        if self.command is None:
            return one_line(f"waits on {self.who}" + (f"; {self.then}" if self.then else ""))
        return one_line(
            f"{self.who}: {self.command}" + (f"; then {self.then}" if self.then else "")
        )


def next_step(
    event: Progress, *, where: Where, branch: str | None = None, again: str | None = None
) -> NextStep | None:
    """For a `waiting` event: on whom it waits and the command that unblocks it. `branch` is
    the default branch (Approvals count once merged there); `again` the command that runs the
    execution again (`foundry run …`), for what a later run judges anew."""
    if event.kind != "waiting" or event.block is None:
        return None
    merge = f"commit it and merge it to {branch or 'the default branch'}"
    rerun = f"`{again}` judges it again" if again else "the next run judges it again"
    recheck = "the next pass judges it again"
    later = recheck if where == "reconcile" else rerun
    gate = event.gate
    if gate is None:  # an indeterminate block: an owner decides
        if where == "run":
            return NextStep(
                event.waits_on,
                then="`foundry reconcile`, the daemon and the Action read the "
                "Approval that resolves it; `foundry run` does not",
            )
        command = resolve_command(event.execution, event.block)
        return NextStep(
            f"to continue ({event.waits_on}; add --reject to fail it instead)", command, merge
        )
    if gate.kind == "approval":
        if where == "run":  # its reason says who judges it: `foundry run` cannot
            return NextStep(event.waits_on)
        command = approve_command(event.execution, event.block, event.gate_index or 0)
        return NextStep(f"to approve ({event.waits_on})", command, merge)
    if gate.kind in ("check", "after") and where == "run":
        return NextStep(event.waits_on)  # as for approvals
    return NextStep(event.waits_on, then=later)


def approve_command(execution: str, block: str, index: int) -> str:
    """The command that writes an Approval of gate `index` of `block` (it counts once merged to
    the default branch)."""
    gate = f"{block}/{index}"
    return shlex.join(
        ["alloy", "approve", execution, "--gate", gate, "--comment", "<why you approve>"]
    )


def resolve_command(execution: str, block: str) -> str:
    """The command that writes an owner's decision on an indeterminate block (approve: it
    counts as done; add `--reject` to fail the execution instead)."""
    comment = ("--comment", "<what you checked>")
    return shlex.join(["alloy", "approve", execution, "--gate", block, "--resolve", *comment])


def waits_on(gate: Gate | None, *, owners: list[str]) -> str:
    """On whom or what a gate (None: an indeterminate block) waits, in words."""
    if gate is None:
        return f"an owner of the intent: {', '.join(owners)}"
    if gate.kind == "approval":
        who = ", ".join(gate.from_)
        self_ = "; not whoever started it" if gate.forbid_self else ""
        return f"{gate.quorum} approval(s) from {who}{self_}"
    if gate.kind == "check":
        return f"the check run(s) {', '.join(gate.names)} on the commit it runs at"
    if gate.kind == "window":
        return f"the clock: the window '{gate.cron}' ({gate.timezone})"
    if gate.kind == "after":
        return f"a recent success of intent {gate.intent}"
    return f"the policy command {shlex.join(gate.run)} (exit 0 passes, 75 waits)"
