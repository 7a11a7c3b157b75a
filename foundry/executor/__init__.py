"""The executor: an artifact's block DAG for one event, as processes, recorded in the ledger.

A run is resumable: everything it does is in the execution's ledger first, and a later run (a
new process) replays the ledger, applies the recovery rules (DESIGN section 5), and goes on.
Completed blocks never run again. An attempt that started and never finished is retried only
when its effects are `none` or `idempotent`; otherwise the execution becomes `indeterminate`
and runs nothing more until that block is resolved by an approval.

Modules: `_types` (options, results, the gate port), `_inputs` (input values), `_replay` (the
ledger replayed), `_engine` (the run, coordinated), `_record` (what a run writes in its ledger
and tells), `_recovery` (attempts that never ended, indeterminate blocks), `_lanes` (a lane's
slot and its lease), `_dag` (what may start), `_schedule` (what starts next), `_gating` (a
block's gates judged), `_attempt` (one attempt: where it runs, its confinement, its evidence),
`_start` (attempts started), `_watch` (running attempts watched, and ended when they must),
`_finish` (an ended attempt's outcome, its block's end or retry), `foundry.progress` (what a
run tells whoever watches it, as it happens).
"""

from __future__ import annotations

import threading

from foundry.boundary import Artifact
from foundry.executor._engine import Executor
from foundry.executor._inputs import resolve_inputs
from foundry.executor._types import (
    ENV_ALLOWLIST,
    HOLDER,
    RETRY_AFTER_CRASH,
    SYNC_EFFECTS,
    Cancel,
    ExecutionResult,
    GateOutcome,
    Gates,
    RunOptions,
    Status,
)
from foundry.ids import Event
from foundry.ports import Clock
from foundry.progress import NextStep, Progress, describe, next_step


def run_execution(
    artifact: Artifact,
    event: Event,
    options: RunOptions,
    clock: Clock,
    *,
    gates: Gates | None = None,
    cancel: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> ExecutionResult:
    """Run (or resume) the execution of `artifact` for `event`."""
    return Executor(artifact, event, options, clock, gates=gates, cancel=cancel, stop=stop).run()


__all__ = [
    "ENV_ALLOWLIST",
    "HOLDER",
    "RETRY_AFTER_CRASH",
    "SYNC_EFFECTS",
    "Cancel",
    "ExecutionResult",
    "Executor",
    "GateOutcome",
    "Gates",
    "NextStep",
    "Progress",
    "RunOptions",
    "Status",
    "describe",
    "next_step",
    "resolve_inputs",
    "run_execution",
]
