"""Reconcile: the default branch of a remote -> executions -> traces on the traces branch
(DESIGN sections 5, 6, 8 and 9).

One `Reconciler` per repository keeps what it learnt between passes (the remote's heads, parsed
documents by blob id, the traces index), so a pass with nothing new costs one `git ls-remote`.
Everything that decides what runs and what happened is read from the remote; what the state
directory keeps is a cache and a write-ahead copy, never a vote. A pass:

1. takes in the remote's outbox (what any host could not deliver) and delivers it;
2. asks the remote where the default branch, the traces branch, the forge ref and the outbox
   are (one `git ls-remote`); when none moved, no schedule slot is due and nothing parked or
   held elsewhere is due for a look, it stops there;
3. fetches what moved, reads `.alloy/` of the default branch, the traces index, and the
   history of the default branch for push events (`_history`);
4. plans with Foundry's planner (executions with a trace are subtracted) and adds the claims
   no plan covers any more that need a hand: a finished one without its trace, an expired one
   whose holder died (`_scan`);
5. claims and runs each execution (`_running`): its own failure is its own report line;
6. publishes check runs, then traces (`_publishing`), and shares what it could not deliver.

Modules: `_model` (settings, report), `_work` (what the steps hand each other: `Work`,
`Done`), `_reading`, `_history`, `_scan`, `_publishing`; running one execution: `_running`
(under its claim), `_lease` (its claim kept and let go), `_stops` (the operator's, and the
reconciler's), `_gating` (what its gates ask), `_fenced_lanes`, `_telling` (its events),
`_files` (its ledger and worktrees), `_live_trace`, `_finishing` (what it leaves to publish,
also from a finished claim) and `_check_runs`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from controllers import _remote_outbox as remote_outbox
from controllers import control as controls
from controllers.claims import Claims
from controllers.forge import CheckRun, Forge, Identity, LocalForge
from controllers.gitops import GitError, Mirror, holder_id, remote_url
from controllers.outbox import Outbox
from controllers.reconcile._check_runs import held_check
from controllers.reconcile._history import pushed_commits
from controllers.reconcile._model import (
    DEFAULT_TRACES,
    FINISHED,
    FORGE_REF,
    PARKED,
    STATE_FILE,
    Dispatch,
    PassReport,
    Settings,
    TraceInfo,
    state_dir_for,
)
from controllers.reconcile._publishing import Publishing
from controllers.reconcile._reading import Reading
from controllers.reconcile._running import Running
from controllers.reconcile._scan import Scanning
from controllers.reconcile._work import Done, Work
from foundry.ports import Clock, SystemClock
from foundry.state import private

#: How many times a pass judges again the executions waiting on what the pass itself published.
OWN_NEWS_ROUNDS = 3

# The engine (boundary models, planner, executor, traces) is imported when a pass has something
# to read: a pass that finds nothing new, and `foundry reconcile --once` with nothing to do,
# never pay for importing it (most of a no-op command's time otherwise).
if TYPE_CHECKING:
    from foundry.boundary import Boundary
    from foundry.gates import StaticApprovals
    from foundry.planner import Item
    from foundry.progress import Progress


class _Known:
    """The planner's view of what exists: the traces branch (the remote decides)."""

    def __init__(self, traces: Mapping[str, TraceInfo]) -> None:
        self.traces = traces

    def status(self, execution: str) -> str | None:
        info = self.traces.get(execution)
        return info.status if info is not None else None

    def unfinished_keys(self, artifact: str, event_type: str) -> list[tuple[str, str]]:
        return sorted(
            (e, i.key)
            for e, i in self.traces.items()
            if i.artifact == artifact and i.event == event_type and i.status not in FINISHED
        )


class Reconciler(Reading, Running, Scanning, Publishing):
    """Reconciles one repository, pass after pass (the daemon keeps one per repository)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        holder: str | None = None,
        forge: Forge | None = None,
        progress: Callable[[Progress], None] | None = None,
        halt: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.url = remote_url(settings.repo)
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        #: Told each execution and block as it starts and ends, and each wait (a CLI prints
        #: them, the daemon logs them); `halt` after `stop`: running blocks are killed now.
        self.progress = progress
        self.halt = halt
        # Absolute: git runs in the mirror, and a relative worktree path would land inside it.
        self.state = (settings.state_dir or state_dir_for(settings.repo)).absolute()
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Its ledgers, worktrees and logs are this repository's only (its blocks' user may
        # read them, to reach its worktrees: never write them).
        private(self.state, settings.run_as.gid if settings.run_as is not None else None)
        if settings.run_as is not None:
            from foundry.errors import UserError
            from foundry.sandbox import blocked_on_the_way

            blocked = blocked_on_the_way(self.state, settings.run_as)
            if blocked is not None:
                raise UserError(
                    f"its blocks run as {settings.run_as.describe()}, who cannot reach its state "
                    f"directory {self.state}: {blocked} does not let that user pass (chmod o+x "
                    f"{blocked}, or choose a state directory under one it can pass)"
                )
        self.mirror = Mirror(self.url, self.state / "mirror.git")
        self.claims = Claims(self.mirror, holder or holder_id(), self.clock, settings.lease)
        self.forge: Forge = forge if forge is not None else LocalForge(self.mirror)
        self._identities: dict[str, Identity | None] = {}
        self._landed: tuple[str, dict[str, list[tuple[float, str | None]]]] = ("", {})
        self._authors: dict[str, tuple[str, ...]] = {}
        self._requesters: dict[str, str | None] = {}
        self.outbox = Outbox(self.state / "outbox")
        self.branch = settings.branch
        self.traces_branch = DEFAULT_TRACES
        self._parsed: dict[str, Any] = {}
        self._history_parsed: dict[str, Any] = {}
        self._artifact_bytes: dict[str, bytes] = {}
        self._traces: dict[str, TraceInfo] = {}
        self._trace_blobs: dict[str, str] = {}
        self._shared: set[str] = set()
        self._control = controls.Control()
        self._memory = self._load_memory()
        self.claims.seen = {k: float(v) for k, v in self._memory.get("claimsSeen", {}).items()}

    def close(self) -> None:
        self.mirror.close()

    # -- memory between passes (also across processes: `--once` runs) ---------------------

    def _load_memory(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.state / STATE_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            data = {}
        data.setdefault("heads", {})
        data.setdefault("parked", [])
        data.setdefault("checked", 0.0)
        data.setdefault("claims", {})
        return data

    def _save_memory(self) -> None:
        target = self.state / STATE_FILE
        # A name of its own: processes that share a state directory each replace the file whole.
        tmp = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self._memory, sort_keys=True), encoding="utf-8")
        tmp.replace(target)

    # -- the pass ---------------------------------------------------------------------------

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

    def _work(
        self,
        item: Item,
        head: str,
        boundary: Boundary,
        history: list[Any],
        *,
        new: bool,
    ) -> Work:
        """What one planned item runs with: a push runs the artifact of its commit, there."""
        assert item.execution is not None
        assert item.event is not None
        event = item.event
        if event.type == "push":
            commit = event.key
            then = next(c for c in history if c.sha == commit)
            artifact, data = then.artifacts[item.artifact]
        else:
            artifact = boundary.artifacts[item.artifact]
            data = self._artifact_bytes[item.artifact]
            path = f".alloy/artifacts/{artifact.metadata.name}.json"
            commit = self.mirror.last_change(head, path)
        initiator = None
        if event.type == "request":
            name = event.key.split("@", 1)[0]
            request = boundary.requests.get(name)
            initiator = request.spec.requested_by if request else None
            initiator = self._requesters.get(name, initiator)
        return Work(
            execution=item.execution,
            event=event,
            artifact=artifact,
            artifact_bytes=data,
            commit=commit,
            inputs=dict(item.inputs),
            new=new,
            initiator=initiator,
        )

    def _quiet(
        self, items: list[Item], approvals: StaticApprovals, report: PassReport
    ) -> list[Item]:
        """On a pass where nothing moved (a timed re-check), an `indeterminate` execution is
        left alone unless an Approval for it is there: only an owner's decision, which comes
        with a commit, can move it on — so hosts do not take it from each other forever."""
        decided = {e for (e, _, index) in approvals.votes_by_gate if index == -1}
        keep = []
        for item in items:
            info = self._traces.get(item.execution or "")
            if (
                info is not None
                and info.status == "indeterminate"
                and item.execution not in decided
            ):
                report.skipped.append(f"{item.artifact}: {item.execution} waits for an Approval")
                continue
            keep.append(item)
        return keep

    def _one_run_per_slot(self, items: list[Item], report: PassReport) -> list[Item]:
        """A schedule slot runs once per intent: a slot that already has a trace under another
        digest of the same artifact (the intent changed since) does not start again."""
        ran = {
            (info.artifact, info.key): execution
            for execution, info in self._traces.items()
            if info.event == "schedule"
        }
        keep = []
        for item in items:
            event = item.event
            if event is not None and event.type == "schedule":
                other = ran.get((item.artifact, event.key))
                if other is not None:
                    report.skipped.append(
                        f"{item.artifact}: schedule slot {event.key} ran as {other}"
                    )
                    continue
            keep.append(item)
        return keep

    def _pushes(self, history: list[Any]) -> list[Any]:
        from foundry.planner import Push

        return [
            Push(c.sha, c.paths, {name: a for name, (a, _) in c.artifacts.items()}) for c in history
        ]

    def _parse_historical(self, path: str, sha: str) -> Any:
        """An artifact blob of the default branch's history, parsed once."""
        key = f"{sha}:{path}"
        value = self._parsed.get(key)
        if value is None:
            value = self._history_parsed.get(key)
        if value is None:
            from foundry.boundary import read_artifact
            from foundry.errors import BoundaryError

            data = self.mirror.blob(sha)
            try:
                value = (read_artifact(path, data), data)
            except BoundaryError as exc:
                value = exc
            if len(self._history_parsed) > 4096:
                self._history_parsed.clear()
            self._history_parsed[key] = value
        return value

    def _own_heads(self, heads: Mapping[str, str]) -> dict[str, str]:
        """Our own pushes moved the traces branch and the forge ref: they are not news."""
        out: dict[str, str] = {}
        for ref in self._refs()[1:]:
            sha = self.mirror.rev(ref)
            if sha is not None and heads.get(ref) != sha:
                out[ref] = sha
        return out

    # -- schedules: due slots without reading anything -----------------------------------

    def _slots_due(self, now: float) -> bool:
        """Whether a schedule slot came due since the last pass: its time was worked out then,
        so this parses no cron (and imports nothing). A state file without it: look once."""
        wake = self._memory.get("nextSlot", 0.0)
        return wake is not None and now >= wake

    def _remember_schedules(self, boundary: Boundary, now: float) -> None:
        """The earliest slot of any schedule after `now`: the next pass that finds nothing
        moved still reads and plans once that time has come (slots up to `now` were planned)."""
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from croniter import CroniterBadDateError, croniter

        upcoming = []
        for artifact in boundary.artifacts.values():
            s = artifact.spec.triggers.schedule
            if s is not None:
                start = datetime.fromtimestamp(now, ZoneInfo(s.timezone))
                try:
                    upcoming.append(croniter(s.cron, start).get_next(datetime).timestamp())
                except CroniterBadDateError:
                    continue  # a cron that never matches has no slot (the planner says so)
        self._memory["nextSlot"] = min(upcoming) if upcoming else None


def reconcile_once(settings: Settings, *, clock: Clock | None = None) -> PassReport:
    """One pass over one repository (`foundry reconcile --once`)."""
    reconciler = Reconciler(settings, clock=clock)
    try:
        return reconciler.pass_once()
    finally:
        reconciler.close()


__all__ = [
    "FINISHED",
    "PARKED",
    "Dispatch",
    "PassReport",
    "Reconciler",
    "Settings",
    "reconcile_once",
    "state_dir_for",
]
