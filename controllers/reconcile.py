"""Reconcile: the default branch of a remote -> executions -> traces on the traces branch
(DESIGN sections 5, 6 and 8).

One `Reconciler` per repository keeps what it learnt between passes (the remote's heads, parsed
documents by blob id, the traces index), so a pass with nothing new costs one `git ls-remote`.
A pass:

1. delivers what the outbox holds for this repository;
2. asks the remote where the default branch, the traces branch and the forge ref are (one
   `git ls-remote`); when none moved, no schedule slot is due and nothing parked is due for a
   re-check, it stops there;
3. fetches what moved, reads `.alloy/` of the default branch (one `ls-tree`, blobs through one
   `cat-file --batch` process, parsed only when their blob id is new) and the traces index;
4. plans with Foundry's planner (level-triggered: executions that have a trace, or a ledger
   here, are subtracted);
5. claims each execution to start or resume on the remote (`refs/alloy/claims/<execution>`),
   runs it in a clean worktree of the commit its artifact came from, renewing the lease and
   publishing its ledger while it runs;
6. commits the traces (`traces/<intent>/<execution>.json` + `.md`) to the traces branch and
   pushes them (rebuilt on the new tip and retried when someone else pushed first), releases
   the claims, and publishes one check run per execution to the forge.

Foundry's own commits go to the traces branch and to `refs/alloy/*`, never to the default
branch, so they cannot start anything; a pass that finds nothing new commits nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.claims import Claim, Claims, LeaseLost
from controllers.forge import (
    NOBODY,
    CheckRun,
    Conclusion,
    Forge,
    ForgeError,
    Identity,
    LocalForge,
)
from controllers.gitops import GitError, Mirror, holder_id, remote_url
from controllers.outbox import Entry, Outbox
from foundry.ports import Clock, SystemClock

# The engine (boundary models, planner, executor, traces) is imported when a pass has something
# to read: a pass that finds nothing new, and `foundry reconcile --once` with nothing to do,
# never pay for importing it (most of a no-op command's time otherwise).
if TYPE_CHECKING:
    from foundry.boundary import Artifact, Boundary
    from foundry.gates import StaticApprovals
    from foundry.planner import Item
    from foundry.state import LedgerIndex

#: Statuses after which an execution never runs again (the planner's `FINISHED`; a test keeps
#: the two equal).
FINISHED = ("succeeded", "failed", "cancelled", "skipped")

FORGE_REF = "refs/alloy/forge"
DEFAULT_TRACES = "alloy/traces"
#: Executions whose status is one of these are parked: re-evaluated on a later pass.
PARKED = ("waiting", "indeterminate", "planned", "running", "queued", "stopped")
STATE_FILE = "reconcile.json"


@dataclass
class Settings:
    """How to reconcile one repository."""

    repo: str
    branch: str | None = None
    state_dir: Path | None = None
    #: Claim lease: a holder that stops renewing loses the claim after this long.
    lease: float = 60.0
    #: When stopped, how long running blocks may go on before they are killed.
    grace: float = 30.0
    workers: int | None = None
    #: Parked executions (gates, lanes) are re-evaluated at least this often, even when the
    #: remote did not move (time windows open, policy commands change their mind).
    recheck: float = 60.0
    #: A run asked for outside the default branch (a `workflow_dispatch`): planned with the
    #: branch's own requests, as if it were a Request document pinned to the current digest.
    dispatch: Dispatch | None = None


@dataclass(frozen=True)
class Dispatch:
    """A request made by someone the forge vouches for (who started a workflow), not merged."""

    name: str
    intent: str
    requested_by: str
    reason: str
    inputs: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass
class TraceInfo:
    """What the traces index knows of one execution."""

    status: str
    intent: str
    artifact: str
    event: str
    finished_at: float | None


@dataclass
class PassReport:
    """What one pass did."""

    repo: str
    moved: bool = False
    started: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    finished: dict[str, str] = field(default_factory=dict)
    not_claimed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    committed: str | None = None
    #: Paths of the trace files this pass committed (or kept in the outbox) on the traces branch.
    traces: list[str] = field(default_factory=list)
    published: int = 0
    delivered: int = 0
    outbox: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[tuple[str, bool]]:
        """What happened, one line each, with whether the line reports a problem (the CLI prints
        those on stderr; the daemon logs them all)."""
        out = [(f"refused: {line}", True) for line in self.refused]
        for execution, status in self.finished.items():
            verb = "started" if execution in self.started else "resumed"
            out.append((f"{execution}: {verb}, {status}", False))
        out += [(f"{e}: not claimed ({why})", False) for e, why in self.not_claimed.items()]
        if self.committed:
            out.append((f"traces committed: {self.committed[:12]}", False))
        if self.published:
            out.append((f"check runs published: {self.published}", False))
        if self.delivered:
            out.append((f"outbox: {self.delivered} delivered", False))
        if self.outbox:
            out.append((f"outbox: {self.outbox} waiting to be delivered", True))
        out += [(f"error: {error}", True) for error in self.errors]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "moved": self.moved,
            "started": self.started,
            "resumed": self.resumed,
            "finished": self.finished,
            "notClaimed": self.not_claimed,
            "skipped": self.skipped,
            "refused": self.refused,
            "committed": self.committed,
            "traces": self.traces,
            "published": self.published,
            "delivered": self.delivered,
            "outbox": self.outbox,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


def state_dir_for(repo: str) -> Path:
    """`$FOUNDRY_STATE/<hash>`, else `$XDG_STATE_HOME/foundry/reconcile/<hash of the remote>`."""
    key = hashlib.sha256(remote_url(repo).encode()).hexdigest()[:16]
    explicit = os.environ.get("FOUNDRY_STATE")
    if explicit:
        return Path(explicit) / "reconcile" / key
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "foundry" / "reconcile" / key


class _Known:
    """The planner's view of what exists: the traces branch, and this host's ledgers."""

    def __init__(self, traces: Mapping[str, TraceInfo], local: LedgerIndex) -> None:
        self.traces = traces
        self.local = local

    def status(self, execution: str) -> str | None:
        here = self.local.status(execution)
        if here in FINISHED:
            return here
        info = self.traces.get(execution)
        return info.status if info is not None else here

    def unfinished(self, artifact: str, event_type: str) -> list[str]:
        return sorted(
            e
            for e, i in self.traces.items()
            if i.artifact == artifact and i.event == event_type and i.status not in FINISHED
        )


class _History:
    def __init__(self, traces: Mapping[str, TraceInfo]) -> None:
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


class Reconciler:
    """Reconciles one repository, pass after pass (the daemon keeps one per repository)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        holder: str | None = None,
        forge: Forge | None = None,
    ) -> None:
        self.settings = settings
        self.url = remote_url(settings.repo)
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        # Absolute: git runs in the mirror, and a relative worktree path would land inside it.
        self.state = (settings.state_dir or state_dir_for(settings.repo)).absolute()
        self.state.mkdir(parents=True, exist_ok=True)
        self.mirror = Mirror(self.url, self.state / "mirror.git")
        self.claims = Claims(self.mirror, holder or holder_id(), self.clock, settings.lease)
        self.forge: Forge = forge if forge is not None else LocalForge(self.mirror)
        self._identities: dict[str, Identity | None] = {}
        self._requesters: dict[str, str | None] = {}
        self.outbox = Outbox(self.state / "outbox")
        self.branch = settings.branch
        self.traces_branch = DEFAULT_TRACES
        self._parsed: dict[str, Any] = {}
        self._traces: dict[str, TraceInfo] = {}
        self._trace_blobs: dict[str, str] = {}
        self._memory = self._load_memory()

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
        return [f"refs/heads/{self.branch}", f"refs/heads/{self.traces_branch}", FORGE_REF]

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
        if len(self.outbox):
            report.delivered, _ = self.outbox.drain(self._deliver)
        if self.branch is None:
            self.branch = self._memory.get("branch") or self.mirror.default_branch()
            self._memory["branch"] = self.branch
        self.traces_branch = self._memory.get("tracesBranch", DEFAULT_TRACES)
        refs = self._refs()
        heads = self.mirror.heads(refs)
        now = self.clock.now()
        moved = heads != self._memory["heads"]
        due = self._slots_due(now)
        wake = self._memory.get("wake")
        recheck = bool(self._memory["parked"]) and (
            now - self._memory["checked"] >= self.settings.recheck
            or (wake is not None and now >= wake)
        )
        if not (moved or due or recheck):
            return
        report.moved = moved
        from foundry.planner import Push, plan
        from foundry.state import LedgerIndex

        head = heads.get(refs[0])
        if head is None:
            raise GitError(f"{self.url} has no branch {self.branch!r}")
        self.mirror.fetch([ref for ref in refs if ref in heads])
        boundary, approvals, traces_branch = self._read_default_branch(head, report)
        if traces_branch != self.traces_branch:  # the project names another traces branch
            self.traces_branch = traces_branch
            self._memory["tracesBranch"] = traces_branch
            heads = self.mirror.heads(self._refs())
            self.mirror.fetch([ref for ref in self._refs() if ref in heads])
        traces_ref = f"refs/heads/{self.traces_branch}"
        self._index_traces(heads.get(traces_ref))
        old = self._memory["heads"].get(refs[0])
        pushes = [Push(c.sha, c.paths) for c in self.mirror.commits(old, head)]
        known = _Known(self._traces, LedgerIndex(self.state))
        result = plan(boundary, known, now=now, pushes=pushes)
        report.skipped += [f"{i.artifact}: {i.reason}" for i in result.skip]
        files: dict[str, bytes] = {}
        checks: list[CheckRun] = []
        parked: list[str] = []
        work = [(item, True) for item in result.start] + [(item, False) for item in result.resume]
        for item, new in work:
            if self.stop.is_set():
                break
            assert item.execution is not None
            artifact = boundary.artifacts[item.artifact]
            outcome = self._execute(
                item,
                new=new,
                artifact=artifact,
                head=head,
                boundary=boundary,
                approvals=approvals,
                report=report,
            )
            if outcome is None:
                continue
            status, bundle_files, check = outcome
            files.update(bundle_files)
            checks.append(check)
            if status not in FINISHED:
                parked.append(item.execution)
        if files:
            report.traces = sorted(p for p in files if p.endswith(".json"))
            report.committed = self._publish_traces(files, report)
        for check in checks:
            self._publish_check(check, report)
        # Stopped part-way, what was planned and not started (and what was interrupted) must
        # be planned again by the next pass, of this process or the next: the heads this pass
        # saw are then not remembered as handled, and the next pass sees the same news.
        if not self.stop.is_set():
            self._memory["heads"] = {**heads, **self._own_heads(heads)}
        # What someone else holds is looked at again: when its holder finishes, the traces
        # branch moves; when the holder dies, nothing moves, so look again once its lease ran
        # out (or, not knowing when, after one lease) and take it over.
        self._memory["parked"] = parked + sorted(set(report.not_claimed) - set(parked))
        held = [
            self.claims.held_until.get(e, now + self.settings.lease) for e in report.not_claimed
        ]
        self._memory["wake"] = min(held) if held else None
        self._memory["checked"] = now
        self._remember_schedules(boundary, now)
        self._save_memory()

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

        from croniter import croniter

        upcoming = []
        for artifact in boundary.artifacts.values():
            s = artifact.spec.triggers.schedule
            if s is not None:
                start = datetime.fromtimestamp(now, ZoneInfo(s.timezone))
                upcoming.append(croniter(s.cron, start).get_next(datetime).timestamp())
        self._memory["nextSlot"] = min(upcoming) if upcoming else None

    # -- reading ----------------------------------------------------------------------------

    def _parse(self, path: str, sha: str) -> Any:
        key = f"{sha}:{path}"
        if key not in self._parsed:
            from foundry.boundary import read_approval, read_artifact, read_request
            from foundry.errors import BoundaryError

            data = self.mirror.blob(sha)
            try:
                if path.startswith(".alloy/artifacts/"):
                    self._parsed[key] = (read_artifact(path, data), data)
                elif path.startswith(".alloy/requests/"):
                    self._parsed[key] = read_request(path, data)
                elif path.startswith(".alloy/approvals/"):
                    self._parsed[key] = read_approval(path, data)
                else:
                    self._parsed[key] = data
            except BoundaryError as exc:
                self._parsed[key] = exc
        return self._parsed[key]

    def _read_default_branch(
        self, head: str, report: PassReport
    ) -> tuple[Boundary, StaticApprovals, str]:
        from foundry.boundary import Approval, Boundary, Request
        from foundry.errors import BoundaryError
        from foundry.gates import ApprovalVote, StaticApprovals

        entries = self.mirror.tree(head, ".alloy/")
        boundary = Boundary()
        approvals = StaticApprovals()
        self._requesters = {}
        traces_branch = DEFAULT_TRACES
        self._artifact_bytes: dict[str, bytes] = {}
        # Parsed documents are kept by blob id for as long as the branch holds that blob.
        current = {f"{sha}:{path}" for path, sha in entries.items()}
        self._parsed = {k: v for k, v in self._parsed.items() if k in current}
        self._identities = {k: v for k, v in self._identities.items() if k in current}
        for path in sorted(entries):
            parts = path.split("/")
            if path == ".alloy/alloy.yaml":
                traces_branch = _traces_branch(self._parse(path, entries[path]))
                continue
            if len(parts) != 3 or parts[1] not in ("artifacts", "requests", "approvals"):
                continue
            if not (path.endswith(".json") if parts[1] == "artifacts" else path.endswith(".yaml")):
                continue
            value = self._parse(path, entries[path])
            if isinstance(value, BoundaryError):
                boundary.refused.append(value)
                report.refused.append(str(value))
            elif isinstance(value, tuple):
                artifact, data = value
                boundary.artifacts[artifact.metadata.name] = artifact
                self._artifact_bytes[artifact.metadata.name] = data
            elif isinstance(value, Request):
                boundary.requests[value.metadata.name] = value
                who = self._identity(head, path, entries[path], report)
                if who is not None:
                    self._requesters[value.metadata.name] = who.author or None
            elif isinstance(value, Approval):
                spec = value.spec
                who = self._identity(head, path, entries[path], report)
                # Where the forge knows who merged the document, they are who decided: the
                # pull request's author and its approving reviewers, not the file's `approver`.
                voters = [spec.approver] if who is None else [who.author, *who.approvers]
                for voter in dict.fromkeys(v for v in voters if v):
                    vote = ApprovalVote(voter, spec.decision, 0.0)
                    approvals.add(spec.execution, spec.gate.block, spec.gate.index, vote)
        if self.settings.dispatch is not None:
            self._add_dispatch(self.settings.dispatch, boundary, report)
        return boundary, approvals, traces_branch

    def _add_dispatch(self, dispatch: Dispatch, boundary: Boundary, report: PassReport) -> None:
        """The dispatched run as a Request pinned to the artifact's current digest, read by the
        boundary reader like any Request (so bad inputs are refused the same way)."""
        import yaml

        from foundry.boundary import read_request
        from foundry.errors import BoundaryError

        where = f"workflow_dispatch {dispatch.name}"
        artifact = boundary.artifacts.get(dispatch.intent)
        if artifact is None:
            report.refused.append(
                f"{where}: no artifact {dispatch.intent!r} on {self.branch}; name an accepted "
                "or active intent with `on: {request: true}`"
            )
            return
        document = {
            "apiVersion": "alloy.dev/v1",
            "kind": "Request",
            "metadata": {"name": dispatch.name},
            "spec": {
                "artifact": f"{dispatch.intent}@{artifact.digest}",
                "inputs": dict(dispatch.inputs),
                "reason": dispatch.reason or "workflow_dispatch",
                "requestedBy": dispatch.requested_by,
            },
        }
        try:
            request = read_request(where, yaml.safe_dump(document).encode())
        except BoundaryError as exc:
            report.refused.append(str(exc))
            return
        boundary.requests[dispatch.name] = request
        self._requesters[dispatch.name] = dispatch.requested_by

    def _identity(self, head: str, path: str, blob: str, report: PassReport) -> Identity | None:
        """Who merged the document at `path` (its blob `blob`), as the forge knows it."""
        key = f"{blob}:{path}"
        if key not in self._identities:
            try:
                who = self.forge.identity(self.mirror.last_change(head, path))
            except ForgeError as exc:
                report.errors.append(f"{path}: who merged it is unknown for now: {exc}")
                return NOBODY  # not cached: asked again on the next pass
            self._identities[key] = who
        who = self._identities[key]
        if who is not None and who.pull == 0:
            report.skipped.append(
                f"{path}: not merged through a pull request; nobody is counted as its author"
            )
        return who

    def _index_traces(self, tip: str | None) -> None:
        if tip is None:
            self._traces, self._trace_blobs = {}, {}
            return
        from foundry.ledger import parse_rfc3339

        entries = self.mirror.tree(tip, "traces/")
        index: dict[str, TraceInfo] = {}
        blobs: dict[str, str] = {}
        for path, sha in entries.items():
            if not path.endswith(".json"):
                continue
            execution = path.rsplit("/", 1)[-1].removesuffix(".json")
            blobs[execution] = sha
            if self._trace_blobs.get(execution) == sha and execution in self._traces:
                index[execution] = self._traces[execution]
                continue
            try:
                spec = json.loads(self.mirror.blob(sha))["spec"]
                finished = spec.get("finishedAt")
                index[execution] = TraceInfo(
                    status=spec["status"],
                    intent=spec["intent"],
                    artifact=spec["artifact"]["name"],
                    event=spec["event"]["type"],
                    finished_at=parse_rfc3339(finished) if finished else None,
                )
            except (ValueError, KeyError, TypeError):
                continue  # not a trace Foundry wrote; status tools report it
        self._traces, self._trace_blobs = index, blobs

    # -- one execution --------------------------------------------------------------------

    def _execute(
        self,
        item: Item,
        *,
        new: bool,
        artifact: Artifact,
        head: str,
        boundary: Boundary,
        approvals: StaticApprovals,
        report: PassReport,
    ) -> tuple[str, dict[str, bytes], CheckRun] | None:
        from foundry.executor import RunOptions, run_execution
        from foundry.gates import Context, GateEvaluator
        from foundry.state import LedgerIndex
        from foundry.throttle import Lanes
        from foundry.traces import SUMMARY_LIMIT, trace_bundle
        from foundry.workspace import declared_secrets, keep_artifact

        execution = item.execution
        event = item.event
        assert execution is not None
        assert event is not None
        claim, why = self.claims.acquire(execution)
        if claim is None:
            report.not_claimed[execution] = why
            return None
        (report.started if new else report.resumed).append(execution)
        ledger_path = self.state / "executions" / execution / "ledger.jsonl"
        _restore_ledger(ledger_path, claim.ledger)
        path = f".alloy/artifacts/{artifact.metadata.name}.json"
        commit = self.mirror.last_change(head, path)
        worktree = self.state / "worktrees" / execution
        if self.mirror.worktree_head(worktree) != commit:
            self.mirror.add_worktree(worktree, commit)
        keep_artifact(self.state, execution, self._artifact_bytes[artifact.metadata.name])
        secrets = declared_secrets(artifact)
        lost = threading.Event()
        stop = threading.Event()

        def publish_ledger() -> None:
            self.claims.renew(claim, _read(ledger_path))

        lanes = Lanes(
            self.state / "lanes.db",
            self.clock,
            queue_seconds=max(300.0, 10 * self.settings.recheck),
        )
        options = RunOptions(
            workdir=worktree,
            state_dir=self.state,
            lanes=lanes,
            inputs=dict(item.inputs),
            secrets=secrets,
            stop_grace=self.settings.grace,
            before_effects=publish_ledger,
        )
        if self.settings.workers:
            options.workers = self.settings.workers
        initiator = None
        if event.type == "request":
            name = event.key.split("@", 1)[0]
            request = boundary.requests.get(name)
            initiator = request.spec.requested_by if request else None
            initiator = self._requesters.get(name, initiator)
        context = Context(
            initiator=initiator,
            approvals=approvals,
            teams=self.forge,
            checks=_Checks(self.forge, commit),
            history=_History(self._traces),
        )
        renewer = threading.Thread(
            target=self._renew,
            args=(claim, ledger_path, stop, lost),
            name=f"lease-{execution}",
            daemon=True,
        )
        relay = threading.Thread(target=_relay, args=(self.stop, stop), daemon=True)
        renewer.start()
        relay.start()
        try:
            result = run_execution(
                artifact, event, options, self.clock, gates=GateEvaluator(context), stop=stop
            )
        except LeaseLost as exc:
            report.errors.append(str(exc))
            return None
        finally:
            stop.set()
            renewer.join()
            lanes.close()
        if lost.is_set():
            report.errors.append(f"{execution}: lost its claim while running; stopped")
            return None
        status = result.status
        records = LedgerIndex(self.state).records(execution)
        ledger = _read(ledger_path)
        self._release(claim, "finished" if status in FINISHED else "parked", ledger, report)
        report.finished[execution] = status
        if status in FINISHED:
            self.mirror.remove_worktree(worktree)
        bundle = trace_bundle(records, artifact, secrets=list(secrets.values()))
        markdown_path = bundle.path.removesuffix(".json") + ".md"
        files = {
            bundle.path: (json.dumps(bundle.trace, indent=2, sort_keys=True) + "\n").encode(),
            markdown_path: bundle.markdown.encode(),
        }
        check = CheckRun(
            commit=commit,
            name=f"foundry: {artifact.metadata.name} ({event.type} {_short(event.key)})",
            status="completed" if status in FINISHED else "in_progress",
            conclusion=_conclusion(status),
            title=f"{artifact.metadata.name}: {status}"
            + (f" ({result.reason})" if result.reason else ""),
            summary=bundle.markdown[:SUMMARY_LIMIT],
            external_id=execution,
        )
        return status, files, check

    def _renew(
        self, claim: Claim, ledger_path: Path, stop: threading.Event, lost: threading.Event
    ) -> None:
        every = max(0.2, self.settings.lease / 3)
        while not stop.wait(every):
            try:
                self.claims.renew(claim, _read(ledger_path))
            except LeaseLost:
                lost.set()
                stop.set()
                return
            except GitError:
                continue  # the remote is away; the lease may still hold when it is back

    def _release(self, claim: Claim, state: str, ledger: bytes | None, report: PassReport) -> None:
        try:
            self.claims.release(claim, state, ledger)  # type: ignore[arg-type]
        except LeaseLost as exc:
            report.errors.append(str(exc))
        except GitError as exc:
            self.outbox.put(
                "claim",
                {
                    "repo": self.url,
                    "execution": claim.execution,
                    "sha": claim.sha,
                    "state": state,
                    "ledger": _b64(ledger),
                },
                str(exc),
            )

    # -- publishing ---------------------------------------------------------------------------

    def _publish_traces(self, files: Mapping[str, bytes], report: PassReport) -> str | None:
        try:
            return self.push_traces(files)
        except GitError as exc:
            self.outbox.put(
                "traces",
                {"repo": self.url, "files": {p: _b64(d) for p, d in files.items()}},
                str(exc),
            )
            report.errors.append(f"traces kept in the outbox: {exc}")
            return None

    def push_traces(self, files: Mapping[str, bytes]) -> str | None:
        """Commit `files` on the traces branch and push; rebuilt on the new tip and retried when
        someone else pushed first. None when the branch already holds exactly these files."""
        ref = f"refs/heads/{self.traces_branch}"
        for _ in range(10):
            tip = self.mirror.heads([ref]).get(ref)
            if tip is not None and self.mirror.rev(ref) != tip:
                self.mirror.fetch([ref])
            if tip is not None and self._holds(tip, files):
                return None
            names = sorted(
                {p.split("/")[2].removesuffix(".json").removesuffix(".md") for p in files}
            )
            message = f"traces: {', '.join(names[:5])}" + (
                f" and {len(names) - 5} more" if len(names) > 5 else ""
            )
            commit = self.mirror.commit(tip, files, message)
            if self.mirror.push([(commit, ref, tip)]).ok:
                self.mirror.set_ref(ref, commit)
                return commit
            time.sleep(0.05)
        raise GitError(f"{self.url}: {ref} kept moving; traces kept for the next pass")

    def _holds(self, tip: str, files: Mapping[str, bytes]) -> bool:
        for path, data in files.items():
            sha = self.mirror.tree(tip, path).get(path)
            if sha is None or self.mirror.blob(sha) != data:
                return False
        return True

    def _publish_check(self, check: CheckRun, report: PassReport) -> None:
        try:
            if self.forge.publish_check(check):
                report.published += 1
        except (GitError, ForgeError) as exc:
            self.outbox.put("check", {"repo": self.url, "run": check.to_json()}, str(exc))

    def _deliver(self, entry: Entry) -> None:
        payload = entry.payload
        if payload.get("repo") != self.url:
            raise GitError("belongs to another repository")
        if entry.kind == "traces":
            self.push_traces({p: base64.b64decode(d) for p, d in payload["files"].items()})
        elif entry.kind == "check":
            self.forge.publish_check(CheckRun.from_json(payload["run"]))
        elif entry.kind == "claim":
            claim = Claim(payload["execution"], payload["sha"], self.claims.holder, None)
            ledger = payload["ledger"]
            try:
                self.claims.release(
                    claim, payload["state"], base64.b64decode(ledger) if ledger else None
                )
            except LeaseLost:
                return  # someone took it over meanwhile: nothing left to deliver
        else:
            raise GitError(f"unknown outbox entry kind {entry.kind!r}")


def _relay(source: threading.Event, target: threading.Event) -> None:
    """Pass the reconciler's stop on to one execution (until the execution is over)."""
    while not target.is_set():
        if source.wait(0.2):
            target.set()
            return


def _restore_ledger(path: Path, remote: bytes | None) -> None:
    """Take the ledger the previous holder published when it knows more than ours."""
    if remote is None:
        return
    local = _read(path)
    if local is None or len(local) < len(remote):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".restore")
        tmp.write_bytes(remote)
        tmp.replace(path)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


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


def _traces_branch(document: Any) -> str:
    """`spec.traces.branch` of `.alloy/alloy.yaml`, read as plain data (Alloy validates it)."""
    if isinstance(document, bytes):
        import yaml

        try:
            data = yaml.load(document, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            return DEFAULT_TRACES
        spec = data.get("spec") if isinstance(data, dict) else None
        traces = spec.get("traces") if isinstance(spec, dict) else None
        branch = traces.get("branch") if isinstance(traces, dict) else None
        if isinstance(branch, str) and branch:
            return branch
    return DEFAULT_TRACES


def reconcile_once(settings: Settings, *, clock: Clock | None = None) -> PassReport:
    """One pass over one repository (`foundry reconcile --once`)."""
    reconciler = Reconciler(settings, clock=clock)
    try:
        return reconciler.pass_once()
    finally:
        reconciler.close()


__all__ = [
    "Dispatch",
    "PassReport",
    "Reconciler",
    "Settings",
    "reconcile_once",
    "state_dir_for",
]
