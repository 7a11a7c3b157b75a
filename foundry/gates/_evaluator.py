"""Each gate kind judged against a `Context`: passes, waits or fails (docs/foundry.md, "Gates").

Expiry and timeouts count from `waiting_since`, when the gate first waited (from the ledger,
which travels with the execution's claim). An approval counts against a deadline by when it
landed (`ApprovalVote.at`), not by when someone first looked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from foundry.boundary import Artifact, Block
from foundry.boundary._models import AfterGate, ApprovalGate, CheckGate, CommandGate, WindowGate
from foundry.executor import GateOutcome
from foundry.gates._command import PolicyUnavailable, minimal_env, run_policy
from foundry.gates._ports import ApprovalVote, Context, Unavailable, identities


def _human(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
        cannot = self.context.unjudged.get(gate.kind)
        if cannot is not None:
            return GateOutcome("waiting", cannot)
        try:
            if isinstance(gate, ApprovalGate):
                return self._approval(execution, block, index, gate, now=now, since=since)
            if isinstance(gate, CheckGate):
                return self._check(gate, now, since)
            if isinstance(gate, WindowGate):
                return self._window(gate, now)
            if isinstance(gate, AfterGate):
                return self._after(gate, now)
            return self._command(execution, artifact, block, index, gate)
        except Unavailable as exc:  # a missing fact decides nothing: judged again later
            return GateOutcome("waiting", f"cannot be judged for now: {exc}")

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
        approvals = self.context.approvals
        votes = list(approvals.votes(execution, block.id, index)) if approvals else []
        deadline = since + gate.expires_seconds if gate.expires_seconds is not None else None
        expired = deadline is not None and now > deadline
        late: list[str] = []
        if expired:
            # Judged by when each decision landed: what landed before the deadline counts,
            # however late a pass first saw it.
            assert deadline is not None
            late = sorted({v.approver for v in votes if v.at > deadline})
            votes = [v for v in votes if v.at <= deadline]
        starters = self.context.started_by()
        valid: dict[str, ApprovalVote] = {}
        ignored: list[str] = []
        for vote in sorted(votes, key=lambda v: v.at):
            if gate.forbid_self and identities(vote.approver) & starters:
                ignored.append(f"{vote.approver} (may not approve their own change)")
            elif not self._may_approve(vote.approver, gate.from_):
                ignored.append(f"{vote.approver} (not in {', '.join(gate.from_)})")
            else:
                valid[vote.approver] = vote  # a later vote of the same person replaces theirs
        rejecters = sorted(a for a, v in valid.items() if v.decision == "reject")
        if rejecters:
            return GateOutcome("failed", f"rejected by {', '.join(rejecters)}")
        approvers = sorted(a for a, v in valid.items() if v.decision == "approve")
        note = f"; ignored: {', '.join(dict.fromkeys(ignored))}" if ignored else ""
        if len(approvers) >= gate.quorum:
            return GateOutcome("passed", f"approved by {', '.join(approvers)}{note}")
        if expired:
            assert deadline is not None
            after = f"; landed after it: {', '.join(late)}" if late else ""
            return GateOutcome(
                "failed",
                f"expired at {_human(deadline)} with {len(approvers)} of {gate.quorum} "
                f"approval(s) from {', '.join(gate.from_)}{note}{after}",
            )
        until = f" until {_human(deadline)}" if deadline is not None else ""
        return GateOutcome(
            "waiting",
            f"{len(approvers)} of {gate.quorum} approval(s) from {', '.join(gate.from_)}"
            f"{until}{note}",
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
        try:
            opens = croniter(gate.cron, local).get_next(datetime)
        except CroniterBadDateError:
            return GateOutcome(
                "failed",
                f"the window '{gate.cron}' ({gate.timezone}) never opens: no date matches it; "
                "`alloy check` refuses such a cron, so this artifact was not compiled by it",
            )
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

    def _command(
        self, execution: str, artifact: Artifact, block: Block, index: int, gate: CommandGate
    ) -> GateOutcome:
        source = self.context.policy_dir
        if source is None:
            return GateOutcome("waiting", "no policy checkout of the default branch to run it in")
        try:
            where = source if isinstance(source, Path) else source()
        except PolicyUnavailable as exc:
            return GateOutcome("waiting", f"no checkout of the default branch for now: {exc}")
        env = minimal_env(self.context.policy_env)
        env.update(
            ALLOY_EXECUTION=execution,
            ALLOY_INTENT=artifact.spec.intent.name,
            ALLOY_ARTIFACT=artifact.metadata.name,
            ALLOY_ARTIFACT_DIGEST=artifact.digest,
            ALLOY_BLOCK=block.id,
            ALLOY_GATE_INDEX=str(index),
        )
        if self.context.commit:
            env["ALLOY_COMMIT"] = self.context.commit
        return run_policy(
            list(gate.run),
            where=where,
            env=env,
            timeout=gate.timeout_seconds,
            stop=self.context.stop,
            confine=self.context.policy_confine,
        )
