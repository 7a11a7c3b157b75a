"""Finishing an attempt whose process ended: the verdict of its limits, its declared outputs,
its outcome in the ledger, and its block ended, or tried again after the retry's backoff (an
attempt that was stopped is interrupted, by the recovery rules)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from foundry.boundary import Block
from foundry.executor._attempt import Worktree, _Attempt, attempt_facts, collect_outputs
from foundry.executor._record import Recorder
from foundry.executor._recovery import interrupt
from foundry.executor._replay import Replay
from foundry.executor._types import SYNC_EFFECTS
from foundry.faults import LIVE_GROUPS, crash_point


def finish_attempt(
    rec: Recorder,
    state: Replay,
    att: _Attempt,
    not_before: dict[str, float],
    *,
    worktree: Worktree,
    after_effects: Callable[[], None] | None,
) -> None:
    """The attempt's end is in the ledger (a retry sets when it may start, in `not_before`),
    then `after_effects` hears of it if its effects ask for that."""
    crash_point("process-exited", att.block.id)
    LIVE_GROUPS.discard(att.proc.pid)
    if att.launch is not None:
        code = att.exit_code
        att.limit = att.launch.verdict(code) if code else None
        if att.limit is not None:
            att.capture.feed(f"\nfoundry: {att.limit}\n".encode())
        att.launch.close()
    att.capture.close()
    block = att.block
    _end_attempt(rec, state, att, not_before, worktree)
    if block.effects in SYNC_EFFECTS and after_effects is not None:
        after_effects()
    rec.progress()


def _end_attempt(
    rec: Recorder,
    state: Replay,
    att: _Attempt,
    not_before: dict[str, float],
    worktree: Worktree,
) -> None:
    block = att.block
    code = att.exit_code
    if att.stopped and code != 0:
        interrupt(rec, state, block, att.number, seen=att)
        why = "stopped" if att.halted else "stopped after the grace period"
        ended = "indeterminate" if block.id in state.indeterminate else "interrupted"
        took = time.monotonic() - att.started
        rec.tell(
            "block-ended",
            block=block.id,
            attempt=att.number,
            status=ended,
            reason=why,
            seconds=took,
        )
        return
    if att.cancelled:
        outcome = "cancelled"
    elif att.timed_out:
        outcome = "timeout"
    else:
        outcome = "succeeded" if code == 0 else "failed"
    outputs: list[dict[str, Any]] = []
    reason = ""
    if outcome == "succeeded":
        outputs, missing = _outputs(block, worktree)
        if missing:
            outcome = "failed"
            reason = "declared output(s) missing, outside the worktree or hard links: " + ", ".join(
                missing
            )
    if outcome == "timeout":
        reason = f"timed out after {block.timeout_seconds}s; its process group was killed"
    if outcome == "failed" and att.limit is not None:
        reason = att.limit
    rec.record(
        {
            "type": "attempt-finished",
            "block": block.id,
            "attempt": att.number,
            "outcome": outcome,
            **attempt_facts(att),
            "outputs": outputs,
            "reason": reason,
        }
    )
    ran: dict[str, Any] = {"seconds": time.monotonic() - att.started, "attempt": att.number}
    if outcome == "succeeded":
        rec.finish_block(state, block.id, "succeeded", **ran)
    elif outcome == "cancelled":
        rec.finish_block(state, block.id, "cancelled", "cancelled", **ran)
    elif (
        outcome == "failed"
        and code is not None
        and code in block.retry.on_exit_codes
        and att.number <= block.retry.max
    ):
        not_before[block.id] = rec.clock.now() + block.retry.backoff_seconds
        again = f"exit code {code}; it runs again after {block.retry.backoff_seconds}s"
        rec.tell("block-ended", block=block.id, status="failed", reason=again, **ran)
    else:
        why = reason or (f"exit code {code}" if code is not None else outcome)
        rec.finish_block(state, block.id, "failed", why, **ran)


def _outputs(block: Block, worktree: Worktree) -> tuple[list[dict[str, Any]], list[str]]:
    if not block.outputs:
        return [], []
    return collect_outputs(worktree.cwd(block), worktree.root(), block.outputs)
