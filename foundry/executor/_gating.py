"""A block's gates judged before it starts, in order: each decision recorded when it changes (a
pass is final for the execution), a wait told, a failure the block's end."""

from __future__ import annotations

from typing import Literal

from foundry._process import redact_text
from foundry.boundary import Block
from foundry.executor._record import Recorder
from foundry.executor._replay import Replay
from foundry.executor._types import GateOutcome, Gates

#: The longest gate reason a ledger keeps (a policy command's last line can be long).
REASON_CHARS = 1000


def gates_pass(
    rec: Recorder, state: Replay, block: Block, gates: Gates | None
) -> Literal["passed", "waiting", "failed"]:
    """'passed', 'waiting' or 'failed' for all of a block's gates, in order."""
    for index, gate in enumerate(block.gates):
        if state.gates.get((block.id, index), ("",))[0] == "passed":
            continue  # a gate's decision, once recorded, is final for this execution
        outcome = _judge(rec, state, block, index, gates)
        # Masked whole, then cut: a cut first could leave the start of a secret's form.
        reason = _cut(redact_text(outcome.reason, rec.secret_values))
        said = (outcome.decision, reason)
        if state.gates.get((block.id, index)) != said:
            rec.record(
                {
                    "type": "gate",
                    "block": block.id,
                    "index": index,
                    "kind": gate.kind,
                    "decision": outcome.decision,
                    "reason": reason,
                }
            )
            state.gates[(block.id, index)] = said
            if outcome.decision == "waiting":
                state.waiting_since.setdefault((block.id, index), rec.clock.now())
        if outcome.decision == "waiting":
            rec.tell_wait(block, index, reason)
        if outcome.decision != "passed":
            if outcome.decision == "failed":
                rec.finish_block(
                    state,
                    block.id,
                    "failed",
                    f"gate {index} ({gate.kind}) failed: {outcome.reason}",
                )
            return outcome.decision
    return "passed"


def _judge(
    rec: Recorder, state: Replay, block: Block, index: int, gates: Gates | None
) -> GateOutcome:
    """One gate's decision now. A gate that cannot be judged (its evaluation raised) fails,
    with the reason: it never takes the engine, or any other execution, down."""
    gate = block.gates[index]
    if gates is None:
        return GateOutcome("waiting", f"no gate evaluator for {gate.kind} gates")
    try:
        return gates.evaluate(
            rec.execution,
            rec.artifact,
            block,
            index,
            now=rec.clock.now(),
            waiting_since=state.waiting_since.get((block.id, index)),
        )
    except Exception as exc:  # noqa: BLE001 - any failure to judge is this gate's failure
        return GateOutcome("failed", f"the gate could not be judged: {type(exc).__name__}: {exc}")


def _cut(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"
