"""One execution run: replay the ledger, recover, pass gates and lanes, run blocks as
processes, and record everything in the ledger first."""

from __future__ import annotations

import contextlib
import heapq
import os
import select
import selectors
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from foundry._process import Capture, Redactor, kill_group, redact_text, spawn
from foundry.boundary import Artifact, Block
from foundry.errors import UserError
from foundry.executor._attempt import _Attempt, collect_outputs, confinement_of
from foundry.executor._dag import NOT_SUCCEEDED, _Dag
from foundry.executor._inputs import DECLARE_IT, PASS_IT, resolve_inputs
from foundry.executor._replay import Replay, replay
from foundry.executor._types import (
    ENV_ALLOWLIST,
    HOLDER,
    RENEW_EVERY,
    RETRY_AFTER_CRASH,
    SYNC_EFFECTS,
    Cancel,
    ExecutionResult,
    GateOutcome,
    Gates,
    RunOptions,
    Status,
)
from foundry.faults import LIVE_GROUPS, crash_point
from foundry.ids import Event, execution_id
from foundry.ledger import Ledger
from foundry.ports import Clock
from foundry.progress import Kind, Progress, waits_on
from foundry.sandbox import Launch, SandboxUnavailable, launch_in
from foundry.throttle import LaneSpec


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
        self._stop_at: float | None = None
        self.execution = execution_id(artifact.digest, event)
        base = options.state_dir / ("dry-runs" if options.dry_run else "executions")
        self.dir = base / self.execution
        if options.dry_run:  # a dry run never stands in for the real execution
            self.dir = self.dir / f"{time.time_ns()}"
        self.ledger = Ledger(self.dir / "ledger.jsonl", generation=options.generation)
        self._logs = self.dir / "logs"
        self.blocks = {b.id: b for b in artifact.spec.blocks}
        self.secret_values = [v for v in options.secrets.values() if v]
        self._lane: str | None = None
        self._renewed = time.monotonic()
        self._dag: _Dag | None = None
        self._root: Path | None = None
        self._allowed_env: dict[str, str] | None = None
        self._began: float | None = None  # when this run of the execution started
        self._told: set[tuple[str, int, str]] = set()  # waits already told (gate, reason)

    # -- recording -----------------------------------------------------------------------

    def _record(self, record: dict[str, Any], *, sync: bool = False) -> None:
        if "reason" in record and isinstance(record["reason"], str):
            record["reason"] = redact_text(record["reason"], self.secret_values)
        self.ledger.append(record, at=self.clock.now(), sync=sync)

    def _interrupt(
        self, state: Replay, block: Block, attempt: int, *, seen: _Attempt | None = None
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
                record.update(self._attempt_facts(seen), outputs=[])
            self._record(record)
            return
        self._record(
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

    @staticmethod
    def _attempt_facts(att: _Attempt) -> dict[str, Any]:
        """What an ended attempt's record says about its process and output."""
        return {
            "exitCode": att.exit_code,
            "durationMs": int((time.monotonic() - att.started) * 1000),
            "logDigest": att.capture.digest,
            "logTail": att.capture.tail_text(),
        }

    def _finish_block(
        self,
        state: Replay,
        block: str,
        status: str,
        reason: str = "",
        *,
        seconds: float | None = None,
        attempt: int | None = None,
    ) -> None:
        self._record({"type": "block-finished", "block": block, "status": status, "reason": reason})
        self._tell(
            "block-ended",
            block=block,
            status=status,
            reason=reason,
            seconds=seconds,
            attempt=attempt,
        )
        state.status[block] = status
        state.reasons[block] = reason
        if self._dag is not None:
            self._dag.finished(block, status)

    # -- the run -------------------------------------------------------------------------

    def run(self) -> ExecutionResult:
        try:
            result = self._run()
        finally:
            self.ledger.close()
        took = time.monotonic() - self._began if self._began is not None else None
        self._tell("execution-ended", status=result.status, reason=result.reason, seconds=took)
        return result

    def _tell(self, kind: Kind, **fields: Any) -> None:
        """Tell whoever watches (`on_event`) what happened; news, never a step of the run."""
        if self.opts.on_event is None:
            return
        reason = fields.pop("reason", "")
        event = Progress(
            kind,
            self.execution,
            self.artifact.spec.intent.name,
            self.event.type,
            self.event.key,
            self.clock.now(),
            reason=redact_text(reason, self.secret_values) if reason else "",
            **fields,
        )
        with contextlib.suppress(Exception):
            self.opts.on_event(event)

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
        self._tell("execution-started", status="resumed" if state.planned else "started")
        if not state.planned:
            self._planned(inputs, sync=True)
        self._recover(state)
        if self.cancel.is_set():  # cancelled (or superseded) before it went on: ends now
            return self._end_now(state)
        parked = self._resolve_indeterminate(state)
        if parked is not None:
            return parked
        lane = self.artifact.spec.lane
        if lane is None or self.opts.lanes is None:
            return self._loop(state, inputs)
        spec = LaneSpec.from_artifact(lane)
        decision = self.opts.lanes.acquire(spec, self.execution, holder=HOLDER)
        self._record(
            {
                "type": "lane",
                "lane": spec.name,
                "decision": decision.outcome,
                "reason": decision.reason,
                "cancel": list(decision.cancel),
            }
        )
        if decision.outcome in ("rejected", "superseded"):
            self._record({"type": "execution-finished", "status": "skipped"}, sync=True)
            return self._result(state, "skipped", decision.reason)
        if decision.outcome != "granted":
            self.ledger.sync()
            return self._result(state, "queued", decision.reason)
        self._lane = spec.name
        try:
            return self._loop(state, inputs)
        finally:  # finished or parked on a gate: a waiting execution holds no slot
            self._lane = None
            self.opts.lanes.release(spec.name, self.execution)

    def _end_now(self, state: Replay) -> ExecutionResult:
        """Every block that has not finished ends as the cancel request says, then the run."""
        status, reason = _ending(self.cancel)
        for block_id in self.blocks:
            if block_id not in state.status:
                self._finish_block(state, block_id, status, reason or status)
        return self._finished(state, status, reason)

    def _finished(self, state: Replay, status: Status, reason: str = "") -> ExecutionResult:
        record: dict[str, Any] = {"type": "execution-finished", "status": status}
        if reason:
            record["reason"] = reason
        self._record(record, sync=True)
        state.finished = status
        if status == "failed" and not reason:  # what the result says: which blocks, and why
            reason = "; ".join(
                f"{b} {s}" + (f": {state.reasons[b]}" if state.reasons.get(b) else "")
                for b, s in state.status.items()
                if s not in ("succeeded", "skipped")
            )
        return self._result(state, status, reason)

    def _planned(self, inputs: Mapping[str, str], *, sync: bool = False) -> None:
        self._record(
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
        self._record(
            {"type": "execution-finished", "status": "failed", "reason": reason}, sync=True
        )
        state.finished = "failed"
        return self._result(state, "failed", reason)

    def _recover(self, state: Replay) -> None:
        for block_id, attempt in sorted(state.open_attempts):
            if block_id in state.status:  # ended otherwise (a later attempt, an approval)
                self._record(
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
            self._interrupt(state, self.blocks[block_id], attempt)
        state.open_attempts.clear()

    def _resolve_indeterminate(self, state: Replay) -> ExecutionResult | None:
        for block_id in sorted(state.indeterminate):
            block = self.blocks[block_id]
            decision = (
                self.gates.resolve_indeterminate(self.execution, self.artifact, block)
                if self.gates
                else None
            )
            if decision is None:
                self._tell_wait(block, -1, "it waits for an owner to approve (continue) or reject")
                self.ledger.sync()
                return self._result(
                    state,
                    "indeterminate",
                    f"block {block_id} is indeterminate; waiting for an approval",
                )
            self._record({"type": "resolved", "block": block_id, "decision": decision})
            if decision == "approve":
                self._finish_block(state, block_id, "succeeded", "approved after an interruption")
            else:
                self._finish_block(state, block_id, "failed", "rejected after an interruption")
            state.indeterminate.discard(block_id)
        return None

    def _env(self, block: Block, inputs: Mapping[str, str], attempt: int) -> dict[str, str]:
        if self._allowed_env is None:  # read once per run: the engine's environment is fixed
            source = self.opts.base_env if self.opts.base_env is not None else os.environ
            self._allowed_env = {k: source[k] for k in ENV_ALLOWLIST if k in source}
        env = dict(self._allowed_env)
        env.update(block.env)
        for name, value in inputs.items():
            env[f"ALLOY_INPUT_{name.upper()}"] = value
        for name in block.secrets:
            if name in self.opts.secrets:
                env[name] = self.opts.secrets[name]
        env["ALLOY_EXECUTION"] = self.execution
        env["ALLOY_BLOCK"] = block.id
        env["ALLOY_ATTEMPT"] = str(attempt)
        return env

    def _worktree(self) -> Path:
        if self._root is None:
            self._root = self.opts.workdir.resolve()
        return self._root

    def _cwd(self, block: Block) -> Path:
        root = self._worktree()
        if block.workdir is None:
            return root
        cwd = (root / block.workdir).resolve()
        if not cwd.is_relative_to(root):
            raise UserError(f"block {block.id}: workdir {block.workdir!r} leaves the worktree")
        return cwd

    def _gates_pass(self, state: Replay, block: Block) -> str:
        """'passed', 'waiting' or 'failed' for all of a block's gates, in order."""
        for index, gate in enumerate(block.gates):
            if state.gates.get((block.id, index), ("",))[0] == "passed":
                continue  # a gate's decision, once recorded, is final for this execution
            outcome = self._judge(state, block, index)
            # Masked whole, then cut: a cut first could leave the start of a secret's form.
            reason = _cut(redact_text(outcome.reason, self.secret_values))
            said = (outcome.decision, reason)
            if state.gates.get((block.id, index)) != said:
                self._record(
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
                    state.waiting_since.setdefault((block.id, index), self.clock.now())
            if outcome.decision == "waiting":
                self._tell_wait(block, index, reason)
            if outcome.decision != "passed":
                if outcome.decision == "failed":
                    self._finish_block(
                        state,
                        block.id,
                        "failed",
                        f"gate {index} ({gate.kind}) failed: {outcome.reason}",
                    )
                return outcome.decision
        return "passed"

    def _tell_wait(self, block: Block, index: int, reason: str) -> None:
        """A gate waits (index -1: an indeterminate block): told once per reason in a run."""
        if (block.id, index, reason) in self._told:
            return
        self._told.add((block.id, index, reason))
        gate = block.gates[index] if index >= 0 else None
        owners = list(self.artifact.spec.intent.owners)
        on = waits_on(gate, owners=owners)
        self._tell(
            "waiting", block=block.id, gate_index=index, gate=gate, reason=reason, waits_on=on
        )

    def _judge(self, state: Replay, block: Block, index: int) -> GateOutcome:
        """One gate's decision now. A gate that cannot be judged (its evaluation raised) fails,
        with the reason: it never takes the engine, or any other execution, down."""
        gate = block.gates[index]
        if self.gates is None:
            return GateOutcome("waiting", f"no gate evaluator for {gate.kind} gates")
        try:
            return self.gates.evaluate(
                self.execution,
                self.artifact,
                block,
                index,
                now=self.clock.now(),
                waiting_since=state.waiting_since.get((block.id, index)),
            )
        except Exception as exc:  # noqa: BLE001 - any failure to judge is this gate's failure
            return GateOutcome(
                "failed", f"the gate could not be judged: {type(exc).__name__}: {exc}"
            )

    def _start(
        self,
        state: Replay,
        blocks: list[Block],
        inputs: Mapping[str, str],
        running: dict[str, _Attempt],
        selector: selectors.BaseSelector,
    ) -> None:
        """Start `blocks` together: each attempt's record is written (one `os.write` each, so a
        crash of the engine cannot lose it), then all are synced at once if any of them has
        effects that ask for it, and only then do their processes start."""
        cwds = [self._cwd(block) for block in blocks]  # a bad workdir stops before any record
        numbers = []
        for block in blocks:
            number = state.attempts.get(block.id, 0) + 1
            state.attempts[block.id] = number
            numbers.append(number)
            self._record(
                {
                    "type": "attempt-started",
                    "block": block.id,
                    "attempt": number,
                    "effects": block.effects,
                }
            )
        which = ",".join(block.id for block in blocks)
        crash_point("attempt-recorded", which)
        if any(block.effects in SYNC_EFFECTS for block in blocks):
            self.ledger.sync()
        if self.opts.before_start is not None:
            crash_point("ledger-push-before", which)
            try:
                self.opts.before_start()
            except BaseException as exc:
                self._not_started(blocks, numbers, exc)
                raise
            crash_point("ledger-push-after", which)
        for block, number, cwd in zip(blocks, numbers, cwds, strict=True):
            capture = Capture(Redactor(self.secret_values), self._logs / f"{block.id}.{number}.log")
            now = time.monotonic()
            launch = None
            try:
                launch = self._launch(block, number, cwd)
                proc = spawn(launch.argv, cwd=cwd, env=self._env(block, inputs, number))
            except (OSError, SandboxUnavailable) as exc:
                if launch is not None:
                    launch.close()
                said = exc.strerror if isinstance(exc, OSError) else str(exc)
                capture.feed(f"cannot start {block.run[0]!r}: {said}\n".encode())
                capture.close()
                self._record(
                    {
                        "type": "attempt-finished",
                        "block": block.id,
                        "attempt": number,
                        "outcome": "failed",
                        "exitCode": None,
                        "durationMs": 0,
                        "logDigest": capture.digest,
                        "logTail": capture.tail_text(),
                        "outputs": [],
                    }
                )
                self._finish_block(state, block.id, "failed", f"cannot start {block.run[0]!r}")
                continue
            LIVE_GROUPS.add(proc.pid)
            att = _Attempt(block, number, proc, capture, now, now + block.timeout_seconds)
            att.launch = launch
            running[block.id] = att
            selector.register(proc.out_fd, selectors.EVENT_READ, ("out", att))
            if proc.pidfd >= 0:
                selector.register(proc.pidfd, selectors.EVENT_READ, ("exit", att))
            self._tell("block-started", block=block.id, attempt=number)
        self._progress()

    def _launch(self, block: Block, number: int, cwd: Path) -> Launch:
        """The command line of an attempt as its sandbox and limits run it; a sandbox that
        needs room of its own (bwrap's private /tmp) makes it under the execution's directory,
        and it is removed when the attempt ends."""
        confinement = confinement_of(block, self._worktree(), cwd, self.opts)
        scratch = self.dir / "sandbox" / f"{block.id}.{number}"
        return launch_in(
            self.opts.sandbox, list(block.run), confinement, scratch, self.opts.state_dir
        )

    def _progress(self) -> None:
        """Tell the controller that the ledger moved (an attempt started or ended). News, not
        a step of the run: whatever the callback raises is ignored."""
        if self.opts.on_progress is not None:
            with contextlib.suppress(Exception):
                self.opts.on_progress()

    def _not_started(self, blocks: list[Block], numbers: list[int], exc: BaseException) -> None:
        """The ledger could not be published before attempts with effects: none of them
        starts, and the ledger says so (a holder that merges this ledger later knows they never
        ran, even if the remote got their start records)."""
        for block, number in zip(blocks, numbers, strict=True):
            self._record(
                {
                    "type": "attempt-finished",
                    "block": block.id,
                    "attempt": number,
                    "outcome": "interrupted",
                    "exitCode": None,
                    "durationMs": 0,
                    "outputs": [],
                    "started": False,
                    "reason": f"not started: the ledger could not be published first ({exc})",
                },
                sync=True,
            )

    def _outputs(self, block: Block) -> tuple[list[dict[str, Any]], list[str]]:
        if not block.outputs:
            return [], []
        return collect_outputs(self._cwd(block), self._worktree(), block.outputs)

    def _finish_attempt(self, state: Replay, att: _Attempt, not_before: dict[str, float]) -> None:
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
        self._end_attempt(state, att, not_before)
        if block.effects in SYNC_EFFECTS and self.opts.after_effects is not None:
            self.opts.after_effects()
        self._progress()

    def _end_attempt(self, state: Replay, att: _Attempt, not_before: dict[str, float]) -> None:
        block = att.block
        code = att.exit_code
        if att.stopped and code != 0:
            self._interrupt(state, block, att.number, seen=att)
            why = "stopped" if att.halted else "stopped after the grace period"
            ended = "indeterminate" if block.id in state.indeterminate else "interrupted"
            took = time.monotonic() - att.started
            self._tell(
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
            outputs, missing = self._outputs(block)
            if missing:
                outcome = "failed"
                reason = (
                    "declared output(s) missing, outside the worktree or hard links: "
                    + ", ".join(missing)
                )
        if outcome == "timeout":
            reason = f"timed out after {block.timeout_seconds}s; its process group was killed"
        if outcome == "failed" and att.limit is not None:
            reason = att.limit
        self._record(
            {
                "type": "attempt-finished",
                "block": block.id,
                "attempt": att.number,
                "outcome": outcome,
                **self._attempt_facts(att),
                "outputs": outputs,
                "reason": reason,
            }
        )
        ran: dict[str, Any] = {"seconds": time.monotonic() - att.started, "attempt": att.number}
        if outcome == "succeeded":
            self._finish_block(state, block.id, "succeeded", **ran)
        elif outcome == "cancelled":
            self._finish_block(state, block.id, "cancelled", "cancelled", **ran)
        elif (
            outcome == "failed"
            and code is not None
            and code in block.retry.on_exit_codes
            and att.number <= block.retry.max
        ):
            not_before[block.id] = self.clock.now() + block.retry.backoff_seconds
            again = f"exit code {code}; it runs again after {block.retry.backoff_seconds}s"
            self._tell("block-ended", block=block.id, status="failed", reason=again, **ran)
        else:
            why = reason or (f"exit code {code}" if code is not None else outcome)
            self._finish_block(state, block.id, "failed", why, **ran)

    def _loop(self, state: Replay, inputs: Mapping[str, str]) -> ExecutionResult:
        dag = self._dag = _Dag(self.blocks, state.status, dry_run=self.opts.dry_run)
        running: dict[str, _Attempt] = {}
        not_before: dict[str, float] = {}
        selector = selectors.DefaultSelector()
        workers = max(1, self.opts.workers)
        try:
            while True:
                waiting = self._schedule(
                    state,
                    dag,
                    running=running,
                    not_before=not_before,
                    inputs=inputs,
                    selector=selector,
                    workers=workers,
                )
                if not running:
                    if not dag.pending:
                        break
                    if self.stop.is_set() and not self.cancel.is_set():
                        self.ledger.sync()
                        return self._result(state, "stopped", "stopped; run it again to resume")
                    if self.cancel.is_set():
                        for b in sorted(dag.pending):
                            self._finish_block(state, b, "cancelled", "cancelled before it started")
                        break
                    later = [not_before[b] for b in dag.pending if b in not_before]
                    if later:
                        self.clock.sleep(max(0.0, min(later) - self.clock.now()))
                        continue
                    self.ledger.sync()
                    return self._result(
                        state, "waiting", "waiting on a gate: " + ", ".join(waiting)
                    )
                self._wait(state, dag, running, not_before, selector)
        finally:
            self._dag = None
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

    def _schedule(
        self,
        state: Replay,
        dag: _Dag,
        *,
        running: dict[str, _Attempt],
        not_before: dict[str, float],
        inputs: Mapping[str, str],
        selector: selectors.BaseSelector,
        workers: int,
    ) -> list[str]:
        """Skip what cannot run, start what can; return the blocks waiting on a gate.

        Ready blocks are taken in block-id order while a worker is free; those taken in one
        pass start together (one sync for all of their attempt records, see `_start`)."""
        waiting: list[str] = []
        aside: list[str] = []  # ready, but not now (a gate waits, or a retry's backoff)
        try:
            while True:
                self._skip_doomed(state, dag, running)
                starting: list[Block] = []
                while dag.ready and len(running) + len(starting) < workers:
                    if self.cancel.is_set() or self.stop.is_set():
                        break
                    block_id = heapq.heappop(dag.ready)
                    if block_id not in dag.pending or block_id in running:
                        continue
                    block = self.blocks[block_id]
                    if not_before.get(block_id, 0.0) > self.clock.now():
                        aside.append(block_id)
                        continue
                    decision = self._gates_pass(state, block)
                    if decision == "waiting":
                        waiting.append(block_id)
                        aside.append(block_id)
                        continue
                    if decision == "failed":
                        continue
                    not_before.pop(block_id, None)
                    starting.append(block)
                if starting:
                    self._start(state, starting, inputs, running, selector)
                elif not dag.doomed:
                    return waiting
        finally:
            for block_id in aside:
                heapq.heappush(dag.ready, block_id)

    def _skip_doomed(self, state: Replay, dag: _Dag, running: dict[str, _Attempt]) -> None:
        """Finish as skipped the blocks a failed need (or a dry run) keeps from running."""
        while dag.doomed:
            block_id = heapq.heappop(dag.doomed)
            if block_id not in dag.pending or block_id in running:
                continue
            block = self.blocks[block_id]
            bad = [n for n in block.needs if state.status.get(n) in NOT_SUCCEEDED]
            if bad:
                self._finish_block(
                    state, block_id, "skipped", f"needs {', '.join(bad)}, which did not succeed"
                )
            elif not self.cancel.is_set():  # a dry run; cancelled blocks end as cancelled
                self._finish_block(state, block_id, "skipped", f"dry run: effects {block.effects}")

    def _keep_lease(self) -> None:
        """Renew the lane lease now and then; a lost or cancelled lease cancels this run."""
        lanes = self.opts.lanes
        if self._lane is None or lanes is None:
            return
        # Often enough that a newcomer's cancelRunning takes effect within seconds.
        if time.monotonic() - self._renewed < min(lanes.lease_seconds / 3, RENEW_EVERY):
            return
        self._renewed = time.monotonic()
        if not lanes.renew(self._lane, self.execution):
            self.cancel.set()

    def _wait(
        self,
        state: Replay,
        dag: _Dag,
        running: dict[str, _Attempt],
        not_before: dict[str, float],
        selector: selectors.BaseSelector,
    ) -> None:
        self._keep_lease()
        now = time.monotonic()
        horizon = [a.term_at if a.term_at is not None else a.deadline for a in running.values()]
        timeout = max(0.0, min(horizon) - now)
        if any(a.proc.pidfd < 0 for a in running.values()):
            timeout = min(timeout, 0.01)
        timeout = min(timeout, 0.2)  # notice a cancel request promptly
        for key, _ in selector.select(timeout):
            what, att = key.data
            if what == "out":
                self._read(att, selector)
            elif att.exit_code is None:
                self._reap(att, selector)
        for att in list(running.values()):  # no pidfd: ask the kernel
            if att.exit_code is None and att.proc.pidfd < 0 and att.proc.poll() is not None:
                self._reap(att, selector)
        now = time.monotonic()
        for att in list(running.values()):
            if att.exit_code is not None:
                continue
            pid = att.proc.pid
            if self.stop.is_set() and self._stop_at is None:
                self._stop_at = now + self.opts.stop_grace
            if self.opts.halt is not None and self.opts.halt.is_set() and not att.halted:
                att.stopped = att.halted = True  # no time left: killed now, recorded interrupted
                self.stop.set()
                kill_group(pid, signal.SIGKILL)
                att.term_at = now
                continue
            if self.cancel.is_set() and not att.cancelled:
                att.cancelled = True
                kill_group(pid, signal.SIGTERM)
                att.term_at = now + self.opts.kill_grace
            elif (
                self._stop_at is not None
                and now >= self._stop_at
                and not att.stopped
                and att.term_at is None
            ):
                att.stopped = True
                kill_group(pid, signal.SIGTERM)
                att.term_at = now + self.opts.kill_grace
            elif att.term_at is None and now >= att.deadline:
                att.timed_out = True
                kill_group(pid, signal.SIGTERM)
                att.term_at = now + self.opts.kill_grace
            elif att.term_at is None and att.launch is not None and att.launch.over_cpu():
                # Its processes together used its CPU time: a limit, ended at once (whatever
                # left the group goes when its cgroups are closed).
                kill_group(pid, signal.SIGKILL)
                att.term_at = now
            elif att.term_at is not None and now >= att.term_at:
                kill_group(pid, signal.SIGKILL)
        for block_id, att in list(running.items()):
            if att.exit_code is not None and not att.out_open:
                del running[block_id]
                self._finish_attempt(state, att, not_before)
                if block_id not in state.status:  # to be retried after its backoff
                    dag.again(block_id)

    def _read(self, att: _Attempt, selector: selectors.BaseSelector) -> None:
        proc = att.proc
        if not att.out_open:  # closed while draining, earlier in this same batch of events
            return
        try:
            chunk = os.read(proc.out_fd, 65536)
        except BlockingIOError:
            return
        if chunk:
            att.capture.feed(chunk)
            crash_point("mid-block", att.block.id)  # the block runs and has said something
            return
        selector.unregister(proc.out_fd)
        proc.close_output()
        att.out_open = False

    def _reap(self, att: _Attempt, selector: selectors.BaseSelector) -> None:
        proc = att.proc
        if att.exit_code is not None:
            return
        code = proc.wait()
        att.exit_code = code if code >= 0 else 128 - code
        if proc.pidfd >= 0:
            selector.unregister(proc.pidfd)
            os.close(proc.pidfd)
        # The block is over when its main process is: stop what it left behind, then drain.
        kill_group(proc.pid)
        if att.out_open:
            # Usually the end of the output is already there: read it without waiting.
            self._read(att, selector)
        if att.out_open:
            poller = select.poll()
            poller.register(proc.out_fd, select.POLLIN)
            deadline = time.monotonic() + 2.0
            while att.out_open:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if poller.poll(min(left, 0.05) * 1000):
                    self._read(att, selector)
            if att.out_open:
                selector.unregister(proc.out_fd)
                proc.close_output()
                att.out_open = False


#: The longest gate reason a ledger keeps (a policy command's last line can be long).
REASON_CHARS = 1000


def _cut(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


def _ending(cancel: threading.Event) -> tuple[Status, str]:
    """How a cancelled run ends, and why (a plain event, a lane's: `cancelled`, no reason)."""
    if isinstance(cancel, Cancel):
        return cancel.status, cancel.reason
    return "cancelled", ""
