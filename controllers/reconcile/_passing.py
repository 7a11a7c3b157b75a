"""A pass, step by step (the package's docstring lists the steps): the outbox taken in and
delivered, the remote's heads compared with the last pass's, then — when something moved or is
due — read, plan, look after claims no plan covers, hold what the operator paused, run, publish,
judge again what waits on what the pass itself published, and remember what was handled.

Each step is a part of its own (`_reading`, `_planning`, `_scan`, `_running`, `_publishing`,
`_memory`); this module puts them in order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from controllers import _remote_outbox as remote_outbox
from controllers import control as controls
from controllers.forge import CheckRun
from controllers.gitops import GitError
from controllers.reconcile._check_runs import held_check
from controllers.reconcile._history import pushed_commits
from controllers.reconcile._memory import Remembering
from controllers.reconcile._model import DEFAULT_TRACES, FINISHED, FORGE_REF, PassReport
from controllers.reconcile._planning import Planning, _Known
from controllers.reconcile._publishing import Publishing
from controllers.reconcile._reading import Reading
from controllers.reconcile._running import Running
from controllers.reconcile._scan import Scanning
from controllers.reconcile._work import Done, Work

if TYPE_CHECKING:
    from foundry.gates import StaticApprovals

#: How many times a pass judges again the executions waiting on what the pass itself published.
OWN_NEWS_ROUNDS = 3


class Passing(Planning, Remembering, Reading, Running, Scanning, Publishing):
    """The pass of a `Reconciler`, coordinating its parts (its state lives there)."""

    def _refs(self) -> list[str]:
        assert self.branch is not None
        return [
            f"refs/heads/{self.branch}",
            f"refs/heads/{self.traces_branch}",
            FORGE_REF,
            controls.REF,
        ]

    def pass_once(self) -> PassReport:
        started = time.monotonic()
        report = PassReport(self.settings.repo)
        try:
            self._pass(report)
        except GitError as exc:
            report.errors.append(str(exc))
        report.outbox = len(self.outbox)
        report.seconds = time.monotonic() - started
        return report

    def _pass(self, report: PassReport) -> None:
        self.claims.held_until.clear()
        if self.branch is None:
            self.branch = self._memory.get("branch") or self.mirror.default_branch()
            self._memory["branch"] = self.branch
        self.traces_branch = self._memory.get("tracesBranch", DEFAULT_TRACES)
        refs = self._refs()
        heads = self.mirror.heads([*refs, remote_outbox.REF])
        if remote_outbox.REF in heads:
            self._restore_outbox(report)
        self._drain_outbox(report)
        try:
            self._plan_and_run(report, refs, {r: s for r, s in heads.items() if r in refs})
        finally:
            if self._shared or len(self.outbox):
                self._share_outbox(report)

    def _plan_and_run(self, report: PassReport, refs: list[str], heads: dict[str, str]) -> None:
        now = self.clock.now()
        moved = heads != self._memory["heads"]
        due = self._slots_due(now)
        wake = self._memory.get("wake")
        recheck = bool(self._memory["parked"]) and (
            now - self._memory["checked"] >= self.settings.recheck
            or (wake is not None and now >= wake)
        )
        claims_due = self._claims_due(now)
        control_due = now >= (self._memory.get("controlWake") or float("inf"))
        if not (moved or due or recheck or claims_due or control_due):
            return
        report.moved = moved
        from foundry.planner import plan

        head = heads.get(refs[0])
        if head is None:
            raise GitError(f"{self.url} has no branch {self.branch!r}")
        self.mirror.fetch([ref for ref in refs if ref in heads])
        self._head = head
        self._control = controls.read(self.mirror, heads.get(controls.REF))
        report.errors += self._control.problems
        self._memory["controlWake"] = self._control.next_expiry(now)
        boundary, approvals, traces_branch = self._read_default_branch(head, report)
        if traces_branch != self.traces_branch:  # the project names another traces branch
            self.traces_branch = traces_branch
            self._memory["tracesBranch"] = traces_branch
            heads = self.mirror.heads(self._refs())
            self.mirror.fetch([ref for ref in self._refs() if ref in heads])
        self._index_traces(heads.get(f"refs/heads/{self.traces_branch}"))
        history = pushed_commits(self.mirror, head, self._parse_historical)
        pushes = self._pushes(history)
        result = plan(boundary, _Known(self._traces), now=now, pushes=pushes)
        result.start = self._one_run_per_slot(result.start, report)
        if not moved:
            result.resume = self._quiet(result.resume, approvals, report)
        report.skipped += [f"{i.artifact}: {i.reason}" for i in result.skip]
        work = [self._work(i, head, boundary, history, new=True) for i in result.start]
        work += [self._work(i, head, boundary, history, new=False) for i in result.resume]
        work += self._scan(
            planned={w.execution for w in work}, now=now, report=report, boundary=boundary
        )
        report.names.update((w.execution, w.name()) for w in work)  # every line names them
        work = self._obey(work, now, report)
        done = self._run_round(work, approvals, report)
        self._publish(done, report)
        # What this pass published (check runs, traces) can be what a parked execution's check
        # or `after` gate waits for: those are judged again now, not after a re-check interval
        # (our own pushes are not news to the next pass).
        news = bool(report.published or report.committed)
        for _ in range(OWN_NEWS_ROUNDS):
            again = {d.execution for d in done if d.status not in FINISHED and d.waits_on_news}
            if not again or not news:
                break
            before = (report.published, report.committed)
            self._index_traces(self.mirror.rev(f"refs/heads/{self.traces_branch}"))
            retry = [replace(w, new=False) for w in work if w.execution in again]
            latest = {d.execution: d for d in done}
            round_ = self._run_round(retry, approvals, report)
            latest.update({d.execution: d for d in round_})
            done = list(latest.values())
            self._publish(round_, report)
            news = (report.published, report.committed) != before
        parked = [d.execution for d in done if d.status not in FINISHED]
        # Stopped part-way, what was planned and not started (and what was interrupted) must
        # be planned again by the next pass, of this process or the next: the heads this pass
        # saw are then not remembered as handled, and the next pass sees the same news.
        if not self.stop.is_set():
            self._memory["heads"] = {**heads, **self._own_heads(heads)}
        # What someone else holds is looked at again: when its holder finishes, the traces
        # branch moves; when the holder dies, nothing moves, so look again once its lease ran
        # out (or, not knowing when, after one lease) and take it over. What this pass had to
        # stop (a lost claim, an error) is looked at again the same way.
        others = set(report.not_claimed) | set(report.parked)
        self._memory["parked"] = parked + sorted(others - set(parked))
        held = [
            self.claims.held_until.get(e, now + self.settings.lease)
            for e in sorted(set(report.not_claimed) | set(report.parked))
        ]
        self._memory["wake"] = min(held) if held else None
        self._memory["checked"] = now
        self._remember_schedules(boundary, now)
        # Running claims seen recently (for observer-side expiry); older ones are long replaced.
        horizon = max(3600.0, 10 * self.settings.lease)
        self.claims.seen = {k: v for k, v in self.claims.seen.items() if now - v < horizon}
        self._memory["claimsSeen"] = self.claims.seen
        self._save_memory()

    def _obey(self, work: list[Work], now: float, report: PassReport) -> list[Work]:
        """The operator's stops (`refs/alloy/control`): a cancelled execution ends `cancelled`
        (taken up to record it, on whichever host gets its claim); one whose intent is paused
        neither starts nor goes on — its check run says why, with who paused it, until when
        and how to lift it. Publishing what already finished (a repair) is never held."""
        keep: list[Work] = []
        held: list[CheckRun] = []
        for item in work:
            cancel = self._control.cancel_for(item.execution)
            if cancel is not None:
                keep.append(replace(item, end=("cancelled", cancel.describe())))
                continue
            pause = self._control.pause_for(item.artifact.spec.intent.name, now)
            if pause is None or item.end is not None or item.repair:
                keep.append(item)
                continue
            why = pause.describe()
            report.held[item.execution] = why
            held.append(held_check(item, why))
        if held:
            self._publish_checks(held, report)  # what fails waits in the outbox
        return keep

    def _run_round(
        self, work: list[Work], approvals: StaticApprovals, report: PassReport
    ) -> list[Done]:
        done: list[Done] = []
        for item in work:
            if self.stop.is_set():
                break
            outcome = self._execute(item, approvals=approvals, report=report)
            if outcome is not None:
                done.append(outcome)
        return done

    def _own_heads(self, heads: Mapping[str, str]) -> dict[str, str]:
        """Our own pushes moved the traces branch and the forge ref: they are not news."""
        out: dict[str, str] = {}
        for ref in self._refs()[1:]:
            sha = self.mirror.rev(ref)
            if sha is not None and heads.get(ref) != sha:
                out[ref] = sha
        return out
