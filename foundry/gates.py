"""Gates (DESIGN section 5): approval, check, window, after, command. Each passes, waits or
fails; a gate that expires fails, never passes.

The facts gates need come through ports, filled by `controllers` (the local forge, GitHub) or by
tests: who approved, which checks are green, when another intent last succeeded. Expiry and
timeouts count from when the gate first waited, which the executor reads from the ledger.

A `command` gate runs a policy command taken from the default branch (never from the change
under review): exit 0 passes, exit 75 (EX_TEMPFAIL) waits, anything else fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from foundry.boundary import Artifact, Block
from foundry.boundary._models import AfterGate, ApprovalGate, CheckGate, CommandGate, WindowGate
from foundry.executor import GateOutcome

EX_TEMPFAIL = 75


@dataclass(frozen=True)
class ApprovalVote:
    """One recorded decision for a gate (or for an indeterminate block: index -1)."""

    approver: str
    decision: Literal["approve", "reject"]
    at: float


class Approvals(Protocol):
    """Decisions recorded for (execution, block, gate index); index -1 resolves an
    indeterminate block."""

    def votes(self, execution: str, block: str, index: int) -> Sequence[ApprovalVote]: ...


class Teams(Protocol):
    """Team membership, for approvals `from: [team:x]`."""

    def is_member(self, user: str, team: str) -> bool: ...


class Checks(Protocol):
    """Forge check results on the commit an execution runs."""

    def state(self, name: str) -> Literal["success", "failure", "pending"] | None: ...


class History(Protocol):
    """When an intent's execution last succeeded (seconds since the epoch), if ever."""

    def last_success(self, intent: str) -> float | None: ...


@dataclass
class Context:
    """What the gates of one execution are judged against."""

    initiator: str | None = None
    approvals: Approvals | None = None
    teams: Teams | None = None
    checks: Checks | None = None
    history: History | None = None
    policy_dir: Path | None = None
    policy_env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class StaticApprovals:
    """Approvals held in memory (tests, or a forge adapter's snapshot)."""

    votes_by_gate: dict[tuple[str, str, int], list[ApprovalVote]] = field(default_factory=dict)

    def add(self, execution: str, block: str, index: int, vote: ApprovalVote) -> None:
        self.votes_by_gate.setdefault((execution, block, index), []).append(vote)

    def votes(self, execution: str, block: str, index: int) -> Sequence[ApprovalVote]:
        return self.votes_by_gate.get((execution, block, index), [])


def _human(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


class GateEvaluator:
    """Evaluates the gates of blocks against a `Context`; implements the executor's `Gates`."""

    def __init__(self, context: Context) -> None:
        self.context = context

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
        gate = block.gates[index]
        since = waiting_since if waiting_since is not None else now
        if isinstance(gate, ApprovalGate):
            return self._approval(execution, block, index, gate, now=now, since=since)
        if isinstance(gate, CheckGate):
            return self._check(gate, now, since)
        if isinstance(gate, WindowGate):
            return self._window(gate, now)
        if isinstance(gate, AfterGate):
            return self._after(gate, now)
        return self._command(gate)

    def resolve_indeterminate(
        self, execution: str, artifact: Artifact, block: Block
    ) -> Literal["approve", "reject"] | None:
        approvals = self.context.approvals
        votes = list(approvals.votes(execution, block.id, -1)) if approvals else []
        owners = artifact.spec.intent.owners
        allowed = [v for v in votes if self._may_approve(v.approver, owners)]
        if any(v.decision == "reject" for v in allowed):
            return "reject"
        if any(v.decision == "approve" for v in allowed):
            return "approve"
        return None

    # -- kinds -----------------------------------------------------------------------------

    def _may_approve(self, user: str, allowed: Sequence[str]) -> bool:
        for entry in allowed:
            if entry.startswith("team:"):
                teams = self.context.teams
                if teams is not None and teams.is_member(user, entry.removeprefix("team:")):
                    return True
            elif entry == user:
                return True
        return False

    def _approval(
        self,
        execution: str,
        block: Block,
        index: int,
        gate: ApprovalGate,
        *,
        now: float,
        since: float,
    ) -> GateOutcome:
        if gate.expires_seconds is not None and now > since + gate.expires_seconds:
            return GateOutcome(
                "failed",
                f"expired at {_human(since + gate.expires_seconds)} "
                f"without {gate.quorum} approval(s)",
            )
        approvals = self.context.approvals
        votes = list(approvals.votes(execution, block.id, index)) if approvals else []
        valid: dict[str, ApprovalVote] = {}
        ignored: list[str] = []
        for vote in sorted(votes, key=lambda v: v.at):
            if gate.forbid_self and vote.approver == self.context.initiator:
                ignored.append(f"{vote.approver} (may not approve their own change)")
            elif not self._may_approve(vote.approver, gate.from_):
                ignored.append(f"{vote.approver} (not in {', '.join(gate.from_)})")
            else:
                valid[vote.approver] = vote  # a later vote of the same person replaces theirs
        rejecters = sorted(a for a, v in valid.items() if v.decision == "reject")
        if rejecters:
            return GateOutcome("failed", f"rejected by {', '.join(rejecters)}")
        approvers = sorted(a for a, v in valid.items() if v.decision == "approve")
        note = f"; ignored: {', '.join(ignored)}" if ignored else ""
        if len(approvers) >= gate.quorum:
            return GateOutcome("passed", f"approved by {', '.join(approvers)}{note}")
        return GateOutcome(
            "waiting",
            f"{len(approvers)} of {gate.quorum} approval(s) from {', '.join(gate.from_)}{note}",
        )

    def _check(self, gate: CheckGate, now: float, since: float) -> GateOutcome:
        checks = self.context.checks
        states = {n: (checks.state(n) if checks else None) for n in gate.names}
        failed = sorted(n for n, s in states.items() if s == "failure")
        if failed:
            return GateOutcome("failed", f"check(s) failed: {', '.join(failed)}")
        pending = sorted(n for n, s in states.items() if s != "success")
        if not pending:
            return GateOutcome("passed", f"green: {', '.join(sorted(states))}")
        if gate.timeout_seconds is not None and now > since + gate.timeout_seconds:
            return GateOutcome("failed", f"timed out waiting for: {', '.join(pending)}")
        return GateOutcome("waiting", f"waiting for check(s): {', '.join(pending)}")

    def _window(self, gate: WindowGate, now: float) -> GateOutcome:
        zone = ZoneInfo(gate.timezone)
        local = datetime.fromtimestamp(now, zone)
        if croniter.match(gate.cron, local.replace(tzinfo=None)):
            return GateOutcome("passed", f"inside the window '{gate.cron}' ({gate.timezone})")
        opens = croniter(gate.cron, local).get_next(datetime)
        return GateOutcome(
            "waiting",
            f"outside the window '{gate.cron}' ({gate.timezone}); it opens "
            f"{opens.strftime('%Y-%m-%d %H:%M %Z')}",
        )

    def _after(self, gate: AfterGate, now: float) -> GateOutcome:
        history = self.context.history
        last = history.last_success(gate.intent) if history else None
        if last is None:
            return GateOutcome("waiting", f"{gate.intent} has not succeeded yet")
        if gate.within_seconds is not None and now - last > gate.within_seconds:
            return GateOutcome(
                "waiting", f"{gate.intent} last succeeded {_human(last)}, longer ago than allowed"
            )
        return GateOutcome("passed", f"{gate.intent} succeeded {_human(last)}")

    def _command(self, gate: CommandGate) -> GateOutcome:
        where = self.context.policy_dir
        if where is None:
            return GateOutcome("waiting", "no policy checkout of the default branch to run it in")
        try:
            proc = subprocess.run(
                gate.run,
                cwd=where,
                env=dict(self.context.policy_env),
                capture_output=True,
                timeout=gate.timeout_seconds,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return GateOutcome("failed", f"policy command timed out after {gate.timeout_seconds}s")
        except OSError as exc:
            return GateOutcome("failed", f"policy command could not start: {exc.strerror}")
        said = proc.stdout.decode(errors="replace").strip().splitlines()
        detail = f": {said[-1][:200]}" if said else ""
        if proc.returncode == 0:
            return GateOutcome("passed", f"policy command passed{detail}")
        if proc.returncode == EX_TEMPFAIL:
            return GateOutcome("waiting", f"policy command says wait{detail}")
        return GateOutcome(
            "failed", f"policy command failed with exit code {proc.returncode}{detail}"
        )
