"""What a remote's records say about its executions, any host's (`foundry status`, and where
`foundry checks`, `foundry traces`, `foundry cancel` and `foundry pause` look).

Read from the remote alone, into a scratch bare mirror: the default branch (the intents and
`spec.traces.branch`), the traces branch, the claims (`refs/alloy/claims/*`, with their live
traces), the local forge's check runs (`refs/alloy/forge`) and the operator's stops
(`refs/alloy/control`). No state directory of any host is read: what ran is on the remote.

Each execution's state, by what the remote shows first:

* a `running` claim under a live lease: `running` on its holder, with its live trace's reason;
* its trace on the traces branch: the trace's status and reason;
* a claim without a trace: its state (`running` with an expired lease is `stalled`: any host's
  next pass takes it over);
* only a check run (a pause held it before it started): `held`.

An unfinished execution of a paused intent is `held`, with who paused it, until when, why and
the command that lifts the pause; a cancel not yet carried out says so. Waiting executions name
what they wait on and, for an approval, the exact command that gives it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controllers import control as controls
from controllers.claims import PREFIX as CLAIMS
from controllers.claims import Claims, Holding, NotAClaim
from controllers.forge import REF as FORGE_REF
from controllers.forge import CheckRun, LocalForge
from controllers.gitops import GitError, Mirror
from controllers.reconcile._model import DEFAULT_TRACES, FINISHED
from controllers.reconcile._reading import _traces_branch
from foundry.ports import SystemClock


@dataclass
class Row:
    """One execution as the remote's records show it."""

    execution: str
    intent: str
    artifact: str
    event: str
    key: str
    state: str
    why: str
    #: The command that moves it on, where one does (an approval, a resume).
    next: str | None = None
    holder: str | None = None
    commit: str | None = None
    started: str | None = None
    finished: str | None = None
    #: The trace's path on the traces branch (None: it has none yet).
    trace: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "execution": self.execution,
            "intent": self.intent,
            "artifact": self.artifact,
            "event": {"type": self.event, "key": self.key},
            "state": self.state,
            "why": self.why,
            "next": self.next,
            "holder": self.holder,
            "commit": self.commit,
            "startedAt": self.started,
            "finishedAt": self.finished,
            "trace": self.trace,
        }


@dataclass
class Snapshot:
    """A remote's executions and stops, as read at `read_at`."""

    remote: str
    branch: str
    traces_branch: str
    #: The refs read and where they pointed (what `--watch` compares).
    heads: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    pauses: list[controls.Pause] = field(default_factory=list)
    cancels: list[controls.Cancel] = field(default_factory=list)
    checks: list[CheckRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)
    read_at: float = 0.0

    def row(self, execution: str) -> Row | None:
        return next((r for r in self.rows if r.execution == execution), None)


def watched(mirror: Mirror) -> dict[str, str]:
    """Every ref whose move can change what `read` shows, and its value (one `git ls-remote`):
    the branches and everything under `refs/alloy/`."""
    return {
        r: s
        for r, s in mirror.refs_under("refs/").items()
        if r.startswith(("refs/heads/", "refs/alloy/"))
    }


def read(url: str, scratch: Path, *, branch: str | None = None) -> Snapshot:
    """The remote's records now (fetched into a bare mirror under `scratch`)."""
    mirror = Mirror(url, scratch / "mirror.git")
    try:
        return _read(mirror, url, branch)
    finally:
        mirror.close()


def _read(mirror: Mirror, url: str, branch: str | None) -> Snapshot:
    now = time.time()
    branch = branch or mirror.default_branch()
    heads = watched(mirror)
    head = heads.get(f"refs/heads/{branch}")
    if head is None:
        raise GitError(f"{url} has no branch {branch!r}")
    wanted = [f"refs/heads/{branch}", FORGE_REF, controls.REF]
    mirror.fetch([r for r in wanted if r in heads])
    traces_branch = DEFAULT_TRACES
    alloy_yaml = mirror.tree(head, ".alloy/").get(".alloy/alloy.yaml")
    if alloy_yaml is not None:
        traces_branch = _traces_branch(mirror.blob(alloy_yaml))
    traces_ref = f"refs/heads/{traces_branch}"
    claims = {r: s for r, s in heads.items() if r.startswith(CLAIMS)}
    # The claims by one glob (there may be thousands: one refspec each would not fit a
    # command line).
    mirror.fetch([r for r in [traces_ref] if r in heads] + ([f"{CLAIMS}*"] if claims else []))
    snap = Snapshot(url, branch, traces_branch, heads, read_at=now)
    snap.intents = sorted(
        p.removeprefix(".alloy/artifacts/").removesuffix(".json")
        for p in mirror.tree(head, ".alloy/artifacts/")
        if p.endswith(".json")
    )
    control = controls.read(mirror, heads.get(controls.REF))
    snap.pauses = sorted(control.pauses.values(), key=lambda p: p.intent or "")
    snap.cancels = sorted(control.cancels.values(), key=lambda c: c.execution)
    snap.problems += control.problems
    rows: dict[str, Row] = {}
    if traces_ref in heads:
        for path, blob in mirror.tree(heads[traces_ref], "traces/").items():
            if path.endswith(".json"):
                row = _from_trace(path, mirror.blob(blob), snap.problems)
                if row is not None:
                    rows[row.execution] = row
    checker = Claims(mirror, "foundry-status", SystemClock())
    for ref, listed in sorted(claims.items()):
        execution = ref.removeprefix(CLAIMS)
        # A claim commit has no parent: when the ref moved between the listing and the fetch,
        # only the newer commit is here (and it is the newer truth).
        sha = mirror.rev(ref) or listed
        try:
            held = checker.holding(sha)
        except NotAClaim as exc:
            snap.problems.append(f"{execution}: {exc}")
            continue
        live = mirror.tree(sha, "trace.json").get("trace.json")
        _add_claim(rows, execution, held, mirror.blob(live) if live else None, now)
    snap.checks = LocalForge(mirror).checks() if FORGE_REF in heads else []
    for check in snap.checks:
        if check.external_id and check.external_id not in rows:
            rows[check.external_id] = _from_check(check)
    for row in rows.values():
        _overlay(row, control, now)
    snap.rows = sorted(rows.values(), key=lambda r: (r.intent, r.started or "", r.execution))
    return snap


def _from_trace(path: str, data: bytes, problems: list[str]) -> Row | None:
    try:
        document = json.loads(data)
        spec = document["spec"]
        row = Row(
            execution=str(document["metadata"]["name"]),
            intent=str(spec["intent"]),
            artifact=str(spec["artifact"]["name"]),
            event=str(spec["event"]["type"]),
            key=str(spec["event"]["key"]),
            state=str(spec["status"]),
            why=str(spec.get("reason") or ""),
            started=spec.get("startedAt"),
            finished=spec.get("finishedAt"),
            trace=path,
        )
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(f"{path}: not a trace Foundry wrote ({exc})")
        return None
    row.next = _next(row, spec)
    if row.state == "failed" and not row.why:
        row.why = _failure(spec)
    return row


def _failure(spec: dict[str, Any]) -> str:
    """Why a failed execution failed, from its blocks: which failed, with its exit code and the
    last line its process printed."""
    said = []
    for block in spec.get("blocks", []):
        if block.get("status") != "failed":
            continue
        attempts = block.get("attempts") or [{}]
        last = attempts[-1]
        what = f"block {block.get('id')} failed"
        if last.get("outcome") == "timeout":
            what += " (timed out)"
        elif last.get("exitCode") is not None:
            what += f" (exit code {last['exitCode']})"
        tail = [x for x in str(last.get("logTail") or "").splitlines() if x.strip()]
        if tail:
            what += f": {tail[-1].strip()[:200]}"
        said.append(what)
    return "; ".join(said)


def _next(row: Row, spec: dict[str, Any]) -> str | None:
    """The exact command that moves a waiting or indeterminate execution on, where there is
    one a person gives (an Approval)."""
    if row.state == "indeterminate":
        blocks = [b["id"] for b in spec.get("blocks", []) if b.get("status") == "indeterminate"]
        if blocks:
            return (
                f"alloy approve {row.execution} --gate {blocks[0]}/-1 --resolve --comment "
                '"…" (or --reject), then merge it'
            )
    if row.state == "waiting":
        latest = {(g["block"], g["index"]): g for g in spec.get("gates", [])}
        for (block, index), gate in sorted(latest.items()):
            if gate.get("decision") == "waiting" and gate.get("kind") == "approval":
                return (
                    f'alloy approve {row.execution} --gate {block}/{index} --comment "…", '
                    "then merge it"
                )
    return None


def _add_claim(
    rows: dict[str, Row], execution: str, held: Holding, trace: bytes | None, now: float
) -> None:
    row = rows.get(execution)
    live = held.state == "running" and held.expires > now
    if row is not None and row.state in FINISHED:
        return
    if row is None or live:
        fresh = _from_trace(f"{CLAIMS}{execution}:trace.json", trace, []) if trace else None
        if fresh is not None:
            fresh.trace = row.trace if row is not None else None
            row = fresh
        elif row is None:
            event = held.facts.get("event") or {}
            row = Row(
                execution=execution,
                intent="?",
                artifact="?",
                event=str(event.get("type", "?")),
                key=str(event.get("key", "?")),
                state=held.state,
                why="",
            )
    row.holder = held.holder
    row.commit = held.commit
    if live:
        row.state = "running"
        row.why = f"on {held.holder} (lease until {_stamp(held.expires)})" + (
            f"; {row.why}" if row.why else ""
        )
    elif held.state == "running":
        row.state = "stalled"
        row.why = (
            f"its holder {held.holder} stopped renewing its claim; the next pass of any host "
            "takes it over"
        )
    rows[execution] = row


def _from_check(check: CheckRun) -> Row:
    name = check.name.removeprefix("foundry: ")
    artifact, _, rest = name.partition(" (")
    event, _, key = rest.rstrip(")").partition(" ")
    state = check.conclusion or check.status
    return Row(
        execution=check.external_id,
        intent=artifact,
        artifact=artifact,
        event=event or "?",
        key=key or "?",
        state="held" if check.title.endswith(": paused") else state,
        why=check.title,
        commit=check.commit,
    )


def _overlay(row: Row, control: controls.Control, now: float) -> None:
    """The operator's stops over what the records say."""
    if row.state in FINISHED:
        return
    order = control.cancel_for(row.execution)
    if order is not None:
        row.why = f"{order.describe()} (carried out by the next pass of any host)"
        return
    pause = control.pause_for(row.intent, now)
    if pause is not None and row.state != "running":
        row.state = "held"
        row.why = pause.describe()
        row.next = f"foundry resume {pause.intent or '--all'}"
    elif row.state == "held" and pause is None:
        row.why = "its pause ended; the next pass starts it"
        row.state = "queued"


def _stamp(seconds: float) -> str:
    from foundry.ledger import rfc3339

    return rfc3339(seconds)


def trace_files(url: str, scratch: Path, execution: str) -> tuple[Row, bytes, bytes | None] | None:
    """The trace of `execution` on the remote's traces branch: its row, the Trace document and
    its Markdown summary (None: it has no trace there)."""
    mirror = Mirror(url, scratch / "mirror.git")
    try:
        snap = _read(mirror, url, None)
        row = snap.row(execution)
        ref = f"refs/heads/{snap.traces_branch}"
        if row is None or row.trace is None or ref not in snap.heads:
            return None
        tip = mirror.rev(ref) or snap.heads[ref]
        markdown = row.trace.removesuffix(".json") + ".md"
        found = mirror.tree(tip, row.trace.rsplit("/", 1)[0] + "/")
        if row.trace not in found:
            return None
        summary = mirror.blob(found[markdown]) if markdown in found else None
        return row, mirror.blob(found[row.trace]), summary
    finally:
        mirror.close()
