"""One execution run, coordinated: replay the ledger, recover, take a lane's slot, then start
blocks, watch them and finish them until the execution ends, waits on a gate, or stops. What
each step does is in its own module; the ledger is written first, always."""

from __future__ import annotations

import selectors
import threading
import time
from collections.abc import Mapping
from typing import Any

from foundry._process import kill_group
from foundry.boundary import Artifact
from foundry.errors import UserError
from foundry.executor._attempt import Worktree, _Attempt
from foundry.executor._dag import _Dag
from foundry.executor._finish import finish_attempt
from foundry.executor._gating import gates_pass
from foundry.executor._inputs import DECLARE_IT, PASS_IT, resolve_inputs
from foundry.executor._lanes import Lease, acquire
from foundry.executor._record import Recorder
from foundry.executor._recovery import recover, resolve_indeterminate
from foundry.executor._replay import Replay, replay
from foundry.executor._schedule import schedule
from foundry.executor._start import Starter
from foundry.executor._types import Cancel, ExecutionResult, Gates, RunOptions, Status
from foundry.executor._watch import Watch
from foundry.faults import LIVE_GROUPS
from foundry.ids import Event, execution_id
from foundry.ledger import Ledger
from foundry.ports import Clock
from foundry.throttle import LaneSpec

#: How long the reason a failed execution's result gives may be (the ledger keeps each in full).
RESULT_REASON = 2000


class Executor:
    """Runs one execution of one artifact to completion, a gate, or a crash."""

    def __init__(
        self,
        artifact: Artifact,
        event: Event,
        options: RunOptions,
        clock: Clock,
        *,
        gates: Gates | None = None,
        cancel: threading.Event | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.artifact = artifact
        self.event = event
        self.opts = options
        self.clock = clock
        self.gates = gates
        self.cancel = cancel or threading.Event()
        # Stop is not cancel: the engine is going away, the execution is not. Running attempts
        # get `stop_grace` seconds to finish; the rest are recorded as interrupted, and the next
        # run resumes by the recovery rules.
        self.stop = stop or threading.Event()
        self.execution = execution_id(artifact.digest, event)
        base = options.state_dir / ("dry-runs" if options.dry_run else "executions")
        self.dir = base / self.execution
        if options.dry_run:  # a dry run never stands in for the real execution
            self.dir = self.dir / f"{time.time_ns()}"
        self.ledger = Ledger(self.dir / "ledger.jsonl", generation=options.generation)
        self.blocks = {b.id: b for b in artifact.spec.blocks}
        self.secret_values = [v for v in options.secrets.values() if v]
        self._rec = Recorder(
            self.ledger,
            clock,
            options,
            execution=self.execution,
            artifact=artifact,
            event=event,
            secret_values=self.secret_values,
        )
        self._lease = Lease(options.lanes, self.execution, self.cancel)
        self._worktree = Worktree(options.workdir)
        self._starter = Starter(self._rec, options, self.dir, self._worktree)
        self._watch = Watch(options, self.cancel, self.stop)
        self._began: float | None = None  # when this run of the execution started

    def run(self) -> ExecutionResult:
        try:
            result = self._run()
        finally:
            self.ledger.close()
        took = time.monotonic() - self._began if self._began is not None else None
        self._rec.tell("execution-ended", status=result.status, reason=result.reason, seconds=took)
        return result

    def _result(self, state: Replay, status: Status, reason: str = "") -> ExecutionResult:
        return ExecutionResult(self.execution, status, dict(state.status), self.ledger.path, reason)

    def _run(self) -> ExecutionResult:
        state = replay(self.ledger.records)
        if state.finished is not None:
            return self._result(state, state.finished, "already finished")  # type: ignore[arg-type]
        try:
            inputs = resolve_inputs(
                self.artifact, self.opts.inputs, fix=DECLARE_IT if self.opts.unattended else PASS_IT
            )
        except UserError as exc:
            if not self.opts.unattended:
                raise
            return self._refuse(state, f"{self.artifact.metadata.name} cannot start: {exc}")
        box = self.opts.sandbox
        unavailable = box.problem(self.opts.run_as) if box is not None else None
        if unavailable is not None and box is not None:
            return self._refuse(
                state, f"sandbox {box.name} unavailable, nothing ran: {unavailable}"
            )
        self._began = time.monotonic()
        self._rec.tell("execution-started", status="resumed" if state.planned else "started")
        if not state.planned:
            self._planned(inputs, sync=True)
        recover(self._rec, state, self.blocks)
        if self.cancel.is_set():  # cancelled (or superseded) before it went on: ends now
            return self._end_now(state)
        parked = resolve_indeterminate(self._rec, state, self.blocks, self.gates)
        if parked is not None:
            return self._result(
                state, "indeterminate", f"block {parked} is indeterminate; waiting for an approval"
            )
        lane = self.artifact.spec.lane
        if lane is None or self.opts.lanes is None:
            return self._loop(state, inputs)
        spec = LaneSpec.from_artifact(lane)
        decision = acquire(self._rec, self.opts.lanes, spec)
        if decision.outcome in ("rejected", "superseded"):
            self._rec.record({"type": "execution-finished", "status": "skipped"}, sync=True)
            return self._result(state, "skipped", decision.reason)
        if decision.outcome != "granted":
            self.ledger.sync()
            return self._result(state, "queued", decision.reason)
        self._lease.lane = spec.name
        try:
            return self._loop(state, inputs)
        finally:  # finished or parked on a gate: a waiting execution holds no slot
            self._lease.lane = None
            self.opts.lanes.release(spec.name, self.execution)

    def _end_now(self, state: Replay) -> ExecutionResult:
        """Every block that has not finished ends as the cancel request says, then the run."""
        status, reason = _ending(self.cancel)
        for block_id in self.blocks:
            if block_id not in state.status:
                self._rec.finish_block(state, block_id, status, reason or status)
        return self._finished(state, status, reason)

    def _finished(self, state: Replay, status: Status, reason: str = "") -> ExecutionResult:
        record: dict[str, Any] = {"type": "execution-finished", "status": status}
        if reason:
            record["reason"] = reason
        self._rec.record(record, sync=True)
        state.finished = status
        if status == "failed" and not reason:  # what the result says: which blocks, and why
            said = "; ".join(
                f"{b} {s}" + (f": {state.reasons[b]}" if state.reasons.get(b) else "")
                for b, s in state.status.items()
                if s not in ("succeeded", "skipped")
            )
            reason = said if len(said) <= RESULT_REASON else said[: RESULT_REASON - 1] + "…"
        return self._result(state, status, reason)

    def _planned(self, inputs: Mapping[str, str], *, sync: bool = False) -> None:
        self._rec.record(
            {
                "type": "planned",
                "execution": self.execution,
                "artifact": {"name": self.artifact.metadata.name, "digest": self.artifact.digest},
                "event": {"type": self.event.type, "key": self.event.key},
                "inputs": dict(inputs),
                "dryRun": self.opts.dry_run,
            },
            sync=sync,
        )

    def _refuse(self, state: Replay, reason: str) -> ExecutionResult:
        """The execution cannot start: it fails, and its ledger (so its trace) says why."""
        if not state.planned:
            self._planned({k: str(v) for k, v in self.opts.inputs.items()})
        self._rec.record(
            {"type": "execution-finished", "status": "failed", "reason": reason}, sync=True
        )
        state.finished = "failed"
        return self._result(state, "failed", reason)

    def _loop(self, state: Replay, inputs: Mapping[str, str]) -> ExecutionResult:
        """Start what may start, watch what runs and finish what ended, until nothing is left to
        run (the execution ends), nothing can run now (it waits), or the run stops."""
        rec = self._rec
        dag = rec.dag = _Dag(self.blocks, state.status, dry_run=self.opts.dry_run)
        running: dict[str, _Attempt] = {}
        not_before: dict[str, float] = {}
        selector = selectors.DefaultSelector()
        workers = max(1, self.opts.workers)
        try:
            while True:
                waiting = schedule(
                    rec,
                    state,
                    dag,
                    self.blocks,
                    running=running,
                    not_before=not_before,
                    workers=workers,
                    cancel=self.cancel,
                    stop=self.stop,
                    judge=lambda block: gates_pass(rec, state, block, self.gates),
                    start=lambda blocks: self._starter.start(
                        state, blocks, inputs, running, selector
                    ),
                    look=self.opts.look_before_starting,
                )
                if not running:
                    if not dag.pending:
                        break
                    if self.stop.is_set() and not self.cancel.is_set():
                        self.ledger.sync()
                        return self._result(state, "stopped", "stopped; run it again to resume")
                    if self.cancel.is_set():
                        for b in sorted(dag.pending):
                            rec.finish_block(state, b, "cancelled", "cancelled before it started")
                        break
                    later = [not_before[b] for b in dag.pending if b in not_before]
                    if later:
                        self.clock.sleep(max(0.0, min(later) - self.clock.now()))
                        continue
                    self.ledger.sync()
                    return self._result(
                        state, "waiting", "waiting on a gate: " + ", ".join(waiting)
                    )
                self._lease.keep()
                self._watch.wait(running, selector)
                for block_id, att in list(running.items()):
                    if att.exit_code is not None and not att.out_open:
                        del running[block_id]
                        finish_attempt(
                            rec,
                            state,
                            att,
                            not_before,
                            worktree=self._worktree,
                            after_effects=self.opts.after_effects,
                        )
                        if block_id not in state.status:  # to be retried after its backoff
                            dag.again(block_id)
        finally:
            rec.dag = None
            for att in running.values():  # an exception left processes behind: stop them
                kill_group(att.proc.pid)
                LIVE_GROUPS.discard(att.proc.pid)
            selector.close()
        reason = ""
        if self.cancel.is_set() and any(s == "cancelled" for s in state.status.values()):
            final, reason = _ending(self.cancel)
        elif all(s in ("succeeded", "skipped") for s in state.status.values()):
            final = "succeeded"
        else:
            final = "failed"
        return self._finished(state, final, reason)


def _ending(cancel: threading.Event) -> tuple[Status, str]:
    """How a cancelled run ends, and why (a plain event, a lane's: `cancelled`, no reason)."""
    if isinstance(cancel, Cancel):
        return cancel.status, cancel.reason
    return "cancelled", ""
