"""Running one execution under its claim: claimed, its ledgers merged, run by the engine with
its worktree, lanes, gates and renewer thread, and its claim released with what it left.

The order that makes every crash safe (docs/reconcile.md, "The protocol"):

1. take the claim (a new generation); merge the remote's ledger with ours (`merge_ledgers`:
   by record identity, never by size — an old local ledger never hides a later holder's work);
2. run: renewals and ledger publications are one writer (the claim's lock); the ledger is
   published before any attempt starts (if that fails, nothing starts) and after an attempt
   with reversible or irreversible effects ends. Every claim commit also carries the live
   trace (`trace.json`, the Trace of the ledger it carries): when an attempt starts or ends,
   the engine wakes the renewer thread, which publishes at once (one push at a time; what
   happens meanwhile goes with the next);
3. release the claim `finished` (or `parked`) with the final ledger and trace, the artifact and
   the commit: from then on any host can publish the execution's trace and check run;
4. publish the check run, then the trace. The trace on the traces branch is the last step: a
   finished claim without a finished trace is repaired by whichever host sees it first.

Steps 1 to 3 are this module's, step 4 is `_publishing`'s. What a run uses lives beside it:
its claim kept and let go (`_lease`), the operator's stops (`_stops`), what its gates ask
(`_gating`), its lanes (`_fenced_lanes`), its events (`_telling`), its files (`_files`), the
live trace (`_live_trace`), and what it leaves to publish (`_finishing`, `_check_runs`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers import control as controls
from controllers.claims import Claim, Claims, LeaseLost
from controllers.forge import Forge
from controllers.gitops import GitError, Mirror
from controllers.lanes import RemoteLanes
from controllers.reconcile._fenced_lanes import _FencedLanes
from controllers.reconcile._files import _hand_over_worktree, _note, _read, _write
from controllers.reconcile._finishing import Finishing
from controllers.reconcile._gating import Gating, _Checks, _History
from controllers.reconcile._lease import Leasing
from controllers.reconcile._live_trace import live_trace
from controllers.reconcile._model import FINISHED, PassReport, Settings, TraceInfo
from controllers.reconcile._stops import Watching, _relay
from controllers.reconcile._telling import Telling
from controllers.reconcile._work import Done, Work
from foundry.ports import Clock

if TYPE_CHECKING:
    from foundry.gates import StaticApprovals


class Running(Telling, Watching, Leasing, Gating, Finishing):
    """The running half of a `Reconciler` (its state lives there)."""

    settings: Settings
    mirror: Mirror
    claims: Claims
    clock: Clock
    stop: threading.Event
    state: Path
    forge: Forge
    _traces: dict[str, TraceInfo]
    _trace_blobs: dict[str, str]
    halt: threading.Event | None
    _control: controls.Control

    def _secret_source(self) -> Mapping[str, str] | None:
        """Where this repository's secrets come from (None: this process's environment)."""
        read = self.settings.secrets
        return read() if read is not None else None

    def _execute(
        self, work: Work, *, approvals: StaticApprovals, report: PassReport
    ) -> Done | None:
        """Claim and run one execution; what to publish, or None. Never raises for one
        execution's sake: what goes wrong is that execution's report line."""
        execution = work.execution
        report.names[execution] = work.name()
        facts: dict[str, Any] = {
            "event": {"type": work.event.type, "key": work.event.key},
            "inputs": dict(work.inputs),
        }
        if work.initiator:
            facts["initiator"] = work.initiator  # a host resuming it from its claim knows too
        try:
            claim, why, held = self.claims.acquire(
                execution, artifact=work.artifact_bytes, commit=work.commit, facts=facts
            )
        except GitError as exc:
            report.errors.append(f"{execution}: cannot claim it: {exc}")
            report.parked[execution] = "could not be claimed"  # looked at again after a lease
            return None
        if claim is None:
            if held is not None and held.state == "finished":
                try:
                    return self._repair(held, report)
                except Exception as exc:  # noqa: BLE001 - a bad claim is its own report line
                    report.errors.append(f"{execution}: cannot publish it from its claim: {exc}")
                    return None
            report.not_claimed[execution] = why
            return None
        if execution not in report.started and execution not in report.resumed:
            (report.started if work.new else report.resumed).append(execution)
        try:
            return self._run_claimed(claim, work, approvals=approvals, report=report)
        except LeaseLost as exc:
            report.parked[execution] = f"lost its claim: {exc}"
        except GitError as exc:
            report.parked[execution] = f"the remote failed while it ran: {exc}"
            report.errors.append(f"{execution}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one execution never takes the pass down
            from foundry.redaction import redact_text
            from foundry.workspace import declared_secrets

            secrets = list(declared_secrets(work.artifact, self._secret_source()).values())
            reason = redact_text(f"{type(exc).__name__}: {exc}", secrets)
            report.parked[execution] = reason
            report.errors.append(f"{execution}: could not run: {reason}")
            self._let_go(claim, work, report)
        return None

    def _let_go(self, claim: Claim, work: Work, report: PassReport) -> None:
        """Park a claim after an unexpected error, so any host may take it up again."""
        from foundry.workspace import declared_secrets

        ledger = _read(self._ledger_path(claim.execution))
        secrets = list(declared_secrets(work.artifact, self._secret_source()).values())
        try:
            self.claims.release(
                claim, "parked", ledger, trace=live_trace(ledger, work.artifact, secrets)
            )
        except (LeaseLost, GitError) as exc:
            report.errors.append(f"{claim.execution}: could not park its claim: {exc}")

    def _ledger_path(self, execution: str) -> Path:
        return self.state / "executions" / execution / "ledger.jsonl"

    def _run_claimed(
        self, claim: Claim, work: Work, *, approvals: StaticApprovals, report: PassReport
    ) -> Done | None:
        from foundry.executor import Cancel, RunOptions, run_execution
        from foundry.gates import Context, GateEvaluator, confined_like_blocks
        from foundry.merge import merge_ledgers
        from foundry.state import LedgerIndex
        from foundry.workspace import declared_secrets, keep_artifact

        execution = work.execution
        ledger_path = self._ledger_path(execution)
        local = _read(ledger_path)
        remote = claim.ledger
        if remote is None and claim.generation == 1 and execution in self._trace_blobs:
            # A new claim for an execution that has a trace: its claim was deleted by hand.
            # What the trace shows (attempts that started, verdicts) is not forgotten.
            from foundry.merge import ledger_from_trace

            trace = json.loads(self.mirror.blob(self._trace_blobs[execution]))
            effects = {b.id: b.effects for b in work.artifact.spec.blocks}
            remote = ledger_from_trace(trace, effects, dict(work.inputs))
            report.errors.append(
                f"{execution}: its claim was gone from the remote; resumed from its trace"
            )
        merged = merge_ledgers(
            remote,
            local,
            generation=claim.generation,
            holder=self.claims.holder,
            at=self.clock.now(),
        )
        # Always a new file: an old holder of this host that is still alive (paused, say) keeps
        # a descriptor on the previous one, and whatever it appends there reaches nobody.
        _write(ledger_path, merged)
        worktree = self.state / "worktrees" / execution
        cancel = Cancel()
        if work.end is not None:  # it ends without running anything: no worktree needed
            cancel.request(work.end[1], work.end[0])
            worktree.mkdir(parents=True, exist_ok=True)
        elif self.mirror.worktree_head(worktree) != work.commit:
            self.mirror.add_worktree(worktree, work.commit)
        if self.settings.run_as is not None:
            _hand_over_worktree(worktree, self.state, self.settings.run_as, self.mirror.path)
        keep_artifact(self.state, execution, work.artifact_bytes)
        secrets = declared_secrets(work.artifact, self._secret_source())
        masked = list(secrets.values())
        lost = threading.Event()
        stop = threading.Event()
        #: Set when the run is over: the renewer ends (`stop` may come earlier: a pause lets
        #: running blocks finish, and their claim is renewed meanwhile).
        over = threading.Event()
        #: Set by the engine when an attempt started or ended (and when the run is over): the
        #: renewer publishes the claim at once.
        progress = threading.Event()

        def publish(*, renewal: bool = False) -> None:
            ledger = _read(ledger_path)
            trace = live_trace(ledger, work.artifact, masked)
            self.claims.renew(claim, ledger, trace=trace, renewal=renewal)

        def publish_after() -> None:
            try:
                publish()
            except LeaseLost:
                lost.set()
                stop.set()
                progress.set()  # the renewer ends too
            except GitError:
                pass  # the next renewal carries it

        # Lanes are kept on the remote, so a lane's limit holds across every host; fenced by
        # the claim, so a holder that lost it never touches the slot of whoever took over.
        lanes = _FencedLanes(
            RemoteLanes(
                self.mirror, self.clock, queue_seconds=max(300.0, 10 * self.settings.recheck)
            ),
            self.claims,
            claim,
            lost,
        )
        options = RunOptions(
            workdir=worktree,
            state_dir=self.state,
            lanes=lanes,
            inputs=dict(work.inputs),
            secrets=secrets,
            stop_grace=self.settings.grace,
            before_start=publish,
            after_effects=publish_after,
            on_progress=progress.set,
            on_event=lambda event: self._tell(event, report),
            halt=self.halt,
            generation=claim.generation,
            unattended=True,
            sandbox=self.settings.sandbox,
            hidden=self.settings.hidden,
            read_only=self.settings.read_only,
            run_as=self.settings.run_as,
        )
        if self.settings.workers:
            options.workers = self.settings.workers
        policy = self.state / "policy" / execution
        context = Context(
            initiator=work.initiator,
            starters=lambda: self._starters(work),
            approvals=approvals,
            teams=self.forge,
            checks=_Checks(self.forge, work.commit),
            history=_History(self._traces),
            policy_dir=lambda: self._policy_checkout(policy),
            policy_confine=confined_like_blocks(options, execution),
            commit=work.commit,
            stop=stop,
        )
        watched = {"sha": self._control.sha}
        looking = threading.Lock()
        looked = [0.0]

        def watch() -> None:  # by the engine before blocks start (always), and the renewer
            with looking:
                self._watch_control(work, cancel, stop, options, watched)
                looked[0] = time.monotonic()

        def watch_unless_just_done() -> None:  # the renewer, woken by a start the engine
            if time.monotonic() - looked[0] >= 1.0:  # has just looked before: no second look
                watch()

        # A pause or cancel recorded before a block ends holds whatever would start after it.
        options.look_before_starting = watch

        renewer = threading.Thread(
            target=self._renew,
            args=(claim, ledger_path),
            kwargs={
                "publish": publish,
                "stop": over,
                "lost": lost,
                "progress": progress,
                "watch": watch_unless_just_done,
            },
            name=f"lease-{execution}",
            daemon=True,
        )
        relay = threading.Thread(target=_relay, args=(self.stop, stop), daemon=True)
        renewer.start()
        relay.start()
        try:
            result = run_execution(
                work.artifact,
                work.event,
                options,
                self.clock,
                gates=GateEvaluator(context),
                cancel=cancel,
                stop=stop,
            )
        finally:
            stop.set()
            over.set()
            progress.set()  # wakes the renewer, which sees `over` and ends
            renewer.join()
            lanes.close()
            if policy.exists():
                self.mirror.remove_worktree(policy)
        if lost.is_set():
            report.parked[execution] = "lost its claim while running; another host has it"
            return None
        status = result.status
        paused = watched.get("pause")
        if status == "stopped" and paused is not None and not self.stop.is_set():
            _note(ledger_path, claim.generation, self.clock.now(), paused)
        records = LedgerIndex(self.state).records(execution)
        final = status in FINISHED
        ledger = _read(ledger_path)
        trace = live_trace(ledger, work.artifact, masked)
        if not self._release(claim, "finished" if final else "parked", ledger, trace, report):
            return None
        report.finished[execution] = status
        if status == "stopped" and paused is not None and not self.stop.is_set():
            report.held[execution] = paused
        elif status == "stopped":
            report.parked[execution] = "stopped before it finished"
        if cancel.is_set() and status in ("cancelled", "skipped") and cancel.reason:
            report.ended[execution] = cancel.reason
        if final:
            self.mirror.remove_worktree(worktree)
        return self._done(execution, records, work.artifact, work.commit, secrets=masked)
