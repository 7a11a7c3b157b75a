"""Foundry on a plain directory checkout: find the artifacts, pick the state directory, run.

The library functions behind `foundry run` and `foundry plan` (no git needed)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from foundry.boundary import Artifact, Boundary, read_artifact, read_boundary
from foundry.errors import BoundaryError, UserError
from foundry.executor import ExecutionResult, Gates, RunOptions, run_execution
from foundry.gates import Context, GateEvaluator, PolicySource
from foundry.ids import Event, execution_id
from foundry.planner import Item, Plan, plan
from foundry.ports import Clock
from foundry.state import LedgerIndex
from foundry.throttle import Lanes


def default_state_dir(root: Path) -> Path:
    """Outside the worktree: `$FOUNDRY_STATE`, else `$XDG_STATE_HOME/foundry/<root hash>`."""
    explicit = os.environ.get("FOUNDRY_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(base) / "foundry" / key


def read_checkout(root: Path) -> Boundary:
    """Artifacts and requests of a directory checkout."""
    snapshot: dict[str, bytes] = {}
    for sub, suffix in (("artifacts", ".json"), ("requests", ".yaml")):
        directory = root / ".alloy" / sub
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.name.endswith(suffix) and path.is_file() and not path.is_symlink():
                snapshot[f".alloy/{sub}/{path.name}"] = path.read_bytes()
    return read_boundary(snapshot)


def find_artifact(root: Path, name: str) -> tuple[Artifact, bytes]:
    """Artifact `name` of the checkout, verified, and the exact bytes it was read from (only
    that one file is read)."""
    directory = root / ".alloy" / "artifacts"
    path = directory / f"{name}.json"
    if not path.is_file() or path.is_symlink():
        found = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
        raise UserError(
            f"no artifact named {name!r} in {directory}; found: {', '.join(found) or 'none'}"
        )
    data = path.read_bytes()
    return read_artifact(f".alloy/artifacts/{name}.json", data), data


def run_in_checkout(
    root: Path,
    name: str,
    *,
    inputs: Mapping[str, str],
    clock: Clock,
    dry_run: bool = False,
    rerun: bool = False,
    state_dir: Path | None = None,
    workers: int | None = None,
    gates: Gates | None = None,
    cancel: threading.Event | None = None,
    stop: threading.Event | None = None,
    stop_grace: float | None = None,
    policy: PolicySource | None = None,
) -> ExecutionResult:
    """Run artifact `name` of the checkout at `root` (event `apply`, or a new manual request
    event with `rerun`), in `root` itself. Policy commands run in `policy` (a checkout of the
    default branch); without one, command gates wait and say why."""
    artifact, data = find_artifact(root, name)
    event = (
        Event("request", f"manual-{time.time_ns()}") if rerun else Event("apply", artifact.digest)
    )
    state = state_dir or default_state_dir(root)
    state.mkdir(parents=True, exist_ok=True)
    options = RunOptions(
        workdir=root,
        state_dir=state,
        lanes=Lanes(state / "lanes.db", clock),
        inputs=dict(inputs),
        secrets=declared_secrets(artifact),
        dry_run=dry_run,
    )
    if workers:
        options.workers = workers
    if stop_grace is not None:
        options.stop_grace = stop_grace
    keep_artifact(state, execution_id(artifact.digest, event), data)
    try:
        # Without a forge, gates are judged on what is known locally: windows by the clock,
        # policy commands in `policy`; approvals, checks and `after` wait, saying so.
        evaluator = (
            gates
            if gates is not None
            else GateEvaluator(Context(policy_dir=policy, unjudged=UNJUDGED_LOCALLY, stop=stop))
        )
        return run_execution(
            artifact, event, options, clock, gates=evaluator, cancel=cancel, stop=stop
        )
    finally:
        if options.lanes is not None:
            options.lanes.close()


#: The gates `foundry run` cannot judge (it has no forge), and what it says for each.
UNJUDGED_LOCALLY = {
    "approval": "`foundry run` reads no approvals (there is no forge here): approval gates are "
    "judged by `foundry reconcile`, the daemon and the Action",
    "check": "`foundry run` reads no check runs (there is no forge here): check gates are "
    "judged by `foundry reconcile`, the daemon and the Action",
    "after": "`foundry run` reads no other intent's traces: after gates are judged by "
    "`foundry reconcile`, the daemon and the Action",
}


def unjudged_gates(artifact: Artifact, *, policy: bool) -> list[str]:
    """One line per gate of `artifact` that `foundry run` cannot judge here."""
    out = []
    for block in artifact.spec.blocks:
        for index, gate in enumerate(block.gates):
            if gate.kind in UNJUDGED_LOCALLY:
                out.append(
                    f"block {block.id}, gate {index} ({gate.kind}): waits here; "
                    f"{UNJUDGED_LOCALLY[gate.kind]}"
                )
            elif gate.kind == "command" and not policy:
                out.append(
                    f"block {block.id}, gate {index} (command): waits here, no checkout of the "
                    "default branch (pass --policy DIR, or run it in a clone with origin/HEAD)"
                )
    return out


def declared_secrets(artifact: Artifact) -> dict[str, str]:
    """The values of the secrets the artifact's blocks declare, from the engine's environment
    (a secret that is not set is left out: the block sees it unset)."""
    return {s: os.environ[s] for b in artifact.spec.blocks for s in b.secrets if s in os.environ}


def keep_artifact(state: Path, execution: str, data: bytes) -> None:
    """Keep the exact artifact an execution runs beside its ledger (traces need it later, when
    the checkout may hold a newer one)."""
    target = state / "executions" / execution / "artifact.json"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def load_trace_inputs(state: Path, execution: str) -> tuple[list[dict[str, Any]], Artifact]:
    """The ledger records and the artifact of one execution."""
    index = LedgerIndex(state)
    records = index.records(execution)
    if not records:
        known = ", ".join(index.executions()[-5:]) or "none"
        raise UserError(f"no execution {execution!r} in {state}; recent: {known}")
    kept = state / "executions" / execution / "artifact.json"
    if not kept.exists():
        raise UserError(f"{execution}: its artifact was not kept; cannot build its trace")
    return records, read_artifact(
        f".alloy/artifacts/{records[0]['artifact']['name']}.json", kept.read_bytes()
    )


def plan_checkout(
    root: Path, *, clock: Clock, state_dir: Path | None = None
) -> tuple[Plan, list[BoundaryError]]:
    """The plan for a directory checkout (no git: push events are reported as not readable)."""
    boundary = read_checkout(root)
    state = state_dir or default_state_dir(root)
    result = plan(boundary, LedgerIndex(state), now=clock.now(), pushes=None)
    lanes_db = state / "lanes.db"
    if lanes_db.exists():
        with Lanes(lanes_db, clock) as lanes:
            result.start = [_with_lane(item, boundary, lanes) for item in result.start]
    return result, boundary.refused


def _with_lane(item: Item, boundary: Boundary, lanes: Lanes) -> Item:
    """Say so when the item's lane is full now: it would queue (or be refused), not start."""
    artifact = boundary.artifacts.get(item.artifact)
    lane = artifact.spec.lane if artifact else None
    if lane is None:
        return item
    held = len(lanes.status(lane.name).holders)
    if held < lane.limit:
        return item
    then = {
        "fifo": "it would queue",
        "latest": "it would queue (newest only)",
        "reject": "it would be rejected",
    }[lane.queue]
    return replace(
        item, reason=f"{item.reason}; lane {lane.name} is full ({held} of {lane.limit}): {then}"
    )


__all__ = [
    "BoundaryError",
    "declared_secrets",
    "default_state_dir",
    "find_artifact",
    "keep_artifact",
    "load_trace_inputs",
    "read_checkout",
    "run_in_checkout",
]
