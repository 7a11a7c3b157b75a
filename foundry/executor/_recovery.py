"""Recovery (DESIGN section 5): an attempt that never ended on its own (the engine crashed, or
was stopped) runs again when its effects allow, or makes its block indeterminate; an
indeterminate block waits until an approval resolves it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foundry.boundary import Block
from foundry.executor._attempt import _Attempt, attempt_facts
from foundry.executor._record import Recorder
from foundry.executor._replay import Replay
from foundry.executor._types import RETRY_AFTER_CRASH, Gates


def interrupt(
    rec: Recorder, state: Replay, block: Block, attempt: int, *, seen: _Attempt | None = None
) -> None:
    """An attempt that never ended on its own (the engine crashed, or was stopped): it runs
    again if its effects allow; otherwise the execution becomes indeterminate. `seen` is the
    attempt when this engine watched it end (its exit code and output are known)."""
    if block.effects in RETRY_AFTER_CRASH:
        record: dict[str, Any] = {
            "type": "attempt-finished",
            "block": block.id,
            "attempt": attempt,
            "outcome": "interrupted",
            "reason": "the engine stopped during this attempt; it runs again "
            f"(effects: {block.effects})",
        }
        if seen is not None:
            record.update(attempt_facts(seen), outputs=[])
        rec.record(record)
        return
    rec.record(
        {
            "type": "indeterminate",
            "block": block.id,
            "attempt": attempt,
            "reason": f"the engine stopped during an attempt with effects {block.effects}; "
            "whether it took effect is unknown, so nothing more runs until it is approved "
            "(continue) or rejected (fail)",
        },
        sync=True,
    )
    state.indeterminate.add(block.id)


def recover(rec: Recorder, state: Replay, blocks: Mapping[str, Block]) -> None:
    """Every attempt the ledger left open ends now, as interrupted (or indeterminate)."""
    for block_id, attempt in sorted(state.open_attempts):
        if block_id in state.status:  # ended otherwise (a later attempt, an approval)
            rec.record(
                {
                    "type": "attempt-finished",
                    "block": block_id,
                    "attempt": attempt,
                    "outcome": "interrupted",
                    "reason": "the engine stopped during this attempt; the block "
                    f"ended {state.status[block_id]} otherwise",
                }
            )
            continue
        interrupt(rec, state, blocks[block_id], attempt)
    state.open_attempts.clear()


def resolve_indeterminate(
    rec: Recorder, state: Replay, blocks: Mapping[str, Block], gates: Gates | None
) -> str | None:
    """Indeterminate blocks that an approval resolved end as it says; the first one that no
    approval resolved yet is returned (its wait told, the ledger synced): the run parks on it."""
    for block_id in sorted(state.indeterminate):
        block = blocks[block_id]
        decision = (
            gates.resolve_indeterminate(rec.execution, rec.artifact, block) if gates else None
        )
        if decision is None:
            rec.tell_wait(block, -1, "it waits for an owner to approve (continue) or reject")
            rec.ledger.sync()
            return block_id
        rec.record({"type": "resolved", "block": block_id, "decision": decision})
        if decision == "approve":
            rec.finish_block(state, block_id, "succeeded", "approved after an interruption")
        else:
            rec.finish_block(state, block_id, "failed", "rejected after an interruption")
        state.indeterminate.discard(block_id)
    return None
