"""Running one execution under its claim, and publishing a finished one from its claim.

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
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from controllers import control as controls
from controllers.claims import Claim, Claims, Holding, LeaseLost, NotAClaim
from controllers.forge import CheckRun, Conclusion, Forge, ForgeError
from controllers.gitops import GitError, Mirror, worktree_entry
from controllers.lanes import RemoteLanes
from controllers.outbox import Outbox
from controllers.reconcile._model import FINISHED, PassReport, Settings, TraceInfo
from foundry.faults import crash_point
from foundry.ports import Clock

if TYPE_CHECKING:
    from foundry.boundary import Artifact
    from foundry.gates import StaticApprovals
    from foundry.ids import Event
    from foundry.progress import Progress
    from foundry.sandbox import RunAs
    from foundry.throttle import Decision, LaneSpec, LaneStatus


@dataclass
class Work:
    """One execution a pass means to start or resume, with everything it runs with."""

    execution: str
    event: Event
    artifact: Artifact
    artifact_bytes: bytes
    #: The commit it runs at: its worktree, and where its check run goes.
    commit: str
    inputs: dict[str, str | int | bool] = field(default_factory=dict)
    new: bool = True
    initiator: str | None = None
    #: It ends now instead of going on: (`cancelled` or `skipped`, why) — an operator's cancel,
    #: or superseded by a newer artifact or request.
    end: tuple[Literal["cancelled", "skipped"], str] | None = None
    #: A finished claim whose trace is missing: publishing it is never held by a pause.
    repair: bool = False

    def name(self) -> dict[str, str]:
        """Its intent and event, as the pass report names it (`PassReport.names`)."""
        return {
            "intent": self.artifact.spec.intent.name,
            "eventType": self.event.type,
            "eventKey": self.event.key,
        }


@dataclass
class Done:
    """What an execution leaves to publish: its status, trace files and check run."""

    execution: str
    status: str
    files: dict[str, bytes]
    check: CheckRun
    #: It waits on a gate that what a pass publishes can open (a `check` or an `after` gate).
    waits_on_news: bool = False


class Running:
    """The running half of a `Reconciler` (its state lives there)."""

    settings: Settings
    mirror: Mirror
    claims: Claims
    clock: Clock
    stop: threading.Event
    state: Path
    forge: Forge
    outbox: Outbox
    _traces: dict[str, TraceInfo]
    _trace_blobs: dict[str, str]
    _authors: dict[str, tuple[str, ...]]
    #: The default branch's head the pass read (policy commands run from it).
    _head: str
    branch: str | None
    progress: Callable[[Progress], None] | None
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

    def _tell(self, event: Progress, report: PassReport) -> None:
        """An event of a running execution: what waits goes into the pass report, with on whom
        and the command that unblocks it; every event to whoever watches (`progress`)."""
        from foundry.progress import next_step

        waits = report.waiting.setdefault(event.execution, [])
        if event.kind == "execution-started":
            waits.clear()  # judged anew
        elif event.kind == "waiting":
            step = next_step(event, where="reconcile", branch=self.branch)
            waits[:] = [
                w for w in waits if (w["block"], w["gate"]) != (event.block, event.gate_index)
            ]
            waits.append(
                {
                    "block": event.block,
                    "gate": event.gate_index,
                    "kind": event.gate.kind if event.gate is not None else "indeterminate",
                    "reason": event.reason,
                    "waitingOn": event.waits_on,
                    "command": step.command if step is not None else None,
                    "next": step.text() if step is not None else None,
                }
            )
        elif event.kind == "execution-ended" and event.status == "queued":
            waits.append(
                {
                    "block": None,
                    "gate": None,
                    "kind": "lane",
                    "reason": event.reason,
                    "waitingOn": "a slot in its lane",
                    "command": None,
                    "next": "the next pass judges it again",
                }
            )
        if not waits:
            del report.waiting[event.execution]
        if self.progress is not None:
            self.progress(event)

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

        def watch() -> None:
            self._watch_control(work, cancel, stop, options, watched)

        renewer = threading.Thread(
            target=self._renew,
            args=(claim, ledger_path),
            kwargs={
                "publish": publish,
                "stop": over,
                "lost": lost,
                "progress": progress,
                "watch": watch,
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

    def _policy_checkout(self, where: Path) -> Path:
        """A fresh checkout of the default branch's head as this pass read it, for policy
        commands: never a pull request's, never the artifact's own (older) commit. Fresh for
        every command: what an earlier command (or a killed pass's) wrote there decides
        nothing."""
        from foundry.gates import PolicyUnavailable

        try:
            self.mirror.add_worktree(where, self._head)  # replaces whatever is there
        except GitError as exc:
            raise PolicyUnavailable(str(exc)) from None
        if self.settings.run_as is not None:  # it runs as the blocks' user
            _hand_over_worktree(where, self.state, self.settings.run_as, self.mirror.path)
        return where

    def _starters(self, work: Work) -> tuple[str, ...]:
        """Who started an execution that no Request started, for `forbidSelf` (asked only when
        an approval gate is judged): the author of the change that brought the artifact's
        version to the default branch (the merged pull request's author where the forge knows
        one, else the commit's author) — and for a push, of the pushed commit too. When that
        cannot be known now, the gate waits (`Unavailable`): nobody's approval is counted on a
        guess."""
        from foundry.gates import Unavailable

        if work.event.type == "request":
            return ()  # its requester started it (`initiator`)
        path = f".alloy/artifacts/{work.artifact.metadata.name}.json"
        try:
            commits = {work.commit, self.mirror.last_change(work.commit, path)}
            return tuple(dict.fromkeys(who for c in sorted(commits) for who in self._author(c)))
        except (GitError, ForgeError) as exc:
            raise Unavailable(f"who started it is unknown: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - GitPython raises its own error types
            raise Unavailable(f"who started it is unknown: {type(exc).__name__}: {exc}") from None

    def _author(self, commit: str) -> tuple[str, ...]:
        if commit not in self._authors:
            who = self.forge.identity(commit)
            if who is not None and who.pull:
                self._authors[commit] = (who.author,)
            else:
                self._authors[commit] = self.mirror.authors(commit)
        return self._authors[commit]

    def _watch_control(
        self,
        work: Work,
        cancel: Any,
        stop: threading.Event,
        options: Any,
        watched: dict[str, Any],
    ) -> None:
        """The holder of a running execution looks at the operator's stops whenever it renews
        its claim or a block starts or ends (one `git ls-remote`; a fetch when they moved): a
        cancel of this execution stops its blocks and ends it `cancelled`; a pause of its intent
        starts nothing more — running blocks finish, or stop at once (`--stop-running`) — and
        the execution waits, parked, until the pause ends."""
        try:
            sha = self.mirror.heads([controls.REF]).get(controls.REF)
            if sha == watched.get("sha"):
                return
            if sha is not None and self.mirror.rev(controls.REF) != sha:
                self.mirror.fetch([controls.REF])
            control = controls.read(self.mirror, sha)
        except GitError:
            return  # the remote is away: the next renewal looks again
        watched["sha"] = sha
        order = control.cancel_for(work.execution)
        if order is not None:
            cancel.request(order.describe())
            return
        pause = control.pause_for(work.artifact.spec.intent.name, self.clock.now())
        if pause is not None and not stop.is_set():
            watched["pause"] = pause.describe()
            options.stop_grace = 0.0 if pause.stop_running else float("inf")
            stop.set()

    def _renew(
        self,
        claim: Claim,
        ledger_path: Path,
        *,
        publish: Callable[..., None],
        stop: threading.Event,
        lost: threading.Event,
        progress: threading.Event,
        watch: Callable[[], None] = lambda: None,
    ) -> None:
        """Renew the lease every third of it, and publish the claim (ledger and live trace) as
        soon as `progress` says an attempt started or ended. One push at a time: progress that
        comes while a push is under way is coalesced into the next one; a wake whose ledger the
        claim carries already (the engine's own publication before a start, after an end with
        effects) pushes nothing. Ends when `stop` is set (and `progress`, to wake it)."""
        every = max(0.2, self.settings.lease / 3)
        due = time.monotonic() + every
        failed = 0
        while True:
            progress.wait(max(0.0, due - time.monotonic()))
            if stop.is_set():
                return
            progress.clear()
            watch()
            if time.monotonic() < due and _read(ledger_path) == claim.published:
                continue  # news already on the remote; the lease is not due yet
            try:
                crash_point("ledger-push-before", "renewal")
                publish(renewal=True)
                crash_point("ledger-push-after", "renewal")
            except LeaseLost:
                lost.set()
                stop.set()
                return
            except Exception:  # noqa: BLE001 - the remote is away, or a read failed: again soon
                # The lease may still hold when it is back, and the news must reach it: tried
                # again after 0.5 s, 1 s, 2 s ... (never later than the lease's own renewal),
                # not a third of a lease later.
                failed += 1
                due = time.monotonic() + min(every, 0.5 * 2 ** min(failed - 1, 10))
                continue
            failed = 0
            due = time.monotonic() + every

    def _release(
        self,
        claim: Claim,
        state: str,
        ledger: bytes | None,
        trace: bytes | None,
        report: PassReport,
    ) -> bool:
        """Release the claim; False when it is not ours any more (nothing to publish then)."""
        crash_point("release-before")
        try:
            self.claims.release(claim, state, ledger, trace=trace)  # type: ignore[arg-type]
        except LeaseLost as exc:
            report.parked[claim.execution] = f"lost its claim before its end was recorded: {exc}"
            return False
        except GitError as exc:
            import base64

            self.outbox.put(
                "claim",
                {
                    "repo": self.mirror.url,
                    "execution": claim.execution,
                    "sha": claim.sha,
                    "generation": claim.generation,
                    "state": state,
                    "ledger": base64.b64encode(ledger).decode() if ledger is not None else None,
                    "trace": base64.b64encode(trace).decode() if trace is not None else None,
                    "artifact": base64.b64encode(claim.artifact).decode()
                    if claim.artifact is not None
                    else None,
                    "commit": claim.commit,
                    "facts": claim.facts,
                },
                str(exc),
            )
            report.errors.append(f"{claim.execution}: its claim release waits in the outbox: {exc}")
        crash_point("release-after")
        return True

    # -- publishing a finished execution from its claim ------------------------------------

    def _repair(self, held: Holding, report: PassReport) -> Done | None:
        """A finished claim: publish its trace and check run unless the traces branch has
        the finished trace already (its holder got that far)."""
        from foundry.boundary import read_artifact
        from foundry.errors import BoundaryError
        from foundry.workspace import declared_secrets

        execution = held.execution
        info = self._traces.get(execution)
        if info is not None and info.status in FINISHED:
            report.not_claimed[execution] = f"finished by {held.holder}"
            return None
        record = self.claims.record(held)
        if record.artifact is None or record.ledger is None:
            report.errors.append(
                f"{execution}: finished by {held.holder}, but its claim holds no ledger or "
                "artifact to publish its trace from (a claim from an older version)"
            )
            return None
        try:
            artifact = read_artifact(f"{held.sha[:12]}:artifact.json", record.artifact)
        except BoundaryError as exc:
            report.errors.append(f"{execution}: cannot read the artifact of its claim: {exc}")
            return None
        records = [json.loads(line) for line in record.ledger.splitlines() if line.strip()]
        commit = held.commit or ""
        report.repaired.append(execution)
        # The ledger was masked where it ran; masked again with this host's values, if any.
        secrets = list(declared_secrets(artifact).values())
        return self._done(execution, records, artifact, commit, secrets=secrets)

    def _done(
        self,
        execution: str,
        records: list[dict[str, Any]],
        artifact: Artifact,
        commit: str,
        *,
        secrets: list[str],
    ) -> Done:
        from foundry.redaction import redaction
        from foundry.traces import SUMMARY_LIMIT, trace_bundle

        masks = redaction(secrets)
        bundle = trace_bundle(records, artifact, secrets=secrets)
        status = str(bundle.trace["spec"]["status"])
        planned = records[0] if records and records[0].get("type") == "planned" else {}
        event = planned.get("event") or {"type": "?", "key": "?"}
        reason = next(
            (r.get("reason") for r in reversed(records) if r.get("type") == "execution-finished"),
            None,
        )
        markdown_path = bundle.path.removesuffix(".json") + ".md"
        files = {
            bundle.path: trace_bytes(bundle.trace),
            markdown_path: bundle.markdown.encode(),
        }
        check = CheckRun(
            commit=commit,
            name=check_name(artifact.metadata.name, str(event["type"]), str(event["key"])),
            status="completed" if status in FINISHED else "in_progress",
            conclusion=_conclusion(status),
            title=masks.mask_text(
                f"{artifact.metadata.name}: {status}" + (f" ({reason})" if reason else "")
            ),
            summary=bundle.markdown[:SUMMARY_LIMIT],  # masked (a trace bundle is)
            external_id=execution,
        )
        latest = {(g["block"], g["index"]): g for g in bundle.trace["spec"]["gates"]}
        news = any(
            g["decision"] == "waiting" and g["kind"] in ("check", "after") for g in latest.values()
        )
        return Done(execution, status, files, check, waits_on_news=news)


class _FencedLanes:
    """A lane store that only the claim's current holder may change: the slot belongs to the
    execution, and after a takeover its new holder uses it. Once this holder lost the claim —
    or cannot show it still has it — it renews nothing and releases nothing (an unreleased slot
    runs out with its lease)."""

    def __init__(self, lanes: RemoteLanes, claims: Claims, claim: Claim, lost: threading.Event):
        self._lanes, self._claims, self._claim, self._lost = lanes, claims, claim, lost

    @property
    def lease_seconds(self) -> float:
        return self._lanes.lease_seconds

    def acquire(self, lane: LaneSpec, execution: str, /, *, holder: str) -> Decision:
        return self._lanes.acquire(lane, execution, holder=holder)

    def renew(self, lane_name: str, execution: str, /) -> bool:
        if self._lost.is_set():
            return False
        return self._lanes.renew(lane_name, execution)

    def release(self, lane_name: str, execution: str, /) -> None:
        if self._lost.is_set() or not self._still_ours():
            return
        self._lanes.release(lane_name, execution)

    def status(self, lane_name: str, /) -> LaneStatus:
        return self._lanes.status(lane_name)

    def close(self) -> None:
        self._lanes.close()

    def _still_ours(self) -> bool:
        try:
            held = self._claims.read(self._claim.execution)
        except (GitError, NotAClaim):
            return False
        ours = (self._claims.holder, self._claim.generation)
        return held is not None and (held.holder, held.generation) == ours


class _History:
    def __init__(self, traces: dict[str, TraceInfo]) -> None:
        self.last: dict[str, float] = {}
        for info in traces.values():
            if info.status == "succeeded" and info.finished_at is not None:
                self.last[info.intent] = max(self.last.get(info.intent, 0.0), info.finished_at)

    def last_success(self, intent: str) -> float | None:
        return self.last.get(intent)


class _Checks:
    def __init__(self, forge: Forge, commit: str) -> None:
        self.forge, self.commit = forge, commit

    def state(self, name: str) -> Any:
        return self.forge.check_state(self.commit, name)


def _relay(source: threading.Event, target: threading.Event) -> None:
    """Pass the reconciler's stop on to one execution (until the execution is over)."""
    while not target.is_set():
        if source.wait(0.2):
            target.set()
            return


def trace_bytes(trace: dict[str, Any]) -> bytes:
    """A Trace document as a file: on the traces branch and in a claim (`trace.json`)."""
    return (json.dumps(trace, indent=2, sort_keys=True) + "\n").encode()


def _hand_over_worktree(worktree: Path, state: Path, user: RunAs, mirror: Path) -> None:
    """The worktree, and its administrative entry in `mirror` (git refuses a worktree whose git
    directory is someone else's), become `user`'s; the directories on the way let its group
    pass. The entry is the mirror's own that names this worktree back (`worktree_entry`),
    never what the worktree's `.git`, the user's file, names alone. What the entry says about
    where it belongs is only trusted as far as `Mirror.worktree_head` and
    `Mirror._drop_broken` check it."""
    from foundry.sandbox import hand_over, let_pass

    let_pass(worktree, state, user)
    hand_over(worktree, user)
    entry = worktree_entry(mirror, worktree)
    if entry is not None and entry.is_relative_to(os.path.realpath(state)):
        let_pass(entry, state, user)
        hand_over(entry, user)


def live_trace(ledger: bytes | None, artifact: Artifact, secrets: list[str]) -> bytes | None:
    """The Trace of a ledger as it is now, for the claim (the same document the traces
    branch gets from it: `trace_bundle` builds it with `trace_document`), masked of `secrets`
    (the ledger was masked where it was written; masked again here). None when there is none
    yet (no `planned` record) or it cannot be built: a view of the ledger never keeps the
    ledger itself from being published."""
    if not ledger:
        return None
    from foundry.traces import trace_document

    whole = ledger[: ledger.rfind(b"\n") + 1]  # a line being written is not read
    try:
        records = [json.loads(line) for line in whole.splitlines() if line.strip()]
        return trace_bytes(trace_document(records, artifact, secrets=secrets))
    except Exception:  # noqa: BLE001 - a ledger a trace cannot be built from yet
        return None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".merge")
    tmp.write_bytes(data)
    tmp.replace(path)


def check_name(artifact: str, event_type: str, key: str) -> str:
    """The check run of an execution: `foundry: <artifact> (<event> <key, short>)`."""
    return f"foundry: {artifact} ({event_type} {_short(key)})"


def held_check(work: Work, why: str) -> CheckRun:
    """The check run of an execution a pause holds: queued, saying who paused it, until when,
    why, and how to lift it."""
    name = work.artifact.metadata.name
    summary = (
        f"**{name}** is held: {why}.\n\n"
        f"Execution `{work.execution}` ({work.event.type} `{_short(work.event.key)}`) starts "
        "or goes on once the pause ends.\n"
    )
    return CheckRun(
        commit=work.commit,
        name=check_name(name, work.event.type, work.event.key),
        status="queued",
        conclusion=None,
        title=f"{name}: paused",
        summary=summary,
        external_id=work.execution,
    )


def _note(path: Path, generation: int, at: float, reason: str) -> None:
    """A `held` record at the end of a ledger: why the execution stopped where it did (its
    trace's reason until it goes on)."""
    from foundry.ledger import Ledger

    ledger = Ledger(path, generation=generation)
    try:
        ledger.append({"type": "held", "reason": reason}, at=at, sync=True)
    finally:
        ledger.close()


def _short(key: str) -> str:
    return key[:19] if key.startswith("sha256:") else key[:40]


def _conclusion(status: str) -> Conclusion | None:
    return {
        "succeeded": "success",
        "failed": "failure",
        "cancelled": "cancelled",
        "skipped": "skipped",
        "indeterminate": "action_required",
    }.get(status)  # type: ignore[return-value]
