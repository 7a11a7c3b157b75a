"""What an execution's ledger says so far, replayed record by record (recovery reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from foundry.ledger import parse_rfc3339


@dataclass
class Replay:
    """The state of an execution after its ledger's records."""

    planned: bool = False
    finished: str | None = None
    status: dict[str, str] = field(default_factory=dict)
    #: Why each finished block ended as it did (when its record says).
    reasons: dict[str, str] = field(default_factory=dict)
    #: The highest attempt number each block has used (a new attempt takes the next one).
    attempts: dict[str, int] = field(default_factory=dict)
    #: Attempts that started and have no end yet, by (block, attempt number).
    open_attempts: set[tuple[str, int]] = field(default_factory=set)
    indeterminate: set[str] = field(default_factory=set)
    gates: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    waiting_since: dict[tuple[str, int], float] = field(default_factory=dict)


def replay(records: list[dict[str, Any]]) -> Replay:
    state = Replay()
    for r in records:
        kind = r["type"]
        if kind == "planned":
            state.planned = True
        elif kind == "attempt-started":
            block, number = r["block"], r["attempt"]
            state.attempts[block] = max(state.attempts.get(block, 0), number)
            state.open_attempts.add((block, number))
        elif kind == "attempt-finished":
            state.open_attempts.discard((r["block"], r["attempt"]))
        elif kind == "block-finished":
            state.status[r["block"]] = r["status"]
            state.reasons[r["block"]] = str(r.get("reason") or "")
            state.indeterminate.discard(r["block"])
        elif kind == "indeterminate":
            state.indeterminate.add(r["block"])
            state.open_attempts.discard((r["block"], r["attempt"]))
        elif kind == "gate":
            state.gates[(r["block"], r["index"])] = (r["decision"], r["reason"])
            if r["decision"] == "waiting":
                state.waiting_since.setdefault((r["block"], r["index"]), parse_rfc3339(r["at"]))
        elif kind == "execution-finished":
            state.finished = r["status"]
    return state
